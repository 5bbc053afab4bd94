package sigv4

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/iamgate/iamgate/sigv4/internal/aws4"
)

const (
	// TokenPrefix starts every EKS token; base64url (no padding) of the presigned URL follows.
	TokenPrefix = "k8s-aws-v1."
	// MaxTokenSize bounds a whole token (token_too_large). STS accepts URLs up to about 16 KB; long session
	// tokens (SSO, chained roles) make the 4 KiB of aws-iam-authenticator too small.
	MaxTokenSize = 16 << 10
	// ValidFor is how long STS honours a presigned GetCallerIdentity after its X-Amz-Date,
	// whatever X-Amz-Expires says (bad_date, expired, not_yet_valid).
	ValidFor = 15 * time.Minute
	// DefaultMaxClockSkew is how far in the future X-Amz-Date may be by default (bad_date, expired, not_yet_valid).
	DefaultMaxClockSkew = 5 * time.Minute

	// ClusterIDHeader is the extra signed header binding a token to one cluster.
	ClusterIDHeader = "x-k8s-aws-id"
	signedHeaders   = "host;" + ClusterIDHeader
)

// tokenEncoding is immutable. Strict rejects non-zero padding bits, so one URL has exactly
// one encoding; the alphabet is checked before decoding because the decoder skips CR and LF.
var tokenEncoding = base64.RawURLEncoding.Strict()

// param identifies a query key. The order is SigV4's canonical (byte-sorted) key order, which
// the canonical cache key relies on.
type param uint8

const (
	pAction param = iota
	pVersion
	pAlgorithm
	pCredential
	pDate
	pExpires
	pSecurityToken
	pSignature
	pSignedHeaders
	numParams
)

var paramNames = [numParams]string{
	"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
	"X-Amz-Expires", "X-Amz-Security-Token", "X-Amz-Signature", "X-Amz-SignedHeaders",
}

// span is a [start, end) range of decoded bytes in Request.vals; end == 0 means absent
// (present values are never empty, see bad_query).
type span struct{ start, end int32 }

// Request is a validated token: the presigned URL and what was read from it.
//
// A Request is reused across Validate calls to avoid allocation: every []byte it returns is
// valid only until the next Validate into the same Request. A Request is not safe for
// concurrent use; pool them (sync.Pool) on a hot path. The zero value is ready to use.
type Request struct {
	url      []byte // the decoded presigned URL, exactly as the client signed it
	vals     []byte // decoded query values, addressed by spans
	spans    [numParams]span
	host     *hostInfo
	signedAt time.Time
	keyBuf   []byte
}

// Validator checks tokens locally (docs/design.md, Token validation) before any network call. It is immutable after
// construction and safe for concurrent use.
type Validator struct {
	hosts   *AllowList
	maxSkew time.Duration
}

// NewValidator returns a Validator for the given host allow-list; maxClockSkew is how far in
// the future a token's X-Amz-Date may be (-token.maxClockSkew).
func NewValidator(hosts *AllowList, maxClockSkew time.Duration) *Validator {
	if hosts == nil {
		panic("BUG: sigv4.NewValidator needs a host allow-list")
	}
	return &Validator{hosts: hosts, maxSkew: maxClockSkew}
}

