package daemon

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/mappingtest"
	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/sigv4"
)

func TestReviewAnswers(t *testing.T) {
	h := newHarness(t)

	a := h.review(h.token(alice))
	if a.Status != 200 || !a.Review.Authenticated || a.APIVersion != apiVersionV1 || a.Kind != "TokenReview" {
		t.Fatalf("unexpected answer for a mapped user: %+v", a)
	}
	u := a.Review.User
	if u.Username != "alice" || strings.Join(u.Groups, ",") != "system:masters,dev" ||
		!strings.HasPrefix(u.UID, "iamgate:123456789012:AIDA") || u.UID != "iamgate:123456789012:"+u.Extra["principalId"][0] || u.Extra["arn"][0] != alice.arn ||
		u.Extra["canonicalArn"][0] != alice.arn || u.Extra["accessKeyId"][0] != alice.akid {
		t.Fatalf("unexpected user: %+v", u)
	}
	v1beta1 := h.post(reviewBody(apiVersionV1beta1, h.token(alice)))
	if v1beta1.APIVersion != apiVersionV1beta1 || !v1beta1.Review.Authenticated {
		t.Fatalf("unexpected v1beta1 answer: %+v", v1beta1)
	}

	// Definite denials are 200 without status.error, so kube-apiserver caches them.
	denied := func(token, why string) {
		t.Helper()
		a := h.review(token)
		if a.Status != 200 || a.Review.Authenticated || a.Review.Error != "" || a.Review.User.Username != "" {
			t.Fatalf("%s: unexpected answer: %+v", why, a)
		}
	}
	denied(h.token(mallory), "unmapped user")
	denied("k8s-aws-v1.not-a-token", "hostile token")
	denied(h.tokenAt(alice, testStart, "another-cluster"), "token for another cluster")
	denied(h.tokenAt(principal{alice.arn, alice.akid, "wrong-secret"}, testStart, testClusterID), "wrong secret")
	denied(h.tokenAt(alice, testStart.Add(-16*time.Minute), testClusterID), "expired token")

	if got := h.metric(`iamgate_reviews_total{reason="not_mapped",result="denied"}`); got != 1 {
		t.Fatalf("unexpected not_mapped count; got %v; want 1", got)
	}
	if got := h.metric(`iamgate_token_rejections_total{reason="bad_encoding"}`); got != 1 {
		t.Fatalf("unexpected bad_encoding count; got %v; want 1", got)
	}
	if got := h.metric(`iamgate_sts_requests_total{outcome="rejected"}`); got != 2 {
		t.Fatalf("unexpected STS rejected count; got %v; want 2 (other cluster, wrong secret)", got)
	}
}

func TestReportErrors(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReportErrors = true })
	a := h.review(h.token(mallory))
	if a.Status != 200 || a.Review.Authenticated || !strings.Contains(a.Review.Error, "not mapped") {
		t.Fatalf("unexpected answer with -review.reportErrors: %+v", a)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	f := func(method, path, body string, wantStatus int) {
		t.Helper()
		req, _ := http.NewRequest(method, strings.Replace(h.url, "/authenticate", path, 1), strings.NewReader(body))
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: unexpected status; got %d; want %d", method, path, resp.StatusCode, wantStatus)
		}
	}
	good := string(reviewBody(apiVersionV1, h.token(alice)))
	f("POST", "/authenticate", good, 200)
	f("GET", "/authenticate", "", 405)
	f("PUT", "/authenticate", good, 405)
	f("POST", "/other", good, 404)
	f("POST", "/authenticate/", good, 404)
	f("POST", "/authenticate", "{", 400)
	f("POST", "/authenticate", `{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview","spec":{"token":"t"}}`, 400)
	f("POST", "/authenticate", strings.Repeat(" ", 65<<10)+good, 413)
	if got := h.metric(`iamgate_bad_requests_total{reason="body_too_large"}`); got != 1 {
		t.Fatalf("unexpected body_too_large count; got %v; want 1", got)
	}
}

