package loadtest

import "testing"

// TestTokenSupplyDistinct: the tokens a run presents, for each way a scenario supplies them.
func TestTokenSupplyDistinct(t *testing.T) {
	for _, c := range []struct {
		name     string
		supply   tokenSupply
		requests int
		want     int
	}{
		{"hot", tokenSupply{kind: fixedTokens, tokens: 1}, 5000, 1},
		{"warm", tokenSupply{kind: fixedTokens, tokens: 1000}, 5000, 1000},
		{"cold", tokenSupply{kind: newTokenPerRequest}, 5000, 5000},
		{"herd", tokenSupply{kind: newTokenPerHerd, every: 50}, 5001, 101},
		{"outage", tokenSupply{kind: cachedAndNew, tokens: 100, every: 100}, 5000, 150},
		{"outage, short", tokenSupply{kind: cachedAndNew, tokens: 100, every: 100}, 60, 60},
		{"outage, long", tokenSupply{kind: cachedAndNew, tokens: 100, every: 2}, 100_000, 100 + maxOutageNew},
	} {
		if got := c.supply.distinct(c.requests); got != c.want {
			t.Errorf("%s: unexpected distinct tokens of %d requests; got %d; want %d", c.name, c.requests, got, c.want)
		}
	}
}
