package source

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/iamgate/iamgate/mapping"
)

// FuzzStore applies what the parser accepts to a Store the way the sources do: a file version
// (applied twice, as a re-read would), then a ConfigMap version over a good one. No version the
// parser accepts makes Update fail, the Store is ready after it, and Status and explain describe
// the result. What a version means is fuzzed in package mapping (FuzzParseDocument,
// FuzzParseConfigMapData).
func FuzzStore(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "*"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "", "")
	}
	f.Add([]byte("mapRoles: &a [*a]\n"), "- rolearn: arn:aws:iam::111122223333:role/r\n  username: system:node:{{EC2PrivateDNSName}}\n", "- \"111122223333\"\n")
	f.Add([]byte(nil), "- rolearn: [\n", "x")
	f.Add([]byte(nil), "- rolearn: arn:aws:iam::111122223333:role/r\n  username: 1\n- rolearn: arn:aws:iam::111122223333:role/r\n  username: r\n", "- 1")
	good, err := mapping.ParseConfigMapData("good", map[string]string{
		"mapRoles":    "- rolearn: arn:aws:iam::111122223333:role/node\n  username: node\n",
		"mapAccounts": "- \"444455556666\"\n",
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, roles, accounts string) {
		store := NewStore(nil, nil)
		if doc, err := mapping.ParseDocument("fuzz", data); err == nil {
			for range 2 {
				if err := store.Update(KindFile, doc); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := store.Update(KindConfigMap, good); err != nil {
			t.Fatal(err)
		}
		if doc, err := mapping.ParseConfigMapData("fuzz", map[string]string{"mapRoles": roles, "mapAccounts": accounts}); err == nil {
			if err := store.Update(KindConfigMap, doc); err != nil {
				t.Fatal(err)
			}
		}
		if !store.Ready() || store.Status() == "" {
			t.Fatalf("unexpected Store after an update: ready %v, status %q", store.Ready(), store.Status())
		}
		_ = mapping.Explain(store.Table(), "arn:aws:sts::111122223333:assumed-role/node/s")
	})
}
