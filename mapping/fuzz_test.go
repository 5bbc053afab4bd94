package mapping

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParseDocument protects the parser of untrusted mapping documents: it never panics (the
// recover in ParseDocument is reported as a failure here), and whatever it accepts compiles;
// every explicit record is found again by its own canonical ARN and renders or denies cleanly;
// every refused record that names a principal keeps that principal from being granted by a
// later record; explain describes it all. FuzzStore (package mapping/source) applies the same
// documents to a Store.
func FuzzParseDocument(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("mapRoles: &a [*a]\n"))
	f.Add([]byte("mapUsers: \"- userarn: arn:aws:iam::111122223333:user/u\\n  username: '{{SessionName}}'\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParseDocument("fuzz", data)
		if err != nil {
			if strings.Contains(err.Error(), "YAML parser failed") {
				t.Fatalf("parser panicked: %s", err)
			}
			return
		}
		table, err := Compile(doc)
		if err != nil {
			t.Fatalf("cannot compile an accepted document: %s", err)
		}
		res := staticResolver{}
		for i, r := range table.Records() {
			if i == 20 {
				break // aliases can make many records; their checks would cost n² below
			}
			if r.List == "mapAccounts" || r.SSO != nil {
				continue
			}
			p, err := ParseARN(r.CanonicalARN)
			if err != nil {
				t.Fatalf("accepted record with a bad canonical ARN %q: %s", r.CanonicalARN, err)
			}
			userID := "AIDAFUZZ"
			if p.Kind == KindRole {
				userID = "AROAFUZZ:i-0123456789abcdef0"
				p.SessionName = "i-0123456789abcdef0"
			}
			id, err := NewIdentity(r.CanonicalARN, p.AccountID, userID, "AKIAFUZZ")
			if err != nil {
				t.Fatalf("cannot build the identity of an accepted record %q: %s", r.CanonicalARN, err)
			}
			if _, ok := table.Lookup(&id); !ok {
				t.Fatalf("record %q does not match its own ARN", r.CanonicalARN)
			}
			if _, err := table.Render(context.Background(), &id, res); err != nil && !IsDenial(err) {
				t.Fatalf("unexpected render error for %q: %s", r.CanonicalARN, err)
			}
			_ = Explain(table, r.ARN)
		}
		for i, e := range doc.Refused {
			if i == 20 {
				break
			}
			if e.Error() == "" || e.Reason() == "" {
				t.Fatalf("refusal without a description: %#v", e)
			}
			if e.principal == nil || e.principal.SSO != nil {
				continue
			}
			id := Identity{key: e.principal.key, AccountID: e.principal.AccountID}
			got, ok := table.Lookup(&id)
			if !ok {
				t.Fatalf("refused record %s does not deny its principal", e)
			}
			earlier := got.List == "mapRoles" && e.List == "mapUsers" || got.List == e.List && got.Index < e.Index
			if got.refused != e && !earlier {
				t.Fatalf("refused record %s let a later record (%s[%d]) apply", e, got.List, got.Index)
			}
		}
		_ = Explain(table, "arn:aws:iam::111122223333:user/u")
	})
}

// FuzzParseConfigMapData feeds the same parser through the ConfigMap path, and applies each
// version over a good one with KeepUnparsed, as a Store does: lists that do not parse keep the
// good version's records.
func FuzzParseConfigMapData(f *testing.F) {
	f.Add("- rolearn: arn:aws:iam::111122223333:role/r\n  username: system:node:{{EC2PrivateDNSName}}\n", "- \"111122223333\"\n")
	f.Add("- rolearn: [\n", "x")
	f.Add("- rolearn: arn:aws:iam::111122223333:role/r\n  username: 1\n- rolearn: arn:aws:iam::111122223333:role/r\n  username: r\n", "- 1")
	good, err := ParseConfigMapData("good", map[string]string{
		"mapRoles":    "- rolearn: arn:aws:iam::111122223333:role/node\n  username: node\n",
		"mapAccounts": "- \"444455556666\"\n",
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, roles, accounts string) {
		doc, err := ParseConfigMapData("fuzz", map[string]string{"mapRoles": roles, "mapAccounts": accounts})
		if err != nil {
			if strings.Contains(err.Error(), "YAML parser failed") {
				t.Fatalf("parser panicked: %s", err)
			}
			return
		}
		eff, kept := KeepUnparsed(doc, good)
		if len(kept) != len(doc.Unparsed) {
			t.Fatalf("unexpected account of the lists kept; got %q for %d unparsed lists", kept, len(doc.Unparsed))
		}
		table, err := Compile(eff)
		if err != nil {
			t.Fatalf("cannot compile a version applied over a good one: %s", err)
		}
		for _, u := range doc.Unparsed {
			if u.List == "mapRoles" {
				if _, ok := table.Lookup(testIdentity(t, "arn:aws:sts::111122223333:assumed-role/node/s")); !ok {
					t.Fatalf("an unparsed mapRoles dropped the previous version's records")
				}
			}
		}
		_ = Explain(table, "arn:aws:sts::111122223333:assumed-role/node/s")
	})
}

// FuzzNewIdentity protects the ARN canonicalisation of STS answers: no panic, and a canonical
// ARN is a fixed point.
func FuzzNewIdentity(f *testing.F) {
	f.Add("arn:aws:sts::111122223333:assumed-role/r/s", "111122223333", "AROA:s")
	f.Add("arn:aws:iam::111122223333:user/p/u", "111122223333", "AIDA")
	f.Add("arn:aws-us-gov:sts::111122223333:federated-user/f", "111122223333", "111122223333:f")
	f.Add("arn:aws:iam::111122223333:user/we!rd{path}~/a//b/u", "111122223333", "AIDA")
	f.Add("arn:aws:iam::111122223333:role//x/r", "111122223333", "AROA:s")
	f.Fuzz(func(t *testing.T, arn, account, userID string) {
		id, err := NewIdentity(arn, account, userID, "AKIA")
		if err != nil {
			if !errors.Is(err, ErrInvalidIdentity) {
				t.Fatalf("unexpected error kind: %s", err)
			}
			return
		}
		p, err := ParseARN(id.CanonicalARN)
		if err != nil {
			t.Fatalf("canonical ARN %q does not parse: %s", id.CanonicalARN, err)
		}
		if c := p.Canonical(); c != id.CanonicalARN {
			t.Fatalf("canonical ARN is not a fixed point; got %q; want %q", c, id.CanonicalARN)
		}
		// The packed strings are the ones their definitions give.
		in, _ := ParseARN(arn)
		principal, session := userID, ""
		if in.Kind == KindRole {
			principal, session, _ = strings.Cut(userID, ":")
		}
		key := strings.ToLower(in.Canonical())
		sso := ""
		if in.Kind == KindRole {
			key = strings.ToLower("arn:" + in.Partition + ":iam::" + in.AccountID + ":role/" + in.Name)
			if ps := ssoPermissionSet(in.Name); ps != "" {
				sso = ssoKey(in.Partition, in.AccountID, ps)
			}
		}
		got := []string{id.ARN, id.CanonicalARN, id.Partition, id.AccountID, id.UserID, id.PrincipalID, id.SessionName, id.AccessKeyID, id.key, id.ssoKey}
		want := []string{arn, in.Canonical(), in.Partition, in.AccountID, userID, principal, session, "AKIA", key, sso}
		if !slices.Equal(got, want) {
			t.Fatalf("unexpected identity strings\ngot  %q\nwant %q", got, want)
		}
	})
}
