package daemon

import (
	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/sigv4"
)

// reason is why a review ended as it did. One table maps each reason to its metric label,
// its result and its HTTP status, so that every answer is written and counted the same way.
type reason uint8

const (
	reasonAllowed            reason = iota
	reasonSTSRejected               // STS said the signature, key or token is not valid
	reasonBadIdentity               // STS answered with an identity iamgate refuses [I1]
	reasonNotMapped                 // verified, but no mapping record matches
	reasonMappingDenied             // a record matched but renders no usable user [M3, M4]
	reasonSTSThrottled              // STS throttled us: 429, kube-apiserver retries
	reasonSTSQueueFull              // too many STS calls already wait: 429
	reasonSTSUnavailable            // STS cannot be reached or answered garbage: 503
	reasonMappingUnavailable        // a lookup the mapping needs (EC2) failed: 503
	reasonNotReady                  // no mapping loaded yet: 503
	reasonFirstToken                // the local token rejections follow, in sigv4.Rejections order
)

type result uint8

const (
	resultAllowed result = iota
	resultDenied
	resultError
	numResults
)

var resultNames = [numResults]string{"allowed", "denied", "error"}

type reasonInfo struct {
	label  string
	result result
	status int
	msg    string // for status.error with -review.reportErrors and for logs; never has input bytes
}

// reasons is indexed by reason. It is filled once at init and never written again.
var reasons = func() []reasonInfo {
	t := []reasonInfo{
		reasonAllowed:            {"ok", resultAllowed, fasthttp.StatusOK, ""},
		reasonSTSRejected:        {"sts_rejected", resultDenied, fasthttp.StatusOK, "STS rejected the token signature or credentials"},
		reasonBadIdentity:        {"bad_identity", resultDenied, fasthttp.StatusOK, "STS returned an identity of a kind iamgate does not accept"},
		reasonNotMapped:          {"not_mapped", resultDenied, fasthttp.StatusOK, "the IAM identity is not mapped to a Kubernetes user"},
		reasonMappingDenied:      {"mapping_denied", resultDenied, fasthttp.StatusOK, "the matching mapping record gives no usable username"},
		reasonSTSThrottled:       {"sts_throttled", resultError, fasthttp.StatusTooManyRequests, "STS is throttling: retry"},
		reasonSTSQueueFull:       {"sts_queue_full", resultError, fasthttp.StatusTooManyRequests, "too many STS calls in flight: retry"},
		reasonSTSUnavailable:     {"sts_unavailable", resultError, fasthttp.StatusServiceUnavailable, "STS is unavailable: retry"},
		reasonMappingUnavailable: {"mapping_unavailable", resultError, fasthttp.StatusServiceUnavailable, "a lookup needed by the mapping failed: retry"},
		reasonNotReady:           {"not_ready", resultError, fasthttp.StatusServiceUnavailable, "no mapping is loaded yet: retry"},
	}
	for _, e := range sigv4.Rejections {
		t = append(t, reasonInfo{e.Reason(), resultDenied, fasthttp.StatusOK, e.Error()})
	}
	return t
}()

// tokenReason maps a sigv4 rejection to its reason.
func tokenReason(err error) reason {
	for i, e := range sigv4.Rejections {
		if err == e {
			return reasonFirstToken + reason(i)
		}
	}
	panic("BUG: sigv4.Validate returned an error outside sigv4.Rejections")
}
