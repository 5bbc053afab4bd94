package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
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
	// A 200 that is not exactly the JSON shape is not an identity (CVE-2020-16250: never XML).
	f(200, `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/alice</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{}}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"","UserId":"x"}}}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"12345678901","Arn":"arn:aws:iam::12345678901:user/a","UserId":"x"}}}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"arn:aws:iam::999999999999:user/a","UserId":"x"}}}`, stsUnavailable)
	f(200, goodJSON+`{"more":1}`, stsUnavailable)
	f(200, `{"GetCallerIdentityResponse":`, stsUnavailable)
	f(200, ``, stsUnavailable)
	for _, code := range []string{"SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken", "AccessDenied", "MissingAuthenticationToken"} {
		f(403, errBody(code), stsRejected)
	}
	for _, code := range []string{"RequestExpired", "IncompleteSignature", "InvalidParameterValue", "InvalidAction", "MalformedQueryString"} {
		f(400, errBody(code), stsRejected)
	}
	// Any other definite 4xx is a rejection too, whatever its code or body: STS will not
	// honour the request, and "unavailable" would make kube-apiserver ask again and again.
	f(400, errBody("SomethingNew"), stsRejected)
	f(403, `<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>`, stsRejected)
	f(404, ``, stsRejected)
	f(413, ``, stsRejected)
	// Throttling: 429, or a throttling code with any 4xx or 5xx.
	f(400, errBody("Throttling"), stsThrottled)
	f(400, errBody("ThrottlingException"), stsThrottled)
	f(403, errBody("Throttling"), stsThrottled)
	f(503, errBody("SlowDown"), stsThrottled)
	f(400, errBody("RequestLimitExceeded"), stsThrottled)
	f(429, ``, stsThrottled)
	// Transient: a request timeout, 5xx, redirects (never followed).
	f(408, ``, stsUnavailable)
	f(400, errBody("RequestTimeout"), stsUnavailable)
	f(400, errBody("RequestTimeoutException"), stsUnavailable)
	f(500, errBody("InternalFailure"), stsUnavailable)
	f(502, ``, stsUnavailable)
	f(503, errBody("ServiceUnavailable"), stsUnavailable)
	f(504, ``, stsUnavailable)
	f(302, ``, stsUnavailable)
	f(0, ``, stsUnavailable)
}

// TestDecodeErrorCode: only a plausible AWS error code leaves the STS body, so that nothing
// else of it can reach a log line.
func TestDecodeErrorCode(t *testing.T) {
	f := func(body, want string) {
		t.Helper()
		if got := decodeErrorCode([]byte(body)); got != want {
			t.Fatalf("unexpected code for %s; got %q; want %q", body, got, want)
		}
	}
	f(`{"Error":{"Code":"SignatureDoesNotMatch","Message":"m"}}`, "SignatureDoesNotMatch")
	f(`{"Error":{"Code":"InvalidInstanceID.NotFound"}}`, "InvalidInstanceID.NotFound")
	f(`{"Error":{"Code":"k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5JlZlcnNpb249MjAxMS0wNi0xNQ"}}`, "")
	f(`{"Error":{"Code":"a b"}}`, "")
	f(`{"Error":{"Code":"x\n"}}`, "")
	f(`{"Error":{"Code":"ünicode"}}`, "")
	f(`<Error><Code>Throttling</Code></Error>`, "")
	f(``, "")
}

// TestTransportClass: the network failures an operator must tell apart.
func TestTransportClass(t *testing.T) {
	f := func(err error, want string) {
		t.Helper()
		if got := transportClass(err); got != want {
			t.Fatalf("unexpected class for %v; got %q; want %q", err, got, want)
		}
	}
	f(fasthttp.ErrTimeout, "timeout")
	f(fasthttp.ErrDialTimeout, "timeout")
	f(&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "reset")
	f(fasthttp.ErrConnectionClosed, "reset")
	f(io.EOF, "reset")
	f(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "refused")
	f(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "sts.us-east-1.amazonaws.com", IsNotFound: true}}, "dns")
	f(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "x509")
	f(fmt.Errorf("tls: %w", x509.HostnameError{Host: "sts.us-east-1.amazonaws.com", Certificate: &x509.Certificate{}}), "x509")
	f(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "tls")
	f(errors.New("something else"), "other")
}

