package mapping

import (
	"errors"
	"fmt"
	"strings"
)

// Partitions lists the AWS partitions iamgate knows (docs/design.md, Token validation); an ARN in any other
// partition is rejected.
var Partitions = []string{"aws", "aws-us-gov", "aws-cn", "aws-eusc", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f"}

// KnownPartition reports whether p is one of Partitions.
func KnownPartition(p string) bool {
	switch p {
	case "aws", "aws-us-gov", "aws-cn", "aws-eusc", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f":
		return true
	}
	return false
}

// ErrInvalidARN is wrapped by every ARN parse error.
var ErrInvalidARN = errors.New("invalid ARN")

// Kind is the kind of IAM principal an ARN names.
type Kind uint8

// The principal kinds iamgate maps (see docs/design.md: Identity); every other ARN form is rejected.
const (
	KindUnknown       Kind = iota
	KindRole               // arn:P:iam::A:role/[path/]NAME, and assumed roles canonicalised to it
	KindUser               // arn:P:iam::A:user/[path/]NAME
	KindRoot               // arn:P:iam::A:root
	KindFederatedUser      // arn:P:sts::A:federated-user/NAME
)

// String returns the kind's name as used in the docs and explain output.
func (k Kind) String() string {
	switch k {
	case KindRole:
		return "role"
	case KindUser:
		return "user"
	case KindRoot:
		return "root"
	case KindFederatedUser:
		return "federated-user"
	}
	return "unknown"
}

// ParsedARN is an IAM or STS principal ARN split into its parts.
type ParsedARN struct {
	Partition string
	AccountID string
	Kind      Kind
	// Path is the IAM path of a role or user without its slashes at either end ("" for none).
	Path string
	// Name is the role, user or federated user name ("" for root).
	Name string
	// SessionName is the session of an assumed-role ARN ("" otherwise).
	SessionName string
	// AssumedRole is true when the ARN was an sts assumed-role ARN.
	AssumedRole bool
}

// Canonical returns the canonical ARN (see docs/design.md: Identity): assumed roles become their role, paths of
// roles and users are kept as written.
func (p *ParsedARN) Canonical() string { return string(p.appendCanonical(nil, true)) }

// appendCanonical appends the canonical ARN to b, with a role's or user's path or without.
func (p *ParsedARN) appendCanonical(b []byte, withPath bool) []byte {
	start := len(b)
	b = append(b, "arn:"...)
	b = append(b, p.Partition...)
	if p.Kind == KindFederatedUser {
		b = append(b, ":sts::"...)
	} else {
		b = append(b, ":iam::"...)
	}
	b = append(b, p.AccountID...)
	switch p.Kind {
	case KindRole:
		b = append(b, ":role/"...)
	case KindUser:
		b = append(b, ":user/"...)
	case KindRoot:
		return append(b, ":root"...)
	case KindFederatedUser:
		b = append(b, ":federated-user/"...)
	default:
		return b[:start]
	}
	if withPath && p.Path != "" {
		b = append(b, p.Path...)
		b = append(b, '/')
	}
	return append(b, p.Name...)
}

// lookupKey returns the key a Table indexes the principal under: the lower-cased canonical ARN
// with a role's path dropped, since STS reports assumed roles without their path. IAM names are
// unique regardless of case, so the lower-cased form names one principal.
func (p *ParsedARN) lookupKey() string { return string(p.appendLookupKey(nil)) }

// appendLookupKey appends the lookupKey to b. A parsed ARN is ASCII, so lower-casing its bytes
// is strings.ToLower.
func (p *ParsedARN) appendLookupKey(b []byte) []byte {
	start := len(b)
	b = p.appendCanonical(b, p.Kind != KindRole)
	asciiLower(b[start:])
	return b
}

func asciiLower(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
}

// ParseARN parses a principal ARN of one of the forms iamgate maps (see docs/design.md: Identity):
//
//	arn:P:iam::A:role/[path/]NAME
//	arn:P:iam::A:user/[path/]NAME
//	arn:P:iam::A:root
//	arn:P:sts::A:assumed-role/ROLE/SESSION
//	arn:P:sts::A:federated-user/NAME
//
// P must be a known partition and A 12 digits. Names use IAM's name character set (1 to 64 of
// letters, digits and +=,.@_-); a path is what IAM allows in one: printable ASCII from ! to ~
// (so any character but "/" inside a segment), at most 512 characters with its slashes.
func ParseARN(arn string) (ParsedARN, error) {
	var p ParsedARN
	if len(arn) > 2048 {
		return p, fmt.Errorf("%w: longer than 2048 bytes", ErrInvalidARN)
	}
	// The five colons in turn, the resource last (it may hold more): strings.SplitN would
	// allocate, and every cold review parses the ARN STS returned.
	var parts [5]string
	resource := arn
	for i := range parts {
		var ok bool
		if parts[i], resource, ok = strings.Cut(resource, ":"); !ok || i == 0 && parts[0] != "arn" {
			return p, fmt.Errorf("%w: not of the form arn:PARTITION:SERVICE::ACCOUNT:RESOURCE", ErrInvalidARN)
		}
	}
	p.Partition, p.AccountID = parts[1], parts[4]
	service, region := parts[2], parts[3]
	if !KnownPartition(p.Partition) {
		return p, fmt.Errorf("%w: unknown partition %q", ErrInvalidARN, p.Partition)
	}
	if service != "iam" && service != "sts" {
		return p, fmt.Errorf("%w: service %q is neither iam nor sts", ErrInvalidARN, service)
	}
	if region != "" {
		return p, fmt.Errorf("%w: IAM and STS ARNs have no region; got %q", ErrInvalidARN, region)
	}
	if !IsAccountID(p.AccountID) {
		return p, fmt.Errorf("%w: account %q is not 12 digits", ErrInvalidARN, p.AccountID)
	}
	typ, rest, _ := strings.Cut(resource, "/")
	switch service {
	case "iam":
		switch typ {
		case "root":
			if resource != "root" {
				return p, fmt.Errorf("%w: unexpected text after root", ErrInvalidARN)
			}
			p.Kind = KindRoot
			return p, nil
		case "role", "user":
			path, name, err := splitPathName(typ, rest)
			if err != nil {
				return p, err
			}
			p.Kind = KindUser
			if typ == "role" {
				p.Kind = KindRole
			}
			p.Path, p.Name = path, name
			return p, nil
		}
	case "sts":
		switch typ {
		case "assumed-role":
			role, session, ok := strings.Cut(rest, "/")
			if !ok || !isIAMName(role) || !isIAMName(session) {
				return p, fmt.Errorf("%w: assumed-role ARN must be assumed-role/ROLE/SESSION", ErrInvalidARN)
			}
			p.Kind, p.Name, p.SessionName, p.AssumedRole = KindRole, role, session, true
			return p, nil
		case "federated-user":
			if !isIAMName(rest) {
				return p, fmt.Errorf("%w: bad federated user name %q", ErrInvalidARN, rest)
			}
			p.Kind, p.Name = KindFederatedUser, rest
			return p, nil
		}
	default:
		return p, fmt.Errorf("%w: service %q is neither iam nor sts", ErrInvalidARN, service)
	}
	return p, fmt.Errorf("%w: unsupported %s resource %q (want role/, user/, root, assumed-role/ or federated-user/)", ErrInvalidARN, service, typ)
}

// IsAccountID reports whether s is an AWS account ID: exactly 12 ASCII digits.
func IsAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isIAMName reports whether s is a non-empty name in IAM's character set [\w+=,.@-], at most
// 64 bytes: role and user names, role session names and federated user names are all at most
// 64 characters of that set.
func isIAMName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '+' || c == '=' || c == ',' || c == '.' || c == '@' || c == '_' || c == '-':
		default:
			return false
		}
	}
	return true
}

