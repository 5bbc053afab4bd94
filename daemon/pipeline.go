package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// verifier is what every verification of a token needs: the local validator and the STS
// client. The webhook's pipeline puts the caches and collapsing around it; VerifyToken uses it
// alone. Safe for concurrent use.
type verifier struct {
	validator *sigv4.Validator
	sts       *stsClient
}

// newVerifier builds the verifier of cfg: the STS host allow-list of its partitions and the STS
// client, which sends cfg.ClusterID. cfg.STS must be valid (New and VerifyToken check it).
func newVerifier(cfg *Config, m *metrics) (verifier, error) {
	hosts, err := sigv4.NewAllowList(cfg.Partitions, cfg.ExtraRegions)
	if err != nil {
		return verifier{}, err
	}
	stsCfg := cfg.STS
	stsCfg.ClusterID = cfg.ClusterID
	return verifier{validator: sigv4.NewValidator(hosts, cfg.MaxClockSkew), sts: newSTSClient(stsCfg, m)}, nil
}

// identify asks STS who signed c's token and applies the identity rules (see docs/design.md:
// Identity). The error is an *STSError when the call failed, or wraps
// mapping.ErrInvalidIdentity when STS answered with an identity iamgate refuses.
func (v *verifier) identify(ctx context.Context, c *stsCall, class keyClass) (mapping.Identity, error) {
	answer, err := v.sts.getCallerIdentity(ctx, c.host, c.url, class)
	if err != nil {
		return mapping.Identity{}, err
	}
	id, err := mapping.NewIdentity(answer.Arn, answer.Account, answer.UserID, c.accessKeyID)
	if err != nil {
		return mapping.Identity{}, fmt.Errorf("STS answered with an identity iamgate refuses: %w", err)
	}
	return id, nil
}

// VerifyToken checks one token exactly as the webhook does, without cache or mapping: local
// validation (the error is a sigv4.RejectError), then STS (an *STSError), then the identity
// rules of docs/design.md, Identity (an error wrapping mapping.ErrInvalidIdentity). For
// `iamgate verify` and `iamgate explain`; cfg needs ClusterID, Partitions and STS.
func VerifyToken(ctx context.Context, cfg Config, token string, now time.Time) (mapping.Identity, error) {
	if cfg.STS.MaxConcurrency <= 0 {
		cfg.STS.MaxConcurrency = 1
	}
	v, err := newVerifier(&cfg, newMetrics("verify", prometheus.NewRegistry()))
	if err != nil {
		return mapping.Identity{}, err
	}
	var r sigv4.Request
	if err := v.validator.Validate([]byte(token), now, &r); err != nil {
		return mapping.Identity{}, err
	}
	if cfg.STS.Timeout <= 0 {
		return mapping.Identity{}, errors.New("cannot verify token: the STS timeout must be positive")
	}
	call := newSTSCall(r.CanonicalKey(), &r)
	return v.identify(ctx, &call, keyVerified)
}

// pipeline verifies a token for the webhook: validate locally → cache → collapse and call
// STS. Safe for concurrent use.
type pipeline struct {
	verifier
	cache       *identityCache
	rejections  *rejectionCache
	flights     flights
	keys        *verifiedKeys // access keys STS verified, which go first when calls wait
	now         func() time.Time
	ttl         time.Duration // -cache.ttl
	negativeTTL time.Duration // -cache.negativeTTL
	stsBound    time.Duration // the longest wait for an STS answer: -sts.queueWait + -sts.timeout
	metrics     *metrics
	log         *slog.Logger
	stsLogs     *logLimiter // STS failure lines, apart from the denial lines
	// passthrough is Config.BaselinePassthrough: no cache lookups or stores, no collapsing.
	passthrough bool
}

// flightResult is what one STS call gives every review that shares it.
type flightResult struct {
	id     *mapping.Identity
	reason reason
}

