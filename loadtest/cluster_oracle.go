package loadtest

import (
	"math"
	"slices"
	"time"
)

// The oracle and the accounting of the cluster model: what every answer must be, and the
// figures a phase is reported with. Pure functions and plain data, so that tests can feed
// them by hand.

// ClientKind is the kind of a modelled client.
type ClientKind uint8

const (
	// ClientNode is a kubelet: it retries a failed request like client-go's backoff does.
	ClientNode ClientKind = iota
	// ClientUser is a kubectl user: a failed request is seen at once (UserRetries, 0 by default).
	ClientUser
	// ClientDenied holds a token with a forged signature: every answer must be a denial.
	ClientDenied
	numClientKinds
)

var clientKindNames = [numClientKinds]string{"node", "user", "denied"}

func (k ClientKind) String() string { return clientKindNames[k] }

// Expectation is what the oracle requires for one token.
type Expectation struct {
	// Allow says the token must authenticate, as Username; otherwise it must be denied.
	Allow    bool
	Username string
}

// Verdict is the oracle's judgement of one authentication.
type Verdict uint8

const (
	// VerdictOK: authenticated as the expected user.
	VerdictOK Verdict = iota
	// VerdictDenied: a definite denial of a token that must be denied.
	VerdictDenied
	// VerdictTransient: kube-apiserver could not decide (the webhook failed after its
	// retries, or timed out); the client gets 401 and may retry. Not a wrong answer.
	VerdictTransient
	// VerdictWrongUser: authenticated, as someone else. A wrong answer.
	VerdictWrongUser
	// VerdictFalseAllow: authenticated although the token must be denied. A wrong answer.
	VerdictFalseAllow
	// VerdictFalseDeny: a definite denial (cached by kube-apiserver for its TTL) of a token
	// that must be allowed. A wrong answer.
	VerdictFalseDeny
	numVerdicts
)

var verdictNames = [numVerdicts]string{"ok", "denied", "transient", "wrongUser", "falseAllow", "falseDeny"}

func (v Verdict) String() string { return verdictNames[v] }

// Wrong reports whether v is a wrong answer.
func (v Verdict) Wrong() bool { return v >= VerdictWrongUser }

// Judge compares one result of kube-apiserver's token authenticator (ok, the username when
// ok, err) with e.
func Judge(e Expectation, ok bool, username string, err error) Verdict {
	switch {
	case ok && !e.Allow:
		return VerdictFalseAllow
	case ok && username != e.Username:
		return VerdictWrongUser
	case ok:
		return VerdictOK
	case err != nil:
		return VerdictTransient
	case e.Allow:
		return VerdictFalseDeny
	}
	return VerdictDenied
}

// IdealRecovery is the shortest time in which STS, admitting rate calls per second, can verify
// distinct tokens: distinct ÷ rate. Zero when rate is not positive (no throttle: no bound).
func IdealRecovery(distinct int, rate float64) time.Duration {
	if rate <= 0 || distinct <= 0 {
		return 0
	}
	return time.Duration(float64(distinct) / rate * float64(time.Second))
}

// Recovery summarises when the clients of a phase were authenticated again.
type Recovery struct {
	// Clients is the number of clients that must authenticate (nodes and users); Recovered
	// how many did, with a request sent after the phase began.
	Clients   int `json:"clients"`
	Recovered int `json:"recovered"`
	// All is the time from the phase's start until the last of them succeeded (set only when
	// every client recovered); P50 and P99 the times by which half and 99 % had (set when
	// that many recovered).
	All time.Duration `json:"allNs"`
	P50 time.Duration `json:"p50Ns"`
	P99 time.Duration `json:"p99Ns"`
}

// Complete reports whether every client recovered.
func (r Recovery) Complete() bool { return r.Clients > 0 && r.Recovered == r.Clients }

// notRecovered marks a client without a success in the phase yet.
const notRecovered = time.Duration(-1)

// recoveryOf summarises at: for each client that must authenticate, the time of its first
// success after the phase began, or notRecovered.
func recoveryOf(at []time.Duration) Recovery {
	r := Recovery{Clients: len(at)}
	done := make([]time.Duration, 0, len(at))
	for _, d := range at {
		if d != notRecovered {
			done = append(done, d)
		}
	}
	r.Recovered = len(done)
	if len(done) == 0 {
		return r
	}
	slices.Sort(done)
	rank := func(q float64) (time.Duration, bool) {
		need := int(math.Ceil(q*float64(r.Clients) - 1e-9))
		if need < 1 || need > len(done) {
			return 0, false
		}
		return done[need-1], true
	}
	if v, ok := rank(0.5); ok {
		r.P50 = v
	}
	if v, ok := rank(0.99); ok {
		r.P99 = v
	}
	if r.Complete() {
		r.All = done[len(done)-1]
	}
	return r
}

// stsSample is the fake STS's GetCallerIdentity count at one moment of a run.
type stsSample struct {
	at               time.Duration // since the run began
	calls, throttled uint64
}

// STSRate is what the fake STS saw during a phase, from samples of its /stats.
type STSRate struct {
	// Calls is every GetCallerIdentity call (throttled, failed and successful); Throttled the
	// ones answered Throttling.
	Calls     uint64 `json:"calls"`
	Throttled uint64 `json:"throttled"`
	// Peak is the most calls per second over one sampling interval; Mean is Calls over the
	// phase's duration.
	Peak float64 `json:"peakPerSecond"`
	Mean float64 `json:"meanPerSecond"`
	// PerSecond is the call rate of each sampling interval, for charts.
	PerSecond []float64 `json:"perSecond,omitempty"`
}

// stsRateOf computes the totals from the first sample to the last (in time order) and the
// call rates over intervals of at least minInterval (closer samples are merged into the next,
// so that a phase boundary sampled a few milliseconds after a regular sample cannot make a
// huge rate out of one call).
func stsRateOf(samples []stsSample, minInterval time.Duration) STSRate {
	var r STSRate
	if len(samples) < 2 {
		return r
	}
	first, last := samples[0], samples[len(samples)-1]
	if last.calls < first.calls || last.throttled < first.throttled {
		return r // the counters were reset in between: no figures rather than wrong ones
	}
	r.Calls = last.calls - first.calls
	r.Throttled = last.throttled - first.throttled
	if span := (last.at - first.at).Seconds(); span > 0 {
		r.Mean = round3(float64(r.Calls) / span)
	}
	anchor := samples[0]
	for _, s := range samples[1:] {
		dt := s.at - anchor.at
		if dt < minInterval || dt <= 0 || s.calls < anchor.calls {
			continue // too close, or out of order (counters only grow)
		}
		v := round3(float64(s.calls-anchor.calls) / dt.Seconds())
		r.PerSecond = append(r.PerSecond, v)
		r.Peak = max(r.Peak, v)
		anchor = s
	}
	return r
}
