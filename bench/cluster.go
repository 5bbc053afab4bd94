package bench

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// ClusterRun is one cluster model scenario measured against iamgate and, in the same run,
// against a baseline: iamgate -baseline.passthrough (no cache, no collapsing, no adaptive
// rate) for the storms, iamgate -sts.keyPriority=false for the floods. Baseline.Daemon names it.
type ClusterRun struct {
	Name     string                  `json:"name"`
	IAMGate  *loadtest.ClusterReport `json:"iamgate"`
	Baseline *loadtest.ClusterReport `json:"baseline,omitempty"`
}

// perReplica names the scenarios run with one iamgate per kube-apiserver replica, against
// iamgate only (compare them with the same scenario against one iamgate).
var perReplica = map[string]bool{"storm-5000-per-replica": true}

// clusterBaseline is the daemon a cluster scenario is compared with: its label and the
// flags that make iamgate behave as it.
func clusterBaseline(sc loadtest.ClusterScenario) (label string, flags []string) {
	if sc.Kind == loadtest.KindClusterFlood {
		return "no-key-priority", []string{"-sts.keyPriority=false"}
	}
	return "passthrough", []string{"-baseline.passthrough"}
}

// ClusterNames are the cluster scenarios `make bench` runs, and QuickClusterNames the one of
// `make bench-quick`.
var (
	ClusterNames      = []string{"storm-5000", "storm-5000-per-replica", "restart-5000", "brownout-5000", "storm-20000", "flood-2000"}
	QuickClusterNames = []string{"storm-quick"}
)

// clusterScenario returns the named cluster scenario.
func clusterScenario(name string) (loadtest.ClusterScenario, error) {
	switch name {
	case "storm-5000":
		// The target: a 5,000-node restart storm with STS throttled at 50 calls/s.
		return loadtest.ClusterStorm(name, 5000, 500, 50, 50, 6*time.Minute), nil
	case "storm-5000-per-replica":
		// The same storm with one iamgate per kube-apiserver replica (DaemonSet-style): each
		// has its own cache and adaptive rate, and a client's token may reach all of them.
		sc := loadtest.ClusterStorm(name, 5000, 500, 50, 50, 6*time.Minute)
		sc.Description += "; one iamgate per replica"
		return sc, nil
	case "storm-20000":
		return loadtest.ClusterStorm(name, 20000, 2000, 200, 200, 6*time.Minute), nil
	case "restart-5000":
		return loadtest.ClusterDaemonRestart(name, 5000, 500, 50, 50, 4*time.Minute), nil
	case "brownout-5000":
		return loadtest.ClusterBrownout(name, 5000, 500, 50, time.Minute, 4*time.Minute), nil
	case "restart-quick":
		// Time-compressed: the replicas keep tokens 20 s instead of 2 min.
		sc := loadtest.ClusterDaemonRestart(name, 200, 20, 2, 20, 25*time.Second)
		sc.NodeEvery, sc.UserEvery, sc.CacheTTL = 2*time.Second, 4*time.Second, 20*time.Second
		sc.Phases[1].MaxDuration = sc.CacheTTL + 10*time.Second
		return sc, nil
	case "flood-2000":
		// 2,200 clients renewing every minute need about 37 STS calls/s of the 50 the account
		// allows; floods of 100 and 400 forged tokens/s come on top.
		return loadtest.ClusterFlood(name, 2000, 200, 50, []float64{0, 100, 400}, time.Minute, 90*time.Second), nil
	case "flood-quick":
		return loadtest.ClusterFlood(name, 300, 30, 20, []float64{0, 100}, 20*time.Second, 20*time.Second), nil
	case "storm-quick":
		// Time-compressed: requests every 2 s (nodes) and 4 s (users) instead of 10 s and 20 s.
		sc := loadtest.ClusterStorm(name, 200, 20, 2, 20, 25*time.Second)
		sc.NodeEvery, sc.UserEvery = 2*time.Second, 4*time.Second
		return sc, nil
	}
	return loadtest.ClusterScenario{}, fmt.Errorf("unknown cluster scenario %q: want one of %s, restart-quick, flood-quick", name,
		strings.Join(append(append([]string(nil), ClusterNames...), QuickClusterNames...), ", "))
}

