package source

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/internal/testenv"
)

// TestMetricsDocumented keeps the iamgate_mapping_* rows of ../README.md's metrics table and
// the registered metrics equal.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	testenv.CheckDocumentedMetrics(t, reg, "../README.md", "iamgate_mapping_")
}
