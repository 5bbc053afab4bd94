package mapping

import (
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoIO keeps package mapping the logic alone: no file system, network, logging, metrics,
// client-go or AWS SDK. What reads, watches and swaps the mapping belongs in mapping/source,
// EC2 lookups in mapping/ec2 (reached through InstanceResolver).
func TestNoIO(t *testing.T) {
	denied := []string{"os", "io/fs", "path/filepath", "net", "syscall", "log", "log/slog",
		"k8s.io/", "github.com/fsnotify/", "github.com/aws/", "github.com/prometheus/"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(token.NewFileSet(), name, nil, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, d := range denied {
				if path == d || strings.HasPrefix(path, strings.TrimSuffix(d, "/")+"/") {
					t.Errorf("%s imports %q: package mapping does no I/O (see doc.go)", name, path)
				}
			}
		}
	}
}
