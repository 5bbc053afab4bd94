package daemon

import (
	"encoding/json"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"

	"github.com/iamgate/iamgate/mapping"
)

func TestParseReview(t *testing.T) {
	f := func(body string, wantV1 bool, wantToken string) {
		t.Helper()
		rr, _, err := parseReview([]byte(body), nil)
		if err != nil {
			t.Fatalf("unexpected error for %s: %v", body, err)
		}
		if rr.v1 != wantV1 || string(rr.token) != wantToken {
			t.Fatalf("unexpected result for %s; got v1=%v token=%q; want v1=%v token=%q", body, rr.v1, rr.token, wantV1, wantToken)
		}
	}
	f(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"k8s-aws-v1.abc"}}`, true, "k8s-aws-v1.abc")
	f(`{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"k8s-aws-v1.abc"}}`, false, "k8s-aws-v1.abc")
	// What kube-apiserver really sends: metadata, audiences, an empty status, whitespace.
	f(`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},
	   "spec":{"token":"t","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}`, true, "t")
	f(` { "spec" : { "audiences" : [ ] , "token" : "k8s-aws-v1\u002eabc" } , "apiVersion" : "authentication.k8s.io/v1", "kind" : "TokenReview" } `, true, "k8s-aws-v1.abc")
	f(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"a\"b\\c\/d\ud83d\ude00"},"x":[1,-2.5e+3,true,false,null,{"y":[]}]}`, true, "a\"b\\c/d\U0001F600")
	// Keys are compared unescaped, as encoding/json does; keys the codec does not read may repeat.
	f(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"\u0074oken":"t"},"metadata":{"a":1,"a":2}}`, true, "t")

	bad := func(body string, want error) {
		t.Helper()
		if _, _, err := parseReview([]byte(body), nil); err != want {
			t.Fatalf("unexpected error for %q; got %v; want %v", body, err, want)
		}
	}
	const ok = `"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview"`
	bad(``, errBadJSON)
	bad(`[]`, errBadJSON)
	bad(`"TokenReview"`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t"}} x`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t"}}{}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t"},}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t"}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":'t'}}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t`+"\n"+`"}}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"\ud83d"}}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"`+"\xff"+`"}}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t"},"n":01}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t"},"deep":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":"t","token":"u"}}`, errDuplicateKey)
	bad(`{`+ok+`,"spec":{"token":"t"},"spec":{"token":"u"}}`, errDuplicateKey)
	bad(`{`+ok+`,"kind":"TokenReview","spec":{"token":"t"}}`, errDuplicateKey)
	bad(`{`+ok+`,"apiVersion":"authentication.k8s.io/v1","spec":{"token":"t"}}`, errDuplicateKey)
	bad(`{`+ok+`,"spec":{"token":"t","\u0074oken":"u"}}`, errDuplicateKey)
	bad(`{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview","spec":{"token":"t"}}`, errBadAPIVersion)
	bad(`{"kind":"TokenReview","spec":{"token":"t"}}`, errBadAPIVersion)
	bad(`{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview","spec":{"token":"t"}}`, errBadKind)
	bad(`{"apiVersion":"authentication.k8s.io/v1","kind":"tokenreview","spec":{"token":"t"}}`, errBadKind)
	bad(`{`+ok+`}`, errNoToken)
	bad(`{`+ok+`,"spec":{}}`, errNoToken)
	bad(`{`+ok+`,"spec":{"token":""}}`, errNoToken)
	bad(`{`+ok+`,"spec":{"token":1}}`, errBadJSON)
	bad(`{`+ok+`,"spec":{"token":null}}`, errBadJSON)
	bad(`{`+ok+`,"spec":"token"}`, errBadJSON)
}

func TestAnswersAreTokenReviews(t *testing.T) {
	tail, err := mapping.NewIdentity("arn:aws:sts::123456789012:assumed-role/dev/alice@example.com", "123456789012",
		"AROAEXAMPLE:alice@example.com", "ASIAEXAMPLE")
	if err != nil {
		t.Fatal(err)
	}
	f := func(body []byte, wantAPIVersion string, wantAuth bool, wantUser string, wantGroups []string, wantErr string) {
		t.Helper()
		var tr authv1.TokenReview
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tr); err != nil {
			t.Fatalf("cannot decode answer %s: %s", body, err)
		}
		if tr.APIVersion != wantAPIVersion || tr.Kind != "TokenReview" || tr.Status.Authenticated != wantAuth ||
			tr.Status.User.Username != wantUser || strings.Join(tr.Status.User.Groups, ",") != strings.Join(wantGroups, ",") ||
			tr.Status.Error != wantErr {
			t.Fatalf("unexpected answer %s", body)
		}
		if wantAuth {
			u := tr.Status.User
			if u.UID != "iamgate:123456789012:AROAEXAMPLE" || u.Extra["arn"][0] != "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com" ||
				u.Extra["canonicalArn"][0] != "arn:aws:iam::123456789012:role/dev" || u.Extra["sessionName"][0] != "alice@example.com" ||
				u.Extra["accessKeyId"][0] != "ASIAEXAMPLE" || u.Extra["principalId"][0] != "AROAEXAMPLE" ||
				u.Extra["sigs.k8s.io/aws-iam-authenticator/principalId"][0] != "AROAEXAMPLE" || len(u.Extra) != 6 {
				t.Fatalf("unexpected user %+v", u)
			}
		}
	}
	f(appendAllowed(nil, true, "alice", []string{"dev", "system:masters"}, &tail), apiVersionV1, true, "alice", []string{"dev", "system:masters"}, "")
	f(appendAllowed(nil, false, `we"ird<>&`+"\x01\xff", nil, &tail), apiVersionV1beta1, true, `we"ird<>&`+"\x01\uFFFD", nil, "")
	f(appendDenied(nil, true, ""), apiVersionV1, false, "", nil, "")
	f(appendDenied(nil, false, "not mapped"), apiVersionV1beta1, false, "", nil, "not mapped")
}

// FuzzParseReview checks the hand-written scanner against encoding/json: whatever it
// accepts must be valid JSON carrying the same apiVersion, kind and token, and nothing panics.
func FuzzParseReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"k8s-aws-v1.abc"}}`))
	f.Add([]byte(`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1beta1","metadata":{"creationTimestamp":null},"spec":{"token":"a\u0041\ud83d\ude00","audiences":["x",1.5e3,null]},"status":{}}`))
	f.Add([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"t","token":"u"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rr, _, err := parseReview(body, nil)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var doc struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Spec       struct {
				Token string `json:"token"`
			} `json:"spec"`
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("encoding/json refuses what we accepted: %s", err)
		}
		_ = json.Unmarshal(raw["apiVersion"], &doc.APIVersion)
		_ = json.Unmarshal(raw["kind"], &doc.Kind)
		var spec map[string]json.RawMessage
		_ = json.Unmarshal(raw["spec"], &spec)
		_ = json.Unmarshal(spec["token"], &doc.Spec.Token)
		if doc.Kind != "TokenReview" || doc.Spec.Token != string(rr.token) ||
			(doc.APIVersion == apiVersionV1) != rr.v1 {
			t.Fatalf("unexpected difference with encoding/json for %q: %+v vs token %q", body, doc, rr.token)
		}
	})
}
