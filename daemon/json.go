package daemon

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// JSON without encoding/json, for the hot path: jsonScanner reads an untrusted document
// strictly and without allocating, and appendJSONString writes a string. The TokenReview codec
// (review.go) is built on them; neither knows anything of TokenReviews.

// maxJSONDepth bounds the nesting of objects and arrays the scanner accepts.
const maxJSONDepth = 32

// errBadJSON is the scanner's one error: the input is not valid JSON, nests deeper than
// maxJSONDepth, or is not what the caller asked for (an object, a string).
var errBadJSON = errors.New("not valid JSON")

// jsonScanner is a strict, allocation-free JSON reader over one buffer. It checks the whole
// grammar of what it reads or skips (RFC 8259: numbers, escapes, surrogate pairs, valid UTF-8,
// no control bytes in strings) and refuses nesting deeper than maxJSONDepth. Strings come back
// as sub-slices of buf, or of scratch when they have escapes to decode; the caller owns both.
type jsonScanner struct {
	buf     []byte
	pos     int    // the next byte to read
	scratch []byte // decoded strings that had escapes; see rawString
}

func (sc *jsonScanner) skipSpace() {
	for sc.pos < len(sc.buf) {
		switch sc.buf[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// consume skips white space and then c, if c is next.
func (sc *jsonScanner) consume(c byte) bool {
	sc.skipSpace()
	if sc.pos < len(sc.buf) && sc.buf[sc.pos] == c {
		sc.pos++
		return true
	}
	return false
}

// atEnd skips white space and reports whether nothing follows.
func (sc *jsonScanner) atEnd() bool {
	sc.skipSpace()
	return sc.pos == len(sc.buf)
}

// object reads an object at nesting depth depth, calling member for each key with the scanner
// positioned at the value; member must consume the value (a stringValue, an object, a
// skipValue at depth+1) or return an error, which object returns.
func (sc *jsonScanner) object(depth int, member func(key []byte) error) error {
	if depth >= maxJSONDepth || !sc.consume('{') {
		return errBadJSON
	}
	if sc.consume('}') {
		return nil
	}
	for {
		sc.skipSpace()
		key, err := sc.rawString()
		if err != nil {
			return err
		}
		if !sc.consume(':') {
			return errBadJSON
		}
		if err := member(key); err != nil {
			return err
		}
		if sc.consume(',') {
			continue
		}
		if sc.consume('}') {
			return nil
		}
		return errBadJSON
	}
}

// stringValue reads a string value, unescaping into scratch when it has escapes.
func (sc *jsonScanner) stringValue() ([]byte, error) {
	sc.skipSpace()
	return sc.rawString()
}

// rawString reads a string at pos. Without escapes it returns a sub-slice of buf; with
// escapes it decodes into scratch. A grown scratch leaves earlier strings valid in the old
// array, and skipValue only truncates scratch back over strings it discards.
func (sc *jsonScanner) rawString() ([]byte, error) {
	if sc.pos >= len(sc.buf) || sc.buf[sc.pos] != '"' {
		return nil, errBadJSON
	}
	sc.pos++
	start := sc.pos
	n, ascii := plainRun(sc.buf[sc.pos:])
	sc.pos += n
	if sc.pos >= len(sc.buf) {
		return nil, errBadJSON
	}
	switch sc.buf[sc.pos] {
	case '"':
		s := sc.buf[start:sc.pos]
		sc.pos++
		if !ascii && !utf8.Valid(s) {
			return nil, errBadJSON
		}
		return s, nil
	case '\\':
		return sc.escapedString(start)
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

// escapedString decodes the string that started at start, at its first backslash (pos), into
// scratch.
func (sc *jsonScanner) escapedString(start int) ([]byte, error) {
	out := len(sc.scratch)
	sc.scratch = append(sc.scratch, sc.buf[start:sc.pos]...)
	for sc.pos < len(sc.buf) {
		c := sc.buf[sc.pos]
		switch {
		case c == '"':
			sc.pos++
			s := sc.scratch[out:]
			if !utf8.Valid(s) {
				return nil, errBadJSON
			}
			return s, nil
		case c < 0x20:
			return nil, errBadJSON
		case c != '\\':
			sc.scratch = append(sc.scratch, c)
			sc.pos++
			continue
		}
		if sc.pos+1 >= len(sc.buf) {
			return nil, errBadJSON
		}
		e := sc.buf[sc.pos+1]
		sc.pos += 2
		switch e {
		case '"', '\\', '/':
			sc.scratch = append(sc.scratch, e)
		case 'b':
			sc.scratch = append(sc.scratch, '\b')
		case 'f':
			sc.scratch = append(sc.scratch, '\f')
		case 'n':
			sc.scratch = append(sc.scratch, '\n')
		case 'r':
			sc.scratch = append(sc.scratch, '\r')
		case 't':
			sc.scratch = append(sc.scratch, '\t')
		case 'u':
			r, ok := sc.hex4()
			if !ok {
				return nil, errBadJSON
			}
			if utf16IsSurrogate(r) {
				// A surrogate pair: the low half must follow as another \u escape.
				if sc.pos+1 >= len(sc.buf) || sc.buf[sc.pos] != '\\' || sc.buf[sc.pos+1] != 'u' {
					return nil, errBadJSON
				}
				sc.pos += 2
				lo, ok := sc.hex4()
				if !ok || r >= 0xdc00 || lo < 0xdc00 || lo > 0xdfff {
					return nil, errBadJSON
				}
				r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
			}
			sc.scratch = utf8.AppendRune(sc.scratch, r)
		default:
			return nil, errBadJSON
		}
	}
	return nil, errBadJSON
}

func utf16IsSurrogate(r rune) bool { return 0xd800 <= r && r <= 0xdfff }

// hex4 reads the four hex digits of a \u escape.
func (sc *jsonScanner) hex4() (rune, bool) {
	if sc.pos+4 > len(sc.buf) {
		return 0, false
	}
	var r rune
	for _, c := range sc.buf[sc.pos : sc.pos+4] {
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
	sc.pos += 4
	return r, true
}

// skipValue checks and skips any JSON value at nesting depth depth.
func (sc *jsonScanner) skipValue(depth int) error {
	if depth >= maxJSONDepth {
		return errBadJSON
	}
	sc.skipSpace()
	if sc.pos >= len(sc.buf) {
		return errBadJSON
	}
	switch c := sc.buf[sc.pos]; {
	case c == '{':
		return sc.object(depth, func([]byte) error { return sc.skipValue(depth + 1) })
	case c == '[':
		sc.pos++
		if sc.consume(']') {
			return nil
		}
		for {
			if err := sc.skipValue(depth + 1); err != nil {
				return err
			}
			if sc.consume(',') {
				continue
			}
			if sc.consume(']') {
				return nil
			}
			return errBadJSON
		}
	case c == '"':
		mark := len(sc.scratch)
		_, err := sc.rawString()
		sc.scratch = sc.scratch[:mark] // skipped strings need no storage
		return err
	case c == 't':
		return sc.literal("true")
	case c == 'f':
		return sc.literal("false")
	case c == 'n':
		return sc.literal("null")
	default:
		return sc.number()
	}
}

// null skips white space and then a null literal, if one is next.
func (sc *jsonScanner) null() bool {
	sc.skipSpace()
	if sc.literal("null") == nil {
		return true
	}
	return false
}

// nullableString reads a string value into *v, or leaves *v as it is for null, as
// encoding/json does for a string field.
func (sc *jsonScanner) nullableString(v *[]byte) error {
	if sc.null() {
		return nil
	}
	s, err := sc.stringValue()
	if err == nil {
		*v = s
	}
	return err
}

// literal reads s (true, false or null).
func (sc *jsonScanner) literal(s string) error {
	if len(sc.buf)-sc.pos < len(s) || string(sc.buf[sc.pos:sc.pos+len(s)]) != s {
		return errBadJSON
	}
	sc.pos += len(s)
	return nil
}

// number checks the JSON number grammar: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
func (sc *jsonScanner) number() error {
	digits := func() int {
		n := 0
		for sc.pos < len(sc.buf) && '0' <= sc.buf[sc.pos] && sc.buf[sc.pos] <= '9' {
			sc.pos++
			n++
		}
		return n
	}
	if sc.pos < len(sc.buf) && sc.buf[sc.pos] == '-' {
		sc.pos++
	}
	start := sc.pos
	if n := digits(); n == 0 || (n > 1 && sc.buf[start] == '0') {
		return errBadJSON
	}
	if sc.pos < len(sc.buf) && sc.buf[sc.pos] == '.' {
		sc.pos++
		if digits() == 0 {
			return errBadJSON
		}
	}
	if sc.pos < len(sc.buf) && (sc.buf[sc.pos] == 'e' || sc.buf[sc.pos] == 'E') {
		sc.pos++
		if sc.pos < len(sc.buf) && (sc.buf[sc.pos] == '+' || sc.buf[sc.pos] == '-') {
			sc.pos++
		}
		if digits() == 0 {
			return errBadJSON
		}
	}
	return nil
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
