package testenv

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback address with a port that was free a moment ago, for a server a
// test starts as a separate process.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
