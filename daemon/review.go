package daemon

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/iamgate/iamgate/mapping"
)

// The TokenReview codec reads only apiVersion, kind and spec.token from a request, and writes
// answers by appending to a caller's buffer. The body is untrusted: the scanner checks the
// whole document is valid JSON, bounds nesting, and refuses duplicate keys among the ones it
// reads (two decoders picking different duplicates is how parser-differential attacks work).

const (
	apiVersionV1      = "authentication.k8s.io/v1"
	apiVersionV1beta1 = "authentication.k8s.io/v1beta1"
	maxJSONDepth      = 32
)

var (
	errBadJSON       = errors.New("request body is not a valid JSON object")
	errBadKind       = errors.New("request is not a TokenReview")
	errBadAPIVersion = errors.New("request apiVersion is not authentication.k8s.io/v1 or v1beta1")
	errDuplicateKey  = errors.New("request has a duplicate apiVersion, kind, spec or token key")
	errNoToken       = errors.New("request has no spec.token")
)

// reviewRequest is what the webhook needs from a TokenReview. token aliases either the body
// or scratch; neither may be retained after the handler returns.
type reviewRequest struct {
	v1    bool // apiVersion v1, else v1beta1
	token []byte
}

// parseReview parses a TokenReview body. scratch receives unescaped strings (a token with
// JSON escapes); it is returned, possibly grown, for reuse.
func parseReview(body []byte, scratch []byte) (reviewRequest, []byte, error) {
	p := jsonScanner{buf: body, scratch: scratch[:0]}
	var rr reviewRequest
	var apiVersion, kind []byte
	var seenAPIVersion, seenKind, seenSpec, seenToken bool
	err := p.object(0, func(key []byte) error {
		switch string(key) {
		case "apiVersion":
			if seenAPIVersion {
				return errDuplicateKey
			}
			seenAPIVersion = true
			s, err := p.stringValue()
			apiVersion = s
			return err
		case "kind":
			if seenKind {
				return errDuplicateKey
			}
			seenKind = true
			s, err := p.stringValue()
			kind = s
			return err
		case "spec":
			if seenSpec {
				return errDuplicateKey
			}
			seenSpec = true
			return p.object(1, func(key []byte) error {
				if string(key) != "token" {
					return p.skipValue(2)
				}
				if seenToken {
					return errDuplicateKey
				}
				seenToken = true
				s, err := p.stringValue()
				rr.token = s
				return err
			})
		default:
			return p.skipValue(1)
		}
	})
	if err == nil {
		p.skipSpace()
		if p.pos != len(p.buf) {
			err = errBadJSON // trailing bytes after the object
		}
	}
	if err != nil {
		return rr, p.scratch, err
	}
	switch string(apiVersion) {
	case apiVersionV1:
		rr.v1 = true
	case apiVersionV1beta1:
	default:
		return rr, p.scratch, errBadAPIVersion
	}
	if string(kind) != "TokenReview" {
		return rr, p.scratch, errBadKind
	}
	if len(rr.token) == 0 {
		return rr, p.scratch, errNoToken
	}
	return rr, p.scratch, nil
}

// jsonScanner is a strict, allocation-free JSON reader over one buffer.
type jsonScanner struct {
	buf     []byte
	pos     int
	scratch []byte
}

