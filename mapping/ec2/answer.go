package ec2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"

	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK decodes a DescribeInstances answer into every field of every instance, one
// encoding/xml token (and its allocations) at a time; the resolver needs two fields of each.
// On a node's first review that decoding was a quarter of iamgate's CPU. So the resolver swaps
// the SDK's decoder of a successful answer for readDescribeInstances, a strict reader of the
// XML EC2 writes that keeps the instance IDs, their private DNS names and the next page's
// token. Everything else stays the SDK's: signing, endpoints, credentials, retries, and the
// decoding of error answers, whose typed error codes its retryer reads.

const (
	// maxAnswerBytes bounds one DescribeInstances answer. EC2 describes an instance in a few
	// KiB; a page answers the IDs of one batch (MaxBatch, default 100).
	maxAnswerBytes = 16 << 20
	// maxAnswerDepth bounds element nesting; EC2's answers nest about ten deep.
	maxAnswerDepth = 32
	// sdkDeserializer is the ID under which aws-sdk-go-v2 adds an operation's decoder.
	sdkDeserializer = "OperationDeserializer"
)

// withAnswerReader makes a DescribeInstances call read its successful answer with
// readDescribeInstances.
func withAnswerReader(o *awsec2.Options) {
	o.APIOptions = append(o.APIOptions, swapAnswerReader)
}

func swapAnswerReader(stack *middleware.Stack) error {
	r := &answerReader{}
	sdk, err := stack.Deserialize.Swap(sdkDeserializer, r)
	if err != nil {
		return fmt.Errorf("cannot install the DescribeInstances answer reader: %w", err)
	}
	r.sdk = sdk
	return nil
}

// answerReader is the Deserialize middleware that reads a 2xx answer itself and hands any
// other outcome to the SDK's decoder.
type answerReader struct {
	sdk middleware.DeserializeMiddleware
}

func (*answerReader) ID() string { return sdkDeserializer }

func (r *answerReader) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	out middleware.DeserializeOutput, md middleware.Metadata, err error,
) {
	out, md, err = next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return r.sdk.HandleDeserialize(ctx, in, answered{out, md, err})
	}
	buf := answerBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			answerBuffers.Put(buf)
		}
	}()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxAnswerBytes+1))
	resp.Body.Close()
	if err != nil {
		return out, md, fmt.Errorf("cannot read DescribeInstances answer: %w", err)
	}
	instances, nextToken, err := readDescribeInstances(buf.Bytes())
	if err != nil {
		return out, md, err
	}
	answer := &awsec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: instances}}}
	if nextToken != "" {
		answer.NextToken = &nextToken
	}
	out.Result = answer
	return out, md, nil
}

// answered is a DeserializeHandler that returns an outcome already received.
type answered struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
	err error
}

func (a answered) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return a.out, a.md, a.err
}

// answerBuffers hold answers while they are read; a buffer grown past 1 MiB is not pooled.
var answerBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ErrAnswer is wrapped by the errors of readDescribeInstances.
var ErrAnswer = errors.New("malformed DescribeInstances answer")

// answerError is ErrAnswer at byte pos of the answer, with format's details; the names and
// values among args (byte slices of the answer) are cut to 64 bytes, so that an answer
// cannot make the error, and the log line that shows it, long.
func answerError(pos int, format string, args ...any) error {
	const most = 64
	for i, a := range args {
		if b, ok := a.([]byte); ok && len(b) > most {
			args[i] = append(b[:most:most], "..."...)
		}
	}
	return fmt.Errorf("%w at byte %d: %s", ErrAnswer, pos, fmt.Sprintf(format, args...))
}

