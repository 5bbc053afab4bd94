package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iamgate/iamgate/bench"
	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/loadtest"
)

// pinnedEnv marks a process that already re-executed itself under taskset; its value is the
// daemon's CPU list.
const pinnedEnv = "IAMGATE_LOADTEST_PINNED"

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("bench.quick", false, "short scenarios, a 20k-identity memory step, a small cluster storm, no micro-benchmarks (make bench-quick, about 2 minutes)")
	bin := fs.String("bench.bin", "bin", "directory of the iamgate and loadtest binaries (make build)")
	results := fs.String("bench.results", "bench/results", "directory for <date>-<commit>.json, latest.svg and the profiles of missed targets")
	markdown := fs.String("bench.markdown", "BENCHMARKS.md", "file whose generated sections (between <!-- bench:begin --> and <!-- bench:end -->, and the webhook, cluster and micro-benchmark markers) are regenerated; empty for none (quick runs write none unless set)")
	mappingFile := fs.String("bench.mappingFile", "bench/mapping.yaml", "the daemon's -mapping.file")
	duration := fs.Duration("bench.duration", 0, "duration of each scenario; 0 means 10s (quick: 1.5s)")
	micro := fs.Bool("bench.micro", true, "run the Go micro-benchmarks (never in quick runs)")
	microRounds := fs.Int("micro.rounds", 6, "interleaved rounds of the Go micro-benchmarks (go test -count 1 each); medians and ratios are over the rounds")
	microOnly := fs.Bool("bench.microOnly", false, "run the Go micro-benchmarks alone (make microbench), starting no process; rewrite only their section of -bench.markdown")
	memory := fs.String("memory.points", "", "comma-separated identity counts of the memory step; empty means 100000,1000000 (quick: 20000)")
	cluster := fs.String("bench.cluster", "default", "comma-separated cluster model scenarios ("+strings.Join(append(append([]string(nil), bench.ClusterNames...), bench.QuickClusterNames...), ", ")+
		"), each against iamgate and the passthrough baseline; default means "+strings.Join(bench.ClusterNames, ",")+" (quick: "+strings.Join(bench.QuickClusterNames, ",")+"); none skips them")
	webhookOnly := fs.Bool("bench.webhookOnly", false, "run the production path alone (cold reviews through kube-apiserver's webhook client to iamgate over TLS, HTTP/2 and -webhook.http2=false, against posted directly; interleaved rounds); rewrite only its section of -bench.markdown")
	webhookCompare := fs.String("bench.webhookCompare", "", "another iamgate binary (e.g. an earlier commit's) whose HTTP/2 path the production path measures in every round too, with its own paced direct run; its two more runs per round use more never-seen tokens, so the run mints them for twice as many principals")
	webhookCompareName := fs.String("bench.webhookCompareName", "", "what -bench.webhookCompare is, for the report (e.g. its commit); empty means its path")
	clusterOnly := fs.Bool("bench.clusterOnly", false, "run the cluster model alone (-bench.cluster), against iamgate and the passthrough baseline; rewrite only the cluster section of -bench.markdown")
	pin := fs.Bool("pin", true, "on a machine with 2 or more CPUs, pin the daemon and the trivial server to the last CPU and this generator, the fake STS and wrk to CPU 0 (taskset)")
	render := fs.String("bench.render", "", "write the generated sections of -bench.markdown and the charts again from this results file (bench/results/*.json) with the current tables and targets; run nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *render != "" {
		return bench.Render(*render, bench.Config{Markdown: *markdown})
	}
	cfg := bench.Config{
		Quick: *quick, Bin: *bin, ResultsDir: *results, MappingFile: *mappingFile, Duration: *duration,
		Micro: *micro && !*quick && !*clusterOnly && !*webhookOnly, MicroRounds: *microRounds, Progress: stderr,
		ClusterOnly: *clusterOnly, WebhookOnly: *webhookOnly, MicroOnly: *microOnly,
		WebhookCompare: *webhookCompare, WebhookCompareName: *webhookCompareName,
	}
	if cfg.WebhookCompareName == "" {
		cfg.WebhookCompareName = cfg.WebhookCompare
	}
	switch *cluster {
	case "default":
		cfg.Cluster = bench.ClusterNames
		if *quick {
			cfg.Cluster = bench.QuickClusterNames
		}
	case "none", "":
	default:
		cfg.Cluster = splitNames(*cluster)
	}
	only := 0
	for _, o := range []bool{cfg.ClusterOnly, cfg.WebhookOnly, cfg.MicroOnly} {
		if o {
			only++
		}
	}
	if only > 1 {
		return fmt.Errorf("-bench.clusterOnly, -bench.webhookOnly and -bench.microOnly exclude each other")
	}
	if cfg.MicroOnly && *quick {
		return fmt.Errorf("-bench.microOnly has no quick variant: give fewer -micro.rounds")
	}
	if *microRounds < 1 {
		return fmt.Errorf("-micro.rounds=%d must be at least 1", *microRounds)
	}
	if cfg.WebhookOnly || cfg.MicroOnly {
		cfg.Cluster = nil
	}
	if cfg.ClusterOnly && len(cfg.Cluster) == 0 {
		return fmt.Errorf("-bench.clusterOnly needs cluster scenarios (-bench.cluster)")
	}
	markdownSet := false
	fs.Visit(func(f *flag.Flag) { markdownSet = markdownSet || f.Name == "bench.markdown" })
	if !*quick || markdownSet {
		cfg.Markdown = *markdown
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
	_, err = bench.Run(ctx, cfg)
	return err
}

