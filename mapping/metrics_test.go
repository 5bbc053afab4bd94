package mapping

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsDocumented keeps README.md's metrics table and the registered metrics equal.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.ec2Observe(0.01) // a histogram is gathered once observed
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, mf := range mfs {
		registered = append(registered, mf.GetName())
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var documented []string
	for _, row := range regexp.MustCompile("(?m)^\\| `(iamgate_[a-z0-9_]+)`").FindAllStringSubmatch(string(readme), -1) {
		if !seen[row[1]] {
			seen[row[1]] = true
			documented = append(documented, row[1])
		}
	}
	sort.Strings(registered)
	sort.Strings(documented)
	if strings.Join(registered, ",") != strings.Join(documented, ",") {
		t.Fatalf("unexpected metrics in README.md; got %q; want %q", documented, registered)
	}
}
