package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/sigv4"
	"github.com/iamgate/iamgate/sigv4/signature"
)

// isolateAWS gives a test an AWS environment with only the given credentials: no profile
// files, no IMDS, no region unless set.
func isolateAWS(t *testing.T, akid, secret string) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

var tokenTestTime = time.Date(2026, 11, 27, 1, 44, 11, 0, time.UTC)

func validateToken(t *testing.T, token string, now time.Time) *sigv4.Request {
	t.Helper()
	hosts, err := sigv4.NewAllowList(sigv4.PartitionIDs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var r sigv4.Request
	if err := sigv4.NewValidator(hosts, time.Minute).Validate([]byte(token), now, &r); err != nil {
		t.Fatalf("unexpected validation error for our token: %v", err)
	}
	return &r
}

// verifySignature checks a token's SigV4 signature as STS would, with sigv4/signature.
func verifySignature(t *testing.T, token, clusterID, secret string) error {
	t.Helper()
	u := testenv.TokenURL(t, token)
	req := &signature.Request{Method: http.MethodGet, Host: u.Host, Path: u.EscapedPath(), RawQuery: u.RawQuery,
		Header: http.Header{"X-K8s-Aws-Id": {clusterID}}}
	s, err := signature.Parse(req)
	if err != nil {
		return err
	}
	return s.Verify(req, secret)
}

func TestTokenExecCredential(t *testing.T) {
	isolateAWS(t, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	f := func(execInfo, wantAPIVersion string) {
		t.Helper()
		out, err := mintToken(t.Context(), tokenOptions{clusterID: "demo-cluster", region: "eu-west-1"}, execInfo, tokenTestTime)
		if err != nil {
			t.Fatalf("unexpected error: %s", err)
		}
		var cred struct {
			Kind, APIVersion string
			Spec             map[string]any
			Status           struct{ ExpirationTimestamp, Token string }
		}
		if err := json.Unmarshal([]byte(out), &cred); err != nil {
			t.Fatalf("cannot parse output %q: %s", out, err)
		}
		if cred.Kind != "ExecCredential" || cred.APIVersion != wantAPIVersion {
			t.Fatalf("unexpected kind/apiVersion; got %q %q; want ExecCredential %q", cred.Kind, cred.APIVersion, wantAPIVersion)
		}
		if want := "2026-11-27T01:58:11Z"; cred.Status.ExpirationTimestamp != want {
			t.Fatalf("unexpected expiration; got %q; want %q", cred.Status.ExpirationTimestamp, want)
		}
		if !strings.HasSuffix(out, "}\n") || strings.Count(out, "\n") != 1 {
			t.Fatalf("unexpected output framing; got %q; want one JSON line", out)
		}
		r := validateToken(t, cred.Status.Token, tokenTestTime)
		if r.Host() != "sts.eu-west-1.amazonaws.com" || string(r.AccessKeyID()) != "AKIAIOSFODNN7EXAMPLE" {
			t.Fatalf("unexpected host or key; got %q %q", r.Host(), r.AccessKeyID())
		}
		const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		if err := verifySignature(t, cred.Status.Token, "demo-cluster", secret); err != nil {
			t.Fatalf("unexpected signature error for our token: %v", err)
		}
		if verifySignature(t, cred.Status.Token, "demo-cluster", "wrong") == nil ||
			verifySignature(t, cred.Status.Token, "other-cluster", secret) == nil {
			t.Fatalf("unexpected: our token verifies with a wrong secret or cluster ID")
		}
	}
	f("", "client.authentication.k8s.io/v1beta1")
	f(`{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}`, "client.authentication.k8s.io/v1")
	f(`{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential"}`, "client.authentication.k8s.io/v1beta1")
	f(`{not json`, "client.authentication.k8s.io/v1beta1")
	f(`{"kind":"ExecCredential"}`, "client.authentication.k8s.io/v1beta1")
}

func TestTokenRegionAndEndpoint(t *testing.T) {
	isolateAWS(t, "AKIAIOSFODNN7EXAMPLE", "secret")
	f := func(o tokenOptions, envRegion, wantHost, wantRegion string) {
		t.Helper()
		t.Setenv("AWS_REGION", envRegion)
		o.clusterID, o.tokenOnly = "demo", true
		out, err := mintToken(t.Context(), o, "", tokenTestTime)
		if err != nil {
			t.Fatalf("unexpected error: %s", err)
		}
		if !strings.HasPrefix(out, sigv4.TokenPrefix) || !strings.HasSuffix(out, "\n") {
			t.Fatalf("unexpected --token-only output %q", out)
		}
		r := validateToken(t, strings.TrimSpace(out), tokenTestTime)
		if r.Host() != wantHost || r.Region() != wantRegion {
			t.Fatalf("unexpected host/region; got %q %q; want %q %q", r.Host(), r.Region(), wantHost, wantRegion)
		}
	}
	f(tokenOptions{}, "", "sts.us-east-1.amazonaws.com", "us-east-1")
	f(tokenOptions{}, "ap-south-1", "sts.ap-south-1.amazonaws.com", "ap-south-1")
	f(tokenOptions{region: "us-west-2"}, "ap-south-1", "sts.us-west-2.amazonaws.com", "us-west-2")
	f(tokenOptions{globalEndpoint: true}, "", "sts.amazonaws.com", "us-east-1")
	f(tokenOptions{region: "us-gov-west-1"}, "", "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1")
	f(tokenOptions{region: "cn-north-1"}, "", "sts.cn-north-1.amazonaws.com.cn", "cn-north-1")
	f(tokenOptions{region: "eusc-de-east-1"}, "", "sts.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1")
}

func TestTokenErrors(t *testing.T) {
	f := func(o tokenOptions, akid, wantSubstring string) {
		t.Helper()
		isolateAWS(t, akid, "secret")
		_, err := mintToken(t.Context(), o, "", tokenTestTime)
		if err == nil || !strings.Contains(err.Error(), wantSubstring) {
			t.Fatalf("unexpected error; got %v; want it to contain %q", err, wantSubstring)
		}
	}
	f(tokenOptions{}, "AKIAIOSFODNN7EXAMPLE", "missing cluster ID")
	f(tokenOptions{clusterID: "c"}, "", "cannot get AWS credentials")
	f(tokenOptions{clusterID: "c", externalID: "x"}, "AKIAIOSFODNN7EXAMPLE", "need --role")
	f(tokenOptions{clusterID: "c", region: "mars-1"}, "AKIAIOSFODNN7EXAMPLE", "no known partition")
}

func TestRunDispatch(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"version"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "iamgate ") {
		t.Fatalf("unexpected version output %q, error %v", out.String(), err)
	}
	if err := run(t.Context(), []string{"nope"}, &out, &errOut); err == nil {
		t.Fatalf("unexpected success for an unknown subcommand")
	}
	if err := run(t.Context(), []string{"token", "extra-arg", "-i", "c"}, &out, &errOut); err == nil {
		t.Fatalf("unexpected success with a positional argument")
	}
}

// TestTokenRoleOptions: --role with --external-id, --session-name and --forward-session-name
// against the fake STS's AssumeRole; the token's identity is read back through STS.
func TestTokenRoleOptions(t *testing.T) {
	const (
		account = "123456789012"
		partner = "arn:aws:iam::" + account + ":role/partner"
		devs    = "arn:aws:iam::" + account + ":role/developers"
	)
	caller := e2eUser{"arn:aws:sts::" + account + ":assumed-role/sso-admins/alice-session", "ASIAE2ECALLER0000001", "caller-secret", "caller-session-token"}
	// A federated user (GetFederationToken): its unique ID is <account>:<name>.
	federated := e2eUser{"arn:aws:sts::" + account + ":federated-user/bob", "ASIAE2EFEDERATED0001", "federated-secret", "federated-session-token"}
	sts, err := fakests.New(fakests.Config{
		Users: []fakests.User{{ARN: e2eAlice.arn, AccessKeyID: e2eAlice.akid, SecretAccessKey: e2eAlice.secret}},
		Sessions: []fakests.Session{
			{ARN: caller.arn, AccessKeyID: caller.akid, SecretAccessKey: caller.secret, SessionToken: caller.session},
			{ARN: federated.arn, UserID: account + ":bob", AccessKeyID: federated.akid, SecretAccessKey: federated.secret, SessionToken: federated.session},
		},
		Roles: []fakests.Role{
			{ARN: partner, Trust: []string{e2eAlice.arn}, ExternalID: "s3cret-external-id"},
			{ARN: devs, Trust: []string{"arn:aws:iam::" + account + ":role/sso-admins", e2eAlice.arn, "arn:aws:iam::" + account + ":root"}},
		},
	}, fakests.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sts.Close()

	// whoAmI mints a token with o as u and returns the identity STS vouches for.
	whoAmI := func(u e2eUser, o tokenOptions) (string, error) {
		t.Helper()
		isolateAWS(t, u.akid, u.secret)
		t.Setenv("AWS_SESSION_TOKEN", u.session)
		t.Setenv("AWS_ENDPOINT_URL_STS", "http://"+addr)
		o.clusterID, o.region, o.tokenOnly = "demo-cluster", "us-east-1", true
		out, err := mintToken(t.Context(), o, "", time.Now())
		if err != nil {
			return "", err
		}
		cfg := daemon.Config{ClusterID: "demo-cluster", Partitions: []string{"aws"}, MaxClockSkew: time.Minute,
			STS: daemon.STSConfig{Timeout: 5 * time.Second, DialOverride: addr, InsecureHTTP: true}}
		id, err := daemon.VerifyToken(t.Context(), cfg, strings.TrimSpace(out), time.Now())
		if err != nil {
			t.Fatalf("cannot verify the minted token: %s", err)
		}
		return id.ARN, nil
	}
	f := func(u e2eUser, o tokenOptions, wantARN, wantErr string) {
		t.Helper()
		arn, err := whoAmI(u, o)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("unexpected result for %+v; got %q, %v; want an error with %q", o, arn, err, wantErr)
			}
			return
		}
		// A trailing '*' stands for the SDK's default session name (aws-go-sdk-<time>).
		if prefix, ok := strings.CutSuffix(wantARN, "*"); ok && err == nil && strings.HasPrefix(arn, prefix) && len(arn) > len(prefix) {
			return
		}
		if err != nil || arn != wantARN {
			t.Fatalf("unexpected identity for %+v; got %q, %v; want %q", o, arn, err, wantARN)
		}
	}
	f(e2eAlice, tokenOptions{}, e2eAlice.arn, "")
	f(e2eAlice, tokenOptions{role: partner, externalID: "s3cret-external-id", sessionName: "ci"},
		"arn:aws:sts::"+account+":assumed-role/partner/ci", "")
	f(e2eAlice, tokenOptions{role: partner, externalID: "wrong", sessionName: "ci"}, "", "cannot assume role")
	f(e2eAlice, tokenOptions{role: partner, sessionName: "ci"}, "", "cannot assume role")
	f(caller, tokenOptions{role: devs, forwardSessionName: true}, "arn:aws:sts::"+account+":assumed-role/developers/alice-session", "")
	// An IAM user has no session name to forward: the default one, as aws-iam-authenticator
	// does, instead of failing.
	f(e2eAlice, tokenOptions{role: devs, forwardSessionName: true}, "arn:aws:sts::"+account+":assumed-role/developers/aws-go-sdk-*", "")
	// A federated user's unique ID is <account>:<name>: aws-iam-authenticator forwards the name.
	f(federated, tokenOptions{role: devs, forwardSessionName: true}, "arn:aws:sts::"+account+":assumed-role/developers/bob", "")
	f(e2eAlice, tokenOptions{role: devs, sessionName: "x", forwardSessionName: true}, "", "exclude each other")
}
