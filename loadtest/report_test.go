package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	f := func(p, want float64) {
		t.Helper()
		if got := Percentile(sorted, p); got != want {
			t.Fatalf("unexpected p%v; got %v; want %v", p, got, want)
		}
	}
	f(50, 5)
	f(90, 9)
	f(99, 10)
	f(99.9, 10)
	f(100, 10)
	f(10, 1)
	f(0.001, 1)
	if got := Percentile(nil, 50); got != 0 {
		t.Fatalf("unexpected percentile of nothing; got %v; want 0", got)
	}
}

func TestSummarize(t *testing.T) {
	// 1000 latencies of 1..1000 µs in reverse order: Summarize sorts them.
	s := make([]float64, 1000)
	for i := range s {
		s[i] = float64(1000-i) * 1e-6
	}
	l := Summarize(s)
	want := Latency{Mean: 0.501, P50: 0.5, P90: 0.9, P99: 0.99, P999: 0.999, Max: 1}
	if l != want {
		t.Fatalf("unexpected summary; got %+v; want %+v", l, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Fatalf("unexpected summary of nothing")
	}
}

func TestRatioPerOp(t *testing.T) {
	if got := Ratio(7, 10); got != 0.7 {
		t.Fatalf("unexpected ratio; got %v; want 0.7", got)
	}
	if got := Ratio(1, 0); got != 0 {
		t.Fatalf("unexpected ratio with no limit; got %v; want 0", got)
	}
	if got := PerOp(3*time.Second, 200_000); got != 15 {
		t.Fatalf("unexpected CPU per op; got %v µs; want 15", got)
	}
	if got := PerOp(time.Second, 0); got != 0 {
		t.Fatalf("unexpected CPU per no op; got %v; want 0", got)
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name has a space and a parenthesis; utime 150 and stime 50 ticks.
	line := []byte("4242 (iam gate) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 9 0 100 1000000 500 18446744073709551615")
	user, sys, err := parseStatCPU(line, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if user != 1500*time.Millisecond || sys != 500*time.Millisecond {
		t.Fatalf("unexpected CPU; got user %s sys %s; want 1.5s and 0.5s", user, sys)
	}
	if _, _, err := parseStatCPU([]byte("garbage"), time.Millisecond); err == nil {
		t.Fatalf("expected an error for a line without a command name")
	}
}

func TestProcessSelf(t *testing.T) {
	p := Process{PID: selfPID()}
	if _, err := p.CPU(); err != nil {
		t.Fatal(err)
	}
	rss, peak, err := p.Memory()
	if err != nil || rss <= 0 || peak < rss {
		t.Fatalf("unexpected memory; got rss %d peak %d err %v", rss, peak, err)
	}
	if p.CPUs() == "?" {
		t.Fatalf("cannot read the allowed CPUs of this process")
	}
}

func TestParseMetrics(t *testing.T) {
	page := `# HELP iamgate_reviews_total TokenReviews answered.
# TYPE iamgate_reviews_total counter
iamgate_reviews_total{reason="ok",result="allowed"} 120
iamgate_reviews_total{reason="expired",result="denied"} 30
iamgate_reviews_total{reason="sts_unavailable",result="error"} 0
iamgate_cache_hits_total{kind="identity"} 100
iamgate_cache_misses_total 20
`
	m, err := ParseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	before := Metrics{`iamgate_reviews_total{reason="ok",result="allowed"}`: 20}
	d := m.Delta(before)
	if got := d.Sum("iamgate_reviews_total"); got != 130 {
		t.Fatalf("unexpected reviews; got %v; want 130", got)
	}
	if got := d.Sum("iamgate_reviews_total", `result="denied"`); got != 30 {
		t.Fatalf("unexpected denials; got %v; want 30", got)
	}
	byResult := d.Labeled("iamgate_reviews_total", "result")
	if len(byResult) != 2 || byResult["allowed"] != 100 || byResult["denied"] != 30 {
		t.Fatalf("unexpected reviews by result; got %v", byResult)
	}
	if got := m.Sum("iamgate_cache_misses_total"); got != 20 {
		t.Fatalf("unexpected misses; got %v; want 20", got)
	}
}

func TestParseWrk(t *testing.T) {
	out := []byte("Running 10s test @ http://127.0.0.1:1/authenticate\n  1 threads and 50 connections\n" +
		`WRKJSON {"requests":300000,"durationUs":10000000,"errors":2,"non2xx":1,"mean":1500.5,"p50":1200,"p90":2000,"p99":3000,"p999":9000,"max":12000}` + "\n")
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 30000 || r.Errors != 2 || r.Non2xx != 1 || r.Latency.P50 != 1.2 || r.Latency.P999 != 9 || r.Latency.Max != 12 {
		t.Fatalf("unexpected wrk result; got %+v", r)
	}
	if _, err := parseWrk([]byte("no summary")); err == nil {
		t.Fatalf("expected an error without the summary line")
	}
}

func TestQuantileBound(t *testing.T) {
	// 100 observations: 50 in (0, 1ms], 40 in (1ms, 5ms], 9 in (5ms, 10ms], 1 above 10ms.
	m := Metrics{
		`x_seconds_bucket{result="allowed",le="0.001"}`: 30,
		`x_seconds_bucket{result="denied",le="0.001"}`:  20,
		`x_seconds_bucket{result="allowed",le="0.005"}`: 70,
		`x_seconds_bucket{result="denied",le="0.005"}`:  20,
		`x_seconds_bucket{result="allowed",le="0.01"}`:  79,
		`x_seconds_bucket{result="denied",le="0.01"}`:   20,
		`x_seconds_bucket{result="allowed",le="+Inf"}`:  80,
		`x_seconds_bucket{result="denied",le="+Inf"}`:   20,
	}
	f := func(q, want float64) {
		t.Helper()
		got, ok := m.QuantileBound("x_seconds", q)
		if !ok || got != want {
			t.Fatalf("unexpected q%v; got %v (ok %v); want %v", q, got, ok, want)
		}
	}
	f(0.5, 0.001)
	f(0.7, 0.005)
	f(0.99, 0.01)
	f(0.995, math.Inf(1))
	if _, ok := m.QuantileBound("y_seconds", 0.5); ok {
		t.Fatalf("unexpected quantile of a missing histogram")
	}
}
