package daemon

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
)

// The webhook listener over TLS: HTTP/2 for clients that negotiate it by ALPN, HTTP/1.1 for
// the others, one review function behind both. The clients are Go's net/http (what
// kube-apiserver's webhook client is built on), fasthttp's, and a raw HTTP/2 framer for the
// clients that break the rules. cmd/iamgate's tests drive k8s.io/apiserver's webhook
// authenticator itself against `iamgate server`.

// testKeyPair is a self-signed key pair for 127.0.0.1, made once per test binary, and a pool
// that trusts it.
var testKeyPair = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "iamgate test"},
		// The TLS stack checks validity against the real clock, not the harness's.
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

// withTLS serves the webhook over TLS, with HTTP/2 offered by ALPN or not.
func withTLS(http2 bool) harnessOption {
	return func(c *Config) {
		cert, _ := testKeyPair()
		c.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		c.HTTP2 = http2
	}
}

func testClientTLS() *tls.Config {
	_, roots := testKeyPair()
	return &tls.Config{RootCAs: roots}
}

// http1Client offers only http/1.1 by ALPN.
func http1Client() *http.Client {
	cfg := testClientTLS()
	cfg.NextProtos = []string{"http/1.1"}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
}

// answerMeta is what a test compares between protocols.
type answerMeta struct {
	status                          int
	contentType, allow, server, txt string
	proto, alpn                     string
}

// send makes one request and reads the whole answer.
func send(t *testing.T, c *http.Client, method, url string, body io.Reader) answerMeta {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %s", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: cannot read the answer: %s", method, url, err)
	}
	m := answerMeta{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), allow: resp.Header.Get("Allow"),
		server: resp.Header.Get("Server"), proto: resp.Proto}
	if resp.TLS != nil {
		m.alpn = resp.TLS.NegotiatedProtocol
	}
	if strings.HasPrefix(m.contentType, "text/plain") {
		m.txt = string(data)
	} else if !bytes.Contains(data, []byte(`"kind":"TokenReview"`)) {
		t.Fatalf("%s %s: unexpected answer %q", method, url, data)
	}
	return m
}

// protoMetric returns one sample of a webhook metric labelled by protocol.
func (h *harness) protoMetric(name, proto string) float64 {
	h.t.Helper()
	return h.metric(fmt.Sprintf("%s{protocol=%q}", name, proto))
}

