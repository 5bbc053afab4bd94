package daemon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
		want, wantOK := referenceCallerIdentity(body)
		got, err := decodeCallerIdentity([]byte(body))
		if err != nil {
			if wantOK && want.Account != "" && want.Arn != "" && want.UserID != "" && arnOfAccount([]byte(want.Arn), []byte(want.Account)) {
				t.Errorf("decodeCallerIdentity(%s) failed: %v; encoding/json reads %+v", body, err, want)
			}
			continue
		}
		if !wantOK || got != want {
			t.Errorf("decodeCallerIdentity(%s) = %+v; encoding/json reads %+v (ok %v)", body, got, want, wantOK)
		}
	}
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
