package mapping

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/iamgate/iamgate/internal/testenv"
)

// staticResolver answers {{EC2PrivateDNSName}} from a map, for tests that are not about EC2.
type staticResolver map[string]string

func (m staticResolver) PrivateDNSName(_ context.Context, id string) (string, error) {
	if dns, ok := m[id]; ok {
		return dns, nil
	}
	return "", fmt.Errorf("%w: %s", ErrInstanceNotFound, id)
}

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("cannot read fixture: %s", err)
	}
	return data
}

func parseFixture(tb testing.TB, name string) *Document {
	tb.Helper()
	doc, err := ParseDocument(name, readFixture(tb, name))
	if err != nil {
		tb.Fatalf("unexpected error parsing %s: %s", name, err)
	}
	return doc
}

// testIdentity builds the Identity STS would return for arn: an assumed role's UserId carries
// its session name.
func testIdentity(tb testing.TB, arn string) *Identity {
	tb.Helper()
	return testenv.Identity(tb, arn, NewIdentity)
}

// mapCase is one identity to map through a fixture and what it must become.
type mapCase struct {
	arn      string
	username string
	groups   []string
	err      error // a denial: username and groups are not checked
}

// TestFixturesGood protects every accepted record form and EKS quirk: each testdata/*-good-*
// and *-warn-* fixture with its exact warnings and the exact user of each identity.
func TestFixturesGood(t *testing.T) {
	res := staticResolver{"i-0123456789abcdef0": "ip-10-0-1-23.ec2.internal"}
	f := func(name string, wantWarnings []string, cases ...mapCase) {
		t.Helper()
		doc := parseFixture(t, name)
		table, err := Compile(doc)
		if err != nil {
			t.Fatalf("unexpected Compile error for %s: %s", name, err)
		}
		warnings := table.Warnings()
		if len(warnings) == 0 {
			warnings = nil
		}
		if !reflect.DeepEqual(warnings, wantWarnings) {
			t.Fatalf("unexpected warnings for %s;\ngot  %q;\nwant %q", name, warnings, wantWarnings)
		}
		for _, c := range cases {
			id := testIdentity(t, c.arn)
			u, err := table.Render(context.Background(), id, res)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("unexpected error for %s in %s; got %v; want %v", c.arn, name, err, c.err)
				}
				if !IsDenial(err) {
					t.Fatalf("unexpected non-denial for %s in %s: %v", c.arn, name, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("unexpected error for %s in %s: %s", c.arn, name, err)
			}
			if u.Username != c.username {
				t.Fatalf("unexpected username for %s in %s; got %q; want %q", c.arn, name, u.Username, c.username)
			}
			if c.groups == nil {
				c.groups = []string{}
			}
			if !reflect.DeepEqual(u.Groups, c.groups) {
				t.Fatalf("unexpected groups for %s in %s; got %q; want %q", c.arn, name, u.Groups, c.groups)
			}
		}
	}

	eksExampleCases := []mapCase{
		{arn: "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0123456789abcdef0",
			username: "system:node:ip-10-0-1-23.ec2.internal", groups: []string{"system:bootstrappers", "system:nodes"}},
		{arn: "arn:aws:iam::111122223333:user/yaroslav", username: "yaroslav", groups: []string{"system:masters"}},
		{arn: "arn:aws:iam::111122223333:user/mallory", err: ErrNotMapped},
		{arn: "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/alice", err: ErrNotInstanceID},
		{arn: "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0000000000000000f", err: ErrInstanceNotFound},
		{arn: "arn:aws:iam::444455556666:user/yaroslav", err: ErrNotMapped},
	}
	f("aws-auth-good-eks-example.yaml", nil, eksExampleCases...)
	f("aws-auth-good-json.json", nil, eksExampleCases...)
	f("aws-auth-good-mixed-case.yaml", nil,
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/Admin/s", username: "admin", groups: []string{"system:masters"}},
		// IAM names are unique regardless of case: the lookup is on the lower-cased ARN.
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/admin/s", username: "admin", groups: []string{"system:masters"}},
		mapCase{arn: "arn:aws:iam::111122223333:user/Alice", username: "alice", groups: []string{"dev"}},
	)
	f("aws-auth-good-blank-values.yaml", []string{
		`aws-auth-good-blank-values.yaml: mapRoles[0] "arn:aws:iam::111122223333:role/ci" (line 13): blank group skipped`,
		`aws-auth-good-blank-values.yaml: mapRoles[0] "arn:aws:iam::111122223333:role/ci" (line 15): blank group skipped`,
		`aws-auth-good-blank-values.yaml: mapAccounts[0] (line 21): blank account skipped`,
	},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/ci/build-1", username: "ci", groups: []string{"ci"}},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/viewer/x", username: "viewer"},
	)
	f("aws-auth-good-role-path.yaml", nil,
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/deployer/gha", username: "deployer", groups: []string{"deployers"}},
		mapCase{arn: "arn:aws:iam::111122223333:user/contractors/bob", username: "bob", groups: []string{"contractors"}},
		// STS reports users with their path: a path-less user ARN is another user.
		mapCase{arn: "arn:aws:iam::111122223333:user/bob", err: ErrNotMapped},
	)
	// IAM paths hold any printable ASCII (names do not): EKS accepts such records.
	f("aws-auth-good-iam-path-chars.yaml", nil,
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/deployer/gha", username: "deployer", groups: []string{"deployers"}},
		mapCase{arn: "arn:aws:iam::111122223333:user/odd~path/x:y{1}/carol", username: "carol", groups: []string{"dev"}},
		mapCase{arn: "arn:aws:iam::111122223333:user/carol", err: ErrNotMapped},
	)
	// An assumed-role ARN as rolearn matches nothing (as in EKS), not even its own session,
	// and never widens to every session of the role.
	f("aws-auth-warn-assumed-role-arn.yaml", []string{
		`aws-auth-warn-assumed-role-arn.yaml: mapRoles[0] "arn:aws:sts::111122223333:assumed-role/ops/alice@example.com" (line 5): an assumed-role (session) ARN never matches, as in EKS: callers are matched by their role ARN; to map every session of the role write arn:aws:iam::111122223333:role/ops`,
		`aws-auth-warn-assumed-role-arn.yaml: mapRoles[2] "arn:aws:sts::111122223333:assumed-role/viewer/bob" (line 10): an assumed-role (session) ARN never matches, as in EKS: callers are matched by their role ARN; to map every session of the role write arn:aws:iam::111122223333:role/viewer`,
	},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/ops/bob@example.com", err: ErrNotMapped},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/ops/alice@example.com", err: ErrNotMapped},
		// The session record neither shadows nor widens the role's own record.
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/viewer/bob", username: "viewer"},
	)
	f("aws-auth-good-sso.yaml", nil,
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_View_0123456789abcdef/alice@example.com",
			username: "viewer:alice-example.com", groups: []string{"viewers"}},
		// Never a longer permission set name that shares the prefix.
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_View_Admin_0123456789abcdef/alice", err: ErrNotMapped},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Viewer_0123456789abcdef/alice", err: ErrNotMapped},
		// Partition: "aws" by default, the record's when given.
		mapCase{arn: "arn:aws-us-gov:sts::111122223333:assumed-role/AWSReservedSSO_View_0123456789abcdef/alice", err: ErrNotMapped},
		mapCase{arn: "arn:aws-us-gov:sts::111122223333:assumed-role/AWSReservedSSO_Admin_fedcba9876543210/bob@example.com",
			username: "gov-admin:bob@example.com", groups: []string{"system:masters"}},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_fedcba9876543210/bob", err: ErrNotMapped},
		mapCase{arn: "arn:aws:sts::444455556666:assumed-role/AWSReservedSSO_View_0123456789abcdef/alice", err: ErrNotMapped},
	)
	f("aws-auth-good-map-accounts.yaml", nil,
		mapCase{arn: "arn:aws:iam::444455556666:user/admin", username: "admin", groups: []string{"system:masters"}},
		mapCase{arn: "arn:aws:iam::444455556666:user/other", username: "arn:aws:iam::444455556666:user/other"},
		mapCase{arn: "arn:aws:sts::777788889999:assumed-role/Dev/alice", username: "arn:aws:iam::777788889999:role/Dev"},
		mapCase{arn: "arn:aws:iam::111122223333:user/admin", err: ErrNotMapped},
	)
	f("aws-auth-good-templates.yaml", nil,
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/dev/alice@example.com",
			username: "dev:111122223333:alice-example.com", groups: []string{"dev", "session:alice@example.com"}},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/raw/a@b", username: "a@b"},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/keyed/x", username: "key-AKIAIOSFODNN7EXAMPLE"},
	)
	f("aws-auth-warn-folded-groups.yaml", []string{
		`aws-auth-warn-folded-groups.yaml: mapRoles[0] "arn:aws:iam::111122223333:role/node" (line 14): group "system:bootstrappers - system:nodes" looks like two groups folded into one by a mis-indented "- " line; kept as one group`,
	},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/node/i-0123456789abcdef0",
			username: "system:node:ip-10-0-1-23.ec2.internal", groups: []string{"system:bootstrappers - system:nodes"}},
	)
	f("aws-auth-warn-lowercase-key.yaml", []string{
		`aws-auth-warn-lowercase-key.yaml: key "maproles" ignored: top-level keys are case-sensitive, as in EKS; did you mean "mapRoles"?`,
	},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/ignored/s", err: ErrNotMapped},
		mapCase{arn: "arn:aws:iam::111122223333:user/kept", username: "kept"},
	)
	f("aws-auth-warn-duplicate-arn.yaml", []string{
		`aws-auth-warn-duplicate-arn.yaml: mapRoles[1] "arn:aws:iam::111122223333:role/some/path/admin" is shadowed by mapRoles[0] of aws-auth-warn-duplicate-arn.yaml, which matches the same principal and wins (aws-iam-authenticator used the last duplicate)`,
	},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/admin/s", username: "first", groups: []string{"system:masters"}},
	)
	f("plain-good-lists.yaml", nil,
		mapCase{arn: "arn:aws-cn:sts::111122223333:assumed-role/cn-admin/s", username: "cn-admin", groups: []string{"system:masters"}},
		mapCase{arn: "arn:aws:sts::111122223333:assumed-role/cn-admin/s", err: ErrNotMapped},
		mapCase{arn: "arn:aws:iam::111122223333:root", username: "root-of-111122223333"},
		mapCase{arn: "arn:aws:sts::111122223333:federated-user/fed", username: "fed"},
		mapCase{arn: "arn:aws:iam::999988887777:user/any", username: "arn:aws:iam::999988887777:user/any"},
	)
}

