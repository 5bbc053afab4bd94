package daemon

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/sigv4"
)

func TestClassifySTSAnswer(t *testing.T) {
	const goodJSON = `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012",` +
		`"Arn":"arn:aws:iam::123456789012:user/alice","UserId":"AIDAEXAMPLE"},"ResponseMetadata":{"RequestId":"r"}}}`
	f := func(status int, body string, want stsOutcome) {
		t.Helper()
		id, err := classifySTSAnswer(status, []byte(body))
		got := stsIdentity
		var se *STSError
		if errors.As(err, &se) {
			got = se.outcome
		} else if err != nil {
			t.Fatalf("unexpected untyped error %v", err)
		}
		if got != want {
			t.Fatalf("unexpected outcome for %d %s; got %s; want %s (%v)", status, body, got, want, err)
		}
		if want == stsIdentity && (id.Arn != "arn:aws:iam::123456789012:user/alice" || id.Account != "123456789012" || id.UserID != "AIDAEXAMPLE") {
			t.Fatalf("unexpected identity %+v", id)
		}
	}
	errBody := func(code string) string {
		return `{"Error":{"Code":"` + code + `","Message":"m","Type":"Sender"},"RequestId":"r"}`
	}
	f(200, goodJSON, stsIdentity)
	f(200, "  "+goodJSON+"\n", stsIdentity)
	// [S4] a 200 that is not exactly the JSON shape is not an identity (CVE-2020-16250: never XML).
	f(200, `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/alice</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{}}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"","UserId":"x"}}}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"12345678901","Arn":"arn:aws:iam::12345678901:user/a","UserId":"x"}}}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"arn:aws:iam::999999999999:user/a","UserId":"x"}}}`, stsUnavailable)
	f(200, goodJSON+`{"more":1}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":`, stsUnavailable)
	f(200, ``, stsUnavailable)
	for _, code := range []string{"SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken", "AccessDenied"} {
		f(403, errBody(code), stsRejected)
	}
	for _, code := range []string{"RequestExpired", "IncompleteSignature", "InvalidParameterValue"} {
		f(400, errBody(code), stsRejected)
	}
	f(400, errBody("Throttling"), stsThrottled)
	f(400, errBody("ThrottlingException"), stsThrottled)
	f(429, ``, stsThrottled)
	f(403, errBody("Throttling"), stsUnavailable) // an unexpected pairing is not a definite answer
	f(403, `<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>`, stsUnavailable)
	f(400, errBody("SomethingNew"), stsUnavailable)
	f(500, errBody("InternalFailure"), stsUnavailable)
	f(503, errBody("ServiceUnavailable"), stsUnavailable)
	f(302, ``, stsUnavailable)
}

// TestSTSClientLimits: an STS answer over 64 KiB, a redirect and a hang are "unavailable",
// never followed or read without bound [S1]. A misbehaving STS is the one thing the fake
// cannot be, so a tiny local server plays it.
func TestSTSClientLimits(t *testing.T) {
	var redirected atomic.Int64
	var ln net.Listener
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/followed" {
			redirected.Add(1)
			return
		}
		switch string(ctx.Request.Header.Peek(sigv4.ClusterIDHeader)) {
		case "huge":
			ctx.SetBodyString(`{"GetCallerIdentityResponse":{"Pad":"` + strings.Repeat("x", 100<<10) + `"}}`)
		case "redirect":
			ctx.Redirect("http://"+ln.Addr().String()+"/followed", fasthttp.StatusFound)
		case "hang":
			time.Sleep(time.Second)
		}
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown()
	f := func(clusterID string, timeout time.Duration) {
		t.Helper()
		c := newSTSClient(STSConfig{ClusterID: clusterID, Timeout: timeout, MaxConcurrency: 1, DialOverride: ln.Addr().String(), InsecureHTTP: true},
			newMetrics("test", nil))
		start := time.Now()
		_, err := c.getCallerIdentity(t.Context(), "sts.us-east-1.amazonaws.com", []byte(baseTokenURL))
		var se *STSError
		if !errors.As(err, &se) || se.outcome != stsUnavailable {
			t.Fatalf("%s: unexpected result; got %v; want unavailable", clusterID, err)
		}
		if elapsed := time.Since(start); elapsed > timeout+time.Second {
			t.Fatalf("%s: unexpected duration %s beyond the timeout %s", clusterID, elapsed, timeout)
		}
	}
	f("huge", 5*time.Second)
	f("redirect", 5*time.Second)
	f("hang", 200*time.Millisecond)
	if n := redirected.Load(); n != 0 {
		t.Fatalf("unexpected: the client followed a redirect %d times", n)
	}
}

const baseTokenURL = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