// TestRealClientTokensEndToEnd: tokens made by the AWS CLI v1 and v2 and
// aws-iam-authenticator are verified by the fake STS, signature and all, and mapped.
func TestRealClientTokensEndToEnd(t *testing.T) {
	h := newHarness(t)
	known := map[string]bool{}
	for _, rt := range testenv.RealClientTokens(t) {
		if known[rt.AccessKeyID] {
			continue
		}
		known[rt.AccessKeyID] = true
		var err error
		if rt.SessionToken != "" {
			err = h.sts.AddSession(fakests.Session{ARN: "arn:aws:sts::123456789012:assumed-role/real/cli-session",
				AccessKeyID: rt.AccessKeyID, SecretAccessKey: rt.SecretAccessKey, SessionToken: rt.SessionToken})
		} else {
			err = h.sts.AddUser(fakests.User{ARN: "arn:aws:iam::123456789012:user/real",
				AccessKeyID: rt.AccessKeyID, SecretAccessKey: rt.SecretAccessKey})
		}
		if err != nil {
			t.Fatalf("cannot add principal: %s", err)
		}
	}
	h.srv.mapper = mappingtest.Mapper{Table: mappingtest.Compile(t, `
mapUsers:
  - userarn: arn:aws:iam::123456789012:user/real
    username: real-user
mapRoles:
  - rolearn: arn:aws:iam::123456789012:role/real
    username: real-role:{{SessionName}}
`)}
	for _, rt := range testenv.RealClientTokens(t) {
		h.clock.Set(rt.SignedTime(t).Add(time.Minute))
		want := "real-user"
		if rt.SessionToken != "" {
			want = "real-role:cli-session"
		}
		if a := h.review(rt.Token); !a.Review.Authenticated || a.Review.User.Username != want {
			t.Fatalf("%s: unexpected answer; got %+v; want user %q", rt.Client, a, want)
		}
	}
	if got := h.stsCalls(); got == 0 {
		t.Fatalf("unexpected: no STS call verified the real-client tokens")
	}
}

