package mapping

import (
	"errors"
	"fmt"
	"strings"
)

// Partitions lists the AWS partitions iamgate knows (SPEC §3 V4); an ARN in any other
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

// The principal kinds iamgate maps (SPEC [I1]); every other ARN form is rejected.
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

// Canonical returns the canonical ARN (SPEC [I1]): assumed roles become their role, paths of
// roles and users are kept as written.
func (p *ParsedARN) Canonical() string {
	switch p.Kind {
	case KindRole:
		return "arn:" + p.Partition + ":iam::" + p.AccountID + ":role/" + withPath(p.Path, p.Name)
	case KindUser:
		return "arn:" + p.Partition + ":iam::" + p.AccountID + ":user/" + withPath(p.Path, p.Name)
	case KindRoot:
		return "arn:" + p.Partition + ":iam::" + p.AccountID + ":root"
	case KindFederatedUser:
		return "arn:" + p.Partition + ":sts::" + p.AccountID + ":federated-user/" + p.Name
	}
	return ""
}

// lookupKey returns the key a Table indexes the principal under: the lower-cased canonical ARN
// with a role's path dropped, since STS reports assumed roles without their path. IAM names are
// unique regardless of case, so the lower-cased form names one principal.
func (p *ParsedARN) lookupKey() string {
	if p.Kind == KindRole {
		return strings.ToLower("arn:" + p.Partition + ":iam::" + p.AccountID + ":role/" + p.Name)
	}
	return strings.ToLower(p.Canonical())
}

func withPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "/" + name
}

// ParseARN parses a principal ARN of one of the forms of SPEC [I1]:
//
//	arn:P:iam::A:role/[path/]NAME
//	arn:P:iam::A:user/[path/]NAME
//	arn:P:iam::A:root
//	arn:P:sts::A:assumed-role/ROLE/SESSION
//	arn:P:sts::A:federated-user/NAME
//
// P must be a known partition and A 12 digits. Names and path segments must use IAM's
// character set (letters, digits and +=,.@_-).
func ParseARN(arn string) (ParsedARN, error) {
	var p ParsedARN
	if len(arn) > 2048 {
		return p, fmt.Errorf("%w: longer than 2048 bytes", ErrInvalidARN)
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return p, fmt.Errorf("%w: not of the form arn:PARTITION:SERVICE::ACCOUNT:RESOURCE", ErrInvalidARN)
	}
	p.Partition, p.AccountID = parts[1], parts[4]
	service, region, resource := parts[2], parts[3], parts[5]
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
			segs := strings.Split(rest, "/")
			for _, s := range segs {
				if !isIAMName(s) {
					return p, fmt.Errorf("%w: bad %s path or name %q (letters, digits and +=,.@_- only)", ErrInvalidARN, typ, rest)
				}
			}
			p.Kind = KindUser
			if typ == "role" {
				p.Kind = KindRole
			}
			p.Name = segs[len(segs)-1]
			p.Path = strings.Join(segs[:len(segs)-1], "/")
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
// 128 bytes (role session names are up to 64, user and role names up to 64, federated user
// names up to 32; 128 leaves room without accepting unbounded input).
func isIAMName(s string) bool {
	if s == "" || len(s) > 128 {
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
