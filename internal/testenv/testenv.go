// Package testenv finds the real external clients that tests drive (AWS CLI v2, kubectl, curl) and
// decides what happens when one is missing: a loud skip on a developer machine, a failure
// under CI=true, where a skipped test would hide a broken install step.
package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// awsCLIv2Path is Debian's awscli package. An AWS CLI v1 may come earlier on PATH, so the
// v2 binary is resolved by path and checked by its version banner.
const awsCLIv2Path = "/usr/bin/aws"

// AWSCLIv2 returns the path of AWS CLI v2 or skips (fails under CI=true) when it is missing.
func AWSCLIv2(tb testing.TB) string {
	tb.Helper()
	if !haveAWSCLIv2() {
		missing(tb, "AWS CLI v2 at "+awsCLIv2Path+" (Debian package awscli; `make test-tools` installs it)")
	}
	return awsCLIv2Path
}

// haveAWSCLIv2 asks the CLI for its version once per test binary: each start of the CLI takes
// a second or more on a busy machine.
var haveAWSCLIv2 = sync.OnceValue(func() bool {
	out, err := exec.Command(awsCLIv2Path, "--version").CombinedOutput()
	return err == nil && strings.HasPrefix(string(out), "aws-cli/2.")
})

// Kubectl returns the path of kubectl or skips (fails under CI=true) when it is missing.
func Kubectl(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		missing(tb, "kubectl")
	}
	return p
}

// Curl returns the path of a curl that speaks HTTP/2, or skips (fails under CI=true).
func Curl(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		missing(tb, "curl")
	}
	if out, err := exec.Command(p, "--version").Output(); err != nil || !strings.Contains(string(out), "HTTP2") {
		missing(tb, "curl with HTTP/2 (nghttp2)")
	}
	return p
}

func missing(tb testing.TB, what string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true and %s is missing: install it (make test-tools)", what)
	}
	tb.Skipf("SKIPPING: %s is missing; run `make test-tools`", what)
}

// AWSEnv returns the process environment without any AWS_* variable, plus an isolated HOME,
// no config files, no instance metadata, and the given KEY=VALUE pairs: a real AWS client run
// with it sees only what the test gives it.
func AWSEnv(tb testing.TB, kv ...string) []string {
	tb.Helper()
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_") && !strings.HasPrefix(e, "HOME=") {
			env = append(env, e)
		}
	}
	home := tb.TempDir()
	env = append(env, "HOME="+home,
		"AWS_CONFIG_FILE="+home+"/aws-config", "AWS_SHARED_CREDENTIALS_FILE="+home+"/aws-credentials",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	return append(env, kv...)
}

// EKSToken returns a fresh token of AWS CLI v2's `aws eks get-token` for clusterName in region,
// signed with the given long-term keys (the CLI presigns locally, without a network call), or
// skips (fails under CI=true) when the CLI is missing.
func EKSToken(tb testing.TB, clusterName, region, accessKeyID, secretAccessKey string) string {
	tb.Helper()
	cmd := exec.Command(AWSCLIv2(tb), "eks", "get-token", "--cluster-name", clusterName, "--region", region)
	cmd.Env = AWSEnv(tb, "AWS_ACCESS_KEY_ID="+accessKeyID, "AWS_SECRET_ACCESS_KEY="+secretAccessKey)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("aws eks get-token failed: %v", err)
	}
	var cred struct{ Status struct{ Token string } }
	if err := json.Unmarshal(out, &cred); err != nil {
		tb.Fatalf("cannot parse aws eks get-token output: %s", err)
	}
	return cred.Status.Token
}
