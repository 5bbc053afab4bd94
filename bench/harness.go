package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/freeport"
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
	// Micro runs the Go micro-benchmarks, MicroRounds rounds (0 means 6).
	Micro       bool
	MicroRounds int
	// ClusterOnly runs the cluster model alone: no load scenarios, wrk, TLS, memory step or
	// micro-benchmarks; only the cluster section of the markdown is rewritten.
	ClusterOnly bool
	// WebhookOnly runs the production path alone (cold reviews through kube-apiserver's
	// webhook client, over HTTP/2 and HTTP/1.1, against posted directly); only its section
	// of the markdown is rewritten.
	WebhookOnly bool
	// WebhookCompare is another iamgate binary (an earlier commit's) whose HTTP/2 path the
	// production path measures in every round too, with its own paced direct run; empty for
	// none. WebhookCompareName says what it is, for the report.
	WebhookCompare, WebhookCompareName string
	// MicroOnly runs the Go micro-benchmarks alone (`make microbench`), and starts no
	// process; only their section of the markdown is rewritten.
	MicroOnly bool
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
	// production path alone (-bench.webhookOnly); MicroOnly: of the micro-benchmarks alone
	// (-bench.microOnly).
	ClusterOnly bool     `json:"clusterOnly,omitempty"`
	WebhookOnly bool     `json:"webhookOnly,omitempty"`
	MicroOnly   bool     `json:"microOnly,omitempty"`
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
	// Micro are the Go micro-benchmarks, MicroRatios their ratios to their baselines, over
	// MicroRounds rounds of MicroBenchtime each (none in results older than the rounds: 3
	// runs of 300 ms in a row).
	Micro          []Micro      `json:"micro,omitempty"`
	MicroRatios    []MicroRatio `json:"microRatios,omitempty"`
	MicroRounds    int          `json:"microRounds,omitempty"`
	MicroBenchtime string       `json:"microBenchtime,omitempty"`
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

// principals is the number of fake STS users tokens are minted for. Never-seen tokens are
// minted for each of them at each second going back from now, at most 10 minutes back
// (loadtest.Minter), so a run can use principals × 600 more than the seconds it lasts give
// back. A whole run uses about a million (the load scenarios, then five rounds of the
// production path, whose direct runs post 8,000 reviews/s on the Intel machine): with 2,000
// principals, run 1102Z ran out in its third round.
const principals = 6000

// principalCount is principals, doubled for a production path with -bench.webhookCompare,
// whose two more runs per round use more never-seen tokens than that.
func principalCount(cfg Config) int {
	if cfg.WebhookCompare != "" {
		return 2 * principals
	}
	return principals
}

// clusterID is the daemons' -cluster.id, which the tokens are minted for.
const clusterID = "bench"

// phase is one step of a run. A required phase (failed empty) ends the run with its error;
// after any other, an error becomes a note of the report, "<failed>: <error>", and the run
// goes on with what the phase recorded.
type phase struct {
	name   string // names the phase in NOTICE lines
	runsIn func(Config) bool
	run    func(*benchRun, context.Context) error
	failed string
}

// phases are the steps of a run, in order; a phase may use what the ones before it started
// or measured (the benchRun fields). A new phase is a benchRun method that stores what it
// measures in b.res, and a line here.
var phases = []phase{
	{name: "fake STS", runsIn: servers, run: (*benchRun).startFakeSTS},
	{name: "trivial server", runsIn: servers, run: (*benchRun).startTrivialServer},
	{name: "daemon", runsIn: servers, run: (*benchRun).startDaemonUnderTest},
	{name: "limit", runsIn: loadTests, run: (*benchRun).measureLimit},
	{name: "scenarios", runsIn: loadTests, run: (*benchRun).runScenarios},
	{name: "wrk", runsIn: loadTests, run: (*benchRun).runWrk},
	{name: "TLS", runsIn: loadTests, run: (*benchRun).runTLSHotPath, failed: "the TLS hot path could not be measured"},
	{name: "production path", runsIn: productionPath, run: (*benchRun).runProductionPath, failed: "the production path failed"},
	{name: "cluster", runsIn: clusterModel, run: (*benchRun).runClusterModel, failed: "the cluster model failed"},
	{name: "memory", runsIn: loadTests, run: (*benchRun).measureMemory, failed: "the memory step failed"},
	{name: "micro-benchmarks", runsIn: microBenchmarksWanted, run: (*benchRun).runMicro, failed: "the micro-benchmarks failed"},
}

