// Package mappingtest is what the tests that run a daemon share about the mapping: one
// compiled table as the daemon's Mapper, without the sources and reloads of mapping/source.
// It is apart from internal/testenv, which the mapping package's own tests import.
package mappingtest

import (
	"context"
	"testing"

	"github.com/iamgate/iamgate/mapping"
)

// Mapper maps every identity with Table. Without a table it is not ready, as a Store before
// its first mapping.
type Mapper struct{ Table *mapping.Table }

// Ready reports whether there is a table.
func (m Mapper) Ready() bool { return m.Table != nil }

// Map renders the user of id from the table.
func (m Mapper) Map(ctx context.Context, id *mapping.Identity) (mapping.User, error) {
	return m.Table.Render(ctx, id, nil)
}

// Compile parses and compiles an aws-auth mapping document, failing tb when it is refused.
func Compile(tb testing.TB, yaml string) *mapping.Table {
	tb.Helper()
	doc, err := mapping.ParseDocument("test", []byte(yaml))
	if err != nil {
		tb.Fatalf("cannot parse mapping: %s", err)
	}
	table, err := mapping.Compile(doc)
	if err != nil {
		tb.Fatalf("cannot compile mapping: %s", err)
	}
	return table
}
