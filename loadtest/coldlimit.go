package loadtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

// ColdLimit is the limit of the cold path: a TokenReview webhook that does, per review, only
// what a never-seen token cannot do without: it takes the presigned URL out of the token
// (a byte search and a base64 decode, no JSON parsing, no validation), makes one keep-alive
// HTTPS GET of it to STS with a minimal fasthttp client, reads the answer and returns
// TrivialAnswer. No cache, no collapsing, no admission, no mapping, no metrics. iamgate's
// cold reviews are compared with it in the same run. With WithEC2, the identity of an EC2
// node (an assumed role whose session name is an instance ID) costs one signed
// DescribeInstances call of its own too: what a webhook must do for {{EC2PrivateDNSName}} on
// first sight when it batches nothing. Safe for concurrent use.
type ColdLimit struct {
	// ClusterID is sent as x-k8s-aws-id, which the token signs.
	ClusterID string
	client    *fasthttp.HostClient
	ec2       *coldEC2 // nil: no DescribeInstances
}

// coldEC2 is the limit's EC2 client: SigV4 from aws-sdk-go-v2's signer, fasthttp for the call.
type coldEC2 struct {
	endpoint string // https://host:port/
	region   string
	creds    aws.Credentials
	signer   *v4.Signer
	client   *fasthttp.HostClient
}

// NewColdLimit calls STS at stsAddr (host:port) over TLS, verifying its certificate with
// rootCAs for serverName (an STS host, e.g. sts.us-east-1.amazonaws.com), keeping at most
// maxConns connections alive: the settings of iamgate's STS client.
func NewColdLimit(stsAddr, serverName string, rootCAs *x509.CertPool, clusterID string, maxConns int) *ColdLimit {
	c := limitClient(stsAddr, serverName, rootCAs, maxConns)
	c.MaxResponseBodySize = 64 << 10
	c.DisablePathNormalizing = true // the presigned URL goes as signed
	return &ColdLimit{ClusterID: clusterID, client: c}
}

// limitClient is a keep-alive HTTPS client of addr with iamgate's settings: timeouts, one
// attempt, no header rewriting.
func limitClient(addr, serverName string, rootCAs *x509.CertPool, maxConns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          addr,
		IsTLS:                         true,
		TLSConfig:                     &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: rootCAs},
		MaxConns:                      maxConns,
		ReadTimeout:                   5 * time.Second,
		WriteTimeout:                  5 * time.Second,
		MaxIdleConnDuration:           30 * time.Second,
		DisableHeaderNamesNormalizing: true,
		MaxIdemponentCallAttempts:     1,
	}
}

// WithEC2 makes l look up the private DNS name of every EC2 node it verifies with one
// DescribeInstances call (an instance-id filter, as iamgate asks) to endpoint (https://host:port,
// its certificate verified with rootCAs), signed with creds for region.
func (l *ColdLimit) WithEC2(endpoint, region string, creds aws.Credentials, rootCAs *x509.CertPool, maxConns int) (*ColdLimit, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cannot use EC2 endpoint %q: want https://host:port", endpoint)
	}
	l.ec2 = &coldEC2{
		endpoint: "https://" + u.Host + "/",
		region:   region,
		creds:    creds,
		signer:   v4.NewSigner(),
		client:   limitClient(u.Host, u.Hostname(), rootCAs, maxConns),
	}
	l.ec2.client.MaxResponseBodySize = 1 << 20
	return l, nil
}

var (
	assumedRoleMarker = []byte(`:assumed-role/`)
	dnsNameMarker     = []byte(`<privateDnsName>`)
)

// nodeInstanceID returns the session name of the assumed-role ARN in an STS answer when it is
// an instance ID (a byte search, as the rest of the limit).
func nodeInstanceID(answer []byte) string {
	i := bytes.Index(answer, assumedRoleMarker)
	if i < 0 {
		return ""
	}
	arn := answer[i+len(assumedRoleMarker):]
	if j := bytes.IndexByte(arn, '"'); j >= 0 {
		arn = arn[:j]
	}
	j := bytes.IndexByte(arn, '/')
	if j < 0 || !mapping.IsInstanceID(string(arn[j+1:])) {
		return ""
	}
	return string(arn[j+1:])
}

