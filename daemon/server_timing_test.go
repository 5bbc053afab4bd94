package daemon

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	authv1 "k8s.io/api/authentication/v1"

	"github.com/iamgate/iamgate/sigv4"
)

// The handler benchmarks review one cached token, the hot path of a busy cluster. They run
// over an in-memory listener with one fasthttp client, so only the server side differs:
// iamgate's handler, or the baseline: net/http with encoding/json around the same pipeline.

func benchHarness(b *testing.B) (*harness, []byte) {
	h := newHarness(b)
	body := reviewBody(apiVersionV1, h.token(alice))
	if a := h.post(body); !a.Review.Authenticated {
		b.Fatalf("unexpected answer: %+v", a)
	}
	return h, body
}

// baselineHandler is the obvious way: net/http, encoding/json and the k8s.io/api types.
func baselineHandler(s *Server) http.Handler {
	var pool sync.Pool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in authv1.TokenReview
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReviewBody)).Decode(&in); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		req, _ := pool.Get().(*sigv4.Request)
		if req == nil {
			req = new(sigv4.Request)
		}
		defer pool.Put(req)
		out := authv1.TokenReview{TypeMeta: in.TypeMeta}
		id, why := s.pipeline.verify([]byte(in.Spec.Token), s.cfg.Now(), req)
		if why == reasonAllowed {
			user, err := s.mapper.Map(r.Context(), id)
			if err == nil {
				out.Status.Authenticated = true
				out.Status.User = authv1.UserInfo{
					Username: user.Username, Groups: user.Groups,
					UID: "iamgate:" + id.AccountID + ":" + id.PrincipalID,
					Extra: map[string]authv1.ExtraValue{
						"arn": {id.ARN}, "canonicalArn": {id.CanonicalARN}, "sessionName": {id.SessionName},
						"accessKeyId": {id.AccessKeyID}, "principalId": {id.PrincipalID},
						"sigs.k8s.io/aws-iam-authenticator/principalId": {id.PrincipalID},
					},
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&out)
	})
}

// inMemoryClient serves ln with serve and returns a client that dials it.
func inMemoryClient(b *testing.B, serve func(net.Listener)) *fasthttp.Client {
	ln := fasthttputil.NewInmemoryListener()
	go serve(ln)
	b.Cleanup(func() { ln.Close() })
	return &fasthttp.Client{
		Dial:            func(string) (net.Conn, error) { return ln.Dial() },
		MaxConnsPerHost: 1024,
	}
}

func benchReviews(b *testing.B, c *fasthttp.Client, body []byte, parallel bool) {
	b.ReportAllocs()
	do := func(req *fasthttp.Request, resp *fasthttp.Response) {
		if err := c.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(`"authenticated":true`)) {
			b.Fatalf("unexpected answer %d %s", resp.StatusCode(), resp.Body())
		}
	}
	newReq := func() *fasthttp.Request {
		req := fasthttp.AcquireRequest()
		req.SetRequestURI("http://iamgate/authenticate?timeout=30s")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		return req
	}
	if !parallel {
		req, resp := newReq(), fasthttp.AcquireResponse()
		for b.Loop() {
			do(req, resp)
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		req, resp := newReq(), fasthttp.AcquireResponse()
		for pb.Next() {
			do(req, resp)
		}
	})
}

func BenchmarkHandlerCacheHit(b *testing.B) {
	h, body := benchHarness(b)
	c := inMemoryClient(b, func(ln net.Listener) { _ = fasthttp.Serve(ln, h.srv.Handler()) })
	benchReviews(b, c, body, false)
}

func BenchmarkHandlerCacheHitParallel(b *testing.B) {
	h, body := benchHarness(b)
	c := inMemoryClient(b, func(ln net.Listener) { _ = fasthttp.Serve(ln, h.srv.Handler()) })
	benchReviews(b, c, body, true)
}

func BenchmarkBaselineNetHTTPCacheHit(b *testing.B) {
	h, body := benchHarness(b)
	c := inMemoryClient(b, func(ln net.Listener) { _ = http.Serve(ln, baselineHandler(h.srv)) })
	benchReviews(b, c, body, false)
}

func BenchmarkBaselineNetHTTPCacheHitParallel(b *testing.B) {
	h, body := benchHarness(b)
	c := inMemoryClient(b, func(ln net.Listener) { _ = http.Serve(ln, baselineHandler(h.srv)) })
	benchReviews(b, c, body, true)
}

// BenchmarkHandleCacheHit calls the handler directly: the server-side CPU of a cached review
// without any transport.
func BenchmarkHandleCacheHit(b *testing.B) {
	h, body := benchHarness(b)
	ctx := newReviewCtx(body)
	handle := h.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		handle(ctx)
	}
}

// BenchmarkHandleLocalRejection: the cost of a locally rejected token (bad host).
func BenchmarkHandleLocalRejection(b *testing.B) {
	h, _ := benchHarness(b)
	ctx := newReviewCtx(reviewBody(apiVersionV1, "k8s-aws-v1.aHR0cHM6Ly9ldmlsLmV4YW1wbGUuY29tLw"))
	handle := h.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		handle(ctx)
	}
}
