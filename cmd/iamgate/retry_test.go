package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"
	"k8s.io/client-go/rest"

	"github.com/iamgate/iamgate/fakests"
)

// These tests count what one authentication costs when iamgate cannot decide, through
// k8s.io/apiserver's webhook token authenticator with the backoff kube-apiserver uses by
// default (0.5 s, ×1.5, jitter 0.2, 5 steps). An answer kube-apiserver does not retry (a bare
// 503) would be one webhook call and an immediate 401 for the user; every transient answer
// must be retried.

// kubeAPIServerSteps is the number of webhook calls of kube-apiserver's default backoff.
const kubeAPIServerSteps = 5

// kubeAPIServerAuthenticator is what kube-apiserver builds from
// --authentication-token-webhook-config-file, with its default retry backoff.
func (e *e2eEnv) kubeAPIServerAuthenticator(t *testing.T) authenticator.Token {
	t.Helper()
	cfg, err := utilwebhook.LoadKubeconfig(e.kubeconfig, nil)
	if err != nil {
		t.Fatalf("cannot load the webhook kubeconfig: %s", err)
	}
	backoff := webhook.DefaultRetryBackoff()
	if backoff.Steps != kubeAPIServerSteps {
		t.Fatalf("unexpected default webhook backoff %+v; want %d steps", backoff, kubeAPIServerSteps)
	}
	auth, err := webhook.New(cfg, "v1", nil, *backoff)
	if err != nil {
		t.Fatalf("cannot build the webhook authenticator: %s", err)
	}
	return auth
}

// reviews returns iamgate_reviews_total by reason, scraped from the internal listener.
func (e *e2eEnv) reviews(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(e.internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), `iamgate_reviews_total{reason="`)
		if !ok {
			continue
		}
		reason, rest, _ := strings.Cut(line, `"`)
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("cannot parse metric line %q", sc.Text())
		}
		out[reason] += v
	}
	return out
}

// webhookCalls is what happened between two scrapes of reviews: the calls by reason.
func webhookCalls(before, after map[string]float64) (int, map[string]int) {
	total, by := 0, map[string]int{}
	for reason, v := range after {
		if n := int(v - before[reason]); n > 0 {
			by[reason] = n
			total += n
		}
	}
	return total, by
}

// authenticateCounting authenticates token once and returns the outcome, the webhook calls it
// took by reason, and how long the user waited.
func (e *e2eEnv) authenticateCounting(t *testing.T, auth authenticator.Token, token string) (bool, error, int, map[string]int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	before := e.reviews(t)
	start := time.Now()
	_, ok, err := auth.AuthenticateToken(ctx, token)
	elapsed := time.Since(start)
	total, by := webhookCalls(before, e.reviews(t))
	return ok, err, total, by, elapsed
}

