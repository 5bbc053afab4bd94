package bench

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// soakSamples are n flat samples every every, the first and the last idle (lower, as no
// review is in flight).
func soakSamples(n int, every time.Duration, f func(i int, s *SoakSample)) []SoakSample {
	out := make([]SoakSample, n)
	for i := range out {
		out[i] = SoakSample{At: time.Duration(i) * every, Goroutines: 140, HeapInuse: 20 << 20, RSS: 60 << 20, FDs: 90}
		if i == 0 || i == n-1 {
			out[i].Idle, out[i].Goroutines, out[i].FDs = true, 40, 30
		}
		if f != nil {
			f(i, &out[i])
		}
	}
	return out
}

// metOf maps each check's metric and kind ("goroutines", "goroutines idle") to whether it was met.
func metOf(cs []Check) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		name, _, _ := strings.Cut(c.Target, " ≤")
		name = strings.TrimSuffix(strings.TrimSuffix(name, " after warm-up"), " at the end")
		out[name] = c.Met
	}
	return out
}

// The leak check: flat samples pass; growth under load past each bound fails that metric;
// goroutines or fds left over at the idle end fail though every loaded sample is within
// bounds; a spike inside the warm-up raises the bound under load; too few samples never pass.
func TestSoakFlatness(t *testing.T) {
	const warmup = 6 * time.Minute
	flat := SoakFlatness(soakSamples(32, time.Minute, nil), warmup)
	if len(flat) != 6 {
		t.Fatalf("unexpected checks: %+v", flat)
	}
	for _, c := range flat {
		if !c.Met {
			t.Errorf("unexpected: flat samples miss %q (%s)", c.Target, c.Got)
		}
	}
	all := []string{"goroutines", "goroutines idle", "heap in use", "RSS", "open fds", "open fds idle"}
	for _, c := range []struct {
		leak   func(i int, s *SoakSample)
		missed []string
	}{
		{func(i int, s *SoakSample) { s.Goroutines += float64(15 * i) }, []string{"goroutines", "goroutines idle"}},
		{func(i int, s *SoakSample) { s.HeapInuse += float64(i) * (1 << 20) }, []string{"heap in use"}},
		{func(i int, s *SoakSample) { s.RSS += int64(i) * (3 << 20) }, []string{"RSS"}},
		{func(i int, s *SoakSample) { s.FDs += 8 * i }, []string{"open fds", "open fds idle"}},
		// 60 goroutines and 25 fds that never go away: within the bounds under load, not when idle.
		{func(i int, s *SoakSample) {
			if s.Idle && i > 0 {
				s.Goroutines += 60
				s.FDs += 25
			}
		}, []string{"goroutines idle", "open fds idle"}},
		// Hung reviews at a sample of the warm-up, and more at one after it: within the bound
		// under load, which the warm-up's spike raised.
		{func(i int, s *SoakSample) {
			switch i {
			case 4:
				s.Goroutines += 100
				s.FDs += 60
			case 20:
				s.Goroutines += 300
				s.FDs += 150
			}
		}, nil},
	} {
		got := metOf(SoakFlatness(soakSamples(32, time.Minute, c.leak), warmup))
		for _, name := range all {
			if want := !slices.Contains(c.missed, name); got[name] != want {
				t.Errorf("a leak missing %v: unexpected result for %q: met=%v (all: %v)", c.missed, name, got[name], got)
			}
		}
	}
	if cs := SoakFlatness(soakSamples(7, time.Minute, nil), warmup); len(cs) != 1 || cs[0].Met {
		t.Errorf("unexpected checks with one sample after the warm-up: %+v", cs)
	}
	noIdle := soakSamples(32, time.Minute, func(i int, s *SoakSample) { s.Idle = false })
	if cs := SoakFlatness(noIdle, warmup); len(cs) != 1 || cs[0].Met {
		t.Errorf("unexpected checks without idle samples: %+v", cs)
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
		SampleEvery: "1m0s", Warmup: "6m0s", Settle: "1m40s", Faults: []string{`none: {}`, `outage: {"outage":true}`}}}
	r.Samples = soakSamples(32, time.Minute, func(i int, s *SoakSample) { s.Fault = "none"; s.Reviews = float64(i * 6000) })
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
		"| outage | 3 | 0 | 0 | 3 |", "0.20 s / 0.40 s", "goroutines after warm-up ≤ 2 × warm-up max + 50 = 330 | max 140, last 40",
		"goroutines idle at the end ≤ idle at the start + 50 = 90 | 40 (at the start 40)"} {
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
