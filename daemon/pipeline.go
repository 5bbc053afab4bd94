package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// pipeline verifies a token: validate locally → cache → collapse and call STS. It is safe for
// concurrent use.
type pipeline struct {
	validator   *sigv4.Validator
	cache       *identityCache
	rejections  *rejectionCache
	flights     singleflight.Group
	sts         *stsClient
	now         func() time.Time
	ttl         time.Duration
	negativeTTL time.Duration
	stsTimeout  time.Duration
	metrics     *metrics
	log         *slog.Logger
	stsLogs     *logLimiter // STS failure lines, apart from the denial lines
	keys        *verifiedKeys
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
	if p.passthrough {
		p.metrics.cacheMisses.Inc()
		return p.collapse(key, r)
	}
	if e, ok := p.cache.get(&key, now); ok {
		p.metrics.cacheHitIdentity.Inc()
		return e.id, reasonAllowed
	}
	if why, ok := p.rejections.get(&key, now); ok {
		p.metrics.cacheHitRejected.Inc()
		return nil, why
	}
	p.metrics.cacheMisses.Inc()
	return p.collapse(key, r)
}

// collapse makes at most one STS call per canonical key at a time (see docs/design.md: Cache and collapsing). The shared call gets
// copies of what it needs and its own deadline, so it finishes for the others even when the
// review that started it has already returned.
func (p *pipeline) collapse(key sigv4.Key, r *sigv4.Request) (*mapping.Identity, reason) {
	call := stsCall{
		key:         key,
		host:        r.Host(),
		url:         append([]byte(nil), r.URL()...),
		accessKeyID: string(r.AccessKeyID()),
		expiresAt:   r.ExpiresAt(),
	}
	if p.passthrough {
		fr := p.callSTS(&call)
		return fr.id, fr.reason
	}
	ran, reused := false, false
	ch := p.flights.DoChan(string(key[:]), func() (any, error) {
		ran = true
		// A review that missed the caches just before the previous flight of this key stored
		// its answer starts a flight of its own after that one ended: look again first, so
		// that one token costs one STS call however the reviews interleave.
		if fr, ok := p.cachedAnswer(&call.key); ok {
			reused = true
			return fr, nil
		}
		return p.callSTS(&call), nil
	})
	timer := time.NewTimer(p.stsTimeout + time.Second)
	defer timer.Stop()
	select {
	case res := <-ch:
		if !ran || reused {
			p.metrics.stsCollapsed.Inc()
		}
		fr := res.Val.(flightResult)
		return fr.id, fr.reason
	case <-timer.C:
		// The shared call is bounded by -sts.timeout; this is a safety net, not a path.
		return nil, reasonSTSTimeout
	}
}

// cachedAnswer is the answer the caches hold for key now, if any.
func (p *pipeline) cachedAnswer(key *sigv4.Key) (flightResult, bool) {
	now := p.now()
	if e, ok := p.cache.get(key, now); ok {
		return flightResult{id: e.id, reason: reasonAllowed}, true
	}
	if why, ok := p.rejections.get(key, now); ok {
		return flightResult{reason: why}, true
	}
	return flightResult{}, false
}

type stsCall struct {
	key         sigv4.Key
	host        string
	url         []byte
	accessKeyID string
	expiresAt   time.Time
}

// callSTS asks STS who signed the token and caches definite answers (see docs/design.md: Cache and collapsing).
func (p *pipeline) callSTS(c *stsCall) flightResult {
	ctx, cancel := context.WithTimeout(context.Background(), p.stsTimeout)
	defer cancel()
	answer, err := p.sts.getCallerIdentity(ctx, c.host, c.url, p.keys.class(c.accessKeyID))
	now := p.now()
	if err != nil {
		var se *STSError
		if !errors.As(err, &se) {
			panic("BUG: the STS client returned an untyped error")
		}
		p.logSTSFailure(c, se)
		switch se.outcome {
		case stsRejected:
			if p.passthrough {
				return flightResult{reason: reasonSTSRejected}
			}
			p.rejections.set(c.key, reasonSTSRejected, earliest(now.Add(p.negativeTTL), c.expiresAt), now)
			return flightResult{reason: reasonSTSRejected}
		case stsThrottled:
			if errors.Is(err, errQueueFull) {
				return flightResult{reason: reasonSTSQueueFull}
			}
			return flightResult{reason: reasonSTSThrottled}
		default:
			if se.Timeout() {
				return flightResult{reason: reasonSTSTimeout}
			}
			return flightResult{reason: reasonSTSUnavailable}
		}
	}
	mid, err := mapping.NewIdentity(answer.Arn, answer.Account, answer.UserID, c.accessKeyID)
	if err != nil {
		// STS vouched for a principal whose form iamgate refuses (I1): a definite denial.
		if p.passthrough {
			return flightResult{reason: reasonBadIdentity}
		}
		p.rejections.set(c.key, reasonBadIdentity, earliest(now.Add(p.negativeTTL), c.expiresAt), now)
		return flightResult{reason: reasonBadIdentity}
	}
	id := &mid
	p.keys.add(c.accessKeyID)
	if p.passthrough {
		return flightResult{id: id, reason: reasonAllowed}
	}
	// Never cache an identity longer than STS would honour its token (see docs/design.md: Cache and collapsing).
	p.cache.set(&cacheEntry{key: c.key, id: id, expires: earliest(now.Add(p.ttl), c.expiresAt)}, now)
	return flightResult{id: id, reason: reasonAllowed}
}

// logSTSFailure says why an STS call failed, so that an operator can tell a cluster-ID
// mismatch (SignatureDoesNotMatch) from an unknown key (InvalidClientTokenId), an outage or a
// broken CA file (transport x509). It logs the outcome, HTTP status, AWS error code, transport
// class and the network error, and the host (from the allow-list); never the URL or the token,
// and no byte of an STS body but a checked error code. Warn for throttled and unavailable
// calls (iamgate cannot work), Info for rejections (a client's problem); rate-limited.
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

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
