package signature

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/sigv4/internal/aws4"
)

// tokenURL decodes a k8s-aws-v1. token into its presigned URL.
func tokenURL(tb testing.TB, token string) *url.URL { return testenv.TokenURL(tb, token) }

// tokenRequest is the GET a verifier receives for the token with x-k8s-aws-id: clusterID.
func tokenRequest(u *url.URL, rawQuery, clusterID string) *Request {
	return &Request{
		Method:   http.MethodGet,
		Host:     u.Host,
		Path:     u.EscapedPath(),
		RawQuery: rawQuery,
		Header:   http.Header{"X-K8s-Aws-Id": {clusterID}},
	}
}

// check parses and verifies r with secret at now.
func check(r *Request, secret string, now time.Time) error {
	s, err := Parse(r)
	if err != nil {
		return err
	}
	if err := s.CheckTime(now); err != nil {
		return err
	}
	return s.Verify(r, secret)
}

// TestRealClientTokens: every real-client token verifies
// as a GET with its cluster ID and secret, and fails with a wrong secret, cluster ID or any
// changed query value.
func TestRealClientTokens(t *testing.T) {
	for _, rt := range testenv.RealClientTokens(t) {
		t.Run(rt.Client+"/"+rt.Region, func(t *testing.T) {
			u := tokenURL(t, rt.Token)
			now := rt.SignedTime(t).Add(time.Minute)
			r := tokenRequest(u, u.RawQuery, rt.ClusterID)
			s, err := Parse(r)
			if err != nil {
				t.Fatalf("unexpected error; got %v; want nil", err)
			}
			f := func(got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("unexpected field; got %q; want %q", got, want)
				}
			}
			f(s.AccessKeyID, rt.AccessKeyID)
			f(s.Region, rt.Region)
			f(s.Service, "sts")
			f(s.Date, rt.SignedAt[:8])
			f(s.SignedHeaders, "host;x-k8s-aws-id")
			f(s.SecurityToken, rt.SessionToken)
			f(s.SigningTime.Format("20060102T150405Z"), rt.SignedAt)
			if !s.Presigned || s.Expires != 60*time.Second {
				t.Errorf("unexpected presigned/expires; got %v/%s; want true/1m0s", s.Presigned, s.Expires)
			}
			if err := check(r, rt.SecretAccessKey, now); err != nil {
				t.Fatalf("unexpected error; got %v; want nil", err)
			}

			if err := check(r, rt.SecretAccessKey+"x", now); !errors.Is(err, ErrSignatureDoesNotMatch) {
				t.Errorf("unexpected error for a wrong secret; got %v; want %v", err, ErrSignatureDoesNotMatch)
			}
			wrongCluster := tokenRequest(u, u.RawQuery, rt.ClusterID+"-other")
			if err := check(wrongCluster, rt.SecretAccessKey, now); !errors.Is(err, ErrSignatureDoesNotMatch) {
				t.Errorf("unexpected error for a wrong cluster ID; got %v; want %v", err, ErrSignatureDoesNotMatch)
			}
			noCluster := tokenRequest(u, u.RawQuery, "")
			noCluster.Header = http.Header{}
			if err := check(noCluster, rt.SecretAccessKey, now); !errors.Is(err, ErrSignatureDoesNotMatch) {
				t.Errorf("unexpected error without a cluster ID; got %v; want %v", err, ErrSignatureDoesNotMatch)
			}
			wrongHost := tokenRequest(u, u.RawQuery, rt.ClusterID)
			wrongHost.Host = "sts.eu-central-1.amazonaws.com"
			if err := check(wrongHost, rt.SecretAccessKey, now); !errors.Is(err, ErrSignatureDoesNotMatch) {
				t.Errorf("unexpected error for a wrong host; got %v; want %v", err, ErrSignatureDoesNotMatch)
			}
			if err := check(r, rt.SecretAccessKey, rt.SignedTime(t).Add(16*time.Minute)); !errors.Is(err, ErrRequestExpired) {
				t.Errorf("unexpected error 16 minutes later; got %v; want %v", err, ErrRequestExpired)
			}

			// Change one character of every query value in turn: the token must fail.
			parts := strings.Split(u.RawQuery, "&")
			for i, p := range parts {
				k, v, _ := strings.Cut(p, "=")
				dv, err := url.QueryUnescape(v)
				if err != nil || dv == "" {
					t.Fatalf("cannot decode query value of %q", k)
				}
				for _, pos := range []int{0, len(dv) - 1} {
					c := byte('A')
					if dv[pos] == 'A' {
						c = 'B'
					}
					changed := dv[:pos] + string(c) + dv[pos+1:]
					q := append([]string(nil), parts...)
					q[i] = k + "=" + url.QueryEscape(changed)
					mr := tokenRequest(u, strings.Join(q, "&"), rt.ClusterID)
					if err := check(mr, rt.SecretAccessKey, now); err == nil {
						t.Errorf("unexpected success with %s changed at %d", k, pos)
					}
				}
			}

			// Key case matters to SigV4 as to the validator (which refuses it as bad_query): a
			// key in another case is another request and never verifies with the genuine
			// signature.
			for i, p := range parts {
				k, v, _ := strings.Cut(p, "=")
				q := append([]string(nil), parts...)
				q[i] = strings.ToLower(k) + "=" + v
				if err := check(tokenRequest(u, strings.Join(q, "&"), rt.ClusterID), rt.SecretAccessKey, now); err == nil {
					t.Errorf("unexpected success with the key %s in lower case", k)
				}
			}

			// Parameter order does not matter (SigV4 sorts them).
			rev := append([]string(nil), parts...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			if err := check(tokenRequest(u, strings.Join(rev, "&"), rt.ClusterID), rt.SecretAccessKey, now); err != nil {
				t.Errorf("unexpected error for reordered parameters; got %v; want nil", err)
			}
		})
	}
}

