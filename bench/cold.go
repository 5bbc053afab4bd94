package bench

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/freeport"
	"github.com/iamgate/iamgate/loadtest"
)

// The cold path: iamgate answering never-seen tokens (one STS call each) against its limit,
// loadtest.ColdLimit, a webhook that makes one keep-alive HTTPS GET to STS per review (and,
// for an EC2 node, one signed DescribeInstances call) and returns a fixed answer. Both serve TLS, both reach the fake STS over TLS (the daemon as
// https://sts.us-east-1.amazonaws.com through -sts.dialOverride, trusting the fake's CA), and
// wrk posts each request with a token no request before it sent (loadtest.Wrk.Tokens). Each
// iamgate window runs a daemon started for it, so that no token of an earlier window is in its
// caches. Each round runs the limit, iamgate and the compared binary (if any) in the order
// windowOrder gives: over a whole cycle of rounds each runs first, and right before each
// other, equally often.

// Markers of the cold path's section of BENCHMARKS.md.
const (
	coldBeginMarker = "<!-- bench-cold:begin -->"
	coldEndMarker   = "<!-- bench-cold:end -->"
)

// coldUserCount is the number of IAM users the cold path's tokens are minted for: a variant's
// 200,000 take 100 seconds of signing times.
const coldUserCount = 2000

// The cold path's targets: iamgate's CPU per review within coldCPUTarget × the limit's, its
// throughput at least coldRPSTarget × the limit's, at most coldMicrosTarget µs per review.
const (
	coldCPUTarget    = 1.2
	coldRPSTarget    = 0.85
	coldMicrosTarget = 50.0
)

// ColdConfig says what the cold-path measurement runs.
type ColdConfig struct {
	// Bin holds iamgate, fakests and loadtest (make build).
	Bin string
	// ResultsDir receives cold-<run>.json and the profiles.
	ResultsDir string
	// Markdown is the file whose cold-path section is rewritten; empty means none.
	Markdown    string
	MappingFile string
	// DaemonCPUs pins the daemon and the limit, GeneratorCPUs wrk and the fake STS (taskset);
	// empty means no pinning.
	DaemonCPUs, GeneratorCPUs string
	// Duration of each window (10 s), Rounds per variant (3), Concurrency of wrk (50), Tokens
	// the size of each never-seen set (200,000).
	Duration    time.Duration
	Rounds      int
	Concurrency int
	Tokens      int
	// Variants to run (ColdVariants); empty means all.
	Variants []string
	// Profile takes a CPU and an allocation profile of iamgate in one more window per variant,
	// after the rounds (so that profiling costs no measured round anything).
	Profile bool
	// MemoryPoints, when set, runs the identity cache memory step (`loadtest memory`) too.
	MemoryPoints []int
	// DaemonArgs are extra flags of every iamgate server.
	DaemonArgs []string
	// CompareBin, when set, is another iamgate binary (an earlier commit's) measured in every
	// round too, against the same limit: before and after in the same conditions.
	CompareBin string
	// CompareName names it in the report; empty means CompareBin.
	CompareName string
	Progress    io.Writer
}

// ColdVariant is one kind of cold review.
type ColdVariant struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Latency is the fake STS's delay before every answer, and Jitter the most it adds at
	// random (uniform).
	Latency time.Duration `json:"latencyNs"`
	Jitter  time.Duration `json:"jitterNs,omitempty"`
	tokens  coldTokens
}

type coldTokens int

const (
	coldUsers    coldTokens = iota // IAM users of the benchmark account, mapped by mapAccounts
	coldRejected                   // the same, signed with a wrong secret: STS answers 403
	coldNodes                      // EC2 node role sessions, one instance each
)

// ColdVariants are the variants the measurement knows, in the order they run.
var ColdVariants = []ColdVariant{
	{Name: "sts-0ms", Description: "a never-seen IAM user token each review; the fake STS answers at once", tokens: coldUsers},
	{Name: "sts-20ms", Description: "the same with 20 ms of STS latency", Latency: 20 * time.Millisecond, tokens: coldUsers},
	{Name: "sts-20ms-jitter", Description: "the same with 10 to 30 ms of STS latency (uniform, 20 ms on average): " +
		"wrk's connections do not keep in step, as they can with a fixed latency", Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond, tokens: coldUsers},
	{Name: "rejected", Description: "a never-seen token with a bad signature each review (valid shape): STS answers 403 SignatureDoesNotMatch", tokens: coldRejected},
	{Name: "ec2-node", Description: "a never-seen token of an EC2 node role session each review, a new instance each: " +
		"system:node:{{EC2PrivateDNSName}} is resolved through the fake EC2 on first sight; the limit makes one signed DescribeInstances call per review too", tokens: coldNodes},
}

