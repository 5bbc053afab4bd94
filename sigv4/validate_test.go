package sigv4

import (
	"encoding/base64"

	"errors"
	"github.com/aws/aws-sdk-go-v2/aws"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// baseURL is the URL inside the AWS CLI v2 token of internal/testenv/testdata (signed at baseTime).
const baseURL = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15" +
	"&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
	"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261127%2Fus-east-1%2Fsts%2Faws4_request" +
	"&X-Amz-Date=20261127T014411Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" +
	"&X-Amz-Signature=9cf309b3ec6b17b2fab8b19025799010986af51cc6a9d4ff563bc1f7b1dea4a7"

var baseTime = time.Date(2026, 11, 27, 1, 44, 11, 0, time.UTC)

func tokenOf(url string) []byte {
	return []byte(TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(url)))
}

func testValidator(t testing.TB, partitions ...string) *Validator {
	t.Helper()
	if len(partitions) == 0 {
		partitions = []string{"aws"}
	}
	hosts, err := NewAllowList(partitions, nil)
	if err != nil {
		t.Fatalf("cannot build allow-list: %s", err)
	}
	return NewValidator(hosts, DefaultMaxClockSkew)
}

func TestValidateRealClientTokens(t *testing.T) {
	v := testValidator(t)
	var r Request
	for _, rt := range testenv.RealClientTokens(t) {
		signedAt := rt.SignedTime(t)
		if err := v.Validate([]byte(rt.Token), signedAt.Add(time.Minute), &r); err != nil {
			t.Fatalf("%s: unexpected error at signed_at+1m; got %v; want nil", rt.Client, err)
		}
		if got := string(r.AccessKeyID()); got != rt.AccessKeyID {
			t.Fatalf("%s: unexpected access key ID; got %q; want %q", rt.Client, got, rt.AccessKeyID)
		}
		wantRegion := rt.Region
		if got := r.Region(); got != wantRegion {
			t.Fatalf("%s: unexpected region; got %q; want %q", rt.Client, got, wantRegion)
		}
		if got := r.HasSessionToken(); got != (rt.SessionToken != "") {
			t.Fatalf("%s: unexpected HasSessionToken; got %v", rt.Client, got)
		}
		if !r.SignedAt().Equal(signedAt) || !r.ExpiresAt().Equal(signedAt.Add(15*time.Minute)) {
			t.Fatalf("%s: unexpected times; got %s..%s", rt.Client, r.SignedAt(), r.ExpiresAt())
		}
		if err := v.Validate([]byte(rt.Token), signedAt.Add(16*time.Minute), &r); !errors.Is(err, ErrExpired) {
			t.Fatalf("%s: unexpected error at signed_at+16m; got %v; want %v", rt.Client, err, ErrExpired)
		}
	}
}

