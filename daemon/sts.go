package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/sigv4"
)

// stsOutcome classifies one STS call [S4]. Each has its own counter.
type stsOutcome uint8

const (
	stsIdentity    stsOutcome = iota // 200 with a well-formed identity
	stsRejected                      // a definite denial: bad signature, unknown key, expired…
	stsThrottled                     // STS asks us to slow down
	stsUnavailable                   // 5xx, timeout, reset, malformed answer, local overload
	numSTSOutcomes
)

var stsOutcomeNames = [numSTSOutcomes]string{"identity", "rejected", "throttled", "unavailable"}

func (o stsOutcome) String() string { return stsOutcomeNames[o] }

// STSError is a failed STS call: its outcome class and what STS (or the network) said.
// It never holds the token. Check with errors.As.
type STSError struct {
	Outcome    string // rejected, throttled or unavailable
	StatusCode int    // 0 when no answer came
	Code       string // AWS error code, when STS answered with one
	Err        error  // the network or decoding error, when there was one

	outcome stsOutcome
}

func (e *STSError) Error() string {
	switch {
	case e.Code != "":
		return fmt.Sprintf("STS %s: HTTP %d %s", e.Outcome, e.StatusCode, e.Code)
	case e.Err != nil:
		return fmt.Sprintf("STS %s: %s", e.Outcome, e.Err)
	default:
		return fmt.Sprintf("STS %s: HTTP %d", e.Outcome, e.StatusCode)
	}
}

func (e *STSError) Unwrap() error { return e.Err }

func stsFailure(o stsOutcome, status int, code string, err error) *STSError {
	return &STSError{Outcome: o.String(), StatusCode: status, Code: code, Err: err, outcome: o}
}

// errQueueFull is returned without calling STS when every slot is busy and the wait queue is
// full: failing fast keeps a thundering herd from piling up goroutines and memory.
var errQueueFull = errors.New("too many STS calls waiting")

// maxSTSBody bounds the STS answer we read [S1].
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
	// Timeout bounds one call, from the wait for a slot to the end of the body.
	Timeout time.Duration
	// MaxConcurrency bounds STS calls in flight; MaxQueue bounds the calls waiting for a slot.
	MaxConcurrency int
	MaxQueue       int
	// DialOverride sends every call to this host:port instead of the token's host, keeping
	// the signed Host header and the TLS server name (tests, benchmarks, local dev) [S3].
	DialOverride string
	// InsecureHTTP speaks plain HTTP to DialOverride.
	InsecureHTTP bool
	// RootCAs verifies STS's certificate; nil means the system pool.
	RootCAs *x509.CertPool
}

// stsClient calls STS GetCallerIdentity with presigned URLs. Safe for concurrent use.
type stsClient struct {
	cfg     STSConfig
	slots   chan struct{}
	waiting atomic.Int64
	metrics *metrics

	mu      sync.Mutex
	clients map[string]*fasthttp.HostClient // guarded by mu; one pool per STS host [S2]
}

func newSTSClient(cfg STSConfig, m *metrics) *stsClient {
	m.stsLimit.Set(float64(cfg.MaxConcurrency))
	return &stsClient{
		cfg:     cfg,
		slots:   make(chan struct{}, cfg.MaxConcurrency),
		metrics: m,
		clients: make(map[string]*fasthttp.HostClient),
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
		Addr:                          net.JoinHostPort(host, "443"),
		Name:                          "iamgate",
		IsTLS:                         true,
		TLSConfig:                     tlsConfig,
		MaxConns:                      c.cfg.MaxConcurrency,
		MaxResponseBodySize:           maxSTSBody,
		ReadTimeout:                   c.cfg.Timeout,
		WriteTimeout:                  c.cfg.Timeout,
		MaxIdleConnDuration:           90 * time.Second,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	if c.cfg.DialOverride != "" {
		hc.Addr = c.cfg.DialOverride
		hc.IsTLS = !c.cfg.InsecureHTTP
	}
	c.clients[host] = hc
	return hc
}

// acquire takes a call slot, waiting at most until deadline; it fails fast when MaxQueue
// callers already wait.
func (c *stsClient) acquire(deadline time.Time) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	if c.waiting.Add(1) > int64(c.cfg.MaxQueue) {
		c.waiting.Add(-1)
		c.metrics.stsQueueRejections.Inc()
		return errQueueFull
	}
	defer c.waiting.Add(-1)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-t.C:
		c.metrics.stsQueueRejections.Inc()
		return errQueueFull
	}
}

