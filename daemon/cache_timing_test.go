package daemon

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// BenchmarkCachedIdentityMemory caches b.N distinct assumed-role identities (the biggest
// common kind: role ARN, session name, session key) and reports the heap they keep, per
// identity. Run it with 1M identities as BENCHMARKS.md does:
//
//	go test -run '^$' -bench CachedIdentityMemory -benchtime 1000000x ./daemon/
func BenchmarkCachedIdentityMemory(b *testing.B) {
	c, err := newIdentityCache(8<<30, newMetrics("bench", nil))
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	now := time.Now()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// The identities are built first, so that the timed loop is the cache alone; their
	// strings stay alive through the cache and are counted.
	ids := make([]mapping.Identity, 0, b.N)
	for i := range b.N {
		n := strconv.Itoa(1000000 + i)
		id, err := mapping.NewIdentity("arn:aws:sts::123456789012:assumed-role/developers/user"+n+"@example.com",
			"123456789012", "AROAEXAMPLEROLEID"+n[3:]+":user"+n+"@example.com", "ASIAEXAMPLE0"+n)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	b.ResetTimer()
	var seed [8]byte
	for i := range b.N {
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		id := ids[i] // the copy the pipeline would make
		c.set(&cacheEntry{key: sigv4.Key(sha256.Sum256(seed[:])), id: &id, expires: now.Add(time.Hour)}, now)
	}
	b.StopTimer()
	ids = nil // only what the cache keeps stays alive
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "heapB/identity")
}
