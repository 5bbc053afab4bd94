package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/iamgate/iamgate/loadtest"
)

// The production path: cold reviews sent by kube-apiserver's own webhook client (k8s.io/
// apiserver's token authenticator, loadtest.RunWebhook) to iamgate over TLS, against the
// same kind of reviews posted directly by the load generator (hey, HTTP/1.1 over TLS, a
// kept-alive connection per worker). Two daemons over TLS: one offering h2 (the default),
// one with -webhook.http2=false. A server's CPU per request falls as its request rate rises,
// and the webhook client, which costs far more CPU per request than hey, sends at a lower
// rate: so each webhook run is followed by a direct run paced at the rate the webhook run
// reached, its requests spread evenly over time (loadtest.Load.QPS). Rounds interleave the
// runs, in a balanced order (windowOrder); the table gives medians over rounds, and each
// ratio is the median of the per-round ratios.

// Markers of the production path's section of BENCHMARKS.md.
const (
	webhookBeginMarker = "<!-- bench-webhook:begin -->"
	webhookEndMarker   = "<!-- bench-webhook:end -->"
)

// webhookTarget is the bound on iamgate's CPU per cold review through kube-apiserver's
// webhook client over h2, as a multiple of the same review posted directly.
const webhookTarget = 1.3

// The paths of a round.
const (
	pathDirect      = "direct"
	pathH2          = "webhook-h2"
	pathDirectH2    = "direct@h2-rate"
	pathHTTP1       = "webhook-http1"
	pathDirectHTTP1 = "direct@http1-rate"
	// With -bench.webhookCompare: webhook-h2 and its paced direct run against the other binary.
	pathCompareH2       = "compare-h2"
	pathDirectCompareH2 = "direct@compare-h2-rate"
)

// webhookGroups are the runs of a round in the order of the first round; later rounds order
// the groups by windowOrder. A paced direct run follows the webhook run whose rate it takes.
var webhookGroups = [][]string{{pathDirect}, {pathH2, pathDirectH2}, {pathHTTP1, pathDirectHTTP1}}

var webhookPaths = []string{pathDirect, pathH2, pathDirectH2, pathHTTP1, pathDirectHTTP1, pathCompareH2, pathDirectCompareH2}

// pacedBy is the webhook path whose rate a paced direct path takes.
var pacedBy = map[string]string{pathDirectH2: pathH2, pathDirectHTTP1: pathHTTP1, pathDirectCompareH2: pathCompareH2}

// pacedFor is the paced direct path of a webhook path.
var pacedFor = map[string]string{pathH2: pathDirectH2, pathHTTP1: pathDirectHTTP1, pathCompareH2: pathDirectCompareH2}

// WebhookRound is one round: each path's report, and the order they ran in.
type WebhookRound struct {
	Order   []string                    `json:"order"`
	Reports map[string]*loadtest.Report `json:"reports"`
}

// WebhookResult is the production-path comparison.
type WebhookResult struct {
	Rounds []*WebhookRound `json:"rounds"`
	// Compare is what the compare paths ran (-bench.webhookCompareName); empty for none.
	// ToCompare is the median over rounds of webhook-h2's CPU per review divided by
	// compare-h2's in the same round.
	Compare   string  `json:"compare,omitempty"`
	ToCompare float64 `json:"toCompare,omitempty"`
	// Commands are the daemons' command lines.
	Commands []string `json:"commands"`
	// Rows are the medians per path, in webhookPaths order.
	Rows []WebhookRow `json:"rows"`
}

// WebhookRow is one path's medians over the rounds.
type WebhookRow struct {
	Path                 string  `json:"path"`
	RPS                  float64 `json:"rps"`
	ConnectionsPerReview float64 `json:"connectionsPerReview"`
	DaemonCPUPerRevUs    float64 `json:"daemonCpuPerReviewUs"`
	GeneratorCPUPerReqUs float64 `json:"generatorCpuPerRequestUs"`
	// ToDirect is the median over rounds of this path's daemon CPU per review divided by the
	// direct path's in the same round; ToPaced, of a webhook path, divided by the direct path
	// paced at its rate.
	ToDirect float64 `json:"toDirect"`
	ToPaced  float64 `json:"toPaced,omitempty"`
	// Protocols are the daemon's requests by protocol, summed over the rounds.
	Protocols map[string]float64 `json:"protocols"`
	Reviews   float64            `json:"reviews"`
	Errors    int                `json:"errors"`
}

