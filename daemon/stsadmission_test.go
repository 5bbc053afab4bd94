package daemon

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iamgate/iamgate/fakests"
)

// TestSTSRate: the adaptive rate is off until STS throttles; then it drops below what STS
// accepted, counts one overshoot once, grows back to that rate after K seconds and past it,
// and lets go of the limit once STS takes far more than it refused.
func TestSTSRate(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var r stsRate
	for i := range 1000 {
		if !r.take(at(float64(i) / 1000)) {
			t.Fatalf("unexpected: the rate limits calls before any Throttling")
		}
	}
	// STS accepted 50 calls in the second before it throttled.
	for i := range 50 {
		r.answered(at(1+float64(i)/50), at(1+float64(i)/50))
	}
	r.throttled(at(2), at(1.99))
	if !r.pacing || math.Abs(r.current()-45) > 0.05*45 {
		t.Fatalf("unexpected rate after Throttling; got on=%v %.2f; want on 45 (0.9 × 50)", r.pacing, r.current())
	}
	// A second Throttling for a call sent before the drop is the same overshoot.
	r.throttled(at(2.001), at(1.995))
	if math.Abs(r.current()-45) > 0.5 {
		t.Fatalf("unexpected second drop for a call sent before the first; got %.2f", r.current())
	}
	// Over the next second the bucket lets about 45 calls through, never a burst.
	n := 0
	for i := range 10000 {
		if r.take(at(2.001 + float64(i)/10000)) {
			n++
		}
	}
	if n < 40 || n > 50 {
		t.Fatalf("unexpected calls in the second after the drop; got %d; want about 45", n)
	}
	// Back at 50 after K = cbrt(50 × 0.1 / 0.4) s, and beyond it later.
	k := math.Cbrt(50 * (1 - rateBeta) / rateCubicC)
	r.refill(at(2.001 + k))
	if math.Abs(r.current()-50) > 0.5 {
		t.Fatalf("unexpected rate after K=%.2fs; got %.2f; want 50", k, r.current())
	}
	r.refill(at(2.001 + k + 3))
	if r.current() < 55 {
		t.Fatalf("unexpected: the rate does not probe beyond 50; got %.2f", r.current())
	}
	// A Throttling for a call sent after the drop drops again, from what STS accepted.
	for i := range 48 {
		r.answered(at(2.001+k+2+float64(i)/48), at(2.001+k+2+float64(i)/48))
	}
	r.throttled(at(2.001+k+3), at(2.001+k+2.9))
	if math.Abs(r.current()-0.9*48) > 0.05*0.9*48 { // the window's edges: within 5 %
		t.Fatalf("unexpected rate after the second Throttling; got %.2f; want %.2f", r.current(), 0.9*48)
	}
	// With no more Throttling, the limit goes once the curve reaches 4 × 48.
	r.refill(at(2.001 + k + 3 + 20))
	if r.pacing || !r.take(at(2.001+k+3+20)) {
		t.Fatalf("unexpected: the rate still limits at %.2f", r.current())
	}

	var off stsRate
	off.adaptiveOff = true
	off.throttled(at(1), at(1))
	if off.pacing {
		t.Fatalf("unexpected: a disabled rate turned on")
	}
}