// servers: the fake STS, the trivial server and the daemon, which every phase but the
// micro-benchmarks measures.
func servers(c Config) bool { return !c.MicroOnly }

// loadTests: the scenarios, wrk, TLS and memory, which a run of one part alone skips.
func loadTests(c Config) bool { return !c.ClusterOnly && !c.WebhookOnly && !c.MicroOnly }

func productionPath(c Config) bool { return !c.ClusterOnly && !c.MicroOnly }

func clusterModel(c Config) bool { return len(c.Cluster) > 0 && !c.WebhookOnly && !c.MicroOnly }

func microBenchmarksWanted(c Config) bool { return c.Micro || c.MicroOnly }

// Run runs the phases cfg selects, then compares the results with the targets and writes
// them.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	b, err := newBenchRun(cfg)
	if err != nil {
		return nil, err
	}
	defer b.close()
	for _, ph := range phases {
		if !ph.runsIn(b.cfg) {
			continue
		}
		if err := ph.run(b, ctx); err != nil {
			if ph.failed == "" {
				return nil, err
			}
			b.res.Notes = append(b.res.Notes, ph.failed+": "+err.Error())
			b.say("NOTICE: %s: %s", ph.name, err)
		}
	}
	return b.finish()
}

// benchRun is one run: its settings, the processes it started, and its results so far.
type benchRun struct {
	cfg      Config
	start    time.Time
	res      *Results
	progress io.Writer
	// tmp holds the processes' logs, the fake's config and the key pairs; profileDir the
	// profiles until keepProfiles saves those of missed targets. Both go at the end.
	tmp, profileDir string
	principals      []loadtest.Principal
	children        []*child

	// What the first phases start, for the others.
	stsAddr    string
	sts        *child
	trivial    *child
	trivialURL string
	daemon     *child
	target     *loadtest.Target // the daemon under test, plain HTTP
}

