package mapping

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// benchRecords is the size of the benchmark mapping: 10,000 records.
const benchRecords = 10_000

// benchDocument builds a mapping of benchRecords records: 6,000 roles (every other one with a
// {{SessionName}} username), 3,000 users, 500 SSO permission sets and 500 accounts.
func benchDocument(tb testing.TB) []byte {
	tb.Helper()
	var b strings.Builder
	b.WriteString("mapRoles:\n")
	for i := 0; i < 6000; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, "- rolearn: arn:aws:iam::111122223333:role/team-%d\n  username: team-%d\n  groups: [team-%d, viewers]\n", i, i, i)
		} else {
			fmt.Fprintf(&b, "- rolearn: arn:aws:iam::111122223333:role/team-%d\n  username: 'team-%d:{{SessionName}}'\n  groups: [team-%d, viewers]\n", i, i, i)
		}
	}
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "- sso: {permissionSetName: Set%d, accountID: '111122223333'}\n  username: 'sso:{{SessionName}}'\n  groups: [set-%d]\n", i, i)
	}
	b.WriteString("mapUsers:\n")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&b, "- userarn: arn:aws:iam::111122223333:user/user-%d\n  username: user-%d\n  groups: [users]\n", i, i)
	}
	b.WriteString("mapAccounts:\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "- '%012d'\n", 500000000000+i)
	}
	return []byte(b.String())
}

type benchCase struct {
	name string
	arn  func(i int) string // the i-th identity of the case
}

var benchCases = []benchCase{
	{"plain", func(i int) string {
		return fmt.Sprintf("arn:aws:sts::111122223333:assumed-role/team-%d/alice", (i*2)%6000)
	}},
	{"session", func(i int) string {
		return fmt.Sprintf("arn:aws:sts::111122223333:assumed-role/team-%d/alice@example.com", (i*2+1)%6000)
	}},
	{"user", func(i int) string { return fmt.Sprintf("arn:aws:iam::111122223333:user/user-%d", i%3000) }},
	{"unmapped", func(i int) string { return fmt.Sprintf("arn:aws:iam::222233334444:user/nobody-%d", i) }},
}

// benchIdentities returns 1,024 identities of c, spread over the table.
func benchIdentities(tb testing.TB, c benchCase) []*Identity {
	ids := make([]*Identity, 1024)
	for i := range ids {
		ids[i] = testIdentity(tb, c.arn(i*7))
	}
	return ids
}

// BenchmarkMap measures lookup + render per request on a 10,000-record table, next to
// BenchmarkMapBaseline (a linear scan with string replacement, the obvious way).
func BenchmarkMap(b *testing.B) {
	doc, err := ParseDocument("bench", benchDocument(b))
	if err != nil {
		b.Fatal(err)
	}
	if doc.Len() != benchRecords {
		b.Fatalf("unexpected record count %d", doc.Len())
	}
	table, err := Compile(doc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range benchCases {
		ids := benchIdentities(b, c)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_, _ = table.Render(ctx, ids[i&1023], nil)
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			var seed atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(97))
				for pb.Next() {
					_, _ = table.Render(ctx, ids[i&1023], nil)
					i++
				}
			})
		})
	}
}

// baselineRecord and baselineMap are the obvious way: canonicalise the ARN with string
// splitting, scan the records comparing ARNs case-insensitively, and render with
// strings.ReplaceAll.
type baselineRecord struct {
	arn, username string
	groups        []string
}

func baselineCanonical(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
		res := strings.Split(parts[5], "/")
		return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + res[1]
	}
	return arn
}

func baselineMap(records []baselineRecord, accounts []string, id *Identity) (User, bool) {
	canonical := baselineCanonical(id.ARN)
	for i := range records {
		r := &records[i]
		if strings.EqualFold(r.arn, canonical) {
			username := strings.ReplaceAll(r.username, "{{SessionName}}", strings.ReplaceAll(id.SessionName, "@", "-"))
			username = strings.ReplaceAll(username, "{{AccountID}}", id.AccountID)
			return User{Username: username, Groups: append([]string(nil), r.groups...)}, true
		}
	}
	for _, a := range accounts {
		if a == id.AccountID {
			return User{Username: canonical}, true
		}
	}
	return User{}, false
}

func BenchmarkMapBaseline(b *testing.B) {
	doc, err := ParseDocument("bench", benchDocument(b))
	if err != nil {
		b.Fatal(err)
	}
	var records []baselineRecord
	var accounts []string
	for _, r := range append(append([]*Record{}, doc.Roles...), doc.Users...) {
		if r.SSO == nil {
			records = append(records, baselineRecord{arn: r.ARN, username: r.Username, groups: r.Groups})
		}
	}
	for _, r := range doc.Accounts {
		accounts = append(accounts, r.AccountID)
	}
	for _, c := range benchCases {
		ids := benchIdentities(b, c)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_, _ = baselineMap(records, accounts, ids[i&1023])
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			var seed atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(97))
				for pb.Next() {
					_, _ = baselineMap(records, accounts, ids[i&1023])
					i++
				}
			})
		})
	}
}

// BenchmarkParseDocument measures a reload: parsing and compiling the 10,000-record mapping.
func BenchmarkParseDocument(b *testing.B) {
	data := benchDocument(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		doc, err := ParseDocument("bench", data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(doc); err != nil {
			b.Fatal(err)
		}
	}
}
