package loadtest

import (
	"math"
	"slices"
	"time"
)

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Mean float64 `json:"meanMs"`
	P50  float64 `json:"p50Ms"`
	P90  float64 `json:"p90Ms"`
	P99  float64 `json:"p99Ms"`
	P999 float64 `json:"p999Ms"`
	Max  float64 `json:"maxMs"`
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the nearest-rank
// method: the smallest value with at least p% of the values at or below it. It returns 0 for
// an empty slice. sorted must be in ascending order.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(n) - 1e-9)) // the epsilon absorbs 99.9/100 rounding up
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Summarize sorts seconds (latencies in seconds) in place and returns their distribution in
// milliseconds.
func Summarize(seconds []float64) Latency {
	if len(seconds) == 0 {
		return Latency{}
	}
	slices.Sort(seconds)
	sum := 0.0
	for _, v := range seconds {
		sum += v
	}
	ms := func(s float64) float64 { return round3(s * 1e3) }
	return Latency{
		Mean: ms(sum / float64(len(seconds))),
		P50:  ms(Percentile(seconds, 50)),
		P90:  ms(Percentile(seconds, 90)),
		P99:  ms(Percentile(seconds, 99)),
		P999: ms(Percentile(seconds, 99.9)),
		Max:  ms(seconds[len(seconds)-1]),
	}
}

// Ratio returns a/b rounded to 3 decimals, or 0 when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

// PerOp returns d divided among n operations, in microseconds; 0 when n is 0.
func PerOp(d time.Duration, n float64) float64 {
	if n <= 0 {
		return 0
	}
	return round3(float64(d) / float64(time.Microsecond) / n)
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
