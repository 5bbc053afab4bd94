package loadtest

import (
	"strings"
	"testing"
	"time"
)

// TestFreshNeverReachesPastItsBound: a Minter that runs out of (principal, second) pairs within
// maxSignedAgo says so instead of returning tokens that expire during the scenario.
func TestFreshNeverReachesPastItsBound(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	m := &Minter{ClusterID: "bench", Principals: Principals(2), Now: func() time.Time { return now }}
	perBound := 2 * int(maxSignedAgo/time.Second) // 2 principals, one token each per second
	toks, err := m.Fresh(perBound-10, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != perBound-10 {
		t.Fatalf("unexpected count; got %d; want %d", len(toks), perBound-10)
	}
	// Now and the 600 seconds before it hold 1,202 pairs, the ones used so far included: 12
	// more fit, and no more.
	if _, err := m.Fresh(12, false); err != nil {
		t.Fatalf("unexpected error for the last pairs within the bound: %v", err)
	}
	if _, err := m.Fresh(1, false); err == nil || !strings.Contains(err.Error(), "more principals") {
		t.Fatalf("unexpected result past the bound; got %v; want an error", err)
	}
	// Later, the seconds since are free again.
	now = now.Add(time.Minute)
	if _, err := m.Fresh(120, false); err != nil {
		t.Fatalf("unexpected error a minute later: %v", err)
	}
}