func TestHTTP2ReviewsShareOneConnection(t *testing.T) {
	h := newHarness(t, withTLS(true))
	if m := send(t, h.client, "POST", h.url, bytes.NewReader(reviewBody(apiVersionV1, h.token(alice)))); m.status != 200 || m.proto != "HTTP/2.0" || m.alpn != "h2" {
		t.Fatalf("unexpected answer to a client offering h2; got %+v; want 200 over HTTP/2.0 (ALPN h2)", m)
	}
	// 50 concurrent reviews of distinct tokens (each an STS call) on the open connection.
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		body := reviewBody(apiVersionV1, h.tokenAt(alice, testStart.Add(-time.Duration(i+1)*time.Second), testClusterID))
		wg.Go(func() {
			resp, err := h.client.Post(h.url, "application/json", bytes.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || !bytes.Contains(data, []byte(`"authenticated":true`)) {
				errs <- fmt.Errorf("unexpected answer over %s: %s", resp.Proto, data)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sample string
		want   float64
	}{
		{`iamgate_webhook_connections_total{protocol="h2"}`, 1},
		{`iamgate_webhook_connections_total{protocol="http/1.1"}`, 0},
		{`iamgate_webhook_open_connections{protocol="h2"}`, 1},
		{`iamgate_webhook_requests_total{protocol="h2"}`, n + 1},
		{`iamgate_webhook_requests_total{protocol="http/1.1"}`, 0},
		{`iamgate_reviews_total{reason="ok",result="allowed"}`, n + 1},
		{`iamgate_webhook_tls_handshake_errors_total`, 0},
	} {
		if got := h.metric(c.sample); got != c.want {
			t.Errorf("unexpected %s; got %v; want %v", c.sample, got, c.want)
		}
	}
	if got := h.stsCalls(); got != n+1 {
		t.Errorf("unexpected STS calls; got %d; want %d", got, n+1)
	}
}

func TestHTTP1StillServedOnTheTLSListener(t *testing.T) {
	h := newHarness(t, withTLS(true))
	body := reviewBody(apiVersionV1, h.token(alice))
	if m := send(t, http1Client(), "POST", h.url, bytes.NewReader(body)); m.status != 200 || m.proto != "HTTP/1.1" || m.alpn != "http/1.1" {
		t.Fatalf("unexpected answer to a client offering http/1.1 only; got %+v; want 200 over HTTP/1.1", m)
	}
	// fasthttp's client offers no ALPN at all.
	fc := &fasthttp.Client{TLSConfig: testClientTLS()}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(h.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetBody(body)
	if err := fc.DoTimeout(req, resp, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(`"authenticated":true`)) {
		t.Fatalf("unexpected answer to fasthttp's client: %d %s", resp.StatusCode(), resp.Body())
	}
	if got := h.protoMetric("iamgate_webhook_connections_total", "http/1.1"); got != 2 {
		t.Errorf("unexpected HTTP/1.1 connections; got %v; want 2", got)
	}
	if got := h.protoMetric("iamgate_webhook_connections_total", "h2"); got != 0 {
		t.Errorf("unexpected h2 connections; got %v; want 0", got)
	}
	if got := h.protoMetric("iamgate_webhook_requests_total", "http/1.1"); got != 2 {
		t.Errorf("unexpected HTTP/1.1 requests; got %v; want 2", got)
	}
}

func TestHTTP2Off(t *testing.T) {
	h := newHarness(t, withTLS(false))
	m := send(t, h.client, "POST", h.url, bytes.NewReader(reviewBody(apiVersionV1, h.token(alice))))
	if m.status != 200 || m.proto != "HTTP/1.1" || m.alpn != "" {
		t.Fatalf("unexpected answer with HTTP/2 off to a client offering h2; got %+v; want 200 over HTTP/1.1, no ALPN", m)
	}
	if got := h.protoMetric("iamgate_webhook_connections_total", "http/1.1"); got != 1 {
		t.Errorf("unexpected HTTP/1.1 connections; got %v; want 1", got)
	}
}

// TestPlainHTTPIsHTTP1: without TLS there is nothing to negotiate; connections are counted
// as HTTP/1.1 when accepted.
func TestPlainHTTPIsHTTP1(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HTTP2 = true })
	if a := h.review(h.token(alice)); !a.Review.Authenticated {
		t.Fatalf("unexpected answer: %+v", a)
	}
	if got := h.protoMetric("iamgate_webhook_connections_total", "http/1.1"); got != 1 {
		t.Errorf("unexpected HTTP/1.1 connections; got %v; want 1", got)
	}
	if got := h.protoMetric("iamgate_webhook_requests_total", "http/1.1"); got != 1 {
		t.Errorf("unexpected HTTP/1.1 requests; got %v; want 1", got)
	}
}

// TestBadRequestsSameOverHTTP2: every refusal has the same status, headers, body and metric
// over HTTP/2 as over HTTP/1.1.
func TestBadRequestsSameOverHTTP2(t *testing.T) {
	h := newHarness(t, withTLS(true))
	good := string(reviewBody(apiVersionV1, h.token(alice)))
	url := func(path string) string { return strings.Replace(h.url, "/authenticate", path, 1) }
	big := strings.Repeat(" ", 65<<10) + good
	cases := []struct {
		name, method, path string
		body               func() io.Reader
		want               int
	}{
		{"a review", "POST", "/authenticate", func() io.Reader { return strings.NewReader(good) }, 200},
		{"GET", "GET", "/authenticate", func() io.Reader { return nil }, 405},
		{"PUT", "PUT", "/authenticate", func() io.Reader { return strings.NewReader(good) }, 405},
		{"another path", "POST", "/other", func() io.Reader { return strings.NewReader(good) }, 404},
		{"a trailing slash", "POST", "/authenticate/", func() io.Reader { return strings.NewReader(good) }, 404},
		{"the root", "POST", "/", func() io.Reader { return strings.NewReader(good) }, 404},
		{"broken JSON", "POST", "/authenticate", func() io.Reader { return strings.NewReader("{") }, 400},
		{"no body", "POST", "/authenticate", func() io.Reader { return nil }, 400},
		{"another kind", "POST", "/authenticate", func() io.Reader {
			return strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview","spec":{"token":"t"}}`)
		}, 400},
		{"a body over 64 KiB with its length", "POST", "/authenticate", func() io.Reader { return strings.NewReader(big) }, 413},
		{"a body over 64 KiB streamed", "POST", "/authenticate", func() io.Reader { return testenv.Lengthless{Reader: strings.NewReader(big)} }, 413},
		{"a body of exactly 64 KiB streamed", "POST", "/authenticate", func() io.Reader {
			return testenv.Lengthless{Reader: strings.NewReader(strings.Repeat(" ", maxReviewBody-len(good)) + good)}
		}, 200},
	}
	reasons := []string{"method_not_allowed", "not_found", "body_too_large", "bad_body"}
	counts := func() []float64 {
		var out []float64
		for _, r := range reasons {
			out = append(out, h.metric(fmt.Sprintf("iamgate_bad_requests_total{reason=%q}", r)))
		}
		return out
	}
	got := map[string][]answerMeta{}
	var deltas [][]float64
	for _, c := range []struct {
		proto  string
		client *http.Client
	}{{"HTTP/1.1", http1Client()}, {"HTTP/2.0", h.client}} {
		before := counts()
		for _, tc := range cases {
			m := send(t, c.client, tc.method, url(tc.path), tc.body())
			if m.status != tc.want || m.proto != c.proto {
				t.Errorf("%s over %s: unexpected answer; got %d over %s; want %d", tc.name, c.proto, m.status, m.proto, tc.want)
			}
			got[tc.name] = append(got[tc.name], m)
		}
		after := counts()
		for i := range after {
			after[i] -= before[i]
		}
		deltas = append(deltas, after)
	}
	for _, tc := range cases {
		a, b := got[tc.name][0], got[tc.name][1]
		a.proto, a.alpn, b.proto, b.alpn = "", "", "", ""
		if a != b {
			t.Errorf("%s: unexpected difference between HTTP/1.1 and HTTP/2; got %+v and %+v", tc.name, a, b)
		}
	}
	if fmt.Sprint(deltas[0]) != fmt.Sprint(deltas[1]) {
		t.Errorf("unexpected difference in iamgate_bad_requests_total %v; got HTTP/1.1 %v, HTTP/2 %v", reasons, deltas[0], deltas[1])
	}
	if got := h.protoMetric("iamgate_webhook_requests_total", "h2"); got != float64(len(cases)) {
		t.Errorf("unexpected h2 requests; got %v; want %d", got, len(cases))
	}
}

// TestHeadersTooLargeOverHTTP1: headers over the 8 KiB read buffer get the same 431 and count
// as over HTTP/2 (TestHTTP2MisbehavingClients), before any review.
func TestHeadersTooLargeOverHTTP1(t *testing.T) {
	h := newHarness(t, withTLS(true))
	req, err := http.NewRequest("POST", h.url, strings.NewReader(string(reviewBody(apiVersionV1, h.token(alice)))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Pad", strings.Repeat("a", 9<<10))
	resp, err := http1Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("unexpected status %d; want 431", resp.StatusCode)
	}
	if got := h.metric(`iamgate_bad_requests_total{reason="header_too_large"}`); got != 1 {
		t.Fatalf("unexpected header_too_large count; got %v; want 1", got)
	}
}

// TestHTTP1RefusalReachesAClientStillSending: a client that sends a body over the limit, and
// is still sending it when the server refuses it, gets the 413: the connection lingers, rather
// than reset a client whose writes then fail (Go's client then reports the write error, not
// the answer).
func TestHTTP1RefusalReachesAClientStillSending(t *testing.T) {
	h := newHarness(t, withTLS(true))
	body := bytes.Repeat([]byte(" "), 4<<20) // more than the sockets' buffers hold
	c := http1Client()
	for i := range 5 {
		resp, err := c.Post(h.url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("attempt %d: no answer to an oversized body: %v", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("attempt %d: unexpected status %d; want 413", i+1, resp.StatusCode)
		}
	}
}

// TestHTTP2SlowBodyIsCutOff: a stream whose body does not arrive within the read timeout is
// answered 408, as on HTTP/1.1, and its handler lets go.
func TestHTTP2SlowBodyIsCutOff(t *testing.T) {
	h := newHarness(t, withTLS(true), func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte(`{"apiVersion":`)) }() // then nothing
	m := send(t, h.client, "POST", h.url, pr)
	if m.status != http.StatusRequestTimeout || m.proto != "HTTP/2.0" {
		t.Fatalf("unexpected answer to a body that stalls; got %+v; want 408 over HTTP/2.0", m)
	}
	if got := h.metric(`iamgate_bad_requests_total{reason="bad_body"}`); got != 1 {
		t.Fatalf("unexpected bad_body count; got %v; want 1", got)
	}
}

// TestHTTP2GracefulShutdown: reviews in flight on an HTTP/2 connection at shutdown finish.
func TestHTTP2GracefulShutdown(t *testing.T) {
	h := newHarness(t, withTLS(true))
	if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		tok := h.tokenAt(alice, testStart.Add(-time.Duration(i)*time.Second), testClusterID)
		wg.Go(func() {
			a, err := h.tryPost(reviewBody(apiVersionV1, tok))
			switch {
			case err != nil:
				errs <- err
			case !a.Review.Authenticated:
				errs <- fmt.Errorf("unexpected answer %+v", a)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for h.protoMetric("iamgate_webhook_requests_total", "h2") < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a review in flight at shutdown failed: %s", err)
	}
}

// dialH2 opens a raw HTTP/2 connection to h's webhook listener.
func dialH2(t *testing.T, h *harness) (*testenv.H2Conn, *http2.SettingsFrame) {
	t.Helper()
	addr := strings.TrimPrefix(strings.Split(h.url, "/authenticate")[0], "https://")
	return testenv.DialH2(t, addr, testClientTLS())
}

// reviewBlock encodes a review request's header block, with extra fields.
func reviewBlock(c *testenv.H2Conn, extra ...hpack.HeaderField) []byte {
	return c.HeaderBlock("POST", "/authenticate?timeout=30s", append([]hpack.HeaderField{{Name: "content-type", Value: "application/json"}}, extra...)...)
}

func TestHTTP2MisbehavingClients(t *testing.T) {
	h := newHarness(t, withTLS(true))

	t.Run("more streams than advertised are refused", func(t *testing.T) {
		c, sf := dialH2(t, h)
		if limit, _ := sf.Value(http2.SettingMaxConcurrentStreams); limit != h2MaxStreams {
			t.Fatalf("unexpected SETTINGS_MAX_CONCURRENT_STREAMS %d; want %d", limit, h2MaxStreams)
		}
		// Streams that never send their body: each holds a slot until the read timeout, then
		// its handler answers 408.
		const n = h2MaxStreams + 50
		block := reviewBlock(c)
		for i := range n {
			c.WriteHeaderBlock(uint32(2*i+1), block, false)
		}
		refused := map[uint32]bool{}
		c.ReadUntil(func(f http2.Frame) bool {
			if rst, ok := f.(*http2.RSTStreamFrame); ok {
				refused[rst.StreamID] = true
			}
			return len(refused) == n-h2MaxStreams
		})
		for i := range n {
			id := uint32(2*i + 1)
			if refused[id] != (i >= h2MaxStreams) {
				t.Errorf("stream %d (#%d): unexpected refusal %v", id, i+1, refused[id])
			}
		}
		// Handlers start at the read timeout, in their own goroutines; each counts its request
		// first.
		deadline := time.Now().Add(20 * time.Second)
		for h.protoMetric("iamgate_webhook_requests_total", "h2") < h2MaxStreams && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := h.protoMetric("iamgate_webhook_requests_total", "h2"); got != h2MaxStreams {
			t.Errorf("unexpected handlers started; got %v; want %d", got, h2MaxStreams)
		}
	})

	t.Run("a header block over the limit is refused before any review", func(t *testing.T) {
		before := h.metric(`iamgate_bad_requests_total{reason="header_too_large"}`)
		c, _ := dialH2(t, h)
		var extra []hpack.HeaderField
		for i := range 200 {
			extra = append(extra, hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: strings.Repeat("a", 100)})
		}
		block := reviewBlock(c, extra...)
		c.WriteHeaderBlock(1, block, true)
		var status string
		c.ReadUntil(func(f http2.Frame) bool {
			if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == 1 {
				status = mh.PseudoValue("status")
				return true
			}
			_, goaway := f.(*http2.GoAwayFrame)
			return goaway
		})
		if status != "431" {
			t.Errorf("unexpected status %q for a %d-byte header block; want 431", status, len(block))
		}
		if got := h.metric(`iamgate_bad_requests_total{reason="header_too_large"}`); got != before+1 {
			t.Errorf("unexpected header_too_large count; got %v; want %v", got, before+1)
		}
	})

	t.Run("a flood of CONTINUATION frames closes the connection", func(t *testing.T) {
		c, _ := dialH2(t, h)
		if err := c.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: reviewBlock(c)}); err != nil {
			t.Fatal(err)
		}
		frag := make([]byte, testenv.H2MaxFrame)
		for i := range frag {
			frag[i] = 0x40 // a literal field with a new name, over and over
		}
		for range 1000 {
			if err := c.Framer.WriteContinuation(1, false, frag); err != nil {
				break // the server closed the connection
			}
		}
		if c.ReadUntil(func(f http2.Frame) bool { mh, ok := f.(*http2.MetaHeadersFrame); return ok && mh.StreamID == 1 }) {
			t.Fatalf("unexpected answer to a never-ending header block")
		}
	})

	t.Run("frames that break the protocol close the connection", func(t *testing.T) {
		c, _ := dialH2(t, h)
		// DATA on a stream never opened, then garbage.
		_ = c.Framer.WriteData(7, true, []byte("{}"))
		_, _ = c.Conn.Write(bytes.Repeat([]byte{0xff}, 64))
		// A GOAWAY, or the connection closed: anything but no end.
		c.ReadUntil(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
	})

	t.Run("a body over the window is a flow-control error", func(t *testing.T) {
		c, _ := dialH2(t, h)
		if err := c.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: reviewBlock(c), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte(" "), testenv.H2MaxFrame)
		for range 2 * h2ConnWindow / testenv.H2MaxFrame {
			if err := c.Framer.WriteData(1, false, chunk); err != nil {
				break
			}
		}
		var got string
		c.ReadUntil(func(f http2.Frame) bool {
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				got = f.ErrCode.String()
			case *http2.GoAwayFrame:
				got = f.ErrCode.String()
			case *http2.MetaHeadersFrame:
				got = f.PseudoValue("status")
			default:
				return false
			}
			return true
		})
		t.Logf("DATA past the window: %s", got)
		if got == "200" {
			t.Fatalf("unexpected 200 for a body sent past the flow-control window")
		}
	})

	// The server still serves, and the misbehaving connections left nothing behind.
	if m := send(t, h.client, "POST", h.url, bytes.NewReader(reviewBody(apiVersionV1, h.token(alice)))); m.status != 200 || m.proto != "HTTP/2.0" {
		t.Fatalf("unexpected answer after the misbehaving clients; got %+v", m)
	}
	h.client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for h2Goroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := h2Goroutines(); n > 0 {
		t.Fatalf("unexpected HTTP/2 connection and handler goroutines left after every client left; got %d", n)
	}
	if got := h.protoMetric("iamgate_webhook_open_connections", "h2"); got != 0 {
		t.Fatalf("unexpected open h2 connections after every client left; got %v", got)
	}
}

// h2Goroutines counts the goroutines serving an HTTP/2 connection or running the HTTP/2
// adapter.
func h2Goroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "h2server.(*conn).serve(") || strings.Contains(g, "h2server.(*conn).run(") {
			count++
		}
	}
	return count
}

