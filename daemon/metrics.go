package daemon

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics holds every metric of the daemon, on a registry the daemon owns, in the order of
// README's metrics table. Label sets are closed: no token, ARN or username is ever a label
// value. Each metric is declared the same way in newMetrics: a promFactory method registers it,
// and the children of a labelled one are resolved there once, so that the hot path only does
// atomic adds.
type metrics struct {
	registry *prometheus.Registry

	reviews         []prometheus.Counter // by reason (the reason fixes the result)
	reviewDuration  [numResults]prometheus.Observer
	tokenRejections []prometheus.Counter // by reason; only the token reasons are set
	badRequests     map[string]prometheus.Counter

	webhookConns              [numProtocols]prometheus.Counter
	webhookOpenConns          [numProtocols]prometheus.Gauge
	webhookRequests           [numProtocols]prometheus.Counter
	webhookTLSHandshakeErrors prometheus.Counter

	cacheHitIdentity    prometheus.Counter
	cacheHitRejected    prometheus.Counter
	cacheMisses         prometheus.Counter
	cacheEntries        prometheus.Gauge
	cacheRejectedTokens prometheus.Gauge

	stsRequests         [numSTSOutcomes]prometheus.Counter
	stsDuration         prometheus.Observer
	stsCollapsed        prometheus.Counter
	stsInflight         prometheus.Gauge
	stsConcurrencyLimit prometheus.Gauge
	stsQueueRejections  prometheus.Counter
	stsRateLimit        prometheus.Gauge
	stsRateLimited      [numKeyClasses]prometheus.Counter
}

// protocol is what a webhook connection speaks: HTTP/1.1 (fasthttp; also plain HTTP and TLS
// without ALPN) or HTTP/2 (negotiated by ALPN on the TLS listener).
type protocol uint8

const (
	protoHTTP1 protocol = iota
	protoH2
	numProtocols
)

var protocolNames = [numProtocols]string{"http/1.1", "h2"}

// badRequestReasons are the HTTP-level refusals, before any review.
var badRequestReasons = []string{"method_not_allowed", "not_found", "body_too_large", "header_too_large", "bad_body"}

// newMetrics registers the daemon's metrics on reg (a new registry when nil).
func newMetrics(version string, reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &metrics{registry: reg}
	f := promFactory{reg}

	buildInfo := f.gaugeVec("build_info", "Always 1; labels tell the iamgate version and Go version.", "version", "goversion")
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	reviews := f.counterVec("reviews_total", "TokenReviews answered, by result (allowed, denied, error) and reason; every retry of kube-apiserver after an error answer counts again.", "result", "reason")
	rejections := f.counterVec("token_rejections_total", "Tokens rejected locally before any STS call, by reason.", "reason")
	for i, r := range reasons {
		m.reviews = append(m.reviews, reviews.WithLabelValues(resultNames[r.result], r.label))
		if reason(i) >= reasonFirstToken {
			m.tokenRejections = append(m.tokenRejections, rejections.WithLabelValues(r.label))
		} else {
			m.tokenRejections = append(m.tokenRejections, nil)
		}
	}
	duration := f.histogramVec("review_duration_seconds", "Time to answer a TokenReview, by result.",
		[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}, "result")
	for r := range numResults {
		m.reviewDuration[r] = duration.WithLabelValues(resultNames[r])
	}
	bad := f.counterVec("bad_requests_total", "HTTP requests refused before a review: wrong method or path, body or headers too large, body unparseable or late.", "reason")
	m.badRequests = make(map[string]prometheus.Counter)
	for _, r := range badRequestReasons {
		m.badRequests[r] = bad.WithLabelValues(r)
	}

	conns := f.counterVec("webhook_connections_total", "Connections accepted on the webhook listener, by protocol (http/1.1, h2: negotiated by ALPN), counted once the TLS handshake is done.", "protocol")
	open := f.gaugeVec("webhook_open_connections", "Webhook connections open now, by protocol.", "protocol")
	requests := f.counterVec("webhook_requests_total", "HTTP requests on the webhook listener (on HTTP/2: streams), by protocol, refused ones included.", "protocol")
	for p := range numProtocols {
		m.webhookConns[p] = conns.WithLabelValues(protocolNames[p])
		m.webhookOpenConns[p] = open.WithLabelValues(protocolNames[p])
		m.webhookRequests[p] = requests.WithLabelValues(protocolNames[p])
	}
	m.webhookTLSHandshakeErrors = f.counter("webhook_tls_handshake_errors_total", "Webhook connections whose TLS handshake failed (a client that does not trust the certificate, a port scanner, a timeout).")

	hits := f.counterVec("cache_hits_total", "Reviews answered from the cache, by kind of entry (identity, rejected).", "kind")
	m.cacheHitIdentity = hits.WithLabelValues("identity")
	m.cacheHitRejected = hits.WithLabelValues("rejected")
	m.cacheMisses = f.counter("cache_misses_total", "Valid tokens not found in the cache.")
	m.cacheEntries = f.gauge("cache_entries", "Verified identities in the cache.")
	m.cacheRejectedTokens = f.gauge("cache_rejected_tokens", "Tokens STS rejected, remembered for -cache.negativeTTL.")

	sts := f.counterVec("sts_requests_total", "STS GetCallerIdentity calls, one HTTP attempt each (nothing retried behind this count), by outcome (identity, rejected, throttled, unavailable).", "outcome")
	for o := range numSTSOutcomes {
		m.stsRequests[o] = sts.WithLabelValues(o.String())
	}
	m.stsDuration = f.histogram("sts_request_duration_seconds", "Latency of STS GetCallerIdentity calls.",
		[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10})
	m.stsCollapsed = f.counter("sts_collapsed_total", "Reviews that missed the cache but made no STS call of their own: they shared the answer of another review's call, in flight or just ended.")
	m.stsInflight = f.gauge("sts_inflight", "STS calls in flight.")
	m.stsConcurrencyLimit = f.gauge("sts_concurrency_limit", "The -sts.maxConcurrency limit on STS calls in flight.")
	m.stsQueueRejections = f.counter("sts_queue_rejections_total", "Reviews refused with 429 without an STS call because -sts.maxConcurrency calls were in flight and -sts.maxQueue were waiting, or no slot came within -sts.queueWait, or the daemon was shutting down.")
	m.stsRateLimit = f.gauge("sts_rate_limit", "STS calls per second the adaptive rate allows since STS last answered Throttling; 0 when calls are not paced.")
	paced := f.counterVec("sts_rate_limited_total", "Reviews refused with 429 without an STS call because the adaptive rate could not start their call within -sts.queueWait, by access key (verified: STS verified it before; new).", "keys")
	for c := range numKeyClasses {
		m.stsRateLimited[c] = paced.WithLabelValues(keyClassNames[c])
	}
	return m
}

// promFactory registers iamgate_ metrics on one registry.
type promFactory struct{ reg prometheus.Registerer }

const namespace = "iamgate"

func (f promFactory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f promFactory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f promFactory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f promFactory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f promFactory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f promFactory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
