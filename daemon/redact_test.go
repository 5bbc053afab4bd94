package daemon

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestRedactQuoted(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"no quotes", "no quotes"},
		{`error when serving connection "127.0.0.1:21362"<->"[::1]:5000": missing colon: "Authorization Bearer k8s-aws-v1.abc"`,
			`error when serving connection "127.0.0.1:21362"<->"[::1]:5000": missing colon: "<35 bytes>"`},
		{`contents: "GET / HTTP/1.1\r\nX: \"y\""..."tail"`, `contents: "<22 bytes>"..."<4 bytes>"`},
		{`unterminated "k8s-aws-v1.abc`, `unterminated "<14 bytes>"`},
		{`"127.0.0.1"`, `"<9 bytes>"`}, // an address without a port is not the connection's
		{`""`, `"<0 bytes>"`},
	} {
		if got := redactQuoted(c.in); got != c.want {
			t.Errorf("redactQuoted(%q); got %q; want %q", c.in, got, c.want)
		}
	}
}

// FuzzRedactQuoted: whatever bytes fasthttp quotes, only their length reaches the log (or the
// bytes themselves when they are a host:port), and no input panics.
func FuzzRedactQuoted(f *testing.F) {
	f.Add("Authorization Bearer k8s-aws-v1.abc")
	f.Add("127.0.0.1:80")
	f.Add("\"\\\x00\xff")
	f.Fuzz(func(t *testing.T, data string) {
		got := redactQuoted(fmt.Sprintf("error: %q: %q", data, data))
		want := fmt.Sprintf(`error: "<%d bytes>": "<%d bytes>"`, len(data), len(data))
		if _, err := netip.ParseAddrPort(data); err == nil {
			want = fmt.Sprintf("error: %q: %q", data, data)
		}
		if got != want {
			t.Fatalf("got %q; want %q", got, want)
		}
		_ = redactQuoted(data) // raw bytes, quotes anywhere: must not panic
	})
}
