// Package freeport picks loopback addresses for servers that tests and benchmarks start as
// separate processes, which must be told their address before they bind it.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the first port Addr considers: above the well-known and most registered ones.
const lowest = 10000

// Addr returns a loopback address whose port was free a moment ago.
//
// The port is drawn below the kernel's ephemeral range. A port from "127.0.0.1:0" comes from
// that range, and between closing it and the server binding it any outgoing connection on the
// machine may take it as its local port; a test that opens thousands (kube-apiserver, load
// tests) makes that likely enough to have failed CI. Below the range only another listener
// can take it.
func Addr() (string, error) {
	high := ephemeralLow()
	for range 100 {
		port := lowest + rand.IntN(high-lowest)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			return "", fmt.Errorf("cannot release port %d: %w", port, err)
		}
		return addr, nil
	}
	return "", fmt.Errorf("no free loopback port among 100 tries in [%d, %d)", lowest, high)
}

// ephemeralLow is the first port of the kernel's ephemeral range: Linux's setting, or the
// lowest default of the common kernels where it cannot be read.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= lowest+1000 || low > fallback {
		return fallback
	}
	return low
}
