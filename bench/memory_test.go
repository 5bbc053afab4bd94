package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// memoryChildEnv makes TestMeasureCacheMemory measure, in the process the test starts.
const memoryChildEnv = "IAMGATE_BENCH_MEMORY_CHILD"

// memoryResultPrefix starts the child's line with its result.
const memoryResultPrefix = "memory result: "

// TestMeasureCacheMemory protects the memory measurement itself: every reviewed token ends up
// cached, and the heap grows. The size per identity is a report, not a test.
//
// The measurement runs in a process of its own, as `loadtest memory` does: it reads the whole
// heap, and a server that an earlier test (or an earlier -count) stopped is still reachable for
// up to 10 s (fasthttp's worker pool cleaner sleeps that long before it sees the stop), so
// its memory would be freed in the middle of the measurement.
func TestMeasureCacheMemory(t *testing.T) {
	points := []int{2000, 8000}
	if os.Getenv(memoryChildEnv) != "" {
		res, err := MeasureCacheMemory(context.Background(), points, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("\n%s%s\n", memoryResultPrefix, out)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMeasureCacheMemory$", "-test.count=1")
	cmd.Env = append(os.Environ(), memoryChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the measuring process failed: %v\n%s", err, out)
	}
	_, line, ok := bytes.Cut(out, []byte("\n"+memoryResultPrefix))
	if !ok {
		t.Fatalf("the measuring process printed no result:\n%s", out)
	}
	line, _, _ = bytes.Cut(line, []byte("\n"))
	var res MemoryResult
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("cannot read the measuring process's result %q: %v", line, err)
	}
	if len(res.Points) != len(points) {
		t.Fatalf("unexpected points; got %d; want %d", len(res.Points), len(points))
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