// TestValidateHostile covers every rule V1–V11 with tokens the reference implementation
// accepts or that an attacker would try. Each case asserts its reason code.
func TestValidateHostile(t *testing.T) {
	v := testValidator(t)
	now := baseTime.Add(time.Minute)
	n := 0
	f := func(name string, token []byte, want error) {
		t.Helper()
		n++
		var r Request
		err := v.Validate(token, now, &r)
		if err != want { // sentinels are compared by identity on purpose
			t.Fatalf("%s: unexpected error; got %v; want %v", name, err, want)
		}
	}
	replace := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(baseURL, old) {
			t.Fatalf("BUG: %q is not in the base URL", old)
		}
		return tokenOf(strings.Replace(baseURL, old, new, 1))
	}
	good := tokenOf(baseURL)
	b64 := string(good[len(TokenPrefix):])

	f("the base token", good, nil)

	// [V1] size
	f("17 KiB", append(append([]byte{}, good...), strings.Repeat("A", 17<<10)...), ErrTokenTooLarge)
	// [V2] prefix and encoding
	f("empty", nil, ErrBadPrefix)
	f("v2 prefix", []byte("k8s-aws-v2."+b64), ErrBadPrefix)
	f("upper-case prefix", []byte("K8S-AWS-V1."+b64), ErrBadPrefix)
	f("no dot", []byte("k8s-aws-v1"+b64), ErrBadPrefix)
	f("prefix only", []byte(TokenPrefix), ErrBadEncoding)
	f("LF inside the base64", []byte(TokenPrefix+b64[:40]+"\n"+b64[40:]), ErrBadEncoding)
	f("CRLF inside the base64", []byte(TokenPrefix+b64[:40]+"\r\n"+b64[40:]), ErrBadEncoding)
	f("padding", []byte(TokenPrefix+base64.URLEncoding.EncodeToString([]byte(baseURL+"x"))), ErrBadEncoding)
	f("standard alphabet", []byte(TokenPrefix+base64.StdEncoding.EncodeToString([]byte(baseURL+"\xff\xfe"))), ErrBadEncoding)
	f("space", []byte(TokenPrefix+" "+b64), ErrBadEncoding)
	f("truncated base64 (len%4 == 1)", []byte(TokenPrefix+b64[:len(b64)/4*4+1]), ErrBadEncoding)
	f("non-zero padding bits", []byte(TokenPrefix+"aHR0cHN"), ErrBadEncoding)
	// [V3] URL shape
	f("http", tokenOf(strings.Replace(baseURL, "https://", "http://", 1)), ErrBadURL)
	f("upper-case scheme", tokenOf(strings.Replace(baseURL, "https://", "HTTPS://", 1)), ErrBadURL)
	f("userinfo", replace("https://", "https://user:pass@"), ErrBadURL)
	f("userinfo without password", replace("https://", "https://admin@"), ErrBadURL)
	f("port", replace("amazonaws.com/", "amazonaws.com:443/"), ErrBadURL)
	f("fragment", tokenOf(baseURL+"#frag"), ErrBadURL)
	f("fragment before the query", replace("com/?", "com/#?"), ErrBadURL)
	f("path", replace("com/?", "com/sts?"), ErrBadURL)
	f("double slash path", replace("com/?", "com//?"), ErrBadURL)
	f("no path", replace("com/?", "com?"), ErrBadURL)
	f("empty host", tokenOf(strings.Replace(baseURL, "sts.us-east-1.amazonaws.com", "", 1)), ErrBadURL)
	f("space in query", replace("Version=", "Version= "), ErrBadURL)
	f("NUL byte", replace("Version=", "Version=\x00"), ErrBadURL)
	f("tab", replace("&X-Amz-Date", "\t&X-Amz-Date"), ErrBadURL)
	f("non-ASCII", replace("Version=", "Version=\xc3\xa9"), ErrBadURL)
	f("backslash in host", replace("amazonaws.com/", "amazonaws.com\\evil.com/"), ErrBadURL)
	// [V4] host allow-list
	f("foreign host", replace("sts.us-east-1.amazonaws.com", "evil.example.com"), ErrBadHost)
	f("any sts label", replace("sts.us-east-1.amazonaws.com", "sts.evil.amazonaws.com"), ErrBadHost)
	f("GovCloud host for partition aws", replace("sts.us-east-1.amazonaws.com", "sts.us-gov-west-1.amazonaws.com"), ErrBadHost)
	f("China host for partition aws", replace("sts.us-east-1.amazonaws.com", "sts.cn-north-1.amazonaws.com.cn"), ErrBadHost)
	f("trailing dot", replace("amazonaws.com/", "amazonaws.com./"), ErrBadHost)
	f("suffix attack", replace("amazonaws.com/", "amazonaws.com.evil.com/"), ErrBadHost)
	f("IP address", replace("sts.us-east-1.amazonaws.com", "127.0.0.1"), ErrBadHost)
	f("IPv6 literal", replace("sts.us-east-1.amazonaws.com", "[--1]"), ErrBadHost)
	f("unknown region", replace("sts.us-east-1.amazonaws.com", "sts.us-east-9.amazonaws.com"), ErrBadHost)
	f("percent in host", replace("sts.us-east-1", "sts.us%2Deast-1"), ErrBadHost)
	f("upper-case host is the same host", replace("sts.us-east-1.amazonaws.com", "STS.US-EAST-1.AMAZONAWS.COM"), nil)
	// [V5] strict query
	f("CVE-2022-2385: credential twice in two cases", tokenOf(baseURL+"&x-amz-credential=AKIAEVILEVILEVIL0000%2F20261127%2Fus-east-1%2Fsts%2Faws4_request"), ErrBadQuery)
	f("action twice", tokenOf(baseURL+"&Action=GetCallerIdentity"), ErrBadQuery)
	f("date twice, different case", tokenOf(baseURL+"&X-AMZ-DATE=20261127T014411Z"), ErrBadQuery)
	// Key case: only the canonical spelling. A folded key would share the genuine token's cache
	// key and STS call while STS reads another request.
	f("lower-case X-Amz-Expires", replace("X-Amz-Expires=", "x-amz-expires="), ErrBadQuery)
	f("lower-case Action", replace("Action=", "action="), ErrBadQuery)
	f("upper-case Version", replace("Version=", "VERSION="), ErrBadQuery)
	f("lower-case X-Amz-Algorithm", replace("X-Amz-Algorithm=", "x-amz-algorithm="), ErrBadQuery)
	f("lower-case X-Amz-Credential", replace("X-Amz-Credential=", "x-amz-credential="), ErrBadQuery)
	f("lower-case X-Amz-Date", replace("X-Amz-Date=", "x-amz-date="), ErrBadQuery)
	f("mixed-case X-Amz-Signature", replace("X-Amz-Signature=", "X-amz-Signature="), ErrBadQuery)
	f("lower-case X-Amz-SignedHeaders", replace("X-Amz-SignedHeaders=", "X-Amz-Signedheaders="), ErrBadQuery)
	f("lower-case X-Amz-Security-Token", tokenOf(baseURL+"&x-amz-security-token=abc"), ErrBadQuery)
	f("unknown key", tokenOf(baseURL+"&Foo=bar"), ErrBadQuery)
	f("escaped key", replace("X-Amz-Date=", "X%2DAmz-Date="), ErrBadQuery)
	f("missing signature", tokenOf(strings.Split(baseURL, "&X-Amz-Signature")[0]), ErrBadQuery)
	f("missing credential", replace("&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261127%2Fus-east-1%2Fsts%2Faws4_request", ""), ErrBadQuery)
	f("empty value", replace("X-Amz-Expires=60", "X-Amz-Expires="), ErrBadQuery)
	f("empty security token", tokenOf(baseURL+"&X-Amz-Security-Token="), ErrBadQuery)
	f("key without =", tokenOf(baseURL+"&X-Amz-Security-Token"), ErrBadQuery)
	f("empty key", tokenOf(baseURL+"&=x"), ErrBadQuery)
	f("raw plus", replace("X-Amz-Expires=60", "X-Amz-Expires=+60"), ErrBadQuery)
	f("raw semicolon", replace("host%3Bx-k8s-aws-id", "host;x-k8s-aws-id"), ErrBadQuery)
	f("raw slash", replace("EXAMPLE%2F", "EXAMPLE/"), ErrBadQuery)
	f("bad escape", replace("EXAMPLE%2F", "EXAMPLE%zz"), ErrBadQuery)
	f("truncated escape", tokenOf(baseURL+"&X-Amz-Security-Token=abc%2"), ErrBadQuery)
	f("escaped NUL", tokenOf(baseURL+"&X-Amz-Security-Token=abc%00"), ErrBadQuery)
	f("escaped non-ASCII", tokenOf(baseURL+"&X-Amz-Security-Token=abc%C3%A9"), ErrBadQuery)
	f("trailing &", tokenOf(baseURL+"&"), ErrBadQuery)
	f("empty pair", replace("&Version", "&&Version"), ErrBadQuery)
	f("no query", tokenOf("https://sts.us-east-1.amazonaws.com/"), ErrBadQuery)
	f("empty query", tokenOf("https://sts.us-east-1.amazonaws.com/?"), ErrBadQuery)
	// [V6] action
	f("AssumeRole", replace("Action=GetCallerIdentity", "Action=AssumeRole"), ErrBadAction)
	f("lower-case action", replace("Action=GetCallerIdentity", "Action=getcalleridentity"), ErrBadAction)
	f("other version", replace("Version=2011-06-15", "Version=2011-06-16"), ErrBadAction)
	f("SigV2-era algorithm", replace("AWS4-HMAC-SHA256", "HMAC-SHA1"), ErrBadAction)
	// [V7] signed headers
	f("only host signed", replace("host%3Bx-k8s-aws-id", "host"), ErrUnsignedClusterID)
	f("extra signed header", replace("host%3Bx-k8s-aws-id", "host%3Bx-amz-date%3Bx-k8s-aws-id"), ErrUnsignedClusterID)
	f("unsorted signed headers", replace("host%3Bx-k8s-aws-id", "x-k8s-aws-id%3Bhost"), ErrUnsignedClusterID)
	f("upper-case signed header", replace("host%3Bx-k8s-aws-id", "host%3BX-K8S-AWS-ID"), ErrUnsignedClusterID)
	// [V8] credential scope
	f("scope for another service", replace("%2Fsts%2F", "%2Fiam%2F"), ErrBadCredential)
	f("scope for another region", replace("%2Fus-east-1%2F", "%2Feu-west-1%2F"), ErrBadCredential)
	f("scope date differs from X-Amz-Date", replace("%2F20261127%2F", "%2F20261126%2F"), ErrBadCredential)
	f("lower-case access key", replace("AKIAIOSFODNN7EXAMPLE", "akiaiosfodnn7example"), ErrBadCredential)
	f("short access key", replace("AKIAIOSFODNN7EXAMPLE", "AKIA1"), ErrBadCredential)
	f("long access key", replace("AKIAIOSFODNN7EXAMPLE", strings.Repeat("A", 129)), ErrBadCredential)
	f("extra scope part", replace("%2Faws4_request", "%2Faws4_request%2Fx"), ErrBadCredential)
	f("wrong terminator", replace("aws4_request", "aws4_requests"), ErrBadCredential)
	f("global host signed for us-east-2", tokenOf(strings.NewReplacer(
		"sts.us-east-1.amazonaws.com", "sts.amazonaws.com", "%2Fus-east-1%2F", "%2Fus-east-2%2F").Replace(baseURL)), ErrBadCredential)
	// [V9] expires
	f("expires +60", replace("X-Amz-Expires=60", "X-Amz-Expires=%2B60"), ErrBadExpires)
	f("expires 060", replace("X-Amz-Expires=60", "X-Amz-Expires=060"), ErrBadExpires)
	f("expires 901", replace("X-Amz-Expires=60", "X-Amz-Expires=901"), ErrBadExpires)
	f("expires -1", replace("X-Amz-Expires=60", "X-Amz-Expires=-1"), ErrBadExpires)
	f("expires 1e3", replace("X-Amz-Expires=60", "X-Amz-Expires=1e3"), ErrBadExpires)
	f("expires 0", replace("X-Amz-Expires=60", "X-Amz-Expires=0"), nil)
	f("expires 900", replace("X-Amz-Expires=60", "X-Amz-Expires=900"), nil)
	// [V10] date
	f("date without Z", replace("X-Amz-Date=20261127T014411Z", "X-Amz-Date=20261127T014411"), ErrBadDate)
	f("ISO date", replace("X-Amz-Date=20261127T014411Z", "X-Amz-Date=2026-11-27T01%3A44%3A11Z"), ErrBadDate)
	f("31 November", tokenOf(strings.NewReplacer("20261127", "20261131").Replace(baseURL)), ErrBadDate)
	f("hour 24", replace("T014411Z", "T244411Z"), ErrBadDate)
	f("far future", tokenOf(strings.NewReplacer("20261127", "20991127").Replace(baseURL)), ErrNotYetValid)
	f("6 minutes ahead", replace("T014411Z", "T015111Z"), ErrNotYetValid)
	f("4 minutes ahead is within skew", replace("T014411Z", "T014911Z"), nil)
	f("16 minutes old", replace("T014411Z", "T012811Z"), ErrExpired)
	f("a day old", tokenOf(strings.NewReplacer("20261127", "20261126").Replace(baseURL)), ErrExpired)
	// [V11] signature format
	f("upper-case signature", replace("9cf309b3ec6b", "9CF309B3EC6B"), ErrBadSignatureFormat)
	f("short signature", replace("a4a7", "a4a"), ErrBadSignatureFormat)
	f("non-hex signature", replace("a4a7", "a4ag"), ErrBadSignatureFormat)

	if n < 40 {
		t.Fatalf("unexpected number of cases; got %d; want at least 40", n)
	}
}