// targetPhase returns the phase of rep marked Target, or nil.
func targetPhase(rep *loadtest.ClusterReport) *loadtest.PhaseReport {
	if rep == nil {
		return nil
	}
	for _, p := range rep.Phases {
		if p.Phase.Target {
			return p
		}
	}
	return nil
}

// recoveryText is how long until every client was back, or how many were.
func recoveryText(p *loadtest.PhaseReport) string {
	if p == nil {
		return "—"
	}
	if p.Recovery.Complete() {
		return fmt.Sprintf("%.1f s", p.Recovery.All.Seconds())
	}
	return fmt.Sprintf("not all: %d of %d within %.0f s", p.Recovery.Recovered, p.Recovery.Clients, p.Elapsed.Seconds())
}

// evaluateCluster compares the cold storm of each throttled cluster run, and the floods, with
// their targets, the baseline's figures beside iamgate's.
func evaluateCluster(runs []*ClusterRun) []Check {
	var cs []Check
	for _, run := range runs {
		if run.IAMGate == nil {
			continue
		}
		baseName := "baseline"
		if run.Baseline != nil {
			baseName = run.Baseline.Daemon
		}
		cs = append(cs, evaluateFlood(run, baseName)...)
		g, b := targetPhase(run.IAMGate), targetPhase(run.Baseline)
		if g == nil {
			cs = append(cs, wrongCheck(run, baseName))
			continue
		}
		rate := g.Phase.Faults.ThrottleRate
		tokens := g.ClientTokens
		if rate > 0 {
			limit := time.Duration(1.1 * float64(g.IdealRecovery))
			got := "iamgate " + recoveryText(g)
			if b != nil {
				got += "; " + baseName + " " + recoveryText(b)
			}
			cs = append(cs, Check{Scenario: run.Name + " " + g.Phase.Name,
				Target: fmt.Sprintf("every client authenticated again within 1.1 × (%d tokens ÷ %g calls/s) = %.1f s", tokens, rate, limit.Seconds()),
				Got:    got, Met: g.Recovery.Complete() && g.Recovery.All <= limit})
			maxCalls := uint64(math.Floor(1.05 * float64(tokens)))
			got = fmt.Sprintf("iamgate %d (%d throttled)", g.STS.Calls, g.STS.Throttled)
			if b != nil {
				got += fmt.Sprintf("; %s %d (%d throttled)", baseName, b.STS.Calls, b.STS.Throttled)
			}
			cs = append(cs, Check{Scenario: run.Name + " " + g.Phase.Name,
				Target: fmt.Sprintf("STS calls, throttled included, ≤ 1.05 × %d tokens = %d", tokens, maxCalls),
				Got:    got, Met: g.STS.Calls <= maxCalls})
		}
		cs = append(cs, wrongCheck(run, baseName))
	}
	return cs
}

// wrongCheck is the oracle's target: no wrong answer in any phase.
func wrongCheck(run *ClusterRun, baseName string) Check {
	got := fmt.Sprintf("iamgate %d of %d authentications", run.IAMGate.WrongAnswers, run.IAMGate.Attempts)
	if run.Baseline != nil {
		got += fmt.Sprintf("; %s %d of %d", baseName, run.Baseline.WrongAnswers, run.Baseline.Attempts)
	}
	return Check{Scenario: run.Name, Target: "zero wrong answers (wrong user, a forged token allowed, a valid token denied), every phase",
		Got: got, Met: run.IAMGate.WrongAnswers == 0}
}