// TestCollapsing: a herd of reviews of one new token makes one STS call, a reordered token is
// a cache hit, distinct tokens each make their own call (see docs/design.md: Cache and
// collapsing).
func TestCollapsing(t *testing.T) {
	h := newHarness(t)
	if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(100 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	token := h.token(alice)
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for range 200 {
		wg.Go(func() {
			a, err := h.tryPost(reviewBody(apiVersionV1, token))
			if err != nil || !a.Review.Authenticated {
				errs <- "unexpected answer in the herd"
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if got := h.stsCalls(); got != 1 {
		t.Fatalf("unexpected STS calls for 200 concurrent reviews of one token; got %d; want 1", got)
	}
	if got := h.metric("iamgate_sts_collapsed_total") + h.metric(`iamgate_cache_hits_total{kind="identity"}`); got != 199 {
		t.Fatalf("unexpected collapsed+cached reviews; got %v; want 199", got)
	}

	// Every parameter order of a token is the same token to STS: a cache hit.
	reordered := reorderToken(t, token)
	if reordered == token {
		t.Fatal("BUG: reordering did not change the token")
	}
	if a := h.review(reordered); !a.Review.Authenticated {
		t.Fatalf("unexpected answer for the reordered token: %+v", a)
	}
	if got := h.stsCalls(); got != 1 {
		t.Fatalf("unexpected STS calls after a reordered token; got %d; want 1", got)
	}

	// 1,000 distinct tokens: 1,000 calls. Distinct users and signing seconds make them distinct.
	if err := h.sts.SetFaults(fakests.Faults{}); err != nil {
		t.Fatal(err)
	}
	h.sts.ResetStats()
	var tokens []string
	for i := range 100 {
		p := principal{alice.arn, alice.akid, alice.secret}
		if i > 0 {
			p = principal{"arn:aws:iam::123456789012:user/u" + itoa(i), "AKIADISTINCT" + pad(i), "secret" + itoa(i)}
			if err := h.sts.AddUser(fakests.User{ARN: p.arn, AccessKeyID: p.akid, SecretAccessKey: p.secret}); err != nil {
				t.Fatal(err)
			}
		}
		for s := range 10 {
			tokens = append(tokens, h.tokenAt(p, testStart.Add(time.Duration(s+1)*time.Second), testClusterID))
		}
	}
	sem := make(chan struct{}, 32)
	var failed sync.Once
	for _, tok := range tokens {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a, err := h.tryPost(reviewBody(apiVersionV1, tok))
			if err != nil || a.Status != 200 {
				failed.Do(func() { t.Errorf("unexpected answer %+v %v", a, err) })
			}
		}()
	}
	wg.Wait()
	if got := h.stsCalls(); got != 1000 {
		t.Fatalf("unexpected STS calls for 1000 distinct tokens; got %d; want 1000", got)
	}
}

func itoa(i int) string { return strings.TrimLeft(pad(i), "0") }

func pad(i int) string {
	const digits = "0123456789"
	b := []byte("00000000")
	for j := len(b) - 1; i > 0; j-- {
		b[j] = digits[i%10]
		i /= 10
	}
	return string(b)
}

// reorderToken reverses the query parameters of a token.
func reorderToken(t *testing.T, token string) string {
	t.Helper()
	url := decodeToken(t, token)
	base, query, _ := strings.Cut(url, "?")
	params := strings.Split(query, "&")
	for i, j := 0, len(params)-1; i < j; i, j = i+1, j-1 {
		params[i], params[j] = params[j], params[i]
	}
	return encodeToken(base + "?" + strings.Join(params, "&"))
}

// TestSTSFaults: throttling is 429, a 5xx, reset or malformed answer 502 and a hang 504
// within -sts.timeout (statuses kube-apiserver retries), none cached; a bad signature is a
// denial cached for -cache.negativeTTL; an outage does not stop cached identities. The
// adaptive rate is off: after Throttling it would pace the next call (TestAdaptiveSTSRate).
func TestSTSFaults(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.STS.Timeout = 500 * time.Millisecond; c.STS.NoAdaptiveRate = true })
	cached := h.token(alice)
	if a := h.review(cached); !a.Review.Authenticated {
		t.Fatalf("unexpected answer: %+v", a)
	}
	f := func(faults fakests.Faults, wantStatus int) {
		t.Helper()
		if err := h.sts.SetFaults(faults); err != nil {
			t.Fatal(err)
		}
		h.clock.Add(time.Second) // a new token each time
		fresh := h.token(alice)
		start := time.Now()
		if a := h.review(fresh); a.Status != wantStatus || a.Review.Authenticated {
			t.Fatalf("unexpected answer under %+v; got %+v; want status %d", faults, a, wantStatus)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("unexpected slow answer under %+v: %s", faults, elapsed)
		}
		if a := h.review(cached); !a.Review.Authenticated {
			t.Fatalf("unexpected answer for a cached identity under %+v: %+v", faults, a)
		}
		// Not cached: once STS is back, the same token verifies.
		if err := h.sts.SetFaults(fakests.Faults{}); err != nil {
			t.Fatal(err)
		}
		before := h.stsCalls()
		if a := h.review(fresh); !a.Review.Authenticated {
			t.Fatalf("unexpected answer after %+v cleared: %+v", faults, a)
		}
		if h.stsCalls() != before+1 {
			t.Fatalf("unexpected: the failure under %+v was cached", faults)
		}
	}
	f(fakests.Faults{ErrorRates: map[string]float64{"Throttling": 1}}, 429)
	f(fakests.Faults{ErrorRates: map[string]float64{"InternalFailure": 1}}, 502)
	f(fakests.Faults{ErrorRates: map[string]float64{"ServiceUnavailable": 1}}, 502)
	f(fakests.Faults{Outage: true}, 502)
	f(fakests.Faults{HangRate: 1}, 504)
	f(fakests.Faults{ResetRate: 1}, 502)
	for _, sample := range []string{
		`iamgate_reviews_total{reason="sts_throttled",result="error"}`,
		`iamgate_reviews_total{reason="sts_unavailable",result="error"}`,
		`iamgate_reviews_total{reason="sts_timeout",result="error"}`,
	} {
		if h.metric(sample) == 0 {
			t.Fatalf("unexpected zero %s", sample)
		}
	}

	// A bad signature is a definite denial, cached for the negative TTL.
	bad := h.tokenAt(principal{alice.arn, alice.akid, "wrong-secret"}, h.clock.Now(), testClusterID)
	before := h.stsCalls()
	for range 3 {
		if a := h.review(bad); a.Status != 200 || a.Review.Authenticated {
			t.Fatalf("unexpected answer for a bad signature: %+v", a)
		}
	}
	if got := h.stsCalls() - before; got != 1 {
		t.Fatalf("unexpected STS calls for a repeated bad token; got %d; want 1", got)
	}
	h.clock.Add(31 * time.Second)
	h.review(bad)
	if got := h.stsCalls() - before; got != 2 {
		t.Fatalf("unexpected STS calls after the negative TTL; got %d; want 2", got)
	}
}

// TestSTSDefinite4xx: every 4xx from STS but throttling is a definite denial, cached for
// -cache.negativeTTL, whatever its code: an "unavailable" here would be retried by
// kube-apiserver and sent to STS again and again.
func TestSTSDefinite4xx(t *testing.T) {
	h := newHarness(t)
	for _, code := range []string{"MissingAuthenticationToken", "AccessDenied", "IncompleteSignature", "InvalidClientTokenId"} {
		if err := h.sts.SetFaults(fakests.Faults{ErrorRates: map[string]float64{code: 1}}); err != nil {
			t.Fatal(err)
		}
		h.clock.Add(time.Second) // a new token each time
		token := h.token(alice)
		before := h.stsCalls()
		for range 3 {
			if a := h.review(token); a.Status != 200 || a.Review.Authenticated {
				t.Fatalf("unexpected answer for STS %s; got %+v; want a 200 denial", code, a)
			}
		}
		if got := h.stsCalls() - before; got != 1 {
			t.Fatalf("unexpected STS calls for STS %s; got %d; want 1 (the rejection cached)", code, got)
		}
	}
	if got := h.metric(`iamgate_sts_requests_total{outcome="rejected"}`); got != 4 {
		t.Fatalf("unexpected rejected STS calls; got %v; want 4", got)
	}
}

// TestCaseFoldedKeyCannotPoisonGenuineToken: a copy of a genuine token with one query key in
// another case is refused locally (bad_query) without an STS call, so it can neither put the
// genuine token in the rejection cache nor be answered with its identity.
func TestCaseFoldedKeyCannotPoisonGenuineToken(t *testing.T) {
	h := newHarness(t)
	genuine := h.token(alice)
	url := decodeToken(t, genuine)
	for _, pair := range [][2]string{{"X-Amz-Expires=", "x-amz-expires="}, {"Action=", "action="}, {"X-Amz-Date=", "X-AMZ-DATE="}} {
		variant := encodeToken(strings.Replace(url, pair[0], pair[1], 1))
		if a := h.review(variant); a.Status != 200 || a.Review.Authenticated {
			t.Fatalf("unexpected answer for %s; got %+v; want a denial", pair[1], a)
		}
	}
	if got := h.stsCalls(); got != 0 {
		t.Fatalf("unexpected STS calls for case-folded keys; got %d; want 0", got)
	}
	if got := h.metric(`iamgate_token_rejections_total{reason="bad_query"}`); got != 3 {
		t.Fatalf("unexpected bad_query rejections; got %v; want 3", got)
	}
	if a := h.review(genuine); !a.Review.Authenticated {
		t.Fatalf("unexpected answer for the genuine token; got %+v", a)
	}
}

// TestFlightAfterFlightUsesTheCache protects one STS call per token when reviews interleave
// badly: a review that missed the cache just before another review's STS call stored its
// answer starts its own flight after that one ended. That flight must find the answer in the
// cache instead of calling STS again, whether the answer is still among the fresh entries or
// was handed to ristretto in between.
func TestFlightAfterFlightUsesTheCache(t *testing.T) {
	for _, handedOver := range []bool{false, true} {
		t.Run(fmt.Sprintf("handedOver=%v", handedOver), func(t *testing.T) {
			h := newHarness(t)
			token := h.token(alice)
			// The late review missed the cache at this generation, before the first flight's
			// answer was cached; it goes straight to collapsing.
			gen := h.srv.pipeline.cache.generation()
			if a := h.review(token); !a.Review.Authenticated {
				t.Fatalf("unexpected answer: %+v", a)
			}
			if handedOver {
				h.srv.pipeline.cache.handOver()
			}
			var r sigv4.Request
			if err := h.srv.pipeline.validator.Validate([]byte(token), h.clock.Now(), &r); err != nil {
				t.Fatal(err)
			}
			call := newSTSCall(r.CanonicalKey(), &r)
			id, why := h.srv.pipeline.collapse(&call, gen, h.clock.Now())
			if why != reasonAllowed || id == nil || id.ARN == "" {
				t.Fatalf("unexpected late review; got %v, %v; want alice", id, reasons[why].label)
			}
			if got := h.stsCalls(); got != 1 {
				t.Fatalf("unexpected STS calls; got %d; want 1 (the late flight must use the cache)", got)
			}
		})
	}
}

// TestIdentityNotServedAfterTokenExpiry: a cached identity dies with its token (see
// docs/design.md: Cache and collapsing).
func TestIdentityNotServedAfterTokenExpiry(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CacheTTL = time.Hour })
	token := h.token(alice)
	if a := h.review(token); !a.Review.Authenticated {
		t.Fatalf("unexpected answer: %+v", a)
	}
	h.clock.Add(14*time.Minute + 59*time.Second)
	calls := h.stsCalls()
	if a := h.review(token); !a.Review.Authenticated || h.stsCalls() != calls {
		t.Fatalf("unexpected answer just before expiry: %+v", a)
	}
	h.clock.Add(2 * time.Second)
	if a := h.review(token); a.Review.Authenticated {
		t.Fatalf("unexpected: an identity was served after its token expired")
	}
	if got := h.metric(`iamgate_token_rejections_total{reason="expired"}`); got != 1 {
		t.Fatalf("unexpected expired count; got %v; want 1", got)
	}
}

