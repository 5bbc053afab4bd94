package h2server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// maxFrame is the largest frame a client may send: the protocol's minimum.
	maxFrame = 16 << 10
	// defaultWindow is every flow-control window's size before SETTINGS and WINDOW_UPDATE.
	defaultWindow = 65535
	// maxWindow is the largest a flow-control window may grow.
	maxWindow = 1<<31 - 1
	// lingerTime is how long a connection that sent its last GOAWAY reads (and drops) what
	// the client still sends before it closes, so that the client reads the GOAWAY rather than
	// a reset; lingerBytes bounds what it reads meanwhile.
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// conn is one HTTP/2 connection. Its goroutine (serve) reads and handles every frame; the
// handlers' goroutines write their answers. Lock order: mu is never held while taking wmu.
type conn struct {
	srv      *Server
	cfg      *Config
	nc       net.Conn
	ctx      context.Context // every request's parent: done when the connection ends
	cancel   context.CancelFunc
	rfr      *http2.Framer // serve's only
	handlers sync.WaitGroup
	// streamWindow is the flow-control window each request gets: its whole body, and one byte
	// past the limit that tells an oversized body. It is never replenished.
	streamWindow int32

	// The writing side, under wmu.
	wmu     sync.Mutex
	writers atomic.Int32 // writers holding or waiting for wmu: the last one out flushes
	bw      *bufio.Writer
	wfr     *http2.Framer
	hbuf    bytes.Buffer
	henc    *hpack.Encoder
	werr    error // set: the connection takes no more writes

	// The streams and flow control, under mu.
	mu               sync.Mutex
	streams          map[uint32]*stream // open: from HEADERS to both sides' end, or a reset
	inFlight         uint32             // requests from HEADERS to their handler's return
	lastID           uint32             // the highest stream the client opened
	goneAway         bool               // GOAWAY decided: no new streams
	goAwaySent       bool               // and written: the last answer out ends the connection
	closing          bool               // serve is returning: no new handlers
	sendWindow       int64              // the client's connection window for our DATA
	peerStreamWindow int64              // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame     uint32
	windowGrew       chan struct{} // closed, and replaced, when a send window grows
	recvHeld         int32         // body bytes received and not yet credited back
	recvUnsent       int32         // credited bytes not yet sent in a WINDOW_UPDATE
	idle             *time.Timer
}

