package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// stsOutcome classifies one STS call (see docs/design.md: The STS call); each has its
// iamgate_sts_requests_total counter. stsThrottled is also the outcome of a call the admission
// refused (queue full, the adaptive rate): it never reached STS, and only the admission's
// counters count it.
type stsOutcome uint8

const (
	stsIdentity    stsOutcome = iota // 200 with a well-formed identity
	stsRejected                      // a definite denial: bad signature, unknown key, expired…
	stsThrottled                     // STS asks us to slow down
	stsUnavailable                   // 5xx, timeout, reset, a malformed answer
	numSTSOutcomes
)

var stsOutcomeNames = [numSTSOutcomes]string{"identity", "rejected", "throttled", "unavailable"}

func (o stsOutcome) String() string { return stsOutcomeNames[o] }

// STSError is a failed STS call: its outcome class and what STS (or the network) said.
// It never holds the token or the URL. Check with errors.As.
type STSError struct {
	Outcome    string // rejected, throttled or unavailable
	StatusCode int    // 0 when no answer came
	Code       string // AWS error code, when STS answered with one (only [A-Za-z0-9._-])
	// Transport is the class of a network failure, when no answer came: timeout, reset,
	// refused, dns, x509, tls or other. See transportClass.
	Transport string
	Err       error // the network or decoding error, when there was one

	outcome stsOutcome
}

func (e *STSError) Error() string {
	switch {
	case e.Code != "":
		return fmt.Sprintf("STS %s: HTTP %d %s", e.Outcome, e.StatusCode, e.Code)
	case e.Transport != "":
		return fmt.Sprintf("STS %s: %s: %s", e.Outcome, e.Transport, e.Err)
	case e.Err != nil:
		return fmt.Sprintf("STS %s: HTTP %d: %s", e.Outcome, e.StatusCode, e.Err)
	default:
		return fmt.Sprintf("STS %s: HTTP %d", e.Outcome, e.StatusCode)
	}
}

func (e *STSError) Unwrap() error { return e.Err }

// Timeout reports whether the call failed because STS did not answer in time.
func (e *STSError) Timeout() bool { return e.Transport == transportTimeout }

// stsFailure is a call that failed with outcome o.
func stsFailure(o stsOutcome, status int, code string, err error) *STSError {
	return &STSError{Outcome: o.String(), StatusCode: status, Code: code, Err: err, outcome: o}
}

// stsTransportFailure is a call that got no answer at all.
func stsTransportFailure(err error) *STSError {
	e := stsFailure(stsUnavailable, 0, "", err)
	e.Transport = transportClass(err)
	return e
}

// Transport error classes: what an operator needs to tell a dead network from a broken CA file.
const (
	transportTimeout = "timeout" // no answer within -sts.timeout
	transportReset   = "reset"   // the connection closed or was reset before the answer
	transportRefused = "refused" // nothing listens at the address
	transportDNS     = "dns"     // the host name does not resolve
	transportX509    = "x509"    // STS's certificate does not verify (-sts.caFile, system pool)
	transportTLS     = "tls"     // another TLS failure (handshake, protocol)
	transportOther   = "other"
)

// transportClass sorts a network error into one of the transport classes.
func transportClass(err error) string {
	var (
		dnsErr      *net.DNSError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		alertErr    tls.AlertError
		netErr      net.Error
	)
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return transportTimeout
	case errors.As(err, &verifyErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return transportX509
	case errors.As(err, &dnsErr):
		return transportDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return transportRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, fasthttp.ErrConnectionClosed):
		return transportReset
	case errors.As(err, &recordErr), errors.As(err, &alertErr):
		return transportTLS
	default:
		return transportOther
	}
}

// errQueueFull is returned without calling STS when every slot is busy and the wait queue is
// full: failing fast keeps a thundering herd from piling up goroutines and memory.
var errQueueFull = errors.New("too many STS calls waiting")

// maxSTSBody bounds the STS answer we read (see docs/design.md: The STS call).
const maxSTSBody = 64 << 10

// callerIdentity is STS's answer to GetCallerIdentity.
type callerIdentity struct {
	Account string
	Arn     string
	UserID  string
}

