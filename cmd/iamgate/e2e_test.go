package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/webhook"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
)

// The end-to-end test runs `iamgate server` exactly as an operator would (flags, TLS from
// `iamgate init`, a mapping file) against the fake STS, and authenticates through
// k8s.io/apiserver's webhook token authenticator: the code kube-apiserver runs.

type e2eUser struct{ arn, akid, secret, session string }

var (
	e2eAlice   = e2eUser{"arn:aws:iam::123456789012:user/alice", "AKIAE2EALICE00000001", "alice-e2e-secret", ""}
	e2eMallory = e2eUser{"arn:aws:iam::123456789012:user/mallory", "AKIAE2EMALLORY000001", "mallory-e2e-secret", ""}
	// The node: temporary credentials of the node role, session name = its instance ID.
	e2eNode = e2eUser{"arn:aws:sts::123456789012:assumed-role/eks-node-role/i-0123456789abcdef0", "ASIAE2ENODE000000001", "node-e2e-secret", "node-session-token-e2e"}
)

const e2eMapping = `apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    - rolearn: arn:aws:iam::123456789012:role/eks-node-role
      username: system:node:{{EC2PrivateDNSName}}
      groups:
        - system:bootstrappers
        - system:nodes
    - rolearn: arn:aws:iam::123456789012:role/developers
      username: dev:{{SessionName}}
      groups:
        - developers
  mapUsers: |
    - userarn: arn:aws:iam::123456789012:user/alice
      username: alice
      groups:
        - system:masters
`

// e2eEnv is a running fake STS and iamgate server.
type e2eEnv struct {
	sts        *fakests.Server
	kubeconfig string
	internal   string
	webhook    string
	stsURL     string // the fake STS, for clients' AWS_ENDPOINT_URL_STS
	logs       *testenv.LogBuffer
	stop       func() // stops the server and waits for it
}

func startE2E(t *testing.T, extraFlags ...string) *e2eEnv {
	t.Helper()
	return startE2EWith(t, true, extraFlags...)
}

