package source

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/mapping"
)

// Metrics are the Prometheus metrics of the Store and its sources (listed in ../README.md).
// Label sets are closed: no ARN or username is ever a label. A nil *Metrics records nothing.
type Metrics struct {
	reloads  *prometheus.CounterVec
	entries  *prometheus.GaugeVec
	refused  *prometheus.GaugeVec
	unparsed *prometheus.GaugeVec
	failing  *prometheus.GaugeVec
	cmErrors *prometheus.CounterVec
}

// Label values of iamgate_mapping_reloads_total and iamgate_mapping_configmap_errors_total.
const (
	reloadOK        = "ok"
	reloadError     = "error"
	reloadUnchanged = "unchanged"

	cmForbidden    = "forbidden"
	cmUnauthorized = "unauthorized"
	cmTimeout      = "timeout"
	cmOther        = "other"
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
	}
	for _, s := range sourceOrder {
		for _, r := range []string{reloadOK, reloadError, reloadUnchanged} {
			m.reloads.WithLabelValues(string(s), r)
		}
	}
	for _, k := range []string{"role", "user", "sso", "account"} {
		m.entries.WithLabelValues(k)
	}
	for _, s := range sourceOrder {
		m.refused.WithLabelValues(string(s))
		m.unparsed.WithLabelValues(string(s))
		m.failing.WithLabelValues(string(s))
	}
	for _, r := range []string{cmForbidden, cmUnauthorized, cmTimeout, cmOther} {
		m.cmErrors.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.reloads, m.entries, m.refused, m.unparsed, m.failing, m.cmErrors)
	}
	return m
}

func (m *Metrics) reload(source Kind, result string) {
	if m != nil {
		m.reloads.WithLabelValues(string(source), result).Inc()
	}
}

func (m *Metrics) setEntries(e mapping.Entries) {
	if m != nil {
		m.entries.WithLabelValues("role").Set(float64(e.Roles))
		m.entries.WithLabelValues("user").Set(float64(e.Users))
		m.entries.WithLabelValues("sso").Set(float64(e.SSO))
		m.entries.WithLabelValues("account").Set(float64(e.Accounts))
	}
}

func (m *Metrics) setRefused(source Kind, refused, unparsed int) {
	if m != nil {
		m.refused.WithLabelValues(string(source)).Set(float64(refused))
		m.unparsed.WithLabelValues(string(source)).Set(float64(unparsed))
	}
}

func (m *Metrics) setFailing(source Kind, failing bool) {
	if m != nil {
		v := 0.0
		if failing {
			v = 1
		}
		m.failing.WithLabelValues(string(source)).Set(v)
	}
}

func (m *Metrics) configMapError(reason string) {
	if m != nil {
		m.cmErrors.WithLabelValues(reason).Inc()
	}
}
