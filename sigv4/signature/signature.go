package signature

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/iamgate/iamgate/sigv4/internal/aws4"
)

// Sentinel errors of Parse, Verify and CheckTime, checked with errors.Is. Each maps to one
// AWS error code (in brackets) that a service answers for it.
var (
	// ErrMissingAuthenticationToken: the request carries no SigV4 signature at all
	// [MissingAuthenticationToken, 403].
	ErrMissingAuthenticationToken = errors.New("request carries no SigV4 signature")
	// ErrIncompleteSignature: the signature parameters are missing or malformed
	// [IncompleteSignature, 400].
	ErrIncompleteSignature = errors.New("incomplete or malformed SigV4 signature")
	// ErrSignatureDoesNotMatch: the signature is not the one the secret key gives for this
	// request [SignatureDoesNotMatch, 403].
	ErrSignatureDoesNotMatch = errors.New("SigV4 signature does not match")
	// ErrRequestExpired: the signing time is more than MaxSkew in the past
	// [RequestExpired, 400].
	ErrRequestExpired = errors.New("SigV4 request has expired")
	// ErrSignatureNotYetCurrent: the signing time is more than MaxSkew in the future
	// [SignatureDoesNotMatch, 403, "Signature not yet current"].
	ErrSignatureNotYetCurrent = errors.New("SigV4 signature not yet current")
)

// Details of the sentinels, as constant messages: attacker bytes never go into an error.
var (
	errBothModes     = withDetail(ErrIncompleteSignature, "both an Authorization header and query signature parameters")
	errAlgorithm     = withDetail(ErrIncompleteSignature, "algorithm is not AWS4-HMAC-SHA256")
	errMissingParam  = withDetail(ErrIncompleteSignature, "a required signature parameter is missing or empty")
	errDuplicate     = withDetail(ErrIncompleteSignature, "a signature parameter appears twice")
	errCredential    = withDetail(ErrIncompleteSignature, "credential is not AKID/yyyymmdd/region/service/aws4_request")
	errDate          = withDetail(ErrIncompleteSignature, "X-Amz-Date is not yyyymmddThhmmssZ")
	errExpires       = withDetail(ErrIncompleteSignature, "X-Amz-Expires is not an integer in 0..604800")
	errHeaders       = withDetail(ErrIncompleteSignature, "signed headers are malformed or do not include host")
	errAuthorization = withDetail(ErrIncompleteSignature, "Authorization header is malformed")
	errScopeDate     = withDetail(ErrSignatureDoesNotMatch, "date in credential scope does not match X-Amz-Date")
	errQuery         = withDetail(ErrSignatureDoesNotMatch, "query string has a malformed percent escape")
)

// detailError is a sentinel with a constant detail.
type detailError struct {
	sentinel error
	detail   string
}

func withDetail(sentinel error, detail string) error { return &detailError{sentinel, detail} }
func (e *detailError) Error() string                 { return e.sentinel.Error() + ": " + e.detail }
func (e *detailError) Unwrap() error                 { return e.sentinel }

// MaxSkew is how far the signing time may lie from the verifier's clock, either way,
// as AWS allows: a request (presigned or not) is expired when now > signing time + 15 minutes.
// STS ignores X-Amz-Expires, so a presigned token with X-Amz-Expires=60 stays valid 15 minutes.
const MaxSkew = 15 * time.Minute

