package mapping

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// ErrNotMapped is the denial for an identity no record matches.
var ErrNotMapped = errors.New("identity not mapped")

// ErrRefusedRecord is the denial for an identity whose record (the first naming it) is
// refused: a refused record grants nothing, and no later record for the same principal
// applies in its place.
var ErrRefusedRecord = errors.New("the mapping record of this identity is refused")

// IsDenial reports whether err (from Table.Render or Record.Render) is a definite denial: the
// identity is not mapped, its username renders empty, or its {{EC2PrivateDNSName}} cannot
// exist. Other errors (EC2 unreachable, throttled, a cancelled context) mean "cannot decide
// now".
func IsDenial(err error) bool {
	return errors.Is(err, ErrNotMapped) || errors.Is(err, ErrRefusedRecord) || errors.Is(err, ErrEmptyUsername) ||
		errors.Is(err, ErrNotInstanceID) || errors.Is(err, ErrInstanceNotFound) ||
		errors.Is(err, ErrNoResolver)
}

// User is a mapped Kubernetes user.
type User struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// InstanceResolver resolves an EC2 instance ID to its private DNS name for
// {{EC2PrivateDNSName}}. Implementations must be safe for concurrent use; ec2.Resolver (package
// mapping/ec2) is the one over the EC2 API.
type InstanceResolver interface {
	PrivateDNSName(ctx context.Context, instanceID string) (string, error)
}

// Table is a compiled, immutable mapping: hash maps from lookup keys to records, built once
// per mapping version and then only read, so any number of goroutines may use it. A Store
// (package mapping/source) swaps whole Tables atomically.
//
// Precedence (first match wins): explicit role and user ARN records, then SSO permission-set
// records, then mapAccounts; within each, the documents in the order given to Compile (the
// Store gives the file before the ConfigMap); within a document mapRoles before mapUsers and
// an earlier record before a later duplicate.
//
// A refused record whose ARN (or SSO block) is valid still takes its place in that order and
// denies its principal (ErrRefusedRecord): a typo in the first record for a principal must not
// let a later record for it, or its account's mapAccounts entry, grant what that later record
// grants.
type Table struct {
	exact    map[string]*Record // lookup key of a role or user ARN
	sso      map[string]*Record // partition:account:permission set, lower-cased
	accounts map[string]*Record // account ID
	records  []*Record          // every record, in precedence order
	inert    []*Record          // records that match nothing (written as assumed-role ARNs)
	refused  []*RecordError     // refused records of every document
	unparsed []*RecordError     // unreadable lists of every document
	warnings []string
	sources  []string
	entries  Entries
}

// Entries counts a Table's records by kind, as in the iamgate_mapping_entries metric.
type Entries struct {
	Roles    int `json:"roles"`
	Users    int `json:"users"`
	SSO      int `json:"sso"`
	Accounts int `json:"accounts"`
}

