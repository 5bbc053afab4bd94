package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Explanation answers "why is this identity (not) mapped?" (SPEC [M6]). Build it with Explain
// or ExplainIdentity; render it with WriteText for people or JSON for scripts.
type Explanation struct {
	Input string `json:"input"`
	// Result is "mapped", "denied" (a record matches but renders no user), "not_mapped" or
	// "invalid" (Input is not a principal ARN iamgate accepts).
	Result       string      `json:"result"`
	Error        string      `json:"error,omitempty"`
	CanonicalARN string      `json:"canonicalArn,omitempty"`
	Kind         string      `json:"kind,omitempty"`
	SessionName  string      `json:"sessionName,omitempty"`
	Record       *RecordView `json:"record,omitempty"`
	User         *User       `json:"user,omitempty"`
	// Notes explain how the record matched or why it was denied.
	Notes []string `json:"notes,omitempty"`
	// Nearest are the records that come closest when nothing matches, each with the
	// difference that keeps it from matching.
	Nearest  []Near   `json:"nearest,omitempty"`
	Sources  []string `json:"sources"`
	Warnings []string `json:"warnings,omitempty"`
	// Refused are the records of the mapping that are refused (not applied), and the lists
	// that do not parse (Index -1), whoever they are for.
	Refused []Refusal `json:"refused,omitempty"`
}

// Refusal is a refused record, or a list that does not parse (Index -1), as explain shows it.
type Refusal struct {
	Source string `json:"source,omitempty"`
	List   string `json:"list"`
	Index  int    `json:"index"`
	Line   int    `json:"line,omitempty"`
	// LineInList: Line counts within the list's own text (a ConfigMap data value).
	LineInList bool   `json:"lineInList,omitempty"`
	ARN        string `json:"arn,omitempty"`
	Error      string `json:"error"`
}

func refusals(t *Table) []Refusal {
	if t == nil {
		return nil
	}
	var out []Refusal
	for _, list := range [][]*RecordError{t.unparsed, t.refused} {
		for _, r := range list {
			out = append(out, Refusal{Source: r.Source, List: r.List, Index: r.Index, Line: r.Line,
				LineInList: r.LineInList, ARN: r.ARN, Error: r.Err.Error()})
		}
	}
	return out
}

