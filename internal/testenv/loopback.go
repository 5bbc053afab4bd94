package testenv

import (
	"testing"

	"github.com/iamgate/iamgate/internal/freeport"
)

// FreeAddr returns a loopback address with a port that was free a moment ago, for a server a
// test starts as a separate process.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		tb.Fatal(err)
	}
	return addr
}