// Compile builds the Table of docs; an earlier document takes precedence over a later one. It
// warns (Warnings) about records shadowed by an earlier record with the same ARN. A nil
// document is skipped.
func Compile(docs ...*Document) (*Table, error) {
	n := 0
	for _, d := range docs {
		if d != nil {
			n += d.Len()
		}
	}
	t := &Table{
		exact:    make(map[string]*Record, n),
		sso:      map[string]*Record{},
		accounts: map[string]*Record{},
		records:  make([]*Record, 0, n),
	}
	for _, d := range docs {
		if d == nil {
			continue
		}
		t.sources = append(t.sources, d.Source)
		for _, w := range d.Warnings {
			t.warnings = append(t.warnings, prefixed(d.Source, w))
		}
		t.refused = append(t.refused, d.Refused...)
		t.unparsed = append(t.unparsed, d.Unparsed...)
	}
	add := func(m map[string]*Record, r *Record) {
		if r.key == "" {
			// Records come from ParseDocument only; a keyless one is a bug there.
			panic(fmt.Sprintf("BUG: %s[%d] has no lookup key", r.List, r.Index))
		}
		if r.refused == nil {
			t.records = append(t.records, r)
		}
		first, dup := m[r.key]
		switch {
		case dup && r.refused != nil:
			// Already reported as refused; the earlier record wins anyway.
		case dup && first.refused != nil:
			t.warnings = append(t.warnings, prefixed(r.Source, fmt.Sprintf(
				"%s[%d] %q is not used: %s[%d] of %s names the same principal first and is refused, which denies the principal rather than let a later record apply",
				r.List, r.Index, Clip(r.Describe()), first.List, first.Index, sourceName(first.Source))))
		case dup:
			t.warnings = append(t.warnings, prefixed(r.Source, fmt.Sprintf(
				"%s[%d] %q is shadowed by %s[%d] of %s, which matches the same principal and wins (aws-iam-authenticator used the last duplicate)",
				r.List, r.Index, Clip(r.Describe()), first.List, first.Index, sourceName(first.Source))))
		default:
			m[r.key] = r
		}
	}
	for _, d := range docs {
		if d == nil {
			continue
		}
		for _, list := range [][]*Record{withRefused(d.Roles, d.Refused, "mapRoles"), withRefused(d.Users, d.Refused, "mapUsers")} {
			for _, r := range list {
				if r.WrittenAsAssumedRole {
					t.inert = append(t.inert, r)
					continue
				}
				if r.SSO == nil {
					add(t.exact, r)
					if r.refused != nil {
						continue
					}
					if r.kind == KindRole {
						t.entries.Roles++
					} else {
						t.entries.Users++
					}
				}
			}
		}
	}
	for _, d := range docs {
		if d == nil {
			continue
		}
		for _, r := range withRefused(d.Roles, d.Refused, "mapRoles") {
			if r.SSO != nil {
				add(t.sso, r)
				if r.refused == nil {
					t.entries.SSO++
				}
			}
		}
	}
	for _, d := range docs {
		if d == nil {
			continue
		}
		for _, r := range d.Accounts {
			add(t.accounts, r)
			t.entries.Accounts++
		}
	}
	return t, nil
}