// TestKubeAPIServerRetriesTransientFailures: every "cannot decide now" answer is retried by
// kube-apiserver's webhook client, through its whole backoff, and never cached as a denial.
func TestKubeAPIServerRetriesTransientFailures(t *testing.T) {
	env := startE2E(t, "-sts.timeout", "1s")
	auth := env.kubeAPIServerAuthenticator(t)
	alice, node := mint(t, e2eAlice), mint(t, e2eNode)
	f := func(name string, faults fakests.Faults, token, wantReason string) {
		t.Helper()
		t.Run(name, func(t *testing.T) { checkRetried(t, env, auth, name, faults, token, wantReason) })
	}
	f("STS outage", fakests.Faults{Outage: true}, alice, "sts_unavailable")
	f("STS 500", fakests.Faults{ErrorRates: map[string]float64{"InternalFailure": 1}}, alice, "sts_unavailable")
	f("STS resets", fakests.Faults{ResetRate: 1}, alice, "sts_unavailable")
	f("STS hang", fakests.Faults{HangRate: 1}, alice, "sts_timeout")
	f("EC2 failure", fakests.Faults{Outage: true, Actions: []string{fakests.ActionDescribeInstances}}, node, "mapping_unavailable")

	// STS fails the first call and recovers inside the backoff: the user gets in, after one
	// retry, instead of a 401.
	t.Run("STS recovers", func(t *testing.T) {
		if err := env.sts.SetFaults(fakests.Faults{Outage: true}); err != nil {
			t.Fatal(err)
		}
		stsBefore := env.sts.Stats().Total(fakests.ActionGetCallerIdentity)
		recovered := make(chan struct{})
		go func() {
			defer close(recovered)
			for env.sts.Stats().Total(fakests.ActionGetCallerIdentity) == stsBefore {
				time.Sleep(time.Millisecond)
			}
			_ = env.sts.SetFaults(fakests.Faults{})
		}()
		ok, err, calls, by, waited := env.authenticateCounting(t, auth, alice)
		<-recovered
		if !ok || err != nil {
			t.Fatalf("unexpected result after STS recovered; got ok=%v err=%v; want alice authenticated", ok, err)
		}
		if calls != 2 || by["sts_unavailable"] != 1 || by["ok"] != 1 {
			t.Fatalf("unexpected webhook calls; got %d %v; want 1 sts_unavailable then 1 ok", calls, by)
		}
		t.Logf("STS recovered after one failure: %d webhook calls, the user waited %s", calls, waited.Round(10*time.Millisecond))
	})

	// Last: after Throttling, iamgate paces its STS calls for a few seconds (the adaptive
	// rate), which would change the cases above. kube-apiserver still retries every step;
	// iamgate answers the steps it cannot send to STS in time itself, so STS sees fewer calls.
	t.Run("STS throttling", func(t *testing.T) {
		if err := env.sts.SetFaults(fakests.Faults{ErrorRates: map[string]float64{"Throttling": 1}}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = env.sts.SetFaults(fakests.Faults{}) }()
		fresh := mint(t, e2eAlice) // signed now: the cases above cached alice's first token
		stsBefore := env.sts.Stats().Total(fakests.ActionGetCallerIdentity)
		ok, err, calls, by, waited := env.authenticateCounting(t, auth, fresh)
		if ok || err == nil {
			t.Fatalf("unexpected result; got ok=%v err=%v; want an error (not a cached denial)", ok, err)
		}
		if calls != kubeAPIServerSteps || by["sts_throttled"] != kubeAPIServerSteps {
			t.Fatalf("unexpected webhook calls; got %d %v; want %d sts_throttled", calls, by, kubeAPIServerSteps)
		}
		got := env.sts.Stats().Total(fakests.ActionGetCallerIdentity) - stsBefore
		if got < 1 || got > kubeAPIServerSteps {
			t.Fatalf("unexpected requests at STS; got %d; want between 1 and %d", got, kubeAPIServerSteps)
		}
		t.Logf("STS throttling: %d webhook calls (sts_throttled), %d of them sent to STS, the user waited %s", calls, got, waited.Round(10*time.Millisecond))
	})
}

// TestKubeAPIServerReviewsWaitInTheSTSQueue: a storm of new tokens against a throttled STS,
// through kube-apiserver's webhook client over HTTP/2 with a write timeout far below the wait:
// each review waits in iamgate's STS queue (-sts.queueWait) and is answered in one request once
// its call starts. Only the calls STS itself throttled, in flight before iamgate paced them,
// are answered 429 (and retried by kube-apiserver); every token authenticates, though the storm
// takes longer than kube-apiserver's whole backoff, which a review refused at once would exhaust.
func TestKubeAPIServerReviewsWaitInTheSTSQueue(t *testing.T) {
	env := startE2E(t, "-sts.timeout", "1s", "-webhook.writeTimeout", "1s")
	auth := env.kubeAPIServerAuthenticator(t)
	const tokens, rate = 30, 4 // 7.5 s of STS calls at least
	toks := make([]string, tokens)
	now := time.Now()
	for i := range toks {
		toks[i] = mintAt(t, e2eAlice, now.Add(-time.Duration(i)*time.Second))
	}
	if err := env.sts.SetFaults(fakests.Faults{ThrottleRate: rate, ThrottleBurst: rate}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.sts.SetFaults(fakests.Faults{}) }()
	before := env.reviews(t)
	throttledBefore := env.sts.Stats().Count(fakests.ActionGetCallerIdentity, fakests.CodeThrottling)
	start := time.Now()
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			if _, ok, err := auth.AuthenticateToken(ctx, tok); !ok || err != nil {
				t.Errorf("unexpected result; got ok=%v err=%v; want alice authenticated", ok, err)
			}
		})
	}
	wg.Wait()
	calls, by := webhookCalls(before, env.reviews(t))
	throttled := int(env.sts.Stats().Count(fakests.ActionGetCallerIdentity, fakests.CodeThrottling) - throttledBefore)
	t.Logf("%d tokens in %s: %d webhook calls %v, STS throttled %d calls", tokens, time.Since(start).Round(10*time.Millisecond), calls, by, throttled)
	if by["ok"] != tokens || calls != tokens+by["sts_throttled"] {
		t.Fatalf("unexpected webhook calls; got %d %v; want %d ok and the retries of throttled calls", calls, by, tokens)
	}
	if by["sts_throttled"] > throttled {
		t.Fatalf("unexpected: %d reviews answered 429 for %d calls STS throttled; iamgate refused reviews it should have kept waiting", by["sts_throttled"], throttled)
	}
}

