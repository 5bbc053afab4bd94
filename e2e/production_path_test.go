//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/loadtest"
	"github.com/iamgate/iamgate/sigv4"
)

// --- the production path: kube-apiserver's own webhook client, over HTTP/2 and HTTP/1.1 ---

// pathWorkers is the concurrency of the batches: requests to kube-apiserver (or reviews
// posted to iamgate) in flight at once.
const pathWorkers = 50

// pathBatch is a batch of cold reviews and what iamgate counted and spent on them.
type pathBatch struct {
	reviews  float64
	conns    map[string]float64 // connections opened, by protocol
	requests map[string]float64 // HTTP requests, by protocol
	cpu      time.Duration      // iamgate's CPU time
	status   map[int]int        // what the client got
	rate     float64            // requests per second
}

var protocols = []string{"h2", "http/1.1"}

func (b pathBatch) connsPerReview() float64 {
	return (b.conns["h2"] + b.conns["http/1.1"]) / max(1, b.reviews)
}

func (b pathBatch) cpuPerReview() float64 { return float64(b.cpu.Microseconds()) / max(1, b.reviews) }

func (b pathBatch) String() string {
	return fmt.Sprintf("%.0f reviews/s, %.0f µs of iamgate CPU per review, %.4f connections opened per review (%v h2, %v http/1.1 for %.0f reviews)",
		b.rate, b.cpuPerReview(), b.connsPerReview(), b.conns["h2"], b.conns["http/1.1"], b.reviews)
}