// TestPayloadHashFinding documents which payload hash real clients sign for a presigned
// GET: aws-sdk-go-v2's signer reproduces every real token's signature with the SHA-256 of the
// empty body, and never with UNSIGNED-PAYLOAD.
func TestPayloadHashFinding(t *testing.T) {
	for _, rt := range testenv.RealClientTokens(t) {
		u := tokenURL(t, rt.Token)
		q := u.Query()
		f := func(payloadHash string, wantMatch bool) {
			t.Helper()
			base := url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}, "X-Amz-Expires": {q.Get("X-Amz-Expires")}}
			req, err := http.NewRequest(http.MethodGet, "https://"+u.Host+"/?"+base.Encode(), nil)
			if err != nil {
				t.Fatalf("cannot build request: %s", err)
			}
			req.Header.Set("x-k8s-aws-id", rt.ClusterID)
			creds := aws.Credentials{AccessKeyID: rt.AccessKeyID, SecretAccessKey: rt.SecretAccessKey, SessionToken: rt.SessionToken}
			signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, payloadHash, "sts", rt.Region, rt.SignedTime(t))
			if err != nil {
				t.Fatalf("cannot presign: %s", err)
			}
			su, err := url.Parse(signed)
			if err != nil {
				t.Fatalf("cannot parse presigned URL: %s", err)
			}
			got := su.Query().Get("X-Amz-Signature") == q.Get("X-Amz-Signature")
			if got != wantMatch {
				t.Errorf("unexpected match of %s for %s; got %v; want %v", payloadHash, rt.Client, got, wantMatch)
			}
		}
		f(aws4.EmptyPayloadHash, true)
		f("UNSIGNED-PAYLOAD", false)
	}
}

