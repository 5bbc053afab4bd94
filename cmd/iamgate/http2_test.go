package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"

	"github.com/iamgate/iamgate/internal/testenv"
)

// countingAuthenticator is what kube-apiserver builds from --authentication-token-webhook-
// config-file (no token cache: every call is a review), with a dialer that counts the
// connections its client opens.
func (e *e2eEnv) countingAuthenticator(t *testing.T) (authenticator.Token, *atomic.Int64) {
	t.Helper()
	dials := new(atomic.Int64)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	cfg, err := utilwebhook.LoadKubeconfig(e.kubeconfig, dial)
	if err != nil {
		t.Fatalf("cannot load the webhook kubeconfig: %s", err)
	}
	auth, err := webhook.New(cfg, "v1", nil, *webhook.DefaultRetryBackoff())
	if err != nil {
		t.Fatalf("cannot build the webhook authenticator: %s", err)
	}
	return auth, dials
}

// metric returns the sum of the samples of name whose labels contain every one of labels.
func (e *e2eEnv) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(e.internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("cannot parse metric line %q", line)
		}
		sum += v
	}
	return sum
}

// TestWebhookClientOverHTTP2: kube-apiserver's webhook client negotiates h2 with `iamgate
// server` and sends concurrent reviews over the one connection it opened; with
// -webhook.http2=false the same client speaks HTTP/1.1 and opens a connection for every
// review in flight beyond its idle pool.
func TestWebhookClientOverHTTP2(t *testing.T) {
	const concurrent = 50
	for _, c := range []struct {
		name  string
		flags []string
		proto string
	}{
		{"HTTP/2 on (the default)", nil, "h2"},
		{"-webhook.http2=false", []string{"-webhook.http2=false"}, "http/1.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := startE2E(t, c.flags...)
			auth, dials := env.countingAuthenticator(t)
			// Distinct tokens, signed a second apart: each one a cold review and an STS call.
			tokens := make([]string, concurrent+1)
			t.Setenv("AWS_ACCESS_KEY_ID", e2eAlice.akid)
			t.Setenv("AWS_SECRET_ACCESS_KEY", e2eAlice.secret)
			for i := range tokens {
				tok, err := mintToken(t.Context(), tokenOptions{clusterID: "demo-cluster", region: "us-east-1", tokenOnly: true}, "",
					time.Now().Add(-time.Duration(i)*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				tokens[i] = strings.TrimSpace(tok)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			// One review opens the connection, as a running kube-apiserver has one open.
			if resp, ok, err := auth.AuthenticateToken(ctx, tokens[0]); err != nil || !ok || resp.User.GetName() != "alice" {
				t.Fatalf("unexpected result of the first review: %+v ok=%v err=%v", resp, ok, err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, concurrent)
			for _, tok := range tokens[1:] {
				wg.Go(func() {
					resp, ok, err := auth.AuthenticateToken(ctx, tok)
					if err != nil || !ok || resp.User.GetName() != "alice" {
						errs <- fmt.Errorf("ok=%v err=%v", ok, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("unexpected result of a concurrent review: %s", err)
			}
			reviews := env.metric(t, "iamgate_reviews_total")
			// iamgate counts a connection at the end of its TLS handshake. One the client dialed
			// but found no use for (an idle one came back first) may still be in its handshake
			// when the reviews are done, or its dial may not even have begun (the client dials on
			// a goroutine of its own): so the two counts are compared while they settle.
			testenv.WaitFor(t, "iamgate to count every connection the client dialed, once", func() bool {
				return int64(env.metric(t, "iamgate_webhook_connections_total")) == dials.Load()
			})
			conns := env.metric(t, "iamgate_webhook_connections_total", `protocol="`+c.proto+`"`)
			requests := env.metric(t, "iamgate_webhook_requests_total", `protocol="`+c.proto+`"`)
			if reviews != concurrent+1 || requests != reviews {
				t.Fatalf("unexpected reviews over %s; got %v requests, %v reviews; want %d of each", c.proto, requests, reviews, concurrent+1)
			}
			if got := env.metric(t, "iamgate_webhook_connections_total"); got != conns {
				t.Fatalf("unexpected connections of another protocol than %s: %v of %v", c.proto, got-conns, got)
			}
			t.Logf("%s: %d reviews (%d concurrent) over %v connection(s): %.3f connections per review", c.proto, int(reviews), concurrent, conns, conns/reviews)
			if c.proto == "h2" && conns != 1 {
				t.Fatalf("unexpected connections over HTTP/2; got %v; want 1 for every review", conns)
			}
			// Not iamgate's doing, but why HTTP/2 matters: Go's HTTP/1.1 client opens a connection
			// for each request that finds no idle one.
			if c.proto == "http/1.1" && conns < 2 {
				t.Fatalf("unexpected connections over HTTP/1.1; got %v; want more than 1 for %d concurrent reviews", conns, concurrent)
			}
		})
	}
}

// TestCurlHTTP1AndHTTP2: curl (libcurl with nghttp2) gets the same review answer over
// --http1.1 and --http2 from one listener.
func TestCurlHTTP1AndHTTP2(t *testing.T) {
	curl := testenv.Curl(t)
	env := startE2E(t)
	ca := filepath.Join(filepath.Dir(env.kubeconfig), "ca.pem")
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + mint(t, e2eAlice) + `"}}`
	for _, c := range []struct{ flag, wantVersion string }{{"--http1.1", "1.1"}, {"--http2", "2"}} {
		out, err := exec.Command(curl, "-sS", c.flag, "--cacert", ca, "--max-time", "30", "-X", "POST", "-H", "Content-Type: application/json",
			"--data-binary", body, "-w", `\n%{http_version} %{http_code}`, "https://"+env.webhook+"/authenticate?timeout=30s").CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", c.flag, err, out)
		}
		answer, status, _ := strings.Cut(string(out), "\n")
		if status != c.wantVersion+" 200" || !strings.Contains(answer, `"authenticated":true`) || !strings.Contains(answer, `"username":"alice"`) {
			t.Fatalf("curl %s: unexpected answer; got %q %s; want HTTP version %s, 200, alice", c.flag, status, answer, c.wantVersion)
		}
	}
	if h1, h2 := env.metric(t, "iamgate_webhook_requests_total", `protocol="http/1.1"`), env.metric(t, "iamgate_webhook_requests_total", `protocol="h2"`); h1 != 1 || h2 != 1 {
		t.Fatalf("unexpected requests by protocol; got http/1.1 %v, h2 %v; want 1 of each", h1, h2)
	}
}