// verify returns the identity behind token at time now, or the reason there is none. r is the
// caller's scratch Request; nothing derived from it outlives the call.
func (p *pipeline) verify(token []byte, now time.Time, r *sigv4.Request) (*mapping.Identity, reason) {
	if err := p.validator.Validate(token, now, r); err != nil {
		reason := tokenReason(err)
		p.metrics.tokenRejections[reason].Inc()
		return nil, reason
	}
	key := r.CanonicalKey()
	var gen uint64
	if !p.passthrough {
		gen = p.cache.generation()
		if e, ok := p.cache.get(&key, now); ok {
			p.metrics.cacheHitIdentity.Inc()
			return &e.id, reasonAllowed
		}
		if why, ok := p.rejections.get(&key, now); ok {
			p.metrics.cacheHitRejected.Inc()
			return nil, why
		}
	}
	p.metrics.cacheMisses.Inc()
	call := newSTSCall(key, r)
	if p.passthrough {
		fr := p.callSTS(&call)
		return fr.id, fr.reason
	}
	return p.collapse(&call, gen, now)
}

// collapse makes at most one STS call per canonical key at a time (see docs/design.md: Cache
// and collapsing): the review that finds no call in flight for its key makes it, on its own
// goroutine, and the reviews of the same key that arrive meanwhile wait for it and share its
// answer. Nothing cancels a call: getCallerIdentity bounds it by -sts.queueWait and -sts.timeout
// whatever the reviews do. gen is the identity cache's generation read before the review
// missed it at now.
func (p *pipeline) collapse(c *stsCall, gen uint64, now time.Time) (*mapping.Identity, reason) {
	f, started := p.flights.join(&c.key)
	if !started {
		p.metrics.stsCollapsed.Inc() // this review made no STS call of its own
		return f.wait(p.stsBound + time.Second)
	}
	// A review that missed the caches just before the previous flight of this key stored its
	// answer starts a flight of its own after that one ended: look again first, so that one
	// token costs one STS call however the reviews interleave.
	landed := false
	defer func() {
		if !landed { // callSTS panicked: the reviews waiting get an error, not a hang
			p.flights.land(&c.key, f, flightResult{reason: reasonSTSUnavailable})
		}
	}()
	fr, cached := p.cachedAnswer(&c.key, gen, now)
	if cached {
		p.metrics.stsCollapsed.Inc()
	} else {
		fr = p.callSTS(c)
	}
	p.flights.land(&c.key, f, fr)
	landed = true
	return fr.id, fr.reason
}

// flights are the STS calls in progress, one at most per canonical key. Safe for concurrent
// use.
type flights struct {
	mu    sync.Mutex
	byKey map[sigv4.Key]*flight // guarded by mu
}

// flight is one STS call in progress. res is written once, before done is closed.
type flight struct {
	done chan struct{} // made by the first review that waits: most flights have none; guarded by flights.mu
	res  flightResult
}

// join returns the flight in progress for key, or starts one (started): the caller must then
// land it.
func (fs *flights) join(key *sigv4.Key) (f *flight, started bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f = fs.byKey[*key]; f != nil {
		if f.done == nil {
			f.done = make(chan struct{})
		}
		return f, false
	}
	if fs.byKey == nil {
		fs.byKey = make(map[sigv4.Key]*flight)
	}
	f = &flight{}
	fs.byKey[*key] = f
	return f, true
}

// land ends the flight f of key with res and wakes the reviews waiting for it.
func (fs *flights) land(key *sigv4.Key, f *flight, res flightResult) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.byKey, *key)
	f.res = res
	if f.done != nil {
		close(f.done)
	}
}

// wait waits for the flight's answer; after timeout (a safety net, not a path: getCallerIdentity
// bounds the wait for a start by -sts.queueWait and the call by -sts.timeout) it gives up with
// reasonSTSTimeout.
func (f *flight) wait(timeout time.Duration) (*mapping.Identity, reason) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-f.done:
		return f.res.id, f.res.reason
	case <-timer.C:
		return nil, reasonSTSTimeout
	}
}

// cachedAnswer is the answer the caches hold for key at now, if any, for a review that missed
// them at now after the identity cache's generation gen.
func (p *pipeline) cachedAnswer(key *sigv4.Key, gen uint64, now time.Time) (flightResult, bool) {
	if e, ok := p.cache.getSince(key, now, gen); ok {
		return flightResult{id: &e.id, reason: reasonAllowed}, true
	}
	if why, ok := p.rejections.get(key, now); ok {
		return flightResult{reason: why}, true
	}
	return flightResult{}, false
}

// stsCall is what one STS call needs of a validated token. url aliases the review's
// sigv4.Request: the review that makes the call outlives it (collapse), and the reviews that
// share it never read it.
type stsCall struct {
	key         sigv4.Key
	host        string // from the allow-list
	url         []byte
	accessKeyID string
	expiresAt   time.Time // when STS stops honouring the token
}