// Request is a received HTTP request as the verifier sees it.
//
// Path and RawQuery are as sent on the wire (still percent-encoded). Host is the Host header
// (Go's net/http keeps it out of Header). Header holds at least every header the signature
// covers, and for a header-signed request Authorization, X-Amz-Date and X-Amz-Security-Token;
// keys should be in canonical form (http.CanonicalHeaderKey), other spellings are found by a
// case-insensitive scan. Body is the request body (an empty body for a presigned GET).
// Parse and Verify do not modify or retain the request, but a Signed returned by Parse shares
// memory with its strings.
type Request struct {
	Method   string
	Host     string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// Signed is the SigV4 authentication information of a request, parsed but not yet verified.
type Signed struct {
	// Presigned is true for a query-signed request (X-Amz-* query parameters), false for an
	// Authorization header.
	Presigned bool
	// AccessKeyID, Date (yyyymmdd), Region and Service are the parts of the credential scope
	// AKID/yyyymmdd/region/service/aws4_request.
	AccessKeyID string
	Date        string
	Region      string
	Service     string
	// SignedHeaders is the list of signed header names as sent, e.g. "host;x-k8s-aws-id";
	// see HasSignedHeader.
	SignedHeaders string
	// SecurityToken is X-Amz-Security-Token (query or header), empty for long-term keys.
	SecurityToken string
	// SigningTime is X-Amz-Date.
	SigningTime time.Time
	// Expires is X-Amz-Expires of a presigned request (zero when absent or header-signed).
	// STS does not enforce it; see MaxSkew.
	Expires time.Duration
	// Signature is the signature as sent (hex).
	Signature string

	amzDate string
}

// Parse extracts the SigV4 information of r, either from the query (presigned) or from the
// Authorization header. It checks the form of each part but not the signature (Verify) nor
// the time (CheckTime). Errors wrap ErrMissingAuthenticationToken, ErrIncompleteSignature or
// ErrSignatureDoesNotMatch. Parse never panics, whatever r holds.
func Parse(r *Request) (*Signed, error) {
	s := &Signed{}
	if err := s.parse(r); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Signed) parse(r *Request) error {
	auth := firstHeader(r.Header, "Authorization")
	hasQuery := queryHas(r.RawQuery, "X-Amz-Algorithm") || queryHas(r.RawQuery, "X-Amz-Signature")
	var credential, amzDate string
	switch {
	case auth != "" && hasQuery:
		return errBothModes
	case hasQuery:
		s.Presigned = true
		var algorithm, expires string
		var seen uint8
		for q := r.RawQuery; q != ""; {
			var part string
			part, q, _ = strings.Cut(q, "&")
			k, v, _ := strings.Cut(part, "=")
			var dst *string
			var bit uint8
			switch k {
			case "X-Amz-Algorithm":
				dst, bit = &algorithm, 1
			case "X-Amz-Credential":
				dst, bit = &credential, 2
			case "X-Amz-Date":
				dst, bit = &amzDate, 4
			case "X-Amz-Expires":
				dst, bit = &expires, 8
			case "X-Amz-SignedHeaders":
				dst, bit = &s.SignedHeaders, 16
			case "X-Amz-Signature":
				dst, bit = &s.Signature, 32
			case "X-Amz-Security-Token":
				dst, bit = &s.SecurityToken, 64
			default:
				continue
			}
			if seen&bit != 0 {
				return errDuplicate
			}
			seen |= bit
			if bit == 2 {
				*dst = v // split on encoded or plain '/' by parseCredential
				continue
			}
			dv, ok := queryUnescape(v)
			if !ok {
				return errQuery
			}
			*dst = dv
		}
		if algorithm != aws4.Algorithm {
			if algorithm == "" {
				return errMissingParam
			}
			return errAlgorithm
		}
		if expires != "" {
			n, ok := aws4.ParseExpires(expires, 604800)
			if !ok {
				return errExpires
			}
			s.Expires = time.Duration(n) * time.Second
		}
	case auth != "":
		rest, ok := strings.CutPrefix(auth, aws4.Algorithm)
		if !ok {
			return errAlgorithm
		}
		if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			return errAuthorization
		}
		var seen uint8
		for rest != "" {
			var part string
			part, rest, _ = strings.Cut(rest, ",")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				return errAuthorization
			}
			var dst *string
			var bit uint8
			switch k {
			case "Credential":
				dst, bit = &credential, 1
			case "SignedHeaders":
				dst, bit = &s.SignedHeaders, 2
			case "Signature":
				dst, bit = &s.Signature, 4
			default:
				return errAuthorization
			}
			if seen&bit != 0 {
				return errDuplicate
			}
			seen |= bit
			*dst = v
		}
		amzDate = firstHeader(r.Header, "X-Amz-Date")
		s.SecurityToken = firstHeader(r.Header, "X-Amz-Security-Token")
	default:
		return ErrMissingAuthenticationToken
	}
	if credential == "" || amzDate == "" || s.SignedHeaders == "" || s.Signature == "" {
		return errMissingParam
	}
	if err := s.parseCredential(credential, s.Presigned); err != nil {
		return err
	}
	t, ok := aws4.ParseDate(amzDate)
	if !ok {
		return errDate
	}
	s.SigningTime, s.amzDate = t, amzDate
	if !validSignedHeaders(s.SignedHeaders) {
		return errHeaders
	}
	if s.Date != amzDate[:8] {
		return errScopeDate
	}
	return nil
}

