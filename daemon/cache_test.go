package daemon

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

func testKey(i int) sigv4.Key {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

func TestRejectionCache(t *testing.T) {
	rc := newRejectionCache(100, time.Hour, func() time.Time { return testStart }, newMetrics("test", nil))
	now := testStart
	for i := range 100 {
		rc.set(testKey(i), reasonSTSRejected, now.Add(30*time.Second), now)
	}
	k := testKey(7)
	if why, ok := rc.get(&k, now.Add(29*time.Second)); !ok || why != reasonSTSRejected {
		t.Fatalf("unexpected miss for a remembered rejection")
	}
	if _, ok := rc.get(&k, now.Add(30*time.Second)); ok {
		t.Fatalf("unexpected hit after the rejection expired")
	}
	// Full: a new rejection still gets in, and the cache stays bounded.
	rc.set(testKey(1000), reasonBadIdentity, now.Add(30*time.Second), now)
	k = testKey(1000)
	if why, ok := rc.get(&k, now); !ok || why != reasonBadIdentity {
		t.Fatalf("unexpected miss for a rejection added to a full cache")
	}
	if n := len(rc.entries); n > 100 {
		t.Fatalf("unexpected size; got %d; want at most 100", n)
	}
	// Once the old ones expire, a sweep makes room without dropping live ones.
	later := now.Add(time.Minute)
	for i := 2000; i < 2050; i++ {
		rc.set(testKey(i), reasonSTSRejected, later.Add(30*time.Second), later)
	}
	for i := 2000; i < 2050; i++ {
		k := testKey(i)
		if _, ok := rc.get(&k, later); !ok {
			t.Fatalf("unexpected miss for live rejection %d", i)
		}
	}
	if n := len(rc.entries); n != 50 {
		t.Fatalf("unexpected size after the sweep; got %d; want 50 (the live ones)", n)
	}
}

// TestRejectionCacheEmptiesWhenRejectionsStop: the timed sweep drops expired rejections
// though the cache is far from full, and stops once it is empty; the gauge follows.
func TestRejectionCacheEmptiesWhenRejectionsStop(t *testing.T) {
	m := newMetrics("test", nil)
	var mu sync.Mutex
	clock := testStart
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	rc := newRejectionCache(1000, time.Second, now, m)
	for i := range 10 {
		rc.set(testKey(i), reasonSTSRejected, testStart.Add(30*time.Second), testStart)
	}
	rc.set(testKey(10), reasonSTSRejected, testStart.Add(90*time.Second), testStart)
	size := func() int { rc.mu.RLock(); defer rc.mu.RUnlock(); return len(rc.entries) }
	rc.mu.Lock()
	rc.dropExpiredLocked(now()) // what a sweep does now: nothing has expired yet
	rc.mu.Unlock()
	if n := size(); n != 11 {
		t.Fatalf("unexpected size before the rejections expired; got %d; want 11", n)
	}
	mu.Lock()
	clock = testStart.Add(time.Minute)
	mu.Unlock()
	testenv.WaitFor(t, "the timed sweep to drop the ten expired rejections", func() bool { return size() == 1 })
	if got := testutil.ToFloat64(m.cacheRejectedTokens); got != 1 {
		t.Fatalf("unexpected iamgate_cache_rejected_tokens; got %v; want 1", got)
	}
	mu.Lock()
	clock = testStart.Add(2 * time.Minute)
	mu.Unlock()
	testenv.WaitFor(t, "the timed sweep to empty the cache", func() bool { return size() == 0 })
	testenv.WaitFor(t, "the sweeps to stop", func() bool { rc.mu.RLock(); defer rc.mu.RUnlock(); return !rc.sweepDue })
	if got := testutil.ToFloat64(m.cacheRejectedTokens); got != 0 {
		t.Fatalf("unexpected iamgate_cache_rejected_tokens; got %v; want 0", got)
	}
}

// TestCacheEntriesGauge: a store counts at once, and replacing an entry (a token verified
// again after its entry went stale on the injected clock), before or after its hand-over to
// ristretto, does not count it twice.
func TestCacheEntriesGauge(t *testing.T) {
	m := newMetrics("test", nil)
	c, err := newIdentityCache(64<<20, m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	id := &mapping.Identity{ARN: "arn:aws:iam::123456789012:user/alice"}
	want := func(n float64, when string) {
		t.Helper()
		if got := testutil.ToFloat64(m.cacheEntries); got != n {
			t.Fatalf("unexpected iamgate_cache_entries %s; got %v; want %v", when, got, n)
		}
	}
	for i := range 3 {
		c.set(&cacheEntry{key: testKey(1), id: *id, expires: testStart.Add(time.Minute)}, testStart)
		c.set(&cacheEntry{key: testKey(2 + i), id: *id, expires: testStart.Add(time.Minute)}, testStart)
		c.set(&cacheEntry{key: testKey(2 + i), id: *id, expires: testStart.Add(time.Minute)}, testStart) // again, before the hand-over
		// From the second round on, key 1 is counted again until the hand-over finds it in
		// ristretto already.
		want([]float64{2, 4, 5}[i], "before the hand-over")
		c.handOver()
		want(float64(2+i), "after the hand-over")
	}
}

// TestCacheSetIsVisibleAtOnce: a stored entry is found by the very next get, before it is
// handed to ristretto, while it is and after, so that a review right after an STS call needs no
// other call (hand-overs run while the test stores).
func TestCacheSetIsVisibleAtOnce(t *testing.T) {
	c, err := newIdentityCache(64<<20, newMetrics("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	id := &mapping.Identity{ARN: "arn:aws:iam::123456789012:user/alice"}
	for i := range 10_000 {
		key := testKey(i)
		c.set(&cacheEntry{key: key, id: *id, expires: testStart.Add(time.Minute)}, testStart)
		if _, ok := c.get(&key, testStart); !ok {
			t.Fatalf("entry %d is not visible right after it was stored", i)
		}
		if _, ok := c.get(&key, testStart.Add(time.Minute)); ok {
			t.Fatalf("entry %d is visible after it expired", i)
		}
	}
}

// TestCacheHandOver: fresh entries reach ristretto by themselves, and leave the table of fresh
// entries only once ristretto holds them, however soon the next hand-over comes.
func TestCacheHandOver(t *testing.T) {
	c, err := newIdentityCache(64<<20, newMetrics("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	id := &mapping.Identity{ARN: "arn:aws:iam::123456789012:user/alice"}
	now := time.Now()
	tableLen := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.fresh) + len(c.handing)
	}
	inRistretto := func(key sigv4.Key) bool {
		e, ok := c.c.Get(cacheHash(&key))
		return ok && e.key == key
	}
	// By the timer the first store arms.
	c.set(&cacheEntry{key: testKey(-1), id: *id, expires: now.Add(time.Minute)}, now)
	for deadline := time.Now().Add(10 * time.Second); tableLen() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("fresh entries were not handed to ristretto")
		}
	}
	if !inRistretto(testKey(-1)) {
		t.Fatal("an entry that left the table of fresh entries is not in ristretto")
	}
	// Hand-overs one after the other.
	for round := range 50 {
		for i := range 3 {
			c.set(&cacheEntry{key: testKey(3*round + i), id: *id, expires: now.Add(time.Minute)}, now)
		}
		c.handOver()
		if n := tableLen(); n != 0 {
			t.Fatalf("round %d: %d entries left in the table after a hand-over", round, n)
		}
		for i := range 3 {
			if !inRistretto(testKey(3*round + i)) {
				t.Fatalf("round %d: entry %d left the table of fresh entries but is not in ristretto", round, i)
			}
		}
	}
	// A hand-over due after close does nothing (ristretto is closed).
	c.set(&cacheEntry{key: testKey(1000), id: *id, expires: now.Add(time.Minute)}, now)
	c.close()
	c.handOver()
}

// TestRejectionCacheReturnsMemoryAfterAFlood: a Go map keeps its table after deletes, so once
// a flood of bad tokens has expired the sweep moves the few rejections left into a map of their
// size; the heap falls back to about where it was before the flood.
func TestRejectionCacheReturnsMemoryAfterAFlood(t *testing.T) {
	rc := newRejectionCache(1<<20, time.Hour, func() time.Time { return testStart.Add(time.Minute) }, newMetrics("test", nil))
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	const flood = 200_000
	for i := range flood {
		rc.set(testKey(i), reasonSTSRejected, testStart.Add(30*time.Second), testStart)
	}
	rc.set(testKey(flood), reasonSTSRejected, testStart.Add(time.Hour), testStart) // outlives the flood
	during := heap()
	if during-before < flood*32 {
		t.Fatalf("unexpected heap growth for %d rejections; got %d bytes; want at least %d", flood, during-before, flood*32)
	}
	rc.sweep()
	after := heap()
	if n := len(rc.entries); n != 1 {
		t.Fatalf("unexpected size after the sweep; got %d; want 1", n)
	}
	if freed := during - after; freed < (during-before)/2 {
		t.Fatalf("the swept map kept its memory: heap %d bytes before the flood, %d during, %d after the sweep", before, during, after)
	}
	k := testKey(flood)
	if _, ok := rc.get(&k, testStart.Add(time.Minute)); !ok {
		t.Fatalf("unexpected miss for the rejection that outlived the flood")
	}
}
