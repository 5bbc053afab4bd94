package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The ConfigMap EKS reads.
const (
	AWSAuthNamespace = "kube-system"
	AWSAuthName      = "aws-auth"
)

// Limits on untrusted mapping documents.
const (
	// MaxDocumentSize is the largest mapping document accepted (a ConfigMap holds at most
	// 1 MiB, so a bigger file cannot be an aws-auth copy).
	MaxDocumentSize = 1 << 20
	// MaxRecords bounds the records of one document, counted after YAML aliases are expanded.
	MaxRecords = 100_000
	// maxReported bounds the refusals Document.Err and the logs spell out.
	maxReported = 20
	// maxGroups bounds the groups of one document, counted after aliases are expanded.
	maxGroups = 1 << 20
)

// Document errors. A RecordError wraps the record-level ones, so errors.Is finds them in
// Document.Err.
var (
	ErrTooLarge     = errors.New("mapping document too large")
	ErrSyntax       = errors.New("bad YAML")
	ErrNotString    = errors.New("value is not a string")
	ErrMissingField = errors.New("required field missing")
	ErrBadRecord    = errors.New("bad record")
)

// Record is one mapping record: an explicit role or user ARN, an SSO permission set, or an
// account. Records are built by ParseDocument, immutable afterwards and shared by every Table
// compiled from their Document.
type Record struct {
	// Source is the Document.Source the record comes from.
	Source string
	// List is "mapRoles", "mapUsers" or "mapAccounts"; Index the position in it (from 0);
	// Line the line in the YAML text holding the list (0 when unknown).
	List  string
	Index int
	Line  int
	// ARN is the rolearn or userarn as written ("" for SSO and account records).
	ARN string
	// CanonicalARN is the ARN the record matches: canonical and, for roles, without the path,
	// since STS reports roles without it. For a record WrittenAsAssumedRole, which matches
	// nothing, it is the role ARN the record should have named.
	CanonicalARN string
	// Path is the IAM path written in a role ARN, which matching ignores ("" for none).
	Path string
	// WrittenAsAssumedRole is true when ARN is an sts assumed-role (session) ARN. Such a record
	// matches nothing, as in EKS: callers are matched by their canonical ARN, which for an
	// assumed role is the role's. Compile keeps it aside (Table.Inert) for explain.
	WrittenAsAssumedRole bool
	// SSO is set for IAM Identity Center permission-set records.
	SSO *SSO
	// AccountID is the account of the ARN, of the SSO record, or of the mapAccounts entry.
	AccountID string
	// Username and Groups are the templates as written. A mapAccounts record has neither: the
	// username is the caller's canonical ARN and there are no groups.
	Username string
	Groups   []string

	kind        Kind // of ARN
	key         string
	refused     *RecordError // set on the stand-in of a refused record, which denies its principal
	username    template
	groups      []template
	groupsFixed []string // Groups when no group has a placeholder; shared, never modified
	ec2         bool     // a template uses {{EC2PrivateDNSName}}
}

// SSO is the sso block of a mapRoles record: it matches the roles IAM Identity Center creates
// for a permission set, arn:P:iam::A:role/aws-reserved/sso.amazonaws.com/[REGION/]
// AWSReservedSSO_<PermissionSetName>_<16 hex digits>.
type SSO struct {
	PermissionSetName string `json:"permissionSetName"`
	AccountID         string `json:"accountID"`
	// Partition is "aws" unless set in the record.
	Partition string `json:"partition"`
}

// Describe returns how explain and errors name the record: its ARN, its SSO permission set or
// its account.
func (r *Record) Describe() string {
	switch {
	case r.SSO != nil:
		return fmt.Sprintf("sso %s/%s/%s", r.SSO.Partition, r.SSO.AccountID, r.SSO.PermissionSetName)
	case r.List == "mapAccounts":
		return "account " + r.AccountID
	}
	return r.ARN
}

// Document is a parsed mapping document: the valid records of one source, in order, the
// records and lists it refused, and the warnings its parse produced.
type Document struct {
	// Source names where the document came from, for logs and explain.
	Source   string
	Roles    []*Record
	Users    []*Record
	Accounts []*Record
	// Refused are the records that are not applied, each naming what is wrong with it, in
	// document order. The other records apply all the same: one bad record must not lock
	// out everyone else.
	Refused []*RecordError
	// Unparsed are the lists (Index -1) that could not be read at all: not a list, given
	// twice, or a YAML text that does not parse, so that no record of them can be told from
	// another. A Store keeps such a list's records from the source's previous version.
	Unparsed []*RecordError
	// Warnings are the accepted quirks worth an operator's attention (see README).
	Warnings []string
}