// parseCredential splits AKID/yyyymmdd/region/service/aws4_request; a query value is split on
// '/' or "%2F" and each part decoded, so the usual credential costs no allocation.
func (s *Signed) parseCredential(c string, encoded bool) error {
	var parts [5]string
	for i := range parts {
		var part string
		part, c = cutSlash(c, encoded)
		if encoded {
			var ok bool
			if part, ok = queryUnescape(part); !ok {
				return errQuery
			}
		}
		if part == "" || (i == 4) != (c == "") {
			return errCredential
		}
		parts[i] = part
	}
	if c != "" || parts[4] != aws4.Terminator || len(parts[1]) != 8 || !aws4.AllDigits(parts[1]) {
		return errCredential
	}
	s.AccessKeyID, s.Date, s.Region, s.Service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

// cutSlash cuts c at the first '/' (or, when encoded, "%2F" in either case).
func cutSlash(c string, encoded bool) (before, after string) {
	for i := 0; i < len(c); i++ {
		if c[i] == '/' {
			return c[:i], c[i+1:]
		}
		if encoded && c[i] == '%' && i+2 < len(c) && c[i+1] == '2' && (c[i+2] == 'F' || c[i+2] == 'f') {
			return c[:i], c[i+3:]
		}
	}
	return c, ""
}

// HasSignedHeader reports whether the lower-case header name is among the signed headers.
func (s *Signed) HasSignedHeader(name string) bool {
	for h := range strings.SplitSeq(s.SignedHeaders, ";") {
		if h == name {
			return true
		}
	}
	return false
}

// CheckTime checks the signing time against the verifier's clock now: errors wrap
// ErrRequestExpired when now > SigningTime + MaxSkew, ErrSignatureNotYetCurrent when
// SigningTime > now + MaxSkew.
func (s *Signed) CheckTime(now time.Time) error {
	if now.Sub(s.SigningTime) > MaxSkew {
		return ErrRequestExpired
	}
	if s.SigningTime.Sub(now) > MaxSkew {
		return ErrSignatureNotYetCurrent
	}
	return nil
}

// Verify recomputes the signature of r, which must be the request s was parsed from, with
// secretAccessKey and compares it in constant time with the one sent. It returns nil or an
// error wrapping ErrSignatureDoesNotMatch. Verify does not allocate for requests of usual
// size (a token GET, an STS form POST).
func (s *Signed) Verify(r *Request, secretAccessKey string) error {
	return s.VerifyWithKey(r, DeriveSigningKey(secretAccessKey, s.Date, s.Region, s.Service))
}

// DeriveSigningKey returns the SigV4 signing key of a secret access key for one credential
// scope: HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request"). A
// verifier may cache it per access key and scope (it changes daily) and call VerifyWithKey.
func DeriveSigningKey(secretAccessKey, date, region, service string) [32]byte {
	var kBuf [128]byte
	k := append(kBuf[:0], "AWS4"...)
	k = append(k, secretAccessKey...)
	var msg [64]byte
	key := hmacSHA256(k, append(msg[:0], date...))
	key = hmacSHA256(key[:], append(msg[:0], region...))
	key = hmacSHA256(key[:], append(msg[:0], service...))
	return hmacSHA256(key[:], append(msg[:0], aws4.Terminator...))
}

// VerifyWithKey is Verify with a signing key from DeriveSigningKey for s's Date, Region and
// Service.
func (s *Signed) VerifyWithKey(r *Request, signingKey [32]byte) error {
	var want [32]byte
	if !aws4.DecodeLowerHex(want[:], s.Signature) {
		return ErrSignatureDoesNotMatch
	}
	var crBuf [2048]byte
	cr, ok := s.appendCanonicalRequest(crBuf[:0], r)
	if !ok {
		return errQuery
	}
	crHash := sha256.Sum256(cr)

	var stsBuf [256]byte
	sts := append(stsBuf[:0], aws4.Algorithm...)
	sts = append(sts, '\n')
	sts = append(sts, s.amzDate...)
	sts = append(sts, '\n')
	sts = s.appendScope(sts)
	sts = append(sts, '\n')
	sts = aws4.AppendHex(sts, crHash[:])

	got := hmacSHA256(signingKey[:], sts)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return ErrSignatureDoesNotMatch
	}
	return nil
}

