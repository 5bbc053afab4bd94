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

// Micro is one Go benchmark result (the median of its -count runs).
type Micro struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"nsPerOp"`
	BytesPerOp  float64 `json:"bytesPerOp"`
	AllocsPerOp float64 `json:"allocsPerOp"`
	Runs        int     `json:"runs"`
}

// microBenchmarks are the packages and benchmarks of the report: sigv4 validation and the
// canonical key, the fake STS's signature check, the handler's cache hit and local rejection next to their net/http
// baselines, and the mapping lookup and render (mapping's own benchmark, 10,000 records).
var microBenchmarks = []struct{ pkg, pattern string }{
	{"./sigv4", "^Benchmark(Validate|ValidateAndKey|CanonicalKey|ValidateReject|BaselineValidateAndKey)$"},
	{"./sigv4/signature", "^BenchmarkSignatureVerify$"},
	{"./daemon", "^Benchmark(HandlerCacheHit|HandlerCacheHitParallel|BaselineNetHTTPCacheHit|HandleCacheHit|HandleLocalRejection)$"},
	{"./mapping", "^BenchmarkMap$"},
}

// runGoBenchmarks runs the micro-benchmarks with go test and parses the standard benchmark lines.
// cpus, when not empty, is the taskset CPU list to run them on (every CPU: the harness itself
// is pinned to one, and its children inherit that).
func runGoBenchmarks(ctx context.Context, progress io.Writer, cpus string) ([]Micro, error) {
	var all []Micro
	for _, b := range microBenchmarks {
		args := []string{"test", "-run", "^$", "-bench", b.pattern, "-benchmem", "-count", "3", "-benchtime", "300ms", b.pkg}
		name := "go"
		if cpus != "" {
			name, args = "taskset", append([]string{"-c", cpus, "go"}, args...)
		}
		out, err := commandOutput(ctx, progress, name, args...)
		if err != nil {
			return all, fmt.Errorf("cannot run go %s: %w", strings.Join(args, " "), err)
		}
		all = append(all, parseBench(b.pkg, out)...)
	}
	return all, nil
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
