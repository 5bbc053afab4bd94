package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics are the samples of one Prometheus text page, keyed by the sample as printed:
// `iamgate_cache_hits_total{kind="identity"}`.
type Metrics map[string]float64

// ScrapeMetrics reads url (a loopback /metrics endpoint).
func ScrapeMetrics(url string) (Metrics, error) {
	if err := CheckLoopbackURL(url); err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot scrape %s: HTTP %d", url, resp.StatusCode)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics reads the Prometheus text format, skipping comments.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read metrics: %w", err)
	}
	return m, nil
}

// Sum returns the sum of every sample of the metric name (all label sets) whose labels
// contain every one of filters (e.g. `result="allowed"`).
func (m Metrics) Sum(name string, filters ...string) float64 {
	s := 0.0
	for k, v := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, f := range filters {
			if !strings.Contains(labels, f) {
				ok = false
				break
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// Delta returns m - before for every sample of m.
func (m Metrics) Delta(before Metrics) Metrics {
	d := Metrics{}
	for k, v := range m {
		d[k] = v - before[k]
	}
	return d
}

// Labeled returns the samples of name by the value of one label, e.g. Labeled(
// "iamgate_reviews_total", "reason") → {"ok": 1234, "expired": 5}; zeros are left out.
func (m Metrics) Labeled(name, label string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base != name || v == 0 {
			continue
		}
		key := label + `="`
		i := strings.Index(labels, key)
		if i < 0 {
			continue
		}
		rest := labels[i+len(key):]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			continue
		}
		out[rest[:j]] += v
	}
	return out
}