// privateDNSName calls DescribeInstances for instance id and returns the name in the answer
// ("" when EC2 knows no such instance).
func (e *coldEC2) privateDNSName(id string) (string, error) {
	body := "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-id&Filter.1.Value.1=" + id
	sum := sha256.Sum256([]byte(body))
	signed, err := http.NewRequest(http.MethodPost, e.endpoint, nil) // for the signer only
	if err != nil {
		return "", err
	}
	signed.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := e.signer.SignHTTP(context.Background(), e.creds, signed, hex.EncodeToString(sum[:]), "ec2", e.region, time.Now()); err != nil {
		return "", err
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(e.endpoint)
	req.Header.SetMethod(fasthttp.MethodPost)
	for k, v := range signed.Header {
		req.Header.Set(k, v[0])
	}
	req.SetBodyString(body)
	if err := e.client.DoTimeout(req, resp, 5*time.Second); err != nil {
		return "", err
	}
	if resp.StatusCode() != http.StatusOK {
		return "", fmt.Errorf("DescribeInstances answered %d", resp.StatusCode())
	}
	answer := resp.Body()
	i := bytes.Index(answer, dnsNameMarker)
	if i < 0 {
		return "", nil
	}
	name := answer[i+len(dnsNameMarker):]
	if j := bytes.IndexByte(name, '<'); j >= 0 {
		name = name[:j]
	}
	return string(name), nil
}

var tokenMarker = []byte(`"` + sigv4.TokenPrefix)

// urlBuffers hold decoded presigned URLs (about 600 bytes).
var urlBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// Handler answers POST /authenticate after one STS call, GET /healthz with ok. An answer of
// STS, whatever its status, gives TrivialAnswer; no answer (a transport error) gives 502, and
// a body without a token 400, so that wrk counts them. With WithEC2, an EC2 node's review also
// waits for its DescribeInstances call; a failed call gives 502.
func (l *ColdLimit) Handler(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/healthz" {
		ctx.SetBodyString("ok\n")
		return
	}
	if string(ctx.Path()) != "/authenticate" || !ctx.IsPost() {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	body := ctx.PostBody()
	i := bytes.Index(body, tokenMarker)
	if i < 0 {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	encoded := body[i+len(tokenMarker):]
	if j := bytes.IndexByte(encoded, '"'); j >= 0 {
		encoded = encoded[:j]
	}
	bp := urlBuffers.Get().(*[]byte)
	defer urlBuffers.Put(bp)
	url, err := base64.RawURLEncoding.AppendDecode((*bp)[:0], encoded)
	*bp = url
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.URI().DisablePathNormalizing = true
	req.SetRequestURIBytes(url)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set(sigv4.ClusterIDHeader, l.ClusterID)
	req.Header.Set("Accept", "application/json")
	if err := l.client.DoTimeout(req, resp, 5*time.Second); err != nil {
		ctx.SetStatusCode(fasthttp.StatusBadGateway)
		return
	}
	if l.ec2 != nil && resp.StatusCode() == fasthttp.StatusOK {
		if id := nodeInstanceID(resp.Body()); id != "" {
			if _, err := l.ec2.privateDNSName(id); err != nil {
				ctx.SetStatusCode(fasthttp.StatusBadGateway)
				return
			}
		}
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(TrivialAnswer)
}

// NewColdLimitServer is a fasthttp server for l with the daemon's settings, its timeouts
// included (a webhook on a network must bound every read and write; fasthttp sets the
// connection's deadlines per request for them); serve it with ServeTLS (HTTP/1.1 only).
func NewColdLimitServer(l *ColdLimit) *fasthttp.Server {
	def := daemon.DefaultConfig()
	return &fasthttp.Server{
		Handler:                       l.Handler,
		Name:                          "coldlimit",
		ReadTimeout:                   def.ReadTimeout,
		WriteTimeout:                  def.WriteTimeout,
		IdleTimeout:                   def.IdleTimeout,
		MaxRequestBodySize:            64 << 10,
		ReadBufferSize:                8 << 10,
		DisableHeaderNamesNormalizing: true,
		NoDefaultContentType:          true,
	}
}