// Len returns the number of valid records.
func (d *Document) Len() int { return len(d.Roles) + len(d.Users) + len(d.Accounts) }

// Err returns the unparsed lists and the refused records as one error (errors.Join of
// *RecordError, at most 20 spelled out), or nil when every record is valid. It is for callers
// that want a document without any refusal, such as a check before deploying a mapping.
func (d *Document) Err() error {
	if d == nil || len(d.Unparsed)+len(d.Refused) == 0 {
		return nil
	}
	var errs []error
	for _, e := range d.Unparsed {
		errs = append(errs, e)
	}
	for _, e := range d.Refused {
		if len(errs) == maxReported {
			break
		}
		errs = append(errs, e)
	}
	if n := len(d.Unparsed) + len(d.Refused) - len(errs); n > 0 {
		errs = append(errs, fmt.Errorf("%w: and %d more refused records", ErrBadRecord, n))
	}
	return errors.Join(errs...)
}

// KeepUnparsed applies doc, a new version of a source, over prev, the source's version in use
// (nil at the first load): it returns doc with each list it could not parse (Unparsed)
// replaced by that list's records in prev, with their refusals, and for each such list what
// happened to it, which is also added to the returned document's Warnings. See README: Bad
// records, what applies.
func KeepUnparsed(doc, prev *Document) (*Document, []string) {
	if len(doc.Unparsed) == 0 {
		return doc, nil
	}
	eff := *doc
	// Appends below must not write into doc's arrays.
	eff.Warnings = slices.Clone(doc.Warnings)
	eff.Refused = slices.Clone(doc.Refused)
	kept := make([]string, len(doc.Unparsed))
	for k, u := range doc.Unparsed {
		var from []*Record
		if prev != nil {
			switch u.List {
			case "mapRoles":
				from = prev.Roles
			case "mapUsers":
				from = prev.Users
			case "mapAccounts":
				from = prev.Accounts
			}
		}
		switch {
		case prev == nil:
			kept[k] = "no earlier version of it was loaded, so it maps nothing"
		default:
			kept[k] = fmt.Sprintf("its %d records of the previous version stay live", len(from))
		}
		eff.Warnings = append(eff.Warnings, u.List+" does not parse: "+kept[k])
		switch u.List {
		case "mapRoles":
			eff.Roles = from
		case "mapUsers":
			eff.Users = from
		case "mapAccounts":
			eff.Accounts = from
		}
		if prev != nil {
			// Refusals and unparsed lists of the kept records stay reported.
			for _, r := range prev.Refused {
				if r.List == u.List {
					eff.Refused = append(eff.Refused, r)
				}
			}
		}
	}
	return &eff, kept
}

// RecordError is a refused record (or a list that does not parse: Index -1), naming it and
// what is wrong.
type RecordError struct {
	// Source is the Document.Source of the record.
	Source string
	List   string
	Index  int
	// ARN is the record's ARN or SSO/account as written ("" when missing).
	ARN string
	// Line is the record's line (0 when unknown); with LineInList, it counts from the start of
	// the list's own YAML text (a ConfigMap data value) rather than the file.
	Line       int
	LineInList bool
	Err        error

	// principal is the record that would have named the same principal, when the record's
	// ARN or SSO block is valid; nil otherwise. Compile lets it deny that principal.
	principal *Record
}

