package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// The soak's results (`make soak`, run by e2e/soak_test.go): what one run measured, the leak
// check over its resource samples, and its section of BENCHMARKS.md with a chart.

// Markers of the soak's section of BENCHMARKS.md.
const (
	soakBeginMarker = "<!-- soak:begin -->"
	soakEndMarker   = "<!-- soak:end -->"
)

// Leak bounds. Goroutines and open fds under load follow the reviews in flight, which a hung
// STS makes vary by hundreds from one sample to the next: under load they only have to stay
// below a runaway bound, and the leak check proper compares two idle samples, one before the
// traffic starts and one after it stopped and every keep-alive connection timed out, when
// what is left is what leaked. Heap and RSS move with GC timing and the fault in force, hence
// the factor. Generous on purpose: they catch growth that does not stop, not noise.
const (
	soakIdleGoroutineSlack = 50
	soakIdleFDSlack        = 20
	soakLoadFactor         = 2 // goroutines and fds under load: ≤ 2 × warm-up max + the idle slack
	soakMemoryFactor       = 1.5
	soakHeapSlack          = 8 << 20
	soakRSSSlack           = 16 << 20
)

// SoakResults is one soak run: the JSON file and the source of the markdown section.
type SoakResults struct {
	RunID     string       `json:"runId"`
	Date      time.Time    `json:"date"`
	Commit    string       `json:"commit"`
	Short     bool         `json:"short"`
	Machine   Machine      `json:"machine"`
	LoadStart string       `json:"loadAverageStart"`
	LoadEnd   string       `json:"loadAverageEnd"`
	Elapsed   string       `json:"elapsed"`
	Command   string       `json:"command"`
	Settings  SoakSettings `json:"settings"`
	// Samples are iamgate's resources, every SampleEvery.
	Samples []SoakSample `json:"samples"`
	// Answers counts every judged answer by path and token kind; ByFault by the fault set
	// when the request was sent.
	Answers []SoakRow      `json:"answers"`
	ByFault []SoakRow      `json:"byFault"`
	Events  SoakEvents     `json:"events"`
	Checks  []Check        `json:"checks"`
	Wrong   []string       `json:"wrong,omitempty"` // the first wrong answers, described
	Notes   []string       `json:"notes,omitempty"`
	Totals  SoakCount      `json:"totals"`
	Skipped map[string]int `json:"skipped,omitempty"` // requests not sent: every worker busy
}

// SoakSettings are the run's parameters, stated in the report.
type SoakSettings struct {
	Duration    string `json:"duration"`
	Period      string `json:"period"` // faults rotate, and the mapping is edited, every period
	SampleEvery string `json:"sampleEvery"`
	Warmup      string `json:"warmup"`
	Settle      string `json:"settle"` // from the end of the traffic to the last, idle sample
	// Requests per second sent straight to iamgate, and through kube-apiserver.
	DirectRate        float64  `json:"directRate"`
	KubeAPIServerRate float64  `json:"kubeAPIServerRate"`
	Mix               string   `json:"mix"`
	Windows           []string `json:"windows"` // the oracle's tolerances, in words
	Faults            []string `json:"faults"`  // the rotation, as PUT /admin/faults bodies
	IAMGateFlags      []string `json:"iamgateFlags"`
	KubeAPIServer     string   `json:"kubeAPIServer"`
}

// SoakSample is one sample of iamgate's resources.
type SoakSample struct {
	At time.Duration `json:"atNs"` // since the soak began
	// Idle: no traffic, no fault, keep-alive connections timed out (before and after the soak).
	Idle       bool          `json:"idle,omitempty"`
	Fault      string        `json:"fault"`
	Goroutines float64       `json:"goroutines"` // go_goroutines
	HeapInuse  float64       `json:"heapInuseBytes"`
	HeapAlloc  float64       `json:"heapAllocBytes"`
	RSS        int64         `json:"rssBytes"` // VmRSS
	FDs        int           `json:"openFds"`  // entries of /proc/PID/fd
	CPU        time.Duration `json:"cpuNs"`
	// From iamgate's metrics: identities cached, reviews answered and STS calls made so far.
	CacheEntries float64 `json:"cacheEntries"`
	Reviews      float64 `json:"reviews"`
	STSCalls     float64 `json:"stsCalls"`
}