// ColdWindow is one measured window of one server.
type ColdWindow struct {
	RPS          float64 `json:"rps"`
	Requests     int     `json:"requests"`
	CPUPerRevUs  float64 `json:"cpuPerReviewUs"`
	Errors       int     `json:"errors"`
	Non2xx       int     `json:"non2xx"`
	LatencyP50Ms float64 `json:"latencyP50Ms"`
	LatencyP99Ms float64 `json:"latencyP99Ms"`
	// StealPct is the share of the machine's CPU time the hypervisor gave to other guests
	// during the window (/proc/stat's steal): a window with much of it ran on a busy host.
	// Nil where unknown (runs before it was measured).
	StealPct *float64 `json:"hostStealPct,omitempty"`
	// Of iamgate only: STS calls per review (1 when every review was cold), EC2 lookups,
	// identities cached, RSS growth over the window, and sockets open at its end.
	STSCallsPerReview float64            `json:"stsCallsPerReview,omitempty"`
	Outcomes          map[string]float64 `json:"stsOutcomes,omitempty"`
	Reasons           map[string]float64 `json:"reasons,omitempty"`
	EC2Lookups        float64            `json:"ec2Lookups,omitempty"`
	CacheEntries      float64            `json:"cacheEntries,omitempty"`
	RSSGrowth         int64              `json:"rssGrowthBytes,omitempty"`
	RSSPer100k        float64            `json:"rssPer100kIdentitiesMiB,omitempty"`
	Sockets           int                `json:"socketsAtEnd,omitempty"`
}

// steal is StealPct for a report: "3.2%", or "?" where unknown.
func (w *ColdWindow) steal() string {
	if w.StealPct == nil {
		return "?"
	}
	return fmt.Sprintf("%.1f%%", *w.StealPct)
}

// ColdRound is one round of a variant.
type ColdRound struct {
	Order   []string    `json:"order"`
	Limit   *ColdWindow `json:"limit"`
	IAMGate *ColdWindow `json:"iamgate"`
	// Compare is ColdConfig.CompareBin's window, when there is one.
	Compare *ColdWindow `json:"compare,omitempty"`
	// CPURatio and RPSRatio are iamgate's over the limit's; CompareCPURatio and
	// CompareRPSRatio, the compared binary's.
	CPURatio        float64 `json:"cpuRatio"`
	RPSRatio        float64 `json:"rpsRatio"`
	CompareCPURatio float64 `json:"compareCpuRatio,omitempty"`
	CompareRPSRatio float64 `json:"compareRpsRatio,omitempty"`
}

// ColdVariantResult is a variant's rounds and medians.
type ColdVariantResult struct {
	ColdVariant
	Rounds []*ColdRound `json:"rounds"`
	// Medians over the rounds.
	LimitCPUUs, LimitRPS, IAMGateCPUUs, IAMGateRPS, CPURatio, RPSRatio float64
	RSSPer100kMiB                                                      float64
	// Of the compared binary, when there is one.
	CompareCPUUs, CompareRPS, CompareCPURatio, CompareRPSRatio float64
	// Profiles are the files of the profiling window (in ResultsDir), and ProfileTop the top
	// of the CPU profile.
	CPUProfile   string `json:"cpuProfile,omitempty"`
	AllocProfile string `json:"allocProfile,omitempty"`
	ProfileTop   string `json:"profileTop,omitempty"`
}

// ColdResult is the whole cold-path measurement.
type ColdResult struct {
	RunID     string        `json:"runId"`
	Date      time.Time     `json:"date"`
	Commit    string        `json:"commit"`
	Machine   Machine       `json:"machine"`
	Pinning   Pinning       `json:"pinning"`
	LoadStart string        `json:"loadAverageStart"`
	LoadEnd   string        `json:"loadAverageEnd"`
	Elapsed   string        `json:"elapsed"`
	Duration  time.Duration `json:"windowNs"`
	Conc      int           `json:"concurrency"`
	Tokens    int           `json:"tokens"`
	Commands  []string      `json:"commands"`
	// Compare describes ColdConfig.CompareBin, when set.
	Compare  string               `json:"compare,omitempty"`
	Variants []*ColdVariantResult `json:"variants"`
	Memory   *MemoryResult        `json:"memory,omitempty"`
	Targets  []Check              `json:"targets"`
	Notes    []string             `json:"notes,omitempty"`
}

// coldNodeRole is the node role of bench/mapping.yaml: system:node:{{EC2PrivateDNSName}}.
const (
	coldNodeAccount = "111122223333"
	coldNodeRole    = "arn:aws:iam::" + coldNodeAccount + ":role/eks-node-role"
)

