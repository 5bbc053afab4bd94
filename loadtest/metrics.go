package loadtest

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
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

// QuantileBound returns the upper bound of the bucket of the histogram name (all label sets
// summed) that holds its q-quantile (0 < q < 1): the q-quantile is at most that value. No
// interpolation: with buckets as wide as 0.1–0.25 s a linear guess would be invented
// precision. It returns ok=false when the histogram is empty, and +Inf when the quantile is
// above the largest finite bound.
func (m Metrics) QuantileBound(name string, q float64) (v float64, ok bool) {
	type bucket struct{ le, n float64 }
	byLE := map[float64]float64{}
	for k, n := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base != name+"_bucket" {
			continue
		}
		i := strings.Index(labels, `le="`)
		if i < 0 {
			continue
		}
		rest := labels[i+4:]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			continue
		}
		le, err := strconv.ParseFloat(rest[:j], 64)
		if err != nil {
			continue
		}
		byLE[le] += n
	}
	bs := make([]bucket, 0, len(byLE))
	for le, n := range byLE {
		bs = append(bs, bucket{le, n})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0, false
	}
	rank := q * bs[len(bs)-1].n
	for _, b := range bs {
		if b.n >= rank {
			return b.le, true
		}
	}
	return math.Inf(1), true
}
