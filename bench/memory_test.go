package bench

import (
	"context"
	"testing"
)

// TestMeasureCacheMemory protects the memory measurement itself: every reviewed token ends up
// cached, and the heap grows. The size per identity is a report, not a test.
func TestMeasureCacheMemory(t *testing.T) {
	res, err := MeasureCacheMemory(context.Background(), []int{500, 2000}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != 2 {
		t.Fatalf("unexpected points; got %d; want 2", len(res.Points))
	}
	for _, p := range res.Points {
		if p.CacheEntries != float64(p.Identities) {
			t.Fatalf("unexpected cache entries after %d identities; got %v; want %d", p.Identities, p.CacheEntries, p.Identities)
		}
		if p.HeapGrowth <= 0 {
			t.Fatalf("unexpected heap growth after %d identities; got %d", p.Identities, p.HeapGrowth)
		}
	}
	t.Logf("%+v", res.Points)
}