func (e *RecordError) Error() string {
	var b strings.Builder
	b.WriteString(e.List)
	if e.Index >= 0 {
		b.WriteString("[" + strconv.Itoa(e.Index) + "]")
	}
	if e.ARN != "" {
		b.WriteString(" " + strconv.Quote(Clip(e.ARN)))
	}
	if e.Line > 0 {
		if b.Len() == 0 {
			b.WriteString("line " + strconv.Itoa(e.Line))
		} else {
			b.WriteString(" (" + e.Where() + ")")
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Where is "line N", or "line N of mapRoles" when the line counts within the list's text.
func (e *RecordError) Where() string {
	if e.LineInList {
		return "line " + strconv.Itoa(e.Line) + " of " + e.List
	}
	return "line " + strconv.Itoa(e.Line)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Reason returns what is wrong with the record in general terms, without anything from the
// record itself (no ARN, username or group): the kinds of error it has, such as "invalid ARN"
// or "unknown template placeholder". /readyz shows it.
func (e *RecordError) Reason() string { return Reason(e.Err) }

// Reason names the kinds of mapping error err holds, without any text taken from the input.
func Reason(err error) string {
	var kinds []string
	for _, k := range []error{ErrTooLarge, ErrSyntax, ErrInvalidARN, ErrUnknownPlaceholder, ErrNotString, ErrMissingField, ErrBadRecord} {
		if errors.Is(err, k) {
			kinds = append(kinds, k.Error())
		}
	}
	if len(kinds) == 0 {
		return "cannot load"
	}
	return strings.Join(kinds, ", ")
}

// Clip shortens s, a value taken from the input (an ARN, a name), to 200 bytes for errors and
// logs.
func Clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// ParseDocument parses a mapping document: either an aws-auth ConfigMap manifest (kind:
// ConfigMap, as `kubectl get cm aws-auth -o yaml` or `-o json` prints it) whose data.mapRoles,
// data.mapUsers and data.mapAccounts are YAML texts, or a plain document with the keys mapRoles,
// mapUsers and mapAccounts, each a list or a YAML text holding one. source names the document in
// Record.Source.
//
// It accepts what EKS accepts (see the README's quirks list) and refuses what is dangerous,
// record by record: a refused record is listed in Document.Refused and the other records apply,
// as in EKS. A list that cannot be read at all is listed in Document.Unparsed. An error is
// returned only when nothing in the document can be identified: not YAML, not a mapping, not a
// ConfigMap, or over the limits. ParseDocument never panics.
func ParseDocument(source string, data []byte) (doc *Document, err error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %d bytes; the limit is %d (1 MiB)", ErrTooLarge, len(data), MaxDocumentSize)
	}
	defer func() {
		if e := recover(); e != nil {
			// The YAML library is the only code here that could panic on odd input; turn
			// that into a refusal rather than a crash of the daemon.
			doc, err = nil, fmt.Errorf("%w: YAML parser failed: %v", ErrSyntax, e)
		}
	}()
	p := &parser{doc: &Document{Source: source}}
	root, err := decodeYAML(data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		p.warn("", -1, "", 0, "the document is empty: no identity is mapped")
		return p.doc, nil
	}
	root = p.deref(root)
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: the document must be a mapping with mapRoles, mapUsers, mapAccounts or a kind: ConfigMap manifest", ErrSyntax)
	}
	if kind := lookupKey(root, "kind"); kind != nil {
		if kind.Kind != yaml.ScalarNode || kind.Value != "ConfigMap" {
			return nil, fmt.Errorf("%w: kind %q is not ConfigMap", ErrSyntax, Clip(kind.Value))
		}
		if md := lookupKey(root, "metadata"); md != nil && p.deref(md).Kind == yaml.MappingNode {
			if name := lookupKey(p.deref(md), "name"); name != nil && name.Kind == yaml.ScalarNode && name.Value != AWSAuthName {
				p.warn("", -1, "", name.Line, "the ConfigMap is named %q, not %q; its data is used all the same", Clip(name.Value), AWSAuthName)
			}
		}
		data := lookupKey(root, "data")
		if data == nil || p.deref(data).ShortTag() == "!!null" {
			p.warn("", -1, "", 0, "the ConfigMap has no data: no identity is mapped")
			return p.doc, nil
		}
		data = p.deref(data)
		if data.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%w: the ConfigMap's data is not a mapping", ErrSyntax)
		}
		root = data
	}
	p.topLevel(root)
	return p.finish()
}

// ParseConfigMapData parses the data of an aws-auth ConfigMap, as the ConfigMap source reads it
// from the API server. It applies the same rules as ParseDocument; each data key is a list of
// its own, so one key whose text does not parse leaves the others applied. Lines count from the
// start of each key's text.
func ParseConfigMapData(source string, data map[string]string) (doc *Document, err error) {
	size := 0
	for k, v := range data {
		size += len(k) + len(v)
	}
	if size > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %d bytes; the limit is %d (1 MiB)", ErrTooLarge, size, MaxDocumentSize)
	}
	defer func() {
		if e := recover(); e != nil {
			doc, err = nil, fmt.Errorf("%w: YAML parser failed: %v", ErrSyntax, e)
		}
	}()
	p := &parser{doc: &Document{Source: source}, lineInList: true}
	for _, k := range sortedKeys(data) {
		v := data[k]
		switch k {
		case "mapRoles", "mapUsers", "mapAccounts":
			p.text(k, v, 0)
		default:
			p.unknownTopKey(k, 0)
		}
	}
	return p.finish()
}

func decodeYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrSyntax, Clip(err.Error()))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrSyntax)
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, nil
		}
		return n.Content[0], nil
	}
	return &n, nil
}

type parser struct {
	doc        *Document
	fatal      error // the document as a whole is refused (limits)
	lineInList bool  // lines count within the current list's own text
	records    int
	groups     int // total groups, bounded like records since aliases can repeat a long list
}

// fail refuses one record; principal is the record's would-be principal, if identified.
func (p *parser) fail(list string, index int, arn string, line int, err error, principal *Record) {
	e := &RecordError{Source: p.doc.Source, List: list, Index: index, ARN: arn,
		Line: line, LineInList: p.lineInList && line > 0, Err: err, principal: principal}
	if principal != nil {
		principal.refused = e
	}
	p.doc.Refused = append(p.doc.Refused, e)
}

// unparsed marks a whole list as unreadable.
func (p *parser) unparsed(list string, line int, err error) {
	p.doc.Unparsed = append(p.doc.Unparsed, &RecordError{Source: p.doc.Source, List: list, Index: -1,
		Line: line, LineInList: p.lineInList && line > 0, Err: err})
}

func (p *parser) warn(list string, index int, arn string, line int, format string, args ...any) {
	if len(p.doc.Warnings) >= 100 {
		return
	}
	var b strings.Builder
	if list != "" {
		b.WriteString(list)
		if index >= 0 {
			b.WriteString("[" + strconv.Itoa(index) + "]")
		}
		if arn != "" {
			b.WriteString(" " + strconv.Quote(Clip(arn)))
		}
		if line > 0 {
			b.WriteString(" (line " + strconv.Itoa(line) + ")")
		}
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, format, args...)
	p.doc.Warnings = append(p.doc.Warnings, b.String())
}

func (p *parser) finish() (*Document, error) {
	if p.fatal != nil {
		return nil, p.fatal
	}
	return p.doc, nil
}

// deref follows YAML aliases. Aliases are legal in aws-auth, so they are followed, but the
// expansion is bounded (MaxRecords) so that a "billion laughs" document is refused.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

func lookupKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// topLevel reads mapRoles, mapUsers and mapAccounts. Quirk (kept from EKS): top-level keys are
// case-sensitive. aws-iam-authenticator silently ignores a "maproles" key; iamgate ignores it
// too (refusing it could lock a working cluster out at upgrade) but warns, naming the key to use.
func (p *parser) topLevel(m *yaml.Node) {
	count := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := p.deref(m.Content[i]); k.Kind == yaml.ScalarNode {
			count[k.Value]++
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := p.deref(m.Content[i]), m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.warn("", -1, "", k.Line, "a top-level key that is not a string is ignored")
			continue
		}
		switch k.Value {
		case "mapRoles", "mapUsers", "mapAccounts":
			switch count[k.Value] {
			case 0:
				// Reported at the first occurrence.
			case 1:
				p.listValue(k.Value, p.deref(v))
			default:
				// Which one was meant cannot be told: neither applies.
				p.unparsed(k.Value, k.Line, fmt.Errorf("%w: %s given %d times", ErrSyntax, k.Value, count[k.Value]))
				count[k.Value] = 0
			}
		default:
			p.unknownTopKey(k.Value, k.Line)
		}
	}
}

func (p *parser) unknownTopKey(k string, line int) {
	for _, want := range []string{"mapRoles", "mapUsers", "mapAccounts"} {
		if strings.EqualFold(k, want) {
			p.warn("", -1, "", line, "key %q ignored: top-level keys are case-sensitive, as in EKS; did you mean %q?", Clip(k), want)
			return
		}
	}
	p.warn("", -1, "", line, "unknown key %q ignored", Clip(k))
}

// listValue reads a list given inline or, as in a ConfigMap, as a YAML text.
func (p *parser) listValue(list string, v *yaml.Node) {
	switch {
	case v.Kind == yaml.SequenceNode:
		p.list(list, v)
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
		if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			// A block scalar's text starts on the line after its indicator: lines count
			// in the file.
			p.text(list, v.Value, v.Line)
			return
		}
		p.lineInList = true
		p.text(list, v.Value, 0)
		p.lineInList = false
	default:
		p.unparsed(list, v.Line, fmt.Errorf("%w: %s must be a list or a YAML text holding one", ErrSyntax, list))
	}
}