// TestMappingAppliesToCachedIdentities: a mapping change applies at once, to cached identities
// too (see docs/design.md: Cache and collapsing).
func TestMappingAppliesToCachedIdentities(t *testing.T) {
	h := newHarness(t)
	token := h.token(alice)
	if a := h.review(token); a.Review.User.Username != "alice" {
		t.Fatalf("unexpected answer: %+v", a)
	}
	h.srv.mapper = mappingtest.Mapper{Table: mappingtest.Compile(t, "mapUsers:\n  - userarn: "+alice.arn+"\n    username: alice-renamed\n")}
	if a := h.review(token); a.Review.User.Username != "alice-renamed" || len(a.Review.User.Groups) != 0 {
		t.Fatalf("unexpected answer after a mapping change: %+v", a)
	}
	h.srv.mapper = mappingtest.Mapper{}
	if a := h.review(token); a.Status != 500 {
		t.Fatalf("unexpected answer without a mapping; got %+v; want 500", a)
	}
}

// TestSTSQueueFull: beyond -sts.maxConcurrency in flight and -sts.maxQueue waiting, reviews
// fail fast with 429 (see docs/design.md: The STS call).
func TestSTSQueueFull(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.STS.MaxConcurrency = 1; c.STS.MaxQueue = 1 })
	if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	count := h.postDistinct(6, nil)
	// One in flight plus one waiting succeed; the other four are refused at once.
	if count[200] < 2 || count[429] < 1 || count[200]+count[429] != 6 {
		t.Fatalf("unexpected statuses %v; want 200s for the slot and the queue, 429 for the rest", count)
	}
	if got := h.metric("iamgate_sts_queue_rejections_total"); got != float64(count[429]) {
		t.Fatalf("unexpected queue rejections; got %v; want %d", got, count[429])
	}
}

