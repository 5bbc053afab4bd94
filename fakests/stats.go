package fakests

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes recorded in Stats besides the AWS error codes answered.
const (
	// OutcomeOK is a successful answer.
	OutcomeOK = "ok"
	// OutcomeHang is a request held without an answer by fault injection.
	OutcomeHang = "hang"
	// OutcomeReset is a request answered by a connection reset by fault injection.
	OutcomeReset = "reset"
)

// Action labels: the three actions the fake serves, and the rest.
const (
	ActionGetCallerIdentity = "GetCallerIdentity"
	ActionAssumeRole        = "AssumeRole"
	ActionDescribeInstances = "DescribeInstances"
	actionOther             = "other"
)

// Fault kinds counted in Stats.Faults and fakests_faults_injected_total.
const (
	FaultLatency  = "latency"
	FaultError    = "error"
	FaultThrottle = "throttle"
	FaultHang     = "hang"
	FaultReset    = "reset"
	FaultOutage   = "outage"
)

// Stats is a snapshot of the calls the fake has answered since start (or ResetStats).
type Stats struct {
	// Calls counts AWS requests by action (GetCallerIdentity, AssumeRole, DescribeInstances,
	// other) and outcome ("ok", "hang", "reset" or the AWS error code answered).
	Calls map[string]map[string]uint64 `json:"calls"`
	// Faults counts injected faults by kind (latency, error, throttle, hang, reset, outage).
	Faults map[string]uint64 `json:"faults"`
}

// Count returns the number of calls of action with outcome.
func (st Stats) Count(action, outcome string) uint64 { return st.Calls[action][outcome] }

// Total returns the number of calls of action, whatever the outcome.
func (st Stats) Total(action string) uint64 {
	var n uint64
	for _, c := range st.Calls[action] {
		n += c
	}
	return n
}

type statKey struct{ action, outcome string }

type statEntry struct {
	n    atomic.Uint64
	prom prometheus.Counter
}

// counters are the fake's own counters, mirrored in Prometheus metrics on a registry the
// server owns. calls and faults are guarded by mu; the entries count atomically.
type counters struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	faultVec *prometheus.CounterVec

	mu     sync.RWMutex
	calls  map[statKey]*statEntry
	faults map[string]*statEntry
}

func newCounters(issued func() float64) *counters {
	c := &counters{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fakests", Name: "requests_total",
			Help: "AWS requests answered, by action and outcome (ok, hang, reset or the AWS error code).",
		}, []string{"action", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "fakests", Name: "request_duration_seconds",
			Help:    "Time from reading an AWS request to handing its answer to the connection, by action.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"action"}),
		faultVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "fakests", Name: "faults_injected_total",
			Help: "Faults injected, by kind (latency, error, throttle, hang, reset, outage).",
		}, []string{"fault"}),
		calls:  map[statKey]*statEntry{},
		faults: map[string]*statEntry{},
	}
	c.registry.MustRegister(c.requests, c.duration, c.faultVec,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "fakests", Name: "issued_sessions",
			Help: "Temporary credentials issued by AssumeRole and still held.",
		}, issued))
	return c
}

func (c *counters) recordCall(action, outcome string, elapsed time.Duration) {
	k := statKey{action, outcome}
	c.mu.RLock()
	e := c.calls[k]
	c.mu.RUnlock()
	if e == nil {
		c.mu.Lock()
		if e = c.calls[k]; e == nil {
			e = &statEntry{prom: c.requests.WithLabelValues(action, outcome)}
			c.calls[k] = e
		}
		c.mu.Unlock()
	}
	e.n.Add(1)
	e.prom.Inc()
	c.duration.WithLabelValues(action).Observe(elapsed.Seconds())
}

func (c *counters) recordFault(kind string) {
	c.mu.RLock()
	e := c.faults[kind]
	c.mu.RUnlock()
	if e == nil {
		c.mu.Lock()
		if e = c.faults[kind]; e == nil {
			e = &statEntry{prom: c.faultVec.WithLabelValues(kind)}
			c.faults[kind] = e
		}
		c.mu.Unlock()
	}
	e.n.Add(1)
	e.prom.Inc()
}

func (c *counters) snapshot() Stats {
	st := Stats{Calls: map[string]map[string]uint64{}, Faults: map[string]uint64{}}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for k, e := range c.calls {
		if n := e.n.Load(); n > 0 {
			if st.Calls[k.action] == nil {
				st.Calls[k.action] = map[string]uint64{}
			}
			st.Calls[k.action][k.outcome] = n
		}
	}
	for k, e := range c.faults {
		if n := e.n.Load(); n > 0 {
			st.Faults[k] = n
		}
	}
	return st
}

// reset zeroes the Stats counters; Prometheus counters stay monotonic.
func (c *counters) reset() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.calls {
		e.n.Store(0)
	}
	for _, e := range c.faults {
		e.n.Store(0)
	}
}
