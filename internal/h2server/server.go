// Package h2server serves HTTP/2 connections whose requests are small, bounded exchanges: a
// whole request body in, one answer out, as a webhook's. It does less than a general HTTP/2
// server, and so costs less per request: one goroutine reads a connection's frames, each
// complete request runs its handler in a goroutine of its own, and the handler writes its
// whole answer (HEADERS and DATA) itself, under the connection's write lock, usually in one
// write. A general server (golang.org/x/net/http2) passes each frame of an answer to the
// connection's own goroutine and waits for it, and flushes from yet another goroutine; for a
// few-hundred-byte answer that machinery costs more than the answer.
//
// golang.org/x/net/http2's Framer and hpack read and write the frames and header blocks,
// with their limits (frame size, header list size, the CONTINUATION flood). What this package
// adds is the connection's state: streams, flow control, limits and timeouts, shutdown.
//
// Not served: server push, priorities (ignored, as RFC 9113 allows), CONNECT, request
// trailers' contents (accepted and dropped), answers larger than the client's flow-control
// windows allow at once (they wait for WINDOW_UPDATE, within the write timeout).
package h2server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
)

// Errors a Request carries when it could not be read whole; the handler answers them.
var (
	ErrBodyTooLarge   = errors.New("request body too large")
	ErrBodyTimeout    = errors.New("request body not received within the read timeout")
	ErrHeaderTooLarge = errors.New("request header list too large")
)

// Handler answers one request: it calls r.Answer once before it returns. A handler that
// returns without answering has its stream reset.
type Handler func(r *Request)

// Request is one HTTP/2 request, read whole.
type Request struct {
	Method string
	Path   string // :path without its query
	Body   []byte // valid until the handler returns
	// Err, when set, says the request could not be read whole (ErrBodyTooLarge,
	// ErrBodyTimeout, ErrHeaderTooLarge); Body is then empty.
	Err error

	ctx      context.Context
	st       *stream
	answered bool
}

// Context is done when the client resets the stream, the connection ends or the server stops.
func (r *Request) Context() context.Context { return r.ctx }

// Answer writes the answer: status, header fields (lower-case names; content-length and date
// are added) and body. It returns when the answer is written, or could not be.
func (r *Request) Answer(status int, header []hpack.HeaderField, body []byte) error {
	if r.answered {
		return errors.New("h2server: answered twice")
	}
	r.answered = true
	return r.st.c.answer(r.st, status, header, body)
}

// Config sets a Server's limits. Every field must be set.
type Config struct {
	Handler Handler
	// Name is the server header's value.
	Name string
	// MaxStreams bounds the requests in flight on one connection, from their first frame to
	// their handler's return (streams the client reset included, so that resetting does not
	// free a slot while the handler still runs). Beyond it a stream is refused
	// (REFUSED_STREAM, which Go's client retries on another connection).
	MaxStreams uint32
	// MaxBody bounds a request body; a larger one is handed over as ErrBodyTooLarge.
	MaxBody int
	// MaxHeaderBytes bounds a request's header list (RFC 9113's count: names, values and 32
	// bytes per field); a larger one is handed over as ErrHeaderTooLarge.
	MaxHeaderBytes uint32
	// ConnWindow bounds the bytes of unfinished request bodies one connection holds; at least
	// 65,535, the protocol's initial window.
	ConnWindow int32
	// ReadTimeout bounds the client preface, and each request from its HEADERS to its last
	// DATA (then the request is handed over as ErrBodyTimeout).
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the connection, and an answer's wait for the client's
	// flow-control window.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection with no request in flight for that long.
	IdleTimeout time.Duration
	// Log gets connection errors at Debug (fixed texts and error codes: a stream error, whose
	// text may quote a header name the client sent, is answered and not logged) and handler
	// panics at Error.
	Log *slog.Logger
}

// Server serves HTTP/2 connections with one Config.
type Server struct {
	cfg Config

	mu       sync.Mutex
	conns    map[*conn]struct{}
	draining bool

	// work hands a request to an idle worker goroutine.
	work chan *stream
}

// workerIdle is how long a worker goroutine waits for another request before it exits.
const workerIdle = 10 * time.Second

// start runs st's handler on an idle worker, or a new one. Workers outlive their request:
// a review's call chain (TLS, the STS client) grows a goroutine's stack to several times its
// initial size, and a new goroutine per request would pay for that growth every time (about
// 6 % of the daemon's CPU with a goroutine per request, in the production-path benchmark).
func (s *Server) start(st *stream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

func (s *Server) worker(st *stream) {
	idle := time.NewTimer(workerIdle)
	for {
		st.c.run(st)
		idle.Reset(workerIdle)
		select {
		case st = <-s.work:
		case <-idle.C:
			return
		}
	}
}

// New returns a Server for cfg. It panics on a Config with a field unset: a zero timeout or
// limit would refuse every request.
func New(cfg Config) *Server {
	if cfg.Handler == nil || cfg.Log == nil || cfg.MaxStreams == 0 || cfg.MaxBody <= 0 || cfg.MaxBody >= maxWindow ||
		cfg.MaxHeaderBytes == 0 || cfg.ConnWindow < defaultWindow ||
		cfg.ReadTimeout <= 0 || cfg.WriteTimeout <= 0 || cfg.IdleTimeout <= 0 {
		panic(fmt.Sprintf("h2server: incomplete Config %+v", cfg))
	}
	return &Server{cfg: cfg, conns: map[*conn]struct{}{}, work: make(chan *stream)}
}

// ServeConn serves nc, whose client has chosen HTTP/2 (by ALPN, after the TLS handshake) and
// has yet to send its preface. It returns when the connection is closed and every handler of
// its requests has returned.
func (s *Server) ServeConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	draining := s.draining
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve(draining)
}

// Drain sends GOAWAY to every connection, now and as they come: the requests they have sent
// are answered, no new one is taken, and each connection closes once its last answer is out.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		go c.drain() // a client that reads nothing holds its GOAWAY write up to the write timeout
	}
}