// Validate checks token against every local check (docs/design.md, Token validation) at time now and fills r. It returns nil or one of
// the RejectError sentinels: the first rule that fails, in the order of docs/design.md's table. It does not
// allocate once r's buffers have grown to the token's size.
func (v *Validator) Validate(token []byte, now time.Time, r *Request) error {
	r.spans = [numParams]span{}
	r.host = nil
	r.signedAt = time.Time{}
	r.url = r.url[:0]
	r.vals = r.vals[:0]

	// size (token_too_large)
	if len(token) > MaxTokenSize {
		return ErrTokenTooLarge
	}
	// prefix and encoding (bad_prefix, bad_encoding)
	if len(token) < len(TokenPrefix) || string(token[:len(TokenPrefix)]) != TokenPrefix {
		return ErrBadPrefix
	}
	b64 := token[len(TokenPrefix):]
	if len(b64) == 0 {
		return ErrBadEncoding
	}
	// The decoder refuses every byte outside the alphabet except CR and LF, which it skips.
	if bytes.IndexByte(b64, '\r') >= 0 || bytes.IndexByte(b64, '\n') >= 0 {
		return ErrBadEncoding
	}
	r.url = grow(r.url, tokenEncoding.DecodedLen(len(b64)))
	n, err := tokenEncoding.Decode(r.url, b64)
	if err != nil {
		return ErrBadEncoding
	}
	r.url = r.url[:n]

	// URL shape (bad_url)
	query, host, err := splitURL(r.url)
	if err != nil {
		return err
	}
	// host allow-list, compared in lower case (bad_host)
	var lower [maxHostLen]byte
	for i, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if r.host = v.hosts.lookup(lower[:len(host)]); r.host == nil {
		return ErrBadHost
	}
	// strict query (bad_query)
	if err := r.parseQuery(query); err != nil {
		return err
	}
	// the one action this token may be for (bad_action)
	if r.value(pAction) != "GetCallerIdentity" || r.value(pVersion) != "2011-06-15" ||
		r.value(pAlgorithm) != aws4.Algorithm {
		return ErrBadAction
	}
	// exactly host and the cluster ID are signed (unsigned_cluster_id)
	if r.value(pSignedHeaders) != signedHeaders {
		return ErrUnsignedClusterID
	}
	// X-Amz-Date is parsed here so that the credential check can compare dates; its own errors come later (bad_date).
	signedAt, dateOK := aws4.ParseDate(r.bytes(pDate))
	// credential scope (bad_credential)
	if !r.checkCredential(dateOK) {
		return ErrBadCredential
	}
	// X-Amz-Expires: plain decimal 0–900, no sign or leading zero (bad_expires)
	if _, ok := aws4.ParseExpires(r.bytes(pExpires), 900); !ok {
		return ErrBadExpires
	}
	// date window: STS honours 15 minutes from X-Amz-Date, whatever X-Amz-Expires says. (bad_date, expired, not_yet_valid)
	if !dateOK {
		return ErrBadDate
	}
	if now.After(signedAt.Add(ValidFor)) {
		return ErrExpired
	}
	if signedAt.After(now.Add(v.maxSkew)) {
		return ErrNotYetValid
	}
	// signature format (bad_signature_format)
	if !aws4.IsLowerHex(r.bytes(pSignature), 64) {
		return ErrBadSignatureFormat
	}
	r.signedAt = signedAt
	return nil
}

// maxHostLen bounds the authority; DNS names are at most 253 bytes.
const maxHostLen = 253

// splitURL checks the URL shape (bad_url) and returns the raw query and the host.
func splitURL(u []byte) (query, host []byte, err error) {
	const scheme = "https://"
	if hasForbiddenURLByte(u) {
		return nil, nil, ErrBadURL // control bytes, spaces, non-ASCII, fragments
	}
	if len(u) < len(scheme) || string(u[:len(scheme)]) != scheme {
		return nil, nil, ErrBadURL
	}
	rest := u[len(scheme):]
	end := 0
	for end < len(rest) && rest[end] != '/' && rest[end] != '?' {
		c := rest[end]
		if c == '@' || c == ':' || c == '\\' {
			return nil, nil, ErrBadURL // userinfo or port
		}
		end++
	}
	host, rest = rest[:end], rest[end:]
	if len(host) == 0 || len(rest) == 0 || rest[0] != '/' {
		return nil, nil, ErrBadURL // no host, or a path other than "/"
	}
	if len(host) > maxHostLen {
		return nil, nil, ErrBadHost
	}
	rest = rest[1:]
	if len(rest) == 0 {
		return nil, host, nil // no query at all: the query check (bad_query) reports the missing keys
	}
	if rest[0] != '?' {
		return nil, nil, ErrBadURL
	}
	return rest[1:], host, nil
}

// hasForbiddenURLByte reports whether u has a byte <= ' ', >= 0x7f, or '#'. It tests eight
// bytes at a time with the classic SWAR tricks (this loop was a quarter of validation's time
// when it tested one byte at a time); fuzz_test.go checks it against the obvious loop.
func hasForbiddenURLByte(u []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	hasZero := func(v uint64) bool { return (v-ones)&^v&highs != 0 }
	for len(u) >= 8 {
		x := binary.LittleEndian.Uint64(u)
		// A byte < 0x21: (x - 0x21 per byte) borrows into its high bit while x's is clear.
		// A byte >= 0x80 has its high bit set; 0x7f and '#' are found as zero bytes of a XOR.
		if (x-ones*0x21)&^x&highs != 0 || x&highs != 0 || hasZero(x^(ones*0x7f)) || hasZero(x^(ones*'#')) {
			return true
		}
		u = u[8:]
	}
	for _, c := range u {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return true
		}
	}
	return false
}

