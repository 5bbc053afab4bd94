package sigv4

import "time"

// URL returns the presigned URL exactly as the client signed it: what the STS call must GET.
// The bytes are valid only until the next Validate into r.
func (r *Request) URL() []byte { return r.url }

// Host is the lower-case STS host from the allow-list.
func (r *Request) Host() string { return r.host.host }

// Partition is the AWS partition of the host ("aws", "aws-cn", …).
func (r *Request) Partition() string { return r.host.partition }

// Region is the signing region of the host (us-east-1 for the global endpoint).
func (r *Request) Region() string { return r.host.region }

// AccessKeyID returns the access key ID of the one validated X-Amz-Credential (see docs/design.md: Identity).
// The bytes are valid only until the next Validate into r.
func (r *Request) AccessKeyID() []byte {
	c := r.bytes(pCredential)
	for i, ch := range c {
		if ch == '/' {
			return c[:i]
		}
	}
	return c
}

// HasSessionToken tells whether the token was signed with temporary credentials.
func (r *Request) HasSessionToken() bool { return r.spans[pSecurityToken].end != 0 }

// SignedAt is the token's X-Amz-Date.
func (r *Request) SignedAt() time.Time { return r.signedAt }

// ExpiresAt is when STS stops honouring the token: X-Amz-Date + 15 minutes.
func (r *Request) ExpiresAt() time.Time { return r.signedAt.Add(ValidFor) }
