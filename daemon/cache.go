package daemon

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// cacheEntry is what the cache holds for one canonical key: an identity, or a definite
// rejection (id == nil) with its reason. Immutable once stored.
type cacheEntry struct {
	key     sigv4.Key
	id      *mapping.Identity
	reason  reason
	expires time.Time // checked against the injected clock on every hit
}

// identityCache wraps ristretto: keys are the first 8 bytes of the canonical SHA-256 key, and
// each entry carries the whole key, so a collision can only miss, never answer for another
// token. Safe for concurrent use.
type identityCache struct {
	c       *ristretto.Cache[uint64, *cacheEntry]
	metrics *metrics
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
	if !ok || e.key != *key || !now.Before(e.expires) {
		return nil, false
	}
	return e, true
}

// set stores e until e.expires (measured from now) and waits until a get can see it, so
// that a review arriving right after an STS call finds the answer instead of calling again.
func (ic *identityCache) set(e *cacheEntry, now time.Time) {
	ttl := e.expires.Sub(now)
	if ttl <= 0 {
		return
	}
	if ic.c.SetWithTTL(cacheHash(&e.key), e, entryCost(e), ttl) {
		ic.metrics.cacheEntries.Inc()
		ic.c.Wait()
	}
}

// entryCost estimates the bytes an entry keeps alive, for -cache.maxBytes.
func entryCost(e *cacheEntry) int64 {
	// The entry, the Identity's string headers, ristretto's item, its map and TTL bucket slots.
	const fixed = 80 + 11*16 + 200
	if e.id == nil {
		return fixed
	}
	id := e.id
	// ARN, UserID and AccessKeyID are their own allocations (AccountID, PrincipalID and
	// SessionName are substrings); CanonicalARN and the two lookup keys are built from it.
	return int64(fixed + len(id.ARN) + len(id.UserID) + len(id.AccessKeyID) + 3*len(id.CanonicalARN))
}

func (ic *identityCache) close() { ic.c.Close() }
