package loadtest

import (
	"errors"
	"testing"
	"time"
)

// The oracle: every combination of what kube-apiserver's authenticator returned and what the
// token deserves.
func TestJudge(t *testing.T) {
	alice := Expectation{Allow: true, Username: "alice"}
	deny := Expectation{}
	boom := errors.New("webhook call failed")
	f := func(e Expectation, ok bool, name string, err error, want Verdict) {
		t.Helper()
		if got := Judge(e, ok, name, err); got != want {
			t.Fatalf("unexpected verdict for %+v ok=%v name=%q err=%v; got %s; want %s", e, ok, name, err, got, want)
		}
	}
	f(alice, true, "alice", nil, VerdictOK)
	f(alice, true, "bob", nil, VerdictWrongUser)
	f(alice, true, "", nil, VerdictWrongUser)
	f(alice, false, "", nil, VerdictFalseDeny)
	f(alice, false, "", boom, VerdictTransient)
	f(deny, true, "alice", nil, VerdictFalseAllow)
	f(deny, true, "", nil, VerdictFalseAllow)
	f(deny, false, "", nil, VerdictDenied)
	f(deny, false, "", boom, VerdictTransient)

	for v := range numVerdicts {
		want := v == VerdictWrongUser || v == VerdictFalseAllow || v == VerdictFalseDeny
		if v.Wrong() != want {
			t.Fatalf("unexpected Wrong() for %s; got %v; want %v", v, v.Wrong(), want)
		}
	}
}

func TestIdealRecovery(t *testing.T) {
	f := func(distinct int, rate float64, want time.Duration) {
		t.Helper()
		if got := IdealRecovery(distinct, rate); got != want {
			t.Fatalf("unexpected ideal recovery for %d tokens at %v/s; got %s; want %s", distinct, rate, got, want)
		}
	}
	f(5000, 50, 100*time.Second)
	f(20000, 200, 100*time.Second)
	f(5050, 50, 101*time.Second)
	f(1, 4, 250*time.Millisecond)
	f(5000, 0, 0) // no throttle: no bound
	f(0, 50, 0)
}

func TestRecoveryOf(t *testing.T) {
	s := time.Second
	// Ten clients, all recovered: the last one sets All; P50 is the 5th, P99 the 10th.
	r := recoveryOf([]time.Duration{9 * s, 1 * s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s, 8 * s, 10 * s})
	if !r.Complete() || r.Recovered != 10 || r.All != 10*s || r.P50 != 5*s || r.P99 != 10*s {
		t.Fatalf("unexpected recovery of ten clients; got %+v", r)
	}
	// One client never recovered: no All, and no P99 either (the 99th percentile client is
	// the one missing); P50 still.
	r = recoveryOf([]time.Duration{1 * s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s, 8 * s, 9 * s, notRecovered})
	if r.Complete() || r.Recovered != 9 || r.All != 0 || r.P50 != 5*s || r.P99 != 0 {
		t.Fatalf("unexpected recovery with one client missing; got %+v", r)
	}
	// Fewer than half recovered: nothing but the count.
	r = recoveryOf([]time.Duration{notRecovered, notRecovered, 1 * s})
	if r.Recovered != 1 || r.P50 != 0 || r.All != 0 {
		t.Fatalf("unexpected recovery with one of three; got %+v", r)
	}
	if r := recoveryOf(nil); r.Complete() {
		t.Fatalf("no clients cannot be a complete recovery; got %+v", r)
	}
}

func TestSTSRateOf(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	samples := []stsSample{
		{at: ms(0), calls: 100, throttled: 10},
		{at: ms(1000), calls: 150, throttled: 10}, // 50/s
		{at: ms(1010), calls: 160, throttled: 15}, // 10 ms later: merged into the next interval
		{at: ms(2000), calls: 350, throttled: 100},
		{at: ms(3000), calls: 380, throttled: 100},
	}
	r := stsRateOf(samples, ms(500))
	if r.Calls != 280 || r.Throttled != 90 {
		t.Fatalf("unexpected totals; got %d calls, %d throttled; want 280, 90", r.Calls, r.Throttled)
	}
	if len(r.PerSecond) != 3 || r.PerSecond[0] != 50 || r.PerSecond[1] != 200 || r.PerSecond[2] != 30 {
		t.Fatalf("unexpected per-second rates; got %v; want [50 200 30]", r.PerSecond)
	}
	if r.Peak != 200 || r.Mean != round3(280.0/3) {
		t.Fatalf("unexpected peak and mean; got %v, %v; want 200, %v", r.Peak, r.Mean, round3(280.0/3))
	}
	// A sample out of order (its count below the previous one) is skipped, never wrapped
	// around into a huge rate.
	odd := []stsSample{{at: ms(0), calls: 100}, {at: ms(1000), calls: 150}, {at: ms(2000), calls: 140}, {at: ms(3000), calls: 200}}
	if r := stsRateOf(odd, ms(500)); r.Peak != 50 || len(r.PerSecond) != 2 || r.PerSecond[1] != 25 {
		t.Fatalf("unexpected rates with a sample out of order; got %+v; want [50 25]", r)
	}
	if r := stsRateOf([]stsSample{{at: 0, calls: 100}, {at: ms(1000), calls: 5}}, ms(500)); r.Calls != 0 || r.Peak != 0 {
		t.Fatalf("counters reset in between must give no figures; got %+v", r)
	}
	if r := stsRateOf(samples[:1], ms(500)); r.Calls != 0 || r.Peak != 0 {
		t.Fatalf("one sample cannot give a rate; got %+v", r)
	}
}

func TestRetryDelay(t *testing.T) {
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		for range 20 {
			got := retryDelay(time.Second, 10*time.Second, n)
			if got < want*8/10 || got > want*12/10 {
				t.Fatalf("unexpected delay before retry %d; got %s; want %s ± 20%%", n, got, want)
			}
		}
	}
}

func TestClusterScenarioBounds(t *testing.T) {
	f := func(sc ClusterScenario, wantErr bool) {
		t.Helper()
		err := sc.withDefaults().validate()
		if (err != nil) != wantErr {
			t.Fatalf("unexpected validation of %+v; got %v; want error %v", sc, err, wantErr)
		}
	}
	f(ClusterStorm("s", 10, 1, 1, 50, time.Minute), false)
	f(ClusterBrownout("b", 10, 1, 1, time.Second, time.Minute), false)
	f(ClusterScenario{Name: "none", Phases: ClusterStorm("s", 1, 0, 0, 1, time.Minute).Phases}, true)
	unbounded := ClusterStorm("s", 10, 0, 0, 50, time.Minute)
	unbounded.Phases[1].MaxDuration = 0
	f(unbounded, true)
	f(ClusterScenario{Name: "nophase", Nodes: 1}, true)
}