// TestReviewsWaitForAnSTSStart: reviews wait up to -sts.queueWait for a slot, each answered in
// one request however long its call waited (within the bound), while -sts.timeout bounds only
// the call; a shorter -sts.queueWait refuses what cannot start within it (429).
func TestReviewsWaitForAnSTSStart(t *testing.T) {
	statuses := func(queueWait time.Duration) map[int]int {
		t.Helper()
		h := newHarness(t, func(c *Config) {
			c.STS.MaxConcurrency, c.STS.Timeout, c.STS.QueueWait = 1, time.Second, queueWait
		})
		if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(150 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		return h.postDistinct(12, nil) // 12 calls one after the other: 1.8 s, longer than -sts.timeout
	}
	if got := statuses(15 * time.Second); got[200] != 12 {
		t.Fatalf("unexpected statuses with -sts.queueWait=15s; got %v; want 12 × 200", got)
	}
	if got := statuses(300 * time.Millisecond); got[429] == 0 || got[200] == 0 || got[200]+got[429] != 12 {
		t.Fatalf("unexpected statuses with -sts.queueWait=300ms; got %v; want 200 for the first, 429 for those that could not start in time", got)
	}
}

// TestShutdownRefusesWaitingReviews: on shutdown a review waiting for an STS start is answered
// 429 at once (kube-apiserver retries it, on another replica if there is one) instead of
// waiting out -sts.queueWait; the call in flight finishes.
func TestShutdownRefusesWaitingReviews(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.STS.MaxConcurrency = 1 })
	if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	count := h.postDistinct(4, func() {
		deadline := time.Now().Add(20 * time.Second)
		for h.protoMetric("iamgate_webhook_requests_total", "http/1.1") < 4 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		h.stop()
	})
	if count[200] != 1 || count[429] != 3 {
		t.Fatalf("unexpected statuses at shutdown; got %v; want 200 for the call in flight, 429 for the 3 waiting", count)
	}
}

