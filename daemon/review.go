package daemon

import (
	"errors"

	"github.com/iamgate/iamgate/mapping"
)

// The TokenReview codec: parseReview reads only apiVersion, kind and spec.token from a
// request, and appendAllowed and appendDenied write answers by appending to a caller's buffer,
// both on the JSON primitives of json.go. The body is untrusted: the whole document must be
// valid JSON, and the keys the codec reads must not repeat (two decoders picking different
// duplicates is how parser-differential attacks work).

const (
	apiVersionV1      = "authentication.k8s.io/v1"
	apiVersionV1beta1 = "authentication.k8s.io/v1beta1"
)

var (
	errBadKind       = errors.New("request is not a TokenReview")
	errBadAPIVersion = errors.New("request apiVersion is not authentication.k8s.io/v1 or v1beta1")
	errDuplicateKey  = errors.New("request has a duplicate apiVersion, kind, spec or token key")
	errNoToken       = errors.New("request has no spec.token")
)

// reviewRequest is what the webhook needs from a TokenReview. token aliases either the body
// or scratch; neither may be retained after the handler returns.
type reviewRequest struct {
	v1    bool // apiVersion v1, else v1beta1
	token []byte
}

// parseReview parses a TokenReview body: errBadJSON when it is not one valid JSON object,
// errDuplicateKey, errBadAPIVersion, errBadKind or errNoToken. scratch receives unescaped
// strings (a token with JSON escapes); it is returned, possibly grown, for reuse.
func parseReview(body []byte, scratch []byte) (reviewRequest, []byte, error) {
	sc := jsonScanner{buf: body, scratch: scratch[:0]}
	var rr reviewRequest
	var apiVersion, kind []byte
	var seen reviewKeys // the keys read so far, to refuse a second one
	spec := func(key []byte) (err error) {
		if string(key) != "token" {
			return sc.skipValue(2)
		}
		if err = seen.first(keyToken); err == nil {
			rr.token, err = sc.stringValue()
		}
		return err
	}
	err := sc.object(0, func(key []byte) (err error) {
		switch string(key) {
		case "apiVersion":
			if err = seen.first(keyAPIVersion); err == nil {
				apiVersion, err = sc.stringValue()
			}
		case "kind":
			if err = seen.first(keyKind); err == nil {
				kind, err = sc.stringValue()
			}
		case "spec":
			if err = seen.first(keySpec); err == nil {
				err = sc.object(1, spec)
			}
		default:
			err = sc.skipValue(1)
		}
		return err
	})
	if err == nil && !sc.atEnd() {
		err = errBadJSON // trailing bytes after the object
	}
	if err != nil {
		return rr, sc.scratch, err
	}
	switch string(apiVersion) {
	case apiVersionV1:
		rr.v1 = true
	case apiVersionV1beta1:
	default:
		return rr, sc.scratch, errBadAPIVersion
	}
	if string(kind) != "TokenReview" {
		return rr, sc.scratch, errBadKind
	}
	if len(rr.token) == 0 {
		return rr, sc.scratch, errNoToken
	}
	return rr, sc.scratch, nil
}

// reviewKeys is a set of the keys parseReview reads.
type reviewKeys uint8

const (
	keyAPIVersion reviewKeys = 1 << iota
	keyKind
	keySpec
	keyToken
)

// first adds key to the set, or returns errDuplicateKey when it is there already.
func (seen *reviewKeys) first(key reviewKeys) error {
	if *seen&key != 0 {
		return errDuplicateKey
	}
	*seen |= key
	return nil
}

// Answers. Every byte that does not depend on the identity is a constant. uid and extra are
// rendered from the cached Identity on each answer rather than kept rendered in the cache:
// that costs about a microsecond and saves about 500 bytes per cached identity.

const (
	answerV1Prefix      = `{"apiVersion":"` + apiVersionV1 + `","kind":"TokenReview","status":{`
	answerV1beta1Prefix = `{"apiVersion":"` + apiVersionV1beta1 + `","kind":"TokenReview","status":{`
)

func appendAnswerPrefix(dst []byte, v1 bool) []byte {
	if v1 {
		return append(dst, answerV1Prefix...)
	}
	return append(dst, answerV1beta1Prefix...)
}

// appendAllowed writes an authenticated answer (see docs/design.md: The answers).
func appendAllowed(dst []byte, v1 bool, username string, groups []string, id *mapping.Identity) []byte {
	dst = appendAnswerPrefix(dst, v1)
	dst = append(dst, `"authenticated":true,"user":{"username":`...)
	dst = appendJSONString(dst, username)
	dst = append(dst, `,"groups":[`...)
	for i, g := range groups {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, g)
	}
	dst = append(dst, "],"...)
	dst = appendUserTail(dst, id)
	return append(dst, "}}}"...)
}

// appendDenied writes an unauthenticated answer. errMsg goes to status.error only when set:
// kube-apiserver caches a denial only when status.error is empty (see docs/design.md: The answers).
func appendDenied(dst []byte, v1 bool, errMsg string) []byte {
	dst = appendAnswerPrefix(dst, v1)
	dst = append(dst, `"authenticated":false`...)
	if errMsg != "" {
		dst = append(dst, `,"error":`...)
		dst = appendJSONString(dst, errMsg)
	}
	return append(dst, "}}"...)
}

// appendUserTail writes uid (iamgate:<account>:<principal ID>) and extra (see docs/design.md:
// The answers), with the keys of the reference implementation for existing RBAC and audit
// tooling.
func appendUserTail(dst []byte, id *mapping.Identity) []byte {
	dst = append(dst, `"uid":"iamgate:`...)
	dst = appendJSONStringBody(dst, id.AccountID)
	dst = append(dst, ':')
	dst = appendJSONStringBody(dst, id.PrincipalID)
	dst = append(dst, `","extra":{`...)
	extra := [...]struct{ key, value string }{
		{"accessKeyId", id.AccessKeyID},
		{"arn", id.ARN},
		{"canonicalArn", id.CanonicalARN},
		{"principalId", id.PrincipalID},
		{"sessionName", id.SessionName},
		{"sigs.k8s.io/aws-iam-authenticator/principalId", id.PrincipalID},
	}
	for i, e := range extra {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, e.key...) // constant keys: nothing to escape
		dst = append(dst, `":[`...)
		dst = appendJSONString(dst, e.value)
		dst = append(dst, ']')
	}
	return append(dst, '}')
}
