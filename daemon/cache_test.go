package daemon

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

func testKey(i int) sigv4.Key {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

func TestRejectionCache(t *testing.T) {
	rc := newRejectionCache(100, newMetrics("test", nil))
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

// TestCacheEntriesGauge: replacing an entry (a token verified again after its entry went
// stale on the injected clock) does not count it twice.
func TestCacheEntriesGauge(t *testing.T) {
	m := newMetrics("test", nil)
	c, err := newIdentityCache(64<<20, m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	id := &mapping.Identity{ARN: "arn:aws:iam::123456789012:user/alice"}
	for i := range 3 {
		c.set(&cacheEntry{key: testKey(1), id: id, expires: testStart.Add(time.Minute)}, testStart)
		c.set(&cacheEntry{key: testKey(2 + i), id: id, expires: testStart.Add(time.Minute)}, testStart)
	}
	if got := testutil.ToFloat64(m.cacheEntries); got != 4 {
		t.Fatalf("unexpected iamgate_cache_entries; got %v; want 4", got)
	}
}

// TestCacheSetIsVisibleAtOnce: a stored entry is found by the very next get, before ristretto's
// policy goroutine has taken it, so that a review right after an STS call needs no other call;
// and without Cache.Wait a store costs no goroutine switch.
func TestCacheSetIsVisibleAtOnce(t *testing.T) {
	c, err := newIdentityCache(64<<20, newMetrics("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	id := &mapping.Identity{ARN: "arn:aws:iam::123456789012:user/alice"}
	for i := range 10_000 {
		key := testKey(i)
		c.set(&cacheEntry{key: key, id: id, expires: testStart.Add(time.Minute)}, testStart)
		if _, ok := c.get(&key, testStart); !ok {
			t.Fatalf("entry %d is not visible right after it was stored", i)
		}
		if _, ok := c.get(&key, testStart.Add(time.Minute)); ok {
			t.Fatalf("entry %d is visible after it expired", i)
		}
	}
}

// TestRecentEntriesTurn: an entry stays in recentEntries for recentFor to 2 × recentFor.
func TestRecentEntriesTurn(t *testing.T) {
	var r recentEntries
	start := time.Now()
	first := &cacheEntry{key: testKey(1)}
	r.add(first, start)
	r.add(&cacheEntry{key: testKey(2)}, start.Add(recentFor))
	if r.get(&first.key) != first {
		t.Fatal("an entry left after one turn")
	}
	r.add(&cacheEntry{key: testKey(3)}, start.Add(2*recentFor))
	if r.get(&first.key) != nil {
		t.Fatal("an entry stayed after two turns")
	}
}

// TestCacheEntryOutlivesTheRecentTable: an entry that has left the table of recent stores is
// found in ristretto, however soon the table turns after the store.
func TestCacheEntryOutlivesTheRecentTable(t *testing.T) {
	c, err := newIdentityCache(64<<20, newMetrics("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	id := &mapping.Identity{ARN: "arn:aws:iam::123456789012:user/alice"}
	now := time.Now()
	forceTurn := func() {
		c.recent.mu.Lock()
		c.recent.turned = time.Time{}
		c.recent.mu.Unlock()
	}
	for round := range 50 {
		first := testKey(3 * round)
		c.set(&cacheEntry{key: first, id: id, expires: now.Add(time.Minute)}, now)
		forceTurn()
		c.set(&cacheEntry{key: testKey(3*round + 1), id: id, expires: now.Add(time.Minute)}, now)
		forceTurn()
		c.set(&cacheEntry{key: testKey(3*round + 2), id: id, expires: now.Add(time.Minute)}, now)
		if c.recent.get(&first) != nil {
			t.Fatal("the entry should have left the table after two turns")
		}
		if _, ok := c.get(&first, now); !ok {
			t.Fatalf("round %d: an entry that left the table of recent stores is not in ristretto", round)
		}
	}
}
