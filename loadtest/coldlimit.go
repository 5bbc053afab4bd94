package loadtest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/sigv4"
)

// ColdLimit is the limit of the cold path: a TokenReview webhook that does, per review, only
// what a never-seen token cannot do without: it takes the presigned URL out of the token
// (a byte search and a base64 decode, no JSON parsing, no validation), makes one keep-alive
// HTTPS GET of it to STS with a minimal fasthttp client, reads the answer and returns
// TrivialAnswer. No cache, no collapsing, no admission, no mapping, no metrics. iamgate's
// cold reviews are compared with it in the same run. Safe for concurrent use.
type ColdLimit struct {
	// ClusterID is sent as x-k8s-aws-id, which the token signs.
	ClusterID string
	client    *fasthttp.HostClient
}

// NewColdLimit calls STS at stsAddr (host:port) over TLS, verifying its certificate with
// rootCAs for serverName (an STS host, e.g. sts.us-east-1.amazonaws.com), keeping at most
// maxConns connections alive: the settings of iamgate's STS client.
func NewColdLimit(stsAddr, serverName string, rootCAs *x509.CertPool, clusterID string, maxConns int) *ColdLimit {
	return &ColdLimit{
		ClusterID: clusterID,
		client: &fasthttp.HostClient{
			Addr:                          stsAddr,
			IsTLS:                         true,
			TLSConfig:                     &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: rootCAs},
			MaxConns:                      maxConns,
			MaxResponseBodySize:           64 << 10,
			ReadTimeout:                   5 * time.Second,
			WriteTimeout:                  5 * time.Second,
			MaxIdleConnDuration:           30 * time.Second,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			MaxIdemponentCallAttempts:     1,
		},
	}
}

var tokenMarker = []byte(`"` + sigv4.TokenPrefix)

// urlBuffers hold decoded presigned URLs (about 600 bytes).
var urlBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// Handler answers POST /authenticate after one STS call, GET /healthz with ok. An answer of
// STS, whatever its status, gives TrivialAnswer; no answer (a transport error) gives 502, and
// a body without a token 400, so that wrk counts them.
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
	ctx.SetContentType("application/json")
	ctx.SetBody(TrivialAnswer)
}

// NewColdLimitServer is a fasthttp server for l with the daemon's settings; serve it with
// ServeTLS (HTTP/1.1 only).
func NewColdLimitServer(l *ColdLimit) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       l.Handler,
		Name:                          "coldlimit",
		MaxRequestBodySize:            64 << 10,
		ReadBufferSize:                8 << 10,
		DisableHeaderNamesNormalizing: true,
		NoDefaultContentType:          true,
	}
}
