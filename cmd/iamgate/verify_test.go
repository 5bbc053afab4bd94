package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// startVerifySTS runs a fake STS that knows alice and mallory.
func startVerifySTS(t *testing.T) string {
	t.Helper()
	sts, err := fakests.New(fakests.Config{Users: []fakests.User{
		{ARN: e2eAlice.arn, AccessKeyID: e2eAlice.akid, SecretAccessKey: e2eAlice.secret},
		{ARN: e2eMallory.arn, AccessKeyID: e2eMallory.akid, SecretAccessKey: e2eMallory.secret},
	}}, fakests.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sts.Close() })
	return addr
}

func TestVerifyCommand(t *testing.T) {
	addr := startVerifySTS(t)
	alice := mint(t, e2eAlice)
	run := func(stdin string, args ...string) (string, error) {
		var out, errOut strings.Builder
		args = append([]string{"-i", "demo-cluster", "-sts.dialOverride", addr, "-sts.insecureHTTP"}, args...)
		err := verifyWith(t.Context(), args, strings.NewReader(stdin), &out, &errOut, time.Now)
		return out.String(), err
	}
	out, err := run("", "-t", alice)
	if err != nil || !strings.Contains(out, "ARN:") || !strings.Contains(out, e2eAlice.arn) || !strings.Contains(out, e2eAlice.akid) {
		t.Fatalf("unexpected text output %q, error %v", out, err)
	}
	out, err = run(alice+"\n", "-o", "json")
	var got map[string]string
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got["canonicalArn"] != e2eAlice.arn ||
		got["account"] != "123456789012" || got["accessKeyId"] != e2eAlice.akid || !strings.HasPrefix(got["userId"], "AIDA") {
		t.Fatalf("unexpected JSON output %q, error %v", out, err)
	}
	if _, err := run("", "-t", "k8s-aws-v1.aHR0cHM6Ly9ldmlsLmV4YW1wbGUuY29tLw"); err == nil || !strings.Contains(err.Error(), "bad_host") {
		t.Fatalf("unexpected error for a foreign host; got %v; want a local bad_host rejection", err)
	}
	var out2, errOut strings.Builder
	err = verifyWith(t.Context(), []string{"-i", "other-cluster", "-sts.dialOverride", addr, "-sts.insecureHTTP", "-t", alice},
		strings.NewReader(""), &out2, &errOut, time.Now)
	if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("unexpected error for another cluster; got %v; want STS SignatureDoesNotMatch", err)
	}
	if err := verifyWith(t.Context(), []string{"-t", alice}, strings.NewReader(""), &out2, &errOut, time.Now); err == nil {
		t.Fatalf("unexpected success without -i")
	}
}

// TestExplainToken: `iamgate explain -token` verifies the token with STS and explains the
// identity behind it: mapped for alice, not mapped (exit status non-zero) for mallory.
func TestExplainToken(t *testing.T) {
	addr := startVerifySTS(t)
	mappingFile := filepath.Join(t.TempDir(), "aws-auth.yaml")
	if err := os.WriteFile(mappingFile, []byte(e2eMapping), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(token string) (string, error) {
		var out, errOut strings.Builder
		err := runExplain(t.Context(), []string{"-mapping.file", mappingFile, "-i", "demo-cluster",
			"-sts.dialOverride", addr, "-sts.insecureHTTP", "-token", token}, &out, &errOut)
		return out.String(), err
	}
	if out, err := run(mint(t, e2eAlice)); err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "system:masters") {
		t.Fatalf("unexpected explanation for alice: %q, error %v", out, err)
	}
	out, err := run(mint(t, e2eMallory))
	if err == nil || !strings.Contains(err.Error(), "not mapped") || !strings.Contains(out, e2eMallory.arn) {
		t.Fatalf("unexpected explanation for mallory: %q, error %v", out, err)
	}
	if _, err := run("k8s-aws-v1.garbage"); err == nil || !strings.Contains(err.Error(), "cannot verify -token") {
		t.Fatalf("unexpected result for a garbage token: %v", err)
	}
}
