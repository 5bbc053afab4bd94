package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"
	"k8s.io/klog/v2"
)

// A kube-apiserver replica, as far as bearer tokens go: what kube-apiserver builds from
// --authentication-token-webhook-config-file (k8s.io/kubernetes pkg/kubeapiserver/
// authenticator: newWebhookTokenAuthenticator). The same packages, the same calls:
//
//	clientConfig := webhookutil.LoadKubeconfig(file, customDial)   // 30 s timeout, no client QPS limit
//	auth := webhook.New(clientConfig, "v1", apiAudiences, *DefaultRetryBackoff())
//	tokencache.New(auth, false, cacheTTL, cacheTTL)                  // success and failure TTL alike
//
// DefaultRetryBackoff is 500 ms × 1.5 per step, jitter 0.2, 5 steps, on 429, 500, 504,
// connection resets and answers with Retry-After (webhook.DefaultShouldRetry); client-go's
// REST client adds its own retries of answers with Retry-After. The cache keeps successes and
// denials for cacheTTL (--authentication-token-webhook-cache-ttl, 2m by default), never errors,
// and collapses concurrent lookups of one token. kube-apiserver passes a custom dialer (the
// egress selector's); so does the model (a loopback-only one), which also gives every replica
// its own connection pool, as separate processes have.

// webhookVersion is the TokenReview version kube-apiserver sends by default.
const webhookVersion = "v1"

// webhookCounts counts the TokenReview HTTP requests the replicas send, by answer.
type webhookCounts struct {
	calls, ok, status429, status5xx, otherStatus, errors atomic.Int64

	mu       sync.Mutex
	causes   map[string]int64  // guarded by mu; requests without an answer, by cause
	examples map[string]string // guarded by mu; the first error of each cause
}

// recordError counts a request that got no answer, by cause.
func (c *webhookCounts) recordError(err error) {
	cause := errorCause(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.causes == nil {
		c.causes, c.examples = map[string]int64{}, map[string]string{}
	}
	if c.causes[cause] == 0 {
		c.examples[cause] = err.Error()
	}
	c.causes[cause]++
}

// errorNotes describes the requests without an answer, by cause, with an example each.
func (c *webhookCounts) errorNotes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var notes []string
	for cause, n := range c.causes {
		notes = append(notes, fmt.Sprintf("%d webhook requests got no answer (%s), e.g. %s", n, cause, c.examples[cause]))
	}
	slices.Sort(notes)
	return notes
}

// errorCause sorts a webhook request's error: kube-apiserver's own deadline (its 30 s request
// timeout or the 30 s bound on a lookup with its retries), the connection, or other.
func errorCause(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "kube-apiserver's deadline"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	default:
		return "other"
	}
}

// WebhookCalls is a snapshot of webhookCounts.
type WebhookCalls struct {
	Calls     int64 `json:"calls"`
	OK        int64 `json:"ok"`
	Status429 int64 `json:"status429"`
	Status5xx int64 `json:"status5xx"`
	Other     int64 `json:"otherStatus"`
	// Errors are requests without an answer (reset, refused, timeout).
	Errors int64 `json:"errors"`
}

func (c *webhookCounts) snapshot() WebhookCalls {
	return WebhookCalls{Calls: c.calls.Load(), OK: c.ok.Load(), Status429: c.status429.Load(), Status5xx: c.status5xx.Load(),
		Other: c.otherStatus.Load(), Errors: c.errors.Load()}
}

func (w WebhookCalls) sub(b WebhookCalls) WebhookCalls {
	return WebhookCalls{w.Calls - b.Calls, w.OK - b.OK, w.Status429 - b.Status429, w.Status5xx - b.Status5xx, w.Other - b.Other, w.Errors - b.Errors}
}

// countingTransport counts every request the webhook client sends.
type countingTransport struct {
	rt     http.RoundTripper
	counts *webhookCounts
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.counts.calls.Add(1)
	resp, err := t.rt.RoundTrip(req)
	switch {
	case err != nil:
		t.counts.errors.Add(1)
		t.counts.recordError(err)
	case resp.StatusCode == http.StatusOK:
		t.counts.ok.Add(1)
	case resp.StatusCode == http.StatusTooManyRequests:
		t.counts.status429.Add(1)
	case resp.StatusCode >= 500:
		t.counts.status5xx.Add(1)
	default:
		t.counts.otherStatus.Add(1)
	}
	return resp, err
}

// replicaStack is one incarnation of a replica's authenticator: a restart replaces it whole
// (an empty cache, new connections).
type replicaStack struct {
	auth authenticator.Token

	mu         sync.Mutex
	transports []*http.Transport // guarded by mu; closed when the stack is replaced
}

func (s *replicaStack) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.transports {
		t.CloseIdleConnections()
	}
}

// replica is a kube-apiserver replica; stack is swapped atomically on a restart.
type replica struct {
	stack   atomic.Pointer[replicaStack]
	factory *replicaFactory // its webhook
}

// replicaFactory builds replica stacks that point at one webhook.
type replicaFactory struct {
	kubeconfig string
	cacheTTL   time.Duration
	counts     *webhookCounts
}

// newReplicaFactory writes the webhook kubeconfig kube-apiserver would be given (plain HTTP
// to a loopback webhook URL, as the bench daemon serves it) into dir, as the i-th webhook.
func newReplicaFactory(dir string, i int, webhookURL string, cacheTTL time.Duration, counts *webhookCounts) (*replicaFactory, error) {
	path, err := writeWebhookKubeconfig(filepath.Join(dir, fmt.Sprintf("webhook-kubeconfig-%d.yaml", i)), webhookURL, "")
	if err != nil {
		return nil, err
	}
	return &replicaFactory{kubeconfig: path, cacheTTL: cacheTTL, counts: counts}, nil
}

// loopbackDial refuses every address but a loopback IP literal.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// newStack builds a fresh authenticator stack: what a (re)started kube-apiserver builds.
func (f *replicaFactory) newStack() (*replicaStack, error) {
	// A distinct dial function per stack gives it its own transport in client-go's cache.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return loopbackDial(ctx, network, addr)
	}
	cfg, err := utilwebhook.LoadKubeconfig(f.kubeconfig, dial)
	if err != nil {
		return nil, fmt.Errorf("cannot load the webhook kubeconfig: %w", err)
	}
	st := &replicaStack{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		if t, ok := rt.(*http.Transport); ok {
			st.mu.Lock()
			st.transports = append(st.transports, t)
			st.mu.Unlock()
		}
		return countingTransport{rt: rt, counts: f.counts}
	})
	auth, err := webhook.New(cfg, webhookVersion, nil, *webhook.DefaultRetryBackoff())
	if err != nil {
		return nil, fmt.Errorf("cannot build the webhook token authenticator: %w", err)
	}
	st.auth = tokencache.New(auth, false, f.cacheTTL, f.cacheTTL)
	return st, nil
}

// restart replaces r's stack with a fresh one and lets the old connections go.
func (f *replicaFactory) restart(r *replica) error {
	st, err := f.newStack()
	if err != nil {
		return err
	}
	if old := r.stack.Swap(st); old != nil {
		old.closeIdle()
	}
	return nil
}

// QuietKubernetesLogs silences klog, which k8s.io/apiserver's webhook authenticator writes an
// error line to for every failed webhook call (thousands in a storm). klog is process-wide:
// the load generator's main calls this, and the tests.
func QuietKubernetesLogs() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		_ = fs.Set(name, v)
	}
	klog.SetOutput(io.Discard)
}