func TestValidateGovCloudAndPartitions(t *testing.T) {
	f := func(partitions []string, host, region string, want error) {
		t.Helper()
		v := testValidator(t, partitions...)
		url := strings.NewReplacer("sts.us-east-1.amazonaws.com", host, "%2Fus-east-1%2F", "%2F"+region+"%2F").Replace(baseURL)
		var r Request
		if err := v.Validate(tokenOf(url), baseTime, &r); err != want {
			t.Fatalf("%v %s: unexpected error; got %v; want %v", partitions, host, err, want)
		}
		if want == nil && r.Region() != region {
			t.Fatalf("%s: unexpected region; got %q; want %q", host, r.Region(), region)
		}
	}
	f([]string{"aws-us-gov"}, "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", nil)
	f([]string{"aws-us-gov"}, "sts.us-east-1.amazonaws.com", "us-east-1", ErrBadHost)
	f([]string{"aws-us-gov"}, "sts.amazonaws.com", "us-east-1", ErrBadHost)
	f([]string{"aws", "aws-us-gov"}, "sts.us-gov-east-1.amazonaws.com", "us-gov-east-1", nil)
	f([]string{"aws"}, "sts-fips.us-east-2.amazonaws.com", "us-east-2", nil)
	f([]string{"aws"}, "sts.us-west-2.api.aws", "us-west-2", nil)
	f([]string{"aws"}, "sts-fips.us-west-2.api.aws", "us-west-2", nil)
	f([]string{"aws"}, "sts.amazonaws.com", "us-east-1", nil)
	f([]string{"aws-cn"}, "sts.cn-north-1.amazonaws.com.cn", "cn-north-1", nil)
	f([]string{"aws-cn"}, "sts.cn-north-1.amazonaws.com", "cn-north-1", ErrBadHost)
	f([]string{"aws-iso-b"}, "sts.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1", nil)
	f([]string{"aws-eusc"}, "sts.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1", nil)

	// Only hosts that exist. FIPS: us-east-1/2, us-west-1/2, ca-central-1, ca-west-1; in
	// GovCloud the regular host is the FIPS one. Dual-stack: not in the ISO partitions.
	for _, r := range []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1"} {
		f([]string{"aws"}, "sts-fips."+r+".amazonaws.com", r, nil)
		f([]string{"aws"}, "sts-fips."+r+".api.aws", r, nil)
	}
	for _, r := range []string{"eu-west-1", "ap-southeast-2", "sa-east-1", "me-central-1"} {
		f([]string{"aws"}, "sts-fips."+r+".amazonaws.com", r, ErrBadHost)
		f([]string{"aws"}, "sts-fips."+r+".api.aws", r, ErrBadHost)
		f([]string{"aws"}, "sts."+r+".api.aws", r, nil)
	}
	f([]string{"aws-us-gov"}, "sts-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", ErrBadHost)
	f([]string{"aws-us-gov"}, "sts-fips.us-gov-east-1.api.aws", "us-gov-east-1", nil)
	f([]string{"aws-us-gov"}, "sts.us-gov-east-1.api.aws", "us-gov-east-1", nil)
	f([]string{"aws-cn"}, "sts-fips.cn-north-1.amazonaws.com.cn", "cn-north-1", ErrBadHost)
	f([]string{"aws-cn"}, "sts.cn-north-1.api.amazonwebservices.com.cn", "cn-north-1", nil)
	f([]string{"aws-eusc"}, "sts-fips.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1", ErrBadHost)
	f([]string{"aws-iso"}, "sts.us-iso-east-1.c2s.ic.gov", "us-iso-east-1", nil)
	f([]string{"aws-iso"}, "sts-fips.us-iso-east-1.c2s.ic.gov", "us-iso-east-1", ErrBadHost)
	f([]string{"aws-iso"}, "sts.us-iso-east-1.api.aws.ic.gov", "us-iso-east-1", ErrBadHost)
	f([]string{"aws-iso-b"}, "sts.us-isob-east-1.api.aws.scloud", "us-isob-east-1", ErrBadHost)
	f([]string{"aws-iso-e"}, "sts.eu-isoe-west-1.api.cloud-aws.adc-e.uk", "eu-isoe-west-1", ErrBadHost)
	f([]string{"aws-iso-f"}, "sts.us-isof-south-1.api.aws.hci.ic.gov", "us-isof-south-1", ErrBadHost)
}

