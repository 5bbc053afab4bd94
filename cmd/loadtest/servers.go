package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/iamgate/iamgate/loadtest"
)

// runTrivial serves loadtest.TrivialHandler until it is stopped.
func runTrivial(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trivial", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:21364", "loopback address of the trivial TokenReview server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loadtest.CheckLoopback(*listen); err != nil {
		return fmt.Errorf("cannot use -listen: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on -listen=%q: %w", *listen, err)
	}
	srv := loadtest.NewTrivialServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "trivial server listening on %s\n", ln.Addr())
	select {
	case <-ctx.Done():
		return srv.Shutdown()
	case err := <-errc:
		return err
	}
}

// runSTSConfig prints the fakests config of loadtest.Principals, so that `loadtest run` can
// be pointed at a fake STS started by hand: bin/fakests -config <(bin/loadtest stsconfig).
func runSTSConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stsconfig", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("sts.principals", 2000, "number of principals (the same as loadtest run -sts.principals)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("-sts.principals=%d must be positive", *n)
	}
	return json.NewEncoder(stdout).Encode(loadtest.FakeSTSConfig(loadtest.Principals(*n)))
}
