package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/loadtest"
)

// Config says what to run and where to write.
type Config struct {
	// Quick is `make bench-quick`: short scenarios, a small memory step, no micro-benchmarks,
	// and nothing written to BENCHMARKS.md unless Markdown is set.
	Quick bool
	// Bin holds iamgate, fakests and loadtest (the binaries `make build` writes).
	Bin string
	// ResultsDir receives <run>.json, latest.svg and the profiles.
	ResultsDir string
	// Markdown is the file whose generated section is rewritten; empty means none.
	Markdown string
	// MappingFile is the daemon's -mapping.file.
	MappingFile string
	// DaemonCPUs and GeneratorCPUs pin the daemon (and the trivial server) and the generator
	// (this process, the fake STS and wrk) with taskset; empty means no pinning.
	DaemonCPUs, GeneratorCPUs string
	// Duration of each scenario; 0 means 10 s (quick: 1.5 s).
	Duration time.Duration
	// MemoryPoints are the identity counts of the memory step; nil means 100k and 1M
	// (quick: 20k).
	MemoryPoints []int
	// Micro runs the Go micro-benchmarks.
	Micro bool
	// ClusterOnly runs the cluster model alone: no load scenarios, wrk, TLS, memory step or
	// micro-benchmarks; only the cluster section of the markdown is rewritten.
	ClusterOnly bool
	// WebhookOnly runs the production path alone (cold reviews through kube-apiserver's
	// webhook client, over HTTP/2 and HTTP/1.1, against posted directly); only its section
	// of the markdown is rewritten.
	WebhookOnly bool
	// Cluster names the cluster model scenarios to run (ClusterNames, QuickClusterNames),
	// each against iamgate and the passthrough baseline; empty runs none.
	Cluster []string
	// Progress receives progress lines.
	Progress io.Writer
}

// Results is everything one run measured: the JSON file, and the source of the markdown.
type Results struct {
	RunID  string    `json:"runId"`
	Date   time.Time `json:"date"`
	Commit string    `json:"commit"`
	Quick  bool      `json:"quick"`
	// ClusterOnly: a run of the cluster model alone (-bench.clusterOnly); WebhookOnly: of the
	// production path alone (-bench.webhookOnly).
	ClusterOnly bool     `json:"clusterOnly,omitempty"`
	WebhookOnly bool     `json:"webhookOnly,omitempty"`
	Machine     Machine  `json:"machine"`
	Pinning     Pinning  `json:"pinning"`
	Commands    []string `json:"commands"`
	LoadStart   string   `json:"loadAverageStart"`
	LoadEnd     string   `json:"loadAverageEnd"`
	Elapsed     string   `json:"elapsed"`

	// Limit is the trivial server under hey with the settings of the scenarios.
	Limit *LimitRun `json:"limit"`
	// Scenarios are the daemon under hey, plain HTTP.
	Scenarios []*ScenarioRun `json:"scenarios"`
	// Wrk is the hot path and the trivial server under wrk.
	Wrk []*WrkRun `json:"wrk,omitempty"`
	// TLS is the hot path over TLS under hey.
	TLS *ScenarioRun `json:"tls,omitempty"`
	// Webhook is the production path: cold reviews through kube-apiserver's webhook client.
	Webhook *WebhookResult `json:"webhook,omitempty"`

	// Cluster is the cluster model, against iamgate and the passthrough baseline, and
	// ClusterTargets its targets.
	Cluster        []*ClusterRun `json:"cluster,omitempty"`
	ClusterTargets []Check       `json:"clusterTargets,omitempty"`

	Memory *MemoryResult `json:"memory,omitempty"`
	Micro  []Micro       `json:"micro,omitempty"`
	// MicroCPUs is the taskset CPU list of the micro-benchmarks; empty means unpinned.
	MicroCPUs string   `json:"microCpus,omitempty"`
	Targets   []Check  `json:"targets"`
	Notes     []string `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string `json:"cpu"`
	CPUs      int    `json:"cpus"`
	MemoryMiB int64  `json:"memoryMiB"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
}

// Pinning records which CPUs each process could run on (Cpus_allowed_list, read back).
type Pinning struct {
	Daemon    string `json:"daemon"`
	Trivial   string `json:"trivial"`
	Generator string `json:"generator"`
	FakeSTS   string `json:"fakeSts"`
}