// withRefused returns the valid records of list merged, in document order, with the stand-ins
// of its refused records that name a principal. It returns valid itself when there are none.
func withRefused(valid []*Record, refused []*RecordError, list string) []*Record {
	n := 0
	for _, e := range refused {
		if e.List == list && e.principal != nil {
			n++
		}
	}
	if n == 0 {
		return valid
	}
	out := make([]*Record, 0, len(valid)+n)
	out = append(out, valid...)
	for _, e := range refused {
		if e.List == list && e.principal != nil {
			out = append(out, e.principal)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

func prefixed(source, w string) string {
	if source == "" {
		return w
	}
	return source + ": " + w
}

func sourceName(s string) string {
	if s == "" {
		return "the same document"
	}
	return s
}

// Lookup returns the record that maps id, by hash lookups on its lower-cased canonical ARN
// (roles without their path), its SSO permission set and its account, in that order. A nil
// Table maps nothing.
func (t *Table) Lookup(id *Identity) (*Record, bool) {
	if t == nil {
		return nil, false
	}
	key, sso := id.keys()
	if r := t.exact[key]; r != nil {
		return r, true
	}
	if sso != "" {
		if r := t.sso[sso]; r != nil {
			return r, true
		}
	}
	if r := t.accounts[id.AccountID]; r != nil {
		return r, true
	}
	return nil, false
}

// Render maps id to its Kubernetes user: Lookup, then Record.Render. It returns an error
// matching ErrNotMapped when no record matches; IsDenial tells denials from failures to
// decide.
func (t *Table) Render(ctx context.Context, id *Identity, res InstanceResolver) (User, error) {
	r, ok := t.Lookup(id)
	if !ok {
		return User{}, ErrNotMapped
	}
	return r.Render(ctx, id, res)
}

// Records returns every record in precedence order. The slice and the records are shared and
// must not be modified.
func (t *Table) Records() []*Record { return t.records }

// Refused returns the refused records of the Table's documents, and Unparsed the lists that
// could not be read at all (whose records, in a Store, are those of an earlier version). The
// slices are shared and must not be modified.
func (t *Table) Refused() []*RecordError { return t.refused }

// Unparsed: see Refused.
func (t *Table) Unparsed() []*RecordError { return t.unparsed }

// RefusedError returns t's unparsed lists and refused records as one error, as Document.Err
// does for one document, or nil when there are none (or t is nil).
func RefusedError(t *Table) error {
	if t == nil {
		return nil
	}
	d := Document{Unparsed: t.unparsed, Refused: t.refused}
	return d.Err()
}

// Inert returns the records that match nothing: those written as an assumed-role (session) ARN.
// The slice and the records are shared and must not be modified.
func (t *Table) Inert() []*Record { return t.inert }

// Warnings returns the warnings of the Table's documents and of Compile.
func (t *Table) Warnings() []string { return t.warnings }

// Entries returns the Table's record counts.
func (t *Table) Entries() Entries { return t.entries }

// Sources returns the Document.Source of each compiled document, in precedence order.
func (t *Table) Sources() []string { return t.sources }

var noGroups = []string{}

// Render renders the record's username and groups for id (see docs/design.md: Mapping).
//
// Retention rule: for a record whose groups have no placeholder, User.Groups is the record's
// own precomputed slice, shared by every request: callers must not modify it (copy it first).
// A username or group without placeholders is returned without allocating; a templated one
// allocates its rendered string only. res may be nil when no template uses
// {{EC2PrivateDNSName}}.
func (r *Record) Render(ctx context.Context, id *Identity, res InstanceResolver) (User, error) {
	if r.refused != nil {
		return User{}, fmt.Errorf("%w: %s[%d] of %s: %s", ErrRefusedRecord, r.List, r.Index, sourceName(r.Source), r.refused.Reason())
	}
	if r.List == "mapAccounts" {
		// mapAccounts: any principal of the account, as its canonical ARN, in no group.
		if id.CanonicalARN == "" {
			return User{}, ErrEmptyUsername
		}
		return User{Username: id.CanonicalARN, Groups: noGroups}, nil
	}
	env := renderEnv{ctx: ctx, id: id, res: res}
	name, err := r.username.render(&env)
	if err != nil {
		return User{}, renderError(err, id)
	}
	if name == "" {
		return User{}, ErrEmptyUsername
	}
	if r.groupsFixed != nil {
		return User{Username: name, Groups: r.groupsFixed}, nil
	}
	groups := make([]string, 0, len(r.groups))
	for i := range r.groups {
		g, err := r.groups[i].render(&env)
		if err != nil {
			return User{}, renderError(err, id)
		}
		if g != "" { // a group that renders empty is no group
			groups = append(groups, g)
		}
	}
	return User{Username: name, Groups: groups}, nil
}

// usesSession reports whether a template of r needs the session name.
func (r *Record) usesSession() bool {
	if r.ec2 {
		return true
	}
	for _, t := range append([]template{r.username}, r.groups...) {
		for _, p := range t.parts {
			if p.ph == phSessionName || p.ph == phSessionNameRaw {
				return true
			}
		}
	}
	return false
}

func renderError(err error, id *Identity) error {
	switch {
	case errors.Is(err, ErrNotInstanceID):
		return fmt.Errorf("%w: {{EC2PrivateDNSName}} needs a session name like i-0123456789abcdef0; got %q", ErrNotInstanceID, Clip(id.SessionName))
	case errors.Is(err, ErrNoResolver):
		return err
	}
	return fmt.Errorf("cannot resolve {{EC2PrivateDNSName}} of %s: %w", id.SessionName, err)
}
