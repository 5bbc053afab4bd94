package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
)

// Key is the canonical cache key of a token (see docs/design.md: Cache and collapsing): SHA-256 over the lower-case host and the
// decoded query in SigV4's sorted key order. Every parameter order and every equivalent
// percent-encoding of one token gives the same Key, because STS verifies them all alike.
type Key [sha256.Size]byte

// String returns the key in hex, for debugging (it identifies a token: log it only at Debug).
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// CanonicalKey returns the Key of a validated Request. It does not allocate once r's buffers
// have grown.
func (r *Request) CanonicalKey() Key {
	b := append(r.keyBuf[:0], r.host.host...)
	for p := param(0); p < numParams; p++ {
		v := r.bytes(p)
		if len(v) == 0 {
			continue
		}
		// The parameter index and a length prefix make the encoding unambiguous: a decoded
		// value may contain '&' or '='.
		b = append(b, 0, byte(p), byte(len(v)>>8), byte(len(v)))
		b = append(b, v...)
	}
	r.keyBuf = b
	return sha256.Sum256(b)
}
