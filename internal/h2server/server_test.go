package h2server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/summerwind/h2spec"
	h2specconfig "github.com/summerwind/h2spec/config"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/iamgate/iamgate/internal/pki"
	"github.com/iamgate/iamgate/internal/testenv"
)

// testServer serves h2 on a loopback TLS listener, as the daemon's webhook listener does.
type testServer struct {
	srv      *Server
	addr     string
	logs     *testenv.LogBuffer
	roots    *x509.CertPool
	accepted atomic.Int32
	served   sync.WaitGroup
}

func testConfig() Config {
	return Config{
		Name:           "test",
		MaxStreams:     100,
		MaxBody:        1000,
		MaxHeaderBytes: 8 << 10,
		ConnWindow:     1 << 20,
		ReadTimeout:    5 * time.Second,
		WriteTimeout:   5 * time.Second,
		IdleTimeout:    time.Minute,
	}
}

// echo answers 200 with "METHOD PATH BODY", or by the request's error: 413, 408, 431.
func echo(r *Request) {
	switch r.Err {
	case nil:
		_ = r.Answer(200, []hpack.HeaderField{{Name: "content-type", Value: "text/plain"}},
			fmt.Appendf(nil, "%s %s %s", r.Method, r.Path, r.Body))
	case ErrBodyTooLarge:
		_ = r.Answer(413, nil, nil)
	case ErrBodyTimeout:
		_ = r.Answer(408, nil, nil)
	case ErrHeaderTooLarge:
		_ = r.Answer(431, nil, nil)
	}
}

func startServer(t testing.TB, h Handler, opts ...func(*Config)) *testServer {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: "h2server test CA"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.IssueServer(pkix.Name{CommonName: "127.0.0.1"}, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Handler = h
	for _, o := range opts {
		o(&cfg)
	}
	ts := &testServer{logs: &testenv.LogBuffer{}, roots: x509.NewCertPool()}
	ts.roots.AddCert(ca.Cert)
	cfg.Log = slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.srv = New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{kp.TLSCertificate()}, NextProtos: []string{"h2"}}
	ts.served.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ts.accepted.Add(1)
			ts.served.Go(func() {
				tc := tls.Server(c, tlsCfg)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil {
					tc.Close()
					return
				}
				_ = tc.SetDeadline(time.Time{})
				ts.srv.ServeConn(tc)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		ts.srv.Drain()
		done := make(chan struct{})
		go func() { ts.served.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("connections still served 30 s after the test drained the server")
		}
		if strings.Contains(ts.logs.String(), "panicked") && !t.Failed() && !strings.Contains(t.Name(), "Panic") {
			t.Errorf("unexpected panic:\n%s", ts.logs.String())
		}
	})
	return ts
}

// client is Go's own HTTP/2 client (golang.org/x/net/http2's Transport) for the server.
func (ts *testServer) client(t testing.TB) *http.Client {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.roots, NextProtos: []string{"h2"}}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (ts *testServer) url(path string) string { return "https://" + ts.addr + path }

type result struct {
	status int
	header http.Header
	body   string
	proto  string
}

func post(t testing.TB, c *http.Client, url string, body io.Reader) (result, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b), resp.Proto}, err
}