func (s *Signed) appendScope(b []byte) []byte {
	b = append(b, s.Date...)
	b = append(b, '/')
	b = append(b, s.Region...)
	b = append(b, '/')
	b = append(b, s.Service...)
	b = append(b, '/')
	return append(b, aws4.Terminator...)
}

// appendCanonicalRequest appends the SigV4 canonical request of r:
// method \n URI \n query \n headers \n signed headers \n payload hash.
func (s *Signed) appendCanonicalRequest(b []byte, r *Request) ([]byte, bool) {
	b = append(b, r.Method...)
	b = append(b, '\n')
	b = appendCanonicalURI(b, r.Path)
	b = append(b, '\n')
	b, ok := appendCanonicalQuery(b, r.RawQuery, s.Presigned)
	if !ok {
		return b, false
	}
	b = append(b, '\n')
	for name := range strings.SplitSeq(s.SignedHeaders, ";") {
		b = append(b, name...)
		b = append(b, ':')
		b = s.appendHeaderValue(b, r, name)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, s.SignedHeaders...)
	b = append(b, '\n')
	if len(r.Body) == 0 {
		b = append(b, aws4.EmptyPayloadHash...)
	} else {
		h := sha256.Sum256(r.Body)
		b = aws4.AppendHex(b, h[:])
	}
	return b, true
}

// appendHeaderValue appends the canonical value of the lower-case header name: every value
// trimmed, inner runs of spaces collapsed to one, values joined with ','. A header that is
// signed but absent gives an empty value (and so, in practice, a signature mismatch).
func (s *Signed) appendHeaderValue(b []byte, r *Request, name string) []byte {
	if name == "host" {
		host := r.Host
		if host == "" {
			host = firstHeader(r.Header, "Host")
		}
		return appendTrimmed(b, host)
	}
	var keyBuf [64]byte
	var values []string
	if len(name) <= len(keyBuf) {
		key := appendCanonicalKey(keyBuf[:0], name)
		values = r.Header[string(key)]
	}
	if values == nil {
		for k, v := range r.Header {
			if strings.EqualFold(k, name) {
				values = v
				break
			}
		}
	}
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTrimmed(b, v)
	}
	return b
}

// appendTrimmed appends v without leading and trailing spaces and with every inner run of
// spaces or tabs collapsed to one space.
func appendTrimmed(b []byte, v string) []byte {
	v = strings.Trim(v, " \t")
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	return b
}

// appendCanonicalURI appends the canonical URI of the raw path: "/" for an empty path,
// else every byte outside the unreserved set and '/' URI-encoded (so an escaped path is encoded
// twice, as AWS does for every service but S3).
func appendCanonicalURI(b []byte, path string) []byte {
	if path == "" {
		return append(b, '/')
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '/' || aws4.IsUnreserved(c) {
			b = append(b, c)
		} else {
			b = aws4.AppendEscape(b, c)
		}
	}
	return b
}

// queryPair locates one canonical "key=value" inside a scratch buffer.
type queryPair struct {
	off, keyLen, valLen int
}