// summarize computes the rows of r from its rounds.
func (r *WebhookResult) summarize() {
	r.Rows = nil
	for _, path := range webhookPaths {
		row := WebhookRow{Path: path, Protocols: map[string]float64{}}
		var rps, conns, cpu, gen, ratio, paced []float64
		for _, rd := range r.Rounds {
			rep, direct, pace := rd.Reports[path], rd.Reports[pathDirect], rd.Reports[pacedFor[path]]
			if rep == nil {
				continue
			}
			rps = append(rps, rep.RPS)
			conns = append(conns, rep.ConnectionsPerReview)
			cpu = append(cpu, rep.DaemonCPUPerRevUs)
			gen = append(gen, rep.GeneratorCPUPerReq)
			if direct != nil && direct.DaemonCPUPerRevUs > 0 {
				ratio = append(ratio, rep.DaemonCPUPerRevUs/direct.DaemonCPUPerRevUs)
			}
			if pace != nil && pace.DaemonCPUPerRevUs > 0 {
				paced = append(paced, rep.DaemonCPUPerRevUs/pace.DaemonCPUPerRevUs)
			}
			for p, v := range rep.RequestsByProtocol {
				row.Protocols[p] += v
			}
			row.Reviews += rep.Reviews
			for _, n := range rep.Errors {
				row.Errors += n
			}
		}
		if len(rps) == 0 {
			continue // not run (the compare paths without -bench.webhookCompare)
		}
		row.RPS, row.ConnectionsPerReview, row.DaemonCPUPerRevUs = median(rps), median(conns), median(cpu)
		row.GeneratorCPUPerReqUs, row.ToDirect, row.ToPaced = median(gen), median(ratio), median(paced)
		r.Rows = append(r.Rows, row)
	}
	var toCompare []float64
	for _, rd := range r.Rounds {
		if a, c := rd.Reports[pathH2], rd.Reports[pathCompareH2]; a != nil && c != nil && c.DaemonCPUPerRevUs > 0 {
			toCompare = append(toCompare, a.DaemonCPUPerRevUs/c.DaemonCPUPerRevUs)
		}
	}
	r.ToCompare = median(toCompare)
}

func (r *WebhookResult) row(path string) *WebhookRow {
	for i := range r.Rows {
		if r.Rows[i].Path == path {
			return &r.Rows[i]
		}
	}
	return nil
}

// ensurePKI runs iamgate init into tmp/pki once and returns the directory.
func ensurePKI(bin, tmp string) (string, error) {
	pki := filepath.Join(tmp, "pki")
	if _, err := os.Stat(filepath.Join(pki, "cert.pem")); err == nil {
		return pki, nil
	}
	if out, err := runCombined(bin, "init", "-out", pki, "-server.url", "https://127.0.0.1:21362/authenticate", "-hostnames", "127.0.0.1"); err != nil {
		return "", fmt.Errorf("cannot run iamgate init: %w: %s", err, out)
	}
	return pki, nil
}

// webhookRoundCount is the number of interleaved rounds (quick: 2).
func webhookRoundCount(quick bool) int {
	if quick {
		return 2
	}
	return 5
}

// runProductionPath runs the production-path comparison against two daemons it starts (and
// stops), and keeps the rounds that ran, even when a later one failed.
func (b *benchRun) runProductionPath(ctx context.Context) error {
	w, err := b.webhookRounds(ctx)
	if w != nil && len(w.Rounds) > 0 {
		w.summarize()
		b.res.Webhook = w
	}
	return err
}

