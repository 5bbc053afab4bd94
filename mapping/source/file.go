package source

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/iamgate/iamgate/mapping"
)

// ReadFile reads and parses the mapping file at path (at most mapping.MaxDocumentSize bytes).
func ReadFile(path string) (*mapping.Document, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	doc, err := mapping.ParseDocument("file "+path, data)
	if err != nil {
		return nil, fmt.Errorf("cannot parse -mapping.file=%q: %w", path, err)
	}
	return doc, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read -mapping.file=%q: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, mapping.MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read -mapping.file=%q: %w", path, err)
	}
	if len(data) > mapping.MaxDocumentSize {
		return nil, fmt.Errorf("cannot read -mapping.file=%q: %w: more than %d bytes (1 MiB)", path, mapping.ErrTooLarge, mapping.MaxDocumentSize)
	}
	return data, nil
}

// File feeds a Store from a mapping file and re-reads it when it changes (see docs/design.md: Mapping). It
// watches the file's directory, not the file, so that it sees the atomic "..data" symlink swap
// Kubernetes does for a mounted ConfigMap, editors that replace the file by a rename, and a
// file created after the start; it also polls, in case the watch misses something (network
// file systems) or cannot be set up.
type File struct {
	path    string
	store   *Store
	log     *slog.Logger
	poll    time.Duration
	debounc time.Duration
	noWatch bool // tests: poll only

	digest [sha256.Size]byte // of the last content read, good or bad; owned by Run
	read   bool              // digest is set; owned by Run
}

// NewFile returns the source of the file at path for store, polling every poll (default
// 10s). It registers with store: the Store is not Ready until the file has loaded.
func NewFile(path string, store *Store, log *slog.Logger, poll time.Duration) *File {
	if poll <= 0 {
		poll = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store.register(KindFile)
	return &File{path: path, store: store, log: log, poll: poll, debounc: 50 * time.Millisecond}
}

// Load reads the file once and updates the Store. It returns the error of a refused version
// (the Store keeps the last good one); an unchanged file is not parsed again.
func (s *File) Load() error {
	data, err := readLimited(s.path)
	if err != nil {
		s.store.Refuse(KindFile, "file "+s.path, err)
		return err
	}
	sum := sha256.Sum256(data)
	if s.read && sum == s.digest {
		s.store.unchanged(KindFile)
		return nil
	}
	s.digest, s.read = sum, true
	doc, err := mapping.ParseDocument("file "+s.path, data)
	if err != nil {
		err = fmt.Errorf("cannot parse -mapping.file=%q: %w", s.path, err)
		s.store.Refuse(KindFile, "file "+s.path, err)
		return err
	}
	return s.store.Update(KindFile, doc)
}

// Run loads the file, then re-loads it on every change until ctx is done. Load errors are
// logged and counted by the Store; Run returns only ctx's error. Run must not be called
// concurrently with itself or Load.
func (s *File) Run(ctx context.Context) error {
	_ = s.Load()
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err == nil && s.noWatch {
		w.Close()
		err = fmt.Errorf("watching disabled")
	}
	if err == nil {
		err = w.Add(filepath.Dir(s.path))
	}
	if err != nil {
		s.log.Warn("cannot watch the mapping file's directory; polling only", "path", s.path, "poll", s.poll, "error", err)
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	// Events come in bursts (a symlink swap is several); read once they settle.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	base := filepath.Base(s.path)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if name := filepath.Base(ev.Name); name == base || name == "..data" {
				debounce.Reset(s.debounc)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.log.Warn("mapping file watch error; polling continues", "path", s.path, "error", err)
		case <-debounce.C:
			_ = s.Load()
		case <-tick.C:
			_ = s.Load()
		}
	}
}
