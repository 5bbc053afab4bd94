package daemon

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// cacheEntry is what the identity cache holds for one canonical key. Immutable once stored.
type cacheEntry struct {
	key     sigv4.Key
	id      *mapping.Identity
	expires time.Time // checked against the injected clock on every hit
}

// identityCache wraps ristretto: keys are the first 8 bytes of the canonical SHA-256 key, and
// each entry carries the whole key, so a collision can only miss, never answer for another
// token. Safe for concurrent use.
type identityCache struct {
	c       *ristretto.Cache[uint64, *cacheEntry]
	metrics *metrics
	recent  recentEntries
}

// recentEntries holds the entries of the last two turns of recentFor: it turns on a store, so
// an entry stays at least recentFor, and the table never holds more than the stores of two
// turns. ristretto makes a new entry visible only once its policy goroutine has taken it from
// its buffer, a moment after SetWithTTL: a review of the same token in that gap must find the
// answer rather than call STS again. Waiting for ristretto on every store (Cache.Wait) did that
// too, at the price of two goroutine switches and an allocation per cold review.
type recentEntries struct {
	mu        sync.Mutex
	cur, prev map[sigv4.Key]*cacheEntry // guarded by mu
	turned    time.Time                 // when cur was started; guarded by mu
}

// recentFor is how long a turn lasts. At each turn the store that turns the table waits for
// ristretto to apply every store before it (Cache.Wait), so an entry leaves the table only
// once ristretto holds it, however busy the machine: one wait per turn, not per store.
const recentFor = 100 * time.Millisecond

// turnDue tells whether a store at wall turns the table, dropping its older half.
func (r *recentEntries) turnDue(wall time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur != nil && wall.Sub(r.turned) >= recentFor
}

func (r *recentEntries) get(key *sigv4.Key) *cacheEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.cur[*key]; e != nil {
		return e
	}
	return r.prev[*key]
}

// add remembers e; wall is the wall clock (the entries' lifetimes follow the injected one).
func (r *recentEntries) add(e *cacheEntry, wall time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		r.cur, r.prev = make(map[sigv4.Key]*cacheEntry), make(map[sigv4.Key]*cacheEntry)
	}
	if wall.Sub(r.turned) >= recentFor {
		r.prev, r.cur, r.turned = r.cur, r.prev, wall
		clear(r.cur)
	}
	r.cur[e.key] = e
}

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
		if e = ic.recent.get(key); e == nil {
			return nil, false
		}
	}
	if !now.Before(e.expires) {
		return nil, false
	}
	return e, true
}

// set stores e until e.expires (measured from now). A get sees it at once: ristretto a
// moment later, recent until then.
func (ic *identityCache) set(e *cacheEntry, now time.Time) {
	ttl := e.expires.Sub(now)
	if ttl <= 0 {
		return
	}
	h := cacheHash(&e.key)
	_, replaces := ic.c.Get(h) // an update is no new entry for iamgate_cache_entries
	if !replaces && ic.recent.get(&e.key) != nil {
		// The entry it replaces may still be in ristretto's buffer: let ristretto take it
		// first, so that this store is an update (a second new entry of one key would be
		// refused and counted out of iamgate_cache_entries). Rare: a token verified again
		// within moments.
		ic.c.Wait()
		_, replaces = ic.c.Get(h)
	}
	if ic.c.SetWithTTL(h, e, entryCost(e), ttl) {
		if !replaces {
			ic.metrics.cacheEntries.Inc()
		}
		wall := time.Now()
		if ic.recent.turnDue(wall) {
			// The entries about to leave the table were stored a turn or more ago: make sure
			// ristretto has taken them before they leave.
			ic.c.Wait()
		}
		ic.recent.add(e, wall)
	}
}

// entryCost estimates the bytes an entry keeps alive, for -cache.maxBytes.
func entryCost(e *cacheEntry) int64 {
	// The entry, the Identity's string headers, ristretto's item, its map and TTL bucket slots.
	const fixed = 80 + 11*16 + 200
	id := e.id
	// ARN, UserID and AccessKeyID are their own allocations (AccountID, PrincipalID and
	// SessionName are substrings); CanonicalARN and the two lookup keys are built from it.
	return int64(fixed + len(id.ARN) + len(id.UserID) + len(id.AccessKeyID) + 3*len(id.CanonicalARN))
}

func (ic *identityCache) close() { ic.c.Close() }

// rejectionCache remembers the tokens STS rejected, for -cache.negativeTTL (see
// docs/design.md: Cache and collapsing). It is apart from ristretto on purpose: ristretto's
// admission policy may refuse a new entry when its cache is full, and a refused rejection would
// let a flood of one bad token reach STS on every review. It holds at most limit entries; when
// full, expired entries go first (swept at most once a second), then arbitrary ones. Safe for
// concurrent use.
type rejectionCache struct {
	limit   int
	metrics *metrics

	mu        sync.RWMutex
	entries   map[sigv4.Key]rejection // guarded by mu
	lastSweep time.Time               // guarded by mu
}

// rejectionCost is about what one remembered rejection costs: key, reason, expiry, map slot.
const rejectionCost = 128

type rejection struct {
	reason  reason
	expires time.Time
}

func newRejectionCache(limit int, m *metrics) *rejectionCache {
	return &rejectionCache{limit: limit, metrics: m, entries: make(map[sigv4.Key]rejection)}
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
			rc.lastSweep = now
			for k, r := range rc.entries {
				if !now.Before(r.expires) {
					delete(rc.entries, k)
				}
			}
		}
		for k := range rc.entries { // still full: make room by dropping an arbitrary entry
			if len(rc.entries) < rc.limit {
				break
			}
			delete(rc.entries, k)
		}
	}
	rc.entries[key] = rejection{reason: why, expires: expires}
	rc.metrics.cacheRejectedTokens.Set(float64(len(rc.entries)))
}