// getCallerIdentity sends the presigned URL exactly as signed to its host [S1] and classifies
// the answer [S4]. url must stay valid for the call; host is the allow-listed host.
func (c *stsClient) getCallerIdentity(ctx context.Context, host string, url []byte) (callerIdentity, error) {
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.acquire(deadline); err != nil {
		// Our own overload: no STS call was made, so only stsQueueRejections counts it.
		return callerIdentity{}, stsFailure(stsThrottled, 0, "", err)
	}
	defer func() { <-c.slots }()
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

	start := time.Now()
	err := c.hostClient(host).DoDeadline(req, resp, deadline) // never follows redirects
	if err != nil {
		return callerIdentity{}, c.done(stsFailure(stsUnavailable, 0, "", err), start)
	}
	id, err := classifySTSAnswer(resp.StatusCode(), resp.Body())
	return id, c.done(err, start)
}

// done records the outcome and latency of a call and returns err unchanged.
func (c *stsClient) done(err error, start time.Time) error {
	o := stsIdentity
	var se *STSError
	if errors.As(err, &se) {
		o = se.outcome
	}
	c.metrics.stsRequests[o].Inc()
	c.metrics.stsDuration.Observe(time.Since(start).Seconds())
	return err
}

// classifySTSAnswer decodes an STS answer as JSON only, into the fixed GetCallerIdentity shape
// (never XML: CVE-2020-16250), and sorts failures into outcomes [S4].
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
	case status == fasthttp.StatusTooManyRequests ||
		status == fasthttp.StatusBadRequest && (code == "Throttling" || code == "ThrottlingException"):
		return callerIdentity{}, stsFailure(stsThrottled, status, code, nil)
	case status == fasthttp.StatusForbidden && (code == "SignatureDoesNotMatch" || code == "InvalidClientTokenId" ||
		code == "ExpiredToken" || code == "AccessDenied"),
		status == fasthttp.StatusBadRequest && (code == "RequestExpired" || code == "IncompleteSignature" ||
			code == "InvalidParameterValue"):
		return callerIdentity{}, stsFailure(stsRejected, status, code, nil)
	default:
		// 5xx, redirects and codes we do not know are not a definite answer: never cached.
		return callerIdentity{}, stsFailure(stsUnavailable, status, code, nil)
	}
}

func decodeCallerIdentity(body []byte) (callerIdentity, error) {
	var answer struct {
		GetCallerIdentityResponse *struct {
			GetCallerIdentityResult *struct {
				Account string
				Arn     string
				UserID  string `json:"UserId"`
			}
		}
	}
	if err := strictJSON(body, &answer); err != nil {
		return callerIdentity{}, err
	}
	if answer.GetCallerIdentityResponse == nil || answer.GetCallerIdentityResponse.GetCallerIdentityResult == nil {
		return callerIdentity{}, errors.New("STS answer lacks GetCallerIdentityResponse.GetCallerIdentityResult")
	}
	r := answer.GetCallerIdentityResponse.GetCallerIdentityResult
	if r.Account == "" || r.Arn == "" || r.UserID == "" {
		return callerIdentity{}, errors.New("STS answer has an empty Account, Arn or UserId")
	}
	if len(r.Account) != 12 || strings.Trim(r.Account, "0123456789") != "" {
		return callerIdentity{}, errors.New("STS answer Account is not 12 digits")
	}
	// arn:partition:service::account:resource — the account must be the answer's Account.
	parts := strings.SplitN(r.Arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[4] != r.Account {
		return callerIdentity{}, errors.New("STS answer Arn does not belong to its Account")
	}
	return callerIdentity{Account: r.Account, Arn: r.Arn, UserID: r.UserID}, nil
}

// decodeErrorCode reads Error.Code from a JSON error answer; "" when there is none.
func decodeErrorCode(body []byte) string {
	var answer struct {
		Error struct{ Code string }
	}
	if strictJSON(body, &answer) != nil {
		return ""
	}
	return answer.Error.Code
}

// strictJSON decodes exactly one JSON object with nothing after it.
func strictJSON(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return errors.New("STS answer is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("cannot decode STS answer: %w", err)
	}
	if dec.More() {
		return errors.New("STS answer has data after the JSON object")
	}
	return nil
}
