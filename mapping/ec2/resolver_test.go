package ec2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/mapping"
)

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// ec2Server is a loopback EC2 Query API answering DescribeInstances the way EC2 does: the XML
// shape; with InstanceId.N, InvalidInstanceID.NotFound for the whole call when any ID is
// unknown; with an instance-id filter, only the instances that exist. It records the IDs of
// each call, can fail every call with a 500, and can hold every call until released.
type ec2Server struct {
	URL       string
	instances map[string]string // instance ID → private DNS name
	calls     atomic.Int64
	fail      atomic.Bool // answer 500

	mu      sync.Mutex
	batches [][]string    // the IDs of each call
	release chan struct{} // if not nil, calls are answered once it is closed
}

func startEC2(tb testing.TB, instances map[string]string) *ec2Server {
	tb.Helper()
	s := &ec2Server{instances: instances}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *ec2Server) serve(w http.ResponseWriter, req *http.Request) {
	s.calls.Add(1)
	if err := req.ParseForm(); err != nil || req.Form.Get("Action") != "DescribeInstances" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if !strings.HasPrefix(req.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		http.Error(w, "unsigned", http.StatusForbidden)
		return
	}
	var ids, filtered []string
	for i := 1; ; i++ {
		v := req.Form.Get(fmt.Sprintf("InstanceId.%d", i))
		if v == "" {
			break
		}
		ids = append(ids, v)
	}
	if req.Form.Get("Filter.1.Name") == "instance-id" {
		for i := 1; ; i++ {
			v := req.Form.Get(fmt.Sprintf("Filter.1.Value.%d", i))
			if v == "" {
				break
			}
			filtered = append(filtered, v)
		}
	}
	s.mu.Lock()
	s.batches = append(s.batches, append(ids, filtered...))
	release := s.release
	s.mu.Unlock()
	if release != nil {
		<-release
	}
	if s.fail.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `<Response><Errors><Error><Code>InternalError</Code><Message>boom</Message></Error></Errors><RequestID>r</RequestID></Response>`)
		return
	}
	var b strings.Builder
	for _, id := range ids {
		dns, ok := s.instances[id]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID '%s' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>`, id)
			return
		}
		fmt.Fprintf(&b, `<item><reservationId>r-%s</reservationId><instancesSet><item><instanceId>%s</instanceId><privateDnsName>%s</privateDnsName></item></instancesSet></item>`, id, id, dns)
	}
	for _, id := range filtered {
		if dns, ok := s.instances[id]; ok { // an unknown value matches nothing, without an error
			fmt.Fprintf(&b, `<item><reservationId>r-%s</reservationId><instancesSet><item><instanceId>%s</instanceId><privateDnsName>%s</privateDnsName></item></instancesSet></item>`, id, id, dns)
		}
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet>%s</reservationSet></DescribeInstancesResponse>`, b.String())
}

// hold makes calls wait for their answer until the returned function is called.
func (s *ec2Server) hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.release = ch
	s.mu.Unlock()
	return func() { close(ch) }
}

func (s *ec2Server) Batches() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.batches))
	for i, b := range s.batches {
		out[i] = append([]string(nil), b...)
		sort.Strings(out[i])
	}
	return out
}

