package loadtest

import (
	"context"
	"net"
	"os"
	"testing"
	"time"
)

func selfPID() int { return os.Getpid() }

func startTrivial(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewTrivialServer()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String() + "/authenticate"
}

// TestHeyResults protects the reflection that reads hey's per-request results: a count-bound
// run against the trivial server gives one latency and one status per request.
func TestHeyResults(t *testing.T) {
	url := startTrivial(t)
	res, err := Run(context.Background(), Load{
		URL: url, Bodies: [][]byte{ReviewBody("k8s-aws-v1.x")}, Concurrency: 4, Requests: 200, Duration: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || res.Status[200] != 200 || len(res.Errors) != 0 {
		t.Fatalf("unexpected result; got %d requests, status %v, errors %v; want 200 answers 200", res.Requests, res.Status, res.Errors)
	}
	l := res.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Fatalf("unexpected latency distribution %+v", l)
	}
	if res.RPS <= 0 || res.GeneratorCPU <= 0 {
		t.Fatalf("unexpected rps %v or generator CPU %v", res.RPS, res.GeneratorCPU)
	}
}

// TestRunStopsOnTime protects the time bound: a run with a huge count stops after Duration.
func TestRunStopsOnTime(t *testing.T) {
	url := startTrivial(t)
	start := time.Now()
	res, err := Run(context.Background(), Load{
		URL: url, Bodies: [][]byte{ReviewBody("k8s-aws-v1.x")}, Concurrency: 2, Requests: 1 << 30, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Generous bounds: a loaded 2-core machine may answer slowly, but a run must still end
	// near its bound and must have sent something.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("unexpected run time %s for a 1s bound", d)
	}
	if res.Requests == 0 || res.Requests >= 1<<30 {
		t.Fatalf("unexpected request count %d", res.Requests)
	}
}

// TestRunPick protects the body choice per request: Pick sees every index once.
func TestRunPick(t *testing.T) {
	url := startTrivial(t)
	seen := make(chan int, 100)
	_, err := Run(context.Background(), Load{
		URL: url, Bodies: [][]byte{[]byte("a"), []byte("b")}, Concurrency: 5, Requests: 100, Duration: 10 * time.Second,
		Pick: func(i int) int { seen <- i; return i % 2 },
	})
	if err != nil {
		t.Fatal(err)
	}
	close(seen)
	got := map[int]bool{}
	for i := range seen {
		got[i] = true
	}
	for i := range 100 {
		if !got[i] {
			t.Fatalf("request index %d was never picked", i)
		}
	}
}

// TestRunPaced protects paced runs, evenly spread (a requester per worker, staggered starts)
// and in hey's own bursts: every request is sent and counted once, and the run is no faster
// than its rate allows.
func TestRunPaced(t *testing.T) {
	url := startTrivial(t)
	for _, bursts := range []bool{false, true} {
		start := time.Now()
		res, err := Run(context.Background(), Load{
			URL: url, Bodies: [][]byte{ReviewBody("k8s-aws-v1.x")}, Concurrency: 4, Requests: 40, Duration: 30 * time.Second,
			QPS: 200, Bursts: bursts,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 40 || res.Status[200] != 40 || len(res.Errors) != 0 || res.Latency.Max <= 0 {
			t.Fatalf("bursts=%v: unexpected result; got %d requests, status %v, errors %v, latency %+v; want 40 answers 200",
				bursts, res.Requests, res.Status, res.Errors, res.Latency)
		}
		// 10 requests per worker at 50 per second: the last one leaves 200 ms after the worker
		// started (hey's limiter ticks before the first request).
		if d := time.Since(start); d < 180*time.Millisecond {
			t.Fatalf("bursts=%v: a paced run of 40 requests at 200/s took %s; want at least 180ms", bursts, d)
		}
	}
}
