// Package sigv4 is the token core of iamgate: it presigns EKS tokens, validates them locally in
// one pass, derives their canonical cache key, and checks SigV4 signatures.
//
// A token is "k8s-aws-v1." + base64url(URL) where URL is an STS GetCallerIdentity GET
// presigned with SigV4, signing the headers host and x-k8s-aws-id (SPEC §2).
//
//   - Presign builds a token with aws-sdk-go-v2's v4 signer [C1, C2].
//   - Validator.Validate applies rules V1–V11 in order against an injected clock and a static
//     host allow-list (AllowList), without allocating on success [V12]. It returns one of the
//     RejectError sentinels; Rejections lists them all with their reason codes.
//   - Request.CanonicalKey is the cache key [K1]: equal for every parameter order and every
//     equivalent percent-encoding of one token.
//   - ParseSigned and Signed.Verify check a SigV4 signature as AWS does; the fake STS uses them.
//
// The package has no flags and no mutable state; it never reads the clock itself.
package sigv4