// TestGracefulShutdown: on shutdown every review in flight gets its answer (see
// docs/design.md: Listeners).
func TestGracefulShutdown(t *testing.T) {
	h := newHarness(t)
	if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make(chan string, 50)
	for i := range 50 {
		tok := h.tokenAt(alice, testStart.Add(-time.Duration(i)*time.Second), testClusterID)
		wg.Go(func() {
			a, err := h.tryPost(reviewBody(apiVersionV1, tok))
			switch {
			case err != nil:
				results <- err.Error()
			case !a.Review.Authenticated:
				results <- "unexpected denial"
			}
		})
	}
	// Every review reached the handler (and waits on STS): a connection still in the accept
	// queue when the listener closes would be reset, which is not what this test is about.
	deadline := time.Now().Add(20 * time.Second)
	for h.protoMetric("iamgate_webhook_requests_total", "http/1.1") < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.stop()
	wg.Wait()
	close(results)
	for r := range results {
		t.Fatalf("a review in flight at shutdown failed: %s", r)
	}
}

func TestSlowClientIsCutOff(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(strings.Split(h.url, "/authenticate")[0], "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers promise a body that never comes.
	if _, err := conn.Write([]byte("POST /authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	// fasthttp answers a read timeout with 408 and closes, or just closes: either way the
	// connection does not stay open past the deadline.
	if n > 0 && !strings.Contains(string(buf[:n]), "408") {
		t.Fatalf("unexpected answer to a slow client: %q", buf[:n])
	}
	if _, err := conn.Read(buf); err == nil {
		t.Fatalf("unexpected: the connection of a slow client stayed open")
	}
}

func decodeToken(t *testing.T, token string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, sigv4.TokenPrefix))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func encodeToken(url string) string {
	return sigv4.TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(url))
}

// TestInternalEndpoints: /healthz always, /readyz only once a mapping is loaded, /metrics on
// the internal listener and nowhere on the webhook listener; /debug/pprof/ only when
// Config.Pprof turns it on.
func TestInternalEndpoints(t *testing.T) {
	h := newHarness(t)
	get := func(url string) int {
		t.Helper()
		resp, err := h.client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile", "/debug/pprof/cmdline", "/debug/pprof/trace"} {
		if got := get(h.admin + path); got != 404 {
			t.Fatalf("unexpected status for %s without Pprof; got %d; want 404", path, got)
		}
	}
	withPprof := newHarness(t, func(c *Config) { c.Pprof = true })
	if got := get(withPprof.admin + "/debug/pprof/"); got != 200 {
		t.Fatalf("unexpected status for /debug/pprof/ with Pprof; got %d; want 200", got)
	}
	webhook := strings.Split(withPprof.url, "/authenticate")[0]
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/debug/pprof/": 200} {
		if got := get(withPprof.admin + path); got != want {
			t.Fatalf("unexpected status for %s; got %d; want %d", path, got, want)
		}
		if got := get(webhook + path); got != 405 && got != 404 {
			t.Fatalf("unexpected: %s answers %d on the webhook listener", path, got)
		}
	}
	h.srv.mapper = mappingtest.Mapper{}
	if got := get(h.admin + "/readyz"); got != 503 {
		t.Fatalf("unexpected /readyz without a mapping; got %d; want 503", got)
	}
	if got := get(h.admin + "/healthz"); got != 200 {
		t.Fatalf("unexpected /healthz without a mapping; got %d; want 200", got)
	}
}