// evaluateFlood checks that the cluster's own clients keep authenticating during each flood of
// forged tokens: no more of their requests fail (after retries) than in the phase without a
// flood, give or take 0.1 % of the requests.
func evaluateFlood(run *ClusterRun, baseName string) []Check {
	if run.IAMGate.Scenario.Kind != loadtest.KindClusterFlood {
		return nil
	}
	failed := func(ph *loadtest.PhaseReport) int { return ph.Failed["node"] + ph.Failed["user"] }
	var quiet *loadtest.PhaseReport
	var cs []Check
	for i, ph := range run.IAMGate.Phases {
		if i == 0 {
			continue
		}
		if ph.Phase.FloodRate == 0 {
			quiet = ph
			continue
		}
		if quiet == nil {
			continue
		}
		limit := failed(quiet) + ph.Requests/1000
		got := fmt.Sprintf("iamgate %d of %d requests failed (p99 %.0f ms)", failed(ph), ph.Requests, ph.Latency.P99)
		if run.Baseline != nil && i < len(run.Baseline.Phases) {
			bp := run.Baseline.Phases[i]
			got += fmt.Sprintf("; %s %d of %d (p99 %.0f ms)", baseName, failed(bp), bp.Requests, bp.Latency.P99)
		}
		cs = append(cs, Check{Scenario: run.Name + " " + ph.Phase.Name,
			Target: fmt.Sprintf("nodes and users keep authenticating during %g forged tokens/s: failed requests ≤ the quiet phase's %d + 0.1 %%", ph.Phase.FloodRate, failed(quiet)),
			Got:    got, Met: failed(ph) <= limit})
	}
	return cs
}

