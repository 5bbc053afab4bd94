// Package sigv4 is the token core of iamgate: it presigns EKS tokens, validates them locally in
// one pass and derives their canonical cache key.
//
// A token is "k8s-aws-v1." + base64url(URL) where URL is an STS GetCallerIdentity GET
// presigned with SigV4, signing the headers host and x-k8s-aws-id (docs/design.md, Tokens).
//
//   - Presign builds a token with aws-sdk-go-v2's v4 signer (see docs/design.md: Tokens).
//   - Validator.Validate applies the local checks in order against an injected clock and a static
//     host allow-list (AllowList), without allocating on success (see docs/design.md: Token validation). It returns one of the
//     RejectError sentinels; Rejections lists them all with their reason codes.
//   - Request.CanonicalKey is the cache key (see docs/design.md: Cache and collapsing): equal for every parameter order and every
//     equivalent percent-encoding of one token.
//
// Checking a SigV4 signature as AWS does is the fake STS's job, in sigv4/signature; the daemon
// leaves it to STS. Both packages read SigV4's dates, digits, hex and URI encoding through
// sigv4/internal/aws4.
//
// The package has no flags and no mutable state; it never reads the clock itself.
package sigv4