// TestAllowListHosts pins the number of hosts per partition, so that a change of the table
// is a deliberate one.
func TestAllowListHosts(t *testing.T) {
	f := func(partition string, want int) {
		t.Helper()
		al, err := NewAllowList([]string{partition}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(al.Hosts()); got != want {
			t.Fatalf("unexpected number of hosts for %s; got %d; want %d: %v", partition, got, want, al.Hosts())
		}
	}
	f("aws", 36*2+6*2+1) // regular and dual-stack per region, FIPS both ways in 6, the global host
	f("aws-us-gov", 2*3)
	f("aws-cn", 2*2)
	f("aws-eusc", 1*2)
	f("aws-iso", 2)
	f("aws-iso-b", 2)
	f("aws-iso-e", 1)
	f("aws-iso-f", 2)
}

func TestAllowListExtraRegions(t *testing.T) {
	al, err := NewAllowList([]string{"aws"}, []string{"us-east-7"})
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	v := NewValidator(al, time.Minute)
	url := strings.NewReplacer("us-east-1", "us-east-7").Replace(baseURL)
	var r Request
	if err := v.Validate(tokenOf(url), baseTime, &r); err != nil {
		t.Fatalf("unexpected error for an extra region; got %v", err)
	}
	// An extra region has the regular and dual-stack hosts, no FIPS one.
	for host, want := range map[string]bool{"sts.us-east-7.api.aws": true, "sts-fips.us-east-7.amazonaws.com": false, "sts-fips.us-east-7.api.aws": false} {
		if got := al.lookup([]byte(host)) != nil; got != want {
			t.Fatalf("unexpected allow-list answer for %s; got %v; want %v", host, got, want)
		}
	}
	bad := func(partitions, extra []string) {
		t.Helper()
		if _, err := NewAllowList(partitions, extra); err == nil {
			t.Fatalf("unexpected success for partitions %v extra regions %v", partitions, extra)
		}
	}
	bad([]string{"aws"}, []string{"us-gov-east-9"}) // GovCloud region while only aws is enabled
	bad([]string{"aws"}, []string{"mars-1"})
	bad([]string{"aws-moon"}, nil)
	bad(nil, nil)
}

func TestCanonicalKey(t *testing.T) {
	v := testValidator(t)
	key := func(url string) Key {
		t.Helper()
		var r Request
		if err := v.Validate(tokenOf(url), baseTime, &r); err != nil {
			t.Fatalf("unexpected error for %q: %v", url, err)
		}
		return r.CanonicalKey()
	}
	want := key(baseURL)
	// Every order of the parameters is the same token to STS.
	base := strings.SplitN(baseURL, "?", 2)
	params := strings.Split(base[1], "&")
	for i := range params {
		rotated := append(append([]string{}, params[i:]...), params[:i]...)
		reversed := make([]string, len(rotated))
		for j := range rotated {
			reversed[len(rotated)-1-j] = rotated[j]
		}
		for _, ps := range [][]string{rotated, reversed} {
			if got := key(base[0] + "?" + strings.Join(ps, "&")); got != want {
				t.Fatalf("unexpected key for order %v; got %s; want %s", ps, got, want)
			}
		}
	}
	same := func(url string) {
		t.Helper()
		if got := key(url); got != want {
			t.Fatalf("unexpected key for %q; got %s; want %s", url, got, want)
		}
	}
	different := func(url string) {
		t.Helper()
		if got := key(url); got == want {
			t.Fatalf("unexpected equal key for %q", url)
		}
	}
	same(strings.ReplaceAll(baseURL, "%2F", "%2f"))                     // hex case of escapes
	same(strings.Replace(baseURL, "sts.us-east-1", "STS.US-EAST-1", 1)) // host case
	same(strings.Replace(baseURL, "Version=2011", "Version=%32011", 1)) // escaped unreserved byte
	different(strings.Replace(baseURL, "X-Amz-Expires=60", "X-Amz-Expires=61", 1))
	different(strings.Replace(baseURL, "a4a7", "a4a8", 1))
	different(baseURL + "&X-Amz-Security-Token=abc")
}

// TestPresignMatchesRealClients signs with the credentials and time of each real-client token
// and checks the result is the same token to STS (same canonical key, same signature).
func TestPresignMatchesRealClients(t *testing.T) {
	v := testValidator(t)
	for _, rt := range testenv.RealClientTokens(t) {
		signedAt := rt.SignedTime(t)
		mine, err := Presign(t.Context(), PresignInput{
			ClusterID:   rt.ClusterID,
			Region:      rt.Region,
			Global:      strings.Contains(rt.Client, "global endpoint"),
			Time:        signedAt,
			Credentials: awsCredentials(rt.AccessKeyID, rt.SecretAccessKey, rt.SessionToken),
		})
		if err != nil {
			t.Fatalf("%s: cannot presign: %s", rt.Client, err)
		}
		var a, b Request
		if err := v.Validate([]byte(mine), signedAt, &a); err != nil {
			t.Fatalf("%s: our token does not validate: %v", rt.Client, err)
		}
		if err := v.Validate([]byte(rt.Token), signedAt, &b); err != nil {
			t.Fatalf("%s: real token does not validate: %v", rt.Client, err)
		}
		if a.CanonicalKey() != b.CanonicalKey() {
			t.Fatalf("%s: unexpected canonical key; our URL %s; real URL %s", rt.Client, a.URL(), b.URL())
		}
	}
}

func TestPresignErrors(t *testing.T) {
	creds := awsCredentials("AKIAIOSFODNN7EXAMPLE", "secret", "")
	f := func(in PresignInput) {
		t.Helper()
		if tok, err := Presign(t.Context(), in); err == nil {
			t.Fatalf("unexpected success: %s", tok)
		}
	}
	f(PresignInput{Credentials: creds, Time: baseTime})                                   // no cluster ID
	f(PresignInput{ClusterID: "c", Time: baseTime})                                       // no credentials
	f(PresignInput{ClusterID: "c", Credentials: creds, Region: "mars-1", Time: baseTime}) // unknown region
	f(PresignInput{ClusterID: "c", Credentials: creds, Region: "eu-west-1", Global: true, Time: baseTime})
}

func TestValidateDoesNotAllocate(t *testing.T) {
	v := testValidator(t)
	now := baseTime.Add(time.Minute)
	for _, rt := range testenv.RealClientTokens(t) {
		token := []byte(rt.Token)
		now := rt.SignedTime(t).Add(time.Minute)
		var r Request
		allocs := testing.AllocsPerRun(100, func() {
			if err := v.Validate(token, now, &r); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			_ = r.CanonicalKey()
		})
		if allocs != 0 {
			t.Fatalf("%s: unexpected allocations; got %v; want 0", rt.Client, allocs)
		}
	}
	var r Request
	bad := tokenOf(baseURL + "&Foo=bar")
	if allocs := testing.AllocsPerRun(100, func() { _ = v.Validate(bad, now, &r) }); allocs != 0 {
		t.Fatalf("unexpected allocations for a rejection; got %v; want 0", allocs)
	}
}

func awsCredentials(akid, secret, session string) aws.Credentials {
	return aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: session}
}