// LimitRun is the trivial server measured like a scenario.
type LimitRun struct {
	loadtest.Result
	ServerCPUPerReqUs float64 `json:"serverCpuPerRequestUs"`
	GenCPUPerReqUs    float64 `json:"generatorCpuPerRequestUs"`
}

// ScenarioRun is a scenario's report and its share of the limit.
type ScenarioRun struct {
	*loadtest.Report
	// LimitRatio is RPS divided by the trivial server's RPS under the same generator.
	LimitRatio float64 `json:"limitRatio"`
}

// WrkRun is one wrk measurement.
type WrkRun struct {
	Name   string             `json:"name"`
	Target string             `json:"target"`
	Result loadtest.WrkResult `json:"result"`
	// ServerCPUPerReqUs is the server's CPU time per request in microseconds.
	ServerCPUPerReqUs float64 `json:"serverCpuPerRequestUs"`
	LimitRatio        float64 `json:"limitRatio,omitempty"`

	profile string // CPU profile of the daemon during the run, in the temporary directory
}

// principals is the number of fake STS users tokens are minted for.
const principals = 2000

// Run runs the whole benchmark.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	start := time.Now()
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
		if cfg.Quick {
			cfg.Duration = 1500 * time.Millisecond
		}
	}
	if cfg.MemoryPoints == nil {
		cfg.MemoryPoints = []int{100_000, 1_000_000}
		if cfg.Quick {
			cfg.MemoryPoints = []int{20_000}
		}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", args...) }

	commit := currentCommit()
	res := &Results{
		Date:      start.UTC().Truncate(time.Second),
		Commit:    commit,
		Quick:     cfg.Quick,
		Machine:   machine(),
		LoadStart: loadAverage(),
	}
	res.RunID = res.Date.Format("2006-01-02T1504Z") + "-" + commit
	res.ClusterOnly, res.WebhookOnly = cfg.ClusterOnly, cfg.WebhookOnly
	switch {
	case cfg.ClusterOnly:
		res.RunID = "cluster-" + res.RunID
	case cfg.WebhookOnly:
		res.RunID = "webhook-" + res.RunID
	}
	if cfg.Quick {
		res.RunID = "quick-" + res.RunID
	}
	if err := os.MkdirAll(cfg.ResultsDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", cfg.ResultsDir, err)
	}
	tmp, err := os.MkdirTemp("", "iamgate-bench-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	profileDir := filepath.Join(tmp, "profiles")
	_ = os.MkdirAll(profileDir, 0o755)

	// The fake STS knows `principals` users; tokens are minted for them.
	ps := loadtest.Principals(principals)
	stsConfig := filepath.Join(tmp, "fakests.yaml")
	// JSON is YAML: the fake's config format, with the field names of its JSON tags.
	cfgYAML, err := json.Marshal(loadtest.FakeSTSConfig(ps))
	if err != nil {
		return nil, fmt.Errorf("cannot encode the fake STS config: %w", err)
	}
	if err := os.WriteFile(stsConfig, cfgYAML, 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the fake STS config: %w", err)
	}
	loadtestBin := filepath.Join(cfg.Bin, "loadtest")
	iamgateBin := filepath.Join(cfg.Bin, "iamgate")

	var children []*child
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	start1 := func(name, cpus string, args ...string) (*child, error) {
		c, err := startChild(name, tmp, cpus, nil, args...)
		if err != nil {
			return nil, err
		}
		children = append(children, c)
		res.Commands = append(res.Commands, strings.Join(c.args, " "))
		return c, nil
	}

	stsAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	say("starting the fake STS (%d principals) on %s", principals, stsAddr)
	sts, err := start1("fakests", cfg.GeneratorCPUs, filepath.Join(cfg.Bin, "fakests"), "-listen", stsAddr, "-config", stsConfig, "-log.level", "warn")
	if err != nil {
		return nil, err
	}
	if err := sts.waitHTTP(ctx, "http://"+stsAddr+"/healthz"); err != nil {
		return nil, err
	}

	trivialAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	trivial, err := start1("trivial", cfg.DaemonCPUs, loadtestBin, "trivial", "-listen", trivialAddr)
	if err != nil {
		return nil, err
	}
	if err := trivial.waitHTTP(ctx, "http://"+trivialAddr+"/healthz"); err != nil {
		return nil, err
	}

	daemon, target, err := startDaemon(ctx, start1, "iamgate", cfg, iamgateBin, stsAddr, nil)
	if err != nil {
		return nil, err
	}
	target.Minter = &loadtest.Minter{ClusterID: clusterID, Principals: ps}
	target.Progress = progress
	target.ProfileDir = profileDir
	res.Pinning = Pinning{
		Daemon: loadtest.Process{PID: daemon.pid()}.CPUs(), Trivial: loadtest.Process{PID: trivial.pid()}.CPUs(),
		Generator: loadtest.SelfCPUs(), FakeSTS: loadtest.Process{PID: sts.pid()}.CPUs(),
	}
	say("pinning: daemon and trivial server on CPUs %s; generator, fake STS and wrk on CPUs %s", res.Pinning.Daemon, res.Pinning.Generator)

	// The load scenarios, wrk and TLS; a cluster-only or webhook-only run skips them.
	if !cfg.ClusterOnly && !cfg.WebhookOnly {
		// The limit: the trivial server with the hot scenario's generator settings.
		hotBody, err := target.Minter.Fresh(1, false)
		if err != nil {
			return nil, err
		}
		trivialURL := "http://" + trivialAddr + "/authenticate"
		say("limit: the trivial server under hey, c=%d, %s", concurrency, cfg.Duration)
		trivialProc := loadtest.Process{PID: trivial.pid()}
		cpu0, _ := trivialProc.CPU()
		lim, err := loadtest.Run(ctx, loadtest.Load{
			Name: "limit", URL: trivialURL, Bodies: loadtest.ReviewBodies(hotBody), Concurrency: concurrency,
			Requests: 10_000_000, Duration: cfg.Duration, Progress: progress,
		})
		if err != nil {
			return nil, err
		}
		cpu1, _ := trivialProc.CPU()
		res.Limit = &LimitRun{Result: lim, ServerCPUPerReqUs: loadtest.PerOp(cpu1-cpu0, float64(lim.Requests)),
			GenCPUPerReqUs: loadtest.PerOp(lim.GeneratorCPU, float64(lim.Requests))}
		say("limit: %.0f rps, p50 %.3f ms, p99 %.3f ms", lim.RPS, lim.Latency.P50, lim.Latency.P99)

		scale := 1
		if cfg.Quick {
			scale = 20
		}
		for _, sc := range scenarios(cfg.Duration, scale) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			say("scenario %s: %s", sc.Name, sc.Description)
			rep, err := target.Run(ctx, sc)
			if err != nil {
				return nil, fmt.Errorf("cannot run scenario %s: %w", sc.Name, err)
			}
			run := &ScenarioRun{Report: rep, LimitRatio: loadtest.Ratio(rep.RPS, lim.RPS)}
			res.Scenarios = append(res.Scenarios, run)
			say("scenario %s: %.0f rps (%.2f of the limit), p50 %.3f ms, p99 %.3f ms, daemon %.1f µs/review, %d STS calls, status %v",
				sc.Name, rep.RPS, run.LimitRatio, rep.Latency.P50, rep.Latency.P99, rep.DaemonCPUPerRevUs, rep.STSCalls, rep.Status)
		}

		// wrk: the hot path and the limit with a generator that costs far less per request.
		if _, err := loadtest.EnsureWrk(); err != nil {
			note := "wrk is missing and could not be installed, so hot-path capacity comes from hey only: " + err.Error()
			res.Notes = append(res.Notes, note)
			say("NOTICE: %s", note)
		} else {
			hotTok, err := target.Minter.Fresh(1, false)
			if err != nil {
				return nil, err
			}
			hot := loadtest.ReviewBody(hotTok[0])
			if _, err := loadtest.Run(ctx, loadtest.Load{Name: "warm-up", URL: target.WebhookURL, Bodies: [][]byte{hot}, Concurrency: 1, Requests: 1, Duration: time.Minute}); err != nil {
				return nil, err
			}
			for _, w := range []struct {
				name, url string
				pid       int
			}{{"wrk-limit", trivialURL, trivial.pid()}, {"wrk-hot", target.WebhookURL, daemon.pid()}} {
				say("%s: wrk -t1 -c%d -d%s", w.name, concurrency, cfg.Duration)
				p := loadtest.Process{PID: w.pid}
				profDone := make(chan string, 1)
				if w.pid == daemon.pid() {
					go func() {
						profDone <- target.Profile(loadtest.Scenario{Name: w.name, Duration: cfg.Duration})
					}()
				} else {
					profDone <- ""
				}
				c0, _ := p.CPU()
				wr, err := loadtest.Wrk{URL: w.url, Body: hot, Threads: 1, Connections: concurrency, Duration: cfg.Duration, Dir: tmp}.Run(ctx)
				if err != nil {
					return nil, err
				}
				c1, _ := p.CPU()
				run := &WrkRun{Name: w.name, Target: w.url, Result: wr, ServerCPUPerReqUs: loadtest.PerOp(c1-c0, float64(wr.Requests)), profile: <-profDone}
				if len(res.Wrk) > 0 {
					run.LimitRatio = loadtest.Ratio(wr.RPS, res.Wrk[0].Result.RPS)
				}
				res.Wrk = append(res.Wrk, run)
				say("%s: %.0f rps, p50 %.3f ms, p99 %.3f ms, server %.1f µs/request, errors %d, non-2xx %d",
					w.name, wr.RPS, wr.Latency.P50, wr.Latency.P99, run.ServerCPUPerReqUs, wr.Errors, wr.Non2xx)
			}
		}

		// TLS: the hot path once more, with the webhook over TLS (iamgate init's key pair).
		if run, err := runTLS(ctx, cfg, start1, iamgateBin, stsAddr, tmp, target, lim.RPS, say); err != nil {
			res.Notes = append(res.Notes, "the TLS hot path could not be measured: "+err.Error())
			say("NOTICE: TLS: %s", err)
		} else {
			res.TLS = run
		}
	}

	// The production path: kube-apiserver's webhook client over HTTP/2 and HTTP/1.1.
	if !cfg.ClusterOnly {
		w, err := runWebhook(ctx, cfg, start1, iamgateBin, stsAddr, tmp, target.Minter, profileDir, say)
		if err != nil {
			res.Notes = append(res.Notes, "the production path failed: "+err.Error())
			say("NOTICE: production path: %s", err)
		}
		if w != nil && len(w.Rounds) > 0 {
			w.summarize()
			res.Webhook = w
		}
	}

	// The cluster model: restart storms and STS faults, iamgate and the passthrough baseline.
	if len(cfg.Cluster) > 0 && !cfg.WebhookOnly {
		runs, err := runCluster(ctx, cfg, start1, iamgateBin, stsAddr, daemon, target, say)
		if err != nil {
			res.Notes = append(res.Notes, "the cluster model failed: "+err.Error())
			say("NOTICE: cluster: %s", err)
		}
		res.Cluster = runs
	}

	// Memory, in its own process so that nothing else lives in its heap.
	if !cfg.ClusterOnly && !cfg.WebhookOnly {
		say("memory: caching %v distinct identities in an in-process daemon", cfg.MemoryPoints)
		mem, err := runMemory(ctx, loadtestBin, cfg, filepath.Join(profileDir, "memory-heap.pb.gz"), progress)
		if err != nil {
			res.Notes = append(res.Notes, "the memory step failed: "+err.Error())
			say("NOTICE: memory: %s", err)
		} else {
			res.Memory = mem
		}
	}

	if cfg.Micro {
		say("micro-benchmarks: go test -bench (sigv4, daemon, mapping)")
		cpus := ""
		if cfg.DaemonCPUs != "" {
			cpus = "0-" + cfg.DaemonCPUs // the daemon is idle by now
		}
		res.MicroCPUs = cpus
		micro, err := runMicro(ctx, progress, cpus)
		if err != nil {
			res.Notes = append(res.Notes, "the micro-benchmarks failed: "+err.Error())
			say("NOTICE: micro-benchmarks: %s", err)
		}
		res.Micro = micro
	}

	res.LoadEnd = loadAverage()
	res.Targets = append(evaluate(res), evaluateWebhook(res.Webhook)...)
	res.ClusterTargets = evaluateCluster(res.Cluster)
	if err := keepProfiles(res, cfg.ResultsDir, iamgateBin); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(start).Round(time.Second).String()
	if err := write(res, cfg); err != nil {
		return nil, err
	}
	say("done in %s: %s", res.Elapsed, filepath.Join(cfg.ResultsDir, res.RunID+".json"))
	return res, nil
}

