package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/internal/h2server"
	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// Mapper turns a verified identity into a Kubernetes user. The daemon calls it on every
// review, after the cache, so a mapping change applies at once even to cached identities (see
// docs/design.md: Cache and collapsing). Implementations must be safe for concurrent use; the
// returned groups may be shared and are never modified or retained by the daemon.
type Mapper interface {
	// Ready reports whether a mapping has been loaded (see docs/design.md: Listeners).
	Ready() bool
	// Map returns the user of id. An error matching mapping.ErrNotMapped, or one for which
	// mapping.IsDenial is true, is a definite denial; any other error means "cannot decide
	// now" (mapping_unavailable, 502, which kube-apiserver retries).
	Map(ctx context.Context, id *mapping.Identity) (mapping.User, error)
}

// Config is everything the daemon needs. Start from DefaultConfig; cmd/iamgate fills it from
// flags and validates it.
type Config struct {
	ClusterID    string        // -cluster.id: the x-k8s-aws-id tokens must be signed for
	Partitions   []string      // -sts.partitions: whose STS hosts tokens may name
	ExtraRegions []string      // -sts.extraRegions
	MaxClockSkew time.Duration // -token.maxClockSkew

	STS STSConfig

	CacheTTL         time.Duration // -cache.ttl, never past the token's 15 minutes
	CacheNegativeTTL time.Duration // -cache.negativeTTL
	// CacheMaxBytes (-cache.maxBytes) bounds both caches: a quarter for rejections, the rest
	// for identities.
	CacheMaxBytes int64

	// BaselinePassthrough switches off every STS protection: no identity cache, no rejection
	// cache, no collapsing of concurrent reviews of one token. Each review that passes local
	// validation makes its own STS call (still bounded by STS.MaxConcurrency and MaxQueue, but
	// neither paced after Throttling nor ordered by access key), as a webhook without them
	// would. A benchmarking baseline ONLY: loadtest's cluster scenarios run against it to show
	// what each protection is worth.
	BaselinePassthrough bool

	// ReportErrors puts the denial reason into status.error; kube-apiserver then does not
	// cache denials (see docs/design.md: The answers).
	ReportErrors bool

	// TLS serves the webhook over TLS; nil serves plain HTTP (in-process tests and benchmarks,
	// and -webhook.insecureNoTLS on loopback).
	TLS *tls.Config
	// HTTP2 offers h2 by ALPN on the TLS listener and serves the connections that take it with
	// internal/h2server, through the same review code as HTTP/1.1 (see docs/design.md:
	// Listeners). Without TLS it does nothing: plain HTTP is HTTP/1.1 only.
	HTTP2 bool

	ReadTimeout  time.Duration // -webhook.readTimeout
	WriteTimeout time.Duration // -webhook.writeTimeout
	IdleTimeout  time.Duration // -webhook.idleTimeout

	// Pprof serves /debug/pprof/ on the internal listener (-internal.pprof).
	Pprof bool

	Version string // for iamgate_build_info
	// Now is the clock of token validity and cache lifetimes; nil means time.Now.
	Now func() time.Time
	// Registry receives every metric; nil creates one. Share it with the mapping sources.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// DefaultConfig is the configuration of `iamgate server` with every flag at its default, but
// for ClusterID, which has no default and must be set. Logger, Registry and Now are nil: the
// default logger, a registry of the daemon's own and the wall clock.
func DefaultConfig() Config {
	return Config{
		Partitions:   []string{"aws"},
		MaxClockSkew: sigv4.DefaultMaxClockSkew,
		STS: STSConfig{
			Timeout:        5 * time.Second,
			QueueWait:      15 * time.Second,
			MaxConcurrency: 64,
			MaxQueue:       2048,
			VerifiedKeys:   100_000,
		},
		CacheTTL:         2 * time.Minute,
		CacheNegativeTTL: 30 * time.Second,
		CacheMaxBytes:    64 << 20,
		HTTP2:            true,
		ReadTimeout:      10 * time.Second,
		WriteTimeout:     10 * time.Second,
		IdleTimeout:      90 * time.Second,
	}
}

// maxReviewBody bounds a TokenReview body (see docs/design.md: Listeners).
const maxReviewBody = 64 << 10

// Server is the webhook daemon: a TokenReview endpoint (HTTP/1.1 by fasthttp, HTTP/2 by
// internal/h2server when TLS negotiates it) and an internal listener.
type Server struct {
	cfg      Config
	pipeline *pipeline
	mapper   Mapper
	metrics  *metrics
	// realClock: Config.Now is the wall clock, so a review reads it once, for its latency and
	// for the token's validity (the clock reads were a few percent of a cached review).
	realClock  bool
	log        *slog.Logger
	denialLogs *logLimiter // review's and mapUser's denial lines
	http       *fasthttp.Server
	h2         *h2server.Server // nil: HTTP/1.1 only
	states     sync.Pool        // *reviewState
}

// reviewState is the per-review scratch space, pooled. Nothing in it may be retained after
// the handler returns.
type reviewState struct {
	req     sigv4.Request // the validated token
	scratch []byte        // parseReview's unescaped strings
	answer  []byte        // the TokenReview answer
	body    []byte        // the request body, read by the HTTP/2 adapter
}

// New builds a Server. It validates cfg.
func New(cfg Config, mapper Mapper) (*Server, error) {
	if cfg.ClusterID == "" {
		return nil, errors.New("cannot start: the cluster ID is empty")
	}
	realClock := cfg.Now == nil
	if realClock {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.STS.MaxConcurrency <= 0 || cfg.STS.MaxQueue < 0 || cfg.STS.Timeout <= 0 || cfg.STS.QueueWait < 0 {
		return nil, errors.New("cannot start: STS concurrency and timeout must be positive, queue bounds not negative")
	}
	if cfg.BaselinePassthrough {
		cfg.STS.NoAdaptiveRate, cfg.STS.NoKeyPriority = true, true
	}
	m := newMetrics(cfg.Version, cfg.Registry)
	v, err := newVerifier(&cfg, m)
	if err != nil {
		return nil, err
	}
	// A quarter of -cache.maxBytes remembers rejections, the rest holds identities.
	rejectionBytes := cfg.CacheMaxBytes / 4
	cache, err := newIdentityCache(cfg.CacheMaxBytes-rejectionBytes, m)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		mapper: mapper,
		pipeline: &pipeline{
			verifier:    v,
			cache:       cache,
			rejections:  newRejectionCache(int(max(rejectionBytes/rejectionCost, 1024)), cfg.CacheNegativeTTL, cfg.Now, m),
			now:         cfg.Now,
			ttl:         cfg.CacheTTL,
			negativeTTL: cfg.CacheNegativeTTL,
			stsBound:    cfg.STS.QueueWait + cfg.STS.Timeout,
			metrics:     m,
			log:         cfg.Logger,
			stsLogs:     newLogLimiter(10),
			keys:        newVerifiedKeys(cfg.STS.VerifiedKeys, cfg.Now()),
			passthrough: cfg.BaselinePassthrough,
		},
		metrics:    m,
		realClock:  realClock,
		log:        cfg.Logger,
		denialLogs: newLogLimiter(10),
	}
	s.states.New = func() any { return new(reviewState) }
	s.http = &fasthttp.Server{
		Handler:                       s.handleHTTP1,
		Name:                          "iamgate",
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		MaxRequestBodySize:            maxReviewBody,
		ReadBufferSize:                8 << 10,
		DisableHeaderNamesNormalizing: true,
		NoDefaultContentType:          true,
		CloseOnShutdown:               true,
		ErrorHandler:                  s.handleTransportError,
		Logger:                        fasthttpLogger{cfg.Logger},
	}
	if cfg.HTTP2 && cfg.TLS != nil {
		s.h2 = newH2Server(s)
		// fasthttp runs the TLS handshake, then hands h2 connections to serveH2Conn.
		s.http.NextProto(h2ALPN, s.serveH2Conn)
	}
	return s, nil
}

// Registry is the daemon's metric registry (for the internal listener and for tests).
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

// Handler is the webhook's request handler, for in-memory listeners in tests and benchmarks.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handleHTTP1 }

// Serve answers TokenReviews on webhook (wrapped in TLS when configured) and serves the
// internal endpoints on internal (may be nil) until ctx is done; then it stops accepting,
// finishes the reviews in flight and returns (see docs/design.md: Listeners).
func (s *Server) Serve(ctx context.Context, webhook, internal net.Listener) error {
	var tlsConfig *tls.Config
	if s.cfg.TLS != nil {
		tlsConfig = s.cfg.TLS.Clone()
		if s.h2 != nil {
			tlsConfig.NextProtos = []string{h2ALPN, "http/1.1"}
		}
	}
	webhook = webhookListener{Listener: webhook, tls: tlsConfig, m: s.metrics}
	errc := make(chan error, 2)
	go func() { errc <- s.http.Serve(webhook) }()
	var internalSrv *http.Server
	if internal != nil {
		internalSrv = &http.Server{Handler: s.internalMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := internalSrv.Serve(internal); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("cannot serve the internal listener: %w", err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info("shutting down: draining reviews in flight")
	// Reviews waiting for an STS start get their 429 now rather than after -sts.queueWait;
	// the calls in flight finish within -sts.timeout.
	s.pipeline.sts.admission.drain()
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout+s.cfg.STS.Timeout+time.Second)
	defer cancel()
	if s.h2 != nil {
		s.h2.Drain() // GOAWAY to every HTTP/2 connection, and to those still to come
	}
	shutdownErr := s.http.ShutdownWithContext(drainCtx)
	if shutdownErr != nil && err == nil {
		err = fmt.Errorf("cannot drain reviews in flight: %w", shutdownErr)
	}
	if internalSrv != nil {
		_ = internalSrv.Shutdown(drainCtx)
	}
	s.pipeline.cache.close()
	return err
}

// handleHTTP1 is the HTTP/1.1 adapter (fasthttp) of review.
func (s *Server) handleHTTP1(ctx *fasthttp.RequestCtx) {
	s.metrics.webhookRequests[protoHTTP1].Inc()
	st := s.states.Get().(*reviewState)
	// ctx is the review's context: fasthttp's RequestCtx is done when the server shuts down.
	writeFasthttp(ctx, s.review(ctx, string(ctx.Path()), ctx.IsPost(), ctx.PostBody(), st))
	s.states.Put(st) // SetBody copied the answer
}

// writeFasthttp writes r as fasthttp's answer.
func writeFasthttp(ctx *fasthttp.RequestCtx, r reply) {
	ctx.SetStatusCode(r.status)
	if f := r.refusal; f != nil {
		if f.allow != "" {
			ctx.Response.Header.Set("Allow", f.allow)
		}
		ctx.SetContentType(textContentType)
		ctx.SetBodyString(f.text)
		return
	}
	ctx.SetContentType(jsonContentType)
	ctx.SetBody(r.body)
}

const (
	jsonContentType = "application/json"
	textContentType = "text/plain; charset=utf-8"
)

// reply is the answer to one webhook request, whatever the protocol: the HTTP/1.1 adapter
// (handleHTTP1) and the HTTP/2 one (handleHTTP2) write it as it is.
type reply struct {
	status int
	// body is the TokenReview answer (application/json); it aliases the reviewState and is
	// valid until that goes back to the pool.
	body []byte
	// refusal, when set, replaces body: the request was not a review at all.
	refusal *refusal
}

// refusal is an answer to a request that is not a review: wrong path or method, a body too
// large, unreadable or not a TokenReview.
type refusal struct {
	label  string // of iamgate_bad_requests_total
	status int
	text   string // the text/plain body
	allow  string // the Allow header, for 405
}

var (
	refusedNotFound = refusal{label: "not_found", status: http.StatusNotFound, text: "not_found\n"}
	refusedMethod   = refusal{label: "method_not_allowed", status: http.StatusMethodNotAllowed, text: "method_not_allowed\n", allow: "POST"}
	refusedTooLarge = refusal{label: "body_too_large", status: http.StatusRequestEntityTooLarge, text: "body_too_large\n"}
	refusedBadBody  = refusal{label: "bad_body", status: http.StatusBadRequest, text: "bad_body\n"}
	refusedSlowBody = refusal{label: "bad_body", status: http.StatusRequestTimeout, text: "bad_body\n"}
	// refusedHeaderTooLarge: the request's headers are over 8 KiB.
	refusedHeaderTooLarge = refusal{label: "header_too_large", status: http.StatusRequestHeaderFieldsTooLarge, text: "header_too_large\n"}
)

// refuse counts f and returns it as the reply.
func (s *Server) refuse(f *refusal) reply {
	s.metrics.badRequests[f.label].Inc()
	return reply{status: f.status, refusal: f}
}

// review answers one request, whichever protocol carried it: read review → validate token →
// cache → collapse and call STS → map → write review. The query (kube-apiserver's
// ?timeout=30s) is not part of path and is ignored. The answer is built in st.
func (s *Server) review(ctx context.Context, path string, post bool, body []byte, st *reviewState) reply {
	if path != "/authenticate" {
		return s.refuse(&refusedNotFound)
	}
	if !post {
		return s.refuse(&refusedMethod)
	}
	start := time.Now()
	var rr reviewRequest
	var err error
	rr, st.scratch, err = parseReview(body, st.scratch)
	if err != nil {
		return s.refuse(&refusedBadBody)
	}
	var (
		id       *mapping.Identity
		username string
		groups   []string
		why      = reasonNotReady
	)
	if s.mapper.Ready() {
		now := start
		if !s.realClock {
			now = s.cfg.Now()
		}
		id, why = s.pipeline.verify(rr.token, now, &st.req)
		if why == reasonAllowed {
			username, groups, why = s.mapUser(ctx, id)
		}
	}
	s.answer(st, rr.v1, why, id, username, groups)
	info := &reasons[why]
	if info.result == resultDenied && id == nil {
		s.logTokenDenial(why)
	}
	s.metrics.reviews[why].Inc()
	s.metrics.reviewDuration[info.result].Observe(time.Since(start).Seconds())
	return reply{status: info.status, body: st.answer}
}

// mapUser applies the mapping to a verified identity, on every review (see docs/design.md:
// Cache and collapsing). A denial or failure is logged at Warn with the canonical ARN: the
// operator may have to fix the mapping (see docs/design.md: Logs).
func (s *Server) mapUser(ctx context.Context, id *mapping.Identity) (string, []string, reason) {
	user, err := s.mapper.Map(ctx, id)
	switch {
	case err == nil:
		return user.Username, user.Groups, reasonAllowed
	case errors.Is(err, mapping.ErrNotMapped):
		if s.denialLogs.allow() {
			// The canonical ARN tells the operator what to add to the mapping; never the token.
			s.log.Warn("identity is not mapped", "canonicalArn", id.CanonicalARN, "reason", "not_mapped")
		}
		return "", nil, reasonNotMapped
	case mapping.IsDenial(err):
		if s.denialLogs.allow() {
			s.log.Warn("mapping gives no usable user", "canonicalArn", id.CanonicalARN, "error", err)
		}
		return "", nil, reasonMappingDenied
	default:
		if s.denialLogs.allow() {
			s.log.Warn("cannot map identity now", "canonicalArn", id.CanonicalARN, "error", err)
		}
		return "", nil, reasonMappingUnavailable
	}
}

// logTokenDenial logs at Info why a token was denied without an identity (a local rejection,
// STS's rejection, an identity iamgate refuses): its reason code, never the token; rate-limited
// with mapUser's lines (see docs/design.md: Logs).
func (s *Server) logTokenDenial(why reason) {
	if s.log.Enabled(context.Background(), slog.LevelInfo) && s.denialLogs.allow() {
		s.log.Info("token denied", "reason", reasons[why].label)
	}
}

// answer builds every TokenReview answer in st.answer: one place, one shape (see
// docs/design.md: The answers).
func (s *Server) answer(st *reviewState, v1 bool, why reason, id *mapping.Identity, username string, groups []string) {
	info := &reasons[why]
	switch info.result {
	case resultAllowed:
		st.answer = appendAllowed(st.answer[:0], v1, username, groups, id)
	case resultDenied:
		msg := ""
		if s.cfg.ReportErrors {
			msg = info.msg
		}
		st.answer = appendDenied(st.answer[:0], v1, msg)
	default:
		// Not a definite answer: kube-apiserver neither caches nor trusts a non-2xx answer,
		// and retries; status.error says why for whoever reads it.
		st.answer = appendDenied(st.answer[:0], v1, info.msg)
	}
}

// handleTransportError answers requests fasthttp could not read: too large, too slow, broken.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	s.metrics.webhookRequests[protoHTTP1].Inc()
	f := &refusedBadBody
	var netErr net.Error
	var smallBuffer *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		f = &refusedTooLarge
	case errors.As(err, &smallBuffer):
		f = &refusedHeaderTooLarge
	case errors.As(err, &netErr) && netErr.Timeout():
		f = &refusedSlowBody
	}
	if l, ok := ctx.Conn().(interface{ lingerOnClose() }); ok {
		l.lingerOnClose() // fasthttp closes the connection after this answer
	}
	writeFasthttp(ctx, s.refuse(f))
}

// fasthttpLogger routes fasthttp's own messages (connection errors) to slog at Debug: they
// are per connection. fasthttp quotes what it could not parse (a header line, up to 400
// bytes of a request), which may hold a token: redactQuoted keeps only its length.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) { // format and redact only for a reader
		l.log.Debug("fasthttp", "message", redactQuoted(fmt.Sprintf(format, args...)))
	}
}
