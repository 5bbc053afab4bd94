package loadtest

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// Kinds of scenario: what tokens the requests carry.
const (
	// KindHot sends one token, reviewed once before the run so that it is cached.
	KindHot = "hot"
	// KindWarm cycles through Tokens tokens, cached before the run.
	KindWarm = "warm"
	// KindCold sends a new token with every request: each needs one STS call.
	KindCold = "cold"
	// KindHerd sends each new token Herd times in a row: Herd concurrent reviews of one token
	// must share one STS call.
	KindHerd = "herd"
	// KindInvalid cycles through Tokens expired tokens: rejected locally, no STS call.
	KindInvalid = "invalid"
	// KindBadSignature cycles through Tokens tokens signed with a wrong secret: STS rejects
	// each once, then the negative cache answers.
	KindBadSignature = "badsig"
	// KindOutage cycles through Tokens cached tokens with a new token every NewEvery
	// requests, and makes the fake STS fail every call from the middle of the run on.
	KindOutage = "outage"
	// KindWebhookCold sends a new token with every request, as KindCold, through
	// kube-apiserver's own webhook client (RunWebhook) instead of hey: the production path.
	KindWebhookCold = "webhook-cold"
)

// Scenario is one load: a kind of token stream, a concurrency, bounds, and the faults of the
// fake STS during the run.
type Scenario struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Concurrency int    `json:"concurrency"`
	// Requests and Duration bound the run (both apply). For cold, herd and throttled runs
	// Requests also sizes the tokens minted in advance.
	Requests int           `json:"requests"`
	Duration time.Duration `json:"durationNs"`
	// Tokens is the number of distinct tokens of warm, invalid, bad-signature and outage runs.
	Tokens int `json:"tokens,omitempty"`
	// Herd is the number of reviews per token of a herd run.
	Herd int `json:"herd,omitempty"`
	// NewEvery puts a new token in every NewEvery-th request of an outage run.
	NewEvery int `json:"newEvery,omitempty"`
	// QPS paces a hey run at about this many requests per second (0: as fast as it can).
	QPS float64 `json:"qps,omitempty"`
	// Bursts paces QPS as hey alone does (loadtest.Load.Bursts).
	Bursts bool `json:"bursts,omitempty"`
	// Faults are set on the fake STS for the run and cleared after it.
	Faults fakests.Faults `json:"faults"`
	// Profile takes a CPU profile of the daemon during the run.
	Profile bool `json:"profile,omitempty"`
}

// maxOutageNew bounds the new tokens minted for an outage run.
const maxOutageNew = 20_000

// Target is a running daemon and its fake STS.
type Target struct {
	// WebhookURL is the daemon's POST /authenticate URL; InternalURL is the base URL of its
	// internal listener (/metrics, and /debug/pprof/ when the daemon runs with -internal.pprof).
	WebhookURL  string
	InternalURL string
	STS         fakests.AdminClient
	// Daemon is the daemon's process; PID 0 skips CPU and memory (an in-process daemon).
	Daemon Process
	Minter *Minter
	// Progress receives progress lines; nil means none.
	Progress io.Writer
	// ProfileDir receives CPU profiles (name.pb.gz) of scenarios that ask for one.
	ProfileDir string
	// CAFile is the PEM CA of the webhook's certificate, for the webhook client of
	// KindWebhookCold over TLS (hey skips verification).
	CAFile string
}