// text parses a list held in a YAML text (a ConfigMap's data value). lineOff is added to the
// text's line numbers so that errors point into the outer file.
func (p *parser) text(list, text string, lineOff int) {
	if strings.TrimSpace(text) == "" {
		return
	}
	n, err := decodeYAML([]byte(text))
	if err != nil {
		p.unparsed(list, 0, err)
		return
	}
	if n == nil {
		return
	}
	if lineOff > 0 {
		shiftLines(n, lineOff, 0)
	}
	n = p.deref(n)
	switch {
	case n.Kind == yaml.SequenceNode:
		p.list(list, n)
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
	default:
		p.unparsed(list, n.Line, fmt.Errorf("%w: %s must hold a YAML list", ErrSyntax, list))
	}
}

func shiftLines(n *yaml.Node, off, depth int) {
	if n == nil || depth > 64 {
		return
	}
	n.Line += off
	for _, c := range n.Content {
		shiftLines(c, off, depth+1)
	}
}

func (p *parser) list(list string, seq *yaml.Node) {
	for i, item := range seq.Content {
		p.records++
		if p.records > MaxRecords {
			p.fatal = fmt.Errorf("%w: more than %d records", ErrTooLarge, MaxRecords)
			return
		}
		if p.fatal != nil {
			return
		}
		item = p.deref(item)
		if list == "mapAccounts" {
			p.account(i, item)
			continue
		}
		p.record(list, i, item)
	}
}

// account reads one mapAccounts entry. Quirk: an unquoted account number is a YAML integer;
// it is accepted when its text is 12 digits (quoting is safer: YAML reads a leading-zero
// number such as 012345678901 as another number in some parsers, and iamgate refuses anything
// that is not 12 digits as written).
func (p *parser) account(i int, n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		p.fail("mapAccounts", i, "", n.Line, fmt.Errorf("%w: an account must be a 12-digit string", ErrBadRecord), nil)
		return
	}
	v := strings.TrimSpace(n.Value)
	if n.ShortTag() == "!!null" || v == "" {
		p.warn("mapAccounts", i, "", n.Line, "blank account skipped")
		return
	}
	if !IsAccountID(v) {
		p.fail("mapAccounts", i, v, n.Line, fmt.Errorf("%w: account %q is not 12 digits", ErrBadRecord, Clip(v)), nil)
		return
	}
	p.doc.Accounts = append(p.doc.Accounts, &Record{
		Source: p.doc.Source, List: "mapAccounts", Index: i, Line: n.Line,
		AccountID: v, key: v,
	})
}

