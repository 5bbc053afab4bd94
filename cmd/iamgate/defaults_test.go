package main

import (
	"flag"
	"io"
	"reflect"
	"testing"

	"github.com/iamgate/iamgate/daemon"
)

// TestServerFlagDefaultsAreDefaultConfig: `iamgate server` with only the required flags runs
// daemon.DefaultConfig, so that the tests, load tests and benchmarks that start from
// DefaultConfig measure the daemon as it is deployed.
func TestServerFlagDefaultsAreDefaultConfig(t *testing.T) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var sf serverFlags
	sf.register(fs)
	if err := fs.Parse([]string{"-cluster.id", "c", "-webhook.insecureNoTLS", "-mapping.file", "m.yaml"}); err != nil {
		t.Fatal(err)
	}
	got, err := sf.config()
	if err != nil {
		t.Fatal(err)
	}
	want := daemon.DefaultConfig()
	want.ClusterID, want.Version = "c", version
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unexpected config from the default flags;\ngot  %+v\nwant %+v", got, want)
	}
}
