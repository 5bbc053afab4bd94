package daemon

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 on the webhook listener (see docs/design.md: Listeners). kube-apiserver's webhook
// client is Go's: over TLS it offers h2 by ALPN and, when the server takes it, multiplexes every
// review over one connection; over HTTP/1.1 it keeps a small idle pool and opens (and
// handshakes) a new connection whenever more reviews are in flight than the pool holds.
// fasthttp serves HTTP/1.1 only, so connections that negotiate h2 are handed, after the
// handshake, to golang.org/x/net/http2's server, whose handler is a thin adapter to the same
// review function as fasthttp's.

// h2ALPN is HTTP/2's ALPN protocol name.
const h2ALPN = "h2"

const (
	// h2MaxStreams bounds the requests in flight on one HTTP/2 connection; the client is told
	// in SETTINGS, and a stream beyond it is refused. Go's client then opens another
	// connection.
	h2MaxStreams = 250
	// h2MaxReadFrame is the largest frame a client may send: the protocol's minimum.
	h2MaxReadFrame = 16 << 10
	// h2ConnWindow bounds the request bodies one connection may have buffered in the server;
	// h2StreamWindow lets a whole review body arrive without waiting for a window update.
	h2ConnWindow   = 1 << 20
	h2StreamWindow = maxReviewBody
	// maxHeaderBytes bounds a request's header block, as the HTTP/1.1 listener's 8 KiB read
	// buffer does.
	maxHeaderBytes = 8 << 10
)

// h2Server serves the webhook's HTTP/2 connections.
type h2Server struct {
	srv  *http2.Server
	base *http.Server // timeouts, header limit, error log; never serves a listener itself
	opts *http2.ServeConnOpts
}

func newH2Server(s *Server) (*h2Server, error) {
	h := &h2Server{
		srv: &http2.Server{
			MaxConcurrentStreams:         h2MaxStreams,
			MaxReadFrameSize:             h2MaxReadFrame,
			MaxUploadBufferPerConnection: h2ConnWindow,
			MaxUploadBufferPerStream:     h2StreamWindow,
			IdleTimeout:                  s.cfg.IdleTimeout,
			// A client that stops reading its answers cannot hold the connection longer.
			WriteByteTimeout: s.cfg.WriteTimeout,
		},
		base: &http.Server{
			// Per stream: reading the request body, and writing the answer. The HTTP/2
			// server counts the write time from the stream's start, so it covers the
			// longest wait for STS too, or a review waiting in the STS queue would be reset.
			ReadTimeout:    s.cfg.ReadTimeout,
			WriteTimeout:   s.cfg.WriteTimeout + s.cfg.STS.QueueWait + s.cfg.STS.Timeout,
			IdleTimeout:    s.cfg.IdleTimeout,
			MaxHeaderBytes: maxHeaderBytes,
			ErrorLog:       log.New(h2Log{s.log}, "", 0),
		},
	}
	// ConfigureServer lets base.Shutdown send GOAWAY to every connection ServeConn serves.
	if err := http2.ConfigureServer(h.base, h.srv); err != nil {
		return nil, err
	}
	h.opts = &http2.ServeConnOpts{BaseConfig: h.base, Handler: http.HandlerFunc(s.handleHTTP2)}
	return h, nil
}

// h2Log routes the HTTP/2 server's messages to slog: a handler panic it recovered at Error
// (a bug: fasthttp would have crashed), the rest at Debug, as fasthttp's (per-connection
// errors, which may quote client bytes).
type h2Log struct{ log *slog.Logger }

func (l h2Log) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.HasPrefix(msg, "http2: panic serving") {
		l.log.Error("the HTTP/2 handler panicked", "message", msg)
	} else {
		l.log.Debug("http2", "message", msg)
	}
	return len(p), nil
}

// serveH2Conn is fasthttp's NextProto handler for h2: it serves one connection until it
// closes. fasthttp counts it as open until then, so its shutdown waits for it.
func (s *Server) serveH2Conn(c net.Conn) error {
	s.h2.srv.ServeConn(c, s.h2.opts)
	return nil
}

// goawayUntil sends GOAWAY to every HTTP/2 connection now and every 100 ms until done is
// closed: streams in flight finish, no new ones start. The later rounds catch connections
// whose handshake was in flight when draining began.
func (h *h2Server) goawayUntil(done <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		_ = h.base.Shutdown(context.Background()) // it tracks no connection: returns at once
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// handleHTTP2 is the HTTP/2 adapter of review: it reads the body under the HTTP/1.1 listener's
// limit and writes the reply as fasthttp would.
func (s *Server) handleHTTP2(w http.ResponseWriter, r *http.Request) {
	s.metrics.webhookRequests[protoH2].Inc()
	st := s.states.Get().(*reviewState)
	defer s.states.Put(st)
	var rep reply
	if body, f := readBody(r, st); f != nil {
		rep = s.refuse(f)
	} else {
		rep = s.review(r.Context(), r.URL.Path, r.Method == http.MethodPost, body, st)
	}
	// The values are shared, never modified: the HTTP/2 server copies the header map when
	// the handler writes the header.
	h := w.Header()
	h["Server"] = serverHeader
	if f := rep.refusal; f != nil {
		if f.allow != "" {
			h["Allow"] = []string{f.allow}
		}
		h["Content-Type"] = textContentTypeHeader
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, f.text)
		return
	}
	h["Content-Type"] = jsonContentTypeHeader
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

var (
	serverHeader          = []string{"iamgate"}
	jsonContentTypeHeader = []string{jsonContentType}
	textContentTypeHeader = []string{textContentType}
)

// readBody reads r's body into st.body, at most maxReviewBody bytes: a larger body is refused
// as fasthttp refuses it (413), before any of it is parsed; a body that does not arrive within
// the read timeout is refused with 408, a broken one with 400.
func readBody(r *http.Request, st *reviewState) ([]byte, *refusal) {
	if r.ContentLength > maxReviewBody {
		return nil, &refusedTooLarge
	}
	buf := st.body[:0]
	for {
		if len(buf) == cap(buf) {
			// Room for one byte past the limit at most, which tells an oversized body.
			buf = slices.Grow(buf, min(max(cap(buf), 4<<10), maxReviewBody+1-len(buf)))
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		st.body = buf
		if len(buf) > maxReviewBody {
			return nil, &refusedTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var netErr net.Error
			if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
				return nil, &refusedSlowBody
			}
			return nil, &refusedBadBody
		}
	}
}
