package h2server

import (
	"context"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// The reader's side: what each frame the client sends does to the streams.

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
	if c.inFlight == 1 {
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
	c.idle.Reset(c.cfg.IdleTimeout)
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
func (c *conn) streamError(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	if id%2 == 1 && id > c.lastID {
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

// onSettings applies the client's settings and acknowledges them in one write: a handler that
// waits for the new window takes it only after the ACK is written, so the client reads the ACK
// before the DATA it allows (h2spec, and a client that counts its window from the ACK, expect
// that order).
func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var err error
	_ = c.write(func() error {
		var tableSize uint32 = 4096
		c.mu.Lock()
		err = f.ForeachSetting(func(s http2.Setting) error {
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
			return nil // the connection error's GOAWAY follows
		}
		c.henc.SetMaxDynamicTableSizeLimit(tableSize)
		return c.wfr.WriteSettingsAck()
	})
	return err
}
