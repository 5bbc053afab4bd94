package daemon

import (
	"github.com/valyala/fasthttp"

	"github.com/iamgate/iamgate/sigv4"
)

// reason is why a review ended as it did. One table maps each reason to its metric label,
// its result and its HTTP status, so that every answer is written and counted the same way.
//
// "Cannot decide now" answers use only statuses that kube-apiserver's webhook client retries
// with its backoff (k8s.io/apiserver/pkg/util/webhook.DefaultShouldRetry: 429, 500, 504 and
// any other 5xx but 503), and never a Retry-After header. Measured through k8s.io/apiserver
// v0.37's webhook authenticator with kube-apiserver's default backoff (0.5 s, ×1.5, jitter
// 0.2, 5 steps), one authentication costs:
//
//	429, 500, 502 or 504, no Retry-After   5 calls over about 4.3 s, then an error (not cached)
//	503, no Retry-After                    1 call: the user gets 401 at once
//	503 with Retry-After: 0                11 calls at once (client-go's own retries), then 401
//	500 with Retry-After: 0                55 calls in about 4.7 s
//	429 or 503 with Retry-After: 1         55 calls over about 55 s
//
// client-go's REST client retries a 429 or 5xx carrying Retry-After itself, up to 10 times,
// sleeping the header's seconds, before the webhook backoff sees the error and retries it all
// again. Without the header each retry is one call, and a user waits about 4 s, not a minute.
type reason uint8

const (
	reasonAllowed            reason = iota
	reasonSTSRejected               // STS said the signature, key or token is not valid
	reasonBadIdentity               // STS answered with an identity iamgate refuses [I1]
	reasonNotMapped                 // verified, but no mapping record matches
	reasonMappingDenied             // a record matched but renders no usable user [M3, M4]
	reasonSTSThrottled              // STS throttled us: 429
	reasonSTSQueueFull              // too many STS calls already wait: 429
	reasonSTSUnavailable            // STS unreachable, 5xx or a malformed answer: 502
	reasonSTSTimeout                // STS did not answer within -sts.timeout: 504
	reasonMappingUnavailable        // a lookup the mapping needs (EC2) failed: 502
	reasonNotReady                  // no mapping loaded yet: 500
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
		reasonSTSUnavailable:     {"sts_unavailable", resultError, fasthttp.StatusBadGateway, "STS is unavailable: retry"},
		reasonSTSTimeout:         {"sts_timeout", resultError, fasthttp.StatusGatewayTimeout, "STS did not answer in time: retry"},
		reasonMappingUnavailable: {"mapping_unavailable", resultError, fasthttp.StatusBadGateway, "a lookup needed by the mapping failed: retry"},
		reasonNotReady:           {"not_ready", resultError, fasthttp.StatusInternalServerError, "no mapping is loaded yet: retry"},
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
