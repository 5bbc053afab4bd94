package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/loadtest"
	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// The memory measurement fills the identity cache of an in-process daemon through the real
// review path (fasthttp over an in-memory listener → validation → cache miss → singleflight →
// the daemon's STS client over loopback → cache insert) and divides the growth of the live
// heap (after a full GC) by the number of cached entries.
//
// Two things differ from the load scenarios, to make a million distinct identities affordable
// on a laptop-sized machine, and neither changes what the cache holds:
//   - Tokens are built by formatting a presigned URL with a unique random-looking signature
//     instead of signing it: the daemon never checks signatures itself (STS does).
//   - The STS is a stub on loopback that answers every call with a distinct assumed-role
//     identity (an EC2 node role, session = instance ID), as a fleet of nodes gives, without
//     verifying the signature.

// MemoryPoint is the heap growth after Identities cached identities.
type MemoryPoint struct {
	Identities   int           `json:"identities"`
	CacheEntries float64       `json:"cacheEntries"`
	HeapGrowth   int64         `json:"heapGrowthBytes"`
	BytesPerID   float64       `json:"bytesPerIdentity"`
	Elapsed      time.Duration `json:"elapsedNs"`
}

// MemoryResult is the cache memory measurement.
type MemoryResult struct {
	CacheMaxBytes int64         `json:"cacheMaxBytes"`
	BaseHeap      int64         `json:"baseHeapBytes"`
	Points        []MemoryPoint `json:"points"`
	Method        string        `json:"method"`
	// Rereviewed tokens were reviewed a second time after the last point;
	// RereviewSTSCalls is how many of them the cache had not kept (each cost an STS call).
	Rereviewed       int    `json:"rereviewed"`
	HeapProfile      string `json:"heapProfile,omitempty"`
	RereviewSTSCalls uint64 `json:"rereviewStsCalls"`
}

const memoryMethod = "in-process daemon, real review path over an in-memory listener, stub STS on loopback; " +
	"live heap (runtime.MemStats.HeapAlloc after two GCs) growth divided by iamgate_cache_entries"

