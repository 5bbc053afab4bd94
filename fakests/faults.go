package fakests

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// Faults is what the fake does wrong on purpose, set at start (Options.Faults, cmd/fakests
// flags) and replaced whole at run time (Server.SetFaults, PUT /admin/faults). The zero value
// injects nothing. Faults apply to AWS requests only, never to the admin endpoints, and run on
// real time (not Options.Clock). They are tried in this order, the first that fires decides:
//
//  1. Outage: every request gets 503 ServiceUnavailable (EC2: 503 Unavailable).
//  2. ResetRate: the connection is reset (TCP RST) without an answer.
//  3. HangRate: no answer; the connection is held until the client closes it, HangFor
//     passes (then it is reset) or the server closes.
//  4. Latency + a uniform random delay in [0, Jitter) before any answer below.
//  5. ThrottleRate: above this many requests per second (token bucket of ThrottleBurst),
//     the excess gets 400 Throttling (EC2: 503 RequestLimitExceeded).
//  6. ErrorRates: with probability ErrorRates[code], the request gets that AWS error.
type Faults struct {
	Outage       bool     `json:"outage,omitempty"`
	ResetRate    float64  `json:"resetRate,omitempty"`
	HangRate     float64  `json:"hangRate,omitempty"`
	HangFor      Duration `json:"hangFor,omitempty"`
	Latency      Duration `json:"latency,omitempty"`
	Jitter       Duration `json:"jitter,omitempty"`
	ThrottleRate float64  `json:"throttleRate,omitempty"`
	// ThrottleBurst is the token bucket size; 0 means max(1, ThrottleRate).
	ThrottleBurst int `json:"throttleBurst,omitempty"`
	// ErrorRates maps an AWS error code (see InjectableCodes) to the probability of answering
	// it; the rates add up to at most 1.
	ErrorRates map[string]float64 `json:"errorRates,omitempty"`
	// Actions limits the faults to these actions (GetCallerIdentity, AssumeRole,
	// DescribeInstances); empty means every request.
	Actions []string `json:"actions,omitempty"`
}

// InjectableCodes returns the AWS error codes ErrorRates accepts, sorted.
func InjectableCodes() []string {
	codes := make([]string, 0, len(injectable))
	for c := range injectable {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}

// Validate checks rates, durations and codes.
func (f Faults) Validate() error {
	rate := func(name string, v float64) error {
		if math.IsNaN(v) || v < 0 || v > 1 {
			return fmt.Errorf("cannot use faults: %s=%v is not a probability in [0, 1]", name, v)
		}
		return nil
	}
	if err := rate("resetRate", f.ResetRate); err != nil {
		return err
	}
	if err := rate("hangRate", f.HangRate); err != nil {
		return err
	}
	if f.HangFor < 0 || f.Latency < 0 || f.Jitter < 0 {
		return fmt.Errorf("cannot use faults: a duration is negative")
	}
	if math.IsNaN(f.ThrottleRate) || f.ThrottleRate < 0 || f.ThrottleBurst < 0 {
		return fmt.Errorf("cannot use faults: throttleRate and throttleBurst must not be negative")
	}
	sum := 0.0
	for code, v := range f.ErrorRates {
		if injectable[code] == nil {
			return fmt.Errorf("cannot use faults: errorRates code %q is not one of %v", code, InjectableCodes())
		}
		if err := rate("errorRates."+code, v); err != nil {
			return err
		}
		sum += v
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("cannot use faults: errorRates add up to %v > 1", sum)
	}
	for _, a := range f.Actions {
		if a != ActionGetCallerIdentity && a != ActionAssumeRole && a != ActionDescribeInstances {
			return fmt.Errorf("cannot use faults: action %q is not GetCallerIdentity, AssumeRole or DescribeInstances", a)
		}
	}
	return nil
}

// faultState is a validated Faults with its token bucket. It is replaced whole on SetFaults.
type faultState struct {
	Faults
	errors []weightedError // cumulative probabilities

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time
}

type weightedError struct {
	upTo float64
	err  *awsError
}

func newFaultState(f Faults) *faultState {
	fs := &faultState{Faults: f}
	codes := make([]string, 0, len(f.ErrorRates))
	for c := range f.ErrorRates {
		codes = append(codes, c)
	}
	sort.Strings(codes) // a stable order for the cumulative table
	sum := 0.0
	for _, c := range codes {
		if f.ErrorRates[c] > 0 {
			sum += f.ErrorRates[c]
			fs.errors = append(fs.errors, weightedError{sum, injectable[c]})
		}
	}
	fs.tokens = fs.burst()
	return fs
}

func (fs *faultState) burst() float64 {
	if fs.ThrottleBurst > 0 {
		return float64(fs.ThrottleBurst)
	}
	return math.Max(1, fs.ThrottleRate)
}

// active reports whether any fault applies to action.
func (fs *faultState) active(action string) bool {
	return len(fs.Actions) == 0 || slices.Contains(fs.Actions, action)
}

// allow takes a token from the bucket; false means throttle.
func (fs *faultState) allow(now time.Time) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.last.IsZero() {
		fs.tokens = math.Min(fs.burst(), fs.tokens+now.Sub(fs.last).Seconds()*fs.ThrottleRate)
	}
	fs.last = now
	if fs.tokens < 1 {
		return false
	}
	fs.tokens--
	return true
}

// pickError draws the injected error, if any.
func (fs *faultState) pickError() *awsError {
	if len(fs.errors) == 0 {
		return nil
	}
	r := rand.Float64()
	for _, w := range fs.errors {
		if r < w.upTo {
			return w.err
		}
	}
	return nil
}

// delay is Latency plus the jitter draw.
func (fs *faultState) delay() time.Duration {
	d := time.Duration(fs.Latency)
	if fs.Jitter > 0 {
		d += rand.N(time.Duration(fs.Jitter))
	}
	return d
}

func chance(p float64) bool { return p > 0 && (p >= 1 || rand.Float64() < p) }

// String is the JSON of f, as PUT /admin/faults takes it.
func (f Faults) String() string {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Sprintf("%+v", map[string]any{"error": err.Error()})
	}
	return string(b)
}