// TestSTSResetIsOneAttempt: a connection reset costs exactly one request at STS: the HTTP
// client retries nothing behind iamgate_sts_requests_total's back (fasthttp retries an
// idempotent GET up to 5 times by default).
func TestSTSResetIsOneAttempt(t *testing.T) {
	h := newHarness(t)
	if err := h.sts.SetFaults(fakests.Faults{ResetRate: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		h.clock.Add(time.Second)
		if a := h.review(h.token(alice)); a.Status != 502 {
			t.Fatalf("unexpected answer under resets; got %+v; want 502", a)
		}
		if got := h.sts.Stats().Count(fakests.ActionGetCallerIdentity, fakests.OutcomeReset); got != uint64(i+1) {
			t.Fatalf("unexpected requests at STS after %d reviews; got %d; want %d", i+1, got, i+1)
		}
	}
	if got := h.metric(`iamgate_sts_requests_total{outcome="unavailable"}`); got != 3 {
		t.Fatalf("unexpected counted STS calls; got %v; want 3", got)
	}
}

// TestSTSClientLimits: an STS answer over 64 KiB, a redirect and a hang are "unavailable",
// never followed or read without bound (see docs/design.md: The STS call). A misbehaving STS
// is the one thing the fake cannot be, so a tiny local server plays it.
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
		_, err := c.getCallerIdentity(t.Context(), "sts.us-east-1.amazonaws.com", []byte(baseTokenURL), keyVerified)
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

// TestSTSFailureLogs: from the log alone an operator tells a token signed for another cluster
// (SignatureDoesNotMatch) from an unknown access key (InvalidClientTokenId), both at Info, from
// a CA file that does not verify STS (transport x509) and an outage, at Warn; no line holds a
// piece of a token.
func TestSTSFailureLogs(t *testing.T) {
	logs := &testenv.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := newHarness(t, func(c *Config) { c.Logger = logger })
	stranger := principal{"arn:aws:iam::123456789012:user/stranger", "AKIASTRANGERSTRANGER", "stranger-secret"}
	tokens := []string{
		h.tokenAt(alice, h.clock.Now(), "another-cluster"),
		h.tokenAt(stranger, h.clock.Now(), testClusterID),
	}
	for _, tok := range tokens {
		if a := h.review(tok); a.Status != 200 || a.Review.Authenticated {
			t.Fatalf("unexpected answer; got %+v; want a denial", a)
		}
	}
	if err := h.sts.SetFaults(fakests.Faults{Outage: true}); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(time.Second)
	outage := h.token(alice)
	tokens = append(tokens, outage)
	if a := h.review(outage); a.Status != 502 {
		t.Fatalf("unexpected answer under an outage; got %+v; want 502", a)
	}

	// STS over TLS, verified with a CA that did not sign its certificate.
	tlsSTS, err := fakests.New(fakests.Config{}, fakests.Options{TLS: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr, err := tlsSTS.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tlsSTS.Close() })
	wrongCA := newHarness(t, func(c *Config) {
		c.Logger = logger
		c.STS.DialOverride, c.STS.InsecureHTTP, c.STS.RootCAs = tlsAddr, false, x509.NewCertPool()
	})
	tok := wrongCA.token(alice)
	tokens = append(tokens, tok)
	if a := wrongCA.review(tok); a.Status != 502 {
		t.Fatalf("unexpected answer with a wrong CA; got %+v; want 502", a)
	}

	out := logs.String()
	for _, want := range []string{
		`level=INFO msg="STS call failed" outcome=rejected host=sts.us-east-1.amazonaws.com status=403 code=SignatureDoesNotMatch`,
		`level=INFO msg="STS call failed" outcome=rejected host=sts.us-east-1.amazonaws.com status=403 code=InvalidClientTokenId`,
		`level=WARN msg="STS call failed" outcome=unavailable host=sts.us-east-1.amazonaws.com status=503 code=ServiceUnavailable`,
		`level=WARN msg="STS call failed" outcome=unavailable host=sts.us-east-1.amazonaws.com transport=x509 error=`,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("unexpected logs: %q is missing:\n%s", want, out)
		}
	}
	for _, tok := range tokens {
		payload := strings.TrimPrefix(tok, sigv4.TokenPrefix)
		url := decodeToken(t, tok)
		for i := 0; i+16 <= len(payload); i += 8 {
			if strings.Contains(out, payload[i:i+16]) {
				t.Fatalf("a piece of a token is in the logs: %q", payload[i:i+16])
			}
		}
		_, query, _ := strings.Cut(url, "?")
		for i := 0; i+16 <= len(query); i += 8 {
			if strings.Contains(out, query[i:i+16]) {
				t.Fatalf("a piece of a token's URL is in the logs: %q", query[i:i+16])
			}
		}
	}
}