// startE2EWith starts the environment and waits until the server is ready (a mapping
// loaded) or, without waitReady, only until it is alive.
func startE2EWith(t *testing.T, waitReady bool, extraFlags ...string) *e2eEnv {
	t.Helper()
	sts, err := fakests.New(fakests.Config{
		Users: []fakests.User{
			{ARN: e2eAlice.arn, AccessKeyID: e2eAlice.akid, SecretAccessKey: e2eAlice.secret},
			{ARN: e2eMallory.arn, AccessKeyID: e2eMallory.akid, SecretAccessKey: e2eMallory.secret},
		},
		Roles:     []fakests.Role{{ARN: "arn:aws:iam::123456789012:role/developers", Trust: []string{e2eAlice.arn}}},
		Sessions:  []fakests.Session{{ARN: e2eNode.arn, AccessKeyID: e2eNode.akid, SecretAccessKey: e2eNode.secret, SessionToken: e2eNode.session}},
		Instances: []fakests.Instance{{InstanceID: "i-0123456789abcdef0", PrivateDNSName: "ip-10-0-0-1.ec2.internal"}},
	}, fakests.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stsAddr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sts.Close() })

	dir := t.TempDir()
	webhookAddr, internalAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	var out, errOut strings.Builder
	if err := runInit(t.Context(), []string{"-out", dir, "-server.url", "https://" + webhookAddr + "/authenticate"}, &out, &errOut); err != nil {
		t.Fatalf("iamgate init: %s", err)
	}
	mappingFile := filepath.Join(dir, "aws-auth.yaml")
	if err := os.WriteFile(mappingFile, []byte(e2eMapping), 0o600); err != nil {
		t.Fatal(err)
	}
	// The daemon's EC2 client signs DescribeInstances with these (a fake STS user).
	t.Setenv("AWS_ACCESS_KEY_ID", e2eAlice.akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e2eAlice.secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	args := append([]string{
		"-cluster.id", "demo-cluster",
		"-webhook.listenAddr", webhookAddr, "-internal.listenAddr", internalAddr,
		"-tls.certFile", filepath.Join(dir, "cert.pem"), "-tls.keyFile", filepath.Join(dir, "key.pem"),
		"-mapping.file", mappingFile,
		"-sts.dialOverride", stsAddr, "-sts.insecureHTTP",
		"-ec2.endpoint", "http://" + stsAddr, "-ec2.region", "us-east-1",
		"-log.level", "warn",
	}, extraFlags...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &testenv.LogBuffer{}
	go func() { done <- runServer(ctx, args, io.Discard, logs) }()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("iamgate server returned %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("iamgate server did not stop")
			}
		})
	}
	t.Cleanup(stop)
	env := &e2eEnv{sts: sts, kubeconfig: filepath.Join(dir, "webhook-kubeconfig.yaml"), internal: "http://" + internalAddr,
		webhook: webhookAddr, stsURL: "http://" + stsAddr, logs: logs, stop: stop}
	deadline := time.Now().Add(15 * time.Second)
	probe := "/readyz"
	if !waitReady {
		probe = "/healthz"
	}
	for {
		resp, err := http.Get(env.internal + probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return env
			}
		}
		select {
		case err := <-done:
			done <- err // for the cleanup's stop, which would otherwise wait for it in vain
			t.Fatalf("iamgate server exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("iamgate server not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// authenticator builds what kube-apiserver builds from --authentication-token-webhook-config-file.
func (e *e2eEnv) authenticator(t *testing.T, version string, cached bool) authenticator.Token {
	t.Helper()
	cfg, err := utilwebhook.LoadKubeconfig(e.kubeconfig, nil)
	if err != nil {
		t.Fatalf("cannot load the webhook kubeconfig written by iamgate init: %s", err)
	}
	backoff := wait.Backoff{Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 3}
	auth, err := webhook.New(cfg, version, nil, backoff)
	if err != nil {
		t.Fatalf("cannot build the webhook authenticator: %s", err)
	}
	if cached {
		return tokencache.New(auth, false, 2*time.Minute, 2*time.Minute)
	}
	return auth
}

func mint(t *testing.T, u e2eUser) string {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", u.akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", u.secret)
	t.Setenv("AWS_SESSION_TOKEN", u.session)
	out, err := mintToken(t.Context(), tokenOptions{clusterID: "demo-cluster", region: "us-east-1", tokenOnly: true}, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func TestEndToEndWebhookAuthenticator(t *testing.T) {
	env := startE2E(t)
	tokens := map[string]string{
		"alice":   mint(t, e2eAlice),
		"mallory": mint(t, e2eMallory),
		"node":    mint(t, e2eNode),
	}
	for _, version := range []string{"v1", "v1beta1"} {
		for _, cached := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cached=%v", version, cached), func(t *testing.T) {
				auth := env.authenticator(t, version, cached)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for range 2 { // the second round exercises both caches
					resp, ok, err := auth.AuthenticateToken(ctx, tokens["alice"])
					if err != nil || !ok {
						t.Fatalf("unexpected result for alice: ok=%v err=%v", ok, err)
					}
					u := resp.User
					if u.GetName() != "alice" || strings.Join(u.GetGroups(), ",") != "system:masters" ||
						!strings.HasPrefix(u.GetUID(), "iamgate:123456789012:") ||
						u.GetExtra()["arn"][0] != e2eAlice.arn || u.GetExtra()["accessKeyId"][0] != e2eAlice.akid ||
						u.GetExtra()["sigs.k8s.io/aws-iam-authenticator/principalId"][0] == "" {
						t.Fatalf("unexpected user %+v", u)
					}
					resp, ok, err = auth.AuthenticateToken(ctx, tokens["node"])
					if err != nil || !ok || resp.User.GetName() != "system:node:ip-10-0-0-1.ec2.internal" ||
						strings.Join(resp.User.GetGroups(), ",") != "system:bootstrappers,system:nodes" ||
						resp.User.GetExtra()["sessionName"][0] != "i-0123456789abcdef0" {
						t.Fatalf("unexpected result for the node: %+v ok=%v err=%v", resp, ok, err)
					}
					for name, tok := range map[string]string{
						"unmapped user":  tokens["mallory"],
						"hostile token":  "k8s-aws-v1.aHR0cHM6Ly91c2VyOnB3QHN0cy5hbWF6b25hd3MuY29tLw",
						"garbage":        "not-even-a-token",
						"another prefix": "k8s-aws-v2." + strings.TrimPrefix(tokens["alice"], "k8s-aws-v1."),
					} {
						// A definite denial: not authenticated and, because status.error is
						// empty, no error, so kube-apiserver caches it and does not retry.
						if resp, ok, err := auth.AuthenticateToken(ctx, tok); ok || err != nil {
							t.Fatalf("unexpected result for %s: %+v ok=%v err=%v", name, resp, ok, err)
						}
					}
				}
			})
		}
	}
}

