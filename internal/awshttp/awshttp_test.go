package awshttp

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

type recordingDoer struct{ got *http.Request }

func (d *recordingDoer) Do(r *http.Request) (*http.Response, error) {
	d.got = r
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(""))}, nil
}

// TestWithoutBodyWriteTo: the transport gets the same bytes from a body that has no WriteTo,
// and the caller's request is left as it was.
func TestWithoutBodyWriteTo(t *testing.T) {
	next := &recordingDoer{}
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", bytes.NewReader([]byte("Action=AssumeRole")))
	if err != nil {
		t.Fatal(err)
	}
	body := req.Body
	if _, ok := body.(io.WriterTo); !ok {
		t.Fatal("the fixture's body should have WriteTo")
	}
	if _, err := WithoutBodyWriteTo(next).Do(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := next.got.Body.(io.WriterTo); ok {
		t.Fatal("the transport got a body with WriteTo")
	}
	if req.Body != body {
		t.Fatal("the caller's request was changed")
	}
	b, err := io.ReadAll(next.got.Body)
	if err != nil || string(b) != "Action=AssumeRole" {
		t.Fatalf("body = %q, %v", b, err)
	}
	if WithoutBodyWriteTo(nil) != nil {
		t.Fatal("a nil client must stay nil, so that the SDK picks its default")
	}
}