// readDescribeInstances reads a DescribeInstances answer: the instance ID and private DNS
// name of each reservationSet/item/instancesSet/item (in the answer's order; either is nil
// when absent) and nextToken ("" when absent).
//
// It accepts the XML EC2 writes and rejects the rest: UTF-8 only; an optional XML
// declaration (version 1.0, encoding UTF-8); one root element, DescribeInstancesResponse;
// element names of ASCII letters, digits, '_', '-' and '.' without a namespace prefix;
// attribute values quoted; the five predefined entities and character references only; no
// comment, CDATA section, DOCTYPE or other processing instruction; at most maxAnswerDepth
// levels; a field it keeps holds text only, at most once per instance, without control
// characters. Element names match as the SDK matches them (ASCII case-insensitively), and
// nested fields of the same name (a network interface's privateDnsName) are not the
// instance's. Any document it accepts is well-formed XML.
func readDescribeInstances(b []byte) (instances []types.Instance, nextToken string, err error) {
	if len(b) > maxAnswerBytes {
		return nil, "", fmt.Errorf("%w: longer than %d bytes", ErrAnswer, maxAnswerBytes)
	}
	if !utf8.Valid(b) {
		return nil, "", fmt.Errorf("%w: not UTF-8", ErrAnswer)
	}
	s := answerScanner{b: b}
	if err := s.declaration(); err != nil {
		return nil, "", err
	}
	s.skipSpace()
	if s.pos == len(b) {
		return nil, "", answerError(s.pos, "no root element")
	}

	var (
		path       [maxAnswerDepth][]byte // names of the open elements
		depth      int
		rootClosed bool
		field      *string          // the kept field being read, nil when none
		fieldText  []byte           // its text
		haveID     bool             // the current instance has its instanceId
		haveDNS    bool             // and its privateDnsName
		haveNext   bool             // nextToken was read
		found      []instanceFields // the instances read; types.Instance is a kilobyte each
		cur        *instanceFields
		textBuffer []byte // decoded text with references
	)
	for !rootClosed {
		if s.pos == len(b) {
			return nil, "", answerError(s.pos, "unexpected end inside <%s>", path[depth-1])
		}
		if b[s.pos] != '<' {
			if depth == 0 {
				return nil, "", answerError(s.pos, "text outside the root element")
			}
			start := s.pos
			text, decoded, err := s.text(textBuffer[:0], '<')
			if err != nil {
				return nil, "", err
			}
			if decoded {
				textBuffer = text // kept for the next text with references; a field's is read before it
			}
			if field != nil {
				fieldText = text
				for _, c := range text {
					if c < 0x20 || c == 0x7f {
						return nil, "", answerError(start, "control character in <%s>", path[depth-1])
					}
				}
			}
			continue
		}
		tagStart := s.pos
		switch {
		case s.hasPrefix("</"):
			s.pos += 2
			name := s.name()
			s.skipSpace()
			if !s.consume('>') {
				return nil, "", answerError(s.pos, "malformed end tag")
			}
			if depth == 0 || !bytes.Equal(name, path[depth-1]) {
				return nil, "", answerError(tagStart, "end tag </%s> without its start tag", name)
			}
			if field != nil {
				*field = string(fieldText)
				field = nil
			}
			depth--
			rootClosed = depth == 0
		case s.hasPrefix("<!"), s.hasPrefix("<?"):
			return nil, "", answerError(tagStart, "comments, CDATA sections, DOCTYPE and processing instructions are not part of EC2's answers")
		default:
			s.pos++
			name := s.name()
			if len(name) == 0 {
				return nil, "", answerError(tagStart, "malformed start tag")
			}
			if s.pos < len(b) && b[s.pos] == ':' {
				return nil, "", answerError(tagStart, "namespace prefix in <%s:...>, not part of EC2's answers", name)
			}
			if err := s.attributes(); err != nil {
				return nil, "", err
			}
			empty := s.consume('/')
			if !s.consume('>') {
				return nil, "", answerError(s.pos, "malformed start tag <%s>", name)
			}
			if field != nil {
				return nil, "", answerError(tagStart, "element <%s> inside <%s>, which holds text", name, path[depth-1])
			}
			if depth == 0 && !bytes.Equal(name, []byte("DescribeInstancesResponse")) {
				return nil, "", answerError(tagStart, "root element <%s>, want <DescribeInstancesResponse>", name)
			}
			if depth == maxAnswerDepth {
				return nil, "", answerError(tagStart, "elements nested deeper than %d", maxAnswerDepth)
			}
			path[depth] = name
			depth++
			switch {
			case depth == 2 && isName(name, "nextToken"):
				if haveNext {
					return nil, "", answerError(tagStart, "a second <nextToken>")
				}
				haveNext = true
				field = &nextToken
			case depth == 5 && isName(name, "item") && isName(path[1], "reservationSet") &&
				isName(path[2], "item") && isName(path[3], "instancesSet"):
				found = append(found, instanceFields{})
				cur = &found[len(found)-1]
				haveID, haveDNS = false, false
			case depth == 6 && cur != nil && isName(path[4], "item") && isName(path[1], "reservationSet") &&
				isName(path[2], "item") && isName(path[3], "instancesSet") &&
				(isName(name, "instanceId") || isName(name, "privateDnsName")):
				have, dst := &haveID, &cur.id
				if isName(name, "privateDnsName") {
					have, dst = &haveDNS, &cur.dns
				}
				if *have {
					return nil, "", answerError(tagStart, "a second <%s> in one instance", name)
				}
				*have = true
				*dst = new(string)
				field = *dst
			}
			fieldText = nil
			if empty { // its fields, if kept, are ""
				field = nil
				depth--
				rootClosed = depth == 0
			}
		}
	}
	s.skipSpace()
	if s.pos != len(b) {
		return nil, "", answerError(s.pos, "content after the root element")
	}
	instances = make([]types.Instance, len(found))
	for i, f := range found {
		instances[i].InstanceId, instances[i].PrivateDnsName = f.id, f.dns
	}
	return instances, nextToken, nil
}

