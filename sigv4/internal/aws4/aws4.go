// Package aws4 holds the pieces of AWS Signature Version 4 that both the token validator
// (package sigv4) and the signature verifier (package sigv4/signature) read: the algorithm
// name, the scope terminator, the X-Amz-Date format, the hash of an empty payload, decimal
// digits, hex, and the URI encoding of SigV4's unreserved bytes.
//
// Every function is allocation-free and small enough to be inlined or cheap to call on the
// daemon's hot path; those that read input take a string or a []byte alike (the validator
// reads []byte, the verifier strings). The package has no state but an immutable table.
package aws4

import "time"

const (
	// Algorithm is the SigV4 algorithm name (X-Amz-Algorithm, the Authorization scheme).
	Algorithm = "AWS4-HMAC-SHA256"
	// Terminator ends every credential scope: AKID/yyyymmdd/region/service/aws4_request.
	Terminator = "aws4_request"
	// DateLayout is the time.Format layout of X-Amz-Date (yyyymmddThhmmssZ).
	DateLayout = "20060102T150405Z"
	// EmptyPayloadHash is the hex SHA-256 of an empty body: what every real client signs as
	// the payload hash of a presigned STS GET (not S3's "UNSIGNED-PAYLOAD"; see
	// sigv4/signature's package doc).
	EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// text is what the parsers read: a string or a byte slice.
type text interface{ ~string | ~[]byte }

// ParseDate parses X-Amz-Date, yyyymmddThhmmssZ, strictly: exactly 16 bytes, and no
// normalisation (month 13, day 32, 31 April, hour 24 and second 60 are refused).
func ParseDate[T text](v T) (time.Time, bool) {
	if len(v) != len(DateLayout) || v[8] != 'T' || v[15] != 'Z' ||
		!AllDigits(v[:8]) || !AllDigits(v[9:15]) {
		return time.Time{}, false
	}
	num := func(s T) int {
		n := 0
		for i := 0; i < len(s); i++ {
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	year, month, day := num(v[0:4]), num(v[4:6]), num(v[6:8])
	hour, minute, sec := num(v[9:11]), num(v[11:13]), num(v[13:15])
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31 April and friends normalise into the next month
		return time.Time{}, false
	}
	return t, true
}

// AllDigits reports whether every byte of v is an ASCII decimal digit (true for an empty v:
// callers check the length they need first).
func AllDigits[T text](v T) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ParseExpires parses X-Amz-Expires, seconds as a plain decimal (no sign, no leading zero), of
// at most max; it returns 0 and false for anything else. Small enough to be inlined.
func ParseExpires[T text](v T, max int) (int, bool) {
	if len(v) == 0 || (len(v) > 1 && v[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if n = n*10 + int(v[i]-'0'); v[i] < '0' || v[i] > '9' || n > max {
			return 0, false
		}
	}
	return n, true
}

// Unhex decodes one hex digit of either case.
func Unhex(c byte) (byte, bool) {
	if 'A' <= c && c <= 'F' {
		return c - 'A' + 10, true
	}
	return UnhexLower(c)
}

// UnhexLower decodes one lower-case hex digit, the only case SigV4 signatures use.
func UnhexLower(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// IsLowerHex reports whether v is exactly n lower-case hex digits.
func IsLowerHex[T text](v T, n int) bool {
	if len(v) != n {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// DecodeLowerHex decodes exactly len(dst)*2 lower-case hex digits of v into dst.
func DecodeLowerHex[T text](dst []byte, v T) bool {
	if len(v) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := UnhexLower(v[2*i])
		lo, ok2 := UnhexLower(v[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// AppendHex appends src as lower-case hex, as SigV4 writes hashes and signatures.
func AppendHex(b, src []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range src {
		b = append(b, digits[c>>4], digits[c&15])
	}
	return b
}

// IsUnreserved reports whether SigV4's URI encoding leaves c as it is: A-Z, a-z, 0-9, '-',
// '_', '.', '~'. A table lookup: the validator's hot loop is faster with it than with a chain
// of comparisons.
func IsUnreserved(c byte) bool { return unreserved[c] }

// unreserved is filled once at init and never written again.
var unreserved = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~'
	}
	return t
}()

// AppendEscape appends c URI-encoded as SigV4 writes it: '%' and two upper-case hex digits.
func AppendEscape(b []byte, c byte) []byte {
	const digits = "0123456789ABCDEF"
	return append(b, '%', digits[c>>4], digits[c&15])
}
