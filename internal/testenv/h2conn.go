package testenv

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2Conn is an HTTP/2 client that writes whatever frames a test wants, including the ones a
// real client never sends.
type H2Conn struct {
	tb     testing.TB
	Conn   *tls.Conn
	Framer *http2.Framer
	hbuf   bytes.Buffer
	henc   *hpack.Encoder
}

// H2MaxFrame is the largest frame a server must take: the protocol's minimum.
const H2MaxFrame = 16 << 10

// DialH2 opens a TLS connection to addr that negotiates h2, writes the client preface and
// SETTINGS with settings, reads the server's SETTINGS and acknowledges them. Every read and
// write fails after 30 s, so that a server that hangs fails the test.
func DialH2(tb testing.TB, addr string, cfg *tls.Config, settings ...http2.Setting) (*H2Conn, *http2.SettingsFrame) {
	tb.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		tb.Fatalf("unexpected protocol %q; want h2", p)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &H2Conn{tb: tb, Conn: conn, Framer: http2.NewFramer(conn, conn)}
	c.Framer.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		tb.Fatal(err)
	}
	if err := c.Framer.WriteSettings(settings...); err != nil {
		tb.Fatal(err)
	}
	f, err := c.Framer.ReadFrame()
	if err != nil {
		tb.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		tb.Fatalf("unexpected first frame %v; want SETTINGS", f)
	}
	if err := c.Framer.WriteSettingsAck(); err != nil {
		tb.Fatal(err)
	}
	return c, sf
}

// HeaderBlock encodes a request's header block: its pseudo-header fields, then extra.
func (c *H2Conn) HeaderBlock(method, path string, extra ...hpack.HeaderField) []byte {
	c.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: method}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "127.0.0.1"}, {Name: ":path", Value: path},
	}, extra...) {
		_ = c.henc.WriteField(f)
	}
	return bytes.Clone(c.hbuf.Bytes())
}

// WriteHeaderBlock writes a header block as HEADERS and CONTINUATION frames of at most
// H2MaxFrame bytes.
func (c *H2Conn) WriteHeaderBlock(id uint32, block []byte, endStream bool) {
	c.tb.Helper()
	first := block[:min(len(block), H2MaxFrame)]
	block = block[len(first):]
	err := c.Framer.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		frag := block[:min(len(block), H2MaxFrame)]
		block = block[len(frag):]
		err = c.Framer.WriteContinuation(id, len(block) == 0, frag)
	}
	if err != nil {
		c.tb.Fatal(err)
	}
}

// Request writes a request's HEADERS: a GET ends the stream; another method's body follows.
func (c *H2Conn) Request(id uint32, method, path string, extra ...hpack.HeaderField) {
	c.tb.Helper()
	c.WriteHeaderBlock(id, c.HeaderBlock(method, path, extra...), method == "GET")
}

// ReadUntil reads frames until done says so; false when the connection ended first. A read
// that times out fails the test: the server neither answered nor closed the connection.
func (c *H2Conn) ReadUntil(done func(http2.Frame) bool) bool {
	c.tb.Helper()
	for {
		f, err := c.Framer.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.tb.Fatalf("the server neither answered nor closed the connection: %s", err)
			}
			return false
		}
		if done(f) {
			return true
		}
	}
}

// H2Frames returns the frames write writes after an empty SETTINGS: a fuzz seed for what a
// client sends after its preface.
func H2Frames(write func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer)) []byte {
	var out, hb bytes.Buffer
	fr, enc := http2.NewFramer(&out, nil), hpack.NewEncoder(&hb)
	_ = fr.WriteSettings()
	write(fr, enc, &hb)
	return out.Bytes()
}

// Lengthless hides a reader's length, so that an HTTP client streams the body: chunked over
// HTTP/1.1, DATA frames without content-length over HTTP/2.
type Lengthless struct{ io.Reader }
