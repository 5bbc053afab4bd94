package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// latencyChart draws p50 and p99 of the limit and every scenario as horizontal bars on a
// logarithmic axis (milliseconds).
func latencyChart(r *Results) []byte {
	type row struct {
		name     string
		p50, p99 float64
	}
	var rows []row
	if r.Limit != nil {
		rows = append(rows, row{"limit (trivial)", r.Limit.Latency.P50, r.Limit.Latency.P99})
	}
	for _, s := range r.Scenarios {
		rows = append(rows, row{s.Scenario.Name, s.Latency.P50, s.Latency.P99})
	}
	if r.TLS != nil {
		rows = append(rows, row{r.TLS.Scenario.Name, r.TLS.Latency.P50, r.TLS.Latency.P99})
	}
	for _, w := range r.Wrk {
		rows = append(rows, row{w.Name, w.Result.Latency.P50, w.Result.Latency.P99})
	}
	const (
		left, right, top, rowH = 140.0, 90.0, 50.0, 26.0
		width                  = 860.0
		minMs, maxMs           = 0.1, 1000.0
	)
	plotW := width - left - right
	height := top + rowH*float64(len(rows)) + 40
	x := func(ms float64) float64 {
		ms = math.Min(math.Max(ms, minMs), maxMs)
		return left + plotW*(math.Log10(ms)-math.Log10(minMs))/(math.Log10(maxMs)-math.Log10(minMs))
	}
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%.0f" y="20" font-size="14" font-weight="bold">iamgate latency per scenario, c=%d (ms, log scale): p50 light, p99 dark</text>`+"\n", left, concurrency)
	p(`<text x="%.0f" y="36" fill="#555">run %s</text>`+"\n", left, html.EscapeString(r.RunID))
	for _, tick := range []float64{0.1, 1, 10, 100, 1000} {
		tx := x(tick)
		p(`<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/>`+"\n", tx, top-6, tx, height-30)
		p(`<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%g</text>`+"\n", tx, height-14, tick)
	}
	for i, rw := range rows {
		y := top + rowH*float64(i)
		p(`<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-8, y+15, html.EscapeString(rw.name))
		p(`<rect x="%.0f" y="%.1f" width="%.1f" height="9" fill="#1f4e79"/>`+"\n", left, y+11, math.Max(1, x(rw.p99)-left))
		p(`<rect x="%.0f" y="%.1f" width="%.1f" height="9" fill="#8fb8de"/>`+"\n", left, y+2, math.Max(1, x(rw.p50)-left))
		p(`<text x="%.1f" y="%.1f" fill="#333">%.3g / %.3g</text>`+"\n", math.Max(x(rw.p99), x(rw.p50))+6, y+15, rw.p50, rw.p99)
	}
	p("</svg>\n")
	return b.Bytes()
}