// record reads one mapRoles or mapUsers record.
//
// Quirks kept from EKS: record keys are case-insensitive (rolearn, roleARN and RoLeArN all
// work, because EKS decodes records with encoding/json); a blank value ("", ” or
// whitespace, or null) is treated as absent.
func (p *parser) record(list string, i int, n *yaml.Node) {
	arnKey := "rolearn"
	if list == "mapUsers" {
		arnKey = "userarn"
	}
	if n.Kind != yaml.MappingNode {
		p.fail(list, i, "", n.Line, fmt.Errorf("%w: a record must be a mapping with %s, username and groups", ErrBadRecord, arnKey), nil)
		return
	}
	fields := map[string]*yaml.Node{}
	var dupErr error // the record is refused, but read on to identify its principal
	for k := 0; k+1 < len(n.Content); k += 2 {
		key := p.deref(n.Content[k])
		name := strings.ToLower(key.Value)
		if _, dup := fields[name]; dup {
			if dupErr == nil {
				dupErr = fmt.Errorf("%w: key %q given twice (record keys are case-insensitive)", ErrBadRecord, Clip(key.Value))
			}
			continue
		}
		fields[name] = p.deref(n.Content[k+1])
		switch {
		case name == arnKey || name == "username" || name == "groups":
		case name == "sso" && list == "mapRoles":
		default:
			p.warn(list, i, "", key.Line, "unknown key %q ignored", Clip(key.Value))
		}
	}
	r := &Record{Source: p.doc.Source, List: list, Index: i, Line: n.Line}
	var errs []error
	bad := func(err error) { errs = append(errs, err) }
	if dupErr != nil {
		bad(dupErr)
	}

	arn, err := scalarString(fields[arnKey], arnKey)
	if err != nil {
		bad(err)
	}
	r.ARN = arn
	if ssoNode := fields["sso"]; ssoNode != nil && list == "mapRoles" && !isBlank(ssoNode) {
		if arn != "" {
			bad(fmt.Errorf("%w: give rolearn or sso, not both", ErrBadRecord))
		}
		sso, err := parseSSO(ssoNode)
		if err != nil {
			bad(err)
		} else {
			r.SSO = sso
			r.AccountID = sso.AccountID
			r.kind = KindRole
			r.key = ssoKey(sso.Partition, sso.AccountID, sso.PermissionSetName)
		}
	} else if arn == "" && err == nil {
		bad(fmt.Errorf("%w: %s", ErrMissingField, arnKey))
	}
	if arn != "" {
		pa, err := ParseARN(arn)
		if err != nil {
			bad(err)
		} else {
			r.kind = pa.Kind
			r.AccountID = pa.AccountID
			r.Path = pa.Path
			r.key = pa.lookupKey()
			r.CanonicalARN = pa.Canonical()
			if pa.Kind == KindRole {
				r.CanonicalARN = "arn:" + pa.Partition + ":iam::" + pa.AccountID + ":role/" + pa.Name
			}
			if pa.AssumedRole {
				// EKS compares a record's ARN with the caller's canonical ARN (the role's,
				// never a session's), so this record matches nobody there; widening it to
				// every session of the role could grant a role far more than was written.
				r.WrittenAsAssumedRole = true
				p.warn(list, i, arn, n.Line, "an assumed-role (session) ARN never matches, as in EKS: callers are matched by their role ARN; to map every session of the role write %s", r.CanonicalARN)
			}
			if list == "mapRoles" && pa.Kind != KindRole {
				p.warn(list, i, arn, n.Line, "a %s ARN in mapRoles; it is matched like a mapUsers record", pa.Kind)
			}
			if list == "mapUsers" && pa.Kind == KindRole {
				p.warn(list, i, arn, n.Line, "a role ARN in mapUsers; it is matched like a mapRoles record")
			}
		}
	}

	// The username: a missing or blank username (which EKS accepts, authenticating as "") and
	// a number (which EKS turns into "") are refused.
	user, err := scalarString(fields["username"], "username")
	switch {
	case err != nil:
		bad(err)
	case user == "":
		bad(fmt.Errorf("%w: username (a record must not give an empty username)", ErrMissingField))
	default:
		t, err := compileTemplate(user)
		if err != nil {
			bad(err)
		}
		r.Username, r.username = user, t
		r.ec2 = t.ec2
	}

	groups, err := p.groupList(list, i, arn, fields["groups"])
	if err != nil {
		bad(err)
	}
	if p.fatal != nil {
		return
	}
	r.Groups = groups
	fixed := true
	for _, g := range groups {
		t, err := compileTemplate(g)
		if err != nil {
			bad(err)
			continue
		}
		r.groups = append(r.groups, t)
		if t.parts != nil {
			fixed = false
			r.ec2 = r.ec2 || t.ec2
		}
	}
	if fixed {
		r.groupsFixed = groups
		if r.groupsFixed == nil {
			r.groupsFixed = []string{}
		}
	}

	if len(errs) > 0 {
		name := arn
		if name == "" && r.SSO != nil {
			name = r.Describe()
		}
		var principal *Record
		if r.key != "" && !r.WrittenAsAssumedRole {
			// The record names a principal: it still counts as that principal's record
			// (see Compile), so that a refused record never lets another record apply.
			sso := r.SSO
			if r.CanonicalARN != "" {
				sso = nil // keyed by its ARN (a record giving both is refused)
			}
			principal = &Record{Source: r.Source, List: list, Index: i, Line: n.Line, ARN: r.ARN,
				CanonicalARN: r.CanonicalARN, Path: r.Path, SSO: sso, AccountID: r.AccountID, kind: r.kind, key: r.key}
		}
		p.fail(list, i, name, n.Line, errors.Join(errs...), principal)
		return
	}
	if list == "mapRoles" {
		p.doc.Roles = append(p.doc.Roles, r)
	} else {
		p.doc.Users = append(p.doc.Users, r)
	}
}