// mintAt mints u's token signed at at.
func mintAt(t *testing.T, u e2eUser, at time.Time) string {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", u.akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", u.secret)
	t.Setenv("AWS_SESSION_TOKEN", u.session)
	out, err := mintToken(t.Context(), tokenOptions{clusterID: "demo-cluster", region: "us-east-1", tokenOnly: true}, "", at)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// checkRetried authenticates token under faults and checks that kube-apiserver called the
// webhook once per backoff step, each answered with wantReason, and STS once per call.
func checkRetried(t *testing.T, env *e2eEnv, auth authenticator.Token, name string, faults fakests.Faults, token, wantReason string) {
	t.Helper()
	if err := env.sts.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.sts.SetFaults(fakests.Faults{}) }()
	stsBefore := env.sts.Stats().Total(fakests.ActionGetCallerIdentity)
	ok, err, calls, by, waited := env.authenticateCounting(t, auth, token)
	if ok || err == nil {
		t.Fatalf("unexpected result; got ok=%v err=%v; want an error (not a cached denial)", ok, err)
	}
	if calls != kubeAPIServerSteps || by[wantReason] != kubeAPIServerSteps {
		t.Fatalf("unexpected webhook calls; got %d %v; want %d %s", calls, by, kubeAPIServerSteps, wantReason)
	}
	t.Logf("%s: %d webhook calls (%s), the user waited %s", name, calls, wantReason, waited.Round(10*time.Millisecond))
	if wantReason != "mapping_unavailable" {
		// One request at STS per webhook call: nothing retried behind the metrics.
		if got := env.sts.Stats().Total(fakests.ActionGetCallerIdentity) - stsBefore; got != kubeAPIServerSteps {
			t.Fatalf("unexpected requests at STS; got %d; want %d", got, kubeAPIServerSteps)
		}
	}
}

// TestKubeAPIServerRetriesNotReady: before a mapping has loaded, reviews are retried too.
func TestKubeAPIServerRetriesNotReady(t *testing.T) {
	env := startE2EWith(t, false, "-mapping.file", t.TempDir()+"/not-there-yet.yaml")
	auth := env.kubeAPIServerAuthenticator(t)
	ok, err, calls, by, waited := env.authenticateCounting(t, auth, mint(t, e2eAlice))
	if ok || err == nil {
		t.Fatalf("unexpected result; got ok=%v err=%v; want an error", ok, err)
	}
	if calls != kubeAPIServerSteps || by["not_ready"] != kubeAPIServerSteps {
		t.Fatalf("unexpected webhook calls; got %d %v; want %d not_ready", calls, by, kubeAPIServerSteps)
	}
	t.Logf("not ready: %d webhook calls, the user waited %s", calls, waited.Round(10*time.Millisecond))
}

// TestKubeAPIServerRetryRules pins the behaviour of kube-apiserver's webhook client that the
// choice of statuses rests on: a stub answers every call with one status (and Retry-After), and
// the test counts the calls of one authentication. 429, 500, 502 and 504 are retried once per
// backoff step; a bare 503 is not retried at all; Retry-After makes client-go retry by itself
// (11 calls at once for Retry-After: 0; 55 calls over about 55 s for Retry-After: 1, too slow
// to run here).
func TestKubeAPIServerRetryRules(t *testing.T) {
	f := func(status int, retryAfter string, want int) {
		t.Helper()
		t.Run(fmt.Sprintf("%d Retry-After=%q", status, retryAfter), func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":false,"error":"retry"}}`))
			}))
			defer stub.Close()
			cfg := &rest.Config{Host: stub.URL + "/authenticate", Timeout: 30 * time.Second, QPS: -1}
			auth, err := webhook.New(cfg, "v1", nil, *webhook.DefaultRetryBackoff())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok, err := auth.AuthenticateToken(t.Context(), "k8s-aws-v1.x"); ok || err == nil {
				t.Fatalf("unexpected result; got ok=%v err=%v; want an error", ok, err)
			}
			if got := calls.Load(); got != int64(want) {
				t.Fatalf("unexpected webhook calls; got %d; want %d", got, want)
			}
		})
	}
	f(429, "", kubeAPIServerSteps)
	f(500, "", kubeAPIServerSteps)
	f(502, "", kubeAPIServerSteps)
	f(504, "", kubeAPIServerSteps)
	f(503, "", 1)
	f(503, "0", 11)
}
