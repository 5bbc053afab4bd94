package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// The production path's rows are medians over rounds, its ratios medians of the per-round
// ratios, and its target is checked against both direct figures.
func TestWebhookSummary(t *testing.T) {
	rep := func(path string, rps, cpu float64) *loadtest.Report {
		return &loadtest.Report{Scenario: loadtest.Scenario{Name: path, Concurrency: 50, Duration: 10 * time.Second},
			Result: loadtest.Result{RPS: rps}, DaemonCPUPerRevUs: cpu, Reviews: 1000, RequestsByProtocol: map[string]float64{"h2": 1000}}
	}
	round := func(direct, h2, paced float64) *WebhookRound {
		return &WebhookRound{Order: webhookPaths, Reports: map[string]*loadtest.Report{
			pathDirect: rep(pathDirect, 6000, direct), pathH2: rep(pathH2, 3000, h2), pathDirectH2: rep(pathDirectH2, 3000, paced),
			pathHTTP1: rep(pathHTTP1, 1000, 400), pathDirectHTTP1: rep(pathDirectHTTP1, 1000, 200),
		}}
	}
	// h2 ÷ paced per round: 1.2, 1.5, 1.1 → 1.2; h2 ÷ direct: 2, 1.5, 2.2 → 2.
	w := &WebhookResult{Rounds: []*WebhookRound{round(100, 200, 166.666), round(100, 150, 100), round(100, 220, 200)}}
	w.summarize()
	h2 := w.row(pathH2)
	if h2 == nil || h2.DaemonCPUPerRevUs != 200 || h2.Reviews != 3000 || h2.Protocols["h2"] != 3000 {
		t.Fatalf("unexpected h2 row %+v", h2)
	}
	if h2.ToPaced < 1.19 || h2.ToPaced > 1.21 || h2.ToDirect != 2 {
		t.Fatalf("unexpected ratios; got %v to the paced run and %v to the direct one; want 1.2 and 2", h2.ToPaced, h2.ToDirect)
	}
	checks := evaluateWebhook(w)
	if len(checks) != 2 || !checks[0].Met || checks[1].Met {
		t.Fatalf("unexpected checks %+v; want the same-rate one met, the other missed", checks)
	}
	r := &Results{RunID: "webhook-x", Webhook: w, Targets: checks}
	md := WebhookMarkdown(r, "results/x.json")
	for _, want := range []string{"| webhook-h2 | h2 3000 | 3000 | 0.0000 | 200.0 | 2.00 | **1.20** |", "| 3 | ", "**missed**", "| met |"} {
		if !strings.Contains(md, want) {
			t.Fatalf("the markdown lacks %q:\n%s", want, md)
		}
	}
}

// With -bench.webhookCompare, webhook-h2 is compared round by round with the other binary's
// compare-h2; without it, the compare paths have no row.
func TestWebhookCompare(t *testing.T) {
	rep := func(cpu float64) *loadtest.Report {
		return &loadtest.Report{Scenario: loadtest.Scenario{Concurrency: 50, Duration: 10 * time.Second},
			Result: loadtest.Result{RPS: 3000}, DaemonCPUPerRevUs: cpu, Reviews: 1000}
	}
	round := func(h2, compare float64) *WebhookRound {
		return &WebhookRound{Reports: map[string]*loadtest.Report{
			pathDirect: rep(100), pathH2: rep(h2), pathDirectH2: rep(100),
			pathCompareH2: rep(compare), pathDirectCompareH2: rep(100),
		}}
	}
	// h2 ÷ compare per round: 0.8, 0.5, 0.9 → 0.8.
	w := &WebhookResult{Compare: "x/net", Rounds: []*WebhookRound{round(80, 100), round(100, 200), round(90, 100)}}
	w.summarize()
	if w.ToCompare != 0.8 {
		t.Fatalf("unexpected ratio to the compare binary; got %v; want 0.8", w.ToCompare)
	}
	if c := w.row(pathCompareH2); c == nil || c.ToPaced != 1 {
		t.Fatalf("unexpected compare row %+v", c)
	}
	md := WebhookMarkdown(&Results{Webhook: w}, "results/x.json")
	if !strings.Contains(md, "**Against x/net**") || !strings.Contains(md, "**0.80** (rounds: 0.80, 0.50, 0.90)") {
		t.Fatalf("the markdown lacks the comparison:\n%s", md)
	}
	w = &WebhookResult{Rounds: []*WebhookRound{{Reports: map[string]*loadtest.Report{pathDirect: rep(100), pathH2: rep(120)}}}}
	w.summarize()
	if w.row(pathCompareH2) != nil || w.ToCompare != 0 {
		t.Fatalf("unexpected compare row without a compare binary: %+v", w.Rows)
	}
}
