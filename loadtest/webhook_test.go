package loadtest

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunWebhook: the webhook client authenticates every token once, counts its calls by
// status and the connections it dials: one over HTTP/2, however many reviews are in flight.
func TestRunWebhook(t *testing.T) {
	QuietKubernetesLogs()
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			var calls, http2Calls atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if r.ProtoMajor == 2 {
					http2Calls.Add(1)
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"u"}}}`))
			}))
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			defer srv.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			tokens := make([]string, 200)
			for i := range tokens {
				tokens[i] = fmt.Sprintf("k8s-aws-v1.token-%d", i)
			}
			res, err := RunWebhook(t.Context(), WebhookLoad{Name: "test", URL: srv.URL + "/authenticate", CAFile: ca,
				Tokens: tokens, Concurrency: 20, Duration: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != len(tokens) || res.Status[200] != len(tokens) || len(res.Errors) != 0 || calls.Load() != int64(len(tokens)) {
				t.Fatalf("unexpected result %+v (%d calls at the server); want %d authentications, each one call answered 200", res, calls.Load(), len(tokens))
			}
			switch {
			case h2 && (res.Connections != 1 || http2Calls.Load() != calls.Load()):
				t.Fatalf("unexpected connections over HTTP/2; got %d (%d of %d calls over HTTP/2); want 1, every call over HTTP/2", res.Connections, http2Calls.Load(), calls.Load())
			case !h2 && (res.Connections < 1 || http2Calls.Load() != 0):
				t.Fatalf("unexpected connections over HTTP/1.1; got %d (%d calls over HTTP/2)", res.Connections, http2Calls.Load())
			}
		})
	}
}