// MeasureCacheMemory caches up to the largest of points distinct identities and measures the
// heap at each point (ascending).
// When heapProfile is not empty, a heap profile (in-use space shows what the cache holds) is
// written there after the last point.
func MeasureCacheMemory(ctx context.Context, points []int, heapProfile string, progress io.Writer) (*MemoryResult, error) {
	if len(points) == 0 {
		return nil, errors.New("cannot measure cache memory: no points")
	}
	stub, stubAddr, stubCalls, err := startStubSTS()
	if err != nil {
		return nil, err
	}
	defer stub.Shutdown()

	signedAt := time.Now().UTC().Truncate(time.Second)
	now := func() time.Time { return signedAt.Add(30 * time.Second) }
	maxBytes := int64(4 << 30)
	cfg := daemon.DefaultConfig()
	cfg.ClusterID, cfg.Version, cfg.Now, cfg.Logger = "bench", "bench", now, slog.New(slog.DiscardHandler)
	cfg.STS.DialOverride, cfg.STS.InsecureHTTP = stubAddr, true
	// Every token is new: room for all of them in the cache, for as long as the measurement
	// takes, and for the calls that verify them.
	cfg.CacheMaxBytes, cfg.CacheTTL = maxBytes, 15*time.Minute
	cfg.STS.Timeout, cfg.STS.MaxConcurrency, cfg.STS.MaxQueue = 10*time.Second, 128, 100_000
	srv, err := daemon.New(cfg, allowAll{})
	if err != nil {
		return nil, err
	}
	ln := fasthttputil.NewInmemoryListener()
	sctx, cancel := context.WithCancel(context.Background())
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(sctx, ln, nil) }()
	defer func() {
		cancel()
		<-serveDone
	}()
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 1024}

	var next atomic.Int64
	const workers = 128
	// review reviews tokens [from, limit).
	review := func(from, limit int64) error {
		next.Store(from)
		var wg sync.WaitGroup
		errc := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://iamgate/authenticate")
				req.Header.SetMethod(fasthttp.MethodPost)
				req.Header.SetContentType("application/json")
				for ctx.Err() == nil {
					i := next.Add(1) - 1
					if i >= limit {
						return
					}
					req.SetBody(loadtest.ReviewBody(syntheticToken(uint64(i), signedAt)))
					if err := client.Do(req, resp); err != nil {
						errc <- fmt.Errorf("cannot review token %d: %w", i, err)
						return
					}
					if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(`"authenticated":true`)) {
						errc <- fmt.Errorf("cannot cache token %d: answer %d %.200s", i, resp.StatusCode(), resp.Body())
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return err
		}
		return ctx.Err()
	}

	// Warm the pools (connections, buffers, goroutines) before the baseline.
	const warm = 2000
	if err := review(0, warm); err != nil {
		return nil, err
	}
	res := &MemoryResult{CacheMaxBytes: maxBytes, Method: memoryMethod}
	entries0 := cacheEntries(srv)
	res.BaseHeap = liveHeap()
	start := time.Now()
	done := int64(warm)
	for _, n := range points {
		if err := review(done, int64(warm+n)); err != nil {
			return nil, err
		}
		done = int64(warm + n)
		heap := liveHeap()
		entries := cacheEntries(srv) - entries0
		p := MemoryPoint{Identities: n, CacheEntries: entries, HeapGrowth: heap - res.BaseHeap, Elapsed: time.Since(start)}
		if entries > 0 {
			p.BytesPerID = float64(int64(float64(p.HeapGrowth)/entries*10)) / 10
		}
		res.Points = append(res.Points, p)
		if progress != nil {
			fmt.Fprintf(progress, "loadtest: memory       %8d identities  %8.0f entries  %6.1f MiB heap growth  %6.0f B/identity  (%s)\n",
				n, entries, float64(p.HeapGrowth)/(1<<20), p.BytesPerID, p.Elapsed.Round(time.Second))
		}
	}
	if heapProfile != "" {
		if err := writeHeapProfile(heapProfile); err != nil {
			return nil, err
		}
		res.HeapProfile = heapProfile
	}
	// Review the first tokens again: each one the cache lost costs a new STS call.
	again := min(points[len(points)-1], 100_000)
	calls0 := stubCalls.Load()
	if err := review(warm, int64(warm+again)); err != nil {
		return nil, err
	}
	res.Rereviewed = again
	res.RereviewSTSCalls = stubCalls.Load() - calls0
	if progress != nil {
		fmt.Fprintf(progress, "loadtest: memory       reviewed the first %d tokens again: %d STS calls (tokens the cache did not keep)\n", again, res.RereviewSTSCalls)
	}
	return res, nil
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func cacheEntries(srv *daemon.Server) float64 {
	mfs, err := srv.Registry().Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "iamgate_cache_entries" && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// syntheticToken is a well-formed token, unique per i, that passes local validation; its
// signature is not a real one (the stub STS does not check it).
func syntheticToken(i uint64, at time.Time) string {
	// A 64-hex "signature" that spreads i over the whole key (splitmix64 of i, four rounds).
	var sig [64]byte
	x := i
	const hexdigits = "0123456789abcdef"
	for w := range 4 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		for j := range 16 {
			sig[w*16+j] = hexdigits[(z>>(4*j))&15]
		}
	}
	u := "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15" +
		"&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + fmt.Sprintf("AKIAMEMORY%010d", i%1e10) +
		"%2F" + at.Format("20060102") + "%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=" + at.Format("20060102T150405Z") +
		"&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=" + string(sig[:])
	return sigv4.TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(u))
}

// allowAll maps every identity to a user named after its canonical ARN (the mapping is
// applied after the cache and holds nothing per identity).
type allowAll struct{}

func (allowAll) Ready() bool { return true }

func (allowAll) Map(_ context.Context, id *mapping.Identity) (mapping.User, error) {
	return mapping.User{Username: id.CanonicalARN, Groups: []string{"system:nodes"}}, nil
}

// startStubSTS answers every GetCallerIdentity with a new EC2 node identity.
func startStubSTS() (*fasthttp.Server, string, *atomic.Uint64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, fmt.Errorf("cannot listen for the stub STS: %w", err)
	}
	n := new(atomic.Uint64)
	srv := &fasthttp.Server{
		ReadBufferSize: 32 << 10,
		Handler: func(ctx *fasthttp.RequestCtx) {
			i := n.Add(1)
			ctx.SetContentType("application/json")
			fmt.Fprintf(ctx, `{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012",`+
				`"Arn":"arn:aws:sts::123456789012:assumed-role/eks-node-role-bench/i-%017x",`+
				`"UserId":"AROAEXAMPLEBENCHROLE:i-%017x"},"ResponseMetadata":{"RequestId":"00000000-0000-0000-0000-%012x"}}}`, i, i, i)
		},
	}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), n, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create heap profile: %w", err)
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("cannot write heap profile: %w", err)
	}
	return f.Close()
}