// Report is everything measured in one scenario.
type Report struct {
	Scenario  Scenario `json:"scenario"`
	Generator string   `json:"generator"`
	Result
	// Reviews counts the daemon's answers during the run (iamgate_reviews_total) by result
	// (allowed, denied, error) and by reason.
	Reviews  float64            `json:"reviews"`
	ByResult map[string]float64 `json:"byResult"`
	ByReason map[string]float64 `json:"byReason"`
	// DistinctTokens is the tokens the run presented, each once or more.
	DistinctTokens int `json:"distinctTokens"`
	// STSCalls is the fake STS's GetCallerIdentity count during the run, by outcome too.
	STSCalls         uint64            `json:"stsCalls"`
	STSByOutcome     map[string]uint64 `json:"stsByOutcome,omitempty"`
	STSCallsPerRev   float64           `json:"stsCallsPerReview"`
	STSCallsPerToken float64           `json:"stsCallsPerDistinctToken"`
	// Collapsed is iamgate_sts_collapsed_total during the run.
	Collapsed     float64 `json:"collapsed"`
	CacheHitRatio float64 `json:"cacheHitRatio"`
	// DaemonP99 bounds the p99 of the daemon's own review latency: the upper bound, in ms, of
	// the iamgate_review_duration_seconds bucket that holds it (what the daemon takes, without
	// the generator and the network; -1 means above the largest bucket). STSP99 bounds the p99
	// of its STS calls (iamgate_sts_request_duration_seconds) likewise.
	DaemonP99 float64 `json:"daemonP99Ms"`
	STSP99    float64 `json:"stsP99Ms,omitempty"`
	// CacheEntries is iamgate_cache_entries at the end of the run (identities and cached
	// rejections, every scenario so far).
	CacheEntries float64 `json:"cacheEntriesEnd"`
	// DaemonCPU is the daemon's CPU time during the run; per review in microseconds.
	DaemonCPU         time.Duration `json:"daemonCpuNs"`
	DaemonCPUPerRevUs float64       `json:"daemonCpuPerReviewUs"`
	// DaemonSysShare is the share of DaemonCPU spent in the kernel (stime): socket I/O.
	DaemonSysShare     float64 `json:"daemonSysShare"`
	GeneratorCPUPerReq float64 `json:"generatorCpuPerRequestUs"`
	// DaemonPeakRSS is VmHWM at the end of the run; PeakReset says whether it was reset to
	// the current RSS before the run (else it is the peak since the daemon started).
	DaemonPeakRSS int64 `json:"daemonPeakRssBytes"`
	PeakReset     bool  `json:"peakRssReset"`
	// Profile is the file of the CPU profile taken during the run, if any.
	Profile string `json:"profile,omitempty"`
	// Connections is iamgate_webhook_connections_total during the run (connections the
	// daemon accepted), by protocol too; per review.
	Connections           float64            `json:"connections"`
	ConnectionsByProtocol map[string]float64 `json:"connectionsByProtocol,omitempty"`
	ConnectionsPerReview  float64            `json:"connectionsPerReview"`
	// RequestsByProtocol is iamgate_webhook_requests_total during the run, by protocol.
	RequestsByProtocol map[string]float64 `json:"requestsByProtocol,omitempty"`
}

// tokenSupply says which tokens a scenario's requests carry, and so how many distinct tokens a
// run of n requests presents: the denominator of STS calls per token.
type tokenSupply struct {
	kind supplyKind
	// tokens is the fixed tokens of fixedTokens, the cached ones of cachedAndNew.
	tokens int
	// every is the reviews per token of newTokenPerHerd; cachedAndNew puts a new token in
	// every every-th request.
	every int
}

type supplyKind int

const (
	// fixedTokens: the same tokens in turn (hot, warm, invalid, badsig).
	fixedTokens supplyKind = iota
	// newTokenPerRequest: a never-seen token in every request (cold, webhook-cold).
	newTokenPerRequest
	// newTokenPerHerd: each new token in every requests in a row (herd).
	newTokenPerHerd
	// cachedAndNew: cached tokens in turn, and a new one in every every-th request, at most
	// maxOutageNew (outage).
	cachedAndNew
)

// distinct is the number of distinct tokens presented by a run of n requests.
func (s tokenSupply) distinct(n int) int {
	switch s.kind {
	case newTokenPerRequest:
		return n
	case newTokenPerHerd:
		return (n + s.every - 1) / s.every
	case cachedAndNew:
		return min(s.tokens, n) + min(n/s.every, maxOutageNew)
	}
	return s.tokens
}

// preparedLoad is a scenario ready to send: hey's load, or the tokens of the webhook client.
type preparedLoad struct {
	load   Load
	tokens []string // KindWebhookCold's, one per request
	supply tokenSupply
}

// Run prepares the tokens of sc, runs it against t and measures it.
func (t *Target) Run(ctx context.Context, sc Scenario) (*Report, error) {
	for _, u := range []string{t.WebhookURL, t.STS.URL} {
		if err := CheckLoopbackURL(u); err != nil {
			return nil, err
		}
	}
	pl, err := t.prepare(sc)
	if err != nil {
		return nil, err
	}
	if err := t.STS.SetFaults(sc.Faults); err != nil {
		return nil, err
	}
	defer func() { _ = t.STS.SetFaults(fakests.Faults{}) }()
	rep := &Report{Scenario: sc, Generator: "hey"}
	if sc.Kind == KindWebhookCold {
		rep.Generator = "k8s.io/apiserver webhook client"
	}
	before, err := t.startMeasuring(sc, rep)
	if err != nil {
		return nil, err
	}
	if sc.Kind == KindWebhookCold {
		rep.Result, err = RunWebhook(ctx, WebhookLoad{Name: sc.Name, URL: t.WebhookURL, CAFile: t.CAFile, Tokens: pl.tokens,
			Concurrency: sc.Concurrency, Duration: sc.Duration, Progress: t.Progress})
	} else {
		rep.Result, err = Run(ctx, pl.load)
	}
	if err != nil {
		return nil, err
	}
	if err := t.finishMeasuring(rep, before); err != nil {
		return nil, err
	}
	rep.DistinctTokens = pl.supply.distinct(rep.Requests)
	rep.STSCallsPerRev = Ratio(float64(rep.STSCalls), rep.Reviews)
	rep.STSCallsPerToken = Ratio(float64(rep.STSCalls), float64(rep.DistinctTokens))
	rep.DaemonCPUPerRevUs = PerOp(rep.DaemonCPU, rep.Reviews)
	rep.GeneratorCPUPerReq = PerOp(rep.GeneratorCPU, float64(rep.Requests))
	return rep, nil
}

