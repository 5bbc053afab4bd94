// Package bench is the `make bench` harness: it builds nothing itself but starts the fake
// STS, the trivial server and the daemon (bin/iamgate server) as separate processes pinned to
// their own cores, runs the load scenarios of package loadtest against them, measures the
// identity cache's memory and runs the Go micro-benchmarks, then writes
// bench/results/<date>-<commit>.json, SVG charts and the generated sections of BENCHMARKS.md
// (between their <!-- bench…:begin --> and <!-- bench…:end --> markers). The steps of a run
// are the phases of harness.go.
package bench
