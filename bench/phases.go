package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iamgate/iamgate/internal/freeport"
	"github.com/iamgate/iamgate/loadtest"
)

// The phases of the load tests, in the order of phases; the production path is in
// webhook.go, the cluster model in cluster.go.

// startFakeSTS starts bin/fakests with the principals tokens are minted for.
func (b *benchRun) startFakeSTS(ctx context.Context) error {
	config := filepath.Join(b.tmp, "fakests.yaml")
	// JSON is YAML: the fake's config format, with the field names of its JSON tags.
	data, err := json.Marshal(loadtest.FakeSTSConfig(b.principals))
	if err != nil {
		return fmt.Errorf("cannot encode the fake STS config: %w", err)
	}
	if err := os.WriteFile(config, data, 0o644); err != nil {
		return fmt.Errorf("cannot write the fake STS config: %w", err)
	}
	if b.stsAddr, err = freeport.Addr(); err != nil {
		return err
	}
	b.say("starting the fake STS (%d principals) on %s", len(b.principals), b.stsAddr)
	if b.sts, err = b.startProcess("fakests", b.cfg.GeneratorCPUs, b.binary("fakests"), "-listen", b.stsAddr, "-config", config, "-log.level", "warn"); err != nil {
		return err
	}
	return b.sts.waitHTTP(ctx, "http://"+b.stsAddr+"/healthz")
}

// startTrivialServer starts the trivial TokenReview server, the limit (`loadtest trivial`).
func (b *benchRun) startTrivialServer(ctx context.Context) error {
	addr, err := freeport.Addr()
	if err != nil {
		return err
	}
	if b.trivial, err = b.startProcess("trivial", b.cfg.DaemonCPUs, b.binary("loadtest"), "trivial", "-listen", addr); err != nil {
		return err
	}
	b.trivialURL = "http://" + addr + "/authenticate"
	return b.trivial.waitHTTP(ctx, "http://"+addr+"/healthz")
}

// startDaemonUnderTest starts the daemon the load tests and the cluster model measure, and
// records where each process may run.
func (b *benchRun) startDaemonUnderTest(ctx context.Context) error {
	var err error
	if b.daemon, b.target, err = b.startDaemon(ctx, "iamgate", ""); err != nil {
		return err
	}
	b.target.Minter = &loadtest.Minter{ClusterID: clusterID, Principals: b.principals}
	b.target.Progress = b.progress
	b.target.ProfileDir = b.profileDir
	b.res.Pinning = Pinning{
		Daemon: loadtest.Process{PID: b.daemon.pid()}.CPUs(), Trivial: loadtest.Process{PID: b.trivial.pid()}.CPUs(),
		Generator: loadtest.SelfCPUs(), FakeSTS: loadtest.Process{PID: b.sts.pid()}.CPUs(),
	}
	b.say("pinning: daemon and trivial server on CPUs %s; generator, fake STS and wrk on CPUs %s", b.res.Pinning.Daemon, b.res.Pinning.Generator)
	return nil
}

// measureLimit runs the trivial server under hey with the hot scenario's settings.
func (b *benchRun) measureLimit(ctx context.Context) error {
	hotBody, err := b.target.Minter.Fresh(1, false)
	if err != nil {
		return err
	}
	b.say("limit: the trivial server under hey, c=%d, %s", concurrency, b.cfg.Duration)
	trivial := loadtest.Process{PID: b.trivial.pid()}
	cpu0, _ := trivial.CPU()
	lim, err := loadtest.Run(ctx, loadtest.Load{
		Name: "limit", URL: b.trivialURL, Bodies: loadtest.ReviewBodies(hotBody), Concurrency: concurrency,
		Requests: 10_000_000, Duration: b.cfg.Duration, Progress: b.progress,
	})
	if err != nil {
		return err
	}
	cpu1, _ := trivial.CPU()
	b.res.Limit = &LimitRun{Result: lim, ServerCPUPerReqUs: loadtest.PerOp(cpu1-cpu0, float64(lim.Requests)),
		GenCPUPerReqUs: loadtest.PerOp(lim.GeneratorCPU, float64(lim.Requests))}
	b.say("limit: %.0f rps, p50 %.3f ms, p99 %.3f ms", lim.RPS, lim.Latency.P50, lim.Latency.P99)
	return nil
}

// runScenarios runs every load scenario against the daemon, under hey.
func (b *benchRun) runScenarios(ctx context.Context) error {
	for _, sc := range scenarios(b.cfg.Duration, b.scale()) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.say("scenario %s: %s", sc.Name, sc.Description)
		rep, err := b.target.Run(ctx, sc)
		if err != nil {
			return fmt.Errorf("cannot run scenario %s: %w", sc.Name, err)
		}
		run := &ScenarioRun{Report: rep, LimitRatio: loadtest.Ratio(rep.RPS, b.res.Limit.RPS)}
		b.res.Scenarios = append(b.res.Scenarios, run)
		b.say("scenario %s: %.0f rps (%.2f of the limit), p50 %.3f ms, p99 %.3f ms, daemon %.1f µs/review, %d STS calls, status %v",
			sc.Name, rep.RPS, run.LimitRatio, rep.Latency.P50, rep.Latency.P99, rep.DaemonCPUPerRevUs, rep.STSCalls, rep.Status)
	}
	return nil
}

