package mapping

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the package's Prometheus metrics (listed in README.md). Label sets are closed:
// no ARN, username or instance ID is ever a label. A nil *Metrics records nothing.
type Metrics struct {
	reloads     *prometheus.CounterVec
	entries     *prometheus.GaugeVec
	refused     *prometheus.GaugeVec
	unparsed    *prometheus.GaugeVec
	failing     *prometheus.GaugeVec
	cmErrors    *prometheus.CounterVec
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

	cmForbidden    = "forbidden"
	cmUnauthorized = "unauthorized"
	cmTimeout      = "timeout"
	cmOther        = "other"

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
		refused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "iamgate_mapping_refused_records",
			Help: "Records of the live version of each source (file, configmap) that are refused: not applied, while the other records are. The log names each one; /readyz lists them.",
		}, []string{"source"}),
		unparsed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "iamgate_mapping_unparsed_lists",
			Help: "Lists (mapRoles, mapUsers, mapAccounts) of the live version of each source (file, configmap) whose text does not parse; each keeps its records of the previous version, or maps nothing when there is none.",
		}, []string{"source"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "iamgate_mapping_source_failing",
			Help: "1 while a source (file, configmap) cannot deliver its current content: the file cannot be read or its last version was refused whole; the ConfigMap cannot be listed or watched (the first read counts once -mapping.configMapTimeout has passed). The last good version stays live.",
		}, []string{"source"}),
		cmErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iamgate_mapping_configmap_errors_total",
			Help: "Failed reads (list or watch) of the aws-auth ConfigMap, by reason (forbidden: HTTP 403, RBAC; unauthorized: HTTP 401, credentials; timeout: no answer within -mapping.configMapTimeout; other).",
		}, []string{"reason"}),
		ec2Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iamgate_ec2_lookups_total",
			Help: "{{EC2PrivateDNSName}} lookups, by result (hit: cached; fetched: answered by DescribeInstances; not_found; error).",
		}, []string{"result"}),
		ec2Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iamgate_ec2_lookup_duration_seconds",
			Help:    "Duration of the EC2 DescribeInstances calls (one per batch of instance IDs, asked with an instance-id filter), including the rate limiter's wait.",
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
	for _, s := range []string{SourceFile, SourceConfigMap} {
		m.refused.WithLabelValues(s)
		m.unparsed.WithLabelValues(s)
		m.failing.WithLabelValues(s)
	}
	for _, r := range []string{cmForbidden, cmUnauthorized, cmTimeout, cmOther} {
		m.cmErrors.WithLabelValues(r)
	}
	m.ec2Results = map[string]prometheus.Counter{}
	for _, r := range []string{ec2Hit, ec2Fetched, ec2NotFound, ec2Error} {
		m.ec2Results[r] = m.ec2Lookups.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.reloads, m.entries, m.refused, m.unparsed, m.failing, m.cmErrors, m.ec2Lookups, m.ec2Duration)
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

func (m *Metrics) setRefused(source string, refused, unparsed int) {
	if m != nil {
		m.refused.WithLabelValues(source).Set(float64(refused))
		m.unparsed.WithLabelValues(source).Set(float64(unparsed))
	}
}

func (m *Metrics) setFailing(source string, failing bool) {
	if m != nil {
		v := 0.0
		if failing {
			v = 1
		}
		m.failing.WithLabelValues(source).Set(v)
	}
}

func (m *Metrics) configMapError(reason string) {
	if m != nil {
		m.cmErrors.WithLabelValues(reason).Inc()
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