func (p *jsonScanner) skipSpace() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonScanner) consume(c byte) bool {
	p.skipSpace()
	if p.pos < len(p.buf) && p.buf[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// object reads an object, calling member for each key with the scanner positioned at the value;
// member must consume the value.
func (p *jsonScanner) object(depth int, member func(key []byte) error) error {
	if depth >= maxJSONDepth || !p.consume('{') {
		return errBadJSON
	}
	if p.consume('}') {
		return nil
	}
	for {
		p.skipSpace()
		key, err := p.rawString()
		if err != nil {
			return err
		}
		if !p.consume(':') {
			return errBadJSON
		}
		if err := member(key); err != nil {
			return err
		}
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return nil
		}
		return errBadJSON
	}
}

// stringValue reads a string value, unescaping into scratch when it has escapes.
func (p *jsonScanner) stringValue() ([]byte, error) {
	p.skipSpace()
	return p.rawString()
}

// rawString reads a string at pos. Without escapes it returns a sub-slice of buf; with
// escapes it decodes into scratch. A grown scratch leaves earlier strings valid in the old
// array, and skipValue only truncates scratch back over strings it discards.
func (p *jsonScanner) rawString() ([]byte, error) {
	if p.pos >= len(p.buf) || p.buf[p.pos] != '"' {
		return nil, errBadJSON
	}
	p.pos++
	start := p.pos
	n, ascii := plainRun(p.buf[p.pos:])
	p.pos += n
	if p.pos >= len(p.buf) {
		return nil, errBadJSON
	}
	switch p.buf[p.pos] {
	case '"':
		s := p.buf[start:p.pos]
		p.pos++
		if !ascii && !utf8.Valid(s) {
			return nil, errBadJSON
		}
		return s, nil
	case '\\':
		return p.escapedString(start)
	default:
		return nil, errBadJSON // a control byte
	}
}

// plainRun returns the length of b's prefix without '"', '\\' or control bytes, and whether
// that prefix is ASCII. It tests eight bytes at a time (a token is hundreds of bytes of
// base64, and scanning it byte by byte was the largest cost of a cached review).
func plainRun(b []byte) (n int, ascii bool) {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	hasZero := func(v uint64) bool { return (v-ones)&^v&highs != 0 }
	ascii = true
	for n+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[n:])
		if hasZero(x^(ones*'"')) || hasZero(x^(ones*'\\')) || (x-ones*0x20)&^x&highs != 0 {
			break
		}
		if x&highs != 0 {
			ascii = false
		}
		n += 8
	}
	for ; n < len(b); n++ {
		c := b[n]
		if c == '"' || c == '\\' || c < 0x20 {
			break
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return n, ascii
}

func (p *jsonScanner) escapedString(start int) ([]byte, error) {
	out := len(p.scratch)
	p.scratch = append(p.scratch, p.buf[start:p.pos]...)
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		switch {
		case c == '"':
			p.pos++
			s := p.scratch[out:]
			if !utf8.Valid(s) {
				return nil, errBadJSON
			}
			return s, nil
		case c < 0x20:
			return nil, errBadJSON
		case c != '\\':
			p.scratch = append(p.scratch, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.buf) {
			return nil, errBadJSON
		}
		e := p.buf[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			p.scratch = append(p.scratch, e)
		case 'b':
			p.scratch = append(p.scratch, '\b')
		case 'f':
			p.scratch = append(p.scratch, '\f')
		case 'n':
			p.scratch = append(p.scratch, '\n')
		case 'r':
			p.scratch = append(p.scratch, '\r')
		case 't':
			p.scratch = append(p.scratch, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, errBadJSON
			}
			if utf16IsSurrogate(r) {
				// A surrogate pair: the low half must follow as another \u escape.
				if p.pos+1 >= len(p.buf) || p.buf[p.pos] != '\\' || p.buf[p.pos+1] != 'u' {
					return nil, errBadJSON
				}
				p.pos += 2
				lo, ok := p.hex4()
				if !ok || r >= 0xdc00 || lo < 0xdc00 || lo > 0xdfff {
					return nil, errBadJSON
				}
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
			}
			p.scratch = utf8.AppendRune(p.scratch, r)
		default:
			return nil, errBadJSON
		}
	}
	return nil, errBadJSON
}

func utf16IsSurrogate(r rune) bool { return 0xd800 <= r && r <= 0xdfff }

func (p *jsonScanner) hex4() (rune, bool) {
	if p.pos+4 > len(p.buf) {
		return 0, false
	}
	var r rune
	for _, c := range p.buf[p.pos : p.pos+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	p.pos += 4
	return r, true
}

// skipValue checks and skips any JSON value.
func (p *jsonScanner) skipValue(depth int) error {
	if depth >= maxJSONDepth {
		return errBadJSON
	}
	p.skipSpace()
	if p.pos >= len(p.buf) {
		return errBadJSON
	}
	switch c := p.buf[p.pos]; {
	case c == '{':
		return p.object(depth, func([]byte) error { return p.skipValue(depth + 1) })
	case c == '[':
		p.pos++
		if p.consume(']') {
			return nil
		}
		for {
			if err := p.skipValue(depth + 1); err != nil {
				return err
			}
			if p.consume(',') {
				continue
			}
			if p.consume(']') {
				return nil
			}
			return errBadJSON
		}
	case c == '"':
		mark := len(p.scratch)
		_, err := p.rawString()
		p.scratch = p.scratch[:mark] // skipped strings need no storage
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.number()
	}
}

func (p *jsonScanner) literal(s string) error {
	if len(p.buf)-p.pos < len(s) || string(p.buf[p.pos:p.pos+len(s)]) != s {
		return errBadJSON
	}
	p.pos += len(s)
	return nil
}

// number checks the JSON number grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
func (p *jsonScanner) number() error {
	digits := func() int {
		n := 0
		for p.pos < len(p.buf) && '0' <= p.buf[p.pos] && p.buf[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos < len(p.buf) && p.buf[p.pos] == '-' {
		p.pos++
	}
	start := p.pos
	if n := digits(); n == 0 || (n > 1 && p.buf[start] == '0') {
		return errBadJSON
	}
	if p.pos < len(p.buf) && p.buf[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return errBadJSON
		}
	}
	if p.pos < len(p.buf) && (p.buf[p.pos] == 'e' || p.buf[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.buf) && (p.buf[p.pos] == '+' || p.buf[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return errBadJSON
		}
	}
	return nil
}

// Answers. Every byte that does not depend on the identity is a constant. uid and extra are
// rendered from the cached Identity on each answer rather than kept rendered in the cache:
// that costs about a microsecond and saves about 500 bytes per cached identity.

const (
	answerV1Prefix      = `{"apiVersion":"` + apiVersionV1 + `","kind":"TokenReview","status":{`
	answerV1beta1Prefix = `{"apiVersion":"` + apiVersionV1beta1 + `","kind":"TokenReview","status":{`
)

func appendAnswerPrefix(dst []byte, v1 bool) []byte {
	if v1 {
		return append(dst, answerV1Prefix...)
	}
	return append(dst, answerV1beta1Prefix...)
}

// appendAllowed writes an authenticated answer (see docs/design.md: The answers).
func appendAllowed(dst []byte, v1 bool, username string, groups []string, id *mapping.Identity) []byte {
	dst = appendAnswerPrefix(dst, v1)
	dst = append(dst, `"authenticated":true,"user":{"username":`...)
	dst = appendJSONString(dst, username)
	dst = append(dst, `,"groups":[`...)
	for i, g := range groups {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, g)
	}
	dst = append(dst, "],"...)
	dst = appendUserTail(dst, id)
	return append(dst, "}}}"...)
}

// appendDenied writes an unauthenticated answer. errMsg goes to status.error only when set:
// kube-apiserver caches a denial only when status.error is empty (see docs/design.md: The answers).
func appendDenied(dst []byte, v1 bool, errMsg string) []byte {
	dst = appendAnswerPrefix(dst, v1)
	dst = append(dst, `"authenticated":false`...)
	if errMsg != "" {
		dst = append(dst, `,"error":`...)
		dst = appendJSONString(dst, errMsg)
	}
	return append(dst, "}}"...)
}

// appendUserTail writes uid (iamgate:<account>:<principal ID>) and extra (see docs/design.md: The answers), with the keys
// of the reference implementation for existing RBAC and audit tooling.
func appendUserTail(dst []byte, id *mapping.Identity) []byte {
	dst = append(dst, `"uid":"iamgate:`...)
	dst = appendJSONStringBody(dst, id.AccountID)
	dst = append(dst, ':')
	dst = appendJSONStringBody(dst, id.PrincipalID)
	dst = append(dst, `","extra":{`...)
	extra := [...]struct{ key, value string }{
		{"accessKeyId", id.AccessKeyID},
		{"arn", id.ARN},
		{"canonicalArn", id.CanonicalARN},
		{"principalId", id.PrincipalID},
		{"sessionName", id.SessionName},
		{"sigs.k8s.io/aws-iam-authenticator/principalId", id.PrincipalID},
	}
	for i, e := range extra {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, e.key...) // constant keys: nothing to escape
		dst = append(dst, `":[`...)
		dst = appendJSONString(dst, e.value)
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes a JSON string holds as they are. Filled once at init.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, like
// encoding/json; <, > and & are escaped so that answers are safe in any viewer.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONStringBody(dst, s)
	return append(dst, '"')
}

// appendJSONStringBody appends s escaped for the inside of a JSON string.
func appendJSONStringBody(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && jsonSafe[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
