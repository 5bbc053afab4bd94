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
