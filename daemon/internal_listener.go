package daemon

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// internalMux serves the operator endpoints on the internal listener: never on the webhook
// listener, which kube-apiserver (and only it) should reach. /debug/pprof/ only with
// Config.Pprof: profiles and traces are for whoever debugs, not for whoever scrapes metrics
// (the DaemonSets bind the internal listener to the node's address).
func (s *Server) internalMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		// A Mapper may describe its sources (refused records, read failures) below the verdict.
		// The verdict is read first: a mapping that becomes ready in between is then shown
		// loaded, never "ready" above a detail from before it loaded.
		ready := s.mapper.Ready()
		var detail string
		if d, ok := s.mapper.(interface{ ReadyDetail() string }); ok {
			detail = d.ReadyDetail()
		}
		if !ready {
			http.Error(w, "no mapping loaded yet\n"+detail, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n" + detail))
	})
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