// RecordView is a Record as explain shows it.
type RecordView struct {
	Source   string   `json:"source,omitempty"`
	List     string   `json:"list"`
	Index    int      `json:"index"`
	Line     int      `json:"line,omitempty"`
	ARN      string   `json:"arn,omitempty"`
	SSO      *SSO     `json:"sso,omitempty"`
	Account  string   `json:"account,omitempty"`
	Username string   `json:"username,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// Near is a record that nearly matches, and why it does not.
type Near struct {
	Record RecordView `json:"record"`
	Reason string     `json:"reason"`
}

func viewOf(r *Record) *RecordView {
	v := &RecordView{Source: r.Source, List: r.List, Index: r.Index, Line: r.Line, ARN: r.ARN, SSO: r.SSO,
		Username: r.Username, Groups: r.Groups}
	if r.List == "mapAccounts" {
		v.Account = r.AccountID
	}
	return v
}

// Explain explains how t maps the principal arn, as typed by an operator: an assumed-role ARN
// (its session name then renders the templates), a role ARN with or without a path, a user,
// root or federated-user ARN. Templates that need what an ARN does not carry (the session of a
// role ARN, the access key, the EC2 lookup) are shown unrendered.
func Explain(t *Table, arn string) Explanation {
	return ExplainARN(context.Background(), t, arn, nil)
}

// ExplainARN is Explain with an InstanceResolver, so that {{EC2PrivateDNSName}} renders for an
// assumed-role ARN whose session is an instance ID. res may be nil.
func ExplainARN(ctx context.Context, t *Table, arn string, res InstanceResolver) Explanation {
	arn = strings.TrimSpace(arn)
	p, err := ParseARN(arn)
	if err != nil {
		e := Explanation{Input: arn, Result: "invalid", Error: err.Error(), Refused: refusals(t)}
		if t != nil {
			e.Sources, e.Warnings = t.sources, t.warnings
		}
		return e
	}
	id := identityFromARN(&p, arn)
	return ExplainIdentity(ctx, t, &id, res)
}

// ExplainIdentity explains how t maps id. It is the seam for explaining a token: verify the
// token with STS (the daemon's verifier, or the fake STS), build the Identity with NewIdentity
// and pass it here with the daemon's InstanceResolver, and the answer is exactly the one the
// webhook would give. res may be nil: {{EC2PrivateDNSName}} is then shown unrendered.
func ExplainIdentity(ctx context.Context, t *Table, id *Identity, res InstanceResolver) Explanation {
	e := Explanation{Input: id.ARN, CanonicalARN: id.CanonicalARN, Kind: id.Kind.String(), SessionName: id.SessionName,
		Refused: refusals(t)}
	if t != nil {
		e.Sources, e.Warnings = t.sources, t.warnings
	}
	if e.Sources == nil {
		e.Sources = []string{}
	}
	p, err := ParseARN(id.ARN)
	if err != nil {
		if p, err = ParseARN(id.CanonicalARN); err != nil {
			e.Result, e.Error = "invalid", err.Error()
			return e
		}
	}
	if p.AssumedRole {
		e.Notes = append(e.Notes, fmt.Sprintf("canonicalised from the assumed-role ARN (session %q): records match the role, any session", p.SessionName))
	}
	inert := inertNotes(t, id)
	e.Notes = append(e.Notes, inert...)
	refused := refusedNotes(t, &p)
	r, ok := t.Lookup(id)
	if !ok {
		e.Result = "not_mapped"
		e.Notes = append(e.Notes, "no record matches: kube-apiserver answers \"You must be logged in to the server (Unauthorized)\"")
		e.Notes = append(e.Notes, refused...)
		e.Nearest = nearest(t, &p, id)
		if len(e.Nearest) == 0 && len(inert) == 0 && len(refused) == 0 {
			e.Notes = append(e.Notes, fmt.Sprintf("no record names this principal, its name or its account %s", id.AccountID))
		}
		return e
	}
	e.Record = viewOf(r)
	e.Notes = append(e.Notes, matchNotes(t, r, &p, id)...)
	e.Notes = append(e.Notes, refused...)

	// Render what the identity allows; leave the rest as templates.
	rid := *id
	var unrendered []string
	if rid.SessionName == "" && p.Kind == KindRole && r.usesSession() {
		rid.SessionName = "{{SessionName}}"
		unrendered = append(unrendered, "the session name (give an assumed-role ARN to render it)")
	}
	if rid.AccessKeyID == "" {
		rid.AccessKeyID = "{{AccessKeyID}}"
	}
	if res == nil && r.ec2 {
		res = literalResolver{}
		if IsInstanceID(rid.SessionName) {
			unrendered = append(unrendered, "{{EC2PrivateDNSName}} (looked up in EC2 per request)")
		}
	}
	if rid.SessionName == "{{SessionName}}" && r.ec2 {
		e.Result = "mapped"
		e.User = &User{Username: r.Username, Groups: r.Groups}
		if e.User.Groups == nil {
			e.User.Groups = []string{}
		}
	} else {
		u, err := r.Render(ctx, &rid, res)
		if err != nil {
			e.Result = "denied"
			if IsDenial(err) {
				e.Notes = append(e.Notes, "denied: "+err.Error())
			} else {
				e.Notes = append(e.Notes, "cannot decide now (the webhook answers 503 and kube-apiserver retries): "+err.Error())
			}
			return e
		}
		e.Result = "mapped"
		e.User = &User{Username: u.Username, Groups: append([]string{}, u.Groups...)}
	}
	if len(unrendered) > 0 {
		e.Notes = append(e.Notes, "not rendered: "+strings.Join(unrendered, "; "))
	}
	return e
}

// literalResolver leaves {{EC2PrivateDNSName}} as written, for explain without EC2.
type literalResolver struct{}

func (literalResolver) PrivateDNSName(context.Context, string) (string, error) {
	return "{{EC2PrivateDNSName}}", nil
}

// refusedNotes names what the mapping refused that may have been meant for p: refused records
// whose ARN cannot be read but ends in p's name, and lists that do not parse.
func refusedNotes(t *Table, p *ParsedARN) []string {
	if t == nil {
		return nil
	}
	var notes []string
	for _, u := range t.unparsed {
		notes = append(notes, fmt.Sprintf("%s of %s does not parse (%s): none of its records is seen here; the server keeps that list's records of its previous version, if it had loaded one",
			u.List, sourceName(u.Source), u.Err))
	}
	for _, r := range t.refused {
		if r.principal != nil || p.Name == "" || r.ARN == "" {
			continue // a refused record with a valid ARN denies its principal: Lookup finds it
		}
		i := strings.LastIndexAny(r.ARN, "/:")
		if strings.EqualFold(strings.TrimSpace(r.ARN[i+1:]), p.Name) {
			notes = append(notes, fmt.Sprintf("%s of %s is refused and may be meant for this identity: %s",
				refusalName(r), sourceName(r.Source), r))
		}
	}
	return notes
}

func refusalName(r *RecordError) string {
	if r.Index < 0 {
		return r.List
	}
	return r.List + "[" + strconv.Itoa(r.Index) + "]"
}

func matchNotes(t *Table, r *Record, p *ParsedARN, id *Identity) []string {
	var notes []string
	if r.refused != nil {
		notes = append(notes, fmt.Sprintf("the record that names this principal first is refused, so it is denied: a refused record grants nothing, and no later record for the principal (nor mapAccounts) applies in its place; fix it: %s",
			r.refused))
		return notes
	}
	switch {
	case r.List == "mapAccounts":
		notes = append(notes, fmt.Sprintf("matched by mapAccounts: account %s maps any of its principals, as its canonical ARN, in no group", r.AccountID))
	case r.SSO != nil:
		notes = append(notes, fmt.Sprintf("matched by the SSO permission set %q in account %s, partition %s", r.SSO.PermissionSetName, r.SSO.AccountID, r.SSO.Partition))
	default:
		if r.Path != "" && !r.WrittenAsAssumedRole {
			notes = append(notes, fmt.Sprintf("the record writes the role with the path /%s/; STS reports roles without their path, so iamgate matches the path-less ARN (aws-iam-authenticator's ConfigMap mode does not)", r.Path))
		}
		if r.CanonicalARN != "" && r.CanonicalARN != canonicalNoPath(p) && strings.EqualFold(r.CanonicalARN, canonicalNoPath(p)) {
			notes = append(notes, fmt.Sprintf("matched regardless of case: the record writes %s (IAM names are unique regardless of case)", r.CanonicalARN))
		}
	}
	if r.List == "mapRoles" && p.Kind != KindRole || r.List == "mapUsers" && p.Kind == KindRole {
		notes = append(notes, fmt.Sprintf("a %s matched by a %s record", p.Kind, r.List))
	}
	// Records for the same principal that lose to this one.
	for _, o := range t.records {
		if o != r && o.key == r.key && o.List != "mapAccounts" && (o.SSO == nil) == (r.SSO == nil) {
			notes = append(notes, fmt.Sprintf("also named by %s[%d] of %s (line %d), which is shadowed by this record", o.List, o.Index, sourceName(o.Source), o.Line))
		}
	}
	if r.List != "mapAccounts" {
		if a := t.accounts[id.AccountID]; a != nil {
			notes = append(notes, fmt.Sprintf("account %s is also in mapAccounts, which comes after explicit records", id.AccountID))
		}
	}
	return notes
}

// inertNotes names the records written as an assumed-role ARN of id's role: they match nothing,
// and the operator who wrote one most likely meant to map this identity.
func inertNotes(t *Table, id *Identity) []string {
	if t == nil {
		return nil
	}
	key, _ := id.keys()
	var notes []string
	for _, r := range t.inert {
		if r.key == key {
			notes = append(notes, fmt.Sprintf("%s names the assumed-role (session) ARN %s, which matches nothing, as in EKS (callers are matched by their role ARN); to map every session of the role it must name %s",
				describeRecord(r), r.ARN, r.CanonicalARN))
		}
	}
	return notes
}

// describeRecord names a record in notes: list, index, source and line.
func describeRecord(r *Record) string {
	v := viewOf(r)
	v.ARN, v.SSO, v.Account = "", nil, ""
	return describeView(v)
}

func canonicalNoPath(p *ParsedARN) string {
	if p.Kind == KindRole {
		return "arn:" + p.Partition + ":iam::" + p.AccountID + ":role/" + p.Name
	}
	return p.Canonical()
}

// nearest lists the records that come closest to the unmatched identity, best first, at most 5.
func nearest(t *Table, p *ParsedARN, id *Identity) []Near {
	if t == nil {
		return nil
	}
	type scored struct {
		score int
		near  Near
	}
	var out []scored
	add := func(score int, r *Record, format string, args ...any) {
		out = append(out, scored{score, Near{Record: *viewOf(r), Reason: fmt.Sprintf(format, args...)}})
	}
	idSSO := ""
	if p.Kind == KindRole {
		idSSO = ssoPermissionSet(p.Name)
	}
	for _, r := range t.records {
		switch {
		case r.List == "mapAccounts":
			continue
		case r.SSO != nil:
			if idSSO == "" {
				if strings.EqualFold(p.Name, r.SSO.PermissionSetName) {
					add(3, r, "an SSO record for permission set %q, which matches only roles named AWSReservedSSO_%s_<16 hex digits>", r.SSO.PermissionSetName, r.SSO.PermissionSetName)
				}
				continue
			}
			sameName := strings.EqualFold(idSSO, r.SSO.PermissionSetName)
			sameAcct := r.SSO.AccountID == p.AccountID
			samePart := r.SSO.Partition == p.Partition
			switch {
			case sameName && sameAcct && !samePart:
				add(1, r, "same permission set in partition %s (the record's partition; \"aws\" when not set); the identity is in %s", r.SSO.Partition, p.Partition)
			case sameName && !sameAcct:
				add(2, r, "same permission set in account %s; the identity is in account %s", r.SSO.AccountID, p.AccountID)
			case sameAcct && (hasPrefixFold(idSSO, r.SSO.PermissionSetName+"_") || hasPrefixFold(r.SSO.PermissionSetName, idSSO+"_")):
				add(2, r, "permission set %q is not %q: SSO records match the exact permission set name, never a longer one sharing the prefix", r.SSO.PermissionSetName, idSSO)
			case sameAcct && editDistance(strings.ToLower(idSSO), strings.ToLower(r.SSO.PermissionSetName)) <= 2:
				add(3, r, "permission set %q is similar to %q", r.SSO.PermissionSetName, idSSO)
			}
		default:
			rp, err := ParseARN(r.CanonicalARN)
			if err != nil {
				continue
			}
			if r.Path != "" {
				rp.Path = r.Path
			}
			sameName := strings.EqualFold(rp.Name, p.Name)
			sameAcct := rp.AccountID == p.AccountID
			samePart := rp.Partition == p.Partition
			switch {
			case p.Kind == KindRoot || rp.Kind == KindRoot:
				if p.Kind == rp.Kind && !sameAcct {
					add(2, r, "the root user of account %s; the identity is the root user of account %s", rp.AccountID, p.AccountID)
				}
			case sameName && rp.Kind == p.Kind && sameAcct && samePart && rp.Kind == KindUser:
				add(1, r, "same user name with the path %s; the identity's path is %s: STS reports users with their path, so the record must name %s", showPath(rp.Path), showPath(p.Path), p.Canonical())
			case sameName && rp.Kind == p.Kind && sameAcct && !samePart:
				add(1, r, "same %s name in partition %s; the identity is in %s", rp.Kind, rp.Partition, p.Partition)
			case sameName && rp.Kind == p.Kind && !sameAcct:
				add(2, r, "same %s name in account %s; the identity is in account %s", rp.Kind, rp.AccountID, p.AccountID)
			case sameName && rp.Kind != p.Kind && sameAcct:
				add(2, r, "a %s with the same name; the identity is a %s", rp.Kind, p.Kind)
			case sameAcct && rp.Kind == p.Kind && editDistance(strings.ToLower(rp.Name), strings.ToLower(p.Name)) <= 2:
				add(3, r, "%s name %q is similar to %q", rp.Kind, rp.Name, p.Name)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].score < out[j].score })
	if len(out) > 5 {
		out = out[:5]
	}
	res := make([]Near, len(out))
	for i := range out {
		res[i] = out[i].near
	}
	return res
}

func showPath(p string) string {
	if p == "" {
		return "/ (none)"
	}
	return "/" + p + "/"
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// editDistance is the Levenshtein distance of two short names (bounded by isIAMName).
func editDistance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// JSON returns the explanation as indented JSON.
func (e Explanation) JSON() []byte {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot marshal an Explanation: %s", err))
	}
	return append(b, '\n')
}

// WriteText writes the explanation for people.
func (e Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-15s %s\n", k+":", v) }
	line("input", e.Input)
	if e.Result == "invalid" {
		line("result", "INVALID: "+e.Error)
		writeRefusals(&b, e.Refused)
		_, err := io.WriteString(w, b.String())
		return err
	}
	if e.CanonicalARN != e.Input {
		line("canonical ARN", e.CanonicalARN)
	}
	line("principal", e.Kind)
	if e.SessionName != "" {
		line("session name", e.SessionName)
	}
	switch e.Result {
	case "mapped":
		line("result", "MAPPED by "+describeView(e.Record))
	case "denied":
		line("result", "DENIED: matched by "+describeView(e.Record)+", but no user results")
	default:
		line("result", "NOT MAPPED")
	}
	if e.User != nil {
		line("username", strconv.Quote(e.User.Username))
		groups := make([]string, len(e.User.Groups))
		for i, g := range e.User.Groups {
			groups[i] = strconv.Quote(g)
		}
		line("groups", "["+strings.Join(groups, ", ")+"]")
	}
	if len(e.Notes) > 0 {
		b.WriteString("notes:\n")
		for _, n := range e.Notes {
			b.WriteString("  - " + n + "\n")
		}
	}
	if len(e.Nearest) > 0 {
		b.WriteString("nearest records:\n")
		for _, n := range e.Nearest {
			v := n.Record
			b.WriteString("  - " + describeView(&v) + "\n      " + n.Reason + "\n")
		}
	}
	if len(e.Sources) > 0 {
		line("sources", strings.Join(e.Sources, ", "))
	}
	if len(e.Warnings) > 0 {
		b.WriteString("mapping warnings:\n")
		for _, w := range e.Warnings {
			b.WriteString("  - " + w + "\n")
		}
	}
	writeRefusals(&b, e.Refused)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRefusals(b *strings.Builder, refused []Refusal) {
	if len(refused) == 0 {
		return
	}
	b.WriteString("refused (not applied; every other record applies):\n")
	for _, r := range refused {
		re := RecordError{List: r.List, Index: r.Index, ARN: r.ARN, Line: r.Line, LineInList: r.LineInList, Err: errors.New(r.Error)}
		b.WriteString("  - ")
		if r.Source != "" {
			b.WriteString(r.Source + ": ")
		}
		b.WriteString(re.Error() + "\n")
	}
}

func describeView(v *RecordView) string {
	if v == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s[%d]", v.List, v.Index)
	switch {
	case v.ARN != "":
		b.WriteString(" " + v.ARN)
	case v.SSO != nil:
		fmt.Fprintf(&b, " sso{permissionSetName: %s, accountID: %s, partition: %s}", v.SSO.PermissionSetName, v.SSO.AccountID, v.SSO.Partition)
	case v.Account != "":
		b.WriteString(" " + v.Account)
	}
	if v.Source != "" || v.Line > 0 {
		b.WriteString(" (")
		b.WriteString(v.Source)
		if v.Line > 0 {
			if v.Source != "" {
				b.WriteString(", ")
			}
			b.WriteString("line " + strconv.Itoa(v.Line))
		}
		b.WriteString(")")
	}
	return b.String()
}
