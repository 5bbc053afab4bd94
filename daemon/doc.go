// Package daemon is the iamgate webhook: a TokenReview endpoint for kube-apiserver, HTTP/1.1
// served by fasthttp and, over TLS, HTTP/2 negotiated by ALPN and served by internal/h2server
// (h2.go), both through one review function; and an internal listener
// for /metrics, /healthz, /readyz and, when Config.Pprof is set, /debug/pprof/.
//
// One review goes through named stages (server.go, review):
//
//	read review (review.go, json.go) → validate token (sigv4) → cache (cache.go) →
//	collapse and call STS (pipeline.go; sts.go, stsadmission.go) → map (Mapper) →
//	write review (review.go)
//
// The connections reach review through the webhook listener (webhook_listener.go) and one
// adapter per protocol (server.go for HTTP/1.1, h2.go for HTTP/2); the operator endpoints are
// internal_listener.go's. VerifyToken (pipeline.go) verifies one token with the same validator
// and STS client, without cache or mapping, for `iamgate verify` and `iamgate explain`.
//
// Every answer is written by one function from one reason value, and one table (reasons.go)
// gives each reason its metric label, result and HTTP status. Definite denials are 200
// `authenticated:false` so that kube-apiserver caches them. "Cannot decide now" is 429
// (throttled), 502 (STS or EC2 unavailable), 504 (STS timeout) or 500 (no mapping yet), all of
// which kube-apiserver's webhook client retries with its backoff and never caches, and never
// carries Retry-After, which would multiply its calls (reasons.go says why). A bare 503 would
// not be retried at all: the user would get 401 at once.
//
// The STS client makes one HTTP attempt per call (no hidden retries), counts every call by
// outcome, and logs why a call failed (status, AWS error code, transport class), rate-limited
// and never with the token or its URL.
//
// Logs follow one rule (docs/design.md: Logs): Warn when an operator must act (an unmapped
// identity's canonical ARN, STS throttled or unavailable), Info for a client's problem (why a
// token was denied), Debug per connection, Error when iamgate is broken; never a token.
//
// Concurrency and retention: a Server is safe for concurrent use. Per-review scratch space
// (reviewState) is pooled and nothing in it outlives the handler; the identities in the cache
// are immutable and shared. The review that makes a shared STS call outlives it (collapse), and
// nothing cancels the call for the reviews that wait for it.
//
// The package reads no flags: cmd/iamgate fills Config, starting from DefaultConfig, including
// the metric registry. Config.Now is the clock of everything a token's validity and the cache
// lifetimes depend on, so that tests move it by hand; durations (a review's latency, an STS
// call's deadline, the adaptive rate, the generations of verified keys, the log rate limits)
// use the wall clock.
package daemon
