package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iamgate/iamgate/bench"
)

// runColdPath measures iamgate's never-seen tokens against the cold-path limit (bench.RunColdPath).
func runColdPath(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coldpath", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bench.bin", "bin", "directory of the iamgate, fakests and loadtest binaries (make build)")
	results := fs.String("bench.results", "bench/results", "directory for cold-<date>-<commit>.json and the profiles")
	markdown := fs.String("bench.markdown", "BENCHMARKS.md", "file whose section between <!-- bench-cold:begin --> and <!-- bench-cold:end --> is rewritten; empty for none")
	mappingFile := fs.String("bench.mappingFile", "bench/mapping.yaml", "the daemon's -mapping.file")
	duration := fs.Duration("cold.duration", 10*time.Second, "length of each measured window")
	rounds := fs.Int("cold.rounds", 3, "interleaved rounds (limit, iamgate) per variant")
	conc := fs.Int("cold.concurrency", 50, "wrk connections")
	tokens := fs.Int("cold.tokens", 200_000, "never-seen tokens minted per kind (valid 15 minutes: the run must end before)")
	variants := fs.String("cold.variants", "", "comma-separated variants to run (sts-0ms, sts-20ms, sts-20ms-jitter, rejected, ec2-node); empty runs all")
	profile := fs.Bool("cold.profile", true, "profile iamgate (CPU and allocations) in one more window per variant, after its rounds")
	memory := fs.String("memory.points", "", "also run the identity cache memory step at these comma-separated identity counts (e.g. 1000000); empty skips it")
	daemonArgs := fs.String("cold.daemonArgs", "", "extra flags of every iamgate server, space-separated")
	compare := fs.String("cold.compare", "", "another iamgate binary (e.g. an earlier commit's) to measure in every round too, against the same limit")
	compareName := fs.String("cold.compareName", "", "what -cold.compare is, for the report (e.g. its commit); empty means its path")
	render := fs.String("cold.render", "", "write the cold path's section of -bench.markdown again from this results file (bench/results/cold-*.json); run nothing")
	pin := fs.Bool("pin", true, "on a machine with 2 or more CPUs, pin the limit and iamgate to the last CPU and this process, the fake STS and wrk to CPU 0 (taskset)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *render != "" {
		return bench.RenderCold(*render, *markdown)
	}
	if *rounds < 1 || *conc < 1 || *tokens < 1000 {
		return fmt.Errorf("-cold.rounds and -cold.concurrency must be positive, -cold.tokens at least 1000")
	}
	cfg := bench.ColdConfig{
		Bin: *bin, ResultsDir: *results, Markdown: *markdown, MappingFile: *mappingFile, Duration: *duration,
		Rounds: *rounds, Concurrency: *conc, Tokens: *tokens, Variants: splitNames(*variants), Profile: *profile,
		DaemonArgs: strings.Fields(*daemonArgs), CompareBin: *compare, CompareName: *compareName, Progress: stderr,
	}
	points, err := memoryPoints(*memory)
	if err != nil {
		return err
	}
	cfg.MemoryPoints = points
	generator, daemon, reexec := pinning(*pin, stderr)
	if reexec != nil {
		return reexec()
	}
	cfg.GeneratorCPUs, cfg.DaemonCPUs = generator, daemon
	res, err := bench.RunColdPath(ctx, cfg)
	if err != nil {
		return err
	}
	for _, c := range res.Targets {
		mark := "met"
		if !c.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(stdout, "%s: %s: %s [%s]\n", c.Scenario, c.Target, c.Got, mark)
	}
	return nil
}
