package fakests

import (
	"bufio"
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/internal/testenv"
)

// FuzzHandler shows that the fake answers any raw HTTP request without panicking, with one of
// the statuses AWS uses, and never 200 for a request it could not verify.
func FuzzHandler(f *testing.F) {
	for _, rt := range testenv.RealClientTokens(f) {
		u := decodeToken(f, rt.Token)
		f.Add([]byte("GET /?" + u.RawQuery + " HTTP/1.1\r\nHost: " + u.Host + "\r\nx-k8s-aws-id: " + rt.ClusterID +
			"\r\nAccept: application/json\r\n\r\n"))
	}
	f.Add([]byte("POST / HTTP/1.1\r\nHost: 127.0.0.1:4577\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"X-Amz-Date: 20261127T014411Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261127/us-east-1/sts/aws4_request, " +
		"SignedHeaders=content-type;host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000\r\n" +
		"Content-Length: 43\r\n\r\nAction=GetCallerIdentity&Version=2011-06-15"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: ec2.us-east-1.amazonaws.com\r\nContent-Length: 70\r\n\r\nAction=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: ec2.us-east-1.amazonaws.com\r\nContent-Length: 116\r\n\r\nAction=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-id&Filter.1.Value.1=i-0123456789abcdef0&MaxResults=5"))
	at := time.Date(2026, 11, 27, 1, 45, 0, 0, time.UTC)
	s, err := New(testConfig(f), Options{Clock: func() time.Time { return at }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatalf("cannot create fakests: %s", err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ctx fasthttp.RequestCtx
		if err := ctx.Request.ReadLimitBody(bufio.NewReader(bytes.NewReader(raw)), maxBodySize); err != nil {
			return
		}
		h(&ctx)
		_ = s.SetFaults(Faults{}) // a fuzzed PUT /admin/faults must not slow later inputs down
		switch string(ctx.Path()) {
		case "/admin/faults", "/stats", "/metrics", "/healthz":
			return // admin answers, not AWS ones
		}
		switch code := ctx.Response.StatusCode(); code {
		case 200:
			if !bytes.Contains(ctx.Response.Body(), []byte("111122223333")) && !bytes.Contains(ctx.Response.Body(), []byte("reservationSet")) {
				t.Fatalf("unexpected 200 answer %q", ctx.Response.Body())
			}
		case 204, 400, 401, 403, 404, 405, 500, 503:
		default:
			t.Fatalf("unexpected status %d", code)
		}
	})
}
