package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	high := ephemeralLow()
	for range 20 {
		addr, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		if host != "127.0.0.1" || p < lowest || p >= high {
			t.Fatalf("unexpected address; got %s; want 127.0.0.1 and a port in [%d, %d)", addr, lowest, high)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("unexpected: the port Addr gave is not free: %v", err)
		}
		ln.Close()
	}
}
