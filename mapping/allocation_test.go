package mapping

import (
	"context"
	"testing"
)

// TestLookupRenderAllocs protects the request path: lookup and render of a record without
// templates allocate nothing, a templated record only its rendered string.
func TestLookupRenderAllocs(t *testing.T) {
	doc, err := ParseDocument("allocs", []byte(`
mapRoles:
- rolearn: arn:aws:iam::111122223333:role/plain
  username: plain
  groups: [a, b]
- rolearn: arn:aws:iam::111122223333:role/session
  username: admin:{{SessionName}}
  groups: [system:masters]
- rolearn: arn:aws:iam::111122223333:role/raw
  username: "{{SessionNameRaw}}"
- rolearn: arn:aws:iam::111122223333:role/node
  username: system:node:{{EC2PrivateDNSName}}
  groups: [system:bootstrappers, system:nodes]
- rolearn: arn:aws:iam::111122223333:role/grouped
  username: g
  groups: [static, "team:{{SessionName}}"]
mapAccounts: ["444455556666"]
`))
	if err != nil {
		t.Fatal(err)
	}
	table, err := Compile(doc)
	if err != nil {
		t.Fatal(err)
	}
	// The EC2 name as a cached lookup gives it: ec2.TestResolverHitAllocs (package mapping/ec2)
	// protects that the cache answers without allocating.
	res := staticResolver{"i-0123456789abcdef0": "ip-10-0-1-23.ec2.internal"}
	ctx := context.Background()
	f := func(arn string, want float64) {
		t.Helper()
		id := testIdentity(t, arn)
		if _, err := table.Render(ctx, id, res); err != nil {
			t.Fatalf("unexpected error for %s: %s", arn, err)
		}
		n := testing.AllocsPerRun(200, func() {
			if _, err := table.Render(ctx, id, res); err != nil {
				t.Fatal(err)
			}
		})
		if n != want {
			t.Fatalf("unexpected allocations for %s; got %v; want %v", arn, n, want)
		}
	}
	f("arn:aws:sts::111122223333:assumed-role/plain/alice@example.com", 0)
	f("arn:aws:sts::111122223333:assumed-role/session/alice@example.com", 1) // the username
	f("arn:aws:sts::111122223333:assumed-role/session/alice", 1)             // the username
	f("arn:aws:sts::111122223333:assumed-role/raw/alice@example.com", 0)     // the session name itself
	f("arn:aws:sts::111122223333:assumed-role/node/i-0123456789abcdef0", 1)  // the username
	f("arn:aws:sts::111122223333:assumed-role/grouped/alice", 2)             // the groups slice and one group
	f("arn:aws:iam::444455556666:user/anyone", 0)                            // mapAccounts

	// A denial allocates nothing either.
	nobody := testIdentity(t, "arn:aws:iam::111122223333:user/nobody")
	if n := testing.AllocsPerRun(200, func() { _, _ = table.Render(ctx, nobody, res) }); n != 0 {
		t.Fatalf("unexpected allocations for an unmapped identity; got %v; want 0", n)
	}
}

// TestNewIdentityAllocs protects the cold path and the cache's footprint: every string of an
// Identity lives in one allocation, whatever the kind of principal.
func TestNewIdentityAllocs(t *testing.T) {
	for _, c := range []struct{ arn, userID string }{
		{"arn:aws:sts::111122223333:assumed-role/Node-Role/i-0123456789abcdef0", "AROAEXAMPLE:i-0123456789abcdef0"},
		{"arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice", "AROAEXAMPLE:alice"},
		{"arn:aws:iam::111122223333:user/team/Alice", "AIDAEXAMPLE"},
		{"arn:aws:iam::111122223333:role/path/to/Deployer", "AROAEXAMPLE:ci"},
		{"arn:aws:iam::111122223333:root", "111122223333"},
		{"arn:aws-cn:sts::111122223333:federated-user/bob", "111122223333:bob"},
	} {
		n := testing.AllocsPerRun(100, func() {
			if _, err := NewIdentity(c.arn, "111122223333", c.userID, "AKIAEXAMPLE"); err != nil {
				t.Fatal(err)
			}
		})
		if n != 1 {
			t.Errorf("unexpected allocations for %s; got %v; want 1", c.arn, n)
		}
	}
}