// prepare mints the tokens of sc, reviews once those the run must find cached, and builds
// the load that sends them.
func (t *Target) prepare(sc Scenario) (*preparedLoad, error) {
	pl := &preparedLoad{load: Load{
		Name: sc.Name, URL: t.WebhookURL, Concurrency: sc.Concurrency, Requests: sc.Requests,
		Duration: sc.Duration, Progress: t.Progress, QPS: sc.QPS, Bursts: sc.Bursts,
	}}
	switch sc.Kind {
	case KindHot, KindWarm:
		n := 1
		if sc.Kind == KindWarm {
			n = max(1, sc.Tokens)
		}
		toks, err := t.Minter.Fresh(n, false)
		if err != nil {
			return nil, err
		}
		pl.load.Bodies = ReviewBodies(toks)
		if err := t.warm(pl.load.Bodies); err != nil {
			return nil, err
		}
		pl.supply = tokenSupply{kind: fixedTokens, tokens: n}
	case KindCold, KindWebhookCold:
		toks, err := t.Minter.Fresh(sc.Requests, false)
		if err != nil {
			return nil, err
		}
		pl.tokens = toks
		pl.load.Bodies = ReviewBodies(toks)
		pl.supply = tokenSupply{kind: newTokenPerRequest}
	case KindHerd:
		herd := max(1, sc.Herd)
		toks, err := t.Minter.Fresh((sc.Requests+herd-1)/herd, false)
		if err != nil {
			return nil, err
		}
		pl.load.Bodies = ReviewBodies(toks)
		pl.load.Pick = func(i int) int { return i / herd }
		pl.supply = tokenSupply{kind: newTokenPerHerd, every: herd}
	case KindInvalid:
		toks, err := t.Minter.Expired(max(1, sc.Tokens))
		if err != nil {
			return nil, err
		}
		pl.load.Bodies = ReviewBodies(toks)
		pl.supply = tokenSupply{kind: fixedTokens, tokens: len(toks)}
	case KindBadSignature:
		toks, err := t.Minter.Fresh(max(1, sc.Tokens), true)
		if err != nil {
			return nil, err
		}
		pl.load.Bodies = ReviewBodies(toks)
		pl.supply = tokenSupply{kind: fixedTokens, tokens: len(toks)}
	case KindOutage:
		if err := t.prepareOutage(sc, pl); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("cannot run scenario %q: unknown kind %q", sc.Name, sc.Kind)
	}
	return pl, nil
}

// prepareOutage builds an outage run: cached tokens in turn, a new token every NewEvery-th
// request, and the fake STS down from halfway through.
func (t *Target) prepareOutage(sc Scenario, pl *preparedLoad) error {
	every := max(2, sc.NewEvery)
	cached, err := t.Minter.Fresh(max(1, sc.Tokens), false)
	if err != nil {
		return err
	}
	// At most maxOutageNew new tokens; a longer run cycles through them (then they are
	// cached, or not when STS was down for them).
	fresh, err := t.Minter.Fresh(min(sc.Requests/every+1, maxOutageNew), false)
	if err != nil {
		return err
	}
	if err := t.warm(ReviewBodies(cached)); err != nil {
		return err
	}
	pl.load.Bodies = append(ReviewBodies(cached), ReviewBodies(fresh)...)
	nc := len(cached)
	pl.load.Pick = func(i int) int {
		if i%every == every-1 {
			return nc + (i/every)%len(fresh)
		}
		return i % nc
	}
	pl.load.AtHalfway = func() {
		f := sc.Faults
		f.Outage = true
		if err := t.STS.SetFaults(f); err != nil && t.Progress != nil {
			fmt.Fprintf(t.Progress, "loadtest: %s: %s\n", sc.Name, err)
		}
	}
	pl.supply = tokenSupply{kind: cachedAndNew, tokens: nc, every: every}
	return nil
}