func newSTSCall(key sigv4.Key, r *sigv4.Request) stsCall {
	return stsCall{
		key:         key,
		host:        r.Host(),
		url:         r.URL(),
		accessKeyID: string(r.AccessKeyID()),
		expiresAt:   r.ExpiresAt(),
	}
}

// cacheUntil is when an answer about c's token learnt at now leaves the caches: after ttl, and
// never past the moment STS would stop honouring the token (see docs/design.md: Cache and
// collapsing).
func (c *stsCall) cacheUntil(now time.Time, ttl time.Duration) time.Time {
	if until := now.Add(ttl); until.Before(c.expiresAt) {
		return until
	}
	return c.expiresAt
}

// callSTS asks STS who signed c's token and caches the definite answers, an identity or a
// rejection (see docs/design.md: Cache and collapsing); with passthrough it caches nothing.
func (p *pipeline) callSTS(c *stsCall) flightResult {
	// getCallerIdentity bounds the wait and the call itself: a context with that deadline
	// would add a timer and two allocations per call, and nothing to cancel.
	verified, err := p.identify(context.Background(), c, p.keys.class(c.accessKeyID))
	now := p.now()
	if err != nil {
		why := p.failureReason(c, err)
		if (why == reasonSTSRejected || why == reasonBadIdentity) && !p.passthrough {
			p.rejections.set(c.key, why, c.cacheUntil(now, p.negativeTTL), now)
		}
		return flightResult{reason: why}
	}
	p.keys.add(c.accessKeyID, now)
	e := &cacheEntry{key: c.key, id: verified, expires: c.cacheUntil(now, p.ttl)}
	if !p.passthrough {
		p.cache.set(e, now)
	}
	return flightResult{id: &e.id, reason: reasonAllowed}
}

// failureReason is the reason of a review whose STS call or identity failed (an error of
// identify); it logs why an STS call failed.
func (p *pipeline) failureReason(c *stsCall, err error) reason {
	var se *STSError
	switch {
	case errors.As(err, &se):
		p.logSTSFailure(c, se)
	case errors.Is(err, mapping.ErrInvalidIdentity):
		// STS vouched for a principal whose form iamgate refuses: a definite denial.
		return reasonBadIdentity
	default:
		panic("BUG: identify returned an error that is neither an STSError nor an invalid identity")
	}
	switch se.outcome {
	case stsRejected:
		return reasonSTSRejected
	case stsThrottled:
		if errors.Is(se, errQueueFull) {
			return reasonSTSQueueFull
		}
		return reasonSTSThrottled
	default:
		if se.Timeout() {
			return reasonSTSTimeout
		}
		return reasonSTSUnavailable
	}
}

// logSTSFailure says why an STS call failed, so that an operator can tell a cluster-ID
// mismatch (SignatureDoesNotMatch) from an unknown key (InvalidClientTokenId), an outage or a
// broken CA file (transport x509). It logs the outcome, HTTP status, AWS error code, transport
// class and the network error, and the host (from the allow-list); never the URL or the token,
// and no byte of an STS body but a checked error code. Warn for throttled and unavailable
// calls (iamgate cannot work), Info for rejections (a client's problem); rate-limited (see
// docs/design.md: Logs).
func (p *pipeline) logSTSFailure(c *stsCall, se *STSError) {
	level := slog.LevelWarn
	if se.outcome == stsRejected {
		level = slog.LevelInfo
	}
	ctx := context.Background()
	if !p.log.Enabled(ctx, level) || !p.stsLogs.allow() {
		return
	}
	attrs := []slog.Attr{slog.String("outcome", se.Outcome), slog.String("host", c.host)}
	if se.StatusCode != 0 {
		attrs = append(attrs, slog.Int("status", se.StatusCode))
	}
	if se.Code != "" {
		attrs = append(attrs, slog.String("code", se.Code))
	}
	if se.Transport != "" {
		attrs = append(attrs, slog.String("transport", se.Transport), slog.String("error", se.Err.Error()))
	} else if errors.Is(se, errQueueFull) {
		attrs = append(attrs, slog.String("error", errQueueFull.Error()))
	} else if se.StatusCode == 200 {
		attrs = append(attrs, slog.String("error", "malformed GetCallerIdentity answer"))
	}
	p.log.LogAttrs(ctx, level, "STS call failed", attrs...)
}
