// Command loadtest drives an iamgate webhook on loopback and measures it. This main only
// dispatches subcommands; the work lives in packages loadtest and bench.
//
//	loadtest bench     the whole `make bench` (starts bin/fakests, the trivial server and bin/iamgate server)
//	loadtest run       one scenario (or cluster model) against a daemon and fake STS that are already running
//	loadtest trivial   the trivial fasthttp TokenReview server (the limit)
//	loadtest coldlimit the cold-path limit: one STS call per review (and an EC2 call per node) and a fixed answer
//	loadtest coldpath  iamgate's cold reviews against the cold-path limit, interleaved rounds
//	loadtest memory    the identity cache memory step, JSON on stdout
//	loadtest stsconfig the fake STS config of the benchmark principals (for loadtest run)
package main

import (
	"context"
	"io"

	"github.com/iamgate/iamgate/internal/subcommand"
	"github.com/iamgate/iamgate/loadtest"
)

var commands = []subcommand.Command{
	{Name: "bench", Summary: "run every scenario, the memory step and the micro-benchmarks; write results and BENCHMARKS.md", Run: runBench},
	{Name: "run", Summary: "run one scenario against a running daemon and fake STS (loopback only)", Run: runScenario},
	{Name: "trivial", Summary: "serve the trivial TokenReview server (the limit) on a loopback address", Run: runTrivial},
	{Name: "coldlimit", Summary: "serve the cold-path limit (one HTTPS GET to STS per review, one DescribeInstances call per EC2 node, a fixed answer) on a loopback address", Run: runColdLimit},
	{Name: "coldpath", Summary: "measure iamgate's never-seen tokens against the cold-path limit (fake STS over TLS, wrk, interleaved rounds)", Run: runColdPath},
	{Name: "memory", Summary: "measure the identity cache's memory per cached identity; JSON on stdout", Run: runMemory},
	{Name: "stsconfig", Summary: "print the fake STS config (bin/fakests -config) of the principals tokens are minted for", Run: runSTSConfig},
}

func main() {
	// k8s.io/apiserver's webhook authenticator (the cluster model) logs every failed call.
	loadtest.QuietKubernetesLogs()
	subcommand.Main("loadtest", commands)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return subcommand.Dispatch(ctx, "loadtest", commands, args, stdout, stderr)
}