// TestSTSRateCountsLateAnswers: STS answered Throttling while most of the calls it accepted
// were still in flight; their answers, arriving after the drop, raise the curve to what STS
// accepted, never above the rate of the drop; answers to calls sent after the drop do not.
func TestSTSRateCountsLateAnswers(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	var r stsRate
	for i := range 10 { // the first 10 of a burst of 50 accepted calls, sent at 1.0
		r.answered(at(1+float64(i)/1000), at(1))
	}
	r.throttled(at(1.01), at(1))
	if math.Abs(r.current()-9) > 0.5 {
		t.Fatalf("unexpected rate after Throttling; got %.2f; want 9 (0.9 × the 10 answered)", r.current())
	}
	for i := range 40 { // the other 40, answered later
		r.answered(at(1.02+float64(i)/1000), at(1))
	}
	if got := r.current(); math.Abs(got-45) > 0.1*45 { // the window's edges: within 10 %
		t.Fatalf("unexpected rate after the late answers; got %.2f; want about 45 (0.9 × 50)", got)
	}
	for i := range 50 { // sent after the drop: the rate's own calls, not the burst's
		r.answered(at(1.1+float64(i)/1000), at(1.05))
	}
	if got := r.current(); got > 46 {
		t.Fatalf("unexpected rate raised by calls sent after the drop; got %.2f", got)
	}
	// Paced at 45, STS throttles again; late answers cannot raise the peak above 45.
	r.throttled(at(1.2), at(1.15))
	for i := range 100 {
		r.answered(at(1.21+float64(i)/1000), at(1.15))
	}
	if got := r.current(); got > 0.9*45+0.5 {
		t.Fatalf("unexpected rate above 0.9 × the rate of the drop (45); got %.2f", got)
	}
}

// TestSTSAdmissionPriority: while calls wait, those for verified keys start first and a
// never-seen key gets one start in four; without the priority, one FIFO.
func TestSTSAdmissionPriority(t *testing.T) {
	f := func(preferVerified bool, want string) {
		t.Helper()
		a := newSTSAdmission(1, 100, true, preferVerified, newMetrics("test", nil))
		deadline := time.Now().Add(time.Minute)
		if err := acquireNow(a, keyVerified, deadline); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		order := ""
		var wg sync.WaitGroup
		// Enqueue 6 new, then 6 verified calls, one at a time so that the order is known.
		for i, class := range []keyClass{keyNew, keyNew, keyNew, keyNew, keyNew, keyNew, keyVerified, keyVerified, keyVerified, keyVerified, keyVerified, keyVerified} {
			wg.Go(func() {
				if err := acquireNow(a, class, deadline); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order += "NV"[1-class : 2-class]
				mu.Unlock()
				a.release(time.Now(), time.Now(), true, false)
			})
			for waiting(a) != i+1 {
				time.Sleep(time.Millisecond)
			}
		}
		a.release(time.Now(), time.Now(), true, false)
		wg.Wait()
		if order != want {
			t.Fatalf("unexpected start order with preferVerified=%v; got %s; want %s", preferVerified, order, want)
		}
	}
	f(true, "VVVNVVVNNNNN")
	f(false, "NNNNNNVVVVVV")
}

func waiting(a *stsAdmission) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.queues[0].Len() + a.queues[1].Len()
}

// TestSTSAdmissionRefusesWhatCannotStartInTime: once paced, a call that the rate cannot
// start before its deadline is refused at once, not held until the deadline; one that can
// waits for its token.
func TestSTSAdmissionRefusesWhatCannotStartInTime(t *testing.T) {
	a := newSTSAdmission(64, 100, true, true, newMetrics("test", nil))
	now := time.Now()
	a.mu.Lock()
	a.rate.throttled(now, now) // nothing answered lately: paced at the floor, bucket empty
	a.mu.Unlock()
	start := time.Now()
	if err := acquireNow(a, keyNew, start.Add(2*time.Second)); err != nil {
		t.Fatalf("unexpected refusal of a call the rate can start in time: %v", err)
	}
	waited := time.Since(start)
	a.release(time.Now(), time.Now(), true, false)
	if waited < 500*time.Millisecond {
		t.Fatalf("unexpected: the call started after %s, before the rate allowed it", waited)
	}
	// The next token is about a second away: a call with 300 ms left is refused, and sooner
	// than its deadline.
	start = time.Now()
	if err := acquireNow(a, keyNew, start.Add(300*time.Millisecond)); !errors.Is(err, errRateLimited) {
		t.Fatalf("unexpected result for a call the rate cannot start in time; got %v; want %v", err, errRateLimited)
	}
	if elapsed := time.Since(start); elapsed >= 300*time.Millisecond {
		t.Fatalf("unexpected: the refusal waited for the deadline (%s)", elapsed)
	}
	if got := testutil.ToFloat64(a.metrics.stsRateLimited[keyNew]); got != 1 {
		t.Fatalf("unexpected iamgate_sts_rate_limited_total{keys=\"new\"}; got %v; want 1", got)
	}
}

