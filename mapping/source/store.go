package source

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/iamgate/iamgate/mapping"
)

// Kind is a kind of source a Store merges; it is also the value of the metrics' source label.
type Kind string

// The kinds of source, in precedence order: the file's records before the ConfigMap's.
const (
	KindFile      Kind = "file"
	KindConfigMap Kind = "configmap"
)

var sourceOrder = [...]Kind{KindFile, KindConfigMap}

func sourceSlot(source Kind) int {
	for i, s := range sourceOrder {
		if s == source {
			return i
		}
	}
	panic(fmt.Sprintf("BUG: unknown mapping source %q", source))
}

// maxLogged bounds the refused records logged, and listed by Status, per version.
const maxLogged = 20

// Store holds the live mapping.Table, rebuilt whole and swapped atomically whenever a source
// delivers a new version: a request sees either the old or the new mapping whole.
//
// What a version with bad parts does (the same at first load and later, see README):
//   - a refused record is not applied, and the version's valid records are: nobody whose
//     record is valid loses access because of someone else's typo, and a revocation made in
//     the same edit takes effect. A refused record that names a principal denies it (see
//     mapping.Table);
//   - a list whose text does not parse (no record of it can be identified) keeps its records
//     from the source's previous version, or maps nothing when there is none;
//   - a version of which nothing can be identified (not YAML, over the limits, an unreadable
//     file) is refused whole: the source's previous version stays live.
//
// Each case is logged at Error, counted in the metrics and listed by Status (/readyz).
//
// Precedence when both sources are configured: the mapping file's records first, then the
// ConfigMap's (see mapping.Table for the order inside). The file is what the operator of
// iamgate controls; the ConfigMap is what anyone with edit rights in kube-system controls.
//
// Table is safe to call from any goroutine at any rate; updates are serialised.
type Store struct {
	log     *slog.Logger
	metrics *Metrics
	table   atomic.Pointer[mapping.Table]
	ready   atomic.Bool

	mu  sync.Mutex                    // serialises updates; guards src
	src [len(sourceOrder)]sourceState // by sourceSlot
}

// sourceState is what the Store knows of one source; guarded by Store.mu.
type sourceState struct {
	registered bool
	loaded     bool              // a version has been applied
	name       string            // Document.Source of the last version, or the name given to Refuse
	doc        *mapping.Document // the live version, with lists kept from earlier versions
	kept       []string          // lists of doc kept from an earlier version, with what failed
	refusedErr error             // the last version refused whole, until a version applies
	failing    string            // why the source cannot be read now ("" when it can)
	failures   int               // consecutive failures to read the source
	gaveUp     bool              // failing past its bound: no longer holds readiness back
}

// NewStore returns an empty Store. log and metrics may be nil.
func NewStore(log *slog.Logger, metrics *Metrics) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, metrics: metrics}
}

// Table returns the live Table; nil (which maps nothing) until Ready. The Table is immutable.
func (s *Store) Table() *mapping.Table { return s.table.Load() }

// Ready reports whether a mapping is loaded: at least one registered source has applied a
// version, and every other registered source has too or has been failing past its bound (a
// ConfigMap that cannot be read must not keep the mapping file's records, which an operator
// may need to fix it, from applying).
func (s *Store) Ready() bool { return s.ready.Load() }

