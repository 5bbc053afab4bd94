package testenv

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// RealToken is one line of testdata/real-client-tokens.jsonl: a token made by a real
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

// realClientTokens is testdata/real-client-tokens.jsonl (see testdata/README.md), embedded so
// that the tests need no file outside the repository.
//
//go:embed testdata/real-client-tokens.jsonl
var realClientTokens []byte

// RealClientTokens returns every token of testdata/real-client-tokens.jsonl.
func RealClientTokens(tb testing.TB) []RealToken {
	tb.Helper()
	var out []RealToken
	sc := bufio.NewScanner(bytes.NewReader(realClientTokens))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rt RealToken
		if err := json.Unmarshal(sc.Bytes(), &rt); err != nil {
			tb.Fatalf("cannot parse real-client-tokens.jsonl: %s", err)
		}
		out = append(out, rt)
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("cannot read real-client-tokens.jsonl: %s", err)
	}
	if len(out) == 0 {
		tb.Fatalf("no tokens in real-client-tokens.jsonl")
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
