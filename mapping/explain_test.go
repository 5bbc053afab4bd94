package mapping

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func explainTable(tb testing.TB, fixtures ...string) *Table {
	tb.Helper()
	var docs []*Document
	for _, f := range fixtures {
		docs = append(docs, parseFixture(tb, f))
	}
	t, err := Compile(docs...)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// TestExplain (see docs/design.md: Mapping): the result, the matching record, and for an unmapped ARN the
// nearest records with the difference that keeps each from matching.
func TestExplain(t *testing.T) {
	table := explainTable(t, "aws-auth-good-eks-example.yaml", "aws-auth-good-sso.yaml", "aws-auth-good-role-path.yaml",
		"aws-auth-good-mixed-case.yaml", "aws-auth-warn-assumed-role-arn.yaml", "plain-good-lists.yaml")
	f := func(arn, wantResult, wantRecord string, wantNotes, wantNearest []string) {
		t.Helper()
		e := Explain(table, arn)
		if e.Result != wantResult {
			t.Fatalf("unexpected result for %s; got %q; want %q", arn, e.Result, wantResult)
		}
		if got := describeView(e.Record); got != wantRecord {
			t.Fatalf("unexpected record for %s; got %q; want %q", arn, got, wantRecord)
		}
		if wantNotes != nil && !reflect.DeepEqual(e.Notes, wantNotes) {
			t.Fatalf("unexpected notes for %s;\ngot  %q;\nwant %q", arn, e.Notes, wantNotes)
		}
		var near []string
		for _, n := range e.Nearest {
			v := n.Record
			near = append(near, describeView(&v)+": "+n.Reason)
		}
		if !reflect.DeepEqual(near, wantNearest) {
			t.Fatalf("unexpected nearest records for %s;\ngot  %q;\nwant %q", arn, near, wantNearest)
		}
	}
	const unauthorized = `no record matches: kube-apiserver answers "You must be logged in to the server (Unauthorized)"`
	f("arn:aws:iam::111122223333:user/yaroslav", "mapped", "mapUsers[0] arn:aws:iam::111122223333:user/yaroslav (aws-auth-good-eks-example.yaml, line 12)", []string(nil), nil)
	// Other account.
	f("arn:aws:iam::444455556666:user/yaroslav", "not_mapped", "", []string{unauthorized},
		[]string{"mapUsers[0] arn:aws:iam::111122223333:user/yaroslav (aws-auth-good-eks-example.yaml, line 12): same user name in account 111122223333; the identity is in account 444455556666"})
	// Nothing near.
	f("arn:aws:iam::222233334444:user/mallory", "not_mapped", "", []string{unauthorized, "no record names this principal, its name or its account 222233334444"}, nil)
	// User path.
	f("arn:aws:iam::111122223333:user/bob", "not_mapped", "", nil,
		[]string{`mapUsers[0] arn:aws:iam::111122223333:user/contractors/bob (aws-auth-good-role-path.yaml, line 9): same user name with the path /contractors/; the identity's path is / (none): STS reports users with their path, so the record must name arn:aws:iam::111122223333:user/bob`})
	// Role path: matched, with a note.
	f("arn:aws:sts::111122223333:assumed-role/deployer/gha", "mapped", "mapRoles[0] arn:aws:iam::111122223333:role/teams/platform/deployer (aws-auth-good-role-path.yaml, line 5)", []string{
		`canonicalised from the assumed-role ARN (session "gha"): records match the role, any session`,
		`the record writes the role with the path /teams/platform/; STS reports roles without their path, so iamgate matches the path-less ARN (aws-iam-authenticator's ConfigMap mode does not)`,
	}, nil)
	// Case difference: matched, with a note.
	f("arn:aws:iam::111122223333:role/ADMIN", "mapped", "mapRoles[0] arn:aws:iam::111122223333:role/Admin (aws-auth-good-mixed-case.yaml, line 10)", []string{
		`matched regardless of case: the record writes arn:aws:iam::111122223333:role/Admin (IAM names are unique regardless of case)`,
	}, nil)
	// Assumed-role ARN written in the record: it matches nothing, and explain says so.
	f("arn:aws:sts::111122223333:assumed-role/ops/alice@example.com", "not_mapped", "", []string{
		`canonicalised from the assumed-role ARN (session "alice@example.com"): records match the role, any session`,
		`mapRoles[0] (aws-auth-warn-assumed-role-arn.yaml, line 5) names the assumed-role (session) ARN arn:aws:sts::111122223333:assumed-role/ops/alice@example.com, which matches nothing, as in EKS (callers are matched by their role ARN); to map every session of the role it must name arn:aws:iam::111122223333:role/ops`,
		unauthorized,
	}, nil)
	f("arn:aws:sts::111122223333:assumed-role/viewer/bob", "mapped", "mapRoles[1] arn:aws:iam::111122223333:role/viewer (aws-auth-warn-assumed-role-arn.yaml, line 8)", []string{
		`canonicalised from the assumed-role ARN (session "bob"): records match the role, any session`,
		`mapRoles[2] (aws-auth-warn-assumed-role-arn.yaml, line 10) names the assumed-role (session) ARN arn:aws:sts::111122223333:assumed-role/viewer/bob, which matches nothing, as in EKS (callers are matched by their role ARN); to map every session of the role it must name arn:aws:iam::111122223333:role/viewer`,
	}, nil)
	// Role vs user.
	f("arn:aws:iam::111122223333:role/yaroslav", "not_mapped", "", nil,
		[]string{"mapUsers[0] arn:aws:iam::111122223333:user/yaroslav (aws-auth-good-eks-example.yaml, line 12): a user with the same name; the identity is a role"})
	// Partition.
	f("arn:aws:iam::111122223333:role/cn-admin", "not_mapped", "", nil,
		[]string{"mapRoles[0] arn:aws-cn:iam::111122223333:role/cn-admin (plain-good-lists.yaml, line 3): same role name in partition aws-cn; the identity is in aws"})
	// SSO: a longer permission set sharing the prefix, another partition, a similar name.
	f("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_View_Admin_0123456789abcdef/alice", "not_mapped", "", nil,
		[]string{`mapRoles[0] sso{permissionSetName: View, accountID: 111122223333, partition: aws} (aws-auth-good-sso.yaml, line 5): permission set "View" is not "View_Admin": SSO records match the exact permission set name, never a longer one sharing the prefix`})
	f("arn:aws-us-gov:sts::111122223333:assumed-role/AWSReservedSSO_View_0123456789abcdef/alice", "not_mapped", "", nil,
		[]string{`mapRoles[0] sso{permissionSetName: View, accountID: 111122223333, partition: aws} (aws-auth-good-sso.yaml, line 5): same permission set in partition aws (the record's partition; "aws" when not set); the identity is in aws-us-gov`})
	f("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Vew_0123456789abcdef/alice", "not_mapped", "", nil,
		[]string{`mapRoles[0] sso{permissionSetName: View, accountID: 111122223333, partition: aws} (aws-auth-good-sso.yaml, line 5): permission set "View" is similar to "Vew"`})
	f("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_View_0123456789abcdef/alice", "mapped",
		"mapRoles[0] sso{permissionSetName: View, accountID: 111122223333, partition: aws} (aws-auth-good-sso.yaml, line 5)", nil, nil)
	// Denied after matching: the node role used by a person.
	f("arn:aws:sts::111122223333:assumed-role/eks-node-group-role/alice", "denied", "mapRoles[0] arn:aws:iam::111122223333:role/eks-node-group-role (aws-auth-good-eks-example.yaml, line 6)", []string{
		`canonicalised from the assumed-role ARN (session "alice"): records match the role, any session`,
		`denied: session name is not an EC2 instance ID: {{EC2PrivateDNSName}} needs a session name like i-0123456789abcdef0; got "alice"`,
	}, nil)
	// Invalid.
	if e := Explain(table, "arn:aws:iam::111122223333:group/devs"); e.Result != "invalid" || !strings.Contains(e.Error, "unsupported iam resource") {
		t.Fatalf("unexpected explanation of a group ARN: %+v", e)
	}
	// A nil table explains too.
	if e := Explain(nil, "arn:aws:iam::111122223333:user/alice"); e.Result != "not_mapped" {
		t.Fatalf("unexpected result with no table; got %q", e.Result)
	}
}

// TestExplainRendering protects what explain shows of templates: rendered from an
// assumed-role ARN's session, left as written where the ARN does not carry the value.
func TestExplainRendering(t *testing.T) {
	table := explainTable(t, "aws-auth-good-eks-example.yaml", "aws-auth-good-templates.yaml")
	f := func(arn, wantUsername string, wantGroups []string, wantLastNote string) {
		t.Helper()
		e := Explain(table, arn)
		if e.User == nil {
			t.Fatalf("unexpected explanation without a user for %s: %+v", arn, e)
		}
		if e.User.Username != wantUsername || !reflect.DeepEqual(e.User.Groups, wantGroups) {
			t.Fatalf("unexpected user for %s; got %q %q; want %q %q", arn, e.User.Username, e.User.Groups, wantUsername, wantGroups)
		}
		last := ""
		if len(e.Notes) > 0 {
			last = e.Notes[len(e.Notes)-1]
		}
		if last != wantLastNote {
			t.Fatalf("unexpected last note for %s; got %q; want %q", arn, last, wantLastNote)
		}
	}
	f("arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0123456789abcdef0", "system:node:{{EC2PrivateDNSName}}",
		[]string{"system:bootstrappers", "system:nodes"}, "not rendered: {{EC2PrivateDNSName}} (looked up in EC2 per request)")
	f("arn:aws:iam::111122223333:role/eks-node-group-role", "system:node:{{EC2PrivateDNSName}}",
		[]string{"system:bootstrappers", "system:nodes"}, "not rendered: the session name (give an assumed-role ARN to render it)")
	f("arn:aws:sts::111122223333:assumed-role/dev/a@b.c", "dev:111122223333:a-b.c", []string{"dev", "session:a@b.c"},
		`canonicalised from the assumed-role ARN (session "a@b.c"): records match the role, any session`)
	f("arn:aws:iam::111122223333:role/dev", "dev:111122223333:{{SessionName}}", []string{"dev", "session:{{SessionName}}"},
		"not rendered: the session name (give an assumed-role ARN to render it)")
	f("arn:aws:iam::111122223333:role/keyed", "key-{{AccessKeyID}}", []string{}, "")

	// With a resolver the node's name renders.
	e := ExplainARN(context.Background(), table, "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0123456789abcdef0",
		staticResolver{"i-0123456789abcdef0": "ip-10-0-1-23.ec2.internal"})
	if e.Result != "mapped" || e.User.Username != "system:node:ip-10-0-1-23.ec2.internal" {
		t.Fatalf("unexpected explanation with a resolver: %+v", e)
	}
	// And an instance EC2 does not know is a denial.
	e = ExplainARN(context.Background(), table, "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0123456789abcdef1", staticResolver{})
	if e.Result != "denied" || !strings.Contains(e.Notes[len(e.Notes)-1], "EC2 instance not found") {
		t.Fatalf("unexpected explanation of an unknown instance: %+v", e)
	}

	// With an Identity and a resolver (the seam for explaining a token) everything renders.
	id := testIdentity(t, "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0123456789abcdef0")
	e = ExplainIdentity(context.Background(), table, id, staticResolver{"i-0123456789abcdef0": "ip-10-0-1-23.ec2.internal"})
	if e.Result != "mapped" || e.User.Username != "system:node:ip-10-0-1-23.ec2.internal" {
		t.Fatalf("unexpected explanation with a resolver: %+v", e)
	}
}

func TestExplainOutput(t *testing.T) {
	table := explainTable(t, "aws-auth-good-eks-example.yaml")
	var b strings.Builder
	if err := Explain(table, "arn:aws:iam::444455556666:user/yaroslav").WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `input:          arn:aws:iam::444455556666:user/yaroslav
principal:      user
result:         NOT MAPPED
notes:
  - no record matches: kube-apiserver answers "You must be logged in to the server (Unauthorized)"
nearest records:
  - mapUsers[0] arn:aws:iam::111122223333:user/yaroslav (aws-auth-good-eks-example.yaml, line 12)
      same user name in account 111122223333; the identity is in account 444455556666
sources:        aws-auth-good-eks-example.yaml
`
	if b.String() != want {
		t.Fatalf("unexpected text;\ngot:\n%s\nwant:\n%s", b.String(), want)
	}
	var got map[string]any
	if err := json.Unmarshal(Explain(table, "arn:aws:iam::111122223333:user/yaroslav").JSON(), &got); err != nil {
		t.Fatalf("cannot decode the JSON form: %s", err)
	}
	user, _ := got["user"].(map[string]any)
	if got["result"] != "mapped" || user["username"] != "yaroslav" {
		t.Fatalf("unexpected JSON form: %v", got)
	}
}

// TestExplainRefused protects what explain shows of refused records: every refused record is
// listed; an identity whose record is refused is denied, with the reason and the fix; an
// identity a refused record (with an unreadable ARN) may have been meant for is told so.
func TestExplainRefused(t *testing.T) {
	table := explainTable(t, "aws-auth-bad-one-typo.yaml", "aws-auth-bad-invalid-arn.yaml")
	e := Explain(table, "arn:aws:sts::111122223333:assumed-role/ops/alice")
	wantNote := `the record that names this principal first is refused, so it is denied: a refused record grants nothing, and no later record for the principal (nor mapAccounts) applies in its place; fix it: mapRoles[2] "arn:aws:iam::111122223333:role/ops" (line 18): value is not a string: username is a number (1234); quote it if a string is meant`
	if e.Result != "denied" || len(e.Notes) < 2 || e.Notes[1] != wantNote {
		t.Fatalf("unexpected explanation of a principal with a refused record;\ngot  %q %q;\nwant denied, notes[1] %q", e.Result, e.Notes, wantNote)
	}
	if got := describeView(e.Record); got != "mapRoles[2] arn:aws:iam::111122223333:role/ops (aws-auth-bad-one-typo.yaml, line 18)" {
		t.Fatalf("unexpected record; got %q", got)
	}

	e = Explain(table, "arn:aws:iam::111122223333:role/short-account")
	wantNote = `mapRoles[0] of aws-auth-bad-invalid-arn.yaml is refused and may be meant for this identity: mapRoles[0] "arn:aws:iam::11112222333:role/short-account" (line 3): invalid ARN: account "11112222333" is not 12 digits`
	if e.Result != "mapped" || len(e.Notes) != 2 || e.Notes[1] != wantNote {
		t.Fatalf("unexpected explanation of a principal a refused record may be meant for;\ngot  %q %q;\nwant mapped (by mapAccounts), notes[1] %q", e.Result, e.Notes, wantNote)
	}
	if len(e.Refused) != 6 {
		t.Fatalf("unexpected refused records listed; got %d; want 6: %+v", len(e.Refused), e.Refused)
	}

	var b strings.Builder
	if err := Explain(table, "arn:aws:iam::111122223333:user/yaroslav").WriteText(&b); err != nil {
		t.Fatal(err)
	}
	wantText := `refused (not applied; every other record applies):
  - aws-auth-bad-one-typo.yaml: mapRoles[1] "arn:aws:iam::111122223333:role/dev" (line 16): unknown template placeholder {{SessionId}} in "dev:{{SessionId}}" (known: {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}}, {{EC2PrivateDNSName}})
  - aws-auth-bad-one-typo.yaml: mapRoles[2] "arn:aws:iam::111122223333:role/ops" (line 18): value is not a string: username is a number (1234); quote it if a string is meant
`
	if !strings.HasPrefix(b.String(), "input:          arn:aws:iam::111122223333:user/yaroslav\nprincipal:      user\nresult:         MAPPED") ||
		!strings.Contains(b.String(), wantText) {
		t.Fatalf("unexpected text;\ngot:\n%s\nwant it to be MAPPED and contain:\n%s", b.String(), wantText)
	}

	// A list that does not parse: explain sees none of its records and says so.
	doc, err := ParseConfigMapData("configmap kube-system/aws-auth", map[string]string{"mapRoles": "- rolearn: [\n"})
	if err != nil {
		t.Fatal(err)
	}
	broken, err := Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	e = Explain(broken, "arn:aws:sts::111122223333:assumed-role/node/i-0123456789abcdef0")
	if e.Result != "not_mapped" || len(e.Notes) != 3 || !strings.HasPrefix(e.Notes[2], "mapRoles of configmap kube-system/aws-auth does not parse (bad YAML: ") {
		t.Fatalf("unexpected explanation with an unparsed list: %q %q", e.Result, e.Notes)
	}
	if len(e.Refused) != 1 || e.Refused[0].Index != -1 {
		t.Fatalf("unexpected refusals; got %+v; want the unparsed mapRoles", e.Refused)
	}
}