// TestCallerGivingUpDoesNotCancelSharedCall: the review that started an STS call goes away
// (its client times out); the call finishes for the review that joined it, and the answer is
// cached (see docs/design.md: Cache and collapsing).
func TestCallerGivingUpDoesNotCancelSharedCall(t *testing.T) {
	h := newHarness(t)
	if err := h.sts.SetFaults(fakests.Faults{Latency: fakests.Duration(400 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	token := h.token(alice)
	impatient := &http.Client{Timeout: 100 * time.Millisecond}
	go func() {
		resp, err := impatient.Post(h.url, "application/json", strings.NewReader(string(reviewBody(apiVersionV1, token))))
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond) // the first review has started the STS call
	if a := h.review(token); !a.Review.Authenticated {
		t.Fatalf("unexpected answer for the review that joined the call: %+v", a)
	}
	if err := h.sts.SetFaults(fakests.Faults{}); err != nil {
		t.Fatal(err)
	}
	if a := h.review(token); !a.Review.Authenticated {
		t.Fatalf("unexpected answer after the call: %+v", a)
	}
	if got := h.stsCalls(); got != 1 {
		t.Fatalf("unexpected STS calls; got %d; want 1 (shared, then cached)", got)
	}
	if got := h.metric("iamgate_sts_collapsed_total"); got != 1 {
		t.Fatalf("unexpected collapsed reviews; got %v; want 1", got)
	}
}

// TestRejectionsRememberedWhenCacheIsFull: with the identity cache full, a flood of bad tokens
// still costs one STS call per token (ristretto's admission policy must not decide that).
func TestRejectionsRememberedWhenCacheIsFull(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CacheMaxBytes = 1 << 20 })
	// Fill the identity cache: 1500 identities of ~700 bytes do not fit in 768 KiB.
	for i := range 1500 {
		p := principal{"arn:aws:iam::123456789012:user/f" + itoa(i+1), "AKIAFILLFILL" + pad(i+1), "fill-secret"}
		if err := h.sts.AddUser(fakests.User{ARN: p.arn, AccessKeyID: p.akid, SecretAccessKey: p.secret}); err != nil {
			t.Fatal(err)
		}
		h.review(h.tokenAt(p, testStart, testClusterID))
	}
	h.sts.ResetStats()
	var bad []string
	for i := range 100 {
		bad = append(bad, h.tokenAt(principal{alice.arn, alice.akid, "wrong-secret"}, testStart.Add(-time.Duration(i)*time.Second), testClusterID))
	}
	for range 3 {
		for _, tok := range bad {
			if a := h.review(tok); a.Review.Authenticated {
				t.Fatal("unexpected success for a bad signature")
			}
		}
	}
	if got := h.stsCalls(); got != 100 {
		t.Fatalf("unexpected STS calls for 100 bad tokens reviewed 3 times; got %d; want 100", got)
	}
}

// TestDenialLogLevels pins the levels of docs/design.md, Logs: an unmapped identity's canonical
// ARN at Warn (what the operator adds to the mapping), the reason of a rejected token at Info,
// so that -log.level=warn keeps the one and drops the other.
func TestDenialLogLevels(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		logs := &testenv.LogBuffer{}
		h := newHarness(t, func(c *Config) {
			c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
		})
		for _, tok := range []string{h.token(mallory), "k8s-aws-v1.not-a-token"} {
			if a := h.review(tok); a.Status != 200 || a.Review.Authenticated {
				t.Fatalf("unexpected answer; got %+v; want a denial", a)
			}
		}
		out := logs.String()
		if want := `level=WARN msg="identity is not mapped" canonicalArn=` + mallory.arn + ` reason=not_mapped`; !strings.Contains(out, want) {
			t.Fatalf("at %s: %q is missing:\n%s", level, want, out)
		}
		want := `level=INFO msg="token denied" reason=bad_encoding`
		if got := strings.Contains(out, want); got != (level <= slog.LevelInfo) {
			t.Fatalf("at %s: unexpected presence of %q; got %v:\n%s", level, want, got, out)
		}
	}
}