// TestSTSAdmissionRefusesWhenTheRateDrops: calls that waited for a rate that then dropped are
// refused as soon as the drop shows they cannot start before their deadline, not when it comes;
// those that still can, start.
func TestSTSAdmissionRefusesWhenTheRateDrops(t *testing.T) {
	a := newSTSAdmission(64, 100, true, true, newMetrics("test", nil))
	now := time.Now()
	a.mu.Lock()
	for i := range 110 { // STS accepted about 100 calls/s
		a.rate.answered(now.Add(-time.Second+time.Duration(i)*9*time.Millisecond), now.Add(-2*time.Second))
	}
	a.rate.throttled(now, now)
	paced := a.rate.current()
	a.mu.Unlock()
	if paced < 50 {
		t.Fatalf("unexpected rate %.1f after the first Throttling; want about 90", paced)
	}
	// One call in flight; 20 wait, each with 3 s to start: at about 90/s all fit.
	if err := acquireNow(a, keyVerified, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.inflight = a.maxInflight // every slot busy: the waiting calls wait for the release below
	a.mu.Unlock()
	deadline := time.Now().Add(3 * time.Second)
	results := make(chan error, 20)
	for range 20 {
		go func() {
			err := acquireNow(a, keyVerified, deadline)
			if err == nil {
				a.release(time.Now(), time.Now(), true, false)
			}
			results <- err
		}()
	}
	for waiting(a) != 20 {
		time.Sleep(time.Millisecond)
	}
	// STS throttles a call sent after the drop, and nothing was answered in the last second:
	// the rate falls to its floor, one call a second, which cannot start 20 within 3 s.
	a.mu.Lock()
	a.inflight = 1
	a.rate.answers = answerWindow{}
	a.mu.Unlock()
	start := time.Now()
	a.release(time.Now(), time.Now(), false, true)
	refused, started := 0, 0
	for range 20 {
		switch err := <-results; {
		case errors.Is(err, errRateLimited):
			refused++
			if refused == 1 && time.Since(start) > time.Second {
				t.Fatalf("unexpected: the first refusal came %s after the drop, not at once", time.Since(start))
			}
		case err == nil:
			started++
		default:
			t.Fatalf("unexpected result %v", err)
		}
	}
	if refused < 15 || started < 1 {
		t.Fatalf("unexpected %d refused and %d started after the drop to %.1f/s; want most refused, the first started", refused, started, a.rate.current())
	}
}

// TestSTSAdmissionDrain: on shutdown the waiting calls are refused at once (429, which
// kube-apiserver retries) and no new call waits; a call that can start at once still starts.
func TestSTSAdmissionDrain(t *testing.T) {
	a := newSTSAdmission(1, 100, true, true, newMetrics("test", nil))
	if err := acquireNow(a, keyVerified, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 3)
	for range 3 {
		go func() { results <- acquireNow(a, keyVerified, time.Now().Add(time.Minute)) }()
	}
	for waiting(a) != 3 {
		time.Sleep(time.Millisecond)
	}
	a.drain()
	for range 3 {
		if err := <-results; !errors.Is(err, errQueueFull) {
			t.Fatalf("unexpected result for a waiting call at shutdown; got %v; want %v", err, errQueueFull)
		}
	}
	if err := acquireNow(a, keyVerified, time.Now().Add(time.Minute)); !errors.Is(err, errQueueFull) {
		t.Fatalf("unexpected result for a call that would wait during shutdown; got %v; want %v", err, errQueueFull)
	}
	a.release(time.Now(), time.Now(), true, false)
	if err := acquireNow(a, keyVerified, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("unexpected refusal of a call that can start at once during shutdown: %v", err)
	}
	if got := testutil.ToFloat64(a.metrics.stsQueueRejections); got != 4 {
		t.Fatalf("unexpected iamgate_sts_queue_rejections_total; got %v; want 4", got)
	}
}

// TestAdaptiveSTSRate: a storm of new tokens against an STS throttled at 40 calls/s, each
// review retried on 429 and 5xx as kube-apiserver does (shorter backoff): every token is
// verified in the end, and iamgate paces its calls instead of hammering STS, so the calls,
// Throttling answers included, stay close to one per token. Without the adaptive rate this
// storm costs several calls per token.
func TestAdaptiveSTSRate(t *testing.T) {
	const tokens, rate = 240, 40
	h := newHarness(t)
	if err := h.sts.SetFaults(fakests.Faults{ThrottleRate: rate, ThrottleBurst: rate}); err != nil {
		t.Fatal(err)
	}
	before := h.stsCalls()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range tokens {
		tok := h.tokenAt(alice, testStart.Add(-time.Duration(i)*time.Second), testClusterID)
		wg.Go(func() {
			backoff := 100 * time.Millisecond
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
				a, err := h.tryPost(reviewBody(apiVersionV1, tok))
				if err == nil && a.Status == 200 {
					if !a.Review.Authenticated {
						t.Errorf("unexpected denial: %+v", a)
					}
					return
				}
				if err == nil && a.Status != 429 && a.Status < 500 {
					t.Errorf("unexpected answer: %+v", a)
					return
				}
				time.Sleep(backoff)
				backoff = min(2*backoff, 2*time.Second)
			}
			failed.Add(1)
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("unexpected: %d of %d tokens not verified within 60 s", n, tokens)
	}
	calls := h.stsCalls() - before
	t.Logf("%d tokens: %d STS calls (%d throttled), %v reviews paced by iamgate", tokens, calls,
		h.sts.Stats().Count(fakests.ActionGetCallerIdentity, fakests.CodeThrottling),
		h.metric(`iamgate_sts_rate_limited_total{keys="new"}`)+h.metric(`iamgate_sts_rate_limited_total{keys="verified"}`))
	// Before STS first answers Throttling nothing is paced, and every call in flight then (up
	// to -sts.maxConcurrency, 64 here, and about as many again while a busy machine delivers
	// the answer) is throttled: that overshoot, and little more, is allowed. Without the
	// adaptive rate this storm costs about 1,300 calls.
	if limit := uint64(tokens + 2*64); calls > limit {
		t.Fatalf("unexpected STS calls for %d tokens under throttling; got %d; want at most %d", tokens, calls, limit)
	}
}

// TestSTSRateKeepsTheAccountBusy: against a simulated STS that throttles above 50 calls/s,
// with calls always waiting, the adaptive rate sends close to what STS accepts and wastes few
// calls on Throttling, for short and long STS latencies, with a bucket of one second (the
// fake STS in make bench) and of a tenth of a second, and when STS answers Throttling at once
// while an accepted call takes the whole latency (the first Throttling then arrives before
// most of the calls STS accepted are answered). Simulated time: no clock, no sleeping, the
// same answer on any machine.
func TestSTSRateKeepsTheAccountBusy(t *testing.T) {
	const limit, span = 50.0, 110 * time.Second
	for _, tc := range []struct {
		burst, minShare, maxThrottled float64
		quickThrottling               bool
	}{{50, 0.98, 0.015, false}, {5, 0.92, 0.04, false}, {50, 0.98, 0.015, true}, {5, 0.92, 0.04, true}} {
		for _, latency := range []time.Duration{2 * time.Millisecond, 30 * time.Millisecond, 200 * time.Millisecond} {
			t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			var r stsRate
			bucket, filled := tc.burst, t0
			accepted, throttled := 0, 0
			type call struct {
				started, ends time.Time
				ok            bool
			}
			var inflight []call
			for now := t0; now.Before(t0.Add(span)); now = now.Add(200 * time.Microsecond) {
				kept := inflight[:0]
				for _, c := range inflight {
					switch {
					case c.ends.After(now):
						kept = append(kept, c)
					case c.ok:
						r.answered(now, c.started)
					default:
						r.throttled(now, c.started)
					}
				}
				inflight = kept
				for len(inflight) < 64 && r.take(now) {
					bucket, filled = math.Min(tc.burst, bucket+now.Sub(filled).Seconds()*limit), now
					c := call{started: now, ends: now.Add(latency), ok: bucket >= 1}
					if c.ok {
						bucket--
						accepted++
					} else {
						throttled++
						if tc.quickThrottling {
							c.ends = now.Add(200 * time.Microsecond)
						}
					}
					inflight = append(inflight, c)
				}
			}
			rate := float64(accepted) / span.Seconds()
			if rate < tc.minShare*limit || float64(throttled) > tc.maxThrottled*float64(accepted) {
				t.Errorf("burst %g, latency %s, quick Throttling %v: unexpected %.1f calls/s accepted, %d throttled; want ≥ %.1f/s and ≤ %.1f %% throttled",
					tc.burst, latency, tc.quickThrottling, rate, throttled, tc.minShare*limit, 100*tc.maxThrottled)
			}
		}
	}
}

// TestVerifiedKeys: a verified key keeps its priority through one turn of the generations and
// loses it at the second; the generations turn after keyGeneration or at limit keys, by the
// clock the reviews pass in.
func TestVerifiedKeys(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	v := newVerifiedKeys(3, t0)
	if c := v.class("AKIAALICE"); c != keyNew {
		t.Fatalf("a key never verified is %s, want new", keyClassNames[c])
	}
	v.add("AKIAALICE", t0)
	v.add("AKIAALICE", t0.Add(keyGeneration)) // turns: alice moves to the old generation and back
	v.add("AKIABOB", t0.Add(keyGeneration+time.Minute))
	for _, k := range []string{"AKIAALICE", "AKIABOB"} {
		if c := v.class(k); c != keyVerified {
			t.Fatalf("%s is %s after one turn, want verified", k, keyClassNames[c])
		}
	}
	// Two turns by size (limit 3): alice, bob and carol fill the generation; dave turns it,
	// erin and frank fill the next and grace turns it again.
	at := t0.Add(keyGeneration + 2*time.Minute)
	for _, k := range []string{"AKIACAROL", "AKIADAVE", "AKIAERIN", "AKIAFRANK", "AKIAGRACE"} {
		v.add(k, at)
	}
	for k, want := range map[string]keyClass{"AKIAALICE": keyNew, "AKIABOB": keyNew, "AKIACAROL": keyNew,
		"AKIADAVE": keyVerified, "AKIAERIN": keyVerified, "AKIAFRANK": keyVerified, "AKIAGRACE": keyVerified} {
		if c := v.class(k); c != want {
			t.Errorf("%s is %s after two turns by size, want %s", k, keyClassNames[c], keyClassNames[want])
		}
	}
	// Two turns by time, none by size: everyone loses the priority.
	v.add("AKIAHEIDI", at.Add(keyGeneration))
	v.add("AKIAHEIDI", at.Add(2*keyGeneration))
	if c := v.class("AKIAGRACE"); c != keyNew {
		t.Errorf("a key verified two generations ago is %s, want new", keyClassNames[c])
	}
}

// acquireNow is acquire with the clock read at the call, as getCallerIdentity reads it.
func acquireNow(a *stsAdmission, class keyClass, deadline time.Time) error {
	_, err := a.acquire(class, time.Now(), deadline)
	return err
}