func TestAnswersGoClientOnOneConnection(t *testing.T) {
	ts := startServer(t, echo)
	c := ts.client(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 { // Go's client assumes 100 streams until the server's SETTINGS
		wg.Go(func() {
			body := strings.Repeat("x", i)
			r, err := post(t, c, ts.url(fmt.Sprintf("/echo/%d?q=1", i)), strings.NewReader(body))
			want := fmt.Sprintf("POST /echo/%d %s", i, body)
			switch {
			case err != nil:
				errs <- err
			case r.status != 200 || r.body != want || r.proto != "HTTP/2.0":
				errs <- fmt.Errorf("request %d: unexpected answer %d %q over %s; want 200 %q", i, r.status, r.body, r.proto, want)
			case r.header.Get("Content-Length") != strconv.Itoa(len(want)) || r.header.Get("Server") != "test" ||
				r.header.Get("Content-Type") != "text/plain" || r.header.Get("Date") == "":
				errs <- fmt.Errorf("request %d: unexpected header %v", i, r.header)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("unexpected connections; got %d; want 1", n)
	}
}

func TestBodyLimits(t *testing.T) {
	ts := startServer(t, echo, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	c := ts.client(t)
	cases := []struct {
		name string
		body func() io.Reader
		want int
	}{
		{"at the limit, streamed", func() io.Reader { return testenv.Lengthless{Reader: strings.NewReader(strings.Repeat("a", 1000))} }, 200},
		{"over the limit, streamed", func() io.Reader { return testenv.Lengthless{Reader: strings.NewReader(strings.Repeat("a", 5000))} }, 413},
		{"over the limit, declared", func() io.Reader { return strings.NewReader(strings.Repeat("a", 1001)) }, 413},
		{"none", func() io.Reader { return nil }, 200},
		{"stalled", func() io.Reader {
			pr, pw := io.Pipe()
			go func() { _, _ = pw.Write([]byte("abc")) }() // then nothing
			t.Cleanup(func() { pw.Close() })
			return pr
		}, 408},
	}
	for _, tc := range cases {
		r, err := post(t, c, ts.url("/"), tc.body())
		if err != nil || r.status != tc.want {
			t.Errorf("%s: unexpected answer %d (%v); want %d", tc.name, r.status, err, tc.want)
		}
	}
	// The connection still serves after the answers that came before the whole body.
	if r, err := post(t, c, ts.url("/after"), strings.NewReader("b")); err != nil || r.body != "POST /after b" {
		t.Errorf("unexpected answer after the refusals: %+v, %v", r, err)
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("unexpected connections; got %d; want 1", n)
	}
}

// rawConn is a raw HTTP/2 client (testenv.H2Conn) with a strict reader.
type rawConn struct {
	*testenv.H2Conn
	t testing.TB
}

func (ts *testServer) dialRaw(t testing.TB, settings ...http2.Setting) (*rawConn, *http2.SettingsFrame) {
	t.Helper()
	c, sf := testenv.DialH2(t, ts.addr, &tls.Config{RootCAs: ts.roots}, settings...)
	return &rawConn{c, t}, sf
}

// next reads frames until one that want accepts, skipping SETTINGS, PING and WINDOW_UPDATE;
// it fails the test on anything else, or when the connection ends first.
func (c *rawConn) next(want func(http2.Frame) bool) http2.Frame {
	c.t.Helper()
	var got http2.Frame
	ok := c.ReadUntil(func(f http2.Frame) bool {
		if want(f) {
			got = f
			return true
		}
		switch f.(type) {
		case *http2.SettingsFrame, *http2.PingFrame, *http2.WindowUpdateFrame:
			return false
		}
		c.t.Fatalf("unexpected frame %v", f)
		return true
	})
	if !ok {
		c.t.Fatalf("unexpected end of the connection")
	}
	return got
}

func isReset(id uint32, code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		rst, ok := f.(*http2.RSTStreamFrame)
		return ok && rst.StreamID == id && rst.ErrCode == code
	}
}

// readAnswer reads one stream's whole answer: its status and body.
func (c *rawConn) readAnswer(id uint32) (string, []byte) {
	c.t.Helper()
	var status string
	var body []byte
	for {
		f := c.next(func(f http2.Frame) bool { return f.Header().StreamID == id })
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			status = f.PseudoValue("status")
			if f.StreamEnded() {
				return status, body
			}
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				return status, body
			}
		default:
			c.t.Fatalf("unexpected frame %v", f)
		}
	}
}

func TestAnswerWaitsForFlowControlWindow(t *testing.T) {
	answer := bytes.Repeat([]byte("0123456789"), 4000) // 40,000 bytes: 3 frames at 16 KiB
	ts := startServer(t, func(r *Request) { _ = r.Answer(200, nil, answer) })
	c, _ := ts.dialRaw(t, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	c.Request(1, "GET", "/")
	c.next(func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	var got []byte
	for len(got) < 100 {
		d := c.next(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
		got = append(got, d.Data()...)
	}
	if len(got) != 100 {
		t.Fatalf("unexpected DATA past a 100-byte window; got %d bytes", len(got))
	}
	if err := c.Framer.WriteWindowUpdate(1, uint32(len(answer))); err != nil {
		t.Fatal(err)
	}
	for {
		d := c.next(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
		if len(d.Data()) > 16<<10 {
			t.Fatalf("unexpected DATA frame of %d bytes; the client's largest is 16 KiB", len(d.Data()))
		}
		got = append(got, d.Data()...)
		if d.StreamEnded() {
			break
		}
	}
	if !bytes.Equal(got, answer) {
		t.Fatalf("unexpected answer of %d bytes; want %d", len(got), len(answer))
	}
}

// TestSettingsAckComesBeforeTheDataItAllows: a client that opens the stream window with
// SETTINGS reads the SETTINGS ACK before the DATA the new window lets through, as h2spec (and
// a client that counts its window from the ACK) expects. The order depends on scheduling, so
// the test tries many times on one connection.
func TestSettingsAckComesBeforeTheDataItAllows(t *testing.T) {
	answer := []byte("answer")
	ts := startServer(t, func(r *Request) { _ = r.Answer(200, nil, answer) })
	c, _ := ts.dialRaw(t)
	closed := http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}
	open := http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(len(answer))}
	isAck := func(f http2.Frame) bool { sf, ok := f.(*http2.SettingsFrame); return ok && sf.IsAck() }
	for id := uint32(1); id < 400; id += 2 {
		if err := c.Framer.WriteSettings(closed); err != nil {
			t.Fatal(err)
		}
		c.next(isAck)
		c.Request(id, "GET", "/")
		c.next(func(f http2.Frame) bool { return f.Header().StreamID == id && f.Header().Type == http2.FrameHeaders })
		if err := c.Framer.WriteSettings(open); err != nil {
			t.Fatal(err)
		}
		f := c.next(func(f http2.Frame) bool { return isAck(f) || f.Header().StreamID == id })
		if !isAck(f) {
			t.Fatalf("stream %d: unexpected %v before the SETTINGS ACK", id, f)
		}
		d := c.next(func(f http2.Frame) bool { return f.Header().StreamID == id }).(*http2.DataFrame)
		if !bytes.Equal(d.Data(), answer) || !d.StreamEnded() {
			t.Fatalf("stream %d: unexpected DATA %q", id, d.Data())
		}
	}
}

func TestWindowThatStaysClosedResetsTheStream(t *testing.T) {
	ts := startServer(t, func(r *Request) { _ = r.Answer(200, nil, []byte("never sent")) },
		func(c *Config) { c.WriteTimeout = 300 * time.Millisecond })
	c, _ := ts.dialRaw(t, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	c.Request(1, "GET", "/")
	c.next(func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	c.next(isReset(1, http2.ErrCodeCancel))
	// The connection still serves a client that opens the window.
	if err := c.Framer.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000}); err != nil {
		t.Fatal(err)
	}
	c.Request(3, "GET", "/")
	if status, body := c.readAnswer(3); status != "200" || string(body) != "never sent" {
		t.Fatalf("unexpected answer %s %q", status, body)
	}
}

func TestHandlerPanicResetsTheStream(t *testing.T) {
	ts := startServer(t, func(r *Request) {
		if r.Path == "/panic" {
			panic("boom")
		}
		if r.Path == "/silent" {
			return // no answer
		}
		echo(r)
	})
	c, _ := ts.dialRaw(t)
	c.Request(1, "GET", "/panic")
	c.next(isReset(1, http2.ErrCodeInternal))
	c.Request(3, "GET", "/silent")
	c.next(isReset(3, http2.ErrCodeInternal))
	c.Request(5, "GET", "/ok")
	if status, body := c.readAnswer(5); status != "200" || string(body) != "GET /ok " {
		t.Fatalf("unexpected answer after a panic: %s %q", status, body)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `level=ERROR msg="the HTTP/2 handler panicked" panic=boom`) {
		t.Fatalf("unexpected log:\n%s", logs)
	}
}

// TestResetStreamsHoldTheirSlot: a stream the client resets keeps its slot until its handler
// returns, so resetting streams (the "rapid reset" attack) cannot run more handlers than
// MaxStreams; the handler's context is done.
func TestResetStreamsHoldTheirSlot(t *testing.T) {
	release := make(chan struct{})
	var cancelled atomic.Int32
	ts := startServer(t, func(r *Request) {
		if r.Path == "/hold" {
			<-r.Context().Done()
			cancelled.Add(1)
			<-release
		}
		echo(r)
	}, func(c *Config) { c.MaxStreams = 4 })
	c, _ := ts.dialRaw(t)
	for id := uint32(1); id <= 7; id += 2 {
		c.Request(id, "GET", "/hold")
		if err := c.Framer.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	c.Request(9, "GET", "/other")
	c.next(isReset(9, http2.ErrCodeRefusedStream))
	deadline := time.Now().Add(10 * time.Second)
	for cancelled.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := cancelled.Load(); n != 4 {
		t.Fatalf("unexpected handlers whose context was done; got %d; want 4", n)
	}
	close(release)
	for id := uint32(11); ; id += 2 { // the slots free up as the handlers return
		c.Request(id, "GET", "/other")
		f := c.next(func(f http2.Frame) bool { return f.Header().StreamID == id })
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			if s := mh.PseudoValue("status"); s != "200" {
				t.Fatalf("unexpected status %s", s)
			}
			break
		}
		if !isReset(id, http2.ErrCodeRefusedStream)(f) || time.Now().After(deadline) {
			t.Fatalf("unexpected frame %v", f)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHeaderListOverTheLimit(t *testing.T) {
	ts := startServer(t, echo)
	c, sf := ts.dialRaw(t)
	if v, _ := sf.Value(http2.SettingMaxHeaderListSize); v != 8<<10 {
		t.Fatalf("unexpected SETTINGS_MAX_HEADER_LIST_SIZE %d", v)
	}
	var big []hpack.HeaderField
	for i := range 100 {
		big = append(big, hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: strings.Repeat("a", 100)})
	}
	c.Request(1, "GET", "/", big...)
	if status, _ := c.readAnswer(1); status != "431" {
		t.Fatalf("unexpected status %s; want 431", status)
	}
}

func TestDrain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	ts := startServer(t, func(r *Request) {
		if r.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		echo(r)
	})
	c := ts.client(t)
	results := make(chan error, 3)
	for range 3 {
		go func() {
			r, err := post(t, c, ts.url("/slow"), strings.NewReader("x"))
			if err == nil && r.status != 200 {
				err = fmt.Errorf("unexpected status %d", r.status)
			}
			results <- err
		}()
	}
	for range 3 {
		<-started
	}
	ts.srv.Drain()
	// A new connection gets GOAWAY at once, and its stream is not served.
	raw, _ := ts.dialRaw(t)
	raw.Request(1, "GET", "/")
	raw.next(func(f http2.Frame) bool { g, ok := f.(*http2.GoAwayFrame); return ok && g.LastStreamID == 0 })
	close(release)
	for range 3 {
		if err := <-results; err != nil {
			t.Errorf("a request in flight at Drain failed: %v", err)
		}
	}
	// Each connection closes once its last answer is out.
	raw.Conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for ts.open() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ts.open(); n != 0 {
		t.Fatalf("unexpected connections still served after Drain; got %d", n)
	}
}

// open counts the connections the server still serves.
func (ts *testServer) open() int {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	return len(ts.srv.conns)
}

func TestIdleConnectionCloses(t *testing.T) {
	ts := startServer(t, echo, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c, _ := ts.dialRaw(t)
	c.Request(1, "GET", "/")
	c.readAnswer(1)
	start := time.Now()
	g := c.next(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
		t.Fatalf("unexpected GOAWAY %v", g)
	}
	if _, err := c.Framer.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("unexpected read after GOAWAY: %v; want EOF", err)
	}
	t.Logf("GOAWAY %v after the last answer", time.Since(start))
}

func TestProtocolErrorsEndTheConnection(t *testing.T) {
	ts := startServer(t, echo)
	cases := []struct {
		name  string
		write func(c *rawConn)
		code  http2.ErrCode
	}{
		{"DATA on an idle stream", func(c *rawConn) { _ = c.Framer.WriteData(7, true, []byte("x")) }, http2.ErrCodeProtocol},
		{"an even stream", func(c *rawConn) { c.Request(2, "GET", "/") }, http2.ErrCodeProtocol},
		{"a stream ID going back", func(c *rawConn) { c.Request(5, "GET", "/"); c.readAnswer(5); c.Request(3, "GET", "/") }, http2.ErrCodeStreamClosed},
		{"PUSH_PROMISE", func(c *rawConn) {
			_ = c.Framer.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: []byte{0x82}, EndHeaders: true})
		}, http2.ErrCodeProtocol},
		{"a window update past 2^31-1", func(c *rawConn) { _ = c.Framer.WriteWindowUpdate(0, 1<<31-1) }, http2.ErrCodeFlowControl},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := ts.dialRaw(t)
			tc.write(c)
			g := c.next(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
			if g.ErrCode != tc.code {
				t.Fatalf("unexpected GOAWAY %v; want %v", g.ErrCode, tc.code)
			}
		})
	}
}

// TestStreamErrors: a request that breaks the protocol has its stream reset; the connection
// goes on.
func TestStreamErrors(t *testing.T) {
	ts := startServer(t, echo)
	c, _ := ts.dialRaw(t)
	c.Request(1, "POST", "/")
	if err := c.Framer.WriteData(1, false, make([]byte, 2000)); err != nil { // the window is 1,001
		t.Fatal(err)
	}
	c.next(isReset(1, http2.ErrCodeFlowControl))
	c.Request(3, "POST", "/", hpack.HeaderField{Name: "content-length", Value: "5"})
	if err := c.Framer.WriteData(3, true, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	c.next(isReset(3, http2.ErrCodeProtocol))
	c.Request(5, "GET", "/", hpack.HeaderField{Name: "connection", Value: "close"})
	c.next(isReset(5, http2.ErrCodeProtocol))
	c.Request(7, "POST", "/")
	if err := c.Framer.WriteData(7, true, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if status, body := c.readAnswer(7); status != "200" || string(body) != "POST / abc" {
		t.Fatalf("unexpected answer after the stream errors: %s %q", status, body)
	}
}

// FuzzConn: whatever a client sends after the preface, the server neither panics nor holds on
// to the connection once the client has gone.
func FuzzConn(f *testing.F) {
	frames := testenv.H2Frames
	f.Add(frames(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":path", "/"}, {"content-length", "2"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
		_ = fr.WriteData(1, true, []byte("{}"))
	}))
	f.Add(frames(func(fr *http2.Framer, _ *hpack.Encoder, _ *bytes.Buffer) {
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteWindowUpdate(0, 1<<30)
		_ = fr.WriteRSTStream(1, http2.ErrCodeCancel)
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	}))
	cfg := testConfig()
	cfg.ReadTimeout, cfg.WriteTimeout = time.Second, time.Second
	cfg.Handler = echo
	logs := &testenv.LogBuffer{}
	cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))
	srv := New(cfg)
	f.Fuzz(func(t *testing.T, data []byte) {
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			srv.ServeConn(server)
			close(done)
		}()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.Write([]byte(http2.ClientPreface)); err == nil {
			_, _ = client.Write(data)
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server held on to a connection its client had closed")
		}
		if logs.String() != "" {
			t.Fatalf("unexpected error log:\n%s", logs.String())
		}
	})
}

// TestConformance runs h2spec, the HTTP/2 conformance suite (RFC 7540 and RFC 7541, 145
// cases), against the server with the webhook's limits (h2spec sends a 16 KiB DATA frame,
// which a stream window below that would refuse).
func TestConformance(t *testing.T) {
	ts := startServer(t, echo, func(c *Config) { c.MaxBody = 64 << 10 })
	host, port, _ := net.SplitHostPort(ts.addr)
	p, _ := strconv.Atoi(port)
	cfg := &h2specconfig.Config{
		Host: host, Port: p, Path: "/", TLS: true, Insecure: true,
		Timeout: 5 * time.Second, MaxHeaderLen: 4000,
	}
	ok, err := h2spec.Run(cfg)
	if err != nil || !ok {
		t.Fatalf("h2spec failed (%v): its report is above", err)
	}
}