// runWrk measures the hot path and the limit again with wrk, a generator that costs far less
// per request than hey; without wrk, it leaves a note.
func (b *benchRun) runWrk(ctx context.Context) error {
	if _, err := loadtest.EnsureWrk(); err != nil {
		note := "wrk is missing and could not be installed, so hot-path capacity comes from hey only: " + err.Error()
		b.res.Notes = append(b.res.Notes, note)
		b.say("NOTICE: %s", note)
		return nil
	}
	hotTok, err := b.target.Minter.Fresh(1, false)
	if err != nil {
		return err
	}
	hot := loadtest.ReviewBody(hotTok[0])
	if _, err := loadtest.Run(ctx, loadtest.Load{Name: "warm-up", URL: b.target.WebhookURL, Bodies: [][]byte{hot}, Concurrency: 1, Requests: 1, Duration: time.Minute}); err != nil {
		return err
	}
	for _, w := range []struct {
		name, url string
		server    *child
	}{{"wrk-limit", b.trivialURL, b.trivial}, {"wrk-hot", b.target.WebhookURL, b.daemon}} {
		b.say("%s: wrk -t1 -c%d -d%s", w.name, concurrency, b.cfg.Duration)
		p := loadtest.Process{PID: w.server.pid()}
		profile := make(chan string, 1)
		if w.server == b.daemon {
			go func() { profile <- b.target.Profile(loadtest.Scenario{Name: w.name, Duration: b.cfg.Duration}) }()
		} else {
			profile <- ""
		}
		c0, _ := p.CPU()
		wr, err := loadtest.Wrk{URL: w.url, Body: hot, Threads: 1, Connections: concurrency, Duration: b.cfg.Duration, Dir: b.tmp}.Run(ctx)
		if err != nil {
			return err
		}
		c1, _ := p.CPU()
		run := &WrkRun{Name: w.name, Target: w.url, Result: wr, ServerCPUPerReqUs: loadtest.PerOp(c1-c0, float64(wr.Requests)), profile: <-profile}
		if len(b.res.Wrk) > 0 {
			run.LimitRatio = loadtest.Ratio(wr.RPS, b.res.Wrk[0].Result.RPS)
		}
		b.res.Wrk = append(b.res.Wrk, run)
		b.say("%s: %.0f rps, p50 %.3f ms, p99 %.3f ms, server %.1f µs/request, errors %d, non-2xx %d",
			w.name, wr.RPS, wr.Latency.P50, wr.Latency.P99, run.ServerCPUPerReqUs, wr.Errors, wr.Non2xx)
	}
	return nil
}

// runTLSHotPath runs the hot scenario once more against a daemon serving the webhook over TLS
// (iamgate init's key pair).
func (b *benchRun) runTLSHotPath(ctx context.Context) error {
	pki, err := ensurePKI(b.binary("iamgate"), b.tmp)
	if err != nil {
		return err
	}
	_, target, err := b.startDaemon(ctx, "iamgate-tls", pki)
	if err != nil {
		return err
	}
	target.Minter, target.Progress = b.target.Minter, b.target.Progress
	sc := scenarios(b.cfg.Duration, 1)[0]
	sc.Name, sc.Description, sc.Profile = "hot-tls", "one cached token, webhook over TLS (keep-alive)", false
	b.say("scenario %s: %s", sc.Name, sc.Description)
	rep, err := target.Run(ctx, sc)
	if err != nil {
		return err
	}
	b.say("scenario %s: %.0f rps, p50 %.3f ms, p99 %.3f ms, daemon %.1f µs/review", sc.Name, rep.RPS, rep.Latency.P50, rep.Latency.P99, rep.DaemonCPUPerRevUs)
	b.res.TLS = &ScenarioRun{Report: rep, LimitRatio: loadtest.Ratio(rep.RPS, b.res.Limit.RPS)}
	return nil
}

// measureMemory runs `loadtest memory`, in its own process so that nothing else lives in its
// heap, and decodes its JSON.
func (b *benchRun) measureMemory(ctx context.Context) error {
	b.say("memory: caching %v distinct identities in an in-process daemon", b.cfg.MemoryPoints)
	m, err := memoryStep(ctx, b.progress, b.binary("loadtest"), b.cfg.MemoryPoints, filepath.Join(b.profileDir, "memory-heap.pb.gz"))
	if err != nil {
		return err
	}
	b.res.Memory = m
	return nil
}

// memoryStep runs `loadtest memory` (bin) at points and decodes its JSON; heapProfile may be
// empty.
func memoryStep(ctx context.Context, progress io.Writer, bin string, points []int, heapProfile string) (*MemoryResult, error) {
	pts := make([]string, len(points))
	for i, p := range points {
		pts[i] = strconv.Itoa(p)
	}
	args := []string{"memory", "-memory.points", strings.Join(pts, ",")}
	if heapProfile != "" {
		args = append(args, "-memory.heapProfile", heapProfile)
	}
	out, err := commandOutput(ctx, progress, bin, args...)
	if err != nil {
		return nil, err
	}
	var m MemoryResult
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("cannot decode the memory result: %w", err)
	}
	return &m, nil
}

// runMicro runs the Go micro-benchmarks on every CPU while the daemon, if any, is idle.
func (b *benchRun) runMicro(ctx context.Context) error {
	b.say("micro-benchmarks: go test -bench (sigv4, sigv4/signature, daemon, mapping), %d rounds", b.cfg.MicroRounds)
	cpus := ""
	if b.cfg.DaemonCPUs != "" {
		cpus = "0-" + b.cfg.DaemonCPUs // the daemon is idle by now
	}
	b.res.MicroCPUs, b.res.MicroRounds, b.res.MicroBenchtime = cpus, b.cfg.MicroRounds, microBenchtime
	var err error
	b.res.Micro, b.res.MicroRatios, err = runGoBenchmarks(ctx, b.progress, cpus, b.cfg.MicroRounds)
	return err
}
