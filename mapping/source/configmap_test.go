package source

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/mapping"
)

// apiServer is a loopback stand-in for kube-apiserver's ConfigMap endpoints in kube-system, as
// client-go's informer uses them: list, watch and watch-list (sendInitialEvents), or a 403
// Forbidden Status as the API server answers without RBAC permission, or no answer at all.
type apiServer struct {
	URL   string
	mode  atomic.Value // "forbidden", "hang" or "serve"
	data  atomic.Value // map[string]string: the aws-auth data served
	calls atomic.Int64
	stop  chan struct{}
}

func startAPIServer(tb testing.TB, mode string) *apiServer {
	tb.Helper()
	s := &apiServer{stop: make(chan struct{})}
	s.mode.Store(mode)
	s.data.Store(map[string]string{})
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(srv.Close)
	tb.Cleanup(func() { close(s.stop) }) // runs first: hanging handlers return
	s.URL = srv.URL
	return s
}

func (s *apiServer) client(tb testing.TB) kubernetes.Interface {
	tb.Helper()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: s.URL, ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (s *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if r.URL.Path != "/api/v1/namespaces/kube-system/configmaps" {
		http.NotFound(w, r)
		return
	}
	switch s.mode.Load() {
	case "forbidden":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		verb := "list"
		if r.URL.Query().Get("watch") != "" {
			verb = "watch"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
			"status": "Failure", "reason": "Forbidden", "code": 403, "details": map[string]any{"kind": "configmaps"},
			"message": `configmaps is forbidden: mapping.User "system:serviceaccount:kube-system:iamgate" cannot ` + verb +
				` resource "configmaps" in API group "" in the namespace "kube-system"`})
		return
	case "hang":
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	}
	cm := map[string]any{"kind": "ConfigMap", "apiVersion": "v1", "data": s.data.Load(),
		"metadata": map[string]any{"name": "aws-auth", "namespace": "kube-system", "resourceVersion": "7"}}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") == "" {
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "ConfigMapList", "apiVersion": "v1",
			"metadata": map[string]any{"resourceVersion": "7"}, "items": []any{cm}})
		return
	}
	enc := json.NewEncoder(w)
	if r.URL.Query().Get("sendInitialEvents") == "true" {
		_ = enc.Encode(map[string]any{"type": "ADDED", "object": cm})
		_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{"kind": "ConfigMap", "apiVersion": "v1",
			"metadata": map[string]any{"resourceVersion": "7", "annotations": map[string]string{"k8s.io/initial-events-end": "true"}}}})
	}
	w.(http.Flusher).Flush()
	select {
	case <-r.Context().Done():
	case <-s.stop:
	}
}

