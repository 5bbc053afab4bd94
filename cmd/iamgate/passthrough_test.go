package main

import (
	"flag"
	"io"
	"testing"
)

// -baseline.passthrough reaches the daemon's config, and is off by default.
func TestBaselinePassthroughFlag(t *testing.T) {
	f := func(args []string, want bool) {
		t.Helper()
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var sf serverFlags
		sf.register(fs)
		base := []string{"-cluster.id", "c", "-webhook.insecureNoTLS", "-mapping.file", "m.yaml"}
		if err := fs.Parse(append(base, args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := sf.config()
		if err != nil {
			t.Fatalf("unexpected error for %q: %s", args, err)
		}
		if cfg.BaselinePassthrough != want {
			t.Fatalf("unexpected BaselinePassthrough for %q; got %v; want %v", args, cfg.BaselinePassthrough, want)
		}
	}
	f(nil, false)
	f([]string{"-baseline.passthrough"}, true)
}