// TestFixturesBad protects the refusals: each testdata/*-bad-* fixture with its exact error,
// naming every refused record by list, index, ARN and line. Refused records are listed in the
// Document (Document.Err); only a document of which nothing can be identified is an error.
func TestFixturesBad(t *testing.T) {
	f := func(name string, wantIs error, wantErr string) {
		t.Helper()
		doc, err := ParseDocument(name, readFixture(t, name))
		if err == nil {
			err = doc.Err()
		}
		if err == nil {
			t.Fatalf("expected an error for %s; got a document with %d records", name, doc.Len())
		}
		if !errors.Is(err, wantIs) {
			t.Fatalf("unexpected error kind for %s; got %v; want %v", name, err, wantIs)
		}
		if err.Error() != wantErr {
			t.Fatalf("unexpected error for %s;\ngot  %q;\nwant %q", name, err.Error(), wantErr)
		}
	}
	f("aws-auth-bad-unknown-template.yaml", ErrUnknownPlaceholder,
		`mapRoles[0] "arn:aws:iam::111122223333:role/dev" (line 3): unknown template placeholder {{SessionId}} in "dev:{{SessionId}}" (known: {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}}, {{EC2PrivateDNSName}})`)
	f("aws-auth-bad-numeric-username.yaml", ErrNotString,
		`mapUsers[0] "arn:aws:iam::111122223333:user/numbers" (line 9): value is not a string: username is a number (1234); quote it if a string is meant`)
	f("aws-auth-bad-empty-username.yaml", ErrMissingField,
		`mapRoles[0] "arn:aws:iam::111122223333:role/nameless" (line 3): required field missing: username (a record must not give an empty username)`+"\n"+
			`mapRoles[1] "arn:aws:iam::111122223333:role/blank" (line 5): required field missing: username (a record must not give an empty username)`)
	f("aws-auth-bad-invalid-arn.yaml", ErrInvalidARN,
		`mapRoles[0] "arn:aws:iam::11112222333:role/short-account" (line 3): invalid ARN: account "11112222333" is not 12 digits`+"\n"+
			`mapRoles[1] "arn:aws:s3:::bucket" (line 5): invalid ARN: service "s3" is neither iam nor sts`+"\n"+
			`mapRoles[2] "arn:aws:iam::111122223333:role/has space" (line 7): invalid ARN: bad role name "has space" (1 to 64 letters, digits and +=,.@_-)`+"\n"+
			`mapUsers[0] "arn:aws:iam::111122223333:group/devs" (line 10): invalid ARN: unsupported iam resource "group" (want role/, user/, root, assumed-role/ or federated-user/)`)
	f("aws-auth-bad-unknown-partition.yaml", ErrInvalidARN,
		`mapUsers[0] "arn:aws-moon:iam::111122223333:user/neil" (line 3): invalid ARN: unknown partition "aws-moon"`)
	f("aws-auth-bad-duplicate-key.yaml", ErrBadRecord,
		`mapRoles[0] "arn:aws:iam::111122223333:role/a" (line 4): bad record: key "roleArn" given twice (record keys are case-insensitive)`)
	f("aws-auth-bad-account.yaml", ErrBadRecord,
		`mapAccounts[0] "12345" (line 4): bad record: account "12345" is not 12 digits`+"\n"+
			`mapAccounts[1] "012345678901x" (line 5): bad record: account "012345678901x" is not 12 digits`)
	f("aws-auth-bad-sso.yaml", ErrBadRecord,
		`mapRoles[0] "arn:aws:iam::111122223333:role/x" (line 3): bad record: give rolearn or sso, not both`+"\n"+
			`mapRoles[1] (line 8): bad record: sso.partition "aws-moon" is not a known partition`+"\n"+
			`mapRoles[2] (line 13): required field missing: sso.permissionSetName`)
	f("aws-auth-bad-not-configmap.yaml", ErrSyntax, `bad YAML: kind "Secret" is not ConfigMap`)
	f("plain-bad-groups-not-list.yaml", ErrBadRecord,
		`mapRoles[0] "arn:aws:iam::111122223333:role/admin" (line 3): bad record: groups must be a list of strings`)
}

