package sigv4

// RejectError is a local rejection of a token with a stable reason code (docs/design.md, Token validation). The values
// are the sentinels below: compare with errors.Is, read the code with Reason. They never hold
// any byte of the token, so they are safe to log and to return to clients.
type RejectError struct {
	reason string
	msg    string
}

func (e *RejectError) Error() string { return e.msg }

// Reason is the snake_case reason code, used as a metric label value.
func (e *RejectError) Reason() string { return e.reason }

// The rejection reasons, in the order the rules are applied.
var (
	ErrTokenTooLarge      = &RejectError{"token_too_large", "token is larger than 16 KiB"}
	ErrBadPrefix          = &RejectError{"bad_prefix", "token does not start with k8s-aws-v1."}
	ErrBadEncoding        = &RejectError{"bad_encoding", "token is not base64url without padding"}
	ErrBadURL             = &RejectError{"bad_url", "token URL is not https://<host>/?<query> without userinfo, port or fragment"}
	ErrBadHost            = &RejectError{"bad_host", "token URL host is not an allowed STS endpoint"}
	ErrBadQuery           = &RejectError{"bad_query", "token query is malformed, has an unknown or repeated key, or lacks a required one"}
	ErrBadAction          = &RejectError{"bad_action", "token is not a SigV4 GetCallerIdentity request of version 2011-06-15"}
	ErrUnsignedClusterID  = &RejectError{"unsigned_cluster_id", "token must sign exactly the headers host and x-k8s-aws-id"}
	ErrBadCredential      = &RejectError{"bad_credential", "token credential scope is malformed or does not match its host and date"}
	ErrBadExpires         = &RejectError{"bad_expires", "token X-Amz-Expires is not a decimal between 0 and 900"}
	ErrBadDate            = &RejectError{"bad_date", "token X-Amz-Date is not yyyymmddThhmmssZ"}
	ErrExpired            = &RejectError{"expired", "token is expired (signed more than 15 minutes ago)"}
	ErrNotYetValid        = &RejectError{"not_yet_valid", "token is signed in the future beyond the allowed clock skew"}
	ErrBadSignatureFormat = &RejectError{"bad_signature_format", "token X-Amz-Signature is not 64 lowercase hex digits"}
)

// Rejections lists every rejection in rule order: the closed label set of reason metrics.
var Rejections = []*RejectError{
	ErrTokenTooLarge, ErrBadPrefix, ErrBadEncoding, ErrBadURL, ErrBadHost, ErrBadQuery,
	ErrBadAction, ErrUnsignedClusterID, ErrBadCredential, ErrBadExpires, ErrBadDate,
	ErrExpired, ErrNotYetValid, ErrBadSignatureFormat,
}