// TestConfigMapForbidden protects the report of an RBAC failure: the API server answers
// 403 to every list and watch. The failure is reported at once (Error log, metric, Status for
// /readyz), without exiting; once the first-read bound passes, the mapping file's records apply
// without the ConfigMap; when RBAC is fixed the ConfigMap applies with no restart.
func TestConfigMapForbidden(t *testing.T) {
	api := startAPIServer(t, "forbidden")
	reg := prometheus.NewRegistry()
	logs := &testenv.LogBuffer{}
	store := NewStore(slog.New(slog.NewJSONHandler(logs, nil)), NewMetrics(reg))
	store.register(KindFile)
	file, err := mapping.ParseDocument("file aws-auth.yaml", []byte(userDoc("alice")))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(KindFile, file); err != nil {
		t.Fatal(err)
	}
	src := NewConfigMap(api.client(t), mapping.AWSAuthNamespace, mapping.AWSAuthName, store, store.log, 0)
	const timeout = 2 * time.Second
	src.Timeout = timeout
	start := time.Now()
	testenv.Run(t, src.Run)

	testenv.WaitFor(t, "the 403 to be reported", func() bool {
		return testenv.MetricValue(t, reg, "iamgate_mapping_configmap_errors_total", "reason", "forbidden") >= 1
	})
	before := !store.Ready()
	if time.Since(start) < timeout && !before {
		t.Fatalf("unexpected Ready before the first-read bound while the ConfigMap cannot be read")
	}
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_source_failing", "source", "configmap"); got != 1 {
		t.Fatalf("unexpected iamgate_mapping_source_failing; got %v; want 1", got)
	}
	status := store.Status()
	want := "configmap kube-system/aws-auth: not loaded\n  cannot be read ("
	if !strings.Contains(status, want) || !strings.Contains(status, "forbidden (HTTP 403): iamgate's identity may not list and watch ConfigMaps") {
		t.Fatalf("unexpected Status; got %q; want the 403 explained", status)
	}
	if strings.Contains(status, "serviceaccount") {
		t.Fatalf("Status shows the API server's message: %q", status)
	}
	for _, w := range []string{`"level":"ERROR","msg":"cannot read the aws-auth ConfigMap; retrying, the last good mapping stays live"`,
		`"reason":"forbidden"`, `"error":"configmaps is forbidden: mapping.User`} {
		if !strings.Contains(logs.String(), w) {
			t.Fatalf("unexpected log; want %s in:\n%s", w, logs.String())
		}
	}

	// Past the bound, the file's records apply without the ConfigMap.
	testenv.WaitFor(t, "readiness without the ConfigMap", store.Ready)
	if time.Since(start) < timeout {
		t.Fatalf("unexpected Ready after %s, before the first-read bound %s", time.Since(start), timeout)
	}
	if got := usernameOf(t, store, aliceARN); got != "alice" {
		t.Fatalf("unexpected username; got %q; want %q", got, "alice")
	}
	if !strings.Contains(logs.String(), "the aws-auth ConfigMap could not be read in time") {
		t.Fatalf("unexpected log; want the timeout reported:\n%s", logs.String())
	}

	// RBAC fixed: the ConfigMap applies, the failure clears.
	api.data.Store(map[string]string{"mapUsers": "- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob\n"})
	api.mode.Store("serve")
	testenv.WaitFor(t, "the ConfigMap after the fix", func() bool { return usernameOf(t, store, "arn:aws:iam::111122223333:user/bob") == "bob" })
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_source_failing", "source", "configmap"); got != 0 {
		t.Fatalf("unexpected iamgate_mapping_source_failing after the fix; got %v; want 0", got)
	}
	if status := store.Status(); strings.Contains(status, "cannot be read") {
		t.Fatalf("unexpected Status after the fix: %q", status)
	}
}

// TestConfigMapNoAnswer protects the bound on an API server that never answers: after
// Timeout the source is reported as failing (timeout), and with no other source the Store is
// not ready, saying why.
func TestConfigMapNoAnswer(t *testing.T) {
	api := startAPIServer(t, "hang")
	reg := prometheus.NewRegistry()
	store := NewStore(nil, NewMetrics(reg))
	src := NewConfigMap(api.client(t), mapping.AWSAuthNamespace, mapping.AWSAuthName, store, nil, 0)
	src.Timeout = 300 * time.Millisecond
	testenv.Run(t, src.Run)
	testenv.WaitFor(t, "the timeout", func() bool {
		return testenv.MetricValue(t, reg, "iamgate_mapping_configmap_errors_total", "reason", "timeout") >= 1
	})
	if store.Ready() {
		t.Fatalf("unexpected Ready with no source loaded")
	}
	want := "configmap kube-system/aws-auth: not loaded\n  cannot be read (1 attempts failed; retrying): timeout: no answer from the API server within 300ms\n"
	if got := store.Status(); got != want {
		t.Fatalf("unexpected Status;\ngot  %q;\nwant %q", got, want)
	}
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_source_failing", "source", "configmap"); got != 1 {
		t.Fatalf("unexpected iamgate_mapping_source_failing; got %v; want 1", got)
	}
}