// nodeSessions returns n node sessions of coldNodeRole, each on an instance of its own, and the
// fake's instances.
func nodeSessions(n int) ([]loadtest.Principal, []fakests.Session, []fakests.Instance) {
	ps := make([]loadtest.Principal, n)
	sessions := make([]fakests.Session, n)
	instances := make([]fakests.Instance, n)
	for i := range ps {
		id := fmt.Sprintf("i-0c%015x", i)
		ps[i] = loadtest.Principal{
			ARN:         "arn:aws:sts::" + coldNodeAccount + ":assumed-role/eks-node-role/" + id,
			AccessKeyID: fmt.Sprintf("ASIACOLD%012d", i), SecretAccessKey: fmt.Sprintf("cold-node-secret-%d", i),
			SessionToken: fmt.Sprintf("COLDNODESESSION%d", i),
		}
		sessions[i] = fakests.Session{ARN: ps[i].ARN, AccessKeyID: ps[i].AccessKeyID, SecretAccessKey: ps[i].SecretAccessKey, SessionToken: ps[i].SessionToken}
		instances[i] = fakests.Instance{InstanceID: id, PrivateDNSName: fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", i>>16&255, i>>8&255, i&255), OwnerID: coldNodeAccount}
	}
	return ps, sessions, instances
}

// RunColdPath runs the cold-path measurement and writes its results.
func RunColdPath(ctx context.Context, cfg ColdConfig) (*ColdResult, error) {
	start := time.Now()
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = 3
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = concurrency
	}
	if cfg.Tokens == 0 {
		cfg.Tokens = 200_000
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "coldpath: "+format+"\n", args...) }
	var variants []ColdVariant
	for _, v := range ColdVariants {
		if len(cfg.Variants) == 0 || contains(cfg.Variants, v.Name) {
			variants = append(variants, v)
		}
	}
	if len(variants) == 0 {
		return nil, fmt.Errorf("cannot run the cold path: no variant among %v", cfg.Variants)
	}
	if _, err := loadtest.EnsureWrk(); err != nil {
		return nil, err
	}
	commit := currentCommit()
	res := &ColdResult{Date: start.UTC().Truncate(time.Second), Commit: commit, Machine: machine(), LoadStart: loadAverage(),
		Duration: cfg.Duration, Conc: cfg.Concurrency, Tokens: cfg.Tokens}
	res.RunID = "cold-" + res.Date.Format("2006-01-02T1504Z") + "-" + commit
	if cfg.CompareBin != "" {
		res.Compare = cmp.Or(cfg.CompareName, cfg.CompareBin)
	}
	if err := os.MkdirAll(cfg.ResultsDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", cfg.ResultsDir, err)
	}
	tmp, err := os.MkdirTemp("", "iamgate-cold-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	// Principals and tokens: IAM users for the allowed and rejected variants, one node session
	// per token for the EC2 one, and a set apart to warm each daemon up.
	users := loadtest.Principals(coldUserCount)
	stsCfg := loadtest.FakeSTSConfig(users)
	nodeCount := 0
	for _, v := range variants {
		if v.tokens == coldNodes {
			nodeCount = min(cfg.Tokens, 100_000)
		}
	}
	nodes, sessions, instances := nodeSessions(nodeCount)
	stsCfg.Sessions, stsCfg.Instances = sessions, instances
	cfgJSON, err := json.Marshal(stsCfg)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the fake STS config: %w", err)
	}
	stsConfig := filepath.Join(tmp, "fakests.yaml")
	if err := os.WriteFile(stsConfig, cfgJSON, 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the fake STS config: %w", err)
	}
	tokenFiles := map[coldTokens]string{}
	mint := func(kind coldTokens, name string, ps []loadtest.Principal, n int, bad bool) error {
		say("minting %d %s tokens", n, name)
		m := &loadtest.Minter{ClusterID: clusterID, Principals: ps}
		toks, err := m.Fresh(n, bad)
		if err != nil {
			return err
		}
		path := filepath.Join(tmp, name+".tokens")
		if err := os.WriteFile(path, []byte(strings.Join(toks, "\n")+"\n"), 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
		tokenFiles[kind] = path
		return nil
	}
	// Each variant mints its tokens when it starts (they are valid 15 minutes), and warm-up
	// tokens apart: signed 5 minutes earlier, so that none is one of the measured ones.
	warmFile := filepath.Join(tmp, "warm.tokens")
	mintFor := func(v ColdVariant) error {
		warmMinter := &loadtest.Minter{ClusterID: clusterID, Principals: users, Now: func() time.Time { return time.Now().Add(-5 * time.Minute) }}
		warmToks, err := warmMinter.Fresh(20_000, false)
		if err != nil {
			return err
		}
		if err := os.WriteFile(warmFile, []byte(strings.Join(warmToks, "\n")+"\n"), 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", warmFile, err)
		}
		switch v.tokens {
		case coldUsers:
			return mint(coldUsers, "users", users, cfg.Tokens, false)
		case coldRejected:
			return mint(coldRejected, "rejected", users, cfg.Tokens, true)
		default:
			return mint(coldNodes, "nodes", nodes, nodeCount, false)
		}
	}

	var children []*child
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	start1 := func(name, cpus string, env []string, args ...string) (*child, error) {
		c, err := startChild(name, tmp, cpus, env, args...)
		if err != nil {
			return nil, err
		}
		children = append(children, c)
		return c, nil
	}
	record := func(c *child) { res.Commands = append(res.Commands, strings.Join(c.args, " ")) }

	// The fake STS over TLS, its admin endpoints on plain HTTP.
	stsAddr, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	ca := filepath.Join(tmp, "fakests-ca.pem")
	say("starting the fake STS over TLS on %s (%d users, %d node sessions)", stsAddr, len(users), nodeCount)
	sts, err := start1("fakests", cfg.GeneratorCPUs, nil, filepath.Join(cfg.Bin, "fakests"), "-listen", stsAddr, "-tls", "-tls.caFile", ca,
		"-admin.listen", adminAddr, "-config", stsConfig, "-log.level", "warn")
	if err != nil {
		return nil, err
	}
	record(sts)
	// With 100,000 node sessions the fake takes a while to start on a busy machine: a minute.
	for attempt := 1; ; attempt++ {
		err := sts.waitHTTP(ctx, "http://"+adminAddr+"/healthz")
		if err == nil {
			break
		}
		if attempt == 3 || sts.cmd.ProcessState != nil {
			return nil, err
		}
	}
	admin := fakests.AdminClient{URL: "http://" + adminAddr}

	iamgateBin := filepath.Join(cfg.Bin, "iamgate")
	pki, err := ensurePKI(iamgateBin, tmp)
	if err != nil {
		return nil, err
	}
	limitAddr, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	// The EC2 calls of both, to the fake over TLS, signed with a user's key.
	ec2Env := []string{"AWS_ACCESS_KEY_ID=" + users[0].AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + users[0].SecretAccessKey,
		"AWS_CA_BUNDLE=" + ca, "AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1"}
	limit, err := start1("coldlimit", cfg.DaemonCPUs, ec2Env, filepath.Join(cfg.Bin, "loadtest"), "coldlimit", "-listen", limitAddr,
		"-tls.certFile", filepath.Join(pki, "cert.pem"), "-tls.keyFile", filepath.Join(pki, "key.pem"),
		"-sts.dialOverride", stsAddr, "-sts.caFile", ca, "-cluster.id", clusterID,
		"-ec2.endpoint", "https://"+stsAddr, "-ec2.region", "us-east-1")
	if err != nil {
		return nil, err
	}
	record(limit)
	limitURL := "https://" + limitAddr + "/authenticate"
	if err := waitTLS(ctx, limit, "https://"+limitAddr+"/healthz"); err != nil {
		return nil, err
	}
	res.Pinning = Pinning{Daemon: loadtest.Process{PID: limit.pid()}.CPUs(), Generator: loadtest.SelfCPUs(), FakeSTS: loadtest.Process{PID: sts.pid()}.CPUs()}
	say("pinning: the limit and iamgate on CPUs %s; wrk and the fake STS on CPUs %s", res.Pinning.Daemon, res.Pinning.FakeSTS)

	// daemon starts a fresh iamgate over TLS against the fake STS over TLS.
	recorded := false
	daemon := func(bin string) (*child, string, string, error) {
		webhookAddr, err := freeport.Addr()
		if err != nil {
			return nil, "", "", err
		}
		internalAddr, err := freeport.Addr()
		if err != nil {
			return nil, "", "", err
		}
		args := []string{bin, "server", "-cluster.id", clusterID, "-webhook.listenAddr", webhookAddr,
			"-internal.listenAddr", internalAddr, "-internal.pprof", "-mapping.file", cfg.MappingFile,
			"-tls.certFile", filepath.Join(pki, "cert.pem"), "-tls.keyFile", filepath.Join(pki, "key.pem"),
			"-sts.dialOverride", stsAddr, "-sts.caFile", ca, "-log.level", "warn",
			// EC2 names through the fake over TLS; a rate far above EC2's default account limit
			// keeps the lookups from pacing the ec2-node variant (its CPU is what is measured).
			"-ec2.endpoint", "https://" + stsAddr, "-ec2.region", "us-east-1", "-ec2.rateLimit", "1000"}
		args = append(args, cfg.DaemonArgs...)
		d, err := startChild("iamgate", tmp, cfg.DaemonCPUs, ec2Env, args...)
		if err != nil {
			return nil, "", "", err
		}
		if !recorded && bin == iamgateBin {
			record(d)
			recorded = true
		}
		if err := d.waitHTTP(ctx, "http://"+internalAddr+"/readyz"); err != nil {
			d.stop()
			return nil, "", "", err
		}
		return d, "https://" + webhookAddr + "/authenticate?timeout=30s", "http://" + internalAddr, nil
	}

	wrkRun := func(url, tokens string, from int, d time.Duration) (loadtest.WrkResult, error) {
		return loadtest.Wrk{URL: url, Threads: 1, Connections: cfg.Concurrency, Duration: d, Dir: tmp, Tokens: tokens, TokensFrom: from}.Run(ctx)
	}
	window := func(p loadtest.Process, url, tokens string, from int) (*ColdWindow, error) {
		c0, err := p.CPU()
		if err != nil {
			return nil, err
		}
		steal0, total0 := cpuTicks()
		wr, err := wrkRun(url, tokens, from, cfg.Duration)
		if err != nil {
			return nil, err
		}
		steal1, total1 := cpuTicks()
		c1, err := p.CPU()
		if err != nil {
			return nil, err
		}
		return &ColdWindow{RPS: wr.RPS, Requests: wr.Requests, CPUPerRevUs: loadtest.PerOp(c1-c0, float64(wr.Requests)),
			Errors: wr.Errors, Non2xx: wr.Non2xx, LatencyP50Ms: wr.Latency.P50, LatencyP99Ms: wr.Latency.P99,
			StealPct: stealPct(steal0, total0, steal1, total1)}, nil
	}
	// iamgateWindow runs a fresh daemon: a warm-up with tokens apart, then the window.
	iamgateWindow := func(bin string, v ColdVariant, profile string) (*ColdWindow, error) {
		d, url, internal, err := daemon(bin)
		if err != nil {
			return nil, err
		}
		defer d.stop()
		if _, err := wrkRun(url, warmFile, 0, time.Second); err != nil {
			return nil, fmt.Errorf("cannot warm iamgate up: %w", err)
		}
		p := loadtest.Process{PID: d.pid()}
		before, err := loadtest.ScrapeMetrics(internal + "/metrics")
		if err != nil {
			return nil, err
		}
		rss0, _, _ := p.Memory()
		profDone := make(chan error, 1)
		if profile != "" {
			go func() { profDone <- fetchProfile(internal, cfg.Duration, profile) }()
		}
		w, err := window(p, url, tokenFiles[v.tokens], 0)
		if err != nil {
			return nil, err
		}
		if w.Requests > cfg.Tokens {
			// wrk's walk wrapped: the tokens after the first cfg.Tokens were seen before, and
			// a daemon that kept them answers from its cache at a fraction of the cost.
			say("NOTICE: %s: %d requests over %d tokens: some were not new, so this window is not a cold one; raise -cold.tokens",
				v.Name, w.Requests, cfg.Tokens)
		}
		if profile != "" {
			if err := <-profDone; err != nil {
				say("NOTICE: %s", err)
			}
		}
		rss1, _, _ := p.Memory()
		after, err := loadtest.ScrapeMetrics(internal + "/metrics")
		if err != nil {
			return nil, err
		}
		delta := after.Delta(before)
		reviews := delta.Sum("iamgate_reviews_total")
		w.STSCallsPerReview = ratio(delta.Sum("iamgate_sts_requests_total"), reviews)
		w.Outcomes = delta.Labeled("iamgate_sts_requests_total", "outcome")
		w.Reasons = delta.Labeled("iamgate_reviews_total", "reason")
		w.EC2Lookups = delta.Sum("iamgate_ec2_lookups_total")
		w.CacheEntries = after.Sum("iamgate_cache_entries") - before.Sum("iamgate_cache_entries")
		w.RSSGrowth = rss1 - rss0
		// Per 100k identities only when the window cached many: a few (the warm-up's, say)
		// would turn any RSS movement into a huge figure.
		if w.CacheEntries >= 10_000 {
			w.RSSPer100k = float64(w.RSSGrowth) / w.CacheEntries * 100_000 / (1 << 20)
		}
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid())); err == nil {
			w.Sockets = len(fds)
		}
		return w, nil
	}

	for _, v := range variants {
		if err := mintFor(v); err != nil {
			return nil, err
		}
		mintedAt := time.Now()
		if err := admin.SetFaults(fakests.Faults{Latency: fakests.Duration(v.Latency), Jitter: fakests.Duration(v.Jitter)}); err != nil {
			return nil, err
		}
		vr := &ColdVariantResult{ColdVariant: v}
		limitProc := loadtest.Process{PID: limit.pid()}
		for r := range cfg.Rounds {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if time.Since(mintedAt) > 9*time.Minute { // the warm-up tokens expire at 10
				res.Notes = append(res.Notes, v.Name+" stopped early: its tokens expire 15 minutes after they were minted")
				break
			}
			runs := []string{"limit", "iamgate"}
			if cfg.CompareBin != "" {
				runs = append(runs, "compare")
			}
			rd := &ColdRound{Order: windowOrder(runs, r)}
			for _, which := range rd.Order {
				var err error
				switch which {
				case "limit":
					// The limit has no cache: any tokens of the set are as cold to it.
					rd.Limit, err = window(limitProc, limitURL, tokenFiles[v.tokens], cfg.Tokens/2)
				case "iamgate":
					rd.IAMGate, err = iamgateWindow(iamgateBin, v, "")
				default:
					rd.Compare, err = iamgateWindow(cfg.CompareBin, v, "")
				}
				if err != nil {
					return nil, fmt.Errorf("cannot run %s round %d (%s): %w", v.Name, r+1, which, err)
				}
			}
			rd.CPURatio = ratio(rd.IAMGate.CPUPerRevUs, rd.Limit.CPUPerRevUs)
			rd.RPSRatio = ratio(rd.IAMGate.RPS, rd.Limit.RPS)
			if rd.Compare != nil {
				rd.CompareCPURatio = ratio(rd.Compare.CPUPerRevUs, rd.Limit.CPUPerRevUs)
				rd.CompareRPSRatio = ratio(rd.Compare.RPS, rd.Limit.RPS)
				say("%s round %d/%d: compared binary %.0f/s %.1f µs/review (%.2f STS calls/review, steal %s); CPU ×%.2f, throughput ×%.2f",
					v.Name, r+1, cfg.Rounds, rd.Compare.RPS, rd.Compare.CPUPerRevUs, rd.Compare.STSCallsPerReview, rd.Compare.steal(), rd.CompareCPURatio, rd.CompareRPSRatio)
			}
			vr.Rounds = append(vr.Rounds, rd)
			say("%s round %d/%d: limit %.0f/s %.1f µs/review (steal %s); iamgate %.0f/s %.1f µs/review (%.2f STS calls/review, %d errors, %d non-2xx, steal %s); CPU ×%.2f, throughput ×%.2f",
				v.Name, r+1, cfg.Rounds, rd.Limit.RPS, rd.Limit.CPUPerRevUs, rd.Limit.steal(), rd.IAMGate.RPS, rd.IAMGate.CPUPerRevUs,
				rd.IAMGate.STSCallsPerReview, rd.IAMGate.Errors, rd.IAMGate.Non2xx, rd.IAMGate.steal(), rd.CPURatio, rd.RPSRatio)
		}
		if cfg.Profile {
			base := filepath.Join(cfg.ResultsDir, res.RunID+"-"+v.Name)
			say("%s: profiling iamgate in one more window", v.Name)
			if _, err := iamgateWindow(iamgateBin, v, base); err != nil {
				return nil, err
			}
			vr.CPUProfile, vr.AllocProfile = base+"-cpu.pb.gz", base+"-allocs.pb.gz"
			vr.ProfileTop = pprofTop(iamgateBin, vr.CPUProfile, 25)
		}
		vr.summarize()
		res.Variants = append(res.Variants, vr)
	}
	if err := admin.SetFaults(fakests.Faults{}); err != nil {
		return nil, err
	}

	if len(cfg.MemoryPoints) > 0 {
		say("memory: caching %v distinct identities in an in-process daemon", cfg.MemoryPoints)
		mem, err := memoryStep(ctx, progress, filepath.Join(cfg.Bin, "loadtest"), cfg.MemoryPoints, "")
		if err != nil {
			res.Notes = append(res.Notes, "the memory step failed: "+err.Error())
		} else {
			res.Memory = mem
		}
	}
	res.Targets = evaluateCold(res)
	res.LoadEnd = loadAverage()
	res.Elapsed = time.Since(start).Round(time.Second).String()
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cannot encode the cold-path results: %w", err)
	}
	jsonFile := filepath.Join(cfg.ResultsDir, res.RunID+".json")
	if err := os.WriteFile(jsonFile, data, 0o644); err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", jsonFile, err)
	}
	if cfg.Markdown != "" {
		rel, err := filepath.Rel(filepath.Dir(cfg.Markdown), jsonFile)
		if err != nil {
			rel = jsonFile
		}
		if err := updateSection(cfg.Markdown, coldBeginMarker, coldEndMarker, ColdMarkdown(res, rel), true); err != nil {
			return nil, err
		}
	}
	say("done in %s: %s", res.Elapsed, jsonFile)
	return res, nil
}