// postDistinct posts n reviews of distinct tokens of alice at once, runs during (if any) while
// they are in flight, and counts their statuses; a review that got no answer counts as -1.
func (h *harness) postDistinct(n int, during func()) map[int]int {
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		tok := h.tokenAt(alice, testStart.Add(-time.Duration(i)*time.Second), testClusterID)
		wg.Go(func() {
			a, err := h.tryPost(reviewBody(apiVersionV1, tok))
			if err != nil {
				statuses <- -1
				return
			}
			statuses <- a.Status
		})
	}
	if during != nil {
		during()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	return count
}

// TestDebugLogQuotesNoClientBytes: fasthttp's messages about a request it could not parse
// quote what it read (a header line, up to 400 bytes of the request); at Debug the daemon
// logs them with each quoted piece of client bytes replaced by its length, so a token in a
// malformed request never reaches the log.
func TestDebugLogQuotesNoClientBytes(t *testing.T) {
	logs := &testenv.LogBuffer{}
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	token := h.token(alice)
	payload := strings.TrimPrefix(token, "k8s-aws-v1.")
	addr := strings.TrimPrefix(strings.TrimSuffix(h.url, "/authenticate?timeout=30s"), "http://")
	for _, req := range []string{
		"POST /authenticate HTTP/1.1\r\nHost: x\r\nAuthorization Bearer " + token + "\r\n\r\n", // a header line without a colon
		"POST /authenticate?token=" + token + " HTTP/9.9\r\nHost: x\r\n\r\n",                   // an unknown HTTP version
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(c) // the daemon answers 400 and closes the connection
		_ = c.Close()
		if !strings.HasPrefix(string(answer), "HTTP/1.1 400 ") {
			t.Fatalf("unexpected answer to a malformed request; got %q; want 400", answer)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "missing colon") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // fasthttp logs after it answered
	}
	out := logs.String()
	if !strings.Contains(out, "missing colon") {
		t.Fatalf("unexpected logs: fasthttp's message about the header line is missing:\n%s", out)
	}
	for i := 0; i+16 <= len(payload); i += 8 {
		if strings.Contains(out, payload[i:i+16]) {
			t.Fatalf("a piece of a token is in the debug log: %q\n%s", payload[i:i+16], out)
		}
	}
	if !strings.Contains(out, `bytes>`) {
		t.Fatalf("unexpected logs: no quoted client bytes replaced by their length:\n%s", out)
	}
}
