package h2server

import (
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The handlers' side: running them, and writing their answers.

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
	if n == len(body) {
		c.closeLocked(st)
	}
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
		if n == len(body) {
			c.closeLocked(st)
		}
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

// closeLocked closes st before its last frame goes out, when the client has ended its side:
// the client may open its next stream, or send frames for this one, as soon as it reads that
// frame, and they must find st closed.
func (c *conn) closeLocked(st *stream) {
	if st.remoteDone {
		st.reset = true
		delete(c.streams, st.id)
	}
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

// deadlineWriter sets the write timeout before each write to the connection.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.nc.Write(p)
}
