package main

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// The kubectl end-to-end test: the installed kubectl runs an exec plugin (`iamgate token` or
// `aws eks get-token`) and sends its token to a small TLS stand-in for kube-apiserver, which
// asks the running iamgate daemon through k8s.io/apiserver's webhook authenticator, as
// kube-apiserver does, and answers 200 or 401.

// standInAPIServer answers /api for authenticated requests and records the last username.
type standInAPIServer struct {
	*httptest.Server
	mu       sync.Mutex
	lastUser string
}

func startStandInAPIServer(t *testing.T, env *e2eEnv) *standInAPIServer {
	t.Helper()
	auth := env.authenticator(t, "v1", true)
	s := &standInAPIServer{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if ok {
			resp, authenticated, err := auth.AuthenticateToken(ctx, token)
			if err == nil && authenticated {
				s.mu.Lock()
				s.lastUser = resp.User.GetName()
				s.mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}`))
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *standInAPIServer) user() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastUser
}

// kubeconfigFor writes a kubeconfig whose user runs command args with env as exec plugin.
func (s *standInAPIServer) kubeconfigFor(t *testing.T, execAPIVersion, command string, args []string, env map[string]string) string {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: " + s.URL +
		"\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(ca) +
		"\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: " + execAPIVersion +
		"\n      command: " + command + "\n      interactiveMode: Never\n      args:\n")
	for _, a := range args {
		b.WriteString("      - " + a + "\n")
	}
	b.WriteString("      env:\n")
	for k, v := range env {
		b.WriteString("      - name: " + k + "\n        value: \"" + v + "\"\n")
	}
	b.WriteString("contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n")
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectl runs `kubectl get --raw /api` with kubeconfig and returns its combined output.
func kubectl(t *testing.T, kubeconfig string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.Kubectl(t), "--kubeconfig", kubeconfig, "get", "--raw", "/api")
	// Only the exec plugin's env from the kubeconfig: no AWS variables from the test process.
	cmd.Env = testenv.AWSEnv(t, "KUBECACHEDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func awsEnvFor(u e2eUser, stsURL string) map[string]string {
	home := os.TempDir()
	return map[string]string{
		"AWS_ACCESS_KEY_ID": u.akid, "AWS_SECRET_ACCESS_KEY": u.secret, "AWS_SESSION_TOKEN": u.session,
		"AWS_ENDPOINT_URL_STS": stsURL, "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE":             filepath.Join(home, "iamgate-test-no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "iamgate-test-no-aws-credentials"),
	}
}

func TestKubectlEndToEnd(t *testing.T) {
	testenv.Kubectl(t)
	bin := buildIamgate(t)
	env := startE2E(t)
	api := startStandInAPIServer(t, env)
	tokenArgs := []string{"token", "-i", "demo-cluster", "--region", "us-east-1"}

	for _, execAPI := range []string{"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"} {
		// A mapped identity: kubectl gets the API. The exec plugin answers in the apiVersion
		// kubectl announces in KUBERNETES_EXEC_INFO, or kubectl would refuse its output.
		out, err := kubectl(t, api.kubeconfigFor(t, execAPI, bin, tokenArgs, awsEnvFor(e2eAlice, env.stsURL)))
		if err != nil || !strings.Contains(out, "APIVersions") || api.user() != "alice" {
			t.Fatalf("%s: unexpected kubectl result for alice: %v\n%s", execAPI, err, out)
		}
		// An unmapped identity: the message every EKS user knows.
		out, err = kubectl(t, api.kubeconfigFor(t, execAPI, bin, tokenArgs, awsEnvFor(e2eMallory, env.stsURL)))
		if err == nil || !strings.Contains(out, "You must be logged in to the server (Unauthorized)") {
			t.Fatalf("%s: unexpected kubectl result for mallory: %v\n%s", execAPI, err, out)
		}
	}

	// --role: the plugin assumes a role in the fake STS first; mapRoles renders {{SessionName}}
	// with '@' replaced by '-'.
	roleArgs := append(append([]string{}, tokenArgs...), "--role", "arn:aws:iam::123456789012:role/developers", "--session-name", "alice@example.com")
	out, err := kubectl(t, api.kubeconfigFor(t, "client.authentication.k8s.io/v1", bin, roleArgs, awsEnvFor(e2eAlice, env.stsURL)))
	if err != nil || api.user() != "dev:alice-example.com" {
		t.Fatalf("unexpected kubectl result with --role: %v (user %q)\n%s", err, api.user(), out)
	}
	// mallory may not assume the role: the plugin fails with a clear error.
	out, err = kubectl(t, api.kubeconfigFor(t, "client.authentication.k8s.io/v1", bin, roleArgs, awsEnvFor(e2eMallory, env.stsURL)))
	if err == nil || !strings.Contains(out, "cannot assume role") {
		t.Fatalf("unexpected kubectl result for mallory with --role: %v\n%s", err, out)
	}
}

func TestKubectlWithAWSCLIExecPlugin(t *testing.T) {
	aws := testenv.AWSCLIv2(t)
	testenv.Kubectl(t)
	env := startE2E(t)
	api := startStandInAPIServer(t, env)
	args := []string{"eks", "get-token", "--cluster-name", "demo-cluster", "--region", "us-east-1"}
	cliEnv := func(u e2eUser) map[string]string {
		m := awsEnvFor(u, env.stsURL)
		delete(m, "AWS_SESSION_TOKEN")
		m["HOME"] = t.TempDir()
		return m
	}
	out, err := kubectl(t, api.kubeconfigFor(t, "client.authentication.k8s.io/v1beta1", aws, args, cliEnv(e2eAlice)))
	if err != nil || api.user() != "alice" {
		t.Fatalf("unexpected kubectl result with aws eks get-token for alice: %v\n%s", err, out)
	}
	out, err = kubectl(t, api.kubeconfigFor(t, "client.authentication.k8s.io/v1beta1", aws, args, cliEnv(e2eMallory)))
	if err == nil || !strings.Contains(out, "You must be logged in to the server (Unauthorized)") {
		t.Fatalf("unexpected kubectl result with aws eks get-token for mallory: %v\n%s", err, out)
	}
}
