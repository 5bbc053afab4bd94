package daemon

import (
	"errors"
	"strings"
	"testing"
)

// FuzzClassifySTSAnswer: no STS answer panics the classifier, every failure is a typed
// STSError with a plausible code, an identity only comes out of a 200 with every field set and
// the account in the ARN, a 5xx is never a rejection, and a 4xx is a rejection unless it asks
// to slow down or is a request timeout.
func FuzzClassifySTSAnswer(f *testing.F) {
	f.Add(200, []byte(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"arn:aws:iam::123456789012:user/alice","UserId":"AIDA"},"ResponseMetadata":{"RequestId":"r"}}}`))
	f.Add(403, []byte(`{"Error":{"Code":"SignatureDoesNotMatch","Message":"m","Type":"Sender"},"RequestId":"r"}`))
	f.Add(400, []byte(`{"Error":{"Code":"Throttling"}}`))
	f.Add(400, []byte(`{"Error":{"Code":"RequestTimeout"}}`))
	f.Add(400, []byte(`{"Error":{"Code":"InvalidAction"}}`))
	f.Add(503, []byte(`{"Error":{"Code":"ServiceUnavailable"}}`))
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
			if len(se.Code) > 64 || strings.Trim(se.Code, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
				t.Fatalf("unexpected code %q", se.Code)
			}
			switch {
			case status >= 500 && status < 600 && se.outcome == stsRejected:
				t.Fatalf("unexpected rejection for status %d", status)
			case status >= 400 && status < 500 && status != 408 && status != 429 && !throttleCodes[se.Code] &&
				se.Code != "RequestTimeout" && se.Code != "RequestTimeoutException" && se.outcome != stsRejected:
				t.Fatalf("unexpected outcome %s for status %d code %q; want rejected", se.outcome, status, se.Code)
			case (status < 400 || status >= 600) && se.outcome == stsRejected:
				t.Fatalf("unexpected rejection for status %d", status)
			}
			return
		}
		if status != 200 || id.Account == "" || id.Arn == "" || id.UserID == "" ||
			!strings.HasPrefix(id.Arn, "arn:") || strings.Split(id.Arn, ":")[4] != id.Account {
			t.Fatalf("unexpected identity %+v from status %d", id, status)
		}
	})
}
