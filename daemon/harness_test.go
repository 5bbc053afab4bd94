package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/mappingtest"
	"github.com/iamgate/iamgate/sigv4"
)

// The harness runs the real daemon against the real fake STS on loopback, with one injected
// clock for both, and the real mapping package. Only the TLS of the webhook listener is left
// out here (plain HTTP); cmd/iamgate's end-to-end test covers it with kube-apiserver's client.

const testClusterID = "demo-cluster"

var testStart = time.Date(2026, 11, 27, 1, 44, 11, 0, time.UTC)

// testClock is a clock tests move by hand. Safe for concurrent use.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *testClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// principal is a fake STS user the tests mint tokens for.
type principal struct {
	arn, akid, secret string
}

var (
	alice   = principal{"arn:aws:iam::123456789012:user/alice", "AKIAALICEALICEALICE1", "alice-secret-key"}
	mallory = principal{"arn:aws:iam::123456789012:user/mallory", "AKIAMALLORYMALLORY01", "mallory-secret-key"}
)

const testMapping = `
mapUsers:
  - userarn: arn:aws:iam::123456789012:user/alice
    username: alice
    groups: [system:masters, dev]
`

type harness struct {
	t      testing.TB
	clock  *testClock
	sts    *fakests.Server
	srv    *Server
	url    string // the webhook endpoint
	admin  string // the internal listener
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

type harnessOption func(*Config)

func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	clock := &testClock{t: testStart}
	sts, err := fakests.New(fakests.Config{}, fakests.Options{Clock: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("cannot create fake STS: %s", err)
	}
	for _, p := range []principal{alice, mallory} {
		if err := sts.AddUser(fakests.User{ARN: p.arn, AccessKeyID: p.akid, SecretAccessKey: p.secret}); err != nil {
			t.Fatal(err)
		}
	}
	stsAddr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot start fake STS: %s", err)
	}
	t.Cleanup(func() { _ = sts.Close() })

	cfg := DefaultConfig()
	cfg.ClusterID, cfg.Version, cfg.Now, cfg.Logger = testClusterID, "test", clock.Now, slog.New(slog.DiscardHandler)
	cfg.STS.DialOverride, cfg.STS.InsecureHTTP = stsAddr, true
	cfg.STS.MaxQueue = 4096
	// Shorter than the defaults, so that a test that hangs fails sooner.
	cfg.STS.Timeout = 2 * time.Second
	cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout = 5*time.Second, 5*time.Second, time.Minute
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg, mappingtest.Mapper{Table: mappingtest.Compile(t, testMapping)})
	if err != nil {
		t.Fatalf("cannot create daemon: %s", err)
	}
	h := &harness{t: t, clock: clock, sts: sts, srv: srv, done: make(chan error, 1)}
	h.start()
	return h
}

// start serves on fresh loopback listeners.
func (h *harness) start() {
	h.t.Helper()
	webhook, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	internal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.srv.Serve(ctx, webhook, internal) }()
	scheme, tr := "http", &http.Transport{MaxIdleConnsPerHost: 512}
	if h.srv.cfg.TLS != nil {
		// Over TLS the client offers h2 and http/1.1 by ALPN, as kube-apiserver's does.
		scheme, tr.TLSClientConfig, tr.ForceAttemptHTTP2 = "https", testClientTLS(), true
	}
	h.url = scheme + "://" + webhook.Addr().String() + "/authenticate?timeout=30s"
	h.admin = "http://" + internal.Addr().String()
	h.client = &http.Client{Timeout: 20 * time.Second, Transport: tr}
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		h.t.Errorf("daemon did not stop")
	}
}

// token mints a token for p at the harness clock.
func (h *harness) token(p principal) string {
	h.t.Helper()
	return h.tokenAt(p, h.clock.Now(), testClusterID)
}

func (h *harness) tokenAt(p principal, at time.Time, clusterID string) string {
	h.t.Helper()
	tok, err := sigv4.Presign(context.Background(), sigv4.PresignInput{
		ClusterID:   clusterID,
		Credentials: aws.Credentials{AccessKeyID: p.akid, SecretAccessKey: p.secret},
		Region:      "us-east-1",
		Time:        at,
	})
	if err != nil {
		h.t.Fatalf("cannot presign: %s", err)
	}
	return tok
}

// reviewAnswer is what a test reads from an answer.
type reviewAnswer struct {
	Status     int
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Review     struct {
		Authenticated bool   `json:"authenticated"`
		Error         string `json:"error"`
		User          struct {
			Username string              `json:"username"`
			UID      string              `json:"uid"`
			Groups   []string            `json:"groups"`
			Extra    map[string][]string `json:"extra"`
		} `json:"user"`
	} `json:"status"`
}

func reviewBody(apiVersion, token string) []byte {
	b, _ := json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": "TokenReview", "spec": map[string]any{"token": token}})
	return b
}

// review posts a v1 TokenReview and decodes the answer.
func (h *harness) review(token string) reviewAnswer {
	h.t.Helper()
	return h.post(reviewBody(apiVersionV1, token))
}

func (h *harness) post(body []byte) reviewAnswer {
	h.t.Helper()
	a, err := h.tryPost(body)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// tryPost is post for goroutines other than the test's.
func (h *harness) tryPost(body []byte) (reviewAnswer, error) {
	resp, err := h.client.Post(h.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return reviewAnswer{}, fmt.Errorf("cannot post review: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reviewAnswer{}, fmt.Errorf("cannot read answer: %w", err)
	}
	a := reviewAnswer{Status: resp.StatusCode}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(data, &a); err != nil {
			return reviewAnswer{}, fmt.Errorf("cannot decode answer %q: %w", data, err)
		}
	}
	return a, nil
}

// stsCalls is the number of GetCallerIdentity calls the fake STS has answered.
func (h *harness) stsCalls() uint64 {
	return h.sts.Stats().Total(fakests.ActionGetCallerIdentity)
}

// metric returns the value of one sample of the daemon's /metrics, e.g.
// `iamgate_reviews_total{reason="ok",result="allowed"}`; 0 when absent.
func (h *harness) metric(sample string) float64 {
	h.t.Helper()
	resp, err := h.client.Get(h.admin + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