// TestOneBadRecordDoesNotLockOut protects the guarantee that nobody whose record is valid loses
// access because of someone else's typo: the valid records of a document with refused records
// apply (the nodes and yaroslav here), the refused ones are named with their list, index and
// line, and a refused record that names a principal denies it rather than let a later record
// for it (system:masters here) or mapAccounts apply.
func TestOneBadRecordDoesNotLockOut(t *testing.T) {
	const name = "aws-auth-bad-one-typo.yaml"
	doc, err := ParseDocument(name, readFixture(t, name))
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	want := `mapRoles[1] "arn:aws:iam::111122223333:role/dev" (line 16): unknown template placeholder {{SessionId}} in "dev:{{SessionId}}" (known: {{AccountID}}, {{SessionName}}, {{SessionNameRaw}}, {{AccessKeyID}}, {{EC2PrivateDNSName}})` + "\n" +
		`mapRoles[2] "arn:aws:iam::111122223333:role/ops" (line 18): value is not a string: username is a number (1234); quote it if a string is meant`
	if got := fmt.Sprint(doc.Err()); got != want {
		t.Fatalf("unexpected refusals;\ngot  %q;\nwant %q", got, want)
	}
	if got := doc.Refused[0].Reason(); got != "unknown template placeholder" {
		t.Fatalf("unexpected Reason; got %q; want %q", got, "unknown template placeholder")
	}
	table, err := Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	res := staticResolver{"i-0123456789abcdef0": "ip-10-0-1-23.ec2.internal"}
	f := func(arn, wantUser string, wantErr error) {
		t.Helper()
		u, err := table.Render(context.Background(), testIdentity(t, arn), res)
		if wantErr != nil {
			if !errors.Is(err, wantErr) || !IsDenial(err) {
				t.Fatalf("unexpected error for %s; got %v; want a denial %v", arn, err, wantErr)
			}
			return
		}
		if err != nil || u.Username != wantUser {
			t.Fatalf("unexpected user for %s; got %q, %v; want %q", arn, u.Username, err, wantUser)
		}
	}
	f("arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0123456789abcdef0", "system:node:ip-10-0-1-23.ec2.internal", nil)
	f("arn:aws:iam::111122223333:user/yaroslav", "yaroslav", nil)
	f("arn:aws:sts::111122223333:assumed-role/dev/alice", "", ErrRefusedRecord)
	f("arn:aws:sts::111122223333:assumed-role/ops/alice", "", ErrRefusedRecord)
	f("arn:aws:iam::111122223333:user/other", "arn:aws:iam::111122223333:user/other", nil)
	wantWarning := name + `: mapRoles[3] "arn:aws:iam::111122223333:role/ops" is not used: mapRoles[2] of ` + name +
		` names the same principal first and is refused, which denies the principal rather than let a later record apply`
	if w := table.Warnings(); len(w) != 1 || w[0] != wantWarning {
		t.Fatalf("unexpected warnings;\ngot  %q;\nwant [%q]", w, wantWarning)
	}
	if e := table.Entries(); e.Roles != 2 || e.Users != 1 || e.Accounts != 1 {
		t.Fatalf("unexpected entries; got %+v; want 2 roles, 1 user, 1 account", e)
	}
}