// STSConfig configures the STS client.
type STSConfig struct {
	// ClusterID is sent as x-k8s-aws-id: a token signed for another cluster fails STS's check.
	ClusterID string
	// Timeout bounds one call once it has started, to the end of the body.
	Timeout time.Duration
	// QueueWait bounds the wait for a slot or a rate token before a call starts. A call the
	// adaptive rate cannot start within it is refused at once. With Timeout it must stay
	// below kube-apiserver's 30 s webhook request timeout (see docs/design.md: The STS call).
	QueueWait time.Duration
	// MaxConcurrency bounds STS calls in flight; MaxQueue bounds the calls waiting for a slot
	// or a rate token, per class of access key.
	MaxConcurrency int
	MaxQueue       int
	// NoAdaptiveRate stops pacing calls once STS answers Throttling (see docs/design.md:
	// The STS call); for measurements.
	NoAdaptiveRate bool
	// NoKeyPriority stops starting the waiting calls for access keys STS has verified before
	// those for never-seen keys, the defence against a forged-token flood; for measurements.
	NoKeyPriority bool
	// VerifiedKeys bounds the access keys remembered for that priority, per generation;
	// 0 means 100,000.
	VerifiedKeys int
	// DialOverride sends every call to this host:port instead of the token's host, keeping
	// the signed Host header and the TLS server name: tests, benchmarks, local development
	// (see docs/design.md: The STS call).
	DialOverride string
	// InsecureHTTP speaks plain HTTP to DialOverride.
	InsecureHTTP bool
	// RootCAs verifies STS's certificate; nil means the system pool.
	RootCAs *x509.CertPool
}

// stsClient calls STS GetCallerIdentity with presigned URLs. Safe for concurrent use.
type stsClient struct {
	cfg       STSConfig
	admission *stsAdmission
	metrics   *metrics

	mu      sync.Mutex
	clients map[string]*fasthttp.HostClient // guarded by mu; one pool per STS host (see docs/design.md: The STS call)
}

func newSTSClient(cfg STSConfig, m *metrics) *stsClient {
	m.stsConcurrencyLimit.Set(float64(cfg.MaxConcurrency))
	return &stsClient{
		cfg:       cfg,
		admission: newSTSAdmission(cfg.MaxConcurrency, cfg.MaxQueue, !cfg.NoAdaptiveRate, !cfg.NoKeyPriority, m),
		metrics:   m,
		clients:   make(map[string]*fasthttp.HostClient),
	}
}

// hostClient returns the keep-alive pool for an allowed STS host.
func (c *stsClient) hostClient(host string) *fasthttp.HostClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc := c.clients[host]; hc != nil {
		return hc
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	tlsConfig.RootCAs = c.cfg.RootCAs
	hc := &fasthttp.HostClient{
		Addr:                net.JoinHostPort(host, "443"),
		Name:                "iamgate",
		IsTLS:               true,
		TLSConfig:           tlsConfig,
		MaxConns:            c.cfg.MaxConcurrency,
		MaxResponseBodySize: maxSTSBody,
		ReadTimeout:         c.cfg.Timeout,
		WriteTimeout:        c.cfg.Timeout,
		// Below the idle timeouts of AWS's load balancers (60 s and up): with one attempt per
		// call, a keep-alive connection the server closed while idle would fail a review.
		MaxIdleConnDuration:           30 * time.Second,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		// One attempt per call: fasthttp retries an idempotent GET up to 5 times by default,
		// which would hide calls from iamgate_sts_requests_total and multiply the load on a
		// failing STS. kube-apiserver retries the review instead, and every call is counted.
		MaxIdemponentCallAttempts: 1,
	}
	if c.cfg.DialOverride != "" {
		hc.Addr = c.cfg.DialOverride
		hc.IsTLS = !c.cfg.InsecureHTTP
	}
	c.clients[host] = hc
	return hc
}

