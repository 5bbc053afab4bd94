package daemon

import (
	"encoding/binary"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// cacheEntry is what the identity cache holds for one canonical key. Immutable once stored.
type cacheEntry struct {
	key sigv4.Key
	// id is held by value: one object for the cache to keep, not two.
	id      mapping.Identity
	expires time.Time // checked against the injected clock on every hit
}

// identityCache wraps ristretto: keys are the first 8 bytes of the canonical SHA-256 key, and
// each entry carries the whole key, so a collision can only miss, never answer for another
// token. Safe for concurrent use.
//
// A store does not go to ristretto at once: it goes to a small table of fresh entries, which a
// get reads after ristretto, and every handOverAfter the fresh entries are handed to ristretto
// together (see handOver). Why: ristretto makes a new entry visible only once its policy
// goroutine has taken it from its buffer, so a review of the same token just after the store
// would miss (and call STS again) unless the store waited for that goroutine (Cache.Wait: two
// goroutine switches and an allocation per cold review); and each store alone woke that
// goroutine up, a wake-up per cold review that a batch shares.
//
// A cold review asks ristretto once: its own lookup. The re-check before an STS call
// (getSince) reads only the fresh entries while no hand-over has ended since that lookup, and a
// hand-over learns whether it replaced an entry from ristretto's update hook, not from a Get.
// Each Get of ristretto costs a lookup in a large map, and counts an access of the key for its
// admission policy: three per never-seen token would count it as seen three times.
type identityCache struct {
	c       *ristretto.Cache[uint64, *cacheEntry]
	metrics *metrics

	mu      sync.Mutex
	fresh   map[sigv4.Key]freshEntry // stored since the last hand-over began; guarded by mu
	handing map[sigv4.Key]freshEntry // being handed to ristretto; guarded by mu
	// lastBatch is the size of the last hand-over: the next table of fresh entries starts at
	// it rather than growing step by step to it. Guarded by mu.
	lastBatch int
	// handOvers counts the hand-overs that ended; written under mu, after handing is emptied.
	handOvers atomic.Uint64

	handOverMu sync.Mutex // one hand-over at a time, none once closed
	closed     bool       // guarded by handOverMu
	// replaced is the entry whose SetWithTTL found the key in ristretto already: set by
	// ristretto's ShouldUpdate hook, taken by handOver right after the SetWithTTL.
	replaced atomic.Pointer[cacheEntry]
}

type freshEntry struct {
	e       *cacheEntry
	ttl     time.Duration // for ristretto's eviction; get checks e.expires itself
	counted bool          // counted in iamgate_cache_entries when stored
}

// handOverAfter is how long fresh entries wait to be handed to ristretto together: long
// enough that a hand-over, and the wake-up of ristretto's policy goroutine, is shared by many
// cold reviews (hundreds a turn at thousands a second), short enough that the table stays
// small.
const handOverAfter = 100 * time.Millisecond

func newIdentityCache(maxBytes int64, m *metrics) (*identityCache, error) {
	ic := &identityCache{metrics: m}
	// About 1 KiB per identity: 10 counters per expected entry, as ristretto advises.
	counters := max(maxBytes/1024*10, 1000)
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *cacheEntry]{
		NumCounters:        counters,
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: false,
		OnEvict:            func(*ristretto.Item[*cacheEntry]) { m.cacheEntries.Dec() },
		OnReject:           func(*ristretto.Item[*cacheEntry]) { m.cacheEntries.Dec() },
		// Called when a set finds its key stored: an update is no new entry for
		// iamgate_cache_entries (see handOver).
		ShouldUpdate: func(cur, _ *cacheEntry) bool {
			ic.replaced.Store(cur)
			return true
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create identity cache: %w", err)
	}
	ic.c = c
	return ic, nil
}

func cacheHash(k *sigv4.Key) uint64 { return binary.LittleEndian.Uint64(k[:8]) }

// get returns the live entry for key at time now.
func (ic *identityCache) get(key *sigv4.Key, now time.Time) (*cacheEntry, bool) {
	e, ok := ic.c.Get(cacheHash(key))
	if !ok || e.key != *key {
		if e = ic.getFresh(key); e == nil {
			return nil, false
		}
	}
	if !now.Before(e.expires) {
		return nil, false
	}
	return e, true
}

// generation identifies the hand-overs ended so far: read before a get, it lets getSince
// know whether an entry stored after that get can be in ristretto already.
func (ic *identityCache) generation() uint64 { return ic.handOvers.Load() }

// getSince is get for a key that get missed after generation gen was read. While no hand-over
// has ended since, an entry stored after that get is still in the table of fresh entries, and
// ristretto need not be asked.
func (ic *identityCache) getSince(key *sigv4.Key, now time.Time, gen uint64) (*cacheEntry, bool) {
	ic.mu.Lock()
	if ic.handOvers.Load() != gen {
		ic.mu.Unlock()
		return ic.get(key, now)
	}
	e := ic.getFreshLocked(key)
	ic.mu.Unlock()
	if e == nil || !now.Before(e.expires) {
		return nil, false
	}
	return e, true
}

// getFresh returns the entry of key not yet (or just) handed to ristretto, if any.
func (ic *identityCache) getFresh(key *sigv4.Key) *cacheEntry {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.getFreshLocked(key)
}

func (ic *identityCache) getFreshLocked(key *sigv4.Key) *cacheEntry {
	if f, ok := ic.fresh[*key]; ok {
		return f.e
	}
	return ic.handing[*key].e
}

// set stores e until e.expires (measured from now); a get sees it at once.
func (ic *identityCache) set(e *cacheEntry, now time.Time) {
	ttl := e.expires.Sub(now)
	if ttl <= 0 {
		return
	}
	ic.mu.Lock()
	first := len(ic.fresh) == 0
	if ic.fresh == nil {
		ic.fresh = make(map[sigv4.Key]freshEntry, ic.lastBatch)
	}
	// iamgate_cache_entries counts a store at once, unless its key is in the table already;
	// the hand-over takes the count back if ristretto turns out to hold the key already (an
	// update) or drops the entry.
	f := freshEntry{e: e, ttl: ttl}
	old, inFresh := ic.fresh[e.key]
	_, inHanding := ic.handing[e.key]
	count := !inFresh && !inHanding
	f.counted = count || old.counted
	ic.fresh[e.key] = f
	ic.mu.Unlock()
	if count {
		ic.metrics.cacheEntries.Inc()
	}
	if first {
		time.AfterFunc(handOverAfter, ic.handOver)
	}
}

// handOver gives the fresh entries to ristretto and waits until its policy goroutine has taken
// them all (admitted or refused them); only then do they leave the table, so an entry is
// always in one of the two however busy the machine.
func (ic *identityCache) handOver() {
	ic.handOverMu.Lock()
	defer ic.handOverMu.Unlock()
	if ic.closed {
		return
	}
	ic.mu.Lock()
	batch := ic.fresh
	ic.fresh, ic.handing = nil, batch
	ic.lastBatch = len(batch)
	ic.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	for key, f := range batch {
		stored := ic.c.SetWithTTL(cacheHash(&key), f.e, entryCost(f.e), f.ttl)
		// SetWithTTL calls the ShouldUpdate hook, on this goroutine, when the key is stored
		// already. (The hook may also run on ristretto's goroutine, for two new keys of one
		// hash in a batch; its entry is then not f.e.)
		replaces := ic.replaced.Swap(nil) == f.e
		switch isNew := stored && !replaces; {
		case f.counted && !isNew:
			ic.metrics.cacheEntries.Dec()
		case !f.counted && isNew:
			ic.metrics.cacheEntries.Inc()
		}
	}
	ic.c.Wait()
	ic.mu.Lock()
	ic.handing = nil
	ic.handOvers.Add(1)
	ic.mu.Unlock()
}

// entryCost estimates the bytes an entry keeps alive, for -cache.maxBytes.
func entryCost(e *cacheEntry) int64 {
	// The entry with its Identity (ten string headers), ristretto's item, its map and TTL
	// bucket slots.
	const fixed = 240 + 200
	id := &e.id
	// The Identity's strings share one allocation (mapping.NewIdentity): ARN, UserID and
	// AccessKeyID, and at most the canonical ARN and the lookup key besides; the others are
	// substrings of these.
	return int64(fixed + len(id.ARN) + len(id.UserID) + len(id.AccessKeyID) + 2*len(id.CanonicalARN))
}

// close stops the cache; a hand-over due later does nothing (ristretto must not be written
// while it closes).
func (ic *identityCache) close() {
	ic.handOverMu.Lock()
	defer ic.handOverMu.Unlock()
	ic.closed = true
	ic.c.Close()
}

// rejectionCache remembers the tokens STS rejected, for -cache.negativeTTL (see
// docs/design.md: Cache and collapsing). It is apart from ristretto on purpose: ristretto's
// admission policy may refuse a new entry when its cache is full, and a refused rejection would
// let a flood of one bad token reach STS on every review. It holds at most limit entries. While
// it holds any, a sweep every sweepEvery (the negative TTL) drops the expired ones, so that it
// holds about the rejections of the last two TTLs and empties when they stop (without it, the
// few bad tokens of a normal day filled it to its limit over hours), and after a flood its map
// is replaced by a smaller one; when full, expired entries go first (swept at most once a
// second), then arbitrary ones. Safe for concurrent use.
type rejectionCache struct {
	limit      int
	sweepEvery time.Duration
	now        func() time.Time // the reviews' clock, for the timed sweeps
	metrics    *metrics

	mu        sync.RWMutex
	entries   map[sigv4.Key]rejection // guarded by mu
	peak      int                     // the most entries since entries was made; guarded by mu
	lastSweep time.Time               // guarded by mu
	sweepDue  bool                    // a timed sweep is scheduled; guarded by mu
}

// rejectionCost is about what one remembered rejection costs: key, reason, expiry, map slot.
const rejectionCost = 128

type rejection struct {
	reason  reason
	expires time.Time
}

// newRejectionCache holds up to limit rejections and sweeps the expired ones every sweepEvery
// (at least a second) by the clock now.
func newRejectionCache(limit int, sweepEvery time.Duration, now func() time.Time, m *metrics) *rejectionCache {
	return &rejectionCache{limit: limit, sweepEvery: max(sweepEvery, time.Second), now: now, metrics: m,
		entries: make(map[sigv4.Key]rejection)}
}

// get returns the reason key was rejected, if that is still remembered at time now.
func (rc *rejectionCache) get(key *sigv4.Key, now time.Time) (reason, bool) {
	rc.mu.RLock()
	r, ok := rc.entries[*key]
	rc.mu.RUnlock()
	if !ok || !now.Before(r.expires) {
		return 0, false
	}
	return r.reason, true
}

// set remembers that key was rejected for why, until expires (nothing when that is not after
// now), making room when the cache is full.
func (rc *rejectionCache) set(key sigv4.Key, why reason, expires, now time.Time) {
	if !now.Before(expires) {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, ok := rc.entries[key]; !ok && len(rc.entries) >= rc.limit {
		if now.Sub(rc.lastSweep) >= time.Second {
			rc.dropExpiredLocked(now)
		}
		for k := range rc.entries { // still full: make room by dropping an arbitrary entry
			if len(rc.entries) < rc.limit {
				break
			}
			delete(rc.entries, k)
		}
	}
	rc.entries[key] = rejection{reason: why, expires: expires}
	rc.peak = max(rc.peak, len(rc.entries))
	rc.metrics.cacheRejectedTokens.Set(float64(len(rc.entries)))
	if !rc.sweepDue {
		rc.sweepDue = true
		time.AfterFunc(rc.sweepEvery, rc.sweep)
	}
}

// sweep drops the expired entries, and is scheduled again while any entry is left.
func (rc *rejectionCache) sweep() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.dropExpiredLocked(rc.now())
	rc.metrics.cacheRejectedTokens.Set(float64(len(rc.entries)))
	rc.sweepDue = len(rc.entries) > 0
	if rc.sweepDue {
		time.AfterFunc(rc.sweepEvery, rc.sweep)
	}
}

// shrinkFrom is the peak below which a swept map is kept as it is: small tables are not worth
// the copy.
const shrinkFrom = 1024

func (rc *rejectionCache) dropExpiredLocked(now time.Time) {
	rc.lastSweep = now
	for k, r := range rc.entries {
		if !now.Before(r.expires) {
			delete(rc.entries, k)
		}
	}
	// A Go map keeps its table after deletes: after a flood of bad tokens, the swept map would
	// hold its peak's memory (up to the limit's) until a restart. Once the entries are down to
	// a quarter of that peak, they move to a map of their size.
	if rc.peak >= shrinkFrom && len(rc.entries) <= rc.peak/4 {
		kept := make(map[sigv4.Key]rejection, len(rc.entries))
		maps.Copy(kept, rc.entries)
		rc.entries, rc.peak = kept, len(kept)
	}
}
