package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Wrk is a run of wrk (github.com/wg/wrk, from Debian), a load generator in C that is much
// cheaper per request than hey's net/http client: it shows the hot path's capacity when hey
// saturates first. It runs Threads threads and Connections connections for Duration,
// POSTing Body.
type Wrk struct {
	URL         string
	Body        []byte
	Threads     int
	Connections int
	Duration    time.Duration
	// Dir holds the Lua script and the body while wrk runs.
	Dir string
	// Tokens, when set, is a file of tokens, one a line: each request then posts a TokenReview
	// of the next token instead of Body, from line TokensFrom on (0-based), wrapping at the
	// end. Distinct tokens keep every review cold.
	Tokens     string
	TokensFrom int
}

// WrkResult is what wrk measured. Latencies come from wrk's own histogram (microseconds).
type WrkResult struct {
	Requests int           `json:"requests"`
	Elapsed  time.Duration `json:"elapsedNs"`
	RPS      float64       `json:"rps"`
	// Errors are connect, read, write and timeout errors; Non2xx counts answers with another
	// status.
	Errors       int           `json:"errors"`
	Non2xx       int           `json:"non2xx"`
	Latency      Latency       `json:"latency"`
	GeneratorCPU time.Duration `json:"generatorCpuNs"`
}

const wrkScript = `
local f = assert(io.open(%q, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
` + wrkDone

// wrkTokensScript posts a TokenReview of the next token of a file on each request. wrk loads
// the script in each thread: threads take every threads-th token, so no two send the same.
const wrkTokensScript = `
local tokens = {}
for line in io.lines(%q) do tokens[#tokens + 1] = line end
local from, n = %d, #tokens
local step, i = 1, 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local head, tail = '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"', '"}}'
local threads = 0
setup = function(thread)
  thread:set("first", threads)
  threads = threads + 1
end
init = function(args)
  i = first or 0
  step = %d
end
request = function()
  local t = tokens[(from + i) %% n + 1]
  i = i + step
  return wrk.format(nil, nil, nil, head .. t .. tail)
end
` + wrkDone

const wrkDone = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"durationUs":%%d,"errors":%%d,"non2xx":%%d,"mean":%%f,"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,"max":%%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

// EnsureWrk returns the path of wrk, installing Debian's package with apt-get when it is
// missing and this process runs as root.
func EnsureWrk() (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("cannot find wrk and cannot install it without root: run `apt-get install -y wrk`")
	}
	cmd := exec.Command("apt-get", "install", "-y", "wrk")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		upd := exec.Command("apt-get", "update")
		_ = upd.Run()
		if out2, err2 := exec.Command("apt-get", "install", "-y", "wrk").CombinedOutput(); err2 != nil {
			return "", fmt.Errorf("cannot install wrk: %w\n%s\n%s", err2, out, out2)
		}
	}
	return exec.LookPath("wrk")
}

// Run runs wrk and reads the summary its Lua done() hook prints.
func (w Wrk) Run(ctx context.Context) (WrkResult, error) {
	if err := CheckLoopbackURL(w.URL); err != nil {
		return WrkResult{}, err
	}
	bin, err := EnsureWrk()
	if err != nil {
		return WrkResult{}, err
	}
	bodyFile := filepath.Join(w.Dir, "wrk-body.json")
	scriptFile := filepath.Join(w.Dir, "wrk.lua")
	if err := os.WriteFile(bodyFile, w.Body, 0o644); err != nil {
		return WrkResult{}, fmt.Errorf("cannot write wrk body: %w", err)
	}
	script := fmt.Appendf(nil, wrkScript, bodyFile)
	if w.Tokens != "" {
		script = fmt.Appendf(nil, wrkTokensScript, w.Tokens, w.TokensFrom, max(1, w.Threads))
	}
	if err := os.WriteFile(scriptFile, script, 0o644); err != nil {
		return WrkResult{}, fmt.Errorf("cannot write wrk script: %w", err)
	}
	secs := max(1, int(w.Duration/time.Second))
	ctx, cancel := context.WithTimeout(ctx, w.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-t"+strconv.Itoa(max(1, w.Threads)), "-c"+strconv.Itoa(max(1, w.Connections)),
		"-d"+strconv.Itoa(secs)+"s", "--timeout", "10s", "-s", scriptFile, w.URL)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return WrkResult{}, fmt.Errorf("cannot run wrk: %w: %s", err, stderr.Bytes())
	}
	res, err := parseWrk(out.Bytes())
	if err != nil {
		return WrkResult{}, err
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.GeneratorCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return res, nil
}

func parseWrk(out []byte) (WrkResult, error) {
	i := bytes.Index(out, []byte("WRKJSON "))
	if i < 0 {
		return WrkResult{}, fmt.Errorf("cannot find wrk's summary in its output: %q", out)
	}
	line := out[i+len("WRKJSON "):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	var s struct {
		Requests, DurationUs, Errors, Non2xx int
		Mean                                 float64
		P50, P90, P99, P999, Max             int
	}
	if err := json.Unmarshal(line, &s); err != nil {
		return WrkResult{}, fmt.Errorf("cannot parse wrk's summary %q: %w", line, err)
	}
	us := func(v float64) float64 { return round3(v / 1000) }
	r := WrkResult{
		Requests: s.Requests,
		Elapsed:  time.Duration(s.DurationUs) * time.Microsecond,
		Errors:   s.Errors,
		Non2xx:   s.Non2xx,
		Latency: Latency{
			Mean: us(s.Mean), P50: us(float64(s.P50)), P90: us(float64(s.P90)),
			P99: us(float64(s.P99)), P999: us(float64(s.P999)), Max: us(float64(s.Max)),
		},
	}
	if r.Elapsed > 0 {
		r.RPS = round3(float64(r.Requests) / r.Elapsed.Seconds())
	}
	return r, nil
}