// stream is one request. The reader fills it until it is dispatched to its handler.
type stream struct {
	c          *conn
	id         uint32
	req        Request
	cancel     context.CancelFunc // the handler's context; nil before dispatch
	declared   int64              // content-length, or -1
	received   int32              // flow-controlled bytes received
	held       int32              // of which not yet credited back to the connection window
	sendWindow int64
	timer      *time.Timer // the read timeout, until dispatch
	dispatched bool        // handed to its handler
	remoteDone bool        // the client ended the stream
	reset      bool        // reset by either side, or done: its answer is not written
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:              s,
		cfg:              &s.cfg,
		nc:               nc,
		streamWindow:     int32(min(s.cfg.MaxBody+1, maxWindow)),
		streams:          map[uint32]*stream{},
		sendWindow:       defaultWindow,
		peerStreamWindow: defaultWindow,
		peerMaxFrame:     maxFrame,
		windowGrew:       make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.rfr = http2.NewFramer(nil, nc)
	c.rfr.SetMaxReadFrameSize(maxFrame)
	c.rfr.MaxHeaderListSize = s.cfg.MaxHeaderBytes
	c.rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.rfr.ReadMetaHeaders.SetMaxStringLength(int(s.cfg.MaxHeaderBytes))
	c.rfr.SetReuseFrames()
	c.bw = bufio.NewWriterSize(deadlineWriter{nc, s.cfg.WriteTimeout}, 8<<10)
	c.wfr = http2.NewFramer(c.bw, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// deadlineWriter sets the write timeout before each write to the connection.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.nc.Write(p)
}

// connError ends the connection with a GOAWAY carrying its code.
type connError struct {
	code http2.ErrCode
	why  string
}

func (e connError) Error() string { return fmt.Sprintf("connection error %s: %s", e.code, e.why) }

func (c *conn) debug(msg string, args ...any) {
	c.cfg.Log.Debug("http2: "+msg, append(args, "remote", c.nc.RemoteAddr().String())...)
}

// serve reads the connection's frames until it ends, then waits for its handlers.
func (c *conn) serve(draining bool) {
	defer c.finish()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.nc, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		c.debug("no client preface", "error", err)
		return
	}
	err := c.write(func() error {
		err := c.wfr.WriteSettings(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.cfg.MaxStreams},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(c.streamWindow)},
			http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrame},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.cfg.MaxHeaderBytes},
		)
		if err == nil && c.cfg.ConnWindow > defaultWindow {
			err = c.wfr.WriteWindowUpdate(0, uint32(c.cfg.ConnWindow-defaultWindow))
		}
		return err
	})
	if err != nil {
		return
	}
	// The client's SETTINGS come first, within the read timeout.
	f, err := c.rfr.ReadFrame()
	if err == nil {
		if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
			err = connError{http2.ErrCodeProtocol, "the first frame is not SETTINGS"}
		}
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.idle = time.AfterFunc(c.cfg.IdleTimeout, c.idleTimeout)
	c.mu.Unlock()
	if draining {
		c.drain()
	}
	for {
		if err == nil {
			err = c.process(f)
		}
		if err != nil {
			var se http2.StreamError
			switch {
			case errors.As(err, &se):
				c.streamError(se.StreamID, se.Code, true)
			case errors.Is(err, http2.ErrFrameTooLarge):
				c.fail(http2.ErrCodeFrameSize, err)
				return
			default:
				var ce http2.ConnectionError
				var own connError
				switch {
				case errors.As(err, &own):
					c.fail(own.code, err)
				case errors.As(err, &ce):
					c.fail(http2.ErrCode(ce), err)
				default: // the connection ended or failed
					c.debug("connection ended", "error", err)
				}
				return
			}
		}
		f, err = c.rfr.ReadFrame()
	}
}

// finish ends the connection once serve is done reading: every handler's context is done, and
// it waits for them.
func (c *conn) finish() {
	c.mu.Lock()
	c.closing = true
	if c.idle != nil {
		c.idle.Stop()
	}
	for _, st := range c.streams {
		if st.timer != nil {
			st.timer.Stop()
		}
	}
	c.mu.Unlock()
	c.cancel()
	_ = c.nc.Close()
	c.handlers.Wait()
}

// fail ends the connection for a protocol error: GOAWAY with code, then the linger.
func (c *conn) fail(code http2.ErrCode, err error) {
	c.debug("protocol error", "error", err)
	c.mu.Lock()
	c.goneAway = true
	last := c.lastID
	c.mu.Unlock()
	_ = c.write(func() error { return c.wfr.WriteGoAway(last, code, nil) })
	c.endWrites()
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.nc, lingerBytes)
}

// drain sends GOAWAY: the streams the client opened are answered, new ones are refused, and
// the connection ends when the last answer is out.
func (c *conn) drain() {
	c.mu.Lock()
	if c.goneAway {
		c.mu.Unlock()
		return
	}
	c.goneAway = true
	last := c.lastID
	c.mu.Unlock()
	_ = c.write(func() error { return c.wfr.WriteGoAway(last, http2.ErrCodeNo, nil) })
	c.mu.Lock()
	c.goAwaySent = true
	idle := c.inFlight == 0
	c.mu.Unlock()
	if idle {
		c.closeAfterGoAway()
	}
}

func (c *conn) idleTimeout() {
	c.mu.Lock()
	idle := c.inFlight == 0 && !c.closing
	c.mu.Unlock()
	if idle {
		c.debug("idle timeout")
		c.drain()
	}
}

// closeAfterGoAway ends the connection after its last GOAWAY and answer: no more writes, and
// serve reads what the client still sends for lingerTime.
func (c *conn) closeAfterGoAway() {
	c.endWrites()
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
}

var errWritesEnded = errors.New("h2server: the connection takes no more writes")

