package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/loadtest"
)

// runFakeSTS serves the fake STS library, for the harness, until it is stopped.
func runFakeSTS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakests", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:4566", "loopback address of the fake STS and its admin endpoints (/admin/faults, /stats)")
	config := fs.String("config", "", "YAML principals (fakests.Config, the format of cmd/fakests -config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loadtest.CheckLoopback(*listen); err != nil {
		return fmt.Errorf("cannot use -listen: %w", err)
	}
	var cfg fakests.Config
	if *config != "" {
		var err error
		if cfg, err = fakests.LoadConfig(*config); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := fakests.New(cfg, fakests.Options{Logger: log})
	if err != nil {
		return err
	}
	addr, err := srv.Start(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fake STS listening on %s with %d users\n", addr, len(cfg.Users))
	<-ctx.Done()
	return srv.Close()
}

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