var testCreds = []aws.Credentials{
	{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	{AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", SessionToken: "FwoGZXIvYXdzEXAMPLE/SESSION+TOKEN=="},
}

// TestSDKPresign: presigned GETs from aws-sdk-go-v2's signer verify.
func TestSDKPresign(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	for _, creds := range testCreds {
		for _, host := range []string{"sts.amazonaws.com", "sts.eu-west-1.amazonaws.com", "127.0.0.1:8443"} {
			req, err := http.NewRequest(http.MethodGet, "https://"+host+"/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Expires=60", nil)
			if err != nil {
				t.Fatalf("cannot build request: %s", err)
			}
			req.Header.Set("x-k8s-aws-id", "my cluster  id")
			signed, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, aws4.EmptyPayloadHash, "sts", "eu-west-1", at)
			if err != nil {
				t.Fatalf("cannot presign: %s", err)
			}
			u, err := url.Parse(signed)
			if err != nil {
				t.Fatalf("cannot parse presigned URL: %s", err)
			}
			hdr.Del("Host")
			r := &Request{Method: http.MethodGet, Host: u.Host, Path: u.EscapedPath(), RawQuery: u.RawQuery, Header: hdr}
			if err := check(r, creds.SecretAccessKey, at.Add(14*time.Minute)); err != nil {
				t.Errorf("unexpected error for %s; got %v; want nil", host, err)
			}
			if err := check(r, creds.SecretAccessKey[1:], at); !errors.Is(err, ErrSignatureDoesNotMatch) {
				t.Errorf("unexpected error for a wrong secret; got %v; want %v", err, ErrSignatureDoesNotMatch)
			}
		}
	}
}

// signedPOST signs the form POST that `aws sts get-caller-identity` sends.
func signedPOST(tb testing.TB, creds aws.Credentials, host, body string, at time.Time) *Request {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+host+"/", strings.NewReader(body))
	if err != nil {
		tb.Fatalf("cannot build request: %s", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
	req.Header.Set("User-Agent", "aws-sdk-go-v2/test")
	sum := sha256Hex([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sum, "sts", "us-east-1", at); err != nil {
		tb.Fatalf("cannot sign: %s", err)
	}
	// What the server sees: the Content-Length header the client sends.
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return &Request{Method: req.Method, Host: req.Host, Path: req.URL.EscapedPath(), RawQuery: req.URL.RawQuery, Header: req.Header, Body: []byte(body)}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return string(aws4.AppendHex(nil, h[:]))
}

// TestSDKSignPOST: header-signed form POSTs from aws-sdk-go-v2's signer verify, with
// and without a session token.
func TestSDKSignPOST(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	const body = "Action=GetCallerIdentity&Version=2011-06-15"
	for _, creds := range testCreds {
		r := signedPOST(t, creds, "127.0.0.1:4566", body, at)
		s, err := Parse(r)
		if err != nil {
			t.Fatalf("unexpected error; got %v; want nil", err)
		}
		if s.Presigned || s.AccessKeyID != creds.AccessKeyID || s.SecurityToken != creds.SessionToken {
			t.Errorf("unexpected parse; got %+v", s)
		}
		if err := check(r, creds.SecretAccessKey, at.Add(-14*time.Minute)); err != nil {
			t.Fatalf("unexpected error; got %v; want nil", err)
		}
		r.Body = []byte(body + "&RoleArn=x")
		r.Header.Set("Content-Length", strconv.Itoa(len(r.Body)))
		if err := check(r, creds.SecretAccessKey, at); !errors.Is(err, ErrSignatureDoesNotMatch) {
			t.Errorf("unexpected error for a changed body; got %v; want %v", err, ErrSignatureDoesNotMatch)
		}
		if err := check(r, creds.SecretAccessKey, at.Add(-16*time.Minute)); !errors.Is(err, ErrSignatureNotYetCurrent) {
			t.Errorf("unexpected error for a future date; got %v; want %v", err, ErrSignatureNotYetCurrent)
		}
	}
}

// TestParseErrors: each malformed signature gives its sentinel.
func TestParseErrors(t *testing.T) {
	const good = "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIDEXAMPLE%2F20261127%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20261127T014411Z" +
		"&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=" + aws4.EmptyPayloadHash
	fq := func(query string, want error) {
		t.Helper()
		_, err := Parse(&Request{Method: "GET", Host: "sts.amazonaws.com", Path: "/", RawQuery: query})
		if !errors.Is(err, want) {
			t.Errorf("unexpected error for %q; got %v; want %v", query, err, want)
		}
	}
	fq(good, nil)
	fq("Action=GetCallerIdentity", ErrMissingAuthenticationToken)
	fq("", ErrMissingAuthenticationToken)
	fq(strings.Replace(good, "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "X-Amz-Algorithm=AWS4-HMAC-SHA256&", "", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "&X-Amz-Signature=", "&X-Amz-Signature=", 1)+"&X-Amz-Signature=00", ErrIncompleteSignature)
	fq(strings.Replace(good, "%2Faws4_request", "%2Faws5_request", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "AKIDEXAMPLE%2F", "", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "AKIDEXAMPLE", "", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "%2F20261127%2F", "%2F20261128%2F", 1), ErrSignatureDoesNotMatch)
	fq(strings.Replace(good, "T014411Z", "T014461Z", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "20261127T", "20261327T", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "Expires=60", "Expires=060", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "Expires=60", "Expires=604801", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "host%3B", "", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "host%3B", "Host%3B", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "host%3B", "host%3B%3B", 1), ErrIncompleteSignature)
	fq(strings.Replace(good, "%2Fsts%2F", "%2Fsts%2G", 1), ErrSignatureDoesNotMatch)
	fq(strings.Replace(good, "X-Amz-Signature="+aws4.EmptyPayloadHash, "X-Amz-Signature=", 1), ErrIncompleteSignature)

	const auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + aws4.EmptyPayloadHash
	fh := func(authorization, date string, want error) {
		t.Helper()
		h := http.Header{"Authorization": {authorization}, "X-Amz-Date": {date}}
		_, err := Parse(&Request{Method: "POST", Host: "sts.amazonaws.com", Path: "/", Header: h})
		if !errors.Is(err, want) {
			t.Errorf("unexpected error for %q %q; got %v; want %v", authorization, date, err, want)
		}
	}
	fh(auth, "20261127T014411Z", nil)
	fh(strings.ReplaceAll(auth, ", ", ","), "20261127T014411Z", nil)
	fh(auth, "", ErrIncompleteSignature)
	fh(auth, "20261127T0144", ErrIncompleteSignature)
	fh(auth, "20261126T014411Z", ErrSignatureDoesNotMatch)
	fh("AWS AKIDEXAMPLE:c2lnbmF0dXJl", "20261127T014411Z", ErrIncompleteSignature)
	fh("AWS4-HMAC-SHA256", "20261127T014411Z", ErrIncompleteSignature)
	fh("AWS4-HMAC-SHA256Credential=x", "20261127T014411Z", ErrIncompleteSignature)
	fh(strings.Replace(auth, "Signature=", "Signature=1, Signature=", 1), "20261127T014411Z", ErrIncompleteSignature)
	fh(strings.Replace(auth, ", Signature=", ", Foo=bar, Signature=", 1), "20261127T014411Z", ErrIncompleteSignature)
	fh(strings.Replace(auth, "SignedHeaders=", "SignedHeaders=;", 1), "20261127T014411Z", ErrIncompleteSignature)

	h := http.Header{"Authorization": {auth}, "X-Amz-Date": {"20261127T014411Z"}}
	_, err := Parse(&Request{Method: "GET", Host: "sts.amazonaws.com", Path: "/", RawQuery: good, Header: h})
	if !errors.Is(err, ErrIncompleteSignature) {
		t.Errorf("unexpected error for both modes; got %v; want %v", err, ErrIncompleteSignature)
	}
}

// TestCheckTime: the 15-minute window on both sides, X-Amz-Expires ignored.
func TestCheckTime(t *testing.T) {
	at := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	s := &Signed{SigningTime: at, Expires: time.Second}
	f := func(now time.Time, want error) {
		t.Helper()
		if err := s.CheckTime(now); !errors.Is(err, want) {
			t.Errorf("unexpected error at %s; got %v; want %v", now, err, want)
		}
	}
	f(at, nil)
	f(at.Add(time.Minute), nil)
	f(at.Add(15*time.Minute), nil)
	f(at.Add(15*time.Minute+time.Nanosecond), ErrRequestExpired)
	f(at.Add(-15*time.Minute), nil)
	f(at.Add(-15*time.Minute-time.Second), ErrSignatureNotYetCurrent)
}

// TestCanonicalQuery: the query is decoded and re-encoded with AWS's rules and sorted
// by key then value.
func TestCanonicalQuery(t *testing.T) {
	f := func(raw, want string) {
		t.Helper()
		got, ok := appendCanonicalQuery(nil, raw, true)
		if !ok || string(got) != want {
			t.Errorf("unexpected canonical query of %q; got %q (ok=%v); want %q", raw, got, ok, want)
		}
	}
	f("", "")
	f("b=2&a=1", "a=1&b=2")
	f("a=2&a=1&a", "a=&a=1&a=2")
	f("x=a+b%20c&y=%7e%41", "x=a%20b%20c&y=~A")
	f("k=%2f%3B&X-Amz-Signature=abc", "k=%2F%3B")
	f("&&a=1&", "a=1")
	f("p=%E2%82%AC!*'()", "p=%E2%82%AC%21%2A%27%28%29")
	for _, bad := range []string{"a=%", "a=%4", "a=%zz", "%g0=1"} {
		if _, ok := appendCanonicalQuery(nil, bad, true); ok {
			t.Errorf("unexpected success for %q", bad)
		}
	}
}

// TestCanonicalHeaders: values trimmed, inner spaces collapsed, multiple values joined.
func TestCanonicalHeaders(t *testing.T) {
	r := &Request{Host: " Example.com ", Header: http.Header{
		"X-Multi":      {" a  b ", "c"},
		"x-lowercase":  {"v"},
		"X-K8s-Aws-Id": {"\tdemo \t cluster"},
	}}
	s := &Signed{}
	f := func(name, want string) {
		t.Helper()
		if got := string(s.appendHeaderValue(nil, r, name)); got != want {
			t.Errorf("unexpected value of %s; got %q; want %q", name, got, want)
		}
	}
	f("host", "Example.com")
	f("x-multi", "a b,c")
	f("x-lowercase", "v")
	f("x-k8s-aws-id", "demo cluster")
	f("x-absent", "")
}

// TestVerifyAllocs guards the zero-allocation verification of a token GET.
func TestVerifyAllocs(t *testing.T) {
	rt := testenv.RealClientTokens(t)[3] // the one with a session token
	u := tokenURL(t, rt.Token)
	r := tokenRequest(u, u.RawQuery, rt.ClusterID)
	s, err := Parse(r)
	if err != nil {
		t.Fatalf("unexpected error; got %v; want nil", err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.Verify(r, rt.SecretAccessKey); err != nil {
			t.Fatalf("unexpected error; got %v; want nil", err)
		}
	})
	if allocs != 0 {
		t.Errorf("unexpected allocations in Verify; got %v; want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := Parse(r); err != nil {
			t.Fatalf("unexpected error; got %v; want nil", err)
		}
	})
	if allocs > 1 {
		t.Errorf("unexpected allocations in Parse; got %v; want at most 1", allocs)
	}
}

func benchTokenRequest(b *testing.B) (*Request, string) {
	rt := testenv.RealClientTokens(b)[3]
	u := tokenURL(b, rt.Token)
	return tokenRequest(u, u.RawQuery, rt.ClusterID), rt.SecretAccessKey
}

// BenchmarkSignatureVerify: parse and verify a token GET (what the fake STS does per request).
func BenchmarkSignatureVerify(b *testing.B) {
	r, secret := benchTokenRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		s, err := Parse(r)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Verify(r, secret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignatureVerifyParallel(b *testing.B) {
	r, secret := benchTokenRequest(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, err := Parse(r)
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Verify(r, secret); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSignatureSDKBaseline: the same signature computed by aws-sdk-go-v2's signer.
func BenchmarkSignatureSDKBaseline(b *testing.B) {
	rt := testenv.RealClientTokens(b)[3]
	u := tokenURL(b, rt.Token)
	q := u.Query()
	q.Del("X-Amz-Signature")
	q.Del("X-Amz-Security-Token")
	want := u.Query().Get("X-Amz-Signature")
	creds := aws.Credentials{AccessKeyID: rt.AccessKeyID, SecretAccessKey: rt.SecretAccessKey, SessionToken: rt.SessionToken}
	at := rt.SignedTime(b)
	signer := v4.NewSigner()
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, "https://"+u.Host+"/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Expires=60", nil)
		req.Header.Set("x-k8s-aws-id", rt.ClusterID)
		signed, _, err := signer.PresignHTTP(context.Background(), creds, req, aws4.EmptyPayloadHash, "sts", rt.Region, at)
		if err != nil || !bytes.Contains([]byte(signed), []byte(want)) {
			b.Fatalf("unexpected presign; got %v", err)
		}
	}
}
