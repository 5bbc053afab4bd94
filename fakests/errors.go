package fakests

import (
	"errors"

	"github.com/iamgate/iamgate/sigv4/signature"
)

// AWS error codes the fake answers. STS answers them as named; EC2 requests get EC2's
// equivalent (see awsError.ec2Code).
const (
	CodeSignatureDoesNotMatch       = "SignatureDoesNotMatch"
	CodeInvalidClientTokenID        = "InvalidClientTokenId"
	CodeExpiredToken                = "ExpiredToken"
	CodeRequestExpired              = "RequestExpired"
	CodeIncompleteSignature         = "IncompleteSignature"
	CodeMissingAuthenticationToken  = "MissingAuthenticationToken"
	CodeAccessDenied                = "AccessDenied"
	CodeThrottling                  = "Throttling"
	CodeInternalFailure             = "InternalFailure"
	CodeServiceUnavailable          = "ServiceUnavailable"
	CodeInvalidAction               = "InvalidAction"
	CodeValidationError             = "ValidationError"
	CodeInvalidParameterValue       = "InvalidParameterValue"
	CodeInvalidParameterCombination = "InvalidParameterCombination"
	CodeInvalidInstanceIDNotFound   = "InvalidInstanceID.NotFound"
	CodeInvalidInstanceIDMalformed  = "InvalidInstanceID.Malformed"
)

// awsError is one AWS error answer: code, HTTP status, message, and what EC2 answers instead.
type awsError struct {
	code      string
	status    int
	message   string
	ec2Code   string
	ec2Status int
}

// The errors the fake answers, with AWS's messages and statuses.
var (
	errSignature = &awsError{CodeSignatureDoesNotMatch, 403,
		"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
		"AuthFailure", 401}
	errNotYetCurrent = &awsError{CodeSignatureDoesNotMatch, 403,
		"Signature not yet current: the signing time is more than 15 minutes in the future.", "AuthFailure", 401}
	errScopeRegion = &awsError{CodeSignatureDoesNotMatch, 403,
		"Credential should be scoped to a valid region.", "AuthFailure", 401}
	errScopeService = &awsError{CodeSignatureDoesNotMatch, 403,
		"Credential should be scoped to correct service.", "AuthFailure", 401}
	errInvalidClientToken = &awsError{CodeInvalidClientTokenID, 403,
		"The security token included in the request is invalid.", "AuthFailure", 401}
	errExpiredToken = &awsError{CodeExpiredToken, 403,
		"The security token included in the request is expired", "RequestExpired", 400}
	errRequestExpired = &awsError{CodeRequestExpired, 400,
		"Request has expired.", "RequestExpired", 400}
	errIncomplete = &awsError{CodeIncompleteSignature, 400,
		"The request signature does not conform to AWS standards.", "AuthFailure", 401}
	errMissingAuth = &awsError{CodeMissingAuthenticationToken, 403,
		"Request is missing Authentication Token", "MissingParameter", 400}
	errThrottling = &awsError{CodeThrottling, 400, "Rate exceeded", "RequestLimitExceeded", 503}
	errInternal   = &awsError{CodeInternalFailure, 500,
		"The request processing has failed because of an unknown error, exception or failure.", "InternalError", 500}
	errUnavailable = &awsError{CodeServiceUnavailable, 503,
		"The request has failed due to a temporary failure of the server.", "Unavailable", 503}
	errInvalidAction = &awsError{CodeInvalidAction, 400,
		"Could not find operation for this version.", "InvalidAction", 400}
	errAccessDenied = &awsError{CodeAccessDenied, 403,
		"The caller is not authorized to perform sts:AssumeRole on this role.", "UnauthorizedOperation", 403}
	errBadSessionName = &awsError{CodeValidationError, 400,
		"1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]{2,64}", "", 0}
	errBadDuration = &awsError{CodeValidationError, 400,
		"The requested DurationSeconds exceeds the MaxSessionDuration set for this role or is below 900.", "", 0}
	errBadRoleARN = &awsError{CodeValidationError, 400,
		"1 validation error detected: Value at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20", "", 0}
	errTooManySessions = &awsError{CodeThrottling, 400,
		"Rate exceeded (the fake holds its maximum number of live sessions)", "RequestLimitExceeded", 503}
	errInstanceNotFound = &awsError{CodeInvalidInstanceIDNotFound, 400,
		"The instance ID does not exist", CodeInvalidInstanceIDNotFound, 400}
	errInstanceMalformed = &awsError{CodeInvalidInstanceIDMalformed, 400,
		"Invalid id: the instance ID is malformed", CodeInvalidInstanceIDMalformed, 400}
)

// injectable are the error codes fault injection can answer, by code.
var injectable = map[string]*awsError{
	CodeThrottling:                 errThrottling,
	CodeInternalFailure:            errInternal,
	CodeServiceUnavailable:         errUnavailable,
	CodeSignatureDoesNotMatch:      errSignature,
	CodeInvalidClientTokenID:       errInvalidClientToken,
	CodeExpiredToken:               errExpiredToken,
	CodeRequestExpired:             errRequestExpired,
	CodeAccessDenied:               errAccessDenied,
	CodeIncompleteSignature:        errIncomplete,
	CodeMissingAuthenticationToken: errMissingAuth,
}

// sigError maps a signature error to its AWS answer.
func sigError(err error) *awsError {
	switch {
	case errors.Is(err, signature.ErrMissingAuthenticationToken):
		return errMissingAuth
	case errors.Is(err, signature.ErrIncompleteSignature):
		return errIncomplete
	case errors.Is(err, signature.ErrRequestExpired):
		return errRequestExpired
	case errors.Is(err, signature.ErrSignatureNotYetCurrent):
		return errNotYetCurrent
	default:
		return errSignature
	}
}
