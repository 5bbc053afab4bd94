package daemon

import (
	"net"
	"net/http"

	"golang.org/x/net/http2/hpack"

	"github.com/iamgate/iamgate/internal/h2server"
)

// HTTP/2 on the webhook listener (see docs/design.md: Listeners). kube-apiserver's webhook
// client is Go's: over TLS it offers h2 by ALPN and, when the server takes it, multiplexes every
// review over one connection; over HTTP/1.1 it keeps a small idle pool and opens (and
// handshakes) a new connection whenever more reviews are in flight than the pool holds.
// fasthttp serves HTTP/1.1 only, so connections that negotiate h2 are handed, after the
// handshake, to internal/h2server, a small HTTP/2 server for whole-body request-answer
// exchanges, whose handler is a thin adapter to the same review function as fasthttp's.

// h2ALPN is HTTP/2's ALPN protocol name.
const h2ALPN = "h2"

const (
	// h2MaxStreams bounds the requests in flight on one HTTP/2 connection; the client is told
	// in SETTINGS, and a stream beyond it is refused. Go's client then opens another
	// connection.
	h2MaxStreams = 250
	// h2ConnWindow bounds the unfinished request bodies one connection may have buffered in
	// the server. Each stream's window is the largest review body, plus a byte that tells
	// a body over it.
	h2ConnWindow = 1 << 20
	// maxHeaderBytes bounds a request's header block, as the HTTP/1.1 listener's 8 KiB read
	// buffer does.
	maxHeaderBytes = 8 << 10
)

func newH2Server(s *Server) *h2server.Server {
	return h2server.New(h2server.Config{
		Handler:        s.handleHTTP2,
		Name:           "iamgate",
		MaxStreams:     h2MaxStreams,
		MaxBody:        maxReviewBody,
		MaxHeaderBytes: maxHeaderBytes,
		ConnWindow:     h2ConnWindow,
		ReadTimeout:    s.cfg.ReadTimeout,
		WriteTimeout:   s.cfg.WriteTimeout,
		IdleTimeout:    s.cfg.IdleTimeout,
		Log:            s.log,
	})
}

// serveH2Conn is fasthttp's NextProto handler for h2: it serves one connection until it
// closes. fasthttp counts it as open until then, so its shutdown waits for it.
func (s *Server) serveH2Conn(c net.Conn) error {
	s.h2.ServeConn(c)
	return nil
}

// handleHTTP2 is the HTTP/2 adapter of review; it answers as fasthttp would.
func (s *Server) handleHTTP2(r *h2server.Request) {
	s.metrics.webhookRequests[protoH2].Inc()
	st := s.states.Get().(*reviewState)
	defer s.states.Put(st)
	var rep reply
	switch r.Err {
	case nil:
		rep = s.review(r.Context(), r.Path, r.Method == http.MethodPost, r.Body, st)
	case h2server.ErrBodyTooLarge:
		rep = s.refuse(&refusedTooLarge)
	case h2server.ErrBodyTimeout:
		rep = s.refuse(&refusedSlowBody)
	default:
		rep = s.refuse(&refusedHeaderTooLarge)
	}
	f := rep.refusal
	if f == nil {
		_ = r.Answer(rep.status, jsonHeader, rep.body)
		return
	}
	header := textHeader
	if f.allow != "" {
		header = append(header[:len(header):len(header)], hpack.HeaderField{Name: "allow", Value: f.allow})
	}
	_ = r.Answer(rep.status, header, []byte(f.text))
}

var (
	jsonHeader = []hpack.HeaderField{{Name: "content-type", Value: jsonContentType}}
	textHeader = []hpack.HeaderField{{Name: "content-type", Value: textContentType}}
)
