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
	if err := os.WriteFile(scriptFile, fmt.Appendf(nil, wrkScript, bodyFile), 0o644); err != nil {
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
