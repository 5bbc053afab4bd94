package bench

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestColdSummaryAndMarkdown: medians and ratios over rounds, the targets (the 20 ms one
// against the 0 ms variant), and the section renders with and without a compared binary.
func TestColdSummaryAndMarkdown(t *testing.T) {
	w := func(rps, us float64) *ColdWindow { return &ColdWindow{RPS: rps, CPUPerRevUs: us, STSCallsPerReview: 1} }
	round := func(limit, iamgate, compare *ColdWindow) *ColdRound {
		rd := &ColdRound{Order: []string{"limit", "iamgate"}, Limit: limit, IAMGate: iamgate, Compare: compare,
			CPURatio: ratio(iamgate.CPUPerRevUs, limit.CPUPerRevUs), RPSRatio: ratio(iamgate.RPS, limit.RPS)}
		if compare != nil {
			rd.CompareCPURatio, rd.CompareRPSRatio = ratio(compare.CPUPerRevUs, limit.CPUPerRevUs), ratio(compare.RPS, limit.RPS)
		}
		return rd
	}
	at0 := &ColdVariantResult{ColdVariant: ColdVariants[0], Rounds: []*ColdRound{
		round(w(10000, 50), w(9000, 55), w(6000, 80)),
		round(w(12000, 40), w(11000, 48), w(7000, 70)),
		round(w(8000, 60), w(8000, 90), w(5000, 100)),
	}}
	at20 := &ColdVariantResult{ColdVariant: ColdVariants[1], Rounds: []*ColdRound{round(w(2000, 100), w(2000, 110), nil)}}
	for _, v := range []*ColdVariantResult{at0, at20} {
		v.summarize()
	}
	if at0.CPURatio != 1.2 || at0.IAMGateCPUUs != 55 || at0.CompareCPUUs != 80 || at0.LimitRPS != 10000 {
		t.Fatalf("unexpected medians %+v", at0)
	}
	r := &ColdResult{RunID: "cold-test", Variants: []*ColdVariantResult{at0, at20}, Compare: "before"}
	r.Targets = evaluateCold(r)
	met := map[string]bool{}
	for _, c := range r.Targets {
		met[c.Scenario+": "+c.Target] = c.Met
	}
	if !met["cold path (sts-0ms): iamgate CPU per review ≤ 1.2 × the limit's"] || met["cold path (sts-20ms): iamgate CPU per review with 20 ms of STS latency ≤ without (within 5 %)"] {
		t.Fatalf("unexpected targets %+v", r.Targets)
	}
	md := ColdMarkdown(r, "cold-test.json")
	for _, want := range []string{"| sts-0ms | 50.0 | 10000 | 55.0 | 9000 | **1.20** |", "The compared binary, before,", "| sts-20ms | 1 |"} {
		if !strings.Contains(md, want) {
			t.Fatalf("the section lacks %q:\n%s", want, md)
		}
	}
	steal := 12.5
	at0.Rounds[1].IAMGate.StealPct = &steal
	md = ColdMarkdown(r, "cold-test.json")
	if !strings.Contains(md, "| ?, 12.5%, ? | 7000/s") {
		t.Fatalf("the round table lacks the host's steal:\n%s", md)
	}
	checkTableShape(t, md, "| variant | round |")
	r.Compare = ""
	if md := ColdMarkdown(r, "cold-test.json"); strings.Contains(md, "The compared binary") {
		t.Fatal("a run without a compared binary shows one")
	}
}

// TestWindowOrderIsBalanced: over a cycle of rounds, each run takes each place, and runs right
// before each other run, equally often.
func TestWindowOrderIsBalanced(t *testing.T) {
	for n := 1; n <= 6; n++ {
		runs := make([]string, n)
		for i := range runs {
			runs[i] = string(rune('a' + i))
		}
		cycle := n
		if n%2 == 1 {
			cycle = 2 * n
		}
		places := map[string]int{} // run and place
		before := map[string]int{} // run and the run right after it
		for r := range cycle {
			order := windowOrder(runs, r)
			if got := slices.Sorted(slices.Values(order)); !slices.Equal(got, runs) {
				t.Fatalf("%d runs, round %d: unexpected order %v", n, r, order)
			}
			for i, run := range order {
				places[run+strconv.Itoa(i)]++
				if i > 0 {
					before[order[i-1]+run]++
				}
			}
		}
		for _, a := range runs {
			for i := range n {
				if got, want := places[a+strconv.Itoa(i)], cycle/n; got != want {
					t.Errorf("%d runs: %s in place %d in %d rounds of %d; want %d", n, a, i, got, cycle, want)
				}
			}
			for _, b := range runs {
				if got, want := before[a+b], cycle/n; a != b && got != want {
					t.Errorf("%d runs: %s right before %s in %d rounds of %d; want %d", n, a, b, got, cycle, want)
				}
			}
		}
	}
}

// checkTableShape fails unless every row of the markdown table whose header starts with
// header has the header's number of cells.
func checkTableShape(t *testing.T, md, header string) {
	t.Helper()
	_, table, ok := strings.Cut(md, header)
	if !ok {
		t.Fatalf("no table %q in:\n%s", header, md)
	}
	lines := strings.Split(header+table, "\n")
	cells := strings.Count(lines[0], "|")
	for _, line := range lines[1:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if n := strings.Count(line, "|"); n != cells {
			t.Fatalf("a row of %d cell borders under a header of %d: %q", n, cells, line)
		}
	}
}
