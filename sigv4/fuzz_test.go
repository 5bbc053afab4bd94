package sigv4

import (
	"errors"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// FuzzValidate: no input panics; every error is one of the sentinels; every accepted token
// re-validates to the same canonical key and reads the same fields.
func FuzzValidate(f *testing.F) {
	for _, rt := range testenv.RealClientTokens(f) {
		f.Add([]byte(rt.Token))
	}
	f.Add(tokenOf(baseURL))
	f.Add(tokenOf(baseURL + "&x-amz-credential=AKIAEVILEVILEVIL0000%2F20261127%2Fus-east-1%2Fsts%2Faws4_request"))
	f.Add([]byte(TokenPrefix))
	v := testValidator(f, PartitionIDs()...)
	f.Fuzz(func(t *testing.T, token []byte) { checkValidate(t, v, token) })
}

// FuzzValidateURL fuzzes the decoded URL, so that the URL and query parsers see mutations
// that survive base64.
func FuzzValidateURL(f *testing.F) {
	f.Add(baseURL)
	f.Add(baseURL + "&x-amz-credential=AKIAEVILEVILEVIL0000%2F20261127%2Fus-east-1%2Fsts%2Faws4_request")
	f.Add("https://user:pw@sts.amazonaws.com:443/?Action=GetCallerIdentity#x")
	v := testValidator(f, PartitionIDs()...)
	f.Fuzz(func(t *testing.T, url string) { checkValidate(t, v, tokenOf(url)) })
}

func checkValidate(t *testing.T, v *Validator, token []byte) {
	now := baseTime.Add(time.Minute)
	var r Request
	err := v.Validate(token, now, &r)
	if err != nil {
		var re *RejectError
		if !errors.As(err, &re) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		for _, known := range Rejections {
			if err == known {
				return
			}
		}
		t.Fatalf("unexpected error outside the sentinel table: %v", err)
	}
	key, akid, url := r.CanonicalKey(), string(r.AccessKeyID()), string(r.URL())
	var again Request
	if err := v.Validate(append([]byte(nil), token...), now, &again); err != nil {
		t.Fatalf("unexpected error on re-validation: %v", err)
	}
	if again.CanonicalKey() != key || string(again.AccessKeyID()) != akid || string(again.URL()) != url {
		t.Fatalf("unexpected difference on re-validation")
	}
	// A reused Request must give the same answer as a fresh one.
	if err := v.Validate(token, now, &r); err != nil || r.CanonicalKey() != key {
		t.Fatalf("unexpected difference with a reused Request: %v", err)
	}
}

// FuzzForbiddenURLByte checks the eight-bytes-at-a-time scan against the obvious loop.
func FuzzForbiddenURLByte(f *testing.F) {
	f.Add([]byte(baseURL))
	f.Add([]byte("https://a/?b#c\x00\x7f\x80\x20\x21\x22\x23\x24"))
	f.Fuzz(func(t *testing.T, u []byte) {
		want := false
		for _, c := range u {
			if c <= ' ' || c >= 0x7f || c == '#' {
				want = true
			}
		}
		if got := hasForbiddenURLByte(u); got != want {
			t.Fatalf("unexpected result for %q; got %v; want %v", u, got, want)
		}
	})
}