// getCallerIdentity waits for the admission to start a call, sends the presigned URL exactly
// as signed to its host and classifies the answer (see docs/design.md: The STS call). url must
// stay valid for the call; host is the allow-listed host; class orders the call behind others
// when calls must wait. The error is always an *STSError.
func (c *stsClient) getCallerIdentity(ctx context.Context, host string, url []byte, class keyClass) (callerIdentity, error) {
	// The wait for a start is bounded by QueueWait, the call once started by Timeout, and
	// both by ctx. The clock is read once before the call and once after it.
	now := time.Now()
	startBy := now.Add(c.cfg.QueueWait)
	ctxDeadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		// A call must start with a fifth of ctx's time left, so that one that waited is not
		// sent only to time out (and still cost STS a call).
		if by := ctxDeadline.Add(-ctxDeadline.Sub(now) / 5); by.Before(startBy) {
			startBy = by
		}
	}
	start, err := c.admission.acquire(class, now, startBy)
	if err != nil {
		// Our own overload or pacing: no STS call was made, so only the admission's
		// counters count it.
		return callerIdentity{}, stsFailure(stsThrottled, 0, "", err)
	}
	deadline := start.Add(c.cfg.Timeout)
	if hasDeadline && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	}
	outcome := stsUnavailable
	var end time.Time // when the answer or the failure came
	defer func() {
		if end.IsZero() { // the call panicked
			end = time.Now()
		}
		c.admission.release(start, end, outcome == stsIdentity || outcome == stsRejected, outcome == stsThrottled)
	}()
	c.metrics.stsInflight.Inc()
	defer c.metrics.stsInflight.Dec()

	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.URI().DisablePathNormalizing = true
	req.SetRequestURIBytes(url)
	if c.cfg.DialOverride != "" && c.cfg.InsecureHTTP {
		req.URI().SetScheme("http") // the scheme is not signed; path and query stay as signed
	}
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.SetHost(host)
	req.Header.Set(sigv4.ClusterIDHeader, c.cfg.ClusterID)
	req.Header.Set("Accept", "application/json")

	err = c.hostClient(host).DoDeadline(req, resp, deadline) // never follows redirects
	end = time.Now()
	if err != nil {
		se := stsTransportFailure(err)
		outcome = c.record(se, end.Sub(start))
		return callerIdentity{}, se
	}
	id, err := classifySTSAnswer(resp.StatusCode(), resp.Body())
	outcome = c.record(err, end.Sub(start))
	return id, err
}

// record counts the outcome and latency of a call and returns the outcome.
func (c *stsClient) record(err error, took time.Duration) stsOutcome {
	o := stsIdentity
	if se, ok := err.(*STSError); ok && se != nil { // no errors.As: its target would escape
		o = se.outcome
	}
	c.metrics.stsRequests[o].Inc()
	c.metrics.stsDuration.Observe(took.Seconds())
	return o
}

// classifySTSAnswer decodes an STS answer as JSON only, into the fixed GetCallerIdentity shape
// (never XML: CVE-2020-16250), and sorts failures into outcomes:
//
//   - 200 with a well-formed identity: the identity; any other 200 is unavailable (never an
//     identity, never a denial);
//   - 429, or a throttling code (throttleCodes) with any 4xx or 5xx: throttled;
//   - 408, or a 4xx with a request-timeout code: unavailable (transient, as AWS SDKs treat them);
//   - any other 4xx, whatever its code or body: rejected, a definite answer, cached for
//     -cache.negativeTTL. STS answers a request it will not honour with a 4xx, and codes beyond
//     the ones we know (InvalidAction, MissingAuthenticationToken, …) are as definite;
//   - 5xx, 3xx (never followed) and anything else: unavailable, never cached.
func classifySTSAnswer(status int, body []byte) (callerIdentity, error) {
	if status == fasthttp.StatusOK {
		id, err := decodeCallerIdentity(body)
		if err != nil {
			return callerIdentity{}, stsFailure(stsUnavailable, status, "", err)
		}
		return id, nil
	}
	code := decodeErrorCode(body)
	switch {
	case status == fasthttp.StatusTooManyRequests, status >= 400 && status < 600 && throttleCodes[code]:
		return callerIdentity{}, stsFailure(stsThrottled, status, code, nil)
	case status == fasthttp.StatusRequestTimeout,
		status >= 400 && status < 500 && (code == "RequestTimeout" || code == "RequestTimeoutException"):
		return callerIdentity{}, stsFailure(stsUnavailable, status, code, nil)
	case status >= 400 && status < 500:
		return callerIdentity{}, stsFailure(stsRejected, status, code, nil)
	default:
		return callerIdentity{}, stsFailure(stsUnavailable, status, code, nil)
	}
}

// throttleCodes are the AWS error codes that mean "slow down": aws-sdk-go-v2's
// retry.DefaultThrottleErrorCodes (v1.48), frozen here. STS itself answers 400 Throttling.
var throttleCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "ThrottledException": true,
	"RequestThrottledException": true, "TooManyRequestsException": true,
	"ProvisionedThroughputExceededException": true, "TransactionInProgressException": true,
	"RequestLimitExceeded": true, "BandwidthLimitExceeded": true, "LimitExceededException": true,
	"RequestThrottled": true, "SlowDown": true, "PriorRequestNotComplete": true,
	"EC2ThrottledException": true,
}

