package mapping

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Template errors. ErrUnknownPlaceholder is a load error; the others are denials at render
// time.
var (
	ErrUnknownPlaceholder = errors.New("unknown template placeholder")
	ErrEmptyUsername      = errors.New("rendered username is empty")
	ErrNotInstanceID      = errors.New("session name is not an EC2 instance ID")
	ErrNoResolver         = errors.New("no EC2 resolver configured for {{EC2PrivateDNSName}}")
	ErrInstanceNotFound   = errors.New("EC2 instance not found")
)

type placeholder uint8

const (
	phNone placeholder = iota
	phAccountID
	phSessionName
	phSessionNameRaw
	phAccessKeyID
	phEC2PrivateDNSName
)

var placeholders = map[string]placeholder{
	"AccountID":         phAccountID,
	"SessionName":       phSessionName,
	"SessionNameRaw":    phSessionNameRaw,
	"AccessKeyID":       phAccessKeyID,
	"EC2PrivateDNSName": phEC2PrivateDNSName,
}

// part is a literal (ph == phNone) or a placeholder.
type part struct {
	lit string
	ph  placeholder
}

// template is a username or group compiled once at load (see docs/design.md: Mapping). A template without
// placeholders renders to raw itself.
type template struct {
	raw    string
	parts  []part // nil when raw has no placeholder
	litLen int    // total length of the literal parts
	ec2    bool   // uses {{EC2PrivateDNSName}}
}

// compileTemplate splits s into literals and placeholders. Anything that opens with "{{" must
// be one of the five known placeholders, spelled exactly: aws-iam-authenticator leaves unknown
// placeholders in the username silently, iamgate refuses them at load.
func compileTemplate(s string) (template, error) {
	t := template{raw: s}
	if !strings.Contains(s, "{{") {
		return t, nil
	}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			t.litLen += len(rest)
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
			t.litLen += i
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return t, fmt.Errorf("%w: unclosed {{ in %q", ErrUnknownPlaceholder, s)
		}
		name := rest[i+2 : i+j]
		ph, ok := placeholders[name]
		if !ok {
			return t, fmt.Errorf("%w {{%s}} in %q (known: {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}}, {{EC2PrivateDNSName}})", ErrUnknownPlaceholder, name, s)
		}
		if ph == phEC2PrivateDNSName {
			t.ec2 = true
		}
		t.parts = append(t.parts, part{ph: ph})
		rest = rest[i+j+2:]
	}
	return t, nil
}

// renderEnv carries what one request's templates need; the EC2 name is looked up at most once.
type renderEnv struct {
	ctx     context.Context
	id      *Identity
	res     InstanceResolver
	dns     string
	dnsDone bool
}

func (e *renderEnv) value(ph placeholder) (string, error) {
	switch ph {
	case phAccountID:
		return e.id.AccountID, nil
	case phSessionName, phSessionNameRaw:
		return e.id.SessionName, nil
	case phAccessKeyID:
		return e.id.AccessKeyID, nil
	case phEC2PrivateDNSName:
		if e.dnsDone {
			return e.dns, nil
		}
		if !IsInstanceID(e.id.SessionName) {
			return "", ErrNotInstanceID
		}
		if e.res == nil {
			return "", ErrNoResolver
		}
		dns, err := e.res.PrivateDNSName(e.ctx, e.id.SessionName)
		if err != nil {
			return "", err
		}
		e.dns, e.dnsDone = dns, true
		return dns, nil
	}
	return "", nil
}

// render expands t. It allocates only the result string, and nothing when t is a plain string
// or one placeholder whose value is used unchanged.
func (t *template) render(e *renderEnv) (string, error) {
	if t.parts == nil {
		return t.raw, nil
	}
	if len(t.parts) == 1 {
		v, err := e.value(t.parts[0].ph)
		if t.parts[0].ph != phSessionName || err != nil || strings.IndexByte(v, '@') < 0 {
			return v, err // the value itself: nothing to allocate
		}
	}
	n := t.litLen
	for i := range t.parts {
		if ph := t.parts[i].ph; ph != phNone {
			v, err := e.value(ph)
			if err != nil {
				return "", err
			}
			n += len(v)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i := range t.parts {
		p := &t.parts[i]
		if p.ph == phNone {
			b.WriteString(p.lit)
			continue
		}
		v, _ := e.value(p.ph) // cannot fail: every value was computed above
		if p.ph == phSessionName {
			// {{SessionName}} replaces "@" with "-" (session names are often e-mail
			// addresses; "@" is awkward in RBAC names); {{SessionNameRaw}} keeps it.
			for k := 0; k < len(v); k++ {
				c := v[k]
				if c == '@' {
					c = '-'
				}
				b.WriteByte(c)
			}
			continue
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// IsInstanceID reports whether s is an EC2 instance ID: "i-" and 8 or 17 lowercase hex digits.
func IsInstanceID(s string) bool {
	if len(s) != 10 && len(s) != 19 || s[0] != 'i' || s[1] != '-' {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
