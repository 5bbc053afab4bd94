package loadtest

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/fakests"
)

// TestColdLimitCallsSTS: the limit takes the presigned URL out of the token, has the fake STS
// (over TLS) verify it once per review and answers TrivialAnswer; a body without a token is
// refused without a call.
func TestColdLimitCallsSTS(t *testing.T) {
	ps := Principals(1)
	sts, err := fakests.New(FakeSTSConfig(ps), fakests.Options{TLS: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sts.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(sts.CACertPEM()) {
		t.Fatal("cannot read the fake's CA")
	}
	limit := NewColdLimit(addr, "sts.us-east-1.amazonaws.com", roots, "bench", 2)
	m := &Minter{ClusterID: "bench", Principals: ps}
	good, err := m.Fresh(2, false)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := m.Fresh(1, true)
	if err != nil {
		t.Fatal(err)
	}
	post := func(body []byte) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI("/authenticate")
		ctx.Request.SetBody(body)
		limit.Handler(&ctx)
		return &ctx
	}
	for _, tok := range append(good, bad...) {
		ctx := post(ReviewBody(tok))
		if ctx.Response.StatusCode() != 200 || !bytes.Equal(ctx.Response.Body(), TrivialAnswer) {
			t.Fatalf("unexpected answer %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	if ctx := post([]byte(`{"spec":{}}`)); ctx.Response.StatusCode() != 400 {
		t.Fatalf("a body without a token got %d; want 400", ctx.Response.StatusCode())
	}
	st := sts.Stats()
	if ok, denied := st.Count(fakests.ActionGetCallerIdentity, fakests.OutcomeOK), st.Count(fakests.ActionGetCallerIdentity, "SignatureDoesNotMatch"); ok != 2 || denied != 1 {
		t.Fatalf("the fake STS answered %d identities and %d SignatureDoesNotMatch; want 2 and 1 (%+v)", ok, denied, st.Calls)
	}
}