// groups reads a record's groups. Blank entries are skipped (EKS quirk: blank = absent).
// Quirk warned about: a mis-indented "- system:nodes" under a group folds into one plain
// scalar "system:bootstrappers - system:nodes", which EKS accepts as a single (useless) group.
func (p *parser) groupList(list string, i int, arn string, n *yaml.Node) ([]string, error) {
	if n == nil || isBlank(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%w: groups must be a list of strings", ErrBadRecord)
	}
	var out []string
	for _, g := range n.Content {
		p.groups++
		if p.groups > maxGroups {
			p.fatal = fmt.Errorf("%w: more than %d groups in the document", ErrTooLarge, maxGroups)
			return nil, p.fatal
		}
		g = p.deref(g)
		s, err := scalarString(g, "group")
		if err != nil {
			return nil, err
		}
		if s == "" {
			p.warn(list, i, arn, g.Line, "blank group skipped")
			continue
		}
		if strings.Contains(s, " - ") {
			p.warn(list, i, arn, g.Line, "group %q looks like two groups folded into one by a mis-indented \"- \" line; kept as one group", Clip(s))
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSSO(n *yaml.Node) (*SSO, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: sso must be a mapping with permissionSetName, accountID and optionally partition", ErrBadRecord)
	}
	sso := &SSO{}
	seen := map[string]bool{}
	for k := 0; k+1 < len(n.Content); k += 2 {
		name := strings.ToLower(n.Content[k].Value)
		if seen[name] {
			return nil, fmt.Errorf("%w: sso key %q given twice (keys are case-insensitive)", ErrBadRecord, Clip(n.Content[k].Value))
		}
		seen[name] = true
		v := n.Content[k+1]
		var err error
		switch name {
		case "permissionsetname":
			sso.PermissionSetName, err = scalarString(v, "sso.permissionSetName")
		case "accountid":
			sso.AccountID, err = accountString(v)
		case "partition":
			sso.Partition, err = scalarString(v, "sso.partition")
		default:
			err = fmt.Errorf("%w: unknown sso key %q", ErrBadRecord, Clip(n.Content[k].Value))
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case sso.PermissionSetName == "":
		return nil, fmt.Errorf("%w: sso.permissionSetName", ErrMissingField)
	case !isIAMName(sso.PermissionSetName) || len(sso.PermissionSetName) > 32:
		return nil, fmt.Errorf("%w: sso.permissionSetName %q is not a permission set name (1-32 of letters, digits and +=,.@_-)", ErrBadRecord, Clip(sso.PermissionSetName))
	case sso.AccountID == "":
		return nil, fmt.Errorf("%w: sso.accountID", ErrMissingField)
	case !IsAccountID(sso.AccountID):
		return nil, fmt.Errorf("%w: sso.accountID %q is not 12 digits", ErrBadRecord, Clip(sso.AccountID))
	}
	if sso.Partition == "" {
		sso.Partition = "aws"
	} else if !KnownPartition(sso.Partition) {
		return nil, fmt.Errorf("%w: sso.partition %q is not a known partition", ErrBadRecord, Clip(sso.Partition))
	}
	return sso, nil
}

func accountString(n *yaml.Node) (string, error) {
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && IsAccountID(n.Value) {
		return n.Value, nil // unquoted 12-digit account, see parser.account
	}
	return scalarString(n, "sso.accountID")
}

func isBlank(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!null" || n.ShortTag() == "!!str" && strings.TrimSpace(n.Value) == "")
}

// scalarString returns a string value, "" when absent or blank. Anything but a string is
// refused: a number or boolean would silently become another string (or "" in EKS).
func scalarString(n *yaml.Node, what string) (string, error) {
	if n == nil || isBlank(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%w: %s must be a string", ErrNotString, what)
	}
	if tag := n.ShortTag(); tag != "!!str" {
		kind := "number"
		switch tag {
		case "!!bool":
			kind = "boolean"
		case "!!int", "!!float":
		default:
			kind = "value of type " + strings.TrimPrefix(tag, "!!")
		}
		return "", fmt.Errorf("%w: %s is a %s (%s); quote it if a string is meant", ErrNotString, what, kind, Clip(n.Value))
	}
	return n.Value, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// mapRoles, mapUsers, mapAccounts first, in that order, then the rest sorted.
	rank := func(k string) string {
		switch k {
		case "mapRoles":
			return "\x00"
		case "mapUsers":
			return "\x01"
		case "mapAccounts":
			return "\x02"
		}
		return k
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && rank(keys[j]) < rank(keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
