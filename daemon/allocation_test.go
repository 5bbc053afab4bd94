package daemon

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// newReviewCtx builds a request context for calling the handler directly, as fasthttp does.
func newReviewCtx(body []byte) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI("/authenticate?timeout=30s")
	ctx.Request.SetBody(body)
	return &ctx
}

// TestCacheHitDoesNotAllocate guards the hot path: a review of a cached identity, through the
// whole handler (parse, validate, key, cache, map, answer, metrics), allocates nothing.
func TestCacheHitDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates: run without -race")
	}
	h := newHarness(t)
	body := reviewBody(apiVersionV1, h.token(alice))
	if a := h.post(body); !a.Review.Authenticated {
		t.Fatalf("unexpected answer: %+v", a)
	}
	ctx := newReviewCtx(body)
	handle := h.srv.Handler()
	handle(ctx) // warm the pools
	allocs := testing.AllocsPerRun(200, func() {
		ctx.Response.Reset()
		handle(ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("unexpected status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	})
	if allocs != 0 {
		t.Fatalf("unexpected allocations on the cache-hit path; got %v; want 0", allocs)
	}
}

// TestLocalRejectionDoesNotAllocate: a flood of garbage costs no garbage.
func TestLocalRejectionDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates: run without -race")
	}
	h := newHarness(t)
	ctx := newReviewCtx(reviewBody(apiVersionV1, "k8s-aws-v1.aHR0cHM6Ly9ldmlsLmV4YW1wbGUuY29tLw"))
	handle := h.srv.Handler()
	handle(ctx)
	allocs := testing.AllocsPerRun(200, func() {
		ctx.Response.Reset()
		handle(ctx)
	})
	if allocs != 0 {
		t.Fatalf("unexpected allocations for a local rejection; got %v; want 0", allocs)
	}
}

// TestDecodeCallerIdentityAllocs guards the cold path: an STS answer's three strings take one
// allocation (mapping.TestNewIdentityAllocs guards the Identity built from them).
func TestDecodeCallerIdentityAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates: run without -race")
	}
	body := []byte(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"111122223333",` +
		`"Arn":"arn:aws:sts::111122223333:assumed-role/dev/alice","UserId":"AROAEXAMPLE:alice"},` +
		`"ResponseMetadata":{"RequestId":"01234567-89ab-cdef-0123-456789abcdef"}}}`)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := decodeCallerIdentity(body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Fatalf("unexpected allocations decoding an STS answer; got %v; want 1", allocs)
	}
}