// SoakCount counts judged answers.
type SoakCount struct {
	Requests  int `json:"requests"`
	OK        int `json:"ok"`
	Denied    int `json:"denied"`
	Transient int `json:"transient"`
	// TransientHealthy are transient answers while no disruptive fault was in force: a bug.
	TransientHealthy int `json:"transientHealthy"`
	WrongUser        int `json:"wrongUser"`
	FalseAllow       int `json:"falseAllow"`
	FalseDeny        int `json:"falseDeny"`
}

// Add counts one verdict; disrupted says whether a disruptive fault was in force.
func (c *SoakCount) Add(v loadtest.Verdict, disrupted bool) {
	c.Requests++
	switch v {
	case loadtest.VerdictOK:
		c.OK++
	case loadtest.VerdictDenied:
		c.Denied++
	case loadtest.VerdictTransient:
		c.Transient++
		if !disrupted {
			c.TransientHealthy++
		}
	case loadtest.VerdictWrongUser:
		c.WrongUser++
	case loadtest.VerdictFalseAllow:
		c.FalseAllow++
	case loadtest.VerdictFalseDeny:
		c.FalseDeny++
	}
}

// Wrong is the number of wrong answers.
func (c SoakCount) Wrong() int { return c.WrongUser + c.FalseAllow + c.FalseDeny }

func (c *SoakCount) merge(o SoakCount) {
	c.Requests += o.Requests
	c.OK += o.OK
	c.Denied += o.Denied
	c.Transient += o.Transient
	c.TransientHealthy += o.TransientHealthy
	c.WrongUser += o.WrongUser
	c.FalseAllow += o.FalseAllow
	c.FalseDeny += o.FalseDeny
}

// SoakRow is a count for one path and token kind, or one fault.
type SoakRow struct {
	Path string `json:"path,omitempty"`
	Kind string `json:"kind,omitempty"`
	SoakCount
}

// SoakEvents are the edits and rotations made, and how fast iamgate followed.
type SoakEvents struct {
	FileEdits      int `json:"fileEdits"`
	GarbageWrites  int `json:"garbageWrites"` // files that are not YAML, refused whole
	ConfigMapEdits int `json:"configMapEdits"`
	KeyRotations   int `json:"keyRotations"`
	TLSRotations   int `json:"tlsRotations"`
	// Seconds from a write to the first answer of iamgate under the new version (probes every
	// 100 ms), and from a TLS key pair's replacement to iamgate serving it.
	FilePropagation      []float64 `json:"filePropagationSeconds"`
	ConfigMapPropagation []float64 `json:"configMapPropagationSeconds"`
	TLSServedAfter       []float64 `json:"tlsServedAfterSeconds"`
	// Unmeasured are edits whose probe got no definite answer between the reload window's end
	// and a fault's tail later (STS or EC2 faulted, the probe's token not cached).
	Unmeasured int `json:"unmeasured"`
	// FileRefusedWhole is iamgate_mapping_reloads_total{source="file",result="error"} at the end.
	FileRefusedWhole float64 `json:"fileRefusedWhole"`
}

// NewSoakResults starts the results of a run begun now.
func NewSoakResults(short bool) *SoakResults {
	r := &SoakResults{Date: time.Now().UTC().Truncate(time.Second), Commit: currentCommit(), Short: short,
		Machine: machine(), LoadStart: loadAverage()}
	r.RunID = "soak-" + r.Date.Format("2006-01-02T1504Z") + "-" + r.Commit
	if short {
		r.RunID = "quick-" + r.RunID
	}
	return r
}

// Finish records the end of the run.
func (r *SoakResults) Finish() {
	r.LoadEnd = loadAverage()
	r.Elapsed = time.Since(r.Date).Round(time.Second).String()
	r.Totals = SoakCount{}
	for _, a := range r.Answers {
		r.Totals.merge(a.SoakCount)
	}
}