// startFakeEC2 serves DescribeInstances for instances from the fake STS, which accepts the
// signature of newEC2Client's key; its URL() is the endpoint.
func startFakeEC2(t *testing.T, instances ...fakests.Instance) *fakests.Server {
	t.Helper()
	srv, err := fakests.New(fakests.Config{
		Users: []fakests.User{{ARN: "arn:aws:iam::111122223333:user/iamgate", AccessKeyID: "AKIAIOSFODNN7EXAMPLE",
			SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		Instances: instances,
	}, fakests.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// newEC2Client returns the real aws-sdk-go-v2 EC2 client pointed at endpoint.
func newEC2Client(endpoint string) *awsec2.Client {
	return awsec2.New(awsec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
		Retryer:      aws.NopRetryer{},
	})
}

func newTestResolver(tb testing.TB, endpoint string, clock *fakeClock, mod func(*Config)) *Resolver {
	tb.Helper()
	cfg := Config{
		Client:        newEC2Client(endpoint),
		Now:           clock.Now,
		RatePerSecond: 1000,
		Burst:         1000,
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewResolver(cfg)
	if err != nil {
		tb.Fatalf("cannot create resolver: %s", err)
	}
	return r
}

func TestResolverCache(t *testing.T) {
	srv := startEC2(t, map[string]string{"i-0123456789abcdef0": "ip-10-0-1-23.ec2.internal"})
	clock := newFakeClock()
	r := newTestResolver(t, srv.URL, clock, nil)
	ctx := context.Background()
	f := func(wantCalls int64) {
		t.Helper()
		dns, err := r.PrivateDNSName(ctx, "i-0123456789abcdef0")
		if err != nil {
			t.Fatalf("unexpected error: %s", err)
		}
		if dns != "ip-10-0-1-23.ec2.internal" {
			t.Fatalf("unexpected name; got %q; want %q", dns, "ip-10-0-1-23.ec2.internal")
		}
		if n := srv.calls.Load(); n != wantCalls {
			t.Fatalf("unexpected DescribeInstances calls; got %d; want %d", n, wantCalls)
		}
	}
	f(1)
	f(1) // cached
	clock.Advance(59 * time.Minute)
	f(1)
	clock.Advance(2 * time.Minute) // past the 1h TTL
	f(2)
}

// TestResolverHitAllocs protects the request path of {{EC2PrivateDNSName}}: a name in the
// cache is answered without allocating (package mapping's TestLookupRenderAllocs counts what
// rendering the username adds).
func TestResolverHitAllocs(t *testing.T) {
	srv := startEC2(t, map[string]string{"i-0123456789abcdef0": "ip-10-0-1-23.ec2.internal"})
	r := newTestResolver(t, srv.URL, newFakeClock(), func(c *Config) {
		c.Metrics = NewMetrics(nil)
	})
	ctx := context.Background()
	if _, err := r.PrivateDNSName(ctx, "i-0123456789abcdef0"); err != nil { // fills the cache
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(200, func() {
		if _, err := r.PrivateDNSName(ctx, "i-0123456789abcdef0"); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("unexpected allocations of a cached lookup; got %v; want 0", n)
	}
}

// TestResolverBatching (see docs/design.md: Mapping): a lookup goes at once when no call is
// forming; the lookups that arrive while it is in flight share the next call, a full batch
// goes at once beside it, and lookups of one instance collapse into one ID of one call.
func TestResolverBatching(t *testing.T) {
	instances := map[string]string{}
	var ids []string
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("i-%017x", i+1)
		instances[id] = fmt.Sprintf("ip-10-0-0-%d.ec2.internal", i+1)
		ids = append(ids, id)
	}
	srv := startEC2(t, instances)
	release := srv.hold()
	r := newTestResolver(t, srv.URL, newFakeClock(), func(c *Config) { c.MaxBatch = 20 })
	var wg sync.WaitGroup
	errs := make(chan error, 301)
	lookup := func(id string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dns, err := r.PrivateDNSName(context.Background(), id)
			if err == nil && dns != instances[id] {
				err = fmt.Errorf("unexpected name for %s; got %q; want %q", id, dns, instances[id])
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	pending := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.pending)
	}

	lookup(ids[0]) // alone: its call goes without waiting for company
	waitFor("the first call", func() bool { return srv.calls.Load() == 1 })
	for k := 0; k < 10; k++ { // while it is in flight: 10 lookups of each instance
		for _, id := range ids {
			lookup(id)
		}
	}
	waitFor("a full batch and 9 IDs collected", func() bool { return srv.calls.Load() == 2 && pending() == 30 })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range srv.Batches() {
		sizes = append(sizes, len(b))
	}
	// The first ID alone; the first 20 of the other 29 as soon as they were 20; the last 9
	// when the first call ended (the fake records them in the order it runs them). None twice.
	sort.Ints(sizes)
	if fmt.Sprint(sizes) != "[1 9 20]" {
		t.Fatalf("unexpected batch sizes; got %v; want 1, 20 and 9", sizes)
	}
	seen := map[string]int{}
	for _, b := range srv.Batches() {
		for _, id := range b {
			seen[id]++
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("unexpected number of requests for %s; got %d; want 1", id, seen[id])
		}
	}
}

func TestResolverNotFound(t *testing.T) {
	srv := startEC2(t, map[string]string{"i-0000000000000000a": "ip-a.ec2.internal"})
	clock := newFakeClock()
	r := newTestResolver(t, srv.URL, clock, nil)
	var wg sync.WaitGroup
	var dnsA string
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		dnsA, errA = r.PrivateDNSName(context.Background(), "i-0000000000000000a")
	}()
	go func() {
		defer wg.Done()
		_, errB = r.PrivateDNSName(context.Background(), "i-0000000000000000b")
	}()
	wg.Wait()
	if errA != nil || dnsA != "ip-a.ec2.internal" {
		t.Fatalf("unexpected answer for the existing instance; got %q, %v", dnsA, errA)
	}
	if !errors.Is(errB, mapping.ErrInstanceNotFound) || !mapping.IsDenial(errB) {
		t.Fatalf("unexpected error for the missing instance; got %v; want mapping.ErrInstanceNotFound", errB)
	}
	calls := srv.calls.Load()
	// Cached as missing for NegativeTTL.
	if _, err := r.PrivateDNSName(context.Background(), "i-0000000000000000b"); !errors.Is(err, mapping.ErrInstanceNotFound) {
		t.Fatalf("unexpected error; got %v; want mapping.ErrInstanceNotFound", err)
	}
	if n := srv.calls.Load(); n != calls {
		t.Fatalf("unexpected call for a cached miss; got %d calls; want %d", n, calls)
	}
	clock.Advance(31 * time.Second)
	if _, err := r.PrivateDNSName(context.Background(), "i-0000000000000000b"); !errors.Is(err, mapping.ErrInstanceNotFound) {
		t.Fatalf("unexpected error; got %v; want mapping.ErrInstanceNotFound", err)
	}
	if n := srv.calls.Load(); n != calls+1 {
		t.Fatalf("unexpected calls after NegativeTTL; got %d; want %d", n, calls+1)
	}
}

func TestResolverErrors(t *testing.T) {
	srv := startEC2(t, map[string]string{"i-0000000000000000a": "ip-a.ec2.internal"})
	r := newTestResolver(t, srv.URL, newFakeClock(), nil)
	srv.fail.Store(true)
	_, err := r.PrivateDNSName(context.Background(), "i-0000000000000000a")
	if err == nil || mapping.IsDenial(err) {
		t.Fatalf("unexpected error for an EC2 failure; got %v; want a non-denial", err)
	}
	srv.fail.Store(false) // failures are not cached
	if dns, err := r.PrivateDNSName(context.Background(), "i-0000000000000000a"); err != nil || dns != "ip-a.ec2.internal" {
		t.Fatalf("unexpected answer after recovery; got %q, %v", dns, err)
	}
	if _, err := r.PrivateDNSName(context.Background(), "alice"); !errors.Is(err, mapping.ErrNotInstanceID) {
		t.Fatalf("unexpected error; got %v; want mapping.ErrNotInstanceID", err)
	}
	// A caller's context bounds its own wait only.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.PrivateDNSName(ctx, "i-0000000000000000c"); !errors.Is(err, context.Canceled) {
		t.Fatalf("unexpected error; got %v; want context.Canceled", err)
	}
	if _, err := NewResolver(Config{}); err == nil {
		t.Fatalf("expected an error without Client and Now")
	}
}

func TestResolverBound(t *testing.T) {
	instances := map[string]string{}
	for i := 0; i < 40; i++ {
		instances[fmt.Sprintf("i-%08x", i)] = fmt.Sprintf("ip-%d", i)
	}
	srv := startEC2(t, instances)
	r := newTestResolver(t, srv.URL, newFakeClock(), func(c *Config) {
		c.MaxEntries = 16
	})
	for id := range instances {
		if _, err := r.PrivateDNSName(context.Background(), id); err != nil {
			t.Fatalf("unexpected error: %s", err)
		}
		r.mu.Lock()
		n := len(r.cache)
		r.mu.Unlock()
		if n > 16 {
			t.Fatalf("unexpected cache size %d > MaxEntries 16", n)
		}
	}
}

// TestResolverRateLimit protects the rate limit on DescribeInstances, and the lookup
// metrics.
func TestResolverRateLimit(t *testing.T) {
	instances := map[string]string{}
	for i := 0; i < 5; i++ {
		instances[fmt.Sprintf("i-%08x", i)] = fmt.Sprintf("ip-%d", i)
	}
	srv := startEC2(t, instances)
	reg := prometheus.NewRegistry()
	r := newTestResolver(t, srv.URL, newFakeClock(), func(c *Config) {
		c.RatePerSecond = 20
		c.Burst = 1
		c.Metrics = NewMetrics(reg)
	})
	start := time.Now()
	for i := 0; i < 5; i++ {
		if _, err := r.PrivateDNSName(context.Background(), fmt.Sprintf("i-%08x", i)); err != nil {
			t.Fatalf("unexpected error: %s", err)
		}
	}
	// Five calls at 20/s with a burst of 1: at least four waits of 50ms.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Fatalf("unexpected duration of 5 rate-limited calls; got %s; want at least 200ms", d)
	}
	if _, err := r.PrivateDNSName(context.Background(), "i-00000000"); err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	f := func(result string, want float64) {
		t.Helper()
		if got := testenv.MetricValue(t, reg, "iamgate_ec2_lookups_total", "result", result); got != want {
			t.Fatalf("unexpected iamgate_ec2_lookups_total{result=%q}; got %v; want %v", result, got, want)
		}
	}
	f("fetched", 5)
	f("hit", 1)
	f("error", 0)
	if got := testenv.MetricValue(t, reg, "iamgate_ec2_lookup_duration_seconds"); got != 5 {
		t.Fatalf("unexpected iamgate_ec2_lookup_duration_seconds count; got %v; want 5", got)
	}
}

// TestResolverNodeJoinBurst protects node joins when one instance ID in a burst is unknown
// (a terminated node, a forged session name): 100 nodes look their names up at once, under the
// default rate limit (10 calls/s), against the fake STS's EC2 API, which behaves like EC2 (an
// unknown InstanceId fails a whole call; an unknown instance-id filter value matches nothing).
// Before, the unknown ID failed the batch and the resolver fell back to one call per ID under
// the rate limit (about 10 s, with nodes timing out). Now: few calls (the first lookup's alone,
// then the others batched while it is in flight; on a busy machine lookups arrive more slowly
// and take a few more, never more than the rate limiter lets through), every valid node
// resolved, the unknown one denied and cached as missing, so a retry storm costs no call.
func TestResolverNodeJoinBurst(t *testing.T) {
	var instances []fakests.Instance
	want := map[string]string{}
	for i := range 99 {
		id := fmt.Sprintf("i-%017x", 0x1000+i)
		dns := fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", i/200, i%200)
		instances = append(instances, fakests.Instance{InstanceID: id, PrivateDNSName: dns})
		want[id] = dns
	}
	const unknown = "i-0fffffffffffffff0"
	srv := startFakeEC2(t, instances...)
	reg := prometheus.NewRegistry()
	clock := newFakeClock()
	r, err := NewResolver(Config{Client: newEC2Client(srv.URL()), Now: clock.Now,
		Metrics: NewMetrics(reg)}) // default rate limit and batch size
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(ids []string) map[string]error {
		var mu sync.Mutex
		errs := map[string]error{}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dns, err := r.PrivateDNSName(context.Background(), id)
				if err == nil && dns != want[id] {
					err = fmt.Errorf("unexpected name; got %q; want %q", dns, want[id])
				}
				mu.Lock()
				errs[id] = err
				mu.Unlock()
			}()
		}
		wg.Wait()
		return errs
	}
	ids := []string{unknown}
	for id := range want {
		ids = append(ids, id)
	}
	start := time.Now()
	errs := lookup(ids)
	elapsed := time.Since(start)
	for id, err := range errs {
		switch {
		case id == unknown && (!errors.Is(err, mapping.ErrInstanceNotFound) || !mapping.IsDenial(err)):
			t.Fatalf("unexpected result for the unknown instance; got %v; want a denial mapping.ErrInstanceNotFound", err)
		case id != unknown && err != nil:
			t.Fatalf("unexpected error for %s: %s", id, err)
		}
	}
	calls := srv.Stats().Total(fakests.ActionDescribeInstances)
	// The default limiter: a burst of 5, then 10 calls/s (and one for the time between the
	// resolver's creation and start).
	if maxCalls := 6 + uint64(elapsed.Seconds()*10); calls < 1 || calls > maxCalls {
		t.Fatalf("unexpected DescribeInstances calls for a burst of 100 lookups with one unknown ID in %s; got %d; want 1 to %d", elapsed, calls, maxCalls)
	}
	if n := srv.Stats().Count(fakests.ActionDescribeInstances, fakests.OutcomeOK); n != calls {
		t.Fatalf("unexpected failed DescribeInstances calls; got %d ok of %d", n, calls)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("unexpected duration of the burst; got %s; want well under the 10 s of one call per ID", elapsed)
	}
	if got := testenv.MetricValue(t, reg, "iamgate_ec2_lookups_total", "result", "not_found"); got != 1 {
		t.Fatalf("unexpected iamgate_ec2_lookups_total{result=not_found}; got %v; want 1", got)
	}

	// The unknown ID is cached as missing: its retries cost no call until NegativeTTL passes.
	retries := make([]string, 20)
	for i := range retries {
		retries[i] = unknown
	}
	for _, err := range lookup(retries) {
		if !errors.Is(err, mapping.ErrInstanceNotFound) {
			t.Fatalf("unexpected error for a retry of the unknown instance; got %v", err)
		}
	}
	if n := srv.Stats().Total(fakests.ActionDescribeInstances); n != calls {
		t.Fatalf("unexpected calls for retries of a cached unknown ID; got %d; want %d", n, calls)
	}
	clock.Advance(31 * time.Second)
	lookup(retries)
	if n := srv.Stats().Total(fakests.ActionDescribeInstances); n != calls+1 {
		t.Fatalf("unexpected calls after NegativeTTL; got %d; want %d", n, calls+1)
	}
}
