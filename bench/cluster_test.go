package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// stormRun is a storm-5000-like run with the given cold-storm figures for iamgate.
func stormRun(recovered int, all time.Duration, stsCalls uint64, wrong int) *ClusterRun {
	sc := loadtest.ClusterStorm("storm-5000", 5000, 500, 50, 50, 6*time.Minute)
	phase := func(ph loadtest.ClusterPhase, rec int, all time.Duration, calls uint64, wrong int) *loadtest.PhaseReport {
		p := &loadtest.PhaseReport{Phase: ph, ClientTokens: 5550, Elapsed: 400 * time.Second,
			Recovery: loadtest.Recovery{Clients: 5500, Recovered: rec, All: all, P50: all / 2},
			STS:      loadtest.STSRate{Calls: calls, Throttled: calls / 2, Peak: 500, Mean: 100},
			Failed:   map[string]int{"node": 3, "user": 40}, WrongAnswers: wrong}
		p.IdealRecovery = loadtest.IdealRecovery(p.ClientTokens, ph.Faults.ThrottleRate)
		return p
	}
	rep := func(label string, rec int, all time.Duration, calls uint64, wrong int) *loadtest.ClusterReport {
		r := &loadtest.ClusterReport{Scenario: sc, Daemon: label, Clients: 5550, Attempts: 100000, WrongAnswers: wrong}
		for _, ph := range sc.Phases {
			r.Phases = append(r.Phases, phase(ph, rec, all, calls, wrong))
		}
		return r
	}
	return &ClusterRun{Name: "storm-5000", IAMGate: rep("iamgate", recovered, all, stsCalls, wrong),
		Baseline: rep("passthrough", 5000, 0, 60000, 0)}
}

// The storm targets: 1.1 × 5550 ÷ 50 = 122.1 s, 1.05 × 5550 = 5827 calls, no wrong answer.
func TestEvaluateCluster(t *testing.T) {
	f := func(run *ClusterRun, want ...bool) {
		t.Helper()
		cs := evaluateCluster([]*ClusterRun{run})
		if len(cs) != len(want) {
			t.Fatalf("unexpected checks; got %+v; want %d", cs, len(want))
		}
		for i, c := range cs {
			if c.Met != want[i] {
				t.Fatalf("unexpected check %d (%s); got met=%v (%s); want %v", i, c.Target, c.Met, c.Got, want[i])
			}
			if i < 2 && !strings.Contains(c.Got, "passthrough") {
				t.Fatalf("the passthrough figures are missing beside iamgate's; got %q", c.Got)
			}
		}
	}
	f(stormRun(5500, 122*time.Second, 5827, 0), true, true, true)
	f(stormRun(5500, 123*time.Second, 5828, 0), false, false, true)
	f(stormRun(5499, 10*time.Second, 100, 0), false, true, true) // one client never came back
	f(stormRun(5500, 100*time.Second, 5550, 1), true, true, false)
	if cs := evaluateCluster([]*ClusterRun{stormRun(5500, 122*time.Second, 5827, 0)}); !strings.Contains(cs[0].Target, "122.1 s") || !strings.Contains(cs[1].Target, "= 5827") {
		t.Fatalf("unexpected target texts; got %q and %q", cs[0].Target, cs[1].Target)
	}
}

func TestClusterMarkdown(t *testing.T) {
	r := &Results{Cluster: []*ClusterRun{stormRun(5500, 200*time.Second, 20000, 0)}}
	r.ClusterTargets = evaluateCluster(r.Cluster)
	md := ClusterMarkdown(r, "results/cluster.svg", "results/x.json")
	for _, want := range []string{
		"#### Targets of the cluster model", "**missed**", "#### storm-5000",
		"| cold-storm | iamgate | 200.0 s (100.0 / —) | 111.0 s | 3 / 40 | 0 |",
		"| cold-storm | passthrough | not all: 5000 of 5500 within 400 s |", "passthrough ÷ iamgate: replica-restart: 3.0× STS calls",
	} {
		if !strings.Contains(md, want) {
			t.Fatalf("the cluster section lacks %q:\n%s", want, md)
		}
	}
	if ClusterMarkdown(&Results{}, "", "") != "" {
		t.Fatalf("a run without the cluster model must render no cluster section")
	}
}

// The storm chart is well-formed SVG with one line per daemon and the throttle.
func TestSTSChart(t *testing.T) {
	run := stormRun(5500, 200*time.Second, 20000, 0)
	for _, rep := range []*loadtest.ClusterReport{run.IAMGate, run.Baseline} {
		rep.Scenario.SampleEvery = time.Second
		targetPhase(rep).STS.PerSecond = []float64{10, 300, 50, 50}
	}
	svg := stsChart(&Results{RunID: "r<&>", Cluster: []*ClusterRun{run}})
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the chart is not well-formed XML: %s\n%s", err, svg)
		}
	}
	if n := bytes.Count(svg, []byte("<polyline")); n != 2 || !bytes.Contains(svg, []byte("stroke-dasharray")) {
		t.Fatalf("unexpected chart: %d lines, throttle line %v", n, bytes.Contains(svg, []byte("stroke-dasharray")))
	}
	for in, want := range map[float64]float64{0: 1, 0.3: 0.5, 60: 100, 300: 500, 1000: 1000, 1001: 2000} {
		if got := niceCeil(in); math.Abs(got-want) > 1e-9 {
			t.Fatalf("unexpected niceCeil(%v); got %v; want %v", in, got, want)
		}
	}
}

// TestFloodChecks: during a flood the cluster's clients may not fail more than without one.
func TestFloodChecks(t *testing.T) {
	phase := func(name string, flood float64, failed, requests int) *loadtest.PhaseReport {
		return &loadtest.PhaseReport{Phase: loadtest.ClusterPhase{Name: name, FloodRate: flood}, Requests: requests,
			Failed: map[string]int{"node": failed}}
	}
	rep := func(label string, failed int) *loadtest.ClusterReport {
		return &loadtest.ClusterReport{Daemon: label, Scenario: loadtest.ClusterScenario{Kind: loadtest.KindClusterFlood},
			Phases: []*loadtest.PhaseReport{phase("warm-up", 0, 0, 100), phase("flood-0", 0, 1, 10000), phase("flood-400", 400, failed, 10000)}}
	}
	f := func(failed int, met bool) {
		t.Helper()
		run := &ClusterRun{Name: "flood", IAMGate: rep("iamgate", failed), Baseline: rep("no-key-priority", 500)}
		cs := evaluateCluster([]*ClusterRun{run})
		if len(cs) != 2 || cs[0].Met != met || !strings.Contains(cs[0].Got, "no-key-priority 500 of 10000") {
			t.Fatalf("unexpected checks for %d failures; got %+v; want the flood check met=%v and the wrong-answer check", failed, cs, met)
		}
	}
	f(0, true)
	f(11, true) // 1 + 0.1 % of 10000
	f(12, false)
}

// TestRenderFromResultsFile: the sections are written again from a results file alone.
func TestRenderFromResultsFile(t *testing.T) {
	dir := t.TempDir()
	r := &Results{RunID: "cluster-test", ClusterOnly: true, Cluster: []*ClusterRun{stormRun(5500, 200*time.Second, 20000, 0)}}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cluster-test.json")
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, []byte("# x\n\n"+clusterBeginMarker+"\nold\n"+clusterEndMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Render(path, Config{Markdown: md}); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); strings.Contains(s, "\nold\n") || !strings.Contains(s, "`cluster-test`") || !strings.Contains(s, "#### Targets of the cluster model") {
		t.Fatalf("unexpected markdown after Render:\n%s", s)
	}
}
