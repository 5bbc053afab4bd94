package daemon

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"
)

// webhookListener hands fasthttp the webhook's connections, wrapped in TLS when configured,
// and counts them by the protocol they speak (iamgate_webhook_connections_total and
// iamgate_webhook_open_connections). A TLS connection's protocol is known once its handshake
// is done: fasthttp runs the handshake through the connection's Handshake method before it
// picks the HTTP/1.1 loop or the HTTP/2 server, so that is where it is counted.
type webhookListener struct {
	net.Listener
	tls *tls.Config // nil: plain HTTP
	m   *metrics
}

func (l webhookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls == nil {
		pc := &plainConn{Conn: c}
		pc.count.m = l.m
		pc.count.opened(protoHTTP1)
		return pc, nil
	}
	tc := &tlsConn{Conn: tls.Server(c, l.tls)}
	tc.count.m = l.m
	return tc, nil
}

// connCount counts one connection from the moment its protocol is known to its first Close
// (fasthttp and the HTTP/2 server may both close it). Its state is connNew, connDone, or
// connOpen plus the protocol.
type connCount struct {
	m     *metrics
	state atomic.Int32
}

const (
	connNew int32 = iota
	connDone
	connOpen // + protocol
)

func (c *connCount) opened(p protocol) {
	if c.state.CompareAndSwap(connNew, connOpen+int32(p)) {
		c.m.webhookConns[p].Inc()
		c.m.webhookOpenConns[p].Inc()
	}
}

func (c *connCount) failed() {
	if c.state.CompareAndSwap(connNew, connDone) {
		c.m.webhookTLSHandshakeErrors.Inc()
	}
}

// closed counts the close; true the first time.
func (c *connCount) closed() bool {
	s := c.state.Swap(connDone)
	if s >= connOpen {
		c.m.webhookOpenConns[protocol(s-connOpen)].Dec()
	}
	return s != connDone
}

// lingerFlag makes a connection's close linger (lingerClose): for one whose last request
// the server refused before reading it whole.
type lingerFlag struct{ atomic.Bool }

func (l *lingerFlag) lingerOnClose() { l.Store(true) }

// lingerTime is how long a connection lingers before it closes (lingerClose), as net/http's
// server does for the same reason.
const lingerTime = 500 * time.Millisecond

// lingerClose closes c after a refusal sent before the request was read whole (a body or
// header over the limit). Closed at once, with the client's data unread, the connection would
// reset the client, whose next write then fails: Go's client reports that write error and
// never reads the refusal waiting in its buffer. So c stops sending (TLS: close_notify; TCP:
// FIN) and closes lingerTime later; meanwhile the client's writes block, and it reads the
// answer.
func lingerClose(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.AfterFunc(lingerTime, func() { _ = c.Close() })
	return nil
}

// plainConn is a plain-HTTP connection: HTTP/1.1 from the start.
type plainConn struct {
	net.Conn
	count connCount
	lingerFlag
}

func (c *plainConn) Close() error {
	if c.count.closed() && c.Load() {
		return lingerClose(c.Conn)
	}
	return c.Conn.Close()
}

// tlsConn is a TLS connection; fasthttp and the HTTP/2 server see it as one through the
// Handshake and ConnectionState methods, as they would a *tls.Conn.
type tlsConn struct {
	*tls.Conn
	count connCount
	lingerFlag
}

func (c *tlsConn) Handshake() error {
	if err := c.Conn.Handshake(); err != nil {
		c.count.failed()
		return err
	}
	p := protoHTTP1
	if c.Conn.ConnectionState().NegotiatedProtocol == h2ALPN {
		p = protoH2
	}
	c.count.opened(p)
	return nil
}

func (c *tlsConn) Close() error {
	if c.count.closed() && c.Load() {
		return lingerClose(c.Conn)
	}
	return c.Conn.Close()
}
