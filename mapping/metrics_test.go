package mapping

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/internal/testenv"
)

// TestMetricsDocumented keeps README.md's metrics table and the registered metrics equal.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.ec2Observe(0.01) // a histogram is gathered once observed
	testenv.CheckDocumentedMetrics(t, reg, "README.md", "iamgate_")
}
