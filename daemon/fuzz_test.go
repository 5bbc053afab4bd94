package daemon

import (
	"errors"
	"strings"
	"testing"
)

// FuzzClassifySTSAnswer: no STS answer panics the classifier, every failure is a typed
// STSError, and an identity only comes out of a 200 with every field set and the account in
// the ARN.
func FuzzClassifySTSAnswer(f *testing.F) {
	f.Add(200, []byte(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"arn:aws:iam::123456789012:user/alice","UserId":"AIDA"},"ResponseMetadata":{"RequestId":"r"}}}`))
	f.Add(403, []byte(`{"Error":{"Code":"SignatureDoesNotMatch","Message":"m","Type":"Sender"},"RequestId":"r"}`))
	f.Add(400, []byte(`{"Error":{"Code":"Throttling"}}`))
	f.Add(200, []byte(`<GetCallerIdentityResponse><Arn>arn:aws:iam::123456789012:user/x</Arn></GetCallerIdentityResponse>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		id, err := classifySTSAnswer(status, body)
		if err != nil {
			var se *STSError
			if !errors.As(err, &se) {
				t.Fatalf("unexpected untyped error %v", err)
			}
			if id != (callerIdentity{}) {
				t.Fatalf("unexpected identity with an error")
			}
			return
		}
		if status != 200 || id.Account == "" || id.Arn == "" || id.UserID == "" ||
			!strings.HasPrefix(id.Arn, "arn:") || strings.Split(id.Arn, ":")[4] != id.Account {
			t.Fatalf("unexpected identity %+v from status %d", id, status)
		}
	})
}
