package fakests

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// awsCLI runs the real AWS CLI v2 (/usr/bin/aws) against the fake, isolated from the
// developer's files, IMDS and retries. It returns stdout and stderr.
func awsCLI(t *testing.T, s *Server, key, secret, token string, args ...string) (string, string, error) {
	t.Helper()
	bin := testenv.AWSCLIv2(t)
	home := t.TempDir()
	cmd := exec.Command(bin, append(args, "--output", "json")...)
	cmd.Env = []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID=" + key,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
		"AWS_RETRY_MODE=standard",
		"AWS_MAX_ATTEMPTS=1",
	}
	if token != "" {
		cmd.Env = append(cmd.Env, "AWS_SESSION_TOKEN="+token)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestAWSCLI drives the fake with the real AWS CLI v2: get-caller-identity with the
// configured ARN, SignatureDoesNotMatch for a wrong secret, assume-role then
// get-caller-identity as the assumed role, expired temporary credentials refused, and an
// `aws eks get-token` token verified through a GET with the right x-k8s-aws-id only.
func TestAWSCLI(t *testing.T) {
	testenv.AWSCLIv2(t)
	clock := &testClock{}
	s := startServer(t, testConfig(t), Options{Clock: clock.Now})
	endpoint := []string{"--endpoint-url", s.URL()}

	out, stderr, err := awsCLI(t, s, testUserKey, testUserSecret, "", append([]string{"sts", "get-caller-identity"}, endpoint...)...)
	if err != nil {
		t.Fatalf("cannot run aws sts get-caller-identity: %s: %s", err, stderr)
	}
	var id struct{ UserId, Account, Arn string }
	if err := json.Unmarshal([]byte(out), &id); err != nil || id.Arn != testUserARN || id.Account != testAccount {
		t.Errorf("unexpected get-caller-identity output; got %q (%v); want Arn %q", out, err, testUserARN)
	}

	_, stderr, err = awsCLI(t, s, testUserKey, testUserSecret+"x", "", append([]string{"sts", "get-caller-identity"}, endpoint...)...)
	if err == nil || !strings.Contains(stderr, "SignatureDoesNotMatch") {
		t.Errorf("unexpected result for a wrong secret; got %v %q; want SignatureDoesNotMatch", err, stderr)
	}

	out, stderr, err = awsCLI(t, s, testUserKey, testUserSecret, "", append([]string{"sts", "assume-role",
		"--role-arn", testRoleARN, "--role-session-name", "cli-session", "--duration-seconds", "900"}, endpoint...)...)
	if err != nil {
		t.Fatalf("cannot run aws sts assume-role: %s: %s", err, stderr)
	}
	var ar struct {
		Credentials struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string }
	}
	if err := json.Unmarshal([]byte(out), &ar); err != nil || !strings.HasPrefix(ar.Credentials.AccessKeyId, "ASIA") {
		t.Fatalf("unexpected assume-role output; got %q (%v)", out, err)
	}
	c := ar.Credentials
	out, stderr, err = awsCLI(t, s, c.AccessKeyId, c.SecretAccessKey, c.SessionToken, append([]string{"sts", "get-caller-identity"}, endpoint...)...)
	if err != nil {
		t.Fatalf("cannot run get-caller-identity with assumed-role credentials: %s: %s", err, stderr)
	}
	const wantARN = "arn:aws:sts::111122223333:assumed-role/eks-admins/cli-session"
	if err := json.Unmarshal([]byte(out), &id); err != nil || id.Arn != wantARN || !strings.HasSuffix(id.UserId, ":cli-session") {
		t.Errorf("unexpected assumed identity; got %q (%v); want Arn %q", out, err, wantARN)
	}

	clock.Shift(16 * time.Minute)
	_, stderr, err = awsCLI(t, s, c.AccessKeyId, c.SecretAccessKey, c.SessionToken, append([]string{"sts", "get-caller-identity"}, endpoint...)...)
	if err == nil || !strings.Contains(stderr, "ExpiredToken") {
		t.Errorf("unexpected result for expired credentials; got %v %q; want ExpiredToken", err, stderr)
	}
	clock.Shift(-16 * time.Minute)

	// aws eks get-token presigns for the real STS host without any network call.
	out, stderr, err = awsCLI(t, s, testUserKey, testUserSecret, "", "eks", "get-token", "--cluster-name", "demo")
	if err != nil {
		t.Fatalf("cannot run aws eks get-token: %s: %s", err, stderr)
	}
	var cred struct{ Status struct{ Token string } }
	if err := json.Unmarshal([]byte(out), &cred); err != nil || !strings.HasPrefix(cred.Status.Token, "k8s-aws-v1.") {
		t.Fatalf("unexpected get-token output; got %q (%v)", out, err)
	}
	u := decodeToken(t, cred.Status.Token)
	client := &http.Client{Timeout: 5 * time.Second}
	if status, body := tokenGET(t, client, s.Addr(), u, "demo", true); status != http.StatusOK || !strings.Contains(string(body), testUserARN) {
		t.Errorf("unexpected answer for the get-token token; got %d %s; want 200 with %s", status, body, testUserARN)
	}
	status, body := tokenGET(t, client, s.Addr(), u, "other", true)
	if code := errorCode(t, body); status != http.StatusForbidden || code != CodeSignatureDoesNotMatch {
		t.Errorf("unexpected answer for another cluster ID; got %d %q; want 403 %q", status, code, CodeSignatureDoesNotMatch)
	}
}
