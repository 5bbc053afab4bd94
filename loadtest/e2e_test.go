package loadtest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/mappingtest"
)

// The end-to-end test runs tiny scenarios against the real daemon and the real fake STS,
// in-process on loopback, and asserts the STS calls each one must make. Timing is never
// asserted here: it belongs in the report.

func newTarget(t *testing.T, opts ...func(*daemon.Config)) (*Target, *daemon.Server) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ps := Principals(50)
	sts, err := fakests.New(FakeSTSConfig(ps), fakests.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	stsAddr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sts.Close() })

	cfg := daemon.DefaultConfig()
	cfg.ClusterID, cfg.Version, cfg.Logger = "loadtest", "test", quiet
	cfg.STS.DialOverride, cfg.STS.InsecureHTTP = stsAddr, true
	cfg.STS.MaxQueue = 4096
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := daemon.New(cfg, mappingtest.Mapper{Table: mappingtest.Compile(t, "mapAccounts:\n  - \""+BenchAccount+"\"\n")})
	if err != nil {
		t.Fatal(err)
	}
	webhook, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	internal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, webhook, internal) }()
	t.Cleanup(func() { cancel(); <-done })
	return &Target{
		WebhookURL:  "http://" + webhook.Addr().String() + "/authenticate?timeout=30s",
		InternalURL: "http://" + internal.Addr().String(),
		STS:         fakests.AdminClient{URL: "http://" + stsAddr},
		Minter:      &Minter{ClusterID: "loadtest", Principals: ps},
	}, srv
}

func TestScenariosEndToEnd(t *testing.T) {
	tg, _ := newTarget(t)
	ms := func(n int) fakests.Duration { return fakests.Duration(time.Duration(n) * time.Millisecond) }
	// run runs sc and returns its report and the daemon's STS calls, its warm-up's included.
	run := func(sc Scenario) (*Report, float64) {
		t.Helper()
		before, err := ScrapeMetrics(tg.InternalURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if sc.Concurrency == 0 {
			sc.Concurrency = 10
		}
		if sc.Duration == 0 {
			sc.Duration = 15 * time.Second
		}
		start := time.Now()
		rep, err := tg.Run(context.Background(), sc)
		if err != nil {
			t.Fatalf("cannot run %s: %s", sc.Name, err)
		}
		t.Logf("%s: %s", sc.Name, time.Since(start))
		after, err := ScrapeMetrics(tg.InternalURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Requests != sc.Requests || float64(rep.Requests) != rep.Reviews {
			t.Fatalf("%s: unexpected counts; got %d requests and %v reviews; want %d", sc.Name, rep.Requests, rep.Reviews, sc.Requests)
		}
		return rep, after.Delta(before).Sum("iamgate_sts_requests_total")
	}

	rep, all := run(Scenario{Name: "hot", Kind: KindHot, Requests: 200})
	if all != 1 || rep.STSCalls != 0 || rep.Status[200] != 200 || rep.ByResult["allowed"] != 200 || rep.CacheHitRatio != 1 {
		t.Fatalf("hot: unexpected STS calls %v (run %d), status %v, results %v, hit ratio %v; want 1 call in the warm-up, 200 allowed from the cache",
			all, rep.STSCalls, rep.Status, rep.ByResult, rep.CacheHitRatio)
	}

	rep, _ = run(Scenario{Name: "cold", Kind: KindCold, Requests: 200})
	if rep.STSCalls != 200 || rep.DistinctTokens != 200 || rep.STSCallsPerToken != 1 || rep.ByResult["allowed"] != 200 {
		t.Fatalf("cold: unexpected STS calls %d for %d tokens, results %v; want one call per token, all allowed", rep.STSCalls, rep.DistinctTokens, rep.ByResult)
	}

	rep, _ = run(Scenario{Name: "herd", Kind: KindHerd, Requests: 200, Herd: 20, Concurrency: 20, Faults: fakests.Faults{Latency: ms(20)}})
	if rep.STSCalls != 10 || rep.DistinctTokens != 10 || rep.ByResult["allowed"] != 200 {
		t.Fatalf("herd: unexpected STS calls %d for %d tokens, results %v; want 10 calls for 10 tokens, all allowed", rep.STSCalls, rep.DistinctTokens, rep.ByResult)
	}
	if rep.Collapsed == 0 {
		t.Fatalf("herd: no review shared an STS call")
	}

	rep, all = run(Scenario{Name: "invalid", Kind: KindInvalid, Requests: 200, Tokens: 20})
	if all != 0 || rep.STSCalls != 0 || rep.ByReason["expired"] != 200 {
		t.Fatalf("invalid: unexpected STS calls %v, reasons %v; want none, 200 expired", all, rep.ByReason)
	}

	rep, _ = run(Scenario{Name: "badsig", Kind: KindBadSignature, Requests: 200, Tokens: 20})
	if rep.STSCalls != 20 || rep.STSByOutcome["SignatureDoesNotMatch"] != 20 || rep.ByResult["denied"] != 200 {
		t.Fatalf("badsig: unexpected STS calls %d (%v), results %v; want 20 rejections, 200 denials", rep.STSCalls, rep.STSByOutcome, rep.ByResult)
	}

	// Outage from the middle of the run: the cached tokens keep working, the new ones get 502
	// (which kube-apiserver retries).
	rep, err := tg.Run(context.Background(), Scenario{Name: "outage", Kind: KindOutage, Requests: 1 << 30, Tokens: 10, NewEvery: 10,
		Concurrency: 4, Duration: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	newTokens := rep.Requests / 10
	if rep.Status[502] == 0 || rep.Status[502] > newTokens || rep.Status[200] < rep.Requests-newTokens || len(rep.Errors) != 0 {
		t.Fatalf("outage: unexpected status %v, errors %v for %d requests with %d new tokens; want 502 for some new tokens only",
			rep.Status, rep.Errors, rep.Requests, newTokens)
	}
	if rep.STSByOutcome["ServiceUnavailable"] == 0 {
		t.Fatalf("outage: the fake STS answered no 503; got %v", rep.STSByOutcome)
	}
}
