package loadtest

import (
	"fmt"
	"net"
	"net/url"
)

// CheckLoopback returns an error unless addr ("host:port") names a loopback IP literal.
// Host names are refused too: a name can resolve anywhere.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("cannot use address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("cannot use address %q: load tests target loopback IP addresses only (127.0.0.1, ::1)", addr)
	}
	return nil
}

// CheckLoopbackURL returns an error unless rawURL is an http or https URL whose host is a
// loopback IP literal with an explicit port.
func CheckLoopbackURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("cannot parse URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("cannot use URL %q: want http or https", rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("cannot use URL %q: no user info allowed", rawURL)
	}
	return CheckLoopback(u.Host)
}
