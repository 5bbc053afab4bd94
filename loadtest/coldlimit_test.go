package loadtest

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/fakests"
)

// startTLSFakeSTS starts the fake STS over TLS for cfg; it returns the fake, its address and
// a pool of its CA.
func startTLSFakeSTS(t *testing.T, cfg fakests.Config) (*fakests.Server, string, *x509.CertPool) {
	t.Helper()
	sts, err := fakests.New(cfg, fakests.Options{TLS: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sts.Close() })
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(sts.CACertPEM()) {
		t.Fatal("cannot read the fake's CA")
	}
	return sts, addr, roots
}

// TestColdLimitCallsSTS: the limit takes the presigned URL out of the token, has the fake STS
// (over TLS) verify it once per review and answers TrivialAnswer; a body without a token is
// refused without a call.
func TestColdLimitCallsSTS(t *testing.T) {
	ps := Principals(1)
	sts, addr, roots := startTLSFakeSTS(t, FakeSTSConfig(ps))
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

// TestColdLimitLooksUpEC2Nodes: with WithEC2, the review of an EC2 node costs one signed
// DescribeInstances call (which the fake verifies like EC2) besides its STS call; the review of
// an IAM user costs none.
func TestColdLimitLooksUpEC2Nodes(t *testing.T) {
	users := Principals(1)
	node := Principal{ARN: "arn:aws:sts::123456789012:assumed-role/eks-node-role/i-0c000000000000001",
		AccessKeyID: "ASIACOLDTEST00000001", SecretAccessKey: "cold-node-secret", SessionToken: "COLDNODESESSION"}
	cfg := FakeSTSConfig(users)
	cfg.Sessions = []fakests.Session{{ARN: node.ARN, AccessKeyID: node.AccessKeyID, SecretAccessKey: node.SecretAccessKey, SessionToken: node.SessionToken}}
	cfg.Instances = []fakests.Instance{{InstanceID: "i-0c000000000000001", PrivateDNSName: "ip-10-0-0-1.ec2.internal"}}
	sts, addr, roots := startTLSFakeSTS(t, cfg)
	limit, err := NewColdLimit(addr, "sts.us-east-1.amazonaws.com", roots, "bench", 2).
		WithEC2("https://"+addr, "us-east-1", aws.Credentials{AccessKeyID: users[0].AccessKeyID, SecretAccessKey: users[0].SecretAccessKey}, roots, 2)
	if err != nil {
		t.Fatal(err)
	}
	nodeTokens, err := (&Minter{ClusterID: "bench", Principals: []Principal{node}}).Fresh(2, false)
	if err != nil {
		t.Fatal(err)
	}
	userTokens, err := (&Minter{ClusterID: "bench", Principals: users}).Fresh(1, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range append(nodeTokens, userTokens...) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.Request.SetRequestURI("/authenticate")
		ctx.Request.SetBody(ReviewBody(tok))
		limit.Handler(&ctx)
		if ctx.Response.StatusCode() != 200 || !bytes.Equal(ctx.Response.Body(), TrivialAnswer) {
			t.Fatalf("unexpected answer %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	st := sts.Stats()
	if ok := st.Count(fakests.ActionGetCallerIdentity, fakests.OutcomeOK); ok != 3 {
		t.Fatalf("the fake STS answered %d identities; want 3 (%+v)", ok, st.Calls)
	}
	if ok, all := st.Count(fakests.ActionDescribeInstances, fakests.OutcomeOK), st.Total(fakests.ActionDescribeInstances); ok != 2 || all != 2 {
		t.Fatalf("the fake EC2 answered %d of %d DescribeInstances calls; want 2 of 2, one per node review (%+v)", ok, all, st.Calls)
	}
}

func TestNodeInstanceID(t *testing.T) {
	for answer, want := range map[string]string{
		`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"arn:aws:sts::1:assumed-role/eks-node-role/i-0123456789abcdef0","UserId":"A:i-0123456789abcdef0"}}}`: "i-0123456789abcdef0",
		`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"arn:aws:sts::1:assumed-role/dev/alice"}}}`:                                                          "",
		`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"arn:aws:iam::1:user/i-0123456789abcdef0"}}}`:                                                        "",
		`{"Arn":"arn:aws:sts::1:assumed-role/no-session"}`:                                                                                                                   "",
	} {
		if got := nodeInstanceID([]byte(answer)); got != want {
			t.Errorf("nodeInstanceID(%s) = %q; want %q", answer, got, want)
		}
	}
}