// ClusterMarkdown renders the generated cluster section of BENCHMARKS.md, with the chart svg
// and the results file jsonFile (paths relative to the markdown file).
func ClusterMarkdown(r *Results, svg, jsonFile string) string {
	if len(r.Cluster) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Cluster model: restart storms, throttled STS, brown-out, forged-token floods\n\n")
	p("_Generated by `make bench` or `bin/loadtest bench -bench.clusterOnly` (code in `loadtest/cluster*.go` and `bench/cluster.go`); " +
		"everything between the markers is rewritten by each run of the cluster model._\n\n")
	runRows(p, r.RunID, jsonFile, r.Date, r.Commit, r.Machine, r.LoadStart, r.LoadEnd)
	p("| pinning (taskset) | daemons on CPU %s; the model (replicas, clients) and the fake STS on CPU %s |\n", r.Pinning.Daemon, r.Pinning.Generator)
	p("| elapsed | %s |\n\n", r.Elapsed)
	b.WriteString("`loadtest`'s cluster model (`loadtest/cluster*.go`): K kube-apiserver replicas, each k8s.io/apiserver's own " +
		"webhook token authenticator (`DefaultRetryBackoff`: 0.5 s × 1.5, 5 steps, on 429/500/504/resets; 30 s per webhook request " +
		"and 30 s for a lookup with its retries) behind its own " +
		"token cache (2 min for successes and denials, errors never cached), as kube-apiserver builds them from " +
		"`--authentication-token-webhook-config-file`; N kubelets (a request every 10 s ± 10 % unless said otherwise, 5 retries with backoff " +
		"1 s doubling to 30 s), M kubectl users (every 20 s, no retry) and clients with forged tokens, each through a random replica, " +
		"tokens renewed every 14 min (first renewals spread over one period). Every answer is checked against the expected " +
		"user (an oracle per token). Phases: **warm-up**; **replica-restart**: every replica's cache emptied at once " +
		"(iamgate's cache warm); **cold-storm**: every replica restarted and every client with a token iamgate has never seen " +
		"(the control plane and iamgate's cache restarted together); **brown-out**: the same under STS resets and 5xx, then " +
		"**recovery**. A phase ends 2 s after every client authenticated again with a request sent in the phase, or at its bound. " +
		"**flood-N**: STS throttled, clients renewing their tokens every minute, and N forged tokens per second (each new, " +
		"an invented access key: one STS call each that no cache saves) sent through the replicas beside them. " +
		"A storm runs against iamgate and against `iamgate server -baseline.passthrough` (no identity cache, no " +
		"rejection cache, no collapsing, no adaptive rate: one STS call per review) in the same run; a flood against iamgate and " +
		"against `iamgate server -sts.keyPriority=false` (calls for verified access keys not started first); " +
		"`storm-5000-per-replica` is `storm-5000` with one iamgate per replica (DaemonSet-style), against iamgate only. " +
		"STS calls per second come from the fake's " +
		"`/stats` sampled every second; \"failed\" is requests that still failed after the client's retries (what a user sees); " +
		"latency is per request as its client saw it, retries included.\n\n")

	checks := r.ClusterTargets
	if len(checks) > 0 {
		p("#### Targets of the cluster model\n\n| scenario | target | measured | |\n|---|---|---|---|\n")
		for _, c := range checks {
			mark := "met"
			if !c.Met {
				mark = "**missed**"
			}
			p("| %s | %s | %s | %s |\n", c.Scenario, c.Target, c.Got, mark)
		}
		p("\n")
	}

	for _, run := range r.Cluster {
		if run.IAMGate == nil {
			continue
		}
		sc := run.IAMGate.Scenario
		inFlight := "each client with at most one authentication in flight"
		if run.IAMGate.Workers < run.IAMGate.Clients {
			inFlight = fmt.Sprintf("at most %d authentications in flight", run.IAMGate.Workers)
		}
		p("#### %s\n\n%s. %d replicas, %d clients (a request every %s per node, %s per user), %s.\n\n",
			run.Name, sc.Description, sc.Replicas, run.IAMGate.Clients, sc.NodeEvery, sc.UserEvery, inFlight)
		p("| phase | daemon | clients back: all (p50 / p99) | ideal | failed after retries: nodes / users | wrong | request p50 / p99 ms | STS calls (throttled) | STS calls/s peak (mean) | webhook calls per authentication | daemon CPU s (busiest CPUs) | daemon peak RSS |\n")
		p("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		reps := []*loadtest.ClusterReport{run.IAMGate}
		if run.Baseline != nil {
			reps = append(reps, run.Baseline)
		}
		for i := range run.IAMGate.Phases {
			for _, rep := range reps {
				if i >= len(rep.Phases) {
					continue
				}
				ph := rep.Phases[i]
				ideal := "—"
				if ph.IdealRecovery > 0 {
					ideal = fmt.Sprintf("%.1f s", ph.IdealRecovery.Seconds())
				}
				back := recoveryText(ph)
				if ph.Recovery.P50 > 0 {
					back += fmt.Sprintf(" (%.1f / ", ph.Recovery.P50.Seconds())
					if ph.Recovery.P99 > 0 {
						back += fmt.Sprintf("%.1f)", ph.Recovery.P99.Seconds())
					} else {
						back += "—)"
					}
				}
				p("| %s | %s | %s | %s | %d / %d | %d | %.1f / %.0f | %d (%d) | %.0f (%.0f) | %.2f | %.1f (%.2f) | %.0f MiB |\n",
					ph.Phase.Name, rep.Daemon, back, ideal, ph.Failed["node"], ph.Failed["user"], ph.WrongAnswers,
					ph.Latency.P50, ph.Latency.P99, ph.STS.Calls, ph.STS.Throttled, ph.STS.Peak, ph.STS.Mean,
					ph.WebhookPerAuth, ph.DaemonCPU.Seconds(), ph.DaemonCPUPeak, float64(ph.DaemonPeakRSS)/(1<<20))
			}
		}
		floodTable(p, reps)
		if run.Baseline != nil {
			var parts []string
			for i, g := range run.IAMGate.Phases {
				if i >= len(run.Baseline.Phases) || i == 0 {
					continue
				}
				bp := run.Baseline.Phases[i]
				parts = append(parts, fmt.Sprintf("%s: %s STS calls, %s user-visible failures", g.Phase.Name,
					ratioText(float64(bp.STS.Calls), float64(g.STS.Calls)), ratioText(float64(bp.Failed["node"]+bp.Failed["user"]), float64(g.Failed["node"]+g.Failed["user"]))))
			}
			if len(parts) > 0 {
				p("\n%s ÷ iamgate: %s.\n", run.Baseline.Daemon, strings.Join(parts, "; "))
			}
		}
		var notes []string
		for _, rep := range reps {
			for _, n := range rep.Notes {
				notes = append(notes, rep.Daemon+": "+n)
			}
			for _, w := range rep.WrongSamples {
				notes = append(notes, rep.Daemon+": wrong answer: "+w)
			}
			if reasons := reasonsText(rep); reasons != "" {
				notes = append(notes, rep.Daemon+": daemon answers by reason, per phase: "+reasons)
			}
		}
		for _, n := range notes {
			p("\n- %s", n)
		}
		p("\n\n")
	}
	p("![STS calls per second in each storm, iamgate and the passthrough baseline, against the throttle](%s)\n\n", svg)
	p("### Commands\n\n```\n")
	for _, c := range r.Commands {
		p("%s\n", c)
	}
	p("```\n\nOne scenario by hand against running daemons: `bin/loadtest run -load.kind cluster-storm -cluster.nodes 5000 " +
		"-cluster.users 500 -cluster.denied 50 -cluster.throttle 50 -cluster.phaseMax 6m -webhook.url … -internal.url … -sts.url … -daemon.pid …` " +
		"(add `-cluster.label passthrough` against `iamgate server -baseline.passthrough`).\n")
	return b.String()
}

// floodTable lists, for each phase with a forged-token flood, what the flood got and what
// the cluster's own clients saw beside it, per daemon.
func floodTable(p func(string, ...any), reps []*loadtest.ClusterReport) {
	header := false
	for i := range reps[0].Phases {
		for _, rep := range reps {
			if i >= len(rep.Phases) || rep.Scenario.Kind != loadtest.KindClusterFlood || i == 0 {
				continue
			}
			ph := rep.Phases[i]
			if !header {
				p("\n| phase | daemon | forged tokens/s | forged sent: denied / failed / dropped | forged allowed | clients' requests failed: nodes / users (of all) | clients' request p50 / p99 ms | STS calls (throttled) |\n|---|---|--:|--:|--:|--:|--:|--:|\n")
				header = true
			}
			f := ph.Flood
			if f == nil {
				f = &loadtest.FloodReport{}
			}
			p("| %s | %s | %g | %d: %d / %d / %d | %d | %d / %d (%d) | %.1f / %.0f | %d (%d) |\n", ph.Phase.Name, rep.Daemon, ph.Phase.FloodRate,
				f.Sent, f.Denied, f.Failed, f.Dropped, f.Wrong, ph.Failed["node"], ph.Failed["user"], ph.Requests,
				ph.Latency.P50, ph.Latency.P99, ph.STS.Calls, ph.STS.Throttled)
		}
	}
}

// ratioText is a ÷ b as "12.3×", with the cases a ratio cannot say.
func ratioText(a, b float64) string {
	switch {
	case a == 0 && b == 0:
		return "0 and 0"
	case b == 0:
		return fmt.Sprintf("%.0f vs 0", a)
	}
	return fmt.Sprintf("%.1f×", a/b)
}

// reasonsText lists the daemon's answers by reason in each phase.
func reasonsText(rep *loadtest.ClusterReport) string {
	var parts []string
	for _, ph := range rep.Phases {
		if len(ph.ReviewsByReason) == 0 {
			continue
		}
		keys := make([]string, 0, len(ph.ReviewsByReason))
		for k := range ph.ReviewsByReason {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, fmt.Sprintf("%s %.0f", k, ph.ReviewsByReason[k]))
		}
		parts = append(parts, ph.Phase.Name+" ("+strings.Join(kv, ", ")+")")
	}
	return strings.Join(parts, "; ")
}

