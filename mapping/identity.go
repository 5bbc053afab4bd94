package mapping

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidIdentity is wrapped by every NewIdentity error.
var ErrInvalidIdentity = errors.New("invalid identity")

// Identity is a caller verified by STS GetCallerIdentity, canonicalised (docs/design.md, Identity).
//
// Build it with NewIdentity: it precomputes the lower-cased lookup keys so that Table.Lookup
// does not allocate. An Identity is immutable after construction and safe to share between
// goroutines.
type Identity struct {
	// ARN is the ARN STS returned, as returned.
	ARN string
	// CanonicalARN is ARN canonicalised (see docs/design.md: Identity): an assumed role becomes its role ARN.
	CanonicalARN string
	Partition    string
	AccountID    string
	// Kind is the kind of principal of CanonicalARN.
	Kind Kind
	// UserID is the UserId STS returned.
	UserID string
	// PrincipalID is the role ID of a role (the part of UserID before the colon) or the whole
	// UserID for other principals (see docs/design.md: Identity).
	PrincipalID string
	// SessionName is the role session name ("" for principals other than roles).
	SessionName string
	// AccessKeyID is the access key that signed the token (see docs/design.md: Identity).
	AccessKeyID string

	key    string // lookup key, see ParsedARN.lookupKey
	ssoKey string // partition:account:permission set, lower-cased; "" unless an SSO role
}

// NewIdentity builds the Identity of an STS GetCallerIdentity answer. It canonicalises arn
// (unknown ARN forms and partitions are rejected), splits userID into principal ID and
// session name (roles need exactly one colon and the session name must be the one in the
// ARN), and checks that account is 12 digits and the ARN's account.
func NewIdentity(arn, account, userID, accessKeyID string) (Identity, error) {
	p, err := ParseARN(arn)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	if !IsAccountID(account) {
		return Identity{}, fmt.Errorf("%w: account %q is not 12 digits", ErrInvalidIdentity, account)
	}
	if account != p.AccountID {
		return Identity{}, fmt.Errorf("%w: account %s differs from the ARN's account %s", ErrInvalidIdentity, account, p.AccountID)
	}
	if userID == "" {
		return Identity{}, fmt.Errorf("%w: empty UserId", ErrInvalidIdentity)
	}
	if p.Kind == KindRole {
		principal, session, ok := strings.Cut(userID, ":")
		if !ok || principal == "" || session == "" || strings.Contains(session, ":") {
			return Identity{}, fmt.Errorf("%w: UserId of a role must be ROLEID:SESSION with exactly one colon", ErrInvalidIdentity)
		}
		if p.AssumedRole && session != p.SessionName {
			return Identity{}, fmt.Errorf("%w: UserId session %q differs from the ARN's session %q", ErrInvalidIdentity, session, p.SessionName)
		}
	}
	return packIdentity(&p, arn, userID, accessKeyID), nil
}

// packIdentity builds the Identity of a parsed, checked answer with all its strings in one
// allocation: an identity lives in the cache for its TTL, and each separate string would be
// an object more to allocate on every cold review and for the garbage collector to mark on
// every cycle while it lives.
func packIdentity(p *ParsedARN, arn, userID, accessKeyID string) Identity {
	var scratch [256]byte
	keys := p.appendCanonical(scratch[:0], true)
	nCanonical := len(keys)
	keys = p.appendLookupKey(keys)
	nKeys := len(keys)
	if p.Kind == KindRole {
		if ps := ssoPermissionSet(p.Name); ps != "" {
			keys = appendSSOKey(keys, p.Partition, p.AccountID, ps)
		}
	}
	canonical, key, sso := keys[:nCanonical], keys[nCanonical:nKeys], keys[nKeys:]
	// The canonical ARN is the ARN itself but for an assumed role, and the lookup key often
	// the canonical ARN: such a string is stored once.
	canonicalIsARN := string(canonical) == arn
	keyIsCanonical := string(key) == string(canonical)

	var b strings.Builder
	n := len(arn) + len(userID) + len(accessKeyID) + len(sso)
	if !canonicalIsARN {
		n += len(canonical)
	}
	if !keyIsCanonical {
		n += len(key)
	}
	b.Grow(n)
	b.WriteString(arn)
	b.WriteString(userID)
	b.WriteString(accessKeyID)
	if !canonicalIsARN {
		b.Write(canonical)
	}
	if !keyIsCanonical {
		b.Write(key)
	}
	b.Write(sso)
	all := b.String()
	next := func(n int) string {
		s := all[:n]
		all = all[n:]
		return s
	}

	id := Identity{ARN: next(len(arn)), Kind: p.Kind}
	// "arn:" PARTITION ":" ("iam" or "sts") "::" ACCOUNT ":" …, as ParseARN checked.
	id.Partition = id.ARN[4 : 4+len(p.Partition)]
	id.AccountID = id.ARN[len(p.Partition)+10 : len(p.Partition)+10+len(p.AccountID)]
	id.UserID = next(len(userID))
	id.PrincipalID = id.UserID
	if p.Kind == KindRole {
		id.PrincipalID, id.SessionName, _ = strings.Cut(id.UserID, ":")
	}
	id.AccessKeyID = next(len(accessKeyID))
	id.CanonicalARN = id.ARN
	if !canonicalIsARN {
		id.CanonicalARN = next(len(canonical))
	}
	id.key = id.CanonicalARN
	if !keyIsCanonical {
		id.key = next(len(key))
	}
	id.ssoKey = next(len(sso))
	return id
}

// identityFromARN builds the Identity explain uses for an ARN typed by an operator: no UserId
// or access key, the session name taken from an assumed-role ARN.
func identityFromARN(p *ParsedARN, arn string) Identity {
	id := Identity{
		ARN:          arn,
		CanonicalARN: p.Canonical(),
		Partition:    p.Partition,
		AccountID:    p.AccountID,
		Kind:         p.Kind,
		SessionName:  p.SessionName,
	}
	id.setKeys(p)
	return id
}

func (id *Identity) setKeys(p *ParsedARN) {
	id.key = p.lookupKey()
	if p.Kind == KindRole {
		if ps := ssoPermissionSet(p.Name); ps != "" {
			id.ssoKey = ssoKey(p.Partition, p.AccountID, ps)
		}
	}
}

// keys returns the lookup keys, computing them for an Identity not built by NewIdentity.
func (id *Identity) keys() (key, sso string) {
	if id.key != "" {
		return id.key, id.ssoKey
	}
	p, err := ParseARN(id.CanonicalARN)
	if err != nil {
		if p, err = ParseARN(id.ARN); err != nil {
			return "", ""
		}
	}
	tmp := identityFromARN(&p, id.ARN)
	return tmp.key, tmp.ssoKey
}
