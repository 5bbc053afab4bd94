package ec2

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Resolver's Prometheus metrics (listed in ../README.md). Label sets are
// closed: no instance ID is ever a label. A nil *Metrics records nothing.
type Metrics struct {
	lookups  *prometheus.CounterVec
	duration prometheus.Histogram
	results  map[string]prometheus.Counter // lookups by result, bound once
}

// Label values of iamgate_ec2_lookups_total.
const (
	ec2Hit      = "hit"
	ec2Fetched  = "fetched"
	ec2NotFound = "not_found"
	ec2Error    = "error"
)

// NewMetrics creates the metrics and registers them on reg (the daemon's own registry; never
// the global one). reg may be nil for unregistered metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iamgate_ec2_lookups_total",
			Help: "{{EC2PrivateDNSName}} lookups, by result (hit: cached; fetched: answered by DescribeInstances; not_found; error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iamgate_ec2_lookup_duration_seconds",
			Help:    "Duration of the EC2 DescribeInstances calls (one per batch of instance IDs, asked with an instance-id filter), including the rate limiter's wait.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
	}
	m.results = map[string]prometheus.Counter{}
	for _, r := range []string{ec2Hit, ec2Fetched, ec2NotFound, ec2Error} {
		m.results[r] = m.lookups.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.lookups, m.duration)
	}
	return m
}

func (m *Metrics) lookup(result string) {
	if m != nil {
		m.results[result].Inc()
	}
}

func (m *Metrics) observe(seconds float64) {
	if m != nil {
		m.duration.Observe(seconds)
	}
}