// TestMetricsMatchREADME scrapes /metrics of a running server and checks that the iamgate_
// metrics are exactly those the README's table lists.
func TestMetricsMatchREADME(t *testing.T) {
	env := startE2E(t)
	resp, err := http.Get(env.internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	served := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE iamgate_"); ok {
			served["iamgate_"+strings.Fields(name)[0]] = true
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `iamgate_"); ok {
			documented["iamgate_"+rest[:strings.Index(rest, "`")]] = true
		}
	}
	for name := range served {
		if !documented[name] {
			t.Errorf("metric %s is served but not in the README", name)
		}
	}
	for name := range documented {
		if !served[name] {
			t.Errorf("metric %s is in the README but not served", name)
		}
	}
	if len(served) < 15 {
		t.Fatalf("unexpected number of iamgate metrics; got %d", len(served))
	}
}

// TestEndToEndAWSCLIToken: a token from the real AWS CLI v2 is accepted end to end.
func TestEndToEndAWSCLIToken(t *testing.T) {
	aws := testenv.AWSCLIv2(t)
	env := startE2E(t)
	cmd := exec.Command(aws, "eks", "get-token", "--cluster-name", "demo-cluster", "--region", "eu-west-1")
	cmd.Env = testenv.AWSEnv(t, "AWS_ACCESS_KEY_ID="+e2eAlice.akid, "AWS_SECRET_ACCESS_KEY="+e2eAlice.secret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws eks get-token failed: %v", err)
	}
	var cred struct{ Status struct{ Token string } }
	if err := json.Unmarshal(out, &cred); err != nil {
		t.Fatal(err)
	}
	resp, ok, err := env.authenticator(t, "v1", false).AuthenticateToken(t.Context(), cred.Status.Token)
	if err != nil || !ok || resp.User.GetName() != "alice" {
		t.Fatalf("unexpected result for an AWS CLI v2 token: %+v ok=%v err=%v", resp, ok, err)
	}
	if got := env.sts.Stats().Count(fakests.ActionGetCallerIdentity, "ok"); got != 1 {
		t.Fatalf("unexpected verified STS calls; got %d; want 1", got)
	}
}