// endWrites flushes what is written and closes the connection's sending side where it can
// (TLS: close_notify), so that the client sees the end after the last frame.
func (c *conn) endWrites() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	c.werr = errWritesEnded
	if c.bw.Flush() != nil {
		return
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// write runs fn, which writes frames, under the write lock; the last writer out flushes, so
// that answers finished together go out in one write.
func (c *conn) write(fn func() error) error {
	c.writers.Add(1)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.werr
	if err == nil {
		err = fn()
	}
	if c.writers.Add(-1) == 0 && err == nil {
		err = c.bw.Flush()
	}
	if err != nil && c.werr == nil {
		c.werr = err
		_ = c.nc.Close() // serve's read fails, and the connection ends
	}
	return err
}

// reply is what is left to do after a stream's state changed under mu: a RST_STREAM, a
// connection WINDOW_UPDATE, ending a connection whose last stream is done after GOAWAY.
type reply struct {
	rstID    uint32
	rstCode  http2.ErrCode
	credit   uint32
	closeNow bool
}

func (c *conn) send(r reply) {
	if r.closeNow {
		defer c.closeAfterGoAway()
	}
	if r.rstID == 0 && r.credit == 0 {
		return
	}
	_ = c.write(func() error {
		if r.rstID != 0 {
			if err := c.wfr.WriteRSTStream(r.rstID, r.rstCode); err != nil {
				return err
			}
		}
		if r.credit != 0 {
			return c.wfr.WriteWindowUpdate(0, r.credit)
		}
		return nil
	})
}

func (c *conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			// A failed write closes the connection, and the next read ends serve.
			_ = c.write(func() error { return c.wfr.WritePing(true, f.Data) })
		}
	case *http2.GoAwayFrame:
		c.drain() // the client opens no more streams: answer the open ones, then close
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE from a client"}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	}
	return nil // other frames (unknown types) are ignored
}

// idleStream tells a stream the client has not opened yet (or never may: even IDs are the
// server's).
func (c *conn) idleStream(id uint32) bool { return id > c.lastID || id%2 == 0 }

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		done := st.remoteDone
		c.mu.Unlock()
		// Trailers: they must end the stream; their fields are dropped.
		switch {
		case done:
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		case !f.StreamEnded():
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return c.onBodyEnd(st)
	}
	switch {
	case id%2 == 0:
		c.mu.Unlock()
		return connError{http2.ErrCodeProtocol, "HEADERS on an even stream"}
	case id <= c.lastID:
		c.mu.Unlock()
		return connError{http2.ErrCodeStreamClosed, "HEADERS on a closed stream"}
	}
	c.lastID = id
	if c.goneAway || c.closing || c.inFlight >= c.cfg.MaxStreams {
		c.mu.Unlock()
		c.send(reply{rstID: id, rstCode: http2.ErrCodeRefusedStream})
		return nil
	}
	st := &stream{c: c, id: id, declared: -1, sendWindow: c.peerStreamWindow}
	st.req.st = st
	c.streams[id] = st
	c.inFlight++
	if c.inFlight == 1 && c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()

	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if f.Truncated {
		return c.dispatch(st, ErrHeaderTooLarge, f.StreamEnded())
	}
	var scheme string
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			st.req.Method = hf.Value
		case ":path":
			st.req.Path, _, _ = strings.Cut(hf.Value, "?")
		case ":scheme":
			scheme = hf.Value
		case "content-length":
			n, err := strconv.ParseUint(hf.Value, 10, 63)
			if err != nil || st.declared >= 0 {
				return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
			}
			st.declared = int64(n)
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		case "te":
			if hf.Value != "trailers" {
				return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
			}
		}
	}
	if st.req.Method == "" || st.req.Path == "" || scheme == "" || st.req.Method == "CONNECT" {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	switch {
	case st.declared > int64(c.cfg.MaxBody):
		return c.dispatch(st, ErrBodyTooLarge, f.StreamEnded())
	case f.StreamEnded():
		return c.onBodyEnd(st)
	}
	if st.declared > 0 {
		st.req.Body = make([]byte, 0, st.declared)
	}
	c.mu.Lock()
	if !st.reset {
		st.timer = time.AfterFunc(c.cfg.ReadTimeout, func() { c.bodyTimeout(st) })
	}
	c.mu.Unlock()
	return nil
}

