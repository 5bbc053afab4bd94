package daemon

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/iamgate/iamgate/sigv4"
)

// referenceCallerIdentity is encoding/json's reading of an STS answer into the fixed shape,
// what decodeCallerIdentity replaced: ok when it decodes and holds a Result.
func referenceCallerIdentity(body string) (callerIdentity, bool) {
	var answer struct {
		GetCallerIdentityResponse *struct {
			GetCallerIdentityResult *struct {
				Account string
				Arn     string
				UserID  string `json:"UserId"`
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.GetCallerIdentityResponse == nil ||
		answer.GetCallerIdentityResponse.GetCallerIdentityResult == nil {
		return callerIdentity{}, false
	}
	r := answer.GetCallerIdentityResponse.GetCallerIdentityResult
	return callerIdentity{Account: r.Account, Arn: r.Arn, UserID: r.UserID}, true
}

// TestDecodeCallerIdentityAsEncodingJSON: the scanner reads every answer as encoding/json
// would into the fixed shape (key case, repeated keys, null, unknown keys, escapes, nesting).
func TestDecodeCallerIdentityAsEncodingJSON(t *testing.T) {
	const (
		acct = `"Account":"123456789012"`
		arn  = `"Arn":"arn:aws:iam::123456789012:user/alice"`
		uid  = `"UserId":"AIDAEXAMPLE"`
	)
	result := func(fields ...string) string {
		return `{"GetCallerIdentityResult":{` + strings.Join(fields, ",") + `}}`
	}
	bodies := []string{
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid) + `}`,
		`{"getcalleridentityresponse":{"GETCALLERIDENTITYRESULT":{"account":"123456789012","ARN":"arn:aws:iam::123456789012:user/alice","userid":"AIDAEXAMPLE"}}}`,
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid, `"UserID":"AIDAOTHER"`) + `}`,
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid, `"Arn":null`) + `}`,
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid) + `,"GetCallerIdentityResponse":null}`,
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid) + `,"GetCallerIdentityResponse":null,"GetCallerIdentityResponse":{}}`,
		`{"GetCallerIdentityResponse":` + result(acct) + `,"GetCallerIdentityResponse":` + result(arn, uid) + `}`,
		`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{` + acct + `},"GetCallerIdentityResult":null}}`,
		`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":null,"GetCallerIdentityResult":{` + arn + `}}}`,
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid, `"Extra":[1,{"a":[true,false,null]},-2.5e3]`) + `,"ResponseMetadata":{"RequestId":"r"}}`,
		`{"GetCallerIdentityResponse":` + result(`"Acc\u006funt":"123456789012"`, `"Arn":"arn:aws:iam::123456789012:user/a\"b"`, uid) + `}`,
		`{"GetCallerIdentityResponse":` + result(`"Account":123456789012`, arn, uid) + `}`,
		`{"GetCallerIdentityResponse":"x"}`,
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid) + `}}`,
		`[` + `{"GetCallerIdentityResponse":` + result(acct, arn, uid) + `}]`,
		`{"GetCallerIdentityResponse":` + result(acct, arn, uid) + ` `,
		`null`,
		`{}`,
	}
	for _, body := range bodies {
		if msg := decodesAsEncodingJSON(body); msg != "" {
			t.Error(msg)
		}
	}
}

// FuzzDecodeCallerIdentity: on any body, the scanner and encoding/json agree (see
// decodesAsEncodingJSON), and nothing panics.
func FuzzDecodeCallerIdentity(f *testing.F) {
	f.Add(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"arn:aws:iam::123456789012:user/alice","UserId":"AIDA"}}}`)
	f.Add(`{"getcalleridentityresponse":{"GetCallerIdentityResult":{"ACCOUNT":"123456789012","Arn":"arn:aws:iam::123456789012:user/a\u0022","UserId":"AIDA","Arn":null}}}`)
	f.Add(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":null},"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"1"}}}`)
	f.Fuzz(func(t *testing.T, body string) {
		if msg := decodesAsEncodingJSON(body); msg != "" {
			t.Fatal(msg)
		}
	})
}

// decodesAsEncodingJSON says how decodeCallerIdentity and encoding/json disagree on body, or
// "": an identity the scanner returns is the one encoding/json reads, and a body encoding/json
// reads into a complete identity of the ARN's account is not refused, unless it is not UTF-8
// (encoding/json reads invalid bytes as U+FFFD; the scanner refuses the answer: STS never sends
// them, and an ARN is never guessed at).
func decodesAsEncodingJSON(body string) string {
	want, wantOK := referenceCallerIdentity(body)
	got, err := decodeCallerIdentity([]byte(body))
	if err != nil {
		if wantOK && utf8.ValidString(body) && want.Account != "" && want.Arn != "" && want.UserID != "" && arnOfAccount([]byte(want.Arn), []byte(want.Account)) {
			return fmt.Sprintf("decodeCallerIdentity(%q) failed: %v; encoding/json reads %+v", body, err, want)
		}
		return ""
	}
	if !wantOK || got != want {
		return fmt.Sprintf("decodeCallerIdentity(%q) = %+v; encoding/json reads %+v (ok %v)", body, got, want, wantOK)
	}
	return ""
}

// TestDecodeCallerIdentityAllocations: the answer of a cold review costs its three strings.
func TestDecodeCallerIdentityAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates: run without -race")
	}
	body := []byte(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012",` +
		`"Arn":"arn:aws:iam::123456789012:user/alice","UserId":"AIDAEXAMPLE"},"ResponseMetadata":{"RequestId":"r"}}}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeCallerIdentity(body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 3 {
		t.Fatalf("unexpected allocations decoding an STS answer; got %v; want at most 3", allocs)
	}
}

// TestFlightAllocations: a flight nobody waits for costs one allocation (the flight), and a
// review that waits for one gets its answer.
func TestFlightAllocations(t *testing.T) {
	var fs flights
	var key sigv4.Key
	key[0] = 1
	fs.join(&key) // make the map
	fs.land(&key, fs.byKey[key], flightResult{})
	if !raceEnabled {
		allocs := testing.AllocsPerRun(100, func() {
			f, started := fs.join(&key)
			if !started {
				t.Fatal("a flight was left in progress")
			}
			fs.land(&key, f, flightResult{reason: reasonAllowed})
		})
		if allocs > 1 {
			t.Fatalf("unexpected allocations of a flight nobody waits for; got %v; want at most 1", allocs)
		}
	}
	f, started := fs.join(&key)
	g, joined := fs.join(&key)
	if !started || joined || f != g {
		t.Fatalf("the second review did not join the flight in progress: started %v, joined %v", started, !joined)
	}
	done := make(chan reason, 1)
	go func() { _, why := g.wait(time.Minute); done <- why }()
	fs.land(&key, f, flightResult{reason: reasonSTSRejected})
	if why := <-done; why != reasonSTSRejected {
		t.Fatalf("the waiting review got %v; want %v", why, reasonSTSRejected)
	}
	if _, again := fs.join(&key); !again {
		t.Fatal("a landed flight is still in progress")
	}
}
