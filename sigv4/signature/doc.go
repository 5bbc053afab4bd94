// Package signature verifies an AWS Signature Version 4 (AWS4-HMAC-SHA256) the way an AWS
// service does: it is what the fake STS (package fakests) runs on every request. The daemon
// never verifies signatures (STS does, see docs/design.md: Tokens); its token validator is
// package sigv4, and both read SigV4's dates, digits, hex and URI encoding through
// sigv4/internal/aws4.
//
//   - Parse reads the signature of a Request, presigned (X-Amz-* query parameters) or in an
//     Authorization header, and checks the form of every part.
//   - Signed.CheckTime applies the 15-minute window (MaxSkew) both ways; X-Amz-Expires is
//     ignored, as STS ignores it.
//   - Signed.Verify recomputes the signature over the canonical request, every signed header
//     included, and compares it in constant time; DeriveSigningKey and Signed.VerifyWithKey let
//     a verifier cache the signing key of a credential scope.
//
// Errors wrap one of the sentinels, each the AWS error code a service answers (fakests maps
// them); no error holds a byte of the request. Parse never panics (FuzzParse) and Verify does
// not allocate for requests of usual size.
//
// Payload hash: every real client in internal/testenv/testdata (AWS CLI v1 and v2 through
// botocore, aws-iam-authenticator through aws-sdk-go-v2) signs its presigned STS GET with the
// SHA-256 of the empty body (e3b0c442…b855) as the payload hash, not "UNSIGNED-PAYLOAD" (that
// is S3's presigning convention); TestPayloadHashFinding checks that the other value never
// verifies. STS, like every non-S3 service, hashes the body it received, so Verify always uses
// the SHA-256 of Request.Body.
//
// The package has no mutable state and never reads the clock itself.
package signature
