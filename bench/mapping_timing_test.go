package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/iamgate/iamgate/mapping"
)

// The mapping benchmarks look up and render a user in a table of 1000 roles, 1000 users and
// one account, as the daemon does on every review (after the cache).

func benchTable(b *testing.B) *mapping.Table {
	var sb strings.Builder
	sb.WriteString("mapRoles:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "  - rolearn: arn:aws:iam::111122223333:role/team-%04d\n    username: team-%04d:{{SessionName}}\n    groups: [team-%04d, dev]\n", i, i, i)
	}
	sb.WriteString("mapUsers:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "  - userarn: arn:aws:iam::111122223333:user/user-%04d\n    username: user-%04d\n    groups: [dev]\n", i, i)
	}
	sb.WriteString("mapAccounts:\n  - \"123456789012\"\n")
	doc, err := mapping.ParseDocument("bench", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	t, err := mapping.Compile(doc)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func benchMapping(b *testing.B, arn, userID string) {
	t := benchTable(b)
	id, err := mapping.NewIdentity(arn, arn[13:25], userID, "AKIAIOSFODNN7EXAMPLE")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Render(ctx, &id, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMappingAssumedRole maps an assumed role with a {{SessionName}} template.
func BenchmarkMappingAssumedRole(b *testing.B) {
	benchMapping(b, "arn:aws:sts::111122223333:assumed-role/team-0500/alice@example.com", "AROAEXAMPLEROLEID0500:alice@example.com")
}

// BenchmarkMappingUser maps an IAM user with a fixed username.
func BenchmarkMappingUser(b *testing.B) {
	benchMapping(b, "arn:aws:iam::111122223333:user/user-0500", "AIDAEXAMPLEUSER00500")
}

// BenchmarkMappingAccount maps a principal through mapAccounts (the last lookup).
func BenchmarkMappingAccount(b *testing.B) {
	benchMapping(b, "arn:aws:iam::123456789012:user/bench/bench-000001", "AIDAEXAMPLEUSER00001")
}
