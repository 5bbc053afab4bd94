package bench

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// The generated section replaces only what is between the markers: the prose stays.
func TestUpdateMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	prose := "# Benchmarks\n\nProse by a human.\n\n" + beginMarker + "\nold numbers\n" + endMarker + "\n\nMore prose.\n"
	if err := os.WriteFile(path, []byte(prose), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateMarkdown(path, "new numbers"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# Benchmarks\n\nProse by a human.\n\n" + beginMarker + "\nnew numbers\n" + endMarker + "\n\nMore prose.\n"
	if string(got) != want {
		t.Fatalf("unexpected file; got %q; want %q", got, want)
	}
	if _, err := replaceSection([]byte("no markers"), "x"); err == nil {
		t.Fatalf("expected an error without markers")
	}
	fresh := filepath.Join(t.TempDir(), "NEW.md")
	if err := UpdateMarkdown(fresh, "numbers"); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(fresh)
	if !strings.Contains(string(got), beginMarker+"\nnumbers\n"+endMarker) {
		t.Fatalf("unexpected new file %q", got)
	}
}

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkValidate-2   	  100000	       900.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkValidate-2   	  100000	      1100 ns/op	       0 B/op	       0 allocs/op
BenchmarkValidate-2   	  100000	      1000 ns/op	       0 B/op	       0 allocs/op
BenchmarkCanonicalKey-2   	  100000	       300 ns/op	      16 B/op	       1 allocs/op
BenchmarkMap/assumed-role   	  100000	       120 ns/op	      32 B/op	       1 allocs/op
PASS
`)
	got := parseBench("./sigv4", out)
	if len(got) != 3 || got[2].Name != "BenchmarkMap/assumed-role" {
		t.Fatalf("unexpected benchmarks %+v", got)
	}
	if got[0] != (Micro{Package: "sigv4", Name: "BenchmarkValidate", NsPerOp: 1000, Runs: 3}) {
		t.Fatalf("unexpected median %+v", got[0])
	}
	if got[1].AllocsPerOp != 1 || got[1].BytesPerOp != 16 {
		t.Fatalf("unexpected allocations %+v", got[1])
	}
}

// A report renders as markdown with every scenario and as well-formed SVG, and evaluate
// marks targets met and missed.
func TestRender(t *testing.T) {
	rep := func(name string, rps, p99, cpu float64, calls uint64, tokens int) *ScenarioRun {
		return &ScenarioRun{Report: &loadtest.Report{
			Scenario: loadtest.Scenario{Name: name, Description: name + " things"},
			Result:   loadtest.Result{Requests: 1000, RPS: rps, Status: map[int]int{200: 1000}, Latency: loadtest.Latency{P50: 1, P99: p99}, Elapsed: time.Second},
			STSCalls: calls, DistinctTokens: tokens, DaemonCPUPerRevUs: cpu,
		}, LimitRatio: rps / 10000}
	}
	r := &Results{
		RunID: "2026-11-27T0300Z-abc", Limit: &LimitRun{Result: loadtest.Result{RPS: 10000}},
		Scenarios: []*ScenarioRun{rep("hot", 8000, 2, 10, 0, 1), rep("cold", 3000, 9, 90, 1000, 1000), rep("invalid", 9000, 1, 4, 0, 100)},
		Memory:    &MemoryResult{Points: []MemoryPoint{{Identities: 1000, CacheEntries: 1000, BytesPerID: 1400}}},
	}
	r.Targets = evaluate(r)
	met := map[string]bool{}
	for _, c := range r.Targets {
		met[c.Scenario+" "+c.Target] = c.Met
	}
	f := func(key string, want bool) {
		t.Helper()
		got, ok := met[key]
		if !ok || got != want {
			t.Fatalf("unexpected target %q; got met=%v (present %v); want %v; all: %v", key, got, ok, want, met)
		}
	}
	f("hot ≥ 0.70 of the trivial server's rps (hey)", true)
	f("hot ≤ 15 µs daemon CPU per review (hey)", true)
	f("cold ≤ 80 µs daemon CPU per STS-verified review", false)
	f("cold p99 ≤ STS latency + 5 ms = 5 ms", false)
	f("cold exactly one STS call per distinct token", true)
	f("invalid zero STS calls", true)
	f("memory ≤ 1 KiB per cached identity (at 1000 identities)", false)

	md := Markdown(r, "results/latest.svg", "results/x.json")
	for _, want := range []string{"| hot | 8000 |", "| cold | 3000 |", "**missed**", "latest.svg"} {
		if !strings.Contains(md, want) {
			t.Fatalf("the markdown lacks %q:\n%s", want, md)
		}
	}
	svg := latencyChart(r)
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("the SVG is not well-formed XML: %s", err)
			}
			break
		}
	}
}
