package signature

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/sigv4/internal/aws4"
)

// FuzzParse shows that parsing and verifying a signature never panics, whatever the
// query, Authorization header, X-Amz-Date header, signed header values and body hold, and that
// a parsed request keeps its invariants.
func FuzzParse(f *testing.F) {
	for _, rt := range testenv.RealClientTokens(f) {
		u := tokenURL(f, rt.Token)
		f.Add(u.Host, u.RawQuery, "", "", rt.ClusterID, []byte(nil))
	}
	f.Add("127.0.0.1:4566", "",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="+aws4.EmptyPayloadHash,
		"20261127T014411Z", "application/x-www-form-urlencoded", []byte("Action=GetCallerIdentity&Version=2011-06-15"))
	f.Add("h", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2f%2F%2F%2Faws4_request&X-Amz-Date=%&X-Amz-SignedHeaders=host&X-Amz-Signature=+", "", "", "", []byte{0})
	f.Fuzz(func(t *testing.T, host, rawQuery, authorization, amzDate, headerValue string, body []byte) {
		h := http.Header{}
		if authorization != "" {
			h.Set("Authorization", authorization)
		}
		if amzDate != "" {
			h.Set("X-Amz-Date", amzDate)
		}
		h.Set("X-K8s-Aws-Id", headerValue)
		h.Set("Content-Type", headerValue)
		r := &Request{Method: http.MethodPost, Host: host, Path: "/", RawQuery: rawQuery, Header: h, Body: body}
		s, err := Parse(r)
		if err != nil {
			if s != nil {
				t.Fatalf("unexpected non-nil Signed with error %v", err)
			}
			return
		}
		if s.AccessKeyID == "" || s.Region == "" || s.Service == "" || len(s.Date) != 8 || !s.HasSignedHeader("host") {
			t.Fatalf("unexpected parse result %+v", s)
		}
		if strings.Contains(s.AccessKeyID, "/") || s.Date != s.SigningTime.Format("20060102") {
			t.Fatalf("unexpected credential scope %+v", s)
		}
		_ = s.CheckTime(time.Date(2026, 11, 27, 1, 44, 0, 0, time.UTC))
		_ = s.Verify(r, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	})
}
