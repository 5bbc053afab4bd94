package mapping

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the package's Prometheus metrics (listed in README.md). Label sets are closed:
// no ARN, username or instance ID is ever a label. A nil *Metrics records nothing.
type Metrics struct {
	reloads     *prometheus.CounterVec
	entries     *prometheus.GaugeVec
	ec2Lookups  *prometheus.CounterVec
	ec2Duration prometheus.Histogram
	ec2Results  map[string]prometheus.Counter // ec2Lookups by result, bound once
}

// Label values of iamgate_mapping_reloads_total and iamgate_ec2_lookups_total.
const (
	SourceFile      = "file"
	SourceConfigMap = "configmap"

	reloadOK        = "ok"
	reloadError     = "error"
	reloadUnchanged = "unchanged"

	ec2Hit      = "hit"
	ec2Fetched  = "fetched"
	ec2NotFound = "not_found"
	ec2Error    = "error"
)

// NewMetrics creates the metrics and registers them on reg (the daemon's own registry; never
// the global one). reg may be nil for unregistered metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iamgate_mapping_reloads_total",
			Help: "Mapping versions read, by source (file, configmap) and result (ok; error: refused, the last good mapping stays live; unchanged: same content re-read).",
		}, []string{"source", "result"}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "iamgate_mapping_entries",
			Help: "Records in the live mapping, by kind (role, user, sso, account).",
		}, []string{"kind"}),
		ec2Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iamgate_ec2_lookups_total",
			Help: "{{EC2PrivateDNSName}} lookups, by result (hit: cached; fetched: answered by DescribeInstances; not_found; error).",
		}, []string{"result"}),
		ec2Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iamgate_ec2_lookup_duration_seconds",
			Help:    "Duration of the EC2 DescribeInstances calls (one per batch of instance IDs), including the rate limiter's wait.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
	}
	for _, s := range []string{SourceFile, SourceConfigMap} {
		for _, r := range []string{reloadOK, reloadError, reloadUnchanged} {
			m.reloads.WithLabelValues(s, r)
		}
	}
	for _, k := range []string{"role", "user", "sso", "account"} {
		m.entries.WithLabelValues(k)
	}
	m.ec2Results = map[string]prometheus.Counter{}
	for _, r := range []string{ec2Hit, ec2Fetched, ec2NotFound, ec2Error} {
		m.ec2Results[r] = m.ec2Lookups.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.reloads, m.entries, m.ec2Lookups, m.ec2Duration)
	}
	return m
}

func (m *Metrics) reload(source, result string) {
	if m != nil {
		m.reloads.WithLabelValues(source, result).Inc()
	}
}

func (m *Metrics) setEntries(e Entries) {
	if m != nil {
		m.entries.WithLabelValues("role").Set(float64(e.Roles))
		m.entries.WithLabelValues("user").Set(float64(e.Users))
		m.entries.WithLabelValues("sso").Set(float64(e.SSO))
		m.entries.WithLabelValues("account").Set(float64(e.Accounts))
	}
}

func (m *Metrics) ec2Lookup(result string) {
	if m != nil {
		m.ec2Results[result].Inc()
	}
}

func (m *Metrics) ec2Observe(seconds float64) {
	if m != nil {
		m.ec2Duration.Observe(seconds)
	}
}
