package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// stsChart draws, for the target phase of each cluster run, the fake STS's GetCallerIdentity
// calls per second over the phase for iamgate and the passthrough baseline, with the
// throttle's rate as a dashed line: one panel per run.
func stsChart(r *Results) []byte {
	type series struct {
		label, color string
		pts          []float64
		step         time.Duration
	}
	type panel struct {
		title string
		rate  float64
		ss    []series
	}
	var panels []panel
	for _, run := range r.Cluster {
		g := targetPhase(run.IAMGate)
		if g == nil {
			continue
		}
		pn := panel{title: run.Name + ", " + g.Phase.Name, rate: g.Phase.Faults.ThrottleRate}
		add := func(rep *loadtest.ClusterReport, ph *loadtest.PhaseReport, color string) {
			if ph != nil && len(ph.STS.PerSecond) > 0 {
				pn.ss = append(pn.ss, series{rep.Daemon, color, ph.STS.PerSecond, rep.Scenario.SampleEvery})
			}
		}
		add(run.IAMGate, g, "#1f4e79")
		add(run.Baseline, targetPhase(run.Baseline), "#c0504d")
		if len(pn.ss) > 0 {
			panels = append(panels, pn)
		}
	}
	const (
		width, panelH, left, right, top = 860.0, 230.0, 70.0, 130.0, 40.0
	)
	plotW, plotH := width-left-right, panelH-70
	height := top + panelH*float64(max(1, len(panels)))
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%.0f" y="20" font-size="14" font-weight="bold">STS GetCallerIdentity calls per second in the storm (throttled included)</text>`+"\n", left)
	p(`<text x="%.0f" y="34" fill="#555">run %s; dashed: the throttle's rate</text>`+"\n", left, html.EscapeString(r.RunID))
	for i, pn := range panels {
		y0 := top + panelH*float64(i) + 20
		ymax, tmax := pn.rate*1.2, 0.0
		for _, s := range pn.ss {
			for _, v := range s.pts {
				ymax = math.Max(ymax, v)
			}
			tmax = math.Max(tmax, float64(len(s.pts))*s.step.Seconds())
		}
		ymax = niceCeil(ymax)
		tmax = math.Max(tmax, 1)
		x := func(t float64) float64 { return left + plotW*t/tmax }
		y := func(v float64) float64 { return y0 + plotH - plotH*v/ymax }
		p(`<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-6, html.EscapeString(pn.title))
		p(`<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`+"\n", left, y0, plotW, plotH)
		for _, f := range []float64{0, 0.5, 1} {
			p(`<text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%.0f</text>`+"\n", left-6, y(f*ymax)+4, f*ymax)
		}
		for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
			p(`<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%.0f s</text>`+"\n", x(f*tmax), y0+plotH+16, f*tmax)
		}
		if pn.rate > 0 {
			p(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#333" stroke-dasharray="5,4"/>`+"\n", left, y(pn.rate), left+plotW, y(pn.rate))
			p(`<text x="%.0f" y="%.1f" fill="#333">%g/s</text>`+"\n", left+plotW+6, y(pn.rate)+4, pn.rate)
		}
		for k, s := range pn.ss {
			var pts []string
			for j, v := range s.pts {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(j+1)*s.step.Seconds()), y(v)))
			}
			p(`<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
			p(`<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", left+plotW+6, y0+14+16*float64(k), s.color, html.EscapeString(s.label))
		}
	}
	p("</svg>\n")
	return b.Bytes()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}
