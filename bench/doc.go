// Package bench is the `make bench` harness: it builds nothing itself but starts the fake
// STS, the trivial server and the daemon (bin/iamgate server) as separate processes pinned to
// their own cores, runs the load scenarios of package loadtest against them, measures the
// identity cache's memory and runs the Go micro-benchmarks, then writes
// bench/results/<date>-<commit>.json, an SVG latency chart and the generated section of
// BENCHMARKS.md (between <!-- bench:begin --> and <!-- bench:end -->).
package bench