const clusterID = "bench"

// startDaemon starts bin/iamgate server against the fake STS, with TLS when pki is set
// (cert.pem and key.pem of iamgate init), and waits until it is ready.
func startDaemon(ctx context.Context, start1 func(string, string, ...string) (*child, error), name string, cfg Config,
	bin, stsAddr string, pki *string, extra ...string) (*child, *loadtest.Target, error) {
	webhookAddr, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	internalAddr, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	args := []string{bin, "server", "-cluster.id", clusterID, "-webhook.listenAddr", webhookAddr,
		"-internal.listenAddr", internalAddr, "-internal.pprof", "-mapping.file", cfg.MappingFile,
		"-sts.dialOverride", stsAddr, "-sts.insecureHTTP", "-log.level", "warn"}
	scheme := "http"
	if pki == nil {
		args = append(args, "-webhook.insecureNoTLS")
	} else {
		scheme = "https"
		args = append(args, "-tls.certFile", filepath.Join(*pki, "cert.pem"), "-tls.keyFile", filepath.Join(*pki, "key.pem"))
	}
	args = append(args, extra...)
	d, err := start1(name, cfg.DaemonCPUs, args...)
	if err != nil {
		return nil, nil, err
	}
	internalURL := "http://" + internalAddr
	if err := d.waitHTTP(ctx, internalURL+"/readyz"); err != nil {
		return nil, nil, err
	}
	return d, &loadtest.Target{
		WebhookURL:  scheme + "://" + webhookAddr + "/authenticate?timeout=30s",
		InternalURL: internalURL,
		STS:         fakests.AdminClient{URL: "http://" + stsAddr},
		Daemon:      loadtest.Process{PID: d.pid()},
	}, nil
}

