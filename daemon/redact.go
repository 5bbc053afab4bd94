package daemon

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// redactQuoted replaces each Go-quoted string in msg (fasthttp formats client bytes with %q)
// by "<n bytes>", except a host:port (the connection's addresses). An unterminated quote
// redacts the rest of msg.
func redactQuoted(msg string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i])
		lit, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			fmt.Fprintf(&b, `"<%d bytes>"`, len(msg)-i-1)
			return b.String()
		}
		s, _ := strconv.Unquote(lit) // QuotedPrefix found a valid literal
		if _, err := netip.ParseAddrPort(s); err == nil {
			b.WriteString(lit)
		} else {
			fmt.Fprintf(&b, `"<%d bytes>"`, len(s))
		}
		msg = msg[i+len(lit):]
	}
}