// TestNoTokenInLogs: at the most verbose level, the log names why reviews were denied and the
// canonical ARN of an unmapped identity, and never contains a token or a piece of one.
func TestNoTokenInLogs(t *testing.T) {
	env := startE2E(t, "-log.level", "debug")
	auth := env.authenticator(t, "v1", false)
	tokens := []string{mint(t, e2eAlice), mint(t, e2eMallory), mint(t, e2eNode),
		"k8s-aws-v1.aHR0cHM6Ly91c2VyOnB3QHN0cy5hbWF6b25hd3MuY29tLw", "k8s-aws-v1.SECRETLOOKINGGARBAGE_0123456789"}
	for _, tok := range tokens {
		if _, _, err := auth.AuthenticateToken(t.Context(), tok); err != nil {
			t.Fatalf("unexpected error: %s", err)
		}
	}
	env.stop()
	logs := env.logs.String()
	if !strings.Contains(logs, "identity is not mapped") || !strings.Contains(logs, "arn:aws:iam::123456789012:user/mallory") {
		t.Fatalf("unexpected logs: the unmapped identity's canonical ARN is missing:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="token denied" reason=bad_url`) {
		t.Fatalf("unexpected logs: the reason of a local rejection is missing:\n%s", logs)
	}
	for _, tok := range tokens {
		payload := strings.TrimPrefix(tok, "k8s-aws-v1.")
		// Any 16-byte window of the token must be absent, not only the whole token.
		for i := 0; i+16 <= len(payload); i += 8 {
			if strings.Contains(logs, payload[i:i+16]) {
				t.Fatalf("a piece of a token is in the logs: %q", payload[i:i+16])
			}
		}
	}
	for _, secret := range []string{e2eAlice.secret, e2eMallory.secret, e2eNode.secret, e2eNode.session, "X-Amz-Signature"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("unexpected secret material in the logs: %q", secret)
		}
	}
}

func TestServerFlagValidation(t *testing.T) {
	dir := t.TempDir()
	var out, errOut strings.Builder
	if err := runInit(t.Context(), []string{"-out", dir}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	mappingFile := filepath.Join(dir, "aws-auth.yaml")
	if err := os.WriteFile(mappingFile, []byte(e2eMapping), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	good := []string{"-cluster.id", "c", "-tls.certFile", filepath.Join(dir, "cert.pem"), "-tls.keyFile", filepath.Join(dir, "key.pem"),
		"-mapping.file", mappingFile, "-ec2.region", "us-east-1"}
	f := func(extra []string, wantErr string) {
		t.Helper()
		var out, errOut strings.Builder
		err := runServer(t.Context(), append(append([]string{}, good...), append(extra, "-dryRun")...), &out, &errOut)
		if wantErr == "" {
			if err != nil || !strings.Contains(out.String(), "mapping OK") {
				t.Fatalf("unexpected result for %q: %v %s", extra, err, out.String())
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("unexpected error for %q; got %v; want it to mention %q", extra, err, wantErr)
		}
	}
	f(nil, "")
	f([]string{"-cluster.id", ""}, "-cluster.id is required")
	f([]string{"-tls.certFile", ""}, "-tls.certFile and -tls.keyFile are required")
	f([]string{"-tls.keyFile", filepath.Join(dir, "ca.pem")}, "cannot load -tls.certFile")
	f([]string{"-mapping.file", ""}, "no mapping source")
	f([]string{"-mapping.file", filepath.Join(dir, "missing.yaml")}, "missing.yaml")
	f([]string{"-sts.timeout", "1ms"}, "-sts.timeout")
	f([]string{"-sts.maxConcurrency", "0"}, "-sts.maxConcurrency")
	f([]string{"-sts.insecureHTTP"}, "-sts.insecureHTTP needs -sts.dialOverride")
	f([]string{"-sts.partitions", "aws-moon"}, "unknown partition")
	f([]string{"-sts.extraRegions", "us-gov-east-9"}, "us-gov-east-9")
	f([]string{"-cache.ttl", "16m"}, "-cache.ttl")
	f([]string{"-cache.maxBytes", "1KiB"}, "-cache.maxBytes")
	f([]string{"-cache.maxBytes", "lots"}, "byte size")
	f([]string{"-webhook.insecureNoTLS", "-webhook.listenAddr", "0.0.0.0:21362"}, "loopback")
	f([]string{"-log.level", "loud"}, "-log.level")
	f([]string{"-sts.caFile", mappingFile}, "no PEM certificate")
}