func runTLS(ctx context.Context, cfg Config, start1 func(string, string, ...string) (*child, error), bin, stsAddr, tmp string,
	plain *loadtest.Target, limitRPS float64, say func(string, ...any)) (*ScenarioRun, error) {
	pki, err := ensurePKI(bin, tmp)
	if err != nil {
		return nil, err
	}
	_, target, err := startDaemon(ctx, start1, "iamgate-tls", cfg, bin, stsAddr, &pki)
	if err != nil {
		return nil, err
	}
	target.Minter, target.Progress = plain.Minter, plain.Progress
	sc := scenarios(cfg.Duration, 1)[0]
	sc.Name, sc.Description, sc.Profile = "hot-tls", "one cached token, webhook over TLS (keep-alive)", false
	say("scenario %s: %s", sc.Name, sc.Description)
	rep, err := target.Run(ctx, sc)
	if err != nil {
		return nil, err
	}
	say("scenario %s: %.0f rps, p50 %.3f ms, p99 %.3f ms, daemon %.1f µs/review", sc.Name, rep.RPS, rep.Latency.P50, rep.Latency.P99, rep.DaemonCPUPerRevUs)
	return &ScenarioRun{Report: rep, LimitRatio: loadtest.Ratio(rep.RPS, limitRPS)}, nil
}