// TestFixturesAllCovered keeps every fixture under test: a new fixture needs a case above.
func TestFixturesAllCovered(t *testing.T) {
	src, err := os.ReadFile("document_test.go")
	if err != nil {
		t.Fatalf("cannot read test source: %s", err)
	}
	files, _ := filepath.Glob("testdata/*")
	for _, name := range files {
		base := filepath.Base(name)
		if !strings.Contains(string(src), `"`+base+`"`) {
			t.Fatalf("fixture %s has no test case in document_test.go", base)
		}
	}
}

func TestParseDocumentLimits(t *testing.T) {
	f := func(name string, data []byte, wantIs error, wantSubstr string) {
		t.Helper()
		doc, err := ParseDocument("test", data)
		if err == nil {
			err = doc.Err()
		}
		if !errors.Is(err, wantIs) {
			t.Fatalf("%s: unexpected error kind; got %v; want %v", name, err, wantIs)
		}
		if !strings.Contains(err.Error(), wantSubstr) {
			t.Fatalf("%s: unexpected error; got %q; want it to contain %q", name, err, wantSubstr)
		}
	}
	f("too large", []byte("mapRoles: []\n#"+strings.Repeat("x", MaxDocumentSize)), ErrTooLarge, "the limit is 1048576 (1 MiB)")
	f("two documents", []byte("mapRoles: []\n---\nmapUsers: []\n"), ErrSyntax, "more than one YAML document")
	f("not a mapping", []byte("- a\n- b\n"), ErrSyntax, "must be a mapping")
	f("bad YAML", []byte("mapRoles: [\n"), ErrSyntax, "bad YAML")
	f("list is a number", []byte("mapRoles: 3\n"), ErrSyntax, "mapRoles (line 1): bad YAML: mapRoles must be a list")
	f("list text is not YAML", []byte("mapRoles: '- rolearn: ['\n"), ErrSyntax, "mapRoles: bad YAML: yaml: line 1: did not find expected node content")
	f("list text is no list", []byte("mapRoles: |\n  rolearn: x\n"), ErrSyntax, "mapRoles (line 2): bad YAML: mapRoles must hold a YAML list")
	f("record is a string", []byte("mapRoles:\n- arn:aws:iam::111122223333:role/x\n"), ErrBadRecord, "a record must be a mapping")
	f("duplicate list", []byte("mapRoles: []\nmapRoles: []\n"), ErrSyntax, "mapRoles (line 1): bad YAML: mapRoles given 2 times")
	f("line in a flow text", []byte("mapUsers: \"- userarn: x\\n  username: u\"\n"), ErrInvalidARN, `mapUsers[0] "x" (line 1 of mapUsers): invalid ARN`)
	f("boolean username", []byte("mapUsers:\n- userarn: arn:aws:iam::111122223333:user/u\n  username: true\n"), ErrNotString, "username is a boolean (true)")
	f("unclosed placeholder", []byte("mapUsers:\n- userarn: arn:aws:iam::111122223333:user/u\n  username: a{{SessionName\n"), ErrUnknownPlaceholder, "unclosed {{")
	f("spaced placeholder", []byte("mapUsers:\n- userarn: arn:aws:iam::111122223333:user/u\n  username: '{{ SessionName }}'\n"), ErrUnknownPlaceholder, "{{ SessionName }}")
	f("placeholder in group", []byte("mapUsers:\n- userarn: arn:aws:iam::111122223333:user/u\n  username: u\n  groups: ['{{Nope}}']\n"), ErrUnknownPlaceholder, "{{Nope}}")

	// Billion laughs: aliases repeating a long list are expanded under a bound.
	var b strings.Builder
	b.WriteString("x: &g [")
	for i := 0; i < 1000; i++ {
		b.WriteString("g,")
	}
	b.WriteString("g]\nmapUsers:\n")
	b.WriteString("- &r {userarn: 'arn:aws:iam::111122223333:user/u', username: u, groups: *g}\n")
	for i := 0; i < 2000; i++ {
		b.WriteString("- *r\n")
	}
	f("billion laughs", []byte(b.String()), ErrTooLarge, "more than 1048576 groups")

	// Many errors are reported up to a bound.
	b.Reset()
	b.WriteString("mapUsers:\n")
	for i := 0; i < 30; i++ {
		b.WriteString("- userarn: bad\n  username: u\n")
	}
	f("many errors", []byte(b.String()), ErrBadRecord, "and 10 more refused records")
}

