package ec2

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/internal/testenv"
)

// TestMetricsDocumented keeps the iamgate_ec2_* rows of ../README.md's metrics table and the
// registered metrics equal.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.observe(0.01) // a histogram is gathered once observed
	testenv.CheckDocumentedMetrics(t, reg, "../README.md", "iamgate_ec2_")
}