// runMemory runs `loadtest memory` and decodes its JSON.
func runMemory(ctx context.Context, bin string, cfg Config, heapProfile string, progress io.Writer) (*MemoryResult, error) {
	pts := make([]string, len(cfg.MemoryPoints))
	for i, p := range cfg.MemoryPoints {
		pts[i] = strconv.Itoa(p)
	}
	args := []string{"memory", "-memory.points", strings.Join(pts, ","), "-memory.heapProfile", heapProfile}
	out, err := commandOutput(ctx, progress, bin, args...)
	if err != nil {
		return nil, err
	}
	var m MemoryResult
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("cannot decode the memory result: %w", err)
	}
	return &m, nil
}

// currentCommit is HEAD's short hash, with -dirty when the code differs from it (the
// harnesses' own outputs do not count), from any folder of the repository.
func currentCommit() string {
	commit := runOutput("git", "rev-parse", "--short=12", "HEAD")
	if commit == "" {
		return "unknown"
	}
	if runOutput("git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)bench/results", ":(top,exclude)BENCHMARKS.md") != "" {
		commit += "-dirty"
	}
	return commit
}

func machine() Machine {
	// runtime.NumCPU sees only this process's affinity (pinned): ask for the online CPUs.
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Kernel: runOutput("uname", "-sr")}
	if n, err := strconv.Atoi(runOutput("getconf", "_NPROCESSORS_ONLN")); err == nil && n > 0 {
		m.CPUs = n
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemoryMiB = kb / 1024
			}
		}
	}
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