// register declares that source will feed the Store; Ready waits for it.
func (s *Store) register(source Kind) {
	i := sourceSlot(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.src[i].registered = true
	s.updateReadyLocked()
}

func (s *Store) updateReadyLocked() {
	loaded := false
	for _, st := range s.src {
		switch {
		case st.loaded:
			loaded = true
		case st.registered && !st.gaveUp:
			s.ready.Store(false)
			return
		}
	}
	s.ready.Store(loaded)
}

// Update installs doc as source's current version, rebuilds the Table and swaps it in. The
// valid records of doc apply; its refused records are logged and counted; a list of doc that
// does not parse keeps its records from the source's previous version.
func (s *Store) Update(source Kind, doc *mapping.Document) error {
	i := sourceSlot(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.src[i]
	eff, kept := mapping.KeepUnparsed(doc, st.doc)
	var docs [len(sourceOrder)]*mapping.Document
	for j := range s.src {
		docs[j] = s.src[j].doc
	}
	docs[i] = eff
	t, err := mapping.Compile(docs[:]...)
	if err != nil {
		s.metrics.reload(source, reloadError)
		s.log.Error("mapping version refused; the last good mapping stays live", "source", doc.Source, "error", err)
		return err
	}
	st.doc, st.kept, st.name, st.loaded, st.refusedErr = eff, kept, doc.Source, true, nil
	s.metrics.setFailing(source, st.failing != "")
	s.metrics.reload(source, reloadOK)
	s.metrics.setEntries(t.Entries())
	s.metrics.setRefused(source, len(eff.Refused), len(eff.Unparsed))
	// The table goes live after its metrics: whoever sees it (a review, a test) sees them too.
	s.table.Store(t)
	e := t.Entries()
	s.log.Info("mapping loaded", "source", doc.Source, "records", eff.Len(),
		"roles", e.Roles, "users", e.Users, "sso", e.SSO, "accounts", e.Accounts,
		"refused", len(eff.Refused), "unparsed", len(eff.Unparsed), "warnings", len(t.Warnings()))
	for k, u := range doc.Unparsed {
		s.log.Error("mapping list does not parse: "+kept[k], "source", doc.Source,
			"list", u.List, "line", u.Line, "error", u.Err)
	}
	for k, r := range doc.Refused {
		if k == maxLogged {
			s.log.Error("more mapping records refused", "source", doc.Source, "count", len(doc.Refused)-k)
			break
		}
		s.log.Error("mapping record refused; the other records apply", "source", doc.Source,
			"list", r.List, "index", r.Index, "line", r.Line, "arn", mapping.Clip(r.ARN), "error", r.Err)
	}
	for _, w := range doc.Warnings {
		s.log.Warn("mapping warning", "source", doc.Source, "warning", w)
	}
	s.updateReadyLocked()
	return nil
}

// Refuse records a version of source refused whole (nothing in it could be identified, or it
// could not be read): it is logged and counted, and the source's last good version stays live.
// name is the version's Document.Source.
func (s *Store) Refuse(source Kind, name string, err error) {
	i := sourceSlot(source)
	s.log.Error("mapping version refused; the last good mapping stays live", "source", name, "error", err)
	s.mu.Lock()
	s.src[i].name, s.src[i].refusedErr = name, err
	s.mu.Unlock()
	s.metrics.setFailing(source, true)
	// Counted last: whoever sees the count sees the gauge and Status say so too.
	s.metrics.reload(source, reloadError)
}

// unchanged counts a re-read with the same content.
func (s *Store) unchanged(source Kind) {
	s.metrics.reload(source, reloadUnchanged)
}

// sourceFailing records that source cannot be read now (reason has no secrets; it is shown by
// Status). gaveUp means it has been failing past its bound: it stops holding readiness back.
// sourceFailing(source, "", false) records that it can be read again.
func (s *Store) sourceFailing(source Kind, name, reason string, gaveUp bool) {
	i := sourceSlot(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.src[i]
	st.name = name
	s.metrics.setFailing(source, reason != "" || st.refusedErr != nil)
	if reason == "" {
		st.failing, st.failures, st.gaveUp = "", 0, false
	} else {
		st.failing = reason
		st.failures++
		st.gaveUp = st.gaveUp || gaveUp
	}
	s.updateReadyLocked()
}

// Status describes the mapping for operators (iamgate shows it on /readyz): whether it is
// ready, and per source what is live, which records are refused (by list, index, line and
// kind of error; never an ARN, a username or a group) and why a source cannot be read.
func (s *Store) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for i, st := range s.src {
		if !st.registered && !st.loaded {
			continue
		}
		name := st.name
		if name == "" {
			name = string(sourceOrder[i])
		}
		b.WriteString(name + ": ")
		switch {
		case st.loaded:
			fmt.Fprintf(&b, "loaded, %d records applied", st.doc.Len())
			if n := len(st.doc.Refused); n > 0 {
				fmt.Fprintf(&b, ", %d refused", n)
			}
		default:
			b.WriteString("not loaded")
		}
		b.WriteString("\n")
		if st.failing != "" {
			fmt.Fprintf(&b, "  cannot be read (%d attempts failed; retrying): %s\n", st.failures, st.failing)
		}
		if st.refusedErr != nil {
			what := "the last good version stays live"
			if !st.loaded {
				what = "no version is loaded"
			}
			fmt.Fprintf(&b, "  last version refused whole (%s): %s\n", what, mapping.Reason(st.refusedErr))
		}
		if st.doc == nil {
			continue
		}
		for k, u := range st.doc.Unparsed {
			fmt.Fprintf(&b, "  %s does not parse (%s): %s\n", u.List, u.Reason(), st.kept[k])
		}
		for k, r := range st.doc.Refused {
			if k == maxLogged {
				fmt.Fprintf(&b, "  and %d more refused records\n", len(st.doc.Refused)-k)
				break
			}
			b.WriteString("  refused " + r.List + "[" + strconv.Itoa(r.Index) + "]")
			if r.Line > 0 {
				b.WriteString(" (" + r.Where() + ")")
			}
			b.WriteString(": " + r.Reason() + "\n")
		}
	}
	return b.String()
}
