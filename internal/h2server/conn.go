package h2server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
	idle             *time.Timer   // set before the first frame is handled: nil only in finish, after a failed preface
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
	reset      bool        // reset by either side, or closed: out of streams, nothing more is written
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:              s,
		cfg:              &s.cfg,
		nc:               nc,
		streamWindow:     int32(s.cfg.MaxBody + 1), // New: MaxBody < maxWindow
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
				c.streamError(se.StreamID, se.Code)
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
