package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The Go micro-benchmarks, as `make bench` and `make microbench` (-bench.microOnly) run them:
// rounds of `go test -count 1`, each round every package in turn, so that the slow drift of a
// shared machine hits every benchmark alike. A benchmark's figures are medians over the
// rounds; a benchmark's ratio to its baseline is the median of the ratios within a round,
// where both ran within the same minute.

// Micro is one Go benchmark's medians over its runs.
type Micro struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"nsPerOp"`
	BytesPerOp  float64 `json:"bytesPerOp"`
	AllocsPerOp float64 `json:"allocsPerOp"`
	Runs        int     `json:"runs"`
}

// MicroRatio is how many times faster than its baseline a benchmark ran: the baseline's ns/op
// divided by the benchmark's in the same round, median over Rounds rounds.
type MicroRatio struct {
	Package  string  `json:"package"`
	Name     string  `json:"name"`
	Baseline string  `json:"baseline"`
	Ratio    float64 `json:"ratio"`
	Rounds   int     `json:"rounds"`
}

const (
	// defaultMicroRounds is the rounds of a run when Config.MicroRounds is 0.
	defaultMicroRounds = 6
	// microBenchtime is each benchmark's -benchtime in a round.
	microBenchtime = "500ms"
)

// microBenchmarks are the packages and benchmarks of the report: sigv4 validation and the
// canonical key, the fake STS's signature check, the handler's cache hit and local rejection,
// the mapping lookup and render (mapping's own benchmark, 10,000 records) and the reading of a
// DescribeInstances answer, each next to its baseline (see microPairs).
var microBenchmarks = []struct{ pkg, pattern string }{
	{"./sigv4", "^Benchmark(Validate|ValidateAndKey|ValidateAndKeyParallel|CanonicalKey|CanonicalKeyParallel|ValidateReject|" +
		"BaselineValidateAndKey|BaselineValidateAndKeyParallel|BaselineCanonicalKey|BaselineCanonicalKeyParallel)$"},
	{"./sigv4/signature", "^Benchmark(SignatureVerify|SignatureSDKBaseline)$"},
	{"./daemon", "^Benchmark(HandleCacheHit|HandleLocalRejection|HandlerCacheHit|HandlerCacheHitParallel|" +
		"BaselineNetHTTPCacheHit|BaselineNetHTTPCacheHitParallel)$"},
	{"./mapping", "^Benchmark(Map|MapBaseline)$"},
	{"./mapping/ec2", "^BenchmarkDescribeInstancesAnswer$"},
}

// microPairs are the benchmarks measured against a baseline, "the obvious way" of the same
// work, in the same package.
var microPairs = func() []MicroRatio {
	ps := []MicroRatio{
		{Package: "sigv4", Name: "BenchmarkValidateAndKey", Baseline: "BenchmarkBaselineValidateAndKey"},
		{Package: "sigv4", Name: "BenchmarkValidateAndKeyParallel", Baseline: "BenchmarkBaselineValidateAndKeyParallel"},
		{Package: "sigv4", Name: "BenchmarkCanonicalKey", Baseline: "BenchmarkBaselineCanonicalKey"},
		{Package: "sigv4", Name: "BenchmarkCanonicalKeyParallel", Baseline: "BenchmarkBaselineCanonicalKeyParallel"},
		{Package: "sigv4/signature", Name: "BenchmarkSignatureVerify", Baseline: "BenchmarkSignatureSDKBaseline"},
		{Package: "daemon", Name: "BenchmarkHandlerCacheHit", Baseline: "BenchmarkBaselineNetHTTPCacheHit"},
		{Package: "daemon", Name: "BenchmarkHandlerCacheHitParallel", Baseline: "BenchmarkBaselineNetHTTPCacheHitParallel"},
		{Package: "mapping/ec2", Name: "BenchmarkDescribeInstancesAnswer/sdk-call-with-reader", Baseline: "BenchmarkDescribeInstancesAnswer/sdk-call"},
	}
	for _, c := range []string{"plain", "session", "user", "unmapped"} {
		for _, sub := range []string{c, c + "-parallel"} {
			ps = append(ps, MicroRatio{Package: "mapping", Name: "BenchmarkMap/" + sub, Baseline: "BenchmarkMapBaseline/" + sub})
		}
	}
	return ps
}()

// runGoBenchmarks runs the micro-benchmarks for rounds rounds and returns their medians and
// their ratios to their baselines; after a failure, those of the rounds that ran. cpus, when
// not empty, is the taskset CPU list to run them on (every CPU: the harness itself is pinned
// to one, and its children inherit that).
func runGoBenchmarks(ctx context.Context, progress io.Writer, cpus string, rounds int) ([]Micro, []MicroRatio, error) {
	outputs := map[string][]byte{}     // by package, every round's
	var nsByRound []map[string]float64 // ns/op by package and benchmark, of each whole round
	for r := range rounds {
		fmt.Fprintf(progress, "bench: micro-benchmarks: round %d/%d\n", r+1, rounds)
		ns := map[string]float64{}
		for _, b := range microBenchmarks {
			args := []string{"test", "-run", "^$", "-bench", b.pattern, "-benchmem", "-count", "1", "-benchtime", microBenchtime, b.pkg}
			name := "go"
			if cpus != "" {
				name, args = "taskset", append([]string{"-c", cpus, "go"}, args...)
			}
			out, err := commandOutput(ctx, progress, name, args...)
			if err != nil {
				micro, ratios := summarizeMicro(outputs, nsByRound)
				return micro, ratios, fmt.Errorf("cannot run go %s: %w", strings.Join(args, " "), err)
			}
			outputs[b.pkg] = append(outputs[b.pkg], out...)
			for _, m := range parseBench(b.pkg, out) {
				ns[m.Package+" "+m.Name] = m.NsPerOp
			}
		}
		nsByRound = append(nsByRound, ns)
	}
	micro, ratios := summarizeMicro(outputs, nsByRound)
	return micro, ratios, nil
}

// summarizeMicro is the medians of each benchmark over every output, and the median ratios
// of microPairs over the rounds.
func summarizeMicro(outputs map[string][]byte, nsByRound []map[string]float64) ([]Micro, []MicroRatio) {
	var micro []Micro
	for _, b := range microBenchmarks {
		micro = append(micro, parseBench(b.pkg, outputs[b.pkg])...)
	}
	var ratios []MicroRatio
	for _, p := range microPairs {
		var rs []float64
		for _, ns := range nsByRound {
			name, base := ns[p.Package+" "+p.Name], ns[p.Package+" "+p.Baseline]
			if name > 0 && base > 0 {
				rs = append(rs, base/name)
			}
		}
		if len(rs) > 0 {
			p.Ratio, p.Rounds = median(rs), len(rs)
			ratios = append(ratios, p)
		}
	}
	return micro, ratios
}

// parseBench reads `BenchmarkX-2  N  123 ns/op  45 B/op  1 allocs/op` lines and keeps the
// median of each benchmark's runs.
func parseBench(pkg string, out []byte) []Micro {
	type runs struct{ ns, bytes, allocs []float64 }
	byName := map[string]*runs{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 && allDigits(name[i+1:]) {
			name = name[:i] // the -GOMAXPROCS suffix
		}
		r := byName[name]
		if r == nil {
			r = &runs{}
			byName[name] = r
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				r.ns = append(r.ns, v)
			case "B/op":
				r.bytes = append(r.bytes, v)
			case "allocs/op":
				r.allocs = append(r.allocs, v)
			}
		}
	}
	var res []Micro
	for _, name := range order {
		r := byName[name]
		res = append(res, Micro{Package: strings.TrimPrefix(pkg, "./"), Name: name, NsPerOp: median(r.ns),
			BytesPerOp: median(r.bytes), AllocsPerOp: median(r.allocs), Runs: len(r.ns)})
	}
	return res
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// commandOutput runs a command (stderr to progress) and returns its stdout.
func commandOutput(ctx context.Context, progress io.Writer, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = progress
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%w: %s", err, lastLines(out.Bytes(), 10))
	}
	return out.Bytes(), nil
}

// runCombined runs a command and returns its combined output.
func runCombined(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// MicroMarkdown renders the micro-benchmarks' section of BENCHMARKS.md, with the results file
// jsonFile (relative to the markdown file).
func MicroMarkdown(r *Results, jsonFile string) string {
	if len(r.Micro) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Go micro-benchmarks: time per operation\n\n")
	p("_Generated by `make microbench` (`bin/loadtest bench -bench.microOnly`) or `make bench` (code in `bench/micro.go`); " +
		"everything between the markers is rewritten by each run of the micro-benchmarks._\n\n")
	runRows(p, r.RunID, jsonFile, r.Date, r.Commit, r.Machine, r.LoadStart, r.LoadEnd)
	cpus := r.MicroCPUs
	if cpus == "" {
		cpus = "unpinned"
	}
	p("| CPUs (taskset) | %s, no daemon under load |\n", cpus)
	if r.MicroOnly {
		p("| elapsed | %s |\n", r.Elapsed)
	}
	p("\n")
	if r.MicroRounds > 0 {
		p("`go test -run '^$' -bench … -benchmem -count 1 -benchtime %s`, %d rounds: each round runs the benchmarks of sigv4, "+
			"sigv4/signature, daemon, mapping and mapping/ec2 in turn, so that the slow drift of a shared machine hits every benchmark alike. "+
			"ns/op, B/op and allocs/op are medians over the rounds; `× baseline` is the median over the rounds of the baseline's "+
			"ns/op divided by the benchmark's in the same round. The instructions per operation in the sections above come "+
			"from callgrind and do not depend on the load.\n\n", r.MicroBenchtime, r.MicroRounds)
	} else {
		p("`go test -run '^$' -bench … -benchmem -count 3 -benchtime 300ms` in sigv4, daemon and mapping, median of 3.\n\n")
	}
	vs := map[string]string{}
	for _, rt := range r.MicroRatios {
		vs[rt.Package+" "+rt.Name] = fmt.Sprintf("**%s×** faster than %s", speedupText(rt.Ratio), strings.TrimPrefix(rt.Baseline, "Benchmark"))
		vs[rt.Package+" "+rt.Baseline] = "1 (baseline)"
	}
	p("| package | benchmark | ns/op | B/op | allocs/op | × baseline |\n|---|---|--:|--:|--:|---|\n")
	for _, m := range r.Micro {
		p("| %s | %s | %.0f | %.0f | %.0f | %s |\n", m.Package, m.Name, m.NsPerOp, m.BytesPerOp, m.AllocsPerOp, vs[m.Package+" "+m.Name])
	}
	p("\n### Commands\n\n```\nmake microbench    # = bin/loadtest bench -bench.microOnly; make bench runs them too\n")
	if r.MicroRounds > 0 {
		p("# each of %d rounds:\n", r.MicroRounds)
		for _, bm := range microBenchmarks {
			p("go test -run '^$' -bench '%s' -benchmem -count 1 -benchtime %s %s\n", bm.pattern, r.MicroBenchtime, bm.pkg)
		}
	}
	p("```\n")
	return b.String()
}

// speedupText shows a ratio with three significant digits, or whole when larger.
func speedupText(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2f", r)
}