func TestParseDocumentEmpty(t *testing.T) {
	f := func(data, wantWarning string) {
		t.Helper()
		doc, err := ParseDocument("test", []byte(data))
		if err != nil {
			t.Fatalf("unexpected error for %q: %s", data, err)
		}
		if doc.Len() != 0 {
			t.Fatalf("unexpected records for %q: %d", data, doc.Len())
		}
		got := strings.Join(doc.Warnings, "\n")
		if got != wantWarning {
			t.Fatalf("unexpected warnings for %q; got %q; want %q", data, got, wantWarning)
		}
	}
	f("", "the document is empty: no identity is mapped")
	f("# only a comment\n", "the document is empty: no identity is mapped")
	f("kind: ConfigMap\nmetadata: {name: aws-auth}\n", "the ConfigMap has no data: no identity is mapped")
	f("mapRoles: []\nmapUsers:\nmapAccounts: ''\n", "")
	f("mapRoles: |\n  # nothing yet\n", "")
	f("mapRoles: []\nextra: 1\n", `unknown key "extra" ignored`)
	f("kind: ConfigMap\nmetadata: {name: other}\ndata: {}\n", `the ConfigMap is named "other", not "aws-auth"; its data is used all the same`)
}

func TestParseConfigMapData(t *testing.T) {
	doc, err := ParseConfigMapData("configmap kube-system/aws-auth", map[string]string{
		"mapUsers":    "- userarn: arn:aws:iam::111122223333:user/yaroslav\n  username: yaroslav\n  groups: [system:masters]\n",
		"mapRoles":    "- rolearn: arn:aws:iam::111122223333:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n",
		"mapAccounts": "[]",
		"MapUsers":    "",
	})
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	if len(doc.Roles) != 1 || len(doc.Users) != 1 || len(doc.Accounts) != 0 {
		t.Fatalf("unexpected records: %d roles, %d users, %d accounts", len(doc.Roles), len(doc.Users), len(doc.Accounts))
	}
	want := []string{`key "MapUsers" ignored: top-level keys are case-sensitive, as in EKS; did you mean "mapUsers"?`}
	if !reflect.DeepEqual(doc.Warnings, want) {
		t.Fatalf("unexpected warnings; got %q; want %q", doc.Warnings, want)
	}
	if doc.Users[0].Source != "configmap kube-system/aws-auth" {
		t.Fatalf("unexpected source; got %q", doc.Users[0].Source)
	}
	doc, err = ParseConfigMapData("cm", map[string]string{"mapUsers": "- userarn: x\n  username: u\n"})
	if err != nil || !errors.Is(doc.Err(), ErrInvalidARN) {
		t.Fatalf("unexpected error; got %v, %v; want ErrInvalidARN in Document.Err", err, doc.Err())
	}
}

