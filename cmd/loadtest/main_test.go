package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The CLI refuses every non-loopback target before sending anything.
func TestRefusesRemoteTargets(t *testing.T) {
	f := func(args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("unexpected result of %q; got %v; want a loopback refusal", args, err)
		}
	}
	f("run", "-webhook.url", "http://10.0.0.7:21362/authenticate")
	f("run", "-webhook.url", "https://iamgate.kube-system.svc:443/authenticate")
	f("run", "-internal.url", "http://192.0.2.1:21363")
	f("run", "-sts.url", "https://sts.amazonaws.com:443")
	f("trivial", "-listen", "example.com:80")
}

func TestUnknownSubcommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"flood"}, &out, &errOut); err == nil {
		t.Fatalf("expected an error for an unknown subcommand")
	}
}