// coldTokens signs n tokens of alice that no cache has seen: signed for regions the rest of
// the test never uses, one second apart per region going back from now (so that every one
// stays valid for the batch).
func coldTokens(t *testing.T, regions []string, n int) []string {
	t.Helper()
	now := time.Now()
	out := make([]string, n)
	for i := range out {
		tok, err := sigv4.Presign(context.Background(), sigv4.PresignInput{
			ClusterID:   clusterID,
			Credentials: aws.Credentials{AccessKeyID: alice.akid, SecretAccessKey: alice.secret},
			Region:      regions[i%len(regions)],
			Time:        now.Add(-time.Duration(i/len(regions)) * time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = tok
	}
	return out
}

// batch sends one request per token with pathWorkers workers, paced at rate requests per
// second when rate > 0, and measures iamgate meanwhile.
// The first token goes alone and is not measured: it opens the webhook connection a running
// kube-apiserver keeps open (else the first pathWorkers requests each dial one, of which
// Go's HTTP/2 client keeps one and closes the others).
func batch(t *testing.T, g *iamgate, tokens []string, rate float64, send func(token string) (int, error)) pathBatch {
	t.Helper()
	if status, err := send(tokens[0]); err != nil || status != 200 {
		t.Fatalf("unexpected answer to the first request; got %d %v; want 200", status, err)
	}
	tokens = tokens[1:]
	p := loadtest.Process{PID: g.cmd.Process.Pid}
	b := pathBatch{conns: map[string]float64{}, requests: map[string]float64{}, status: map[int]int{}}
	for _, proto := range protocols {
		b.conns[proto] = -g.metric(t, "iamgate_webhook_connections_total", `protocol="`+proto+`"`)
		b.requests[proto] = -g.metric(t, "iamgate_webhook_requests_total", `protocol="`+proto+`"`)
	}
	b.reviews = -g.metric(t, "iamgate_reviews_total")
	cpu0, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	var pace <-chan time.Time
	if rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		pace = tick.C
	}
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range pathWorkers {
		wg.Go(func() {
			for {
				if pace != nil {
					<-pace
				}
				i := int(next.Add(1) - 1)
				if i >= len(tokens) {
					return
				}
				status, err := send(tokens[i])
				mu.Lock()
				if err != nil {
					status = -1
				}
				b.status[status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.rate = float64(len(tokens)) / time.Since(start).Seconds()
	cpu1, err := p.CPU()
	if err != nil {
		t.Fatal(err)
	}
	b.cpu = cpu1 - cpu0
	for _, proto := range protocols {
		b.conns[proto] += g.metric(t, "iamgate_webhook_connections_total", `protocol="`+proto+`"`)
		b.requests[proto] += g.metric(t, "iamgate_webhook_requests_total", `protocol="`+proto+`"`)
	}
	b.reviews += g.metric(t, "iamgate_reviews_total")
	if b.status[200] != len(tokens) {
		t.Fatalf("unexpected answers; got %v; want %d × 200", b.status, len(tokens))
	}
	return b
}

// viaKubeAPIServer sends GET /api with the token as bearer: kube-apiserver reviews it with
// iamgate through its webhook client.
func (e *env) viaKubeAPIServer(t *testing.T, kas *apiserver) func(string) (int, error) {
	t.Helper()
	c := kas.httpClient(t, e, false)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = pathWorkers
	return func(token string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, kas.url+"/api", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}

// direct posts the TokenReview to iamgate as a load generator would: HTTP/1.1 over TLS, a
// kept-alive connection per worker.
func direct(t *testing.T, g *iamgate) func(string) (int, error) {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(g.pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}, MaxIdleConnsPerHost: pathWorkers,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	return func(token string) (int, error) {
		body := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + token + `"}}`
		resp, err := c.Post("https://"+g.webhook+"/authenticate?timeout=30s", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(data, []byte(`"authenticated":true`)) {
			return 0, fmt.Errorf("unexpected answer %s", data)
		}
		return resp.StatusCode, nil
	}
}

// checkProductionPath: kube-apiserver's reviews arrive over HTTP/2, many to a connection;
// then, with iamgate restarted with -webhook.http2=false on the same address, over HTTP/1.1.
// Beside them the same number of cold reviews posted to iamgate directly, as fast as the
// client can and paced at the rate of each kube-apiserver batch (a server's CPU per request
// falls as its request rate rises). It measures connections opened and iamgate's CPU per
// review of each (one round each: make bench measures the same with interleaved rounds). It
// stops g.
func (e *env) checkProductionPath(t *testing.T, kas *apiserver, g *iamgate, webhookAddr string, restartArgs ...string) {
	const n = 2000 // and one more for the first request of each batch
	regions := [][]string{{"eu-west-1", "eu-west-2", "eu-west-3"}, {"eu-central-1", "eu-north-1", "ap-south-1"},
		{"ca-central-1", "ap-northeast-1", "us-west-2"}, {"us-east-2", "us-west-1", "sa-east-1"}, {"ap-southeast-1", "ap-southeast-2", "ap-northeast-2"}}

	t.Logf("direct: %d cold reviews posted to iamgate, %d at a time", n, pathWorkers)
	d := batch(t, g, coldTokens(t, regions[0], n+1), 0, direct(t, g))

	t.Logf("kube-apiserver: %d GET /api with cold tokens, %d at a time, iamgate offering h2", n, pathWorkers)
	h2 := batch(t, g, coldTokens(t, regions[1], n+1), 0, e.viaKubeAPIServer(t, kas))
	if h2.reviews != n || h2.requests["h2"] != n || h2.requests["http/1.1"] != 0 {
		t.Errorf("unexpected webhook requests for %d cold tokens; got %v reviews, requests by protocol %v; want %d, all h2", n, h2.reviews, h2.requests, n)
	}
	// The connection the first request opened carries every review.
	if h2.conns["h2"] > 1 || h2.conns["http/1.1"] != 0 {
		t.Errorf("unexpected connections opened for %d reviews over h2; got %v; want none (or one, after an idle timeout)", n, h2.conns)
	}
	dh2 := batch(t, g, coldTokens(t, regions[2], n+1), h2.rate, direct(t, g))

	g.stop(t)
	g1 := e.startIamgate(t, g.name+"-http1", g.pki, webhookAddr, append(restartArgs, "-webhook.http2=false")...)
	t.Logf("kube-apiserver: %d GET /api with cold tokens, %d at a time, iamgate with -webhook.http2=false", n, pathWorkers)
	h1 := batch(t, g1, coldTokens(t, regions[3], n+1), 0, e.viaKubeAPIServer(t, kas))
	if h1.reviews != n || h1.requests["http/1.1"] != n || h1.requests["h2"] != 0 {
		t.Errorf("unexpected webhook requests with -webhook.http2=false; got %v reviews, requests by protocol %v; want %d, all http/1.1", h1.reviews, h1.requests, n)
	}
	dh1 := batch(t, g1, coldTokens(t, regions[4], n+1), h1.rate, direct(t, g1))
	ratio := func(a, b pathBatch) string { return fmt.Sprintf("%.2f×", a.cpuPerReview()/b.cpuPerReview()) }
	e.results.add(t, "the production path, %d cold reviews each, %d in flight: posted directly (HTTP/1.1, kept alive): %s", n, pathWorkers, d)
	e.results.add(t, "through kube-apiserver's webhook client over h2: %s; %s the direct CPU at the same rate (%s), %s as fast as the client can",
		h2, ratio(h2, dh2), dh2, ratio(h2, d))
	e.results.add(t, "through kube-apiserver's webhook client over HTTP/1.1 (-webhook.http2=false): %s; %s the direct CPU at the same rate (%s), %s as fast as the client can",
		h1, ratio(h1, dh1), dh1, ratio(h1, d))
}
