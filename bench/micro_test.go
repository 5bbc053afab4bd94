package bench

import (
	"strings"
	"testing"
)

// TestSummarizeMicro: medians over every round, and a pair's ratio as the median of its
// per-round ratios (the rounds' own noise cancels within a round).
func TestSummarizeMicro(t *testing.T) {
	round := func(key, base string) string {
		return "BenchmarkValidateAndKey-2  1000  " + key + " ns/op  0 B/op  0 allocs/op\n" +
			"BenchmarkBaselineValidateAndKey-2  100  " + base + " ns/op  3072 B/op  33 allocs/op\n"
	}
	// A slow round doubles both sides: the ratio stays 5.
	out := round("1000", "5000") + round("2000", "10000") + round("1100", "5500")
	nsByRound := []map[string]float64{
		{"sigv4 BenchmarkValidateAndKey": 1000, "sigv4 BenchmarkBaselineValidateAndKey": 5000},
		{"sigv4 BenchmarkValidateAndKey": 2000, "sigv4 BenchmarkBaselineValidateAndKey": 10000},
		{"sigv4 BenchmarkValidateAndKey": 1100, "sigv4 BenchmarkBaselineValidateAndKey": 5500},
	}
	micro, ratios := summarizeMicro(map[string][]byte{"./sigv4": []byte(out)}, nsByRound)
	if len(micro) != 2 || micro[0] != (Micro{Package: "sigv4", Name: "BenchmarkValidateAndKey", NsPerOp: 1100, Runs: 3}) {
		t.Fatalf("unexpected medians %+v", micro)
	}
	if len(ratios) != 1 || ratios[0].Name != "BenchmarkValidateAndKey" || ratios[0].Ratio != 5 || ratios[0].Rounds != 3 {
		t.Fatalf("unexpected ratios %+v", ratios)
	}
	md := MicroMarkdown(&Results{RunID: "micro-x", Micro: micro, MicroRatios: ratios, MicroRounds: 3, MicroBenchtime: "500ms"}, "x.json")
	for _, want := range []string{"| sigv4 | BenchmarkValidateAndKey | 1100 | 0 | 0 | **5.00×** faster than BaselineValidateAndKey |",
		"| sigv4 | BenchmarkBaselineValidateAndKey | 5500 | 3072 | 33 | 1 (baseline) |", "3 rounds"} {
		if !strings.Contains(md, want) {
			t.Errorf("unexpected section: no %q in\n%s", want, md)
		}
	}
}