// runClusterModel runs the cluster scenarios of the run, each against the daemon under test
// and then against its baseline daemon (clusterBaseline), started for them and stopped after.
func (b *benchRun) runClusterModel(ctx context.Context) error {
	runs, err := b.clusterRuns(ctx)
	b.res.Cluster = runs
	return err
}

func (b *benchRun) clusterRuns(ctx context.Context) ([]*ClusterRun, error) {
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	var scs []loadtest.ClusterScenario
	for _, n := range b.cfg.Cluster {
		sc, err := clusterScenario(n)
		if err != nil {
			return nil, err
		}
		scs = append(scs, sc)
	}
	// A daemon restart stops the process and starts it again on the same addresses.
	restart := func(c *child, internalURL string) func(context.Context) (loadtest.Process, error) {
		return func(ctx context.Context) (loadtest.Process, error) {
			if err := c.restart(ctx, internalURL+"/readyz"); err != nil {
				return loadtest.Process{}, err
			}
			return loadtest.Process{PID: c.pid()}, nil
		}
	}
	gateTarget := &loadtest.ClusterTarget{WebhookURL: b.target.WebhookURL, InternalURL: b.target.InternalURL, STS: b.target.STS, Daemon: b.target.Daemon, Label: "iamgate",
		Minter: b.target.Minter, Progress: b.target.Progress, RestartDaemon: restart(b.daemon, b.target.InternalURL)}
	// The baseline daemons, started when a scenario first needs one and stopped at the end.
	baselines := map[string]*loadtest.ClusterTarget{}
	baseline := func(sc loadtest.ClusterScenario) (*loadtest.ClusterTarget, error) {
		label, flags := clusterBaseline(sc)
		if t := baselines[label]; t != nil {
			return t, nil
		}
		b.say("cluster: starting the %s baseline (iamgate server %s)", label, strings.Join(flags, " "))
		d, bt, err := b.startDaemon(ctx, "iamgate-"+label, "", flags...)
		if err != nil {
			return nil, err
		}
		stops = append(stops, d.stop)
		t := &loadtest.ClusterTarget{WebhookURL: bt.WebhookURL, InternalURL: bt.InternalURL, STS: bt.STS, Daemon: bt.Daemon, Label: label,
			Minter: b.target.Minter, Progress: b.target.Progress, RestartDaemon: restart(d, bt.InternalURL)}
		baselines[label] = t
		return t, nil
	}
	// One iamgate per replica: the bench's iamgate and more started for them.
	perReplicaTarget := func(sc loadtest.ClusterScenario) (*loadtest.ClusterTarget, error) {
		t := *gateTarget
		t.Label = "iamgate per replica"
		t.RestartDaemon = nil
		t.ReplicaWebhookURLs = []string{b.target.WebhookURL}
		for i := 2; i <= sc.Replicas; i++ {
			b.say("cluster: starting iamgate %d of %d, one per replica", i, sc.Replicas)
			d, dt, err := b.startDaemon(ctx, fmt.Sprintf("iamgate-%d", i), "")
			if err != nil {
				return nil, err
			}
			stops = append(stops, d.stop)
			t.ReplicaWebhookURLs = append(t.ReplicaWebhookURLs, dt.WebhookURL)
			t.ReplicaDaemons = append(t.ReplicaDaemons, dt.Daemon)
		}
		return &t, nil
	}
	var runs []*ClusterRun
	for _, sc := range scs {
		run := &ClusterRun{Name: sc.Name}
		targets := []*loadtest.ClusterTarget{gateTarget}
		if perReplica[sc.Name] {
			t, err := perReplicaTarget(sc)
			if err != nil {
				return runs, err
			}
			targets = []*loadtest.ClusterTarget{t}
		} else {
			bt, err := baseline(sc)
			if err != nil {
				return runs, err
			}
			targets = append(targets, bt)
		}
		for i, t := range targets {
			if ctx.Err() != nil {
				return runs, ctx.Err()
			}
			b.say("cluster %s against %s: %s", sc.Name, t.Label, sc.Description)
			rep, err := t.RunCluster(ctx, sc)
			if err != nil {
				return runs, fmt.Errorf("cannot run cluster scenario %s against %s: %w", sc.Name, t.Label, err)
			}
			if i == 0 {
				run.IAMGate = rep
			} else {
				run.Baseline = rep
			}
		}
		runs = append(runs, run)
	}
	return runs, nil
}