// dispatch hands st to its handler, with err when it could not be read whole.
func (c *conn) dispatch(st *stream, err error, remoteDone bool) error {
	c.mu.Lock()
	st.remoteDone = st.remoteDone || remoteDone
	r := c.dispatchLocked(st, err)
	c.mu.Unlock()
	c.send(r)
	return nil
}

// dispatchLocked starts st's handler, and returns the connection window to credit back.
func (c *conn) dispatchLocked(st *stream, err error) reply {
	if st.dispatched || st.reset {
		return reply{}
	}
	if c.closing {
		return c.dropLocked(st)
	}
	st.dispatched = true
	if st.timer != nil {
		st.timer.Stop()
	}
	if err != nil {
		st.req.Err, st.req.Body = err, nil
	}
	st.req.ctx, st.cancel = context.WithCancel(c.ctx)
	c.handlers.Add(1)
	c.srv.start(st)
	credit := c.creditLocked(st.held)
	st.held = 0
	return reply{credit: credit}
}

func (c *conn) bodyTimeout(st *stream) {
	c.mu.Lock()
	r := c.dispatchLocked(st, ErrBodyTimeout)
	c.mu.Unlock()
	c.send(r)
}

// onBodyEnd: the client ended st's request.
func (c *conn) onBodyEnd(st *stream) error {
	c.mu.Lock()
	if !st.dispatched && st.declared >= 0 && int64(len(st.req.Body)) != st.declared {
		c.mu.Unlock()
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	st.remoteDone = true
	r := c.dispatchLocked(st, nil)
	c.mu.Unlock()
	c.send(r)
	return nil
}

// creditLocked credits n received bytes back to the connection window, and returns the
// WINDOW_UPDATE to send, if any: credit goes out once half the window has built up.
func (c *conn) creditLocked(n int32) uint32 {
	c.recvHeld -= n
	c.recvUnsent += n
	if c.recvUnsent < c.cfg.ConnWindow/2 {
		return 0
	}
	u := c.recvUnsent
	c.recvUnsent = 0
	return uint32(u)
}

// dropLocked ends a stream that never reached its handler.
func (c *conn) dropLocked(st *stream) reply {
	st.reset = true
	delete(c.streams, st.id)
	if st.timer != nil {
		st.timer.Stop()
	}
	r := reply{credit: c.creditLocked(st.held), closeNow: c.endRequestLocked()}
	st.held = 0
	return r
}

// endRequestLocked counts a request's end; the connection's last one arms the idle timer, or
// reports that the connection, which sent GOAWAY, should end now.
func (c *conn) endRequestLocked() (closeNow bool) {
	c.inFlight--
	if c.inFlight > 0 || c.closing {
		return false
	}
	if c.goneAway {
		return c.goAwaySent
	}
	if c.idle != nil {
		c.idle.Reset(c.cfg.IdleTimeout)
	}
	return false
}

func (c *conn) onData(f *http2.DataFrame) error {
	id, n := f.StreamID, int32(f.Length)
	c.mu.Lock()
	if c.recvHeld+c.recvUnsent+n > c.cfg.ConnWindow {
		c.mu.Unlock()
		return connError{http2.ErrCodeFlowControl, "DATA past the connection window"}
	}
	c.recvHeld += n
	st := c.streams[id]
	if st == nil || st.remoteDone {
		idle := st == nil && c.idleStream(id)
		r := reply{credit: c.creditLocked(n)}
		c.mu.Unlock()
		if idle {
			return connError{http2.ErrCodeProtocol, "DATA on an idle stream"}
		}
		c.send(r)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	st.received += n
	if st.received > c.streamWindow {
		r := reply{credit: c.creditLocked(n)}
		c.mu.Unlock()
		c.send(r)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	if st.dispatched {
		// Answered already (too large, too slow): what still comes is dropped.
		st.remoteDone = f.StreamEnded()
		r := reply{credit: c.creditLocked(n)}
		c.mu.Unlock()
		c.send(r)
		return nil
	}
	st.held += n
	data := f.Data()
	switch {
	case len(st.req.Body)+len(data) > c.cfg.MaxBody:
		st.remoteDone = f.StreamEnded()
		r := c.dispatchLocked(st, ErrBodyTooLarge)
		c.mu.Unlock()
		c.send(r)
		return nil
	case st.declared >= 0 && int64(len(st.req.Body)+len(data)) > st.declared:
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	st.req.Body = append(st.req.Body, data...)
	c.mu.Unlock()
	if f.StreamEnded() {
		return c.onBodyEnd(st)
	}
	return nil
}

func (c *conn) onReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	if c.idleStream(f.StreamID) {
		c.mu.Unlock()
		return connError{http2.ErrCodeProtocol, "RST_STREAM on an idle stream"}
	}
	r := c.resetLocked(f.StreamID)
	c.mu.Unlock()
	c.send(r)
	return nil
}

// resetLocked ends stream id, if open: its handler's context is done and its answer is not
// written. It returns the connection window to credit back.
func (c *conn) resetLocked(id uint32) reply {
	st := c.streams[id]
	if st == nil {
		return reply{}
	}
	if !st.dispatched {
		return c.dropLocked(st)
	}
	st.reset = true
	delete(c.streams, id)
	st.cancel()
	return reply{}
}

// streamError resets stream id for an error of the client's.
func (c *conn) streamError(id uint32, code http2.ErrCode, fromReader bool) {
	c.mu.Lock()
	if fromReader && id%2 == 1 && id > c.lastID {
		c.lastID = id // a HEADERS the framer refused still opened (and closed) its stream
	}
	r := c.resetLocked(id)
	c.mu.Unlock()
	r.rstID, r.rstCode = id, code
	c.send(r)
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		if c.sendWindow += inc; c.sendWindow > maxWindow {
			return connError{http2.ErrCodeFlowControl, "connection window past 2^31-1"}
		}
	} else if st := c.streams[f.StreamID]; st != nil {
		if st.sendWindow += inc; st.sendWindow > maxWindow {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
		}
	} else if c.idleStream(f.StreamID) {
		return connError{http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
	}
	c.windowGrewLocked()
	return nil
}

func (c *conn) windowGrewLocked() {
	close(c.windowGrew)
	c.windowGrew = make(chan struct{})
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var tableSize uint32 = 4096
	c.mu.Lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerStreamWindow
			c.peerStreamWindow = int64(s.Val)
			for _, st := range c.streams {
				if st.sendWindow += delta; st.sendWindow > maxWindow {
					return connError{http2.ErrCodeFlowControl, "stream window past 2^31-1"}
				}
			}
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		case http2.SettingHeaderTableSize:
			tableSize = s.Val
		}
		return nil
	})
	c.windowGrewLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_ = c.write(func() error {
		c.henc.SetMaxDynamicTableSizeLimit(tableSize)
		return c.wfr.WriteSettingsAck()
	})
	return nil
}

