package daemon

import (
	"sync"
	"testing"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// TestBaselinePassthrough protects the benchmarking baseline: with BaselinePassthrough every
// review that passes local validation makes its own STS call (no identity cache, no rejection
// cache, no collapsing), and the answers stay the same as iamgate's.
func TestBaselinePassthrough(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BaselinePassthrough = true })
	token := h.token(alice)

	// Sequential reviews of one token: one call each (no identity cache).
	for i := range 5 {
		if a := h.review(token); a.Status != 200 || !a.Review.Authenticated || a.Review.User.Username != "alice" {
			t.Fatalf("unexpected answer %d; got %+v; want alice", i, a)
		}
	}
	if got := h.stsCalls(); got != 5 {
		t.Fatalf("unexpected STS calls for 5 reviews of one token; got %d; want 5", got)
	}

	// Concurrent reviews of one token: one call each (no collapsing).
	if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	h.sts.ResetStats()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []reviewAnswer
	for range 20 {
		wg.Go(func() {
			a, err := h.tryPost(reviewBody(apiVersionV1, token))
			if err != nil || !a.Review.Authenticated {
				mu.Lock()
				bad = append(bad, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bad) != 0 {
		t.Fatalf("unexpected answers in the herd; got %+v", bad)
	}
	if got := h.stsCalls(); got != 20 {
		t.Fatalf("unexpected STS calls for 20 concurrent reviews of one token; got %d; want 20", got)
	}
	if got := h.metric("iamgate_sts_collapsed_total"); got != 0 {
		t.Fatalf("unexpected collapsed reviews; got %v; want 0", got)
	}

	// A rejected token: one call per review (no rejection cache), still a denial.
	if err := h.sts.SetFaults(fakests.Faults{}); err != nil {
		t.Fatal(err)
	}
	h.sts.ResetStats()
	forged := h.token(principal{alice.arn, alice.akid, "not-alice-secret"})
	for i := range 3 {
		if a := h.review(forged); a.Status != 200 || a.Review.Authenticated {
			t.Fatalf("unexpected answer %d for a forged token; got %+v; want a denial", i, a)
		}
	}
	if got := h.stsCalls(); got != 3 {
		t.Fatalf("unexpected STS calls for 3 reviews of one rejected token; got %d; want 3", got)
	}

	// Local rejections still cost no call.
	h.sts.ResetStats()
	if a := h.review("k8s-aws-v1.bm90LWEtdG9rZW4"); a.Review.Authenticated {
		t.Fatalf("unexpected answer for garbage; got %+v", a)
	}
	if got := h.stsCalls(); got != 0 {
		t.Fatalf("unexpected STS calls for a locally rejected token; got %d; want 0", got)
	}
	if got := h.metric(`iamgate_cache_hits_total{kind="identity"}`); got != 0 {
		t.Fatalf("unexpected identity cache hits; got %v; want 0", got)
	}
}

// Without the baseline flag the same reviews cost one call: the test above can fail.
func TestBaselinePassthroughOffCaches(t *testing.T) {
	h := newHarness(t)
	token := h.token(alice)
	for range 5 {
		h.review(token)
	}
	if got := h.stsCalls(); got != 1 {
		t.Fatalf("unexpected STS calls for 5 reviews of one token; got %d; want 1", got)
	}
}