// windowOrder is the order of round r's runs, a Williams design: round r shifts the sequence
// 0, 1, n-1, 2, n-2, … by r, and for an odd number of runs the second n rounds are the first
// n's mirror images. Over a cycle (n rounds, 2n for odd n) each run takes each place equally
// often and runs right before each other run equally often, so that neither a window's place
// nor the one before it (a warm cache, a machine still busy with the last daemon's exit)
// favours one run. A plain rotation of three put iamgate right before the compared binary in
// two rounds of three.
func windowOrder[T any](runs []T, r int) []T {
	n := len(runs)
	order := make([]T, n)
	for j := range order {
		k := (n - j/2) % n // 0, n-1, n-2, … in the even places
		if j%2 == 1 {
			k = (j + 1) / 2 // 1, 2, 3, … in the odd ones
		}
		order[j] = runs[(k+r)%n]
	}
	if n%2 == 1 && (r/n)%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

func (v *ColdVariantResult) summarize() {
	var lc, lr, ic, ir, cr, rr, mem, kc, kr, kcr, krr []float64
	for _, rd := range v.Rounds {
		if rd.Compare != nil {
			kc, kr = append(kc, rd.Compare.CPUPerRevUs), append(kr, rd.Compare.RPS)
			kcr, krr = append(kcr, rd.CompareCPURatio), append(krr, rd.CompareRPSRatio)
		}
		lc, lr = append(lc, rd.Limit.CPUPerRevUs), append(lr, rd.Limit.RPS)
		ic, ir = append(ic, rd.IAMGate.CPUPerRevUs), append(ir, rd.IAMGate.RPS)
		cr, rr = append(cr, rd.CPURatio), append(rr, rd.RPSRatio)
		if rd.IAMGate.RSSPer100k > 0 {
			mem = append(mem, rd.IAMGate.RSSPer100k)
		}
	}
	v.LimitCPUUs, v.LimitRPS, v.IAMGateCPUUs, v.IAMGateRPS = median(lc), median(lr), median(ic), median(ir)
	v.CPURatio, v.RPSRatio, v.RSSPer100kMiB = median(cr), median(rr), median(mem)
	v.CompareCPUUs, v.CompareRPS, v.CompareCPURatio, v.CompareRPSRatio = median(kc), median(kr), median(kcr), median(krr)
}

// evaluateCold checks the targets on the variants that have them: every one for the CPU
// ratio and the µs, the allowed ones for throughput; the 20 ms variant must cost no more CPU
// per review than the 0 ms one.
func evaluateCold(r *ColdResult) []Check {
	var checks []Check
	var at0, at20 *ColdVariantResult
	for _, v := range r.Variants {
		if len(v.Rounds) == 0 {
			continue
		}
		switch v.Name {
		case "sts-0ms":
			at0 = v
		case "sts-20ms":
			at20 = v
		}
		sc := "cold path (" + v.Name + ")"
		checks = append(checks,
			Check{Scenario: sc, Target: fmt.Sprintf("iamgate CPU per review ≤ %.1f × the limit's", coldCPUTarget),
				Got: fmt.Sprintf("%.2f× (%.1f µs against %.1f µs)", v.CPURatio, v.IAMGateCPUUs, v.LimitCPUUs), Met: v.CPURatio <= coldCPUTarget},
			Check{Scenario: sc, Target: fmt.Sprintf("iamgate throughput ≥ %.2f × the limit's", coldRPSTarget),
				Got: fmt.Sprintf("%.2f× (%.0f/s against %.0f/s)", v.RPSRatio, v.IAMGateRPS, v.LimitRPS), Met: v.RPSRatio >= coldRPSTarget},
			// The limit's own figure beside it: on a machine where the limit costs more than the
			// bound, no webhook that asks STS meets it.
			Check{Scenario: sc, Target: fmt.Sprintf("iamgate CPU per review ≤ %.0f µs", coldMicrosTarget),
				Got: fmt.Sprintf("%.1f µs (the limit itself %.1f µs)", v.IAMGateCPUUs, v.LimitCPUUs), Met: v.IAMGateCPUUs <= coldMicrosTarget})
	}
	if at0 != nil && at20 != nil {
		checks = append(checks, Check{Scenario: "cold path (sts-20ms)", Target: "iamgate CPU per review with 20 ms of STS latency ≤ without (within 5 %)",
			Got: fmt.Sprintf("%.1f µs against %.1f µs (×%.2f; the limit ×%.2f)", at20.IAMGateCPUUs, at0.IAMGateCPUUs,
				ratio(at20.IAMGateCPUUs, at0.IAMGateCPUUs), ratio(at20.LimitCPUUs, at0.LimitCPUUs)),
			Met: at20.IAMGateCPUUs <= 1.05*at0.IAMGateCPUUs})
	}
	return checks
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// waitTLS polls an HTTPS health URL of a child whose certificate this process does not
// trust (the pki's CA is the child's business): any answer means it is up.
func waitTLS(ctx context.Context, c *child, url string) error {
	if err := loadtest.CheckLoopbackURL(url); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second, Transport: insecureLoopbackTransport()}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cannot get %s ready at %s:\n%s", c.name, url, c.tail())
}

// fetchProfile writes a CPU profile of d (minus a second) and the allocations over it to
// base-cpu.pb.gz and base-allocs.pb.gz (a delta profile of the same window).
func fetchProfile(internal string, d time.Duration, base string) error {
	secs := max(1, int(d/time.Second)-1)
	errc := make(chan error, 1)
	go func() {
		errc <- fetchTo(fmt.Sprintf("%s/debug/pprof/allocs?seconds=%d", internal, secs), base+"-allocs.pb.gz", secs)
	}()
	err := fetchTo(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", internal, secs), base+"-cpu.pb.gz", secs)
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

func fetchTo(url, path string, secs int) error {
	c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return fmt.Errorf("cannot get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot get %s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// insecureLoopbackTransport skips certificate checks: only for waitTLS's health polls of a
// loopback child.
func insecureLoopbackTransport() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback health poll only
}

// pprofTop is the first n lines of `go tool pprof -top` of a CPU profile, without the lines
// the file name says.
func pprofTop(bin, profile string, n int) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", n), bin, profile).Output()
	if err != nil {
		return ""
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "File:") && !strings.HasPrefix(line, "Build ID:") && !strings.HasPrefix(line, "Time:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// ColdMarkdown renders the cold path's generated section of BENCHMARKS.md, with the results
// file jsonFile (relative to the markdown file).
func ColdMarkdown(r *ColdResult, jsonFile string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("### Measured: iamgate's cold reviews against the cold-path limit\n\n")
	p("_Generated by `bin/loadtest coldpath` (code in `bench/cold.go`, `loadtest/coldlimit.go`); everything between the markers is rewritten by each run._\n\n")
	runRows(p, r.RunID, jsonFile, r.Date, r.Commit, r.Machine, r.LoadStart, r.LoadEnd)
	p("| pinning (taskset) | the limit and iamgate on CPU %s; wrk and the fake STS on CPU %s |\n", r.Pinning.Daemon, r.Pinning.FakeSTS)
	p("| elapsed | %s |\n\n", r.Elapsed)
	p("wrk -t1 -c%d, %s windows, a never-seen token on every request (a set of %d per variant, minted when the variant starts, "+
		"from a file wrk's script walks); each round measures the limit and iamgate (and the compared binary, if any) one after "+
		"the other, in a balanced order (each first, and right before each other, equally often over a cycle of rounds: 2 rounds for two, 6 for three); each iamgate window runs a daemon started for it. CPU per "+
		"review: user + system time of the server process from `/proc/<pid>/stat` over the window divided by wrk's requests. "+
		"Ratios are iamgate's over the limit's, per round; the tables give medians over rounds.\n\n",
		r.Conc, r.Duration, r.Tokens)
	p("| variant | limit µs/review | limit reviews/s | iamgate µs/review | iamgate reviews/s | CPU × limit | throughput × limit | iamgate RSS growth per 100k identities |\n")
	p("|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, v := range r.Variants {
		p("| %s | %.1f | %.0f | %.1f | %.0f | **%.2f** | **%.2f** | %.1f MiB |\n", v.Name, v.LimitCPUUs, v.LimitRPS, v.IAMGateCPUUs, v.IAMGateRPS,
			v.CPURatio, v.RPSRatio, v.RSSPer100kMiB)
	}
	if r.Compare != "" {
		p("\nThe compared binary, %s, in the same rounds (medians):\n\n", r.Compare)
		p("| variant | µs/review | reviews/s | CPU × limit | throughput × limit | this commit's CPU ÷ its |\n|---|--:|--:|--:|--:|--:|\n")
		for _, v := range r.Variants {
			p("| %s | %.1f | %.0f | %.2f | %.2f | %.2f |\n", v.Name, v.CompareCPUUs, v.CompareRPS, v.CompareCPURatio, v.CompareRPSRatio, ratio(v.CPURatio, v.CompareCPURatio))
		}
	}
	p("\nThe variants:\n\n")
	for _, v := range r.Variants {
		p("- **%s**: %s.\n", v.Name, v.Description)
	}
	p("\nEvery round (reviews/s and µs/review of each server; iamgate's STS calls per review, errors and non-2xx answers; " +
		"the share of the machine's CPU time the hypervisor gave to other guests in each window, /proc/stat's steal: a round with much of it ran on a busy host; " +
		"the compared binary's window, if any):\n\n")
	p("| variant | round | order | limit | iamgate | STS calls/review | errors, non-2xx | CPU × limit | throughput × limit | host steal | compared |\n|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, v := range r.Variants {
		for i, rd := range v.Rounds {
			compared := "—"
			steal := rd.Limit.steal() + ", " + rd.IAMGate.steal()
			if c := rd.Compare; c != nil {
				compared = fmt.Sprintf("%.0f/s, %.1f µs (×%.2f, ×%.2f)", c.RPS, c.CPUPerRevUs, rd.CompareCPURatio, rd.CompareRPSRatio)
				steal += ", " + c.steal()
			}
			p("| %s | %d | %s | %.0f/s, %.1f µs | %.0f/s, %.1f µs | %.3f | %d, %d | %.2f | %.2f | %s | %s |\n", v.Name, i+1, strings.Join(rd.Order, ", "),
				rd.Limit.RPS, rd.Limit.CPUPerRevUs, rd.IAMGate.RPS, rd.IAMGate.CPUPerRevUs, rd.IAMGate.STSCallsPerReview,
				rd.IAMGate.Errors, rd.IAMGate.Non2xx, rd.CPURatio, rd.RPSRatio, steal, compared)
		}
	}
	if m := r.Memory; m != nil && len(m.Points) > 0 {
		last := m.Points[len(m.Points)-1]
		p("\nThe identity cache's own bytes per identity (the memory step, `loadtest memory`, whose cache is bounded by %[3]d bytes): %.0[1]f B at %[2]d identities.\n",
			last.BytesPerID, last.Identities, m.CacheMaxBytes)
	}
	p("\n#### Targets of the cold path\n\n| target | measured | |\n|---|---|---|\n")
	for _, c := range r.Targets {
		mark := "met"
		if !c.Met {
			mark = "**missed**"
		}
		p("| %s: %s | %s | %s |\n", c.Scenario, c.Target, c.Got, mark)
	}
	for _, v := range r.Variants {
		if v.ProfileTop != "" {
			p("\nProfile of iamgate in a window after the rounds, %s, `%s` (`go tool pprof -top`):\n\n```\n%s\n```\n", v.Name, filepath.Base(v.CPUProfile), v.ProfileTop)
		}
	}
	for _, n := range r.Notes {
		p("\nNote: %s\n", n)
	}
	p("\n#### Commands\n\n```\nbin/loadtest coldpath\n")
	for _, c := range r.Commands {
		p("%s\n", c)
	}
	p("```\n")
	return b.String()
}

// RenderCold writes the cold path's section of markdown again from a results file
// (bench/results/cold-*.json), with the current tables; it runs nothing.
func RenderCold(jsonFile, markdown string) error {
	data, err := os.ReadFile(jsonFile)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", jsonFile, err)
	}
	var res ColdResult
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("cannot decode %s: %w", jsonFile, err)
	}
	res.Targets = evaluateCold(&res) // as the current code words them
	rel, err := filepath.Rel(filepath.Dir(markdown), jsonFile)
	if err != nil {
		rel = jsonFile
	}
	return updateSection(markdown, coldBeginMarker, coldEndMarker, ColdMarkdown(&res, rel), true)
}