// SoakFlatness checks the samples against the leak bounds: every sample after the warm-up
// against the warm-up's maxima, and the last idle sample against the first.
func SoakFlatness(samples []SoakSample, warmup time.Duration) []Check {
	var warm, after, idle []SoakSample
	for _, s := range samples {
		if s.At <= warmup {
			warm = append(warm, s)
		} else {
			after = append(after, s)
		}
		if s.Idle {
			idle = append(idle, s)
		}
	}
	if len(warm) == 0 || len(after) < 2 || len(idle) < 2 || idle[len(idle)-1].At <= warmup {
		return []Check{{Scenario: "soak", Target: "samples: one in the warm-up, two after it, one idle before the traffic and one after it",
			Got: fmt.Sprintf("%d in the warm-up, %d after it, %d idle", len(warm), len(after), len(idle))}}
	}
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	maxOf := func(ss []SoakSample, get func(SoakSample) float64) float64 {
		m := 0.0
		for _, s := range ss {
			m = math.Max(m, get(s))
		}
		return m
	}
	b := soakBoundsOf(samples, warmup)
	var cs []Check
	for i, m := range soakMetrics {
		warmMax, afterMax, last := maxOf(warm, m.get), maxOf(after, m.get), m.get(after[len(after)-1])
		unit := count
		if m.scale > 1 {
			unit = mib
		}
		cs = append(cs, Check{Scenario: "soak", Target: fmt.Sprintf("%s after warm-up ≤ %s = %s", m.name, m.rule, unit(b.load[i])),
			Got: fmt.Sprintf("max %s, last %s (warm-up max %s)", unit(afterMax), unit(last), unit(warmMax)),
			Met: afterMax <= b.load[i]})
		if b.idle[i] > 0 {
			first, end := m.get(idle[0]), m.get(idle[len(idle)-1])
			cs = append(cs, Check{Scenario: "soak", Target: fmt.Sprintf("%s idle at the end ≤ idle at the start + %.0f = %s", m.name, m.idleSlack, unit(b.idle[i])),
				Got: fmt.Sprintf("%s (at the start %s)", unit(end), unit(first)), Met: end <= b.idle[i]})
		}
	}
	return cs
}

// soakMetric is one sampled resource and its bound under load.
type soakMetric struct {
	name  string
	get   func(SoakSample) float64
	scale float64 // for display: 1 or MiB
	rule  string
	load  func(warmMax float64) float64
	// idleSlack, when positive, bounds the idle sample at the end: ≤ the one at the start + it.
	idleSlack float64
}

var soakMetrics = []soakMetric{
	{"goroutines", func(s SoakSample) float64 { return s.Goroutines }, 1,
		fmt.Sprintf("%d × warm-up max + %d", soakLoadFactor, soakIdleGoroutineSlack),
		func(w float64) float64 { return soakLoadFactor*w + soakIdleGoroutineSlack }, soakIdleGoroutineSlack},
	{"heap in use", func(s SoakSample) float64 { return s.HeapInuse }, 1 << 20,
		fmt.Sprintf("%.1f × warm-up max + %d MiB", soakMemoryFactor, soakHeapSlack>>20),
		func(w float64) float64 { return soakMemoryFactor*w + soakHeapSlack }, 0},
	{"RSS", func(s SoakSample) float64 { return float64(s.RSS) }, 1 << 20,
		fmt.Sprintf("%.1f × warm-up max + %d MiB", soakMemoryFactor, soakRSSSlack>>20),
		func(w float64) float64 { return soakMemoryFactor*w + soakRSSSlack }, 0},
	{"open fds", func(s SoakSample) float64 { return float64(s.FDs) }, 1,
		fmt.Sprintf("%d × warm-up max + %d", soakLoadFactor, soakIdleFDSlack),
		func(w float64) float64 { return soakLoadFactor*w + soakIdleFDSlack }, soakIdleFDSlack},
}

// soakBounds are the bounds of each of soakMetrics: under load after the warm-up, and for the
// idle sample at the end (0: none).
type soakBounds struct{ load, idle [4]float64 }

func soakBoundsOf(samples []SoakSample, warmup time.Duration) soakBounds {
	var b soakBounds
	var firstIdle *SoakSample
	for i := range samples {
		if samples[i].Idle {
			firstIdle = &samples[i]
			break
		}
	}
	for i, m := range soakMetrics {
		warmMax := 0.0
		for _, s := range samples {
			if s.At <= warmup {
				warmMax = math.Max(warmMax, m.get(s))
			}
		}
		b.load[i] = m.load(warmMax)
		if m.idleSlack > 0 && firstIdle != nil {
			b.idle[i] = m.get(*firstIdle) + m.idleSlack
		}
	}
	return b
}