// FuzzHTTP2Conn: whatever a client sends after the HTTP/2 preface, the server neither panics
// (the HTTP/2 server recovers a handler's panic and logs it: the log is checked) nor holds on
// to the connection once the client has gone.
func FuzzHTTP2Conn(f *testing.F) {
	logs := &testenv.LogBuffer{}
	h := newHarness(f, withTLS(true), func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	frames := testenv.H2Frames
	review := func(path, method string, body []byte) func(*http2.Framer, *hpack.Encoder, *bytes.Buffer) {
		return func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
			for _, kv := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "x"}, {":path", path}} {
				_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: body == nil})
			if body != nil {
				_ = fr.WriteData(1, true, body)
			}
		}
	}
	f.Add(frames(review("/authenticate?timeout=30s", "POST", reviewBody(apiVersionV1, "k8s-aws-v1.aHR0cHM6Ly9ldmlsLmV4YW1wbGUuY29tLw"))))
	f.Add(frames(review("/authenticate", "POST", []byte("{"))))
	f.Add(frames(review("/authenticate", "GET", nil)))
	f.Add(frames(review("/other", "POST", []byte("{}"))))
	f.Add(frames(func(fr *http2.Framer, _ *hpack.Encoder, _ *bytes.Buffer) {
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteWindowUpdate(0, 1<<30)
		_ = fr.WriteRSTStream(1, http2.ErrCodeCancel)
		_ = fr.WriteContinuation(3, true, []byte{0x82})
	}))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
	// After a connection error the server sends GOAWAY and closes the connection a second
	// later, whatever the client does: each input waits for its server in the background,
	// up to 64 at a time, and an input whose server outlives it by 20 s fails the next one.
	slots := make(chan struct{}, 64)
	var held atomic.Pointer[string]
	f.Fuzz(func(t *testing.T, data []byte) {
		if in := held.Load(); in != nil {
			t.Fatalf("the server held on to a connection its client had closed, 20 s after input %q", *in)
		}
		input := string(data)
		slots <- struct{}{}
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			_ = h.srv.serveH2Conn(server)
			close(done)
		}()
		go func() {
			defer func() { <-slots }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				held.CompareAndSwap(nil, &input)
			}
		}()
		go func() {
			// Stop writing at the server's GOAWAY: it reads no more.
			fr := http2.NewFramer(nil, client)
			for {
				f, err := fr.ReadFrame()
				if _, goaway := f.(*http2.GoAwayFrame); err != nil || goaway {
					client.Close()
					_, _ = io.Copy(io.Discard, client)
					return
				}
			}
		}()
		_ = client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := client.Write([]byte(http2.ClientPreface)); err == nil {
			_, _ = client.Write(data)
		}
		client.Close()
		if strings.Contains(logs.String(), "panic") {
			t.Fatalf("the server panicked:\n%s", logs.String())
		}
	})
}
