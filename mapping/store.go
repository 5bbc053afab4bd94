package mapping

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// sources in precedence order: the file's records before the ConfigMap's.
var sourceOrder = [...]string{SourceFile, SourceConfigMap}

func sourceSlot(source string) int {
	for i, s := range sourceOrder {
		if s == source {
			return i
		}
	}
	panic(fmt.Sprintf("BUG: unknown mapping source %q", source))
}

// Store holds the live Table, rebuilt whole and swapped atomically (SPEC [M5]) whenever a source
// delivers a new good Document. A refused version changes nothing: each source's last good
// Document stays in the Table.
//
// Precedence when both sources are configured: the mapping file's records first, then the
// ConfigMap's (see Table for the order inside). The file is what the operator of iamgate
// controls; the ConfigMap is what anyone with edit rights in kube-system controls.
//
// Table is safe to call from any goroutine at any rate; updates are serialised.
type Store struct {
	log     *slog.Logger
	metrics *Metrics
	table   atomic.Pointer[Table]

	mu         sync.Mutex                  // serialises updates
	docs       [len(sourceOrder)]*Document // last good document per source; guarded by mu
	registered [len(sourceOrder)]bool      // guarded by mu
	loaded     [len(sourceOrder)]bool      // guarded by mu
	ready      atomic.Bool
}

// NewStore returns an empty Store. log and metrics may be nil.
func NewStore(log *slog.Logger, metrics *Metrics) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, metrics: metrics}
}

// Table returns the live Table; nil (which maps nothing) until Ready. The Table is immutable.
func (s *Store) Table() *Table { return s.table.Load() }

// Ready reports whether every registered source has loaded a good version at least once.
func (s *Store) Ready() bool { return s.ready.Load() }

// register declares that source will feed the Store; Ready waits for it.
func (s *Store) register(source string) {
	i := sourceSlot(source)
	s.mu.Lock()
	s.registered[i] = true
	s.ready.Store(false)
	for j := range s.registered {
		if s.registered[j] && !s.loaded[j] {
			s.mu.Unlock()
			return
		}
	}
	s.ready.Store(true)
	s.mu.Unlock()
}

// Update installs doc as source's current version, rebuilds the Table and swaps it in.
func (s *Store) Update(source string, doc *Document) error {
	i := sourceSlot(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	docs := s.docs
	docs[i] = doc
	t, err := Compile(docs[:]...)
	if err != nil {
		s.metrics.reload(source, reloadError)
		s.log.Error("mapping version refused; the last good mapping stays live", "source", doc.Source, "error", err)
		return err
	}
	s.docs = docs
	s.loaded[i] = true
	s.table.Store(t)
	s.metrics.reload(source, reloadOK)
	s.metrics.setEntries(t.Entries())
	e := t.Entries()
	s.log.Info("mapping loaded", "source", doc.Source, "records", doc.Len(),
		"roles", e.Roles, "users", e.Users, "sso", e.SSO, "accounts", e.Accounts, "warnings", len(t.Warnings()))
	for _, w := range doc.Warnings {
		s.log.Warn("mapping warning", "source", doc.Source, "warning", w)
	}
	ready := true
	for j := range s.registered {
		if s.registered[j] && !s.loaded[j] {
			ready = false
		}
	}
	s.ready.Store(ready)
	return nil
}

// Refuse records a bad new version of source: it is logged and counted, and the last good
// Table stays live.
func (s *Store) Refuse(source, name string, err error) {
	sourceSlot(source)
	s.metrics.reload(source, reloadError)
	s.log.Error("mapping version refused; the last good mapping stays live", "source", name, "error", err)
}

// unchanged counts a re-read with the same content.
func (s *Store) unchanged(source string) {
	s.metrics.reload(source, reloadUnchanged)
}