// decodeCallerIdentity reads GetCallerIdentityResponse.GetCallerIdentityResult's Account, Arn
// and UserId from a JSON answer with the strict scanner of json.go, as encoding/json would
// into the fixed shape: keys match case-insensitively, a repeated key's last value wins, null
// leaves a string as it was and drops an object, other keys are skipped (checked, never kept);
// unlike encoding/json, a string that is not valid UTF-8 fails the answer.
func decodeCallerIdentity(body []byte) (callerIdentity, error) {
	sc := jsonScanner{buf: body}
	var account, arn, userID []byte
	var haveResponse, haveResult bool
	result := func(key []byte) error {
		switch {
		case bytes.EqualFold(key, []byte("Account")):
			return sc.nullableString(&account)
		case bytes.EqualFold(key, []byte("Arn")):
			return sc.nullableString(&arn)
		case bytes.EqualFold(key, []byte("UserId")):
			return sc.nullableString(&userID)
		}
		return sc.skipValue(3)
	}
	response := func(key []byte) error {
		if !bytes.EqualFold(key, []byte("GetCallerIdentityResult")) {
			return sc.skipValue(2)
		}
		if sc.null() {
			haveResult, account, arn, userID = false, nil, nil, nil
			return nil
		}
		haveResult = true
		return sc.object(2, result)
	}
	err := topLevelObject(&sc, func(key []byte) error {
		if !bytes.EqualFold(key, []byte("GetCallerIdentityResponse")) {
			return sc.skipValue(1)
		}
		if sc.null() {
			haveResponse, haveResult, account, arn, userID = false, false, nil, nil, nil
			return nil
		}
		haveResponse = true
		return sc.object(1, response)
	})
	if err != nil {
		return callerIdentity{}, err
	}
	if !haveResponse || !haveResult {
		return callerIdentity{}, errors.New("STS answer lacks GetCallerIdentityResponse.GetCallerIdentityResult")
	}
	if len(account) == 0 || len(arn) == 0 || len(userID) == 0 {
		return callerIdentity{}, errors.New("STS answer has an empty Account, Arn or UserId")
	}
	// mapping.NewIdentity checks the account as well, as every Identity must hold it; here an
	// answer that breaks it is malformed (unavailable, never cached: docs/design.md, The STS
	// call), not an identity to deny.
	if !mapping.IsAccountID(string(account)) {
		return callerIdentity{}, errors.New("STS answer Account is not 12 digits")
	}
	// arn:partition:service::account:resource — the account must be the answer's Account.
	if !arnOfAccount(arn, account) {
		return callerIdentity{}, errors.New("STS answer Arn does not belong to its Account")
	}
	// One allocation for the three strings: mapping.NewIdentity copies what it keeps.
	var b strings.Builder
	b.Grow(len(account) + len(arn) + len(userID))
	b.Write(account)
	b.Write(arn)
	b.Write(userID)
	all := b.String()
	return callerIdentity{
		Account: all[:len(account)],
		Arn:     all[len(account) : len(account)+len(arn)],
		UserID:  all[len(account)+len(arn):],
	}, nil
}

// arnOfAccount reports whether arn has the six colon-separated parts of an ARN (the last may
// hold more colons), "arn" first and account fifth.
func arnOfAccount(arn, account []byte) bool {
	var parts [5][]byte
	rest := arn
	for i := range parts {
		j := bytes.IndexByte(rest, ':')
		if j < 0 {
			return false
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	return string(parts[0]) == "arn" && bytes.Equal(parts[4], account)
}

// decodeErrorCode reads Error.Code from a JSON error answer; "" when there is none or when it
// is not a plausible code (at most 64 of [A-Za-z0-9._-]), so that no odd bytes reach a log.
func decodeErrorCode(body []byte) string {
	sc := jsonScanner{buf: body}
	var code []byte
	errorObject := func(key []byte) error {
		if bytes.EqualFold(key, []byte("Code")) {
			return sc.nullableString(&code)
		}
		return sc.skipValue(2)
	}
	err := topLevelObject(&sc, func(key []byte) error {
		if !bytes.EqualFold(key, []byte("Error")) {
			return sc.skipValue(1)
		}
		if sc.null() {
			return nil
		}
		return sc.object(1, errorObject)
	})
	if err != nil || len(code) > 64 {
		return ""
	}
	for _, c := range code {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return ""
		}
	}
	return string(code)
}

// topLevelObject reads sc's whole buffer as exactly one JSON object, white space around it
// allowed, calling member for each of its keys.
func topLevelObject(sc *jsonScanner, member func(key []byte) error) error {
	if err := sc.object(0, member); err != nil {
		return fmt.Errorf("cannot decode STS answer: %w", err)
	}
	if !sc.atEnd() {
		return errors.New("STS answer has data after the JSON object")
	}
	return nil
}