func (b *benchRun) webhookRounds(ctx context.Context) (*WebhookResult, error) {
	pki, err := ensurePKI(b.binary("iamgate"), b.tmp)
	if err != nil {
		return nil, err
	}
	ca := filepath.Join(pki, "ca.pem")
	res := &WebhookResult{}
	h2Child, h2, err := b.startDaemon(ctx, "iamgate-tls-h2", pki)
	if err != nil {
		return nil, err
	}
	defer h2Child.stop()
	res.Commands = append(res.Commands, h2Child.commandLine())
	h1Child, h1, err := b.startDaemon(ctx, "iamgate-tls-http1", pki, "-webhook.http2=false")
	if err != nil {
		return nil, err
	}
	defer h1Child.stop()
	res.Commands = append(res.Commands, h1Child.commandLine())
	for _, t := range []*loadtest.Target{h2, h1} {
		t.Minter, t.Progress, t.CAFile, t.ProfileDir = b.target.Minter, b.cfg.Progress, ca, b.profileDir
	}
	targets := map[string]*loadtest.Target{pathDirect: h2, pathH2: h2, pathDirectH2: h2, pathHTTP1: h1, pathDirectHTTP1: h1}
	kinds := map[string]string{pathDirect: loadtest.KindCold, pathH2: loadtest.KindWebhookCold, pathDirectH2: loadtest.KindCold,
		pathHTTP1: loadtest.KindWebhookCold, pathDirectHTTP1: loadtest.KindCold,
		pathCompareH2: loadtest.KindWebhookCold, pathDirectCompareH2: loadtest.KindCold}
	groups := webhookGroups
	if b.cfg.WebhookCompare != "" {
		cmpChild, cmp, err := b.startDaemonBinary(ctx, b.cfg.WebhookCompare, "iamgate-compare-tls-h2", pki)
		if err != nil {
			return nil, err
		}
		defer cmpChild.stop()
		res.Commands = append(res.Commands, cmpChild.commandLine())
		cmp.Minter, cmp.Progress, cmp.CAFile, cmp.ProfileDir = b.target.Minter, b.cfg.Progress, ca, b.profileDir
		targets[pathCompareH2], targets[pathDirectCompareH2] = cmp, cmp
		groups = append(groups[:len(groups):len(groups)], []string{pathCompareH2, pathDirectCompareH2})
		res.Compare = b.cfg.WebhookCompareName
	}
	descriptions := map[string]string{
		pathDirect:          "a new token every request, posted directly by hey: HTTP/1.1 over TLS, kept alive, as fast as it can",
		pathH2:              "a new token every request, through kube-apiserver's webhook client; the daemon offers h2",
		pathDirectH2:        "as direct, paced at the rate " + pathH2 + " reached",
		pathHTTP1:           "a new token every request, through kube-apiserver's webhook client; the daemon runs with -webhook.http2=false",
		pathDirectHTTP1:     "as direct, paced at the rate " + pathHTTP1 + " reached",
		pathCompareH2:       "as " + pathH2 + ", against " + b.cfg.WebhookCompareName,
		pathDirectCompareH2: "as direct, against " + b.cfg.WebhookCompareName + ", paced at the rate " + pathCompareH2 + " reached",
	}
	rounds := webhookRoundCount(b.cfg.Quick)
	for r := range rounds {
		rd := &WebhookRound{Reports: map[string]*loadtest.Report{}}
		var order []string
		for _, g := range windowOrder(groups, r) {
			order = append(order, g...)
		}
		for _, path := range order {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			sc := loadtest.Scenario{Name: path, Kind: kinds[path], Description: descriptions[path], Concurrency: concurrency,
				Requests: max(concurrency*4, 60_000/b.scale()), Duration: b.cfg.Duration,
				// The last round profiles the daemon on the two paths of the target, for a missed one.
				Profile: r == rounds-1 && (path == pathH2 || path == pathDirectH2)}
			if by := pacedBy[path]; by != "" {
				sc.QPS = rd.Reports[by].RPS
			}
			b.say("production path, round %d/%d: %s: %s", r+1, rounds, path, sc.Description)
			rep, err := targets[path].Run(ctx, sc)
			if err != nil {
				return res, fmt.Errorf("cannot run %s: %w", path, err)
			}
			b.say("production path, round %d/%d: %s: %.0f reviews/s, daemon %.1f µs/review, %.4f connections/review (by protocol %v), client errors %v",
				r+1, rounds, path, rep.RPS, rep.DaemonCPUPerRevUs, rep.ConnectionsPerReview, rep.ConnectionsByProtocol, rep.Errors)
			rd.Order = append(rd.Order, path)
			rd.Reports[path] = rep
		}
		res.Rounds = append(res.Rounds, rd)
	}
	res.summarize()
	return res, nil
}