// maxPathLen is IAM's limit on a path, counting its leading and trailing slashes.
const maxPathLen = 512

// splitPathName splits the resource of a role or user ARN after "role/" or "user/" into the
// IAM path without its slashes at either end and the name. IAM's rule for a path is "/" alone,
// or "/" + 1 or more characters from ! (0x21) to ~ (0x7E) + "/", 512 characters at most: any
// printable ASCII, so a segment may hold characters a name may not ("!", "{", "~"...), and
// even empty segments ("/a//b/") match the rule. IAM's documentation names DEL (0x7F) too, a
// control character, which iamgate refuses. The name keeps IAM's name character set.
func splitPathName(typ, rest string) (path, name string, err error) {
	i := strings.LastIndexByte(rest, '/')
	name = rest[i+1:]
	if !isIAMName(name) {
		return "", "", fmt.Errorf("%w: bad %s name %q (1 to 64 letters, digits and +=,.@_-)", ErrInvalidARN, typ, Clip(name))
	}
	if i < 0 {
		return "", name, nil
	}
	path = rest[:i]
	if path == "" || len(path)+2 > maxPathLen {
		return "", "", fmt.Errorf("%w: bad %s path %q (IAM paths are / or /TEXT/ of at most %d characters)", ErrInvalidARN, typ, Clip("/"+path+"/"), maxPathLen)
	}
	for j := 0; j < len(path); j++ {
		if c := path[j]; c < '!' || c > '~' {
			return "", "", fmt.Errorf("%w: bad %s path %q (printable ASCII from ! to ~ only)", ErrInvalidARN, typ, Clip("/"+path+"/"))
		}
	}
	return path, name, nil
}

// ssoPermissionSet returns the permission set name of an IAM Identity Center role name
// AWSReservedSSO_<name>_<16 hex>, or "" when roleName is not of that form. The name may itself
// contain underscores: only the last one separates the suffix.
func ssoPermissionSet(roleName string) string {
	const prefix = "AWSReservedSSO_"
	if len(roleName) <= len(prefix)+17 || !strings.EqualFold(roleName[:len(prefix)], prefix) {
		return ""
	}
	rest := roleName[len(prefix):]
	sep := len(rest) - 17
	if rest[sep] != '_' {
		return ""
	}
	for i := sep + 1; i < len(rest); i++ {
		c := rest[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return ""
		}
	}
	return rest[:sep]
}

func ssoKey(partition, account, permissionSet string) string {
	return strings.ToLower(partition + ":" + account + ":" + permissionSet)
}

// appendSSOKey appends ssoKey of an ASCII permission set (a role name's part) to b.
func appendSSOKey(b []byte, partition, account, permissionSet string) []byte {
	start := len(b)
	b = append(b, partition...)
	b = append(b, ':')
	b = append(b, account...)
	b = append(b, ':')
	b = append(b, permissionSet...)
	asciiLower(b[start:])
	return b
}
