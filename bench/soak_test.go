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

func soakSamples(n int, every time.Duration, f func(i int, s *SoakSample)) []SoakSample {
	out := make([]SoakSample, n)
	for i := range out {
		out[i] = SoakSample{At: time.Duration(i) * every, Goroutines: 40, HeapInuse: 20 << 20, RSS: 60 << 20, FDs: 30}
		if f != nil {
			f(i, &out[i])
		}
	}
	return out
}

func metOf(cs []Check) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		name, _, _ := strings.Cut(c.Target, " after warm-up")
		out[name] = c.Met
	}
	return out
}

// The leak check: flat samples pass; growth past each bound after the warm-up fails that
// metric only; a peak inside the warm-up raises the bound; too few samples never pass.
func TestSoakFlatness(t *testing.T) {
	const warmup = 6 * time.Minute
	flat := SoakFlatness(soakSamples(31, time.Minute, nil), warmup)
	if len(flat) != 4 {
		t.Fatalf("unexpected checks: %+v", flat)
	}
	for _, c := range flat {
		if !c.Met {
			t.Errorf("unexpected: flat samples miss %q (%s)", c.Target, c.Got)
		}
	}
	leaks := map[string]func(i int, s *SoakSample){
		"goroutines":  func(i int, s *SoakSample) { s.Goroutines += float64(3 * i) },
		"heap in use": func(i int, s *SoakSample) { s.HeapInuse += float64(i) * (1 << 20) },
		"RSS":         func(i int, s *SoakSample) { s.RSS += int64(i) * (3 << 20) },
		"open fds":    func(i int, s *SoakSample) { s.FDs += i },
	}
	for name, leak := range leaks {
		got := metOf(SoakFlatness(soakSamples(31, time.Minute, leak), warmup))
		for other, met := range got {
			if met != (other != name) {
				t.Errorf("a leak of %s: unexpected result for %s: met=%v", name, other, met)
			}
		}
	}
	// A hang phase in the warm-up with 120 more goroutines: the same spike later is within bounds.
	spikes := soakSamples(31, time.Minute, func(i int, s *SoakSample) {
		if i%6 == 4 {
			s.Goroutines += 120
		}
	})
	if !metOf(SoakFlatness(spikes, warmup))["goroutines"] {
		t.Errorf("unexpected: a spike seen in the warm-up fails later")
	}
	if cs := SoakFlatness(soakSamples(7, time.Minute, nil), warmup); len(cs) != 1 || cs[0].Met {
		t.Errorf("unexpected checks with one sample after the warm-up: %+v", cs)
	}
}

func TestSoakCount(t *testing.T) {
	var c SoakCount
	for _, v := range []loadtest.Verdict{loadtest.VerdictOK, loadtest.VerdictDenied, loadtest.VerdictFalseAllow, loadtest.VerdictWrongUser, loadtest.VerdictFalseDeny} {
		c.Add(v, false)
	}
	c.Add(loadtest.VerdictTransient, true)
	c.Add(loadtest.VerdictTransient, false)
	want := SoakCount{Requests: 7, OK: 1, Denied: 1, Transient: 2, TransientHealthy: 1, WrongUser: 1, FalseAllow: 1, FalseDeny: 1}
	if c != want || c.Wrong() != 3 {
		t.Fatalf("unexpected counts; got %+v (wrong %d); want %+v", c, c.Wrong(), want)
	}
}

// WriteSoak writes the JSON, a well-formed chart and the section between its markers, adding
// the markers to a file that has none and keeping the text around them.
func TestWriteSoak(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(md, []byte("# Benchmarks\n\nprose\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &SoakResults{RunID: "soak-test", Date: time.Now(), Commit: "abc", Settings: SoakSettings{Duration: "30m0s", Period: "1m0s",
		SampleEvery: "1m0s", Warmup: "6m0s", Faults: []string{`none: {}`, `outage: {"outage":true}`}}}
	r.Samples = soakSamples(31, time.Minute, func(i int, s *SoakSample) { s.Fault = "none"; s.Reviews = float64(i * 6000) })
	r.Checks = SoakFlatness(r.Samples, 6*time.Minute)
	r.Answers = []SoakRow{{Path: "direct", Kind: "hot", SoakCount: SoakCount{Requests: 10, OK: 10}}}
	r.ByFault = []SoakRow{{Kind: "outage", SoakCount: SoakCount{Requests: 3, Transient: 3}}}
	r.Events.FilePropagation = []float64{0.2, 0.1, 0.4}
	r.Finish()
	for range 2 { // the second run replaces the first one's section
		if err := WriteSoak(r, filepath.Join(dir, "results"), md); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for _, want := range []string{"# Benchmarks\n\nprose\n", soakBeginMarker, soakEndMarker, "## Soak: 30m0s", "results/soak.svg",
		"results/soak-test.json", "| 6:00 (warm-up) | none |", "| direct | hot | 10 | 10 |", "| **all** | | 10 | 10 |",
		"| outage | 3 | 0 | 0 | 3 |", "0.20 s / 0.40 s", "goroutines after warm-up ≤ warm-up max + 50 = 90 | max 40, last 40"} {
		if !strings.Contains(text, want) {
			t.Errorf("the markdown lacks %q:\n%s", want, text)
		}
	}
	if strings.Count(text, soakBeginMarker) != 1 {
		t.Errorf("unexpected markers in:\n%s", text)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "results", "soak.svg"))
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("the chart is not well-formed XML: %v", err)
			}
			break
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "results", "soak-test.json")); err != nil {
		t.Fatal(err)
	}
}