// measurement is what a run's figures are differences from: the daemon's metrics and CPU
// time before it, and the CPU profile taken during it.
type measurement struct {
	metrics    Metrics
	user, sys  time.Duration
	profileOut chan string
}

// startMeasuring resets the daemon's peak RSS and the fake STS's counters, reads the daemon's
// metrics and CPU time, and starts the CPU profile sc asks for.
func (t *Target) startMeasuring(sc Scenario, rep *Report) (*measurement, error) {
	if t.Daemon.PID != 0 {
		rep.PeakReset = t.Daemon.ResetPeak() == nil
	}
	if err := t.STS.ResetStats(); err != nil {
		return nil, err
	}
	m := &measurement{profileOut: make(chan string, 1)}
	var err error
	if m.metrics, err = ScrapeMetrics(t.InternalURL + "/metrics"); err != nil {
		return nil, err
	}
	if t.Daemon.PID != 0 {
		if m.user, m.sys, err = t.Daemon.CPUSplit(); err != nil {
			return nil, err
		}
	}
	if sc.Profile && t.ProfileDir != "" {
		go func() { m.profileOut <- t.Profile(sc) }()
	} else {
		m.profileOut <- ""
	}
	return m, nil
}

// finishMeasuring fills rep with what the daemon and the fake STS did since before.
func (t *Target) finishMeasuring(rep *Report, before *measurement) error {
	if t.Daemon.PID != 0 {
		user, sys, err := t.Daemon.CPUSplit()
		if err != nil {
			return err
		}
		rep.DaemonCPU = user - before.user + sys - before.sys
		rep.DaemonSysShare = Ratio(float64(sys-before.sys), float64(rep.DaemonCPU))
		_, rep.DaemonPeakRSS, _ = t.Daemon.Memory()
	}
	rep.Profile = <-before.profileOut
	after, err := ScrapeMetrics(t.InternalURL + "/metrics")
	if err != nil {
		return err
	}
	st, err := t.STS.Stats()
	if err != nil {
		return err
	}
	d := after.Delta(before.metrics)
	rep.Reviews = d.Sum("iamgate_reviews_total")
	rep.ByResult = d.Labeled("iamgate_reviews_total", "result")
	rep.ByReason = d.Labeled("iamgate_reviews_total", "reason")
	rep.Collapsed = d.Sum("iamgate_sts_collapsed_total")
	rep.Connections = d.Sum("iamgate_webhook_connections_total")
	rep.ConnectionsByProtocol = d.Labeled("iamgate_webhook_connections_total", "protocol")
	rep.ConnectionsPerReview = Ratio(rep.Connections, rep.Reviews)
	rep.RequestsByProtocol = d.Labeled("iamgate_webhook_requests_total", "protocol")
	rep.CacheEntries = after.Sum("iamgate_cache_entries")
	if v, ok := d.QuantileBound("iamgate_review_duration_seconds", 0.99); ok {
		rep.DaemonP99 = msBound(v)
	}
	if v, ok := d.QuantileBound("iamgate_sts_request_duration_seconds", 0.99); ok {
		rep.STSP99 = msBound(v)
	}
	hits, misses := d.Sum("iamgate_cache_hits_total"), d.Sum("iamgate_cache_misses_total")
	rep.CacheHitRatio = Ratio(hits, hits+misses)
	rep.STSCalls = st.Total(fakests.ActionGetCallerIdentity)
	rep.STSByOutcome = st.Calls[fakests.ActionGetCallerIdentity]
	return nil
}

// warm reviews each body once, one at a time, so that the run starts with them cached.
func (t *Target) warm(bodies [][]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	_, err := Run(context.Background(), Load{
		Name: "warm-up", URL: t.WebhookURL, Bodies: bodies, Concurrency: min(8, len(bodies)),
		Requests: max(len(bodies), min(8, len(bodies))), Duration: time.Minute,
	})
	return err
}

// Profile takes a CPU profile of the daemon for most of sc's duration (from now) and
// returns the file it wrote in ProfileDir, or "" when it could not.
func (t *Target) Profile(sc Scenario) string {
	if t.ProfileDir == "" {
		return ""
	}
	secs := max(1, int(sc.Duration/time.Second)-1)
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.InternalURL, secs)
	c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	path := fmt.Sprintf("%s/%s.pb.gz", t.ProfileDir, sc.Name)
	f, err := os.Create(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return ""
	}
	return path
}

// msBound converts a bucket bound in seconds to ms, -1 for +Inf (JSON has no infinity).
func msBound(v float64) float64 {
	if math.IsInf(v, 1) {
		return -1
	}
	return round3(v * 1e3)
}
