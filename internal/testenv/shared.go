package testenv

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SharedDir returns ../shared next to the repository root (the read-only spec and testdata
// every developer and CI has), found by walking up from the test's directory to go.mod.
func SharedDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("cannot get working directory: %s", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			shared := filepath.Join(filepath.Dir(dir), "shared")
			if _, err := os.Stat(filepath.Join(shared, "testdata")); err != nil {
				tb.Fatalf("cannot find shared testdata next to the repository: %s", err)
			}
			return shared
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("cannot find go.mod above the test directory")
		}
		dir = parent
	}
}

// RealToken is one line of shared/testdata/real-client-tokens.jsonl: a token made by a real
// client (AWS CLI v1/v2, aws-iam-authenticator) with the fake credentials that signed it.
type RealToken struct {
	Client          string `json:"client"`
	ClusterID       string `json:"cluster_id"`
	Region          string `json:"region"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	SignedAt        string `json:"signed_at"`
	Token           string `json:"token"`
}

// SignedTime parses SignedAt (the token's X-Amz-Date).
func (rt RealToken) SignedTime(tb testing.TB) time.Time {
	tb.Helper()
	t, err := time.Parse("20060102T150405Z", rt.SignedAt)
	if err != nil {
		tb.Fatalf("cannot parse signed_at %q: %s", rt.SignedAt, err)
	}
	return t
}

// RealClientTokens loads every token of shared/testdata/real-client-tokens.jsonl.
func RealClientTokens(tb testing.TB) []RealToken {
	tb.Helper()
	path := filepath.Join(SharedDir(tb), "testdata", "real-client-tokens.jsonl")
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("cannot open %s: %s", path, err)
	}
	defer f.Close()
	var out []RealToken
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rt RealToken
		if err := json.Unmarshal(sc.Bytes(), &rt); err != nil {
			tb.Fatalf("cannot parse %s: %s", path, err)
		}
		out = append(out, rt)
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("cannot read %s: %s", path, err)
	}
	if len(out) == 0 {
		tb.Fatalf("no tokens in %s", path)
	}
	return out
}

// TokenURL decodes a k8s-aws-v1. token into its presigned URL.
func TokenURL(tb testing.TB, token string) *url.URL {
	tb.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "k8s-aws-v1."))
	if err != nil {
		tb.Fatalf("cannot decode token: %s", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		tb.Fatalf("cannot parse token URL: %s", err)
	}
	return u
}
