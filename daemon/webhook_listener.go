package daemon

import (
	"crypto/tls"
	"net"
	"sync/atomic"
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

func (c *connCount) closed() {
	if s := c.state.Swap(connDone); s >= connOpen {
		c.m.webhookOpenConns[protocol(s-connOpen)].Dec()
	}
}

// plainConn is a plain-HTTP connection: HTTP/1.1 from the start.
type plainConn struct {
	net.Conn
	count connCount
}

func (c *plainConn) Close() error {
	c.count.closed()
	return c.Conn.Close()
}

// tlsConn is a TLS connection; fasthttp and the HTTP/2 server see it as one through the
// Handshake and ConnectionState methods, as they would a *tls.Conn.
type tlsConn struct {
	*tls.Conn
	count connCount
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
	c.count.closed()
	return c.Conn.Close()
}