// run runs st's handler, then ends the stream.
func (c *conn) run(st *stream) {
	defer c.handlers.Done()
	defer func() {
		if v := recover(); v != nil {
			c.cfg.Log.Error("the HTTP/2 handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			st.req.answered = false
		}
		c.endStream(st)
	}()
	c.cfg.Handler(&st.req)
}

// endStream ends st after its handler returned: a stream it did not answer is reset
// (INTERNAL_ERROR); one answered before the client sent all of the request is reset too
// (NO_ERROR: the client stops sending).
func (c *conn) endStream(st *stream) {
	c.mu.Lock()
	var r reply
	if !st.reset {
		st.reset = true
		delete(c.streams, st.id)
		switch {
		case !st.req.answered:
			r.rstID, r.rstCode = st.id, http2.ErrCodeInternal
		case !st.remoteDone:
			r.rstID, r.rstCode = st.id, http2.ErrCodeNo
		}
	}
	r.closeNow = c.endRequestLocked()
	c.mu.Unlock()
	st.cancel()
	c.send(r)
}

var errStreamGone = errors.New("h2server: the stream was reset or the connection closed")

// answer writes st's answer: HEADERS, then DATA as far as the client's windows allow, in one
// write; the rest of the body waits for WINDOW_UPDATE, within the write timeout.
func (c *conn) answer(st *stream, status int, header []hpack.HeaderField, body []byte) error {
	c.mu.Lock()
	if st.reset || c.closing {
		c.mu.Unlock()
		return errStreamGone
	}
	n, maxData := c.takeWindowLocked(st, len(body))
	c.mu.Unlock()
	err := c.write(func() error {
		err := c.writeHeaders(st.id, status, header, len(body), maxData)
		if err != nil || len(body) == 0 {
			return err
		}
		return c.writeData(st.id, body[:n], n == len(body), maxData)
	})
	body = body[n:]
	if err != nil || len(body) == 0 {
		return err
	}
	deadline := time.NewTimer(c.cfg.WriteTimeout)
	defer deadline.Stop()
	for len(body) > 0 {
		c.mu.Lock()
		if st.reset || c.closing {
			c.mu.Unlock()
			return errStreamGone
		}
		n, maxData = c.takeWindowLocked(st, len(body))
		grew := c.windowGrew
		c.mu.Unlock()
		if n > 0 {
			if err := c.write(func() error { return c.writeData(st.id, body[:n], n == len(body), maxData) }); err != nil {
				return err
			}
			body = body[n:]
			continue
		}
		select {
		case <-grew:
		case <-st.req.ctx.Done():
			return errStreamGone
		case <-deadline.C:
			c.mu.Lock()
			r := c.resetLocked(st.id)
			c.mu.Unlock()
			r.rstID, r.rstCode = st.id, http2.ErrCodeCancel
			c.send(r)
			return errors.New("h2server: the client's flow-control window stayed closed")
		}
	}
	return nil
}

// takeWindowLocked takes up to want bytes of the stream's and the connection's send windows,
// and returns them with the client's largest frame.
func (c *conn) takeWindowLocked(st *stream, want int) (int, uint32) {
	n := int(max(0, min(int64(want), c.sendWindow, st.sendWindow)))
	c.sendWindow -= int64(n)
	st.sendWindow -= int64(n)
	return n, c.peerMaxFrame
}

func (c *conn) writeHeaders(id uint32, status int, header []hpack.HeaderField, bodyLen int, maxFrame uint32) error {
	c.hbuf.Reset()
	_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusCode(status)})
	for _, f := range header {
		_ = c.henc.WriteField(f)
	}
	_ = c.henc.WriteField(hpack.HeaderField{Name: "server", Value: c.cfg.Name})
	_ = c.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(bodyLen)})
	_ = c.henc.WriteField(hpack.HeaderField{Name: "date", Value: httpDate(time.Now())})
	block := c.hbuf.Bytes()
	first := block[:min(len(block), int(maxFrame))]
	block = block[len(first):]
	err := c.wfr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: first, EndStream: bodyLen == 0, EndHeaders: len(block) == 0,
	})
	for err == nil && len(block) > 0 {
		frag := block[:min(len(block), int(maxFrame))]
		block = block[len(frag):]
		err = c.wfr.WriteContinuation(id, len(block) == 0, frag)
	}
	return err
}

// writeData writes p as DATA frames of at most maxFrame bytes; end ends the stream.
func (c *conn) writeData(id uint32, p []byte, end bool, maxFrame uint32) error {
	if len(p) == 0 && !end {
		return nil // no window yet
	}
	for {
		chunk := p[:min(len(p), int(maxFrame))]
		p = p[len(chunk):]
		if err := c.wfr.WriteData(id, end && len(p) == 0, chunk); err != nil || len(p) == 0 {
			return err
		}
	}
}

func statusCode(status int) string {
	switch status {
	case 200:
		return "200"
	case 400:
		return "400"
	case 404:
		return "404"
	}
	return strconv.Itoa(status)
}

// httpDate formats the date header, once a second.
func httpDate(now time.Time) string {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &date{sec: sec, text: now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")}
	lastDate.Store(d)
	return d.text
}

type date struct {
	sec  int64
	text string
}

var lastDate atomic.Pointer[date]