// newBenchRun fills in cfg's defaults and creates the results and temporary directories.
func newBenchRun(cfg Config) (*benchRun, error) {
	b := &benchRun{cfg: cfg, start: time.Now(), progress: cfg.Progress, principals: loadtest.Principals(principalCount(cfg))}
	if b.cfg.Duration == 0 {
		b.cfg.Duration = 10 * time.Second
		if cfg.Quick {
			b.cfg.Duration = 1500 * time.Millisecond
		}
	}
	if b.cfg.MemoryPoints == nil {
		b.cfg.MemoryPoints = []int{100_000, 1_000_000}
		if cfg.Quick {
			b.cfg.MemoryPoints = []int{20_000}
		}
	}
	if b.cfg.MicroRounds == 0 {
		b.cfg.MicroRounds = defaultMicroRounds
	}
	if b.progress == nil {
		b.progress = io.Discard
	}
	commit := currentCommit()
	b.res = &Results{
		Date:        b.start.UTC().Truncate(time.Second),
		Commit:      commit,
		Quick:       cfg.Quick,
		ClusterOnly: cfg.ClusterOnly,
		WebhookOnly: cfg.WebhookOnly,
		MicroOnly:   cfg.MicroOnly,
		Machine:     machine(),
		LoadStart:   loadAverage(),
	}
	b.res.RunID = runID(b.res)
	if err := os.MkdirAll(cfg.ResultsDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", cfg.ResultsDir, err)
	}
	tmp, err := os.MkdirTemp("", "iamgate-bench-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	b.tmp, b.profileDir = tmp, filepath.Join(tmp, "profiles")
	_ = os.MkdirAll(b.profileDir, 0o755)
	return b, nil
}

// runID names a run's files: its date and commit, after what it ran alone and whether quick.
func runID(r *Results) string {
	id := r.Date.Format("2006-01-02T1504Z") + "-" + r.Commit
	switch {
	case r.ClusterOnly:
		id = "cluster-" + id
	case r.WebhookOnly:
		id = "webhook-" + id
	case r.MicroOnly:
		id = "micro-" + id
	}
	if r.Quick {
		id = "quick-" + id
	}
	return id
}

// close stops every process the run started and removes the temporary directory.
func (b *benchRun) close() {
	for _, c := range b.children {
		c.stop()
	}
	os.RemoveAll(b.tmp)
}

// finish compares the results with the targets, keeps the profiles of missed ones and
// writes the results.
func (b *benchRun) finish() (*Results, error) {
	res := b.res
	res.LoadEnd = loadAverage()
	res.Targets = append(evaluate(res), evaluateWebhook(res.Webhook)...)
	res.ClusterTargets = evaluateCluster(res.Cluster)
	if err := keepProfiles(res, b.cfg.ResultsDir, b.binary("iamgate")); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(b.start).Round(time.Second).String()
	if err := write(res, b.cfg); err != nil {
		return nil, err
	}
	b.say("done in %s: %s", res.Elapsed, filepath.Join(b.cfg.ResultsDir, res.RunID+".json"))
	return res, nil
}

func (b *benchRun) say(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

// binary is the path of one of the binaries `make build` writes.
func (b *benchRun) binary(name string) string { return filepath.Join(b.cfg.Bin, name) }

// startProcess starts args as a child pinned to cpus (none when empty), logging to the
// temporary directory; the run stops it at the end and reports its command line.
func (b *benchRun) startProcess(name, cpus string, args ...string) (*child, error) {
	c, err := startChild(name, b.tmp, cpus, nil, args...)
	if err != nil {
		return nil, err
	}
	b.children = append(b.children, c)
	b.res.Commands = append(b.res.Commands, c.commandLine())
	return c, nil
}

// startDaemon starts bin/iamgate server against the fake STS, with TLS when pki is set (the
// directory of iamgate init's cert.pem and key.pem), and waits until it is ready.
func (b *benchRun) startDaemon(ctx context.Context, name, pki string, extra ...string) (*child, *loadtest.Target, error) {
	return b.startDaemonBinary(ctx, b.binary("iamgate"), name, pki, extra...)
}

// startDaemonBinary is startDaemon with the iamgate binary bin.
func (b *benchRun) startDaemonBinary(ctx context.Context, bin, name, pki string, extra ...string) (*child, *loadtest.Target, error) {
	webhookAddr, err := freeport.Addr()
	if err != nil {
		return nil, nil, err
	}
	internalAddr, err := freeport.Addr()
	if err != nil {
		return nil, nil, err
	}
	args := []string{bin, "server", "-cluster.id", clusterID, "-webhook.listenAddr", webhookAddr,
		"-internal.listenAddr", internalAddr, "-internal.pprof", "-mapping.file", b.cfg.MappingFile,
		"-sts.dialOverride", b.stsAddr, "-sts.insecureHTTP", "-log.level", "warn"}
	scheme := "http"
	if pki == "" {
		args = append(args, "-webhook.insecureNoTLS")
	} else {
		scheme = "https"
		args = append(args, "-tls.certFile", filepath.Join(pki, "cert.pem"), "-tls.keyFile", filepath.Join(pki, "key.pem"))
	}
	args = append(args, extra...)
	d, err := b.startProcess(name, b.cfg.DaemonCPUs, args...)
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
		STS:         fakests.AdminClient{URL: "http://" + b.stsAddr},
		Daemon:      loadtest.Process{PID: d.pid()},
	}, nil
}

// scale divides the request bounds that size the tokens minted in advance (quick: 20).
func (b *benchRun) scale() int {
	if b.cfg.Quick {
		return 20
	}
	return 1
}
