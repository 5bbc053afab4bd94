package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"

	"github.com/iamgate/iamgate/internal/kubeconfig"
)

// WebhookLoad is a closed-loop run through kube-apiserver's own webhook client: the token
// authenticator kube-apiserver builds from --authentication-token-webhook-config-file
// (k8s.io/apiserver's webhook package with its default retry backoff, behind its token
// cache; see cluster_replica.go), with a kubeconfig that trusts CAFile. Over TLS its Go
// client offers h2 by ALPN and, when the server takes it, multiplexes every review over one
// connection; over HTTP/1.1 it keeps at most 25 idle connections (client-go's
// transport cache) and dials whenever more reviews are in flight than it has idle ones.
// After a first authentication alone, Concurrency workers authenticate Tokens in turn, each
// once, until all are sent or Duration has passed.
type WebhookLoad struct {
	Name string
	// URL is the webhook, e.g. https://127.0.0.1:21362/authenticate; loopback only.
	URL string
	// CAFile is the PEM CA of the webhook's certificate; empty for plain HTTP.
	CAFile      string
	Tokens      []string
	Concurrency int
	Duration    time.Duration
	// Progress receives a progress line every 2 s; nil means none.
	Progress io.Writer
}

// WebhookAuthenticationError is the Errors key of an authentication that failed after the
// webhook client's retries (the error text may quote the token).
const WebhookAuthenticationError = "authentication failed after the webhook client's retries"

// RunWebhook performs l. Result.Requests counts authentications; Result.Status counts the
// webhook calls (retries included) by HTTP status; Result.Connections the connections the
// client dialed. It stops early when ctx is done.
func RunWebhook(ctx context.Context, l WebhookLoad) (Result, error) {
	if len(l.Tokens) == 0 || l.Concurrency < 1 || l.Duration <= 0 {
		return Result{}, errors.New("cannot run the webhook load: need tokens, concurrency ≥ 1 and a duration")
	}
	dir, err := os.MkdirTemp("", "iamgate-webhook-load-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	kubeconfigPath, err := writeWebhookKubeconfig(filepath.Join(dir, "webhook-kubeconfig.yaml"), l.URL, l.CAFile)
	if err != nil {
		return Result{}, err
	}
	var dials atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return loopbackDial(ctx, network, addr)
	}
	cfg, err := utilwebhook.LoadKubeconfig(kubeconfigPath, dial)
	if err != nil {
		return Result{}, fmt.Errorf("cannot load the webhook kubeconfig: %w", err)
	}
	var mu sync.Mutex
	status := map[int]int{}
	var transports []*http.Transport
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		if t, ok := rt.(*http.Transport); ok {
			transports = append(transports, t)
		}
		return statusCounter{rt: rt, mu: &mu, status: status}
	})
	auth, err := webhook.New(cfg, webhookVersion, nil, *webhook.DefaultRetryBackoff())
	if err != nil {
		return Result{}, fmt.Errorf("cannot build the webhook token authenticator: %w", err)
	}
	cached := tokencache.New(auth, false, 2*time.Minute, 2*time.Minute)
	defer func() {
		for _, t := range transports {
			t.CloseIdleConnections()
		}
	}()

	lats := make([]float64, len(l.Tokens))
	failed := make([]bool, len(l.Tokens))
	cpu0 := selfCPU()
	start := time.Now()
	// The first token goes alone, untimed: it opens the connection a running kube-apiserver
	// keeps open (else each of the first Concurrency requests dials one, and Go's HTTP/2
	// client keeps one of them and closes the others).
	_, ok, err := cached.AuthenticateToken(ctx, l.Tokens[0])
	failed[0] = err != nil || !ok
	var next, done atomic.Int64
	next.Store(1)
	done.Store(1)
	deadline := time.Now().Add(l.Duration)
	stopProgress := make(chan struct{})
	var progress sync.WaitGroup
	if l.Progress != nil {
		progress.Go(func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			start, last, lastAt := time.Now(), int64(0), time.Now()
			for {
				select {
				case <-stopProgress:
					return
				case now := <-t.C:
					cur := done.Load()
					fmt.Fprintf(l.Progress, "loadtest: %-14s %5.1fs/%s  %8d req  %9.0f rps\n", l.Name,
						now.Sub(start).Seconds(), l.Duration, cur, float64(cur-last)/now.Sub(lastAt).Seconds())
					last, lastAt = cur, now
				}
			}
		})
	}
	var wg sync.WaitGroup
	for range l.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= len(l.Tokens) {
					return
				}
				t0 := time.Now()
				_, ok, err := cached.AuthenticateToken(ctx, l.Tokens[i])
				lats[i] = time.Since(t0).Seconds()
				failed[i] = err != nil || !ok
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := selfCPU() - cpu0
	close(stopProgress)
	progress.Wait()

	n := int(min(next.Load(), int64(len(l.Tokens))))
	res := Result{Requests: n, Elapsed: elapsed, RPS: round3(float64(n) / elapsed.Seconds()), GeneratorCPU: cpu,
		Connections: dials.Load()}
	mu.Lock()
	res.Status = status
	mu.Unlock()
	for _, f := range failed[:n] {
		if f {
			if res.Errors == nil {
				res.Errors = map[string]int{}
			}
			res.Errors[WebhookAuthenticationError]++
		}
	}
	res.Latency = Summarize(lats[1:n])
	return res, ctx.Err()
}

// statusCounter counts every webhook call by the status of its answer (-1: no answer).
type statusCounter struct {
	rt     http.RoundTripper
	mu     *sync.Mutex
	status map[int]int
}

func (c statusCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	code := -1
	if err == nil {
		code = resp.StatusCode
	}
	c.mu.Lock()
	c.status[code]++
	c.mu.Unlock()
	return resp, err
}

// writeWebhookKubeconfig writes, at path, the kubeconfig of --authentication-token-webhook-
// config-file for a loopback webhook URL, trusting caFile (PEM) when it is not empty, and
// returns path.
func writeWebhookKubeconfig(path, webhookURL, caFile string) (string, error) {
	if err := CheckLoopbackURL(webhookURL); err != nil {
		return "", err
	}
	var caPEM []byte
	if caFile != "" {
		var err error
		if caPEM, err = os.ReadFile(caFile); err != nil {
			return "", fmt.Errorf("cannot read the webhook CA: %w", err)
		}
	}
	if err := os.WriteFile(path, kubeconfig.Webhook(webhookURL, caPEM), 0o600); err != nil {
		return "", fmt.Errorf("cannot write the webhook kubeconfig: %w", err)
	}
	return path, nil
}