// parseQuery checks the query: known keys only, in their exact canonical spelling, each at
// most once; values strictly percent-encoded; every required key non-empty.
//
// Key case matters: SigV4 signs keys case-sensitively and STS reads them so, and every real
// client sends the canonical spelling. A key in another case (x-amz-expires, action) is
// refused rather than folded: folded, it would share the genuine token's cache key and STS
// call while STS sees a different request. This also refuses case-folded duplicates
// (CVE-2022-2385): at most one spelling of a key is the canonical one.
func (r *Request) parseQuery(q []byte) error {
	r.vals = grow(r.vals, len(q))[:0]
	for len(q) > 0 {
		pair, next := q, -1
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			pair, next = q[:i], i+1
		}
		eq := bytes.IndexByte(pair, '=')
		if eq <= 0 {
			return ErrBadQuery
		}
		p, ok := lookupParam(pair[:eq])
		if !ok || r.spans[p].end != 0 {
			return ErrBadQuery
		}
		start := len(r.vals)
		var valid bool
		if r.vals, valid = appendUnescaped(r.vals, pair[eq+1:]); !valid || len(r.vals) == start {
			return ErrBadQuery
		}
		r.spans[p] = span{int32(start), int32(len(r.vals))}
		if next < 0 {
			break
		}
		q = q[next:]
		if len(q) == 0 {
			return ErrBadQuery // trailing '&'
		}
	}
	for p := param(0); p < numParams; p++ {
		if p != pSecurityToken && r.spans[p].end == 0 {
			return ErrBadQuery
		}
	}
	return nil
}

// lookupParam matches a raw key to a known parameter by its exact spelling. An escaped key
// (X%2DAmz-Date) or one in another case (x-amz-date) is no known parameter.
func lookupParam(key []byte) (param, bool) {
	for p, name := range paramNames {
		if string(key) == name {
			return param(p), true
		}
	}
	return 0, false
}

// appendUnescaped decodes a query value: unreserved bytes as they are, %XX escapes. Anything
// else (raw '+', ';', '/', '=', a bad escape) or a decoded control or non-ASCII byte is invalid.
// Runs of unreserved bytes are checked with a table and copied at once.
func appendUnescaped(dst, v []byte) ([]byte, bool) {
	for len(v) > 0 {
		run := bytes.IndexByte(v, '%')
		if run < 0 {
			run = len(v)
		}
		for _, c := range v[:run] {
			if !aws4.IsUnreserved(c) {
				return dst, false
			}
		}
		dst = append(dst, v[:run]...)
		v = v[run:]
		if len(v) == 0 {
			break
		}
		if len(v) < 3 {
			return dst, false
		}
		hi, ok1 := aws4.Unhex(v[1])
		lo, ok2 := aws4.Unhex(v[2])
		c := hi<<4 | lo
		if !ok1 || !ok2 || c < ' ' || c >= 0x7f {
			return dst, false
		}
		dst = append(dst, c)
		v = v[3:]
	}
	return dst, true
}

// checkCredential implements the bad_credential check: <AKID>/<yyyymmdd>/<region>/sts/aws4_request.
func (r *Request) checkCredential(dateOK bool) bool {
	c := r.bytes(pCredential)
	var parts [5][]byte
	n := 0
	start := 0
	for i := 0; i <= len(c); i++ {
		if i == len(c) || c[i] == '/' {
			if n == len(parts) {
				return false
			}
			parts[n] = c[start:i]
			n++
			start = i + 1
		}
	}
	if n != len(parts) {
		return false
	}
	akid, date, region := parts[0], parts[1], parts[2]
	if len(akid) < 16 || len(akid) > 128 {
		return false
	}
	for _, ch := range akid {
		if !('A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
			return false
		}
	}
	if len(date) != 8 || !aws4.AllDigits(date) {
		return false
	}
	if dateOK && string(date) != string(r.bytes(pDate)[:8]) {
		return false
	}
	return string(region) == r.host.region && string(parts[3]) == "sts" &&
		string(parts[4]) == aws4.Terminator
}

// value returns a decoded parameter as a string for comparisons; the compiler does not
// allocate for string(b) == "literal".
func (r *Request) value(p param) string {
	return string(r.bytes(p))
}

func (r *Request) bytes(p param) []byte {
	s := r.spans[p]
	return r.vals[s.start:s.end]
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