// WriteSoak saves the JSON and the chart into resultsDir and, when markdown is not empty,
// rewrites the soak section of that file.
func WriteSoak(r *SoakResults, resultsDir, markdown string) error {
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", resultsDir, err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the soak results: %w", err)
	}
	jsonPath := filepath.Join(resultsDir, r.RunID+".json")
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", jsonPath, err)
	}
	svgName := "soak.svg"
	if r.Short {
		svgName = "quick-soak.svg"
	}
	svgPath := filepath.Join(resultsDir, svgName)
	if err := os.WriteFile(svgPath, soakChart(r), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", svgPath, err)
	}
	if markdown == "" {
		return nil
	}
	rel := func(path string) string {
		p, err := filepath.Rel(filepath.Dir(markdown), path)
		if err != nil {
			p = path
		}
		return filepath.ToSlash(p)
	}
	return updateSection(markdown, soakBeginMarker, soakEndMarker, SoakMarkdown(r, rel(svgPath), rel(jsonPath)), true)
}

func soakWarmup(r *SoakResults) time.Duration {
	d, _ := time.ParseDuration(r.Settings.Warmup)
	return d
}

// SoakMarkdown renders the soak section with the chart svg and the results file jsonFile
// (paths relative to the markdown file).
func SoakMarkdown(r *SoakResults, svg, jsonFile string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	s := r.Settings
	p("## Soak: %s of mixed traffic, rotating STS faults, mapping edits and key rotations\n\n", s.Duration)
	p("_Generated by `make soak` (`scripts/soak.sh`, `go test -tags soak ./e2e/ -run TestSoak`; code in `e2e/soak_test.go`, " +
		"`loadtest/soak.go` and `bench/soak.go`); everything between the markers is rewritten by each full run._\n\n")
	runRows(p, r.RunID, jsonFile, r.Date, r.Commit, r.Machine, r.LoadStart, r.LoadEnd)
	p("| elapsed | %s (soak %s, plus start-up and shutdown) |\n", r.Elapsed, s.Duration)
	p("| command | `%s` |\n\n", r.Command)

	p("Real processes on loopback: etcd, kube-apiserver %s, the fake STS and EC2 over TLS, and `iamgate server` over TLS (%s, "+
		"its defaults otherwise: `-cache.ttl 2m`, `-sts.timeout 5s`, `-log.level info`) reading both a mapping file and the live "+
		"`kube-system/aws-auth` ConfigMap. "+
		"Traffic: %.0f TokenReviews/s posted straight to iamgate and %.0f SelfSubjectReviews/s through kube-apiserver, "+
		"each with a token drawn from: %s. Every %s the fake STS's fault changes (in turn: %s), the mapping file gets a new "+
		"version (every fourth with a record refused for an unknown placeholder, every seventh write a file that is not YAML "+
		"and is refused whole), and so does the ConfigMap (users, the dev role and `mapAccounts` come and go; every version "+
		"renames groups, so an answer from an old version is told from a new one); every fifth period an access key of a mapped "+
		"user is rotated at the fake STS (a new key added, the old one deleted; the client keeps sending its old token and "+
		"some freshly signed with the deleted key), and iamgate's TLS key pair is replaced by a new leaf of the same CA. "+
		"No restart, no SIGHUP.\n\n",
		s.KubeAPIServer, "`"+strings.Join(s.IAMGateFlags, "`, `")+"`", s.DirectRate, s.KubeAPIServerRate, s.Mix, s.Period, strings.Join(faultNames(s.Faults), ", "))
	p("The oracle judges every answer against the token's expected user and groups (and `extra.arn`, `extra.accessKeyId`) "+
		"under the mapping versions in force, within these windows: %s. A token that every admissible version denies (hostile, "+
		"unmapped, signed with a deleted key after its deletion, or past the revocation window) must be denied, whatever "+
		"the windows. Failed reviews (429/5xx, or kube-apiserver's 401 after its retries while a fault was in force) are "+
		"counted apart; a failed review while no disruptive fault was in force is a failure of the run.\n\n", strings.Join(s.Windows, "; "))

	p("### Checks\n\n| target | measured | |\n|---|---|---|\n")
	for _, c := range r.Checks {
		mark := "met"
		if !c.Met {
			mark = "**missed**"
		}
		p("| %s | %s | %s |\n", c.Target, c.Got, mark)
	}

	p("\n### iamgate's resources, sampled every %s\n\n", s.SampleEvery)
	p("Half-way between fault changes, plus two idle samples: before the traffic starts, and %s after it stopped and the "+
		"faults were cleared (every keep-alive connection to and from iamgate has timed out by then). Warm-up: the first %s "+
		"(one whole rotation of the faults, and the identity cache's 2-minute TTL). Under load, goroutines and fds follow "+
		"the reviews in flight, which a hung STS holds for up to 5 s (20 s when they wait for a slot, `-sts.queueWait` + `-sts.timeout`): the leak check for them is the idle sample at the end "+
		"against the one at the start. Heap from `go_memstats_heap_inuse_bytes`, goroutines from `go_goroutines`, RSS from "+
		"VmRSS and open fds from `/proc/<pid>/fd`.\n\n", s.Settle, s.Warmup)
	p("| at (m:ss) | fault | goroutines | heap in use | RSS | open fds | cached identities | reviews/s | STS calls/s | CPU |\n")
	p("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	warmup := soakWarmup(r)
	for i, x := range r.Samples {
		rate := func(get func(SoakSample) float64) string {
			if i == 0 {
				return "—"
			}
			prev := r.Samples[i-1]
			dt := (x.At - prev.At).Seconds()
			if dt <= 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f", (get(x)-get(prev))/dt)
		}
		at := fmtMinutes(x.At)
		if x.At <= warmup {
			at += " (warm-up)"
		}
		p("| %s | %s | %.0f | %.1f MiB | %.1f MiB | %d | %.0f | %s | %s | %.1f s |\n", at, x.Fault, x.Goroutines, x.HeapInuse/(1<<20),
			float64(x.RSS)/(1<<20), x.FDs, x.CacheEntries, rate(func(s SoakSample) float64 { return s.Reviews }),
			rate(func(s SoakSample) float64 { return s.STSCalls }), x.CPU.Seconds())
	}
	p("\n![iamgate's goroutines, heap, RSS and open fds over the soak](%s)\n\n", svg)

	const countTitles = "requests | allowed | denied | failed (transient) | failed while healthy | wrong user | allowed, must be denied | denied, must be allowed |\n"
	const countAlign = "--:|--:|--:|--:|--:|--:|--:|--:|\n"
	countRow := func(c SoakCount) string {
		return fmt.Sprintf("%d | %d | %d | %d | %d | %d | %d | %d |", c.Requests, c.OK, c.Denied, c.Transient, c.TransientHealthy, c.WrongUser, c.FalseAllow, c.FalseDeny)
	}
	p("### Answers, judged\n\n| path | token | " + countTitles + "|---|---|" + countAlign)
	for _, a := range r.Answers {
		p("| %s | %s | %s\n", a.Path, a.Kind, countRow(a.SoakCount))
	}
	p("| **all** | | %s\n\n", countRow(r.Totals))
	p("By the fault in force when the request was sent:\n\n| fault | " + countTitles + "|---|" + countAlign)
	for _, f := range r.ByFault {
		p("| %s | %s\n", f.Kind, countRow(f.SoakCount))
	}
	if len(r.Skipped) > 0 {
		p("\nNot sent because every worker of the path was busy (a hung STS holds reviews for up to `-sts.queueWait` + `-sts.timeout`, "+
			"and kube-apiserver retries): %s.\n", mapText(intMap(r.Skipped)))
	}

	ev := r.Events
	p("\n### Edits and rotations\n\n| event | count | iamgate followed after (p50 / max) |\n|---|--:|---|\n")
	p("| mapping file edits (fsnotify) | %d | %s |\n", ev.FileEdits, spread(ev.FilePropagation))
	p("| mapping files that are not YAML (refused whole; iamgate counted %.0f) | %d | — |\n", ev.FileRefusedWhole, ev.GarbageWrites)
	p("| aws-auth ConfigMap edits (server-side apply) | %d | %s |\n", ev.ConfigMapEdits, spread(ev.ConfigMapPropagation))
	p("| access key rotations at the fake STS | %d | judged by the oracle's revocation window |\n", ev.KeyRotations)
	p("| TLS key pair replaced (same CA) | %d | %s |\n", ev.TLSRotations, spread(ev.TLSServedAfter))
	if ev.Unmeasured > 0 {
		p("\n%d edits could not be timed: from the reload window's end until a fault's tail later, every probe answer failed (STS or EC2 faulted).\n", ev.Unmeasured)
	}
	if len(r.Wrong) > 0 {
		p("\n### Wrong answers\n\n")
		for _, w := range r.Wrong {
			p("- %s\n", w)
		}
	}
	if len(r.Notes) > 0 {
		p("\n### Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

func intMap(m map[string]int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

// faultNames returns the "name" of each fault description "name: {json}".
func faultNames(faults []string) []string {
	var out []string
	for _, f := range faults {
		name, _, _ := strings.Cut(f, ":")
		out = append(out, name)
	}
	return out
}

// fmtMinutes is d as m:ss.
func fmtMinutes(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// spread is "p50 / max" of seconds.
func spread(secs []float64) string {
	if len(secs) == 0 {
		return "—"
	}
	s := slices.Clone(secs)
	slices.Sort(s)
	return fmt.Sprintf("%.2f s / %.2f s", s[(len(s)-1)/2], s[len(s)-1])
}

// soakChart draws goroutines, heap in use, RSS and open fds over the run, one panel each, with
// the warm-up shaded, the bound under load dashed, the idle samples hollow and, for goroutines
// and fds, the bound of the idle sample at the end dotted.
func soakChart(r *SoakResults) []byte {
	warmup := soakWarmup(r)
	bounds := soakBoundsOf(r.Samples, warmup)
	const (
		width, panelH, left, right, top = 860.0, 170.0, 70.0, 150.0, 46.0
	)
	plotW, plotH := width-left-right, panelH-56
	height := top + panelH*float64(len(soakMetrics))
	tmax := 1.0
	for _, s := range r.Samples {
		tmax = math.Max(tmax, s.At.Minutes())
	}
	x := func(m float64) float64 { return left + plotW*m/tmax }
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%.0f" y="20" font-size="14" font-weight="bold">iamgate during the soak (%s): sampled every %s</text>`+"\n", left, html.EscapeString(r.Settings.Duration), html.EscapeString(r.Settings.SampleEvery))
	p(`<text x="%.0f" y="36" fill="#555">run %s; shaded: warm-up; dashed: bound under load; hollow: idle; dotted: bound when idle</text>`+"\n", left, html.EscapeString(r.RunID))
	for i, m := range soakMetrics {
		unit := ""
		if m.scale > 1 {
			unit = " MiB"
		}
		y0 := top + panelH*float64(i) + 18
		load, idle := bounds.load[i]/m.scale, bounds.idle[i]/m.scale
		ymax := load
		for _, s := range r.Samples {
			ymax = math.Max(ymax, m.get(s)/m.scale)
		}
		ymax = niceCeil(ymax * 1.05)
		y := func(v float64) float64 { return y0 + plotH - plotH*v/ymax }
		p(`<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-5, html.EscapeString(m.name))
		p(`<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#eee"/>`+"\n", left, y0, math.Max(0, x(math.Min(warmup.Minutes(), tmax))-left), plotH)
		p(`<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`+"\n", left, y0, plotW, plotH)
		for _, f := range []float64{0, 0.5, 1} {
			p(`<text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%g%s</text>`+"\n", left-6, y(f*ymax)+4, f*ymax, unit)
		}
		step := niceCeil(tmax / 5)
		for t := 0.0; t <= tmax+1e-9; t += step {
			p(`<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%g min</text>`+"\n", x(t), y0+plotH+15, t)
		}
		p(`<line x1="%.1f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#c0504d" stroke-dasharray="5,4"/>`+"\n", x(math.Min(warmup.Minutes(), tmax)), y(load), left+plotW, y(load))
		p(`<text x="%.0f" y="%.1f" fill="#c0504d">under load ≤ %.4g%s</text>`+"\n", left+plotW+6, y(load)+4, load, unit)
		if idle > 0 {
			p(`<line x1="%.1f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#2e7d32" stroke-dasharray="2,3"/>`+"\n", x(math.Min(warmup.Minutes(), tmax)), y(idle), left+plotW, y(idle))
			p(`<text x="%.0f" y="%.1f" fill="#2e7d32">idle ≤ %.4g%s</text>`+"\n", left+plotW+6, y(idle)+4, idle, unit)
		}
		var pts []string
		for _, s := range r.Samples {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.At.Minutes()), y(m.get(s)/m.scale)))
		}
		p(`<polyline fill="none" stroke="#1f4e79" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(pts, " "))
		for k, pt := range pts {
			xy := strings.Split(pt, ",")
			fill := "#1f4e79"
			if r.Samples[k].Idle {
				fill = "white"
			}
			p(`<circle cx="%s" cy="%s" r="3" fill="%s" stroke="#1f4e79"/>`+"\n", xy[0], xy[1], fill)
		}
	}
	p("</svg>\n")
	return b.Bytes()
}