// appendCanonicalQuery appends the canonical query: every parameter (but X-Amz-Signature of
// a presigned request) with key and value decoded ('+' is a space) and URI-encoded again with
// AWS's rules, sorted by key then value, joined with '&'. It reports false for a malformed
// percent escape.
func appendCanonicalQuery(b []byte, rawQuery string, presigned bool) ([]byte, bool) {
	var pairBuf [16]queryPair
	var scratchBuf [1024]byte
	pairs, scratch := pairBuf[:0], scratchBuf[:0]
	for q := rawQuery; q != ""; {
		var part string
		part, q, _ = strings.Cut(q, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		off := len(scratch)
		var ok bool
		if scratch, ok = appendReencoded(scratch, k); !ok {
			return b, false
		}
		keyLen := len(scratch) - off
		if scratch, ok = appendReencoded(scratch, v); !ok {
			return b, false
		}
		pairs = append(pairs, queryPair{off, keyLen, len(scratch) - off - keyLen})
	}
	slices.SortFunc(pairs, func(x, y queryPair) int {
		xk, yk := scratch[x.off:x.off+x.keyLen], scratch[y.off:y.off+y.keyLen]
		if c := bytes.Compare(xk, yk); c != 0 {
			return c
		}
		xv := scratch[x.off+x.keyLen : x.off+x.keyLen+x.valLen]
		yv := scratch[y.off+y.keyLen : y.off+y.keyLen+y.valLen]
		return bytes.Compare(xv, yv)
	})
	for i, p := range pairs {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, scratch[p.off:p.off+p.keyLen]...)
		b = append(b, '=')
		b = append(b, scratch[p.off+p.keyLen:p.off+p.keyLen+p.valLen]...)
	}
	return b, true
}

// appendReencoded decodes the query component s ('+' is a space) and appends it URI-encoded
// with AWS's rules. It reports false for a malformed percent escape.
func appendReencoded(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			if i+2 >= len(s) {
				return b, false
			}
			hi, ok1 := aws4.Unhex(s[i+1])
			lo, ok2 := aws4.Unhex(s[i+2])
			if !ok1 || !ok2 {
				return b, false
			}
			c = hi<<4 | lo
			i += 2
		case '+':
			c = ' '
		}
		if aws4.IsUnreserved(c) {
			b = append(b, c)
		} else {
			b = aws4.AppendEscape(b, c)
		}
	}
	return b, true
}

// queryUnescape decodes a query component ('+' is a space), without allocating when there is
// nothing to decode.
func queryUnescape(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	var stack [64]byte
	b := stack[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, ok1 := aws4.Unhex(s[i+1])
			lo, ok2 := aws4.Unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = hi<<4 | lo
			i += 2
		case '+':
			c = ' '
		}
		b = append(b, c)
	}
	for _, common := range commonValues {
		if string(b) == common {
			return common, true
		}
	}
	return string(b), true
}

// commonValues are decoded query values returned without allocating.
var commonValues = [...]string{
	"host;x-k8s-aws-id",
	"host;x-amz-date;x-k8s-aws-id",
	"host",
}

// queryHas reports whether the raw query has the exact key.
func queryHas(q, key string) bool {
	for q != "" {
		var part string
		part, q, _ = strings.Cut(q, "&")
		if k, _, _ := strings.Cut(part, "="); k == key {
			return true
		}
	}
	return false
}

// firstHeader returns the first value of the header key (canonical form) or of any other
// spelling of it.
func firstHeader(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// appendCanonicalKey appends the canonical MIME form of the lower-case header name
// ("x-k8s-aws-id" → "X-K8s-Aws-Id").
func appendCanonicalKey(b []byte, name string) []byte {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
		upper = c == '-'
	}
	return b
}

// validSignedHeaders reports whether the list is non-empty lower-case header names
// separated by ';' and includes host, which AWS requires.
func validSignedHeaders(list string) bool {
	host := false
	for name := range strings.SplitSeq(list, ";") {
		if name == "" {
			return false
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
				return false
			}
		}
		host = host || name == "host"
	}
	return host
}

// hmacSHA256 is HMAC-SHA256 on stack buffers (crypto/hmac allocates two hash states per call).
func hmacSHA256(key, msg []byte) [32]byte {
	const blockSize = 64
	var k [blockSize]byte
	if len(key) > blockSize {
		sum := sha256.Sum256(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	var innerBuf [blockSize + 512]byte
	inner := innerBuf[:0]
	for _, c := range k {
		inner = append(inner, c^0x36)
	}
	inner = append(inner, msg...)
	innerSum := sha256.Sum256(inner)
	var outer [blockSize + sha256.Size]byte
	for i, c := range k {
		outer[i] = c ^ 0x5c
	}
	copy(outer[blockSize:], innerSum[:])
	return sha256.Sum256(outer[:])
}