// instanceFields are the fields readDescribeInstances keeps of an instance, nil when absent.
type instanceFields struct{ id, dns *string }

// isName reports whether an element's name is want, ASCII case-insensitively (as the SDK
// matches names; names are ASCII here).
func isName(name []byte, want string) bool {
	return len(name) == len(want) && bytes.EqualFold(name, []byte(want))
}

// answerScanner reads b from pos.
type answerScanner struct {
	b   []byte
	pos int
}

func (s *answerScanner) hasPrefix(p string) bool { return bytes.HasPrefix(s.b[s.pos:], []byte(p)) }

func (s *answerScanner) consume(c byte) bool {
	if s.pos < len(s.b) && s.b[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *answerScanner) skipSpace() {
	b, i := s.b, s.pos
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	s.pos = i
}

// name reads a name without ':': an ASCII letter or '_', then letters, digits, '_', '-' and
// '.'. An element's name ends there (a prefix makes its tag malformed); an attribute's may go
// on with ':' and another such name (xmlns:xsi).
func (s *answerScanner) name() []byte {
	start := s.pos
	if s.pos == len(s.b) || !nameStart[s.b[s.pos]] {
		return nil
	}
	b, i := s.b, s.pos+1
	for i < len(b) && nameByte[b[i]] {
		i++
	}
	s.pos = i
	return b[start:i]
}

// plainText holds the ASCII bytes text may hold as they are: all but the control characters
// other than tab, newline and carriage return, '<', '&' and the quotes (which end attribute
// values). nameStart and nameByte hold those that start and continue a name.
var plainText, nameStart, nameByte = func() (text, start, name [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		text[c] = c != '<' && c != '&' && c != '"' && c != '\''
	}
	text['\t'], text['\n'], text['\r'] = true, true, true
	for c := 0; c < 0x80; c++ {
		start[c] = c|0x20 >= 'a' && c|0x20 <= 'z' || c == '_'
		name[c] = start[c] || c >= '0' && c <= '9' || c == '-' || c == '.'
	}
	return
}()

// attributes reads the attributes of a start tag up to '/' or '>', each after white space:
// name="value" or name='value'. Names may hold ':' (namespace declarations); values are
// checked as text and not kept.
func (s *answerScanner) attributes() error {
	for {
		spaced := s.pos < len(s.b) && isSpace(s.b[s.pos])
		s.skipSpace()
		if s.pos == len(s.b) {
			return answerError(s.pos, "unexpected end inside a tag")
		}
		if c := s.b[s.pos]; c == '/' || c == '>' {
			return nil
		}
		if _, _, err := s.attribute(spaced); err != nil {
			return err
		}
	}
}

// attribute reads one name="value" after white space (spaced) and returns the name and the
// decoded value.
func (s *answerScanner) attribute(spaced bool) (name, value []byte, err error) {
	start := s.pos
	if !spaced || len(s.name()) == 0 {
		return nil, nil, answerError(start, "malformed attribute")
	}
	for s.consume(':') {
		if len(s.name()) == 0 {
			return nil, nil, answerError(start, "malformed attribute name")
		}
	}
	name = s.b[start:s.pos]
	s.skipSpace()
	if !s.consume('=') {
		return nil, nil, answerError(s.pos, "attribute %s without '='", name)
	}
	s.skipSpace()
	if s.pos == len(s.b) || (s.b[s.pos] != '"' && s.b[s.pos] != '\'') {
		return nil, nil, answerError(s.pos, "attribute %s without a quoted value", name)
	}
	quote := s.b[s.pos]
	s.pos++
	value, _, err = s.text(nil, quote)
	if err != nil {
		return nil, nil, err
	}
	if !s.consume(quote) {
		return nil, nil, answerError(s.pos, "attribute %s not closed", name)
	}
	return name, value, nil
}

// text reads character data up to end ('<' for element content, the quote for an attribute
// value), which it does not consume; an attribute value may not hold '<'. It returns the
// text, decoded into buf when it holds references (decoded), else a slice of the input. Every
// character must be one XML allows.
func (s *answerScanner) text(buf []byte, end byte) (text []byte, decoded bool, err error) {
	start := s.pos
	plain := start // start of the text not yet copied into buf
	for s.pos < len(s.b) {
		b, i := s.b, s.pos // locals: the loop runs once per byte of most answers
		for i < len(b) && plainText[b[i]] {
			i++
		}
		if s.pos = i; i == len(b) {
			break
		}
		c := s.b[s.pos]
		switch {
		case c == end:
			if !decoded {
				return s.b[start:s.pos], false, nil
			}
			return append(buf, s.b[plain:s.pos]...), true, nil
		case c == '<':
			return nil, false, answerError(s.pos, "'<' in an attribute value")
		case c == '&':
			buf = append(buf, s.b[plain:s.pos]...)
			r, err := s.reference()
			if err != nil {
				return nil, false, err
			}
			buf = utf8.AppendRune(buf, r)
			decoded = true
			plain = s.pos
		case c == '"' || c == '\'':
			s.pos++ // the other quote
		case c < 0x80:
			return nil, false, answerError(s.pos, "character U+%04X is not allowed in XML", c)
		default:
			r, n := utf8.DecodeRune(s.b[s.pos:]) // valid: the whole answer was checked
			if !xmlChar(r) {
				return nil, false, answerError(s.pos, "character U+%04X is not allowed in XML", r)
			}
			s.pos += n
		}
	}
	return nil, false, answerError(s.pos, "unexpected end of text")
}

// reference reads &lt; &gt; &amp; &apos; &quot; &#N; or &#xH; at pos.
func (s *answerScanner) reference() (rune, error) {
	start := s.pos
	semi := bytes.IndexByte(s.b[start:min(len(s.b), start+12)], ';')
	if semi < 0 {
		return 0, answerError(start, "malformed reference")
	}
	ref := string(s.b[start+1 : start+semi])
	s.pos = start + semi + 1
	switch ref {
	case "lt":
		return '<', nil
	case "gt":
		return '>', nil
	case "amp":
		return '&', nil
	case "apos":
		return '\'', nil
	case "quot":
		return '"', nil
	}
	var n uint64
	var err error
	switch {
	case len(ref) > 2 && ref[:2] == "#x":
		n, err = strconv.ParseUint(ref[2:], 16, 32)
	case len(ref) > 1 && ref[0] == '#' && ref[1] >= '0' && ref[1] <= '9':
		n, err = strconv.ParseUint(ref[1:], 10, 32)
	default:
		return 0, answerError(start, "unknown entity &%s;", ref)
	}
	if err != nil || n > utf8.MaxRune || !xmlChar(rune(n)) {
		return 0, answerError(start, "invalid character reference &%s;", ref)
	}
	return rune(n), nil
}

// xmlChar reports whether XML allows r: tab, newline, carriage return, U+0020-U+D7FF,
// U+E000-U+FFFD, U+10000-U+10FFFF.
func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= utf8.MaxRune
}

// declaration reads an optional XML declaration at the start: <?xml version="1.0"?>, with
// encoding="UTF-8" (any case) and standalone="yes"/"no" allowed.
func (s *answerScanner) declaration() error {
	if !s.hasPrefix("<?xml") || len(s.b) > 5 && !isSpace(s.b[5]) {
		return nil
	}
	s.pos = 5
	var version, encoding, standalone bool // seen
	for {
		spaced := s.pos < len(s.b) && isSpace(s.b[s.pos])
		s.skipSpace()
		if s.hasPrefix("?>") {
			s.pos += 2
			if !version {
				return answerError(0, "XML declaration without version")
			}
			return nil
		}
		at := s.pos
		name, value, err := s.attribute(spaced)
		if err != nil {
			return err
		}
		var ok bool
		switch string(name) {
		case "version":
			ok = !version && string(value) == "1.0"
			version = true
		case "encoding":
			ok = !encoding && bytes.EqualFold(value, []byte("UTF-8"))
			encoding = true
		case "standalone":
			ok = !standalone && (string(value) == "yes" || string(value) == "no")
			standalone = true
		}
		if !ok {
			return answerError(at, "XML declaration with %s=%q", name, value)
		}
	}
}
