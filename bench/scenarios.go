package bench

import (
	"time"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/loadtest"
)

// concurrency is the number of hey workers (and wrk connections) of every scenario: the
// issue's "p99 ≤ 3 ms at c=50".
const concurrency = 50

// scenarios returns the load scenarios, each lasting d (quick runs use a short d and fewer
// tokens; scale divides the request bounds that size the tokens minted in advance).
func scenarios(d time.Duration, scale int) []loadtest.Scenario {
	ms := func(n int) fakests.Duration { return fakests.Duration(time.Duration(n) * time.Millisecond) }
	s := func(n int) int { return max(concurrency*4, n/scale) }
	return []loadtest.Scenario{
		{Name: "hot", Kind: loadtest.KindHot, Description: "one cached token", Concurrency: concurrency, Requests: 10_000_000, Duration: d, Profile: true},
		{Name: "warm", Kind: loadtest.KindWarm, Description: "1000 cached tokens in turn", Concurrency: concurrency, Requests: 10_000_000, Duration: d, Tokens: 1000},
		{Name: "cold", Kind: loadtest.KindCold, Description: "a new token every request; STS latency 0", Concurrency: concurrency, Requests: s(150_000), Duration: d, Profile: true},
		{Name: "cold-sts20ms", Kind: loadtest.KindCold, Description: "a new token every request; STS latency 20 ms", Concurrency: concurrency, Requests: s(30_000), Duration: d, Faults: fakests.Faults{Latency: ms(20)}},
		{Name: "cold-sts100ms", Kind: loadtest.KindCold, Description: "a new token every request; STS latency 100 ms", Concurrency: concurrency, Requests: s(6_000), Duration: d, Faults: fakests.Faults{Latency: ms(100)}},
		{Name: "herd", Kind: loadtest.KindHerd, Description: "50 concurrent reviews of each new token; STS latency 20 ms", Concurrency: concurrency, Requests: s(100_000), Duration: d, Herd: 50, Faults: fakests.Faults{Latency: ms(20)}},
		{Name: "invalid", Kind: loadtest.KindInvalid, Description: "100 expired tokens in turn (rejected locally)", Concurrency: concurrency, Requests: 10_000_000, Duration: d, Tokens: 100, Profile: true},
		{Name: "badsig", Kind: loadtest.KindBadSignature, Description: "1000 tokens with a wrong signature in turn (STS rejects each once)", Concurrency: concurrency, Requests: 10_000_000, Duration: d, Tokens: 1000},
		{Name: "throttled", Kind: loadtest.KindCold, Description: "a new token every request; STS throttles above 500 calls/s", Concurrency: concurrency, Requests: s(100_000), Duration: d, Faults: fakests.Faults{ThrottleRate: 500, ThrottleBurst: 50}},
		{Name: "outage", Kind: loadtest.KindOutage, Description: "100 cached tokens, a new one every 100th request; STS down (503) from the middle on", Concurrency: concurrency, Requests: 10_000_000, Duration: d, Tokens: 100, NewEvery: 100},
	}
}
