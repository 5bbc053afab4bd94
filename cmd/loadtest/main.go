// Command loadtest drives an iamgate webhook on loopback and measures it. This main only
// dispatches subcommands; the work lives in packages loadtest and bench.
//
//	loadtest bench     the whole `make bench` (starts bin/fakests, the trivial server and bin/iamgate server)
//	loadtest run       one scenario against a daemon and fake STS that are already running
//	loadtest trivial   the trivial fasthttp TokenReview server (the limit)
//	loadtest memory    the identity cache memory step, JSON on stdout
//	loadtest stsconfig the fake STS config of the benchmark principals (for loadtest run)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"bench", "run every scenario, the memory step and the micro-benchmarks; write results and BENCHMARKS.md", runBench},
	{"run", "run one scenario against a running daemon and fake STS (loopback only)", runScenario},
	{"trivial", "serve the trivial TokenReview server (the limit) on a loopback address", runTrivial},
	{"memory", "measure the identity cache's memory per cached identity; JSON on stdout", runMemory},
	{"stsconfig", "print the fake STS config (bin/fakests -config) of the principals tokens are minted for", runSTSConfig},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "loadtest: %s\n", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "usage: loadtest <subcommand> [flags]")
		for _, c := range commands {
			fmt.Fprintf(stderr, "  %-8s %s\n", c.name, c.summary)
		}
		if len(args) == 0 {
			return errors.New("missing subcommand")
		}
		return flag.ErrHelp
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}
