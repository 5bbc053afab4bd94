package loadtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/daemon"
)

// TestClusterStormEndToEnd runs a tiny restart storm through k8s.io/apiserver's webhook token
// authenticator and token cache against the real daemon and the real fake STS, in-process on
// loopback, once against iamgate and once against the passthrough baseline, and checks what
// must hold whatever the timing: no wrong answer, every client back, and the STS calls each
// daemon must (or must not) make. Timing is reported, never asserted.
func TestClusterStormEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two small cluster models (about 30 s)")
	}
	QuietKubernetesLogs()
	sc := ClusterStorm("tiny-storm", 40, 8, 4, 20, 30*time.Second)
	sc.NodeEvery, sc.UserEvery = 300*time.Millisecond, 500*time.Millisecond
	sc.RetryBackoff, sc.RetryCap = 200*time.Millisecond, 2*time.Second
	sc.UserRetries = 3
	sc.RenewEvery = time.Hour
	for i := range sc.Phases {
		sc.Phases[i].Settle = 500 * time.Millisecond
	}
	valid := sc.Nodes + sc.Users

	run := func(label string, passthrough bool) *ClusterReport {
		t.Helper()
		tg, _ := newTarget(t, func(c *daemon.Config) { c.BaselinePassthrough = passthrough })
		ct := &ClusterTarget{WebhookURL: tg.WebhookURL, InternalURL: tg.InternalURL, STS: tg.STS, Minter: tg.Minter, Label: label}
		if testing.Verbose() {
			ct.Progress = os.Stderr
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		rep, err := ct.RunCluster(ctx, sc)
		if err != nil {
			t.Fatalf("%s: cannot run: %s", label, err)
		}
		if len(rep.Phases) != 3 {
			t.Fatalf("%s: unexpected phases; got %d; want 3", label, len(rep.Phases))
		}
		if rep.WrongAnswers != 0 {
			t.Fatalf("%s: unexpected wrong answers; got %d: %s", label, rep.WrongAnswers, strings.Join(rep.WrongSamples, "; "))
		}
		for _, p := range rep.Phases {
			t.Logf("%s %s: %s, recovery %+v, STS %d calls (%d throttled), webhook %+v, failed %v, verdicts %v, daemon %v",
				label, p.Phase.Name, p.Elapsed.Round(time.Millisecond), p.Recovery, p.STS.Calls, p.STS.Throttled, p.Webhook, p.Failed, p.Verdicts, p.ReviewsByReason)
			if !p.Recovery.Complete() || p.Recovery.Clients != valid {
				t.Fatalf("%s %s: not every client authenticated again; got %+v", label, p.Phase.Name, p.Recovery)
			}
			if p.Verdicts["denied"] == 0 {
				t.Fatalf("%s %s: the forged tokens were never denied; got %v", label, p.Phase.Name, p.Verdicts)
			}
		}
		storm := rep.Phases[2]
		if storm.ClientTokens != valid+sc.Denied || storm.IdealRecovery != IdealRecovery(valid+sc.Denied, 20) {
			t.Fatalf("%s: unexpected storm accounting; got %d tokens, ideal %s", label, storm.ClientTokens, storm.IdealRecovery)
		}
		// Every new token needs its own STS call, throttled ones come on top.
		if storm.STS.Calls < uint64(storm.ClientTokens) {
			t.Fatalf("%s: unexpected STS calls in the cold storm; got %d; want at least %d", label, storm.STS.Calls, storm.ClientTokens)
		}
		if storm.Webhook.Calls == 0 || storm.WebhookPerAuth <= 0 {
			t.Fatalf("%s: no webhook calls in the storm; got %+v", label, storm.Webhook)
		}
		return rep
	}

	gate := run("iamgate", false)
	// Restarted replicas ask iamgate again; its cache answers: only renewed tokens need STS.
	if p := gate.Phases[1]; p.STS.Calls != uint64(p.Renewed) || p.Webhook.Calls == 0 {
		t.Fatalf("iamgate: unexpected STS calls after a replica restart; got %d (%d tokens renewed), %d webhook calls; want one per renewal",
			p.STS.Calls, p.Renewed, p.Webhook.Calls)
	}
	base := run("passthrough", true)
	// The passthrough baseline asks STS for every webhook call: each client at least once.
	if p := base.Phases[1]; p.STS.Calls < uint64(valid) {
		t.Fatalf("passthrough: unexpected STS calls after a replica restart; got %d; want at least %d", p.STS.Calls, valid)
	}
}
