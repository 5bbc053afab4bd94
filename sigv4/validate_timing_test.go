package sigv4

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/sigv4/internal/aws4"
)

// The baseline validates and keys a token the obvious way: base64 + net/url + url.Values,
// as most webhooks do. It checks the same rules, so the comparison is like for like.
func baselineValidate(al *AllowList, token string, now time.Time) ([32]byte, error) {
	var zero [32]byte
	if len(token) > MaxTokenSize || !strings.HasPrefix(token, TokenPrefix) {
		return zero, errors.New("bad token")
	}
	raw := token[len(TokenPrefix):]
	if strings.ContainsAny(raw, "\r\n=") {
		return zero, errors.New("bad encoding")
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return zero, err
	}
	u, err := url.Parse(string(b))
	if err != nil {
		return zero, err
	}
	if u.Scheme != "https" || u.User != nil || u.Port() != "" || u.Fragment != "" || u.Path != "/" {
		return zero, errors.New("bad url")
	}
	host := strings.ToLower(u.Hostname())
	info := al.hosts[host]
	if info == nil {
		return zero, errors.New("bad host")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return zero, err
	}
	seen := map[string]bool{}
	for k, vs := range q {
		lk := strings.ToLower(k)
		if seen[lk] || len(vs) != 1 {
			return zero, errors.New("duplicate")
		}
		seen[lk] = true
	}
	if q.Get("Action") != "GetCallerIdentity" || q.Get("Version") != "2011-06-15" ||
		q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return zero, errors.New("bad action")
	}
	if q.Get("X-Amz-SignedHeaders") != signedHeaders {
		return zero, errors.New("unsigned")
	}
	parts := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(parts) != 5 || parts[2] != info.region || parts[3] != "sts" {
		return zero, errors.New("bad credential")
	}
	date, err := time.Parse(aws4.DateLayout, q.Get("X-Amz-Date"))
	if err != nil || now.After(date.Add(ValidFor)) {
		return zero, errors.New("expired")
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	sb.WriteString(host)
	for _, k := range keys {
		sb.WriteString("&" + k + "=" + q.Get(k))
	}
	return sha256.Sum256([]byte(sb.String())), nil
}

func benchToken(b *testing.B) ([]byte, time.Time) {
	return tokenOf(baseURL), baseTime.Add(time.Minute)
}

func BenchmarkValidate(b *testing.B) {
	v := testValidator(b)
	token, now := benchToken(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(token)))
	var r Request
	for b.Loop() {
		if err := v.Validate(token, now, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateParallel(b *testing.B) {
	v := testValidator(b)
	token, now := benchToken(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(token)))
	b.RunParallel(func(pb *testing.PB) {
		var r Request
		for pb.Next() {
			if err := v.Validate(token, now, &r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkValidateAndKey(b *testing.B) {
	v := testValidator(b)
	token, now := benchToken(b)
	b.ReportAllocs()
	var r Request
	for b.Loop() {
		if err := v.Validate(token, now, &r); err != nil {
			b.Fatal(err)
		}
		_ = r.CanonicalKey()
	}
}

func BenchmarkValidateAndKeyParallel(b *testing.B) {
	v := testValidator(b)
	token, now := benchToken(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var r Request
		for pb.Next() {
			if err := v.Validate(token, now, &r); err != nil {
				b.Error(err)
				return
			}
			_ = r.CanonicalKey()
		}
	})
}

// BenchmarkCanonicalKey measures the key alone on an already validated Request.
func BenchmarkCanonicalKey(b *testing.B) {
	v := testValidator(b)
	token, now := benchToken(b)
	var r Request
	if err := v.Validate(token, now, &r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.CanonicalKey()
	}
}

func BenchmarkCanonicalKeyParallel(b *testing.B) {
	v := testValidator(b)
	token, now := benchToken(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var r Request
		if err := v.Validate(token, now, &r); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			_ = r.CanonicalKey()
		}
	})
}

// baselineCanonicalKey keys an already decoded URL the obvious way: parse the query, sort the
// keys, hash host and pairs.
func baselineCanonicalKey(rawURL string) [32]byte {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	sb.WriteString(strings.ToLower(u.Host))
	for _, k := range keys {
		sb.WriteString("&" + k + "=" + q.Get(k))
	}
	return sha256.Sum256([]byte(sb.String()))
}

func BenchmarkBaselineCanonicalKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = baselineCanonicalKey(baseURL)
	}
}

func BenchmarkBaselineCanonicalKeyParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = baselineCanonicalKey(baseURL)
		}
	})
}

// BenchmarkValidateReject measures a cheap local rejection (an unknown query key).
func BenchmarkValidateReject(b *testing.B) {
	v := testValidator(b)
	token := tokenOf(baseURL + "&Foo=bar")
	now := baseTime.Add(time.Minute)
	b.ReportAllocs()
	var r Request
	for b.Loop() {
		if err := v.Validate(token, now, &r); err != ErrBadQuery {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineValidateAndKey(b *testing.B) {
	al := testValidator(b).hosts
	token, now := benchToken(b)
	s := string(token)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := baselineValidate(al, s, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineValidateAndKeyParallel(b *testing.B) {
	al := testValidator(b).hosts
	token, now := benchToken(b)
	s := string(token)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := baselineValidate(al, s, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestBaselineAgrees keeps the baseline honest: it accepts the same good token and gives a
// stable key for reordered parameters, like the optimised code.
func TestBaselineAgrees(t *testing.T) {
	al := testValidator(t).hosts
	now := baseTime.Add(time.Minute)
	k1, err := baselineValidate(al, string(tokenOf(baseURL)), now)
	if err != nil {
		t.Fatalf("unexpected baseline error: %v", err)
	}
	parts := strings.SplitN(baseURL, "?", 2)
	ps := strings.Split(parts[1], "&")
	ps[0], ps[len(ps)-1] = ps[len(ps)-1], ps[0]
	k2, err := baselineValidate(al, string(tokenOf(parts[0]+"?"+strings.Join(ps, "&"))), now)
	if err != nil || k1 != k2 {
		t.Fatalf("unexpected baseline result for reordered token: %v", err)
	}
}
