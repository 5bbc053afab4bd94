package fakests

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/internal/testenv"
)

// benchToken returns a real-client token request and a clock at which it verifies.
func benchToken(b *testing.B) (uri, clusterID string, now time.Time) {
	rt := testenv.RealClientTokens(b)[0]
	u := decodeToken(b, rt.Token)
	u.Scheme = "http" // the fake listens on plain HTTP; the Host stays the token's
	return u.String(), rt.ClusterID, rt.SignedTime(b).Add(time.Minute)
}

// benchRequests sends the token GET over keep-alive connections of one fasthttp client to
// addr, serially or from GOMAXPROCS goroutines, and reports verifications per second.
func benchRequests(b *testing.B, addr, uri, clusterID string, parallel bool) {
	client := &fasthttp.HostClient{Addr: addr, MaxConns: 256, ReadBufferSize: 16 << 10}
	do := func(req *fasthttp.Request, resp *fasthttp.Response) {
		if err := client.Do(req, resp); err != nil {
			b.Fatalf("cannot send request: %s", err)
		}
		if resp.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("unexpected status; got %d %s; want 200", resp.StatusCode(), resp.Body())
		}
	}
	newReq := func() *fasthttp.Request {
		req := fasthttp.AcquireRequest()
		req.SetRequestURI(uri) // the token's host goes into Host; the client dials addr
		req.Header.Set("x-k8s-aws-id", clusterID)
		req.Header.Set("Accept", "application/json")
		return req
	}
	b.ReportAllocs()
	start := time.Now()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			req, resp := newReq(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for pb.Next() {
				do(req, resp)
			}
		})
	} else {
		req, resp := newReq(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for b.Loop() {
			do(req, resp)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkFakeSTSVerify: presigned-GET verification by the fake (parse, key lookup, SigV4
// check, JSON answer) over keep-alive connections.
func BenchmarkFakeSTSVerify(b *testing.B) {
	uri, clusterID, now := benchToken(b)
	s := startServer(b, testConfig(b), Options{Clock: func() time.Time { return now }})
	b.Run("serial", func(b *testing.B) { benchRequests(b, s.Addr(), uri, clusterID, false) })
	b.Run("parallel", func(b *testing.B) { benchRequests(b, s.Addr(), uri, clusterID, true) })
	if n := s.Stats().Count(ActionGetCallerIdentity, OutcomeOK); n == 0 {
		b.Fatalf("unexpected ok count; got 0")
	}
}

// BenchmarkFakeSTSBaseline: the transport limit, a fasthttp server answering a fixed body to
// the same requests from the same client; the ratio to BenchmarkFakeSTSVerify is the cost of
// verification.
func BenchmarkFakeSTSBaseline(b *testing.B) {
	uri, clusterID, _ := benchToken(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("cannot listen: %s", err)
	}
	body := []byte(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"111122223333","Arn":"arn:aws:iam::111122223333:user/alice","UserId":"AIDAEXAMPLEUSERID1234"},"ResponseMetadata":{"RequestId":"00000000-0000-0000-0000-000000000000"}}}`)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
		ReadBufferSize: readBufferSize, NoDefaultDate: true, NoDefaultServerHeader: true,
		Logger: fasthttpLogger{slog.New(slog.DiscardHandler)},
	}
	go srv.Serve(ln)
	defer srv.Shutdown()
	b.Run("serial", func(b *testing.B) { benchRequests(b, ln.Addr().String(), uri, clusterID, false) })
	b.Run("parallel", func(b *testing.B) { benchRequests(b, ln.Addr().String(), uri, clusterID, true) })
}

// BenchmarkFakeSTSHandler: the fake's handler alone, without the network, for allocations.
func BenchmarkFakeSTSHandler(b *testing.B) {
	uri, clusterID, now := benchToken(b)
	s, err := New(testConfig(b), Options{Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatalf("cannot create fakests: %s", err)
	}
	h := s.Handler()
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI(uri)
		ctx.Request.Header.Set("x-k8s-aws-id", clusterID)
		ctx.Request.Header.Set("Accept", "application/json")
		h(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("unexpected status; got %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