// pinning returns the generator's and the daemon's CPU lists when this process runs pinned
// (re-executed under taskset: runtime.NumCPU now sees the generator's CPU only). Otherwise,
// with pin on a machine of 2 or more CPUs, it returns reexec, which runs this command again
// pinned; without taskset or with one CPU it says why nothing is pinned.
func pinning(pin bool, stderr io.Writer) (generator, daemon string, reexec func() error) {
	if daemonCPUs := os.Getenv(pinnedEnv); daemonCPUs != "" {
		return "0", daemonCPUs, nil
	}
	switch {
	case !pin:
	case runtime.NumCPU() < 2:
		fmt.Fprintln(stderr, "loadtest: NOTICE: one CPU only: the daemon and the generator share it, capacity figures are not meaningful")
	default:
		if _, err := exec.LookPath("taskset"); err != nil {
			fmt.Fprintln(stderr, "loadtest: NOTICE: taskset is missing (util-linux): nothing is pinned")
		} else {
			return "", "", func() error { return reexecPinned("0", strconv.Itoa(runtime.NumCPU()-1)) }
		}
	}
	return "", "", nil
}

// reexecPinned runs this command again under taskset, so that the Go runtime starts with the
// generator's CPU set (GOMAXPROCS follows the affinity at start).
func reexecPinned(cpus, daemonCPUs string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this executable to pin it: %w", err)
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return err
	}
	argv := append([]string{"taskset", "-c", cpus, self}, os.Args[1:]...)
	return syscall.Exec(taskset, argv, append(os.Environ(), pinnedEnv+"="+daemonCPUs))
}

func runMemory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	points := fs.String("memory.points", "100000,1000000", "comma-separated, ascending identity counts at which the heap is measured")
	heap := fs.String("memory.heapProfile", "", "write a heap profile here after the last point")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pts, err := parseInts(*points)
	if err != nil {
		return fmt.Errorf("cannot parse -memory.points: %w", err)
	}
	res, err := bench.MeasureCacheMemory(ctx, pts, *heap, stderr)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// runScenario runs one scenario against processes that are already running.
func runScenario(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	webhook := fs.String("webhook.url", "http://127.0.0.1:21362/authenticate", "the daemon's review URL (loopback only)")
	internal := fs.String("internal.url", "http://127.0.0.1:21363", "the daemon's internal listener (/metrics)")
	stsURL := fs.String("sts.url", "http://127.0.0.1:4566", "the fake STS's admin base URL (/admin/faults, /stats)")
	caFile := fs.String("webhook.caFile", "", "PEM CA of an https -webhook.url, for the webhook client of -load.kind webhook-cold (hey does not verify)")
	pid := fs.Int("daemon.pid", 0, "the daemon's process ID, for CPU and peak RSS from /proc; 0 skips them")
	clusterID := fs.String("cluster.id", "bench", "the daemon's -cluster.id")
	nPrincipals := fs.Int("sts.principals", 2000, "tokens are minted for the first N principals of loadtest.Principals (the fake STS must know them)")
	kind := fs.String("load.kind", loadtest.KindHot, "hot, warm, cold, herd, invalid, badsig, outage, webhook-cold (cold through kube-apiserver's webhook client), or a cluster model: cluster-storm, cluster-brownout (see -cluster.*)")
	conc := fs.Int("load.concurrency", 50, "concurrent workers")
	requests := fs.Int("load.requests", 100000, "at most this many requests (also the tokens minted for cold and herd)")
	dur := fs.Duration("load.duration", 10*time.Second, "at most this long")
	qps := fs.Float64("load.qps", 0, "pace hey's runs at about this many requests per second in all, spread evenly; 0 means as fast as they can")
	bursts := fs.Bool("load.bursts", false, "pace -load.qps as hey alone does, in bursts of -load.concurrency requests (its workers' rate limiters start together), for comparison")
	tokens := fs.Int("load.tokens", 100, "distinct tokens of warm, invalid, badsig and outage runs")
	herd := fs.Int("load.herd", 50, "reviews per token of a herd run")
	latency := fs.Duration("sts.latency", 0, "fake STS latency during the run")
	var cf clusterFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, u := range []string{*webhook, *internal, *stsURL} {
		if err := loadtest.CheckLoopbackURL(u); err != nil {
			return err
		}
	}
	minter := &loadtest.Minter{ClusterID: *clusterID, Principals: loadtest.Principals(*nPrincipals)}
	if strings.HasPrefix(*kind, "cluster-") {
		sc, err := cf.scenario(*kind)
		if err != nil {
			return err
		}
		ct := &loadtest.ClusterTarget{
			WebhookURL: *webhook, InternalURL: strings.TrimSuffix(*internal, "/"), STS: fakests.AdminClient{URL: strings.TrimSuffix(*stsURL, "/")},
			Daemon: loadtest.Process{PID: *pid}, Label: cf.label, Minter: minter, Progress: stderr,
		}
		rep, err := ct.RunCluster(ctx, sc)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	t := &loadtest.Target{
		WebhookURL: *webhook, InternalURL: strings.TrimSuffix(*internal, "/"), STS: fakests.AdminClient{URL: strings.TrimSuffix(*stsURL, "/")},
		Daemon:   loadtest.Process{PID: *pid},
		Minter:   minter,
		Progress: stderr,
		CAFile:   *caFile,
	}
	sc := loadtest.Scenario{Name: *kind, Kind: *kind, Concurrency: *conc, Requests: *requests, Duration: *dur, QPS: *qps, Bursts: *bursts,
		Tokens: *tokens, Herd: *herd, NewEvery: 100}
	sc.Faults.Latency = fakestsDuration(*latency)
	rep, err := t.Run(ctx, sc)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// memoryPoints parses -memory.points: identity counts, comma-separated; empty means none.
func memoryPoints(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	pts, err := parseInts(s)
	if err != nil {
		return nil, fmt.Errorf("cannot parse -memory.points: %w", err)
	}
	return pts, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func splitNames(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