// evaluateWebhook checks the target of the production path, iamgate's CPU per cold review
// through kube-apiserver's webhook client over h2 within webhookTarget × the direct figure,
// against both direct figures: at the same rate, and as fast as the load generator can.
func evaluateWebhook(w *WebhookResult) []Check {
	if w == nil {
		return nil
	}
	h2, direct, paced := w.row(pathH2), w.row(pathDirect), w.row(pathDirectH2)
	if h2 == nil || direct == nil || paced == nil || len(w.Rounds) == 0 {
		return nil
	}
	profile := w.Rounds[len(w.Rounds)-1].Reports[pathH2].Profile
	check := func(than string, ratio float64, d *WebhookRow) Check {
		c := Check{Scenario: "production path (" + pathH2 + ")",
			Target: fmt.Sprintf("iamgate CPU per cold review through kube-apiserver's webhook client over h2 ≤ %.1f × %s", webhookTarget, than),
			Got: fmt.Sprintf("%.2f× (median of per-round ratios; medians %.1f µs at %.0f reviews/s, %s %.1f µs at %.0f reviews/s)",
				ratio, h2.DaemonCPUPerRevUs, h2.RPS, d.Path, d.DaemonCPUPerRevUs, d.RPS),
			Met: ratio <= webhookTarget}
		if !c.Met {
			c.profileSrc = profile
		}
		return c
	}
	return []Check{
		check("the same reviews posted directly at the same rate ("+pathDirectH2+")", h2.ToPaced, paced),
		check("the same reviews posted directly as fast as hey can ("+pathDirect+")", h2.ToDirect, direct),
	}
}