// TestKeepUnparsedLeavesItsInputsAlone: the version applied is a new document; the parsed
// version and the one in use stay as they were, even when their slices have spare room.
func TestKeepUnparsedLeavesItsInputsAlone(t *testing.T) {
	prev, err := ParseConfigMapData("prev", map[string]string{
		"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/node\n  username: node\n- rolearn: x\n  username: bad\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ParseConfigMapData("next", map[string]string{
		"mapRoles": "- rolearn: [\n",
		"mapUsers": "- userarn: y\n  username: bad\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(prev.Refused) != 1 || len(doc.Refused) != 1 || len(doc.Unparsed) != 1 {
		t.Fatalf("unexpected fixture: %d refused before, %d refused and %d unparsed after", len(prev.Refused), len(doc.Refused), len(doc.Unparsed))
	}
	// Room after the last refusal: an append that aliases would write there.
	doc.Refused = append(make([]*RecordError, 0, 8), doc.Refused...)
	spare := doc.Refused[:cap(doc.Refused)]
	warnings := len(doc.Warnings)

	eff, _ := KeepUnparsed(doc, prev)
	if len(eff.Refused) != 2 {
		t.Fatalf("want the new refusal and the kept list's, got %d", len(eff.Refused))
	}
	if len(doc.Refused) != 1 || spare[1] != nil || len(doc.Warnings) != warnings {
		t.Fatalf("KeepUnparsed wrote into the document it was given")
	}
	if len(prev.Roles) != 1 || len(prev.Refused) != 1 {
		t.Fatalf("KeepUnparsed changed the version in use")
	}
}
