package source

import (
	"context"
	"errors"

	"github.com/iamgate/iamgate/mapping"
)

// Mapper applies the live mapping of Store, resolving {{EC2PrivateDNSName}} with Resolver: it
// is the daemon's Mapper (daemon.Mapper) of `iamgate server`.
type Mapper struct {
	Store    *Store
	Resolver mapping.InstanceResolver
}

// Ready reports whether Store has loaded a mapping (see Store.Ready).
func (m Mapper) Ready() bool { return m.Store.Ready() }

// ReadyDetail is the /readyz body below the verdict: each mapping source, its refused records
// (list, index, line, kind of error; no ARN or value) and read failures (see Store.Status).
func (m Mapper) ReadyDetail() string { return m.Store.Status() }

// Map renders the user of id with the live Table.
func (m Mapper) Map(ctx context.Context, id *mapping.Identity) (mapping.User, error) {
	t := m.Store.Table()
	if t == nil {
		return mapping.User{}, errors.New("no mapping loaded")
	}
	return t.Render(ctx, id, m.Resolver)
}