// WebhookMarkdown renders the production path's section of BENCHMARKS.md, with the results
// file jsonFile (relative to the markdown file).
func WebhookMarkdown(r *Results, jsonFile string) string {
	w := r.Webhook
	if w == nil || len(w.Rounds) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## The production path: kube-apiserver's webhook client, HTTP/2 and HTTP/1.1\n\n")
	p("_Generated by `make bench` or `bin/loadtest bench -bench.webhookOnly` (code in `bench/webhook.go` and `loadtest/webhook.go`); " +
		"everything between the markers is rewritten by each run._\n\n")
	runRows(p, r.RunID, jsonFile, r.Date, r.Commit, r.Machine, r.LoadStart, r.LoadEnd)
	p("| pinning (taskset) | daemons on CPU %s; generators (hey, the webhook client) and the fake STS on CPU %s |\n", r.Pinning.Daemon, r.Pinning.Generator)
	p("| elapsed | %s |\n\n", r.Elapsed)
	first := w.Rounds[0].Reports[pathH2]
	if first == nil {
		first = w.Rounds[0].Reports[pathDirect]
	}
	p("Cold reviews (a never-seen token each, so one STS call each; the fake STS answers at once), %d in flight, "+
		"%s per run, %d rounds. Two daemons over TLS (`iamgate init`'s key pair): one as deployed (HTTP/2 offered by ALPN), "+
		"one with `-webhook.http2=false`. The paths:\n\n", first.Scenario.Concurrency, first.Scenario.Duration, len(w.Rounds))
	p("- **%s**: the load generator (hey, net/http) posts TokenReviews to the HTTP/2 daemon over HTTP/1.1, a kept-alive "+
		"connection per worker, as fast as it can: the direct figure.\n", pathDirect)
	p("- **%s**: the same kind of tokens through kube-apiserver's own webhook client: k8s.io/apiserver's token authenticator "+
		"with its default retry backoff behind its token cache, built from a webhook kubeconfig as kube-apiserver builds it "+
		"(`loadtest/webhook.go`). Its Go client negotiates h2 and multiplexes every review over one connection. A first review, "+
		"alone, opens the connection a running kube-apiserver keeps open.\n", pathH2)
	p("- **%s**: the same client against the daemon with `-webhook.http2=false`: HTTP/1.1 with client-go's pool of at most 25 "+
		"idle connections, so that with more reviews in flight it dials (and handshakes) new ones.\n", pathHTTP1)
	p("- **%s**, **%s**: the direct path again, paced at the rate the webhook run just before it reached, its requests "+
		"spread evenly over time (each worker a hey requester of its own, their starts staggered; hey alone starts its workers' "+
		"rate limiters together, and a burst of 50 reviews every 20 ms costs the daemon fewer wake-ups per review than the "+
		"webhook client's steady stream). A server's CPU per request falls as its request rate rises (fewer wake-ups and system "+
		"calls per request), and the webhook client costs far more CPU per request than hey (it shares its CPU with the fake STS), "+
		"so it sends more slowly: the paced run is the direct figure at the same rate.\n\n", pathDirectH2, pathDirectHTTP1)
	p("A round runs `%s`, then `%s` + `%s`, then `%s` + `%s`, the groups in a balanced order (each group first, and right before each other group, equally often over a cycle of rounds). "+
		"Connections are the daemon's `iamgate_webhook_connections_total`, reviews its `iamgate_reviews_total`, daemon CPU "+
		"from `/proc/<pid>/stat` (user + system, 10 ms ticks) over the run. Each ratio is the median over rounds of the "+
		"per-round ratio; the other columns are medians over rounds.\n\n", pathDirect, pathH2, pathDirectH2, pathHTTP1, pathDirectHTTP1)
	p("| path | requests by protocol (all rounds) | reviews/s | connections opened per review | daemon CPU µs per review | × direct | × direct at the same rate | generator CPU µs per request | client errors |\n")
	p("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, row := range w.Rows {
		toDirect, toPaced := "1", "—"
		if row.Path != pathDirect {
			toDirect = fmt.Sprintf("%.2f", row.ToDirect)
		}
		if pacedFor[row.Path] != "" {
			toPaced = fmt.Sprintf("**%.2f**", row.ToPaced)
		}
		p("| %s | %s | %.0f | %.4f | %.1f | %s | %s | %.1f | %d |\n", row.Path, mapText(row.Protocols), row.RPS, row.ConnectionsPerReview,
			row.DaemonCPUPerRevUs, toDirect, toPaced, row.GeneratorCPUPerReqUs, row.Errors)
	}
	p("\nEvery round: reviews/s, daemon CPU µs per review and connections opened per review of each path, and the ratios of daemon CPU:\n\n")
	p("| round | %s | %s | %s | %s | %s | h2 ÷ paced | h2 ÷ direct | HTTP/1.1 ÷ paced | HTTP/1.1 ÷ direct |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
		pathDirect, pathH2, pathDirectH2, pathHTTP1, pathDirectHTTP1)
	for i, rd := range w.Rounds {
		cell := func(path string) string {
			rep := rd.Reports[path]
			if rep == nil {
				return "—"
			}
			return fmt.Sprintf("%.0f/s, %.1f µs, %.4f", rep.RPS, rep.DaemonCPUPerRevUs, rep.ConnectionsPerReview)
		}
		ratio := func(a, b string) string {
			x, y := rd.Reports[a], rd.Reports[b]
			if x == nil || y == nil || y.DaemonCPUPerRevUs == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", x.DaemonCPUPerRevUs/y.DaemonCPUPerRevUs)
		}
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", i+1, cell(pathDirect), cell(pathH2), cell(pathDirectH2), cell(pathHTTP1), cell(pathDirectHTTP1),
			ratio(pathH2, pathDirectH2), ratio(pathH2, pathDirect), ratio(pathHTTP1, pathDirectHTTP1), ratio(pathHTTP1, pathDirect))
	}
	if w.Compare != "" {
		var per []string
		for _, rd := range w.Rounds {
			if a, c := rd.Reports[pathH2], rd.Reports[pathCompareH2]; a != nil && c != nil && c.DaemonCPUPerRevUs > 0 {
				per = append(per, fmt.Sprintf("%.2f", a.DaemonCPUPerRevUs/c.DaemonCPUPerRevUs))
			}
		}
		p("\n**Against %s**, measured in the same rounds (`%s` and `%s` are `%s` and `%s` against a daemon of that binary, "+
			"a group of their own in the rotation): %s's daemon CPU per review ÷ %s's, median of the per-round ratios: **%.2f** "+
			"(rounds: %s).\n", w.Compare, pathCompareH2, pathDirectCompareH2, pathH2, pathDirectH2, pathH2, pathCompareH2,
			w.ToCompare, strings.Join(per, ", "))
	}
	p("\n#### Targets of the production path\n\n| target | measured | |\n|---|---|---|\n")
	var missed []Check
	for _, c := range r.Targets {
		if !strings.HasPrefix(c.Scenario, "production path") {
			continue
		}
		mark := "met"
		if !c.Met {
			mark = "**missed**"
			if c.Top != "" {
				missed = append(missed, c)
			}
		}
		p("| %s | %s | %s |\n", c.Target, c.Got, mark)
	}
	for _, c := range missed {
		p("\nProfile of the daemon during the last round's %s run, `%s` (`go tool pprof -top`):\n\n```\n%s\n```\n",
			pathH2, filepath.Base(c.Profile), c.Top)
	}
	p("\n### Commands\n\n```\nbin/loadtest bench -bench.webhookOnly    # this section alone; make bench runs it too\n")
	for _, c := range r.Commands {
		if strings.Contains(c, "fakests") {
			p("%s\n", c)
		}
	}
	for _, c := range w.Commands {
		p("%s\n", c)
	}
	p("```\n")
	return b.String()
}
