package testenv

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// MetricValue returns the value of the metric name in reg whose labels include the given
// name/value pairs: a counter's or gauge's value, a histogram's sample count. It fails tb when
// there is no such metric.
func MetricValue(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("cannot gather metrics: %s", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	tb.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// CheckDocumentedMetrics fails tb unless the metrics gathered from reg whose names start with
// prefix are exactly the rows of the Markdown metrics table in readme (rows that start with
// | `iamgate_…`) whose names start with prefix.
func CheckDocumentedMetrics(tb testing.TB, reg *prometheus.Registry, readme, prefix string) {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var registered []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), prefix) {
			registered = append(registered, mf.GetName())
		}
	}
	text, err := os.ReadFile(readme)
	if err != nil {
		tb.Fatal(err)
	}
	seen := map[string]bool{}
	var documented []string
	for _, row := range regexp.MustCompile("(?m)^\\| `(iamgate_[a-z0-9_]+)`").FindAllStringSubmatch(string(text), -1) {
		if name := row[1]; strings.HasPrefix(name, prefix) && !seen[name] {
			seen[name] = true
			documented = append(documented, name)
		}
	}
	sort.Strings(registered)
	sort.Strings(documented)
	if strings.Join(registered, ",") != strings.Join(documented, ",") {
		tb.Fatalf("unexpected %s* metrics in %s; got %q; want %q", prefix, readme, documented, registered)
	}
}
