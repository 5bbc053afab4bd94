package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/mapping"
)

// usernameOf maps arn through the store's live table ("" when not mapped).
func usernameOf(tb testing.TB, s *Store, arn string) string {
	tb.Helper()
	u, err := s.Table().Render(context.Background(), testenv.Identity(tb, arn, mapping.NewIdentity), nil)
	if err != nil {
		return ""
	}
	return u.Username
}

const aliceARN = "arn:aws:iam::111122223333:user/alice"

func userDoc(username string) string {
	return "mapUsers:\n- userarn: " + aliceARN + "\n  username: " + username + "\n"
}

func writeFile(tb testing.TB, path, data string) {
	tb.Helper()
	// Write and rename, as editors and config management do, so that no reader sees half a
	// file; the in-place case is TestFileInPlace.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// TestFileReload protects reloads of files: an edit is picked up; a version with a bad
// record applies without that record (which then grants nothing) and counts it; a version of
// which nothing can be identified is refused whole with a metric while the last good mapping
// stays live; and a fix is picked up again.
func TestFileReload(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("pollOnly=%v", poll), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mapping.yaml")
			writeFile(t, path, userDoc("alice-v1"))
			reg := prometheus.NewRegistry()
			store := NewStore(nil, NewMetrics(reg))
			src := NewFile(path, store, nil, time.Hour)
			if poll {
				src.poll, src.noWatch = 20*time.Millisecond, true
			}
			if store.Ready() {
				t.Fatalf("unexpected Ready before the file loaded")
			}
			testenv.Run(t, src.Run)
			testenv.WaitFor(t, "first load", store.Ready)
			if got := usernameOf(t, store, aliceARN); got != "alice-v1" {
				t.Fatalf("unexpected username; got %q; want %q", got, "alice-v1")
			}

			writeFile(t, path, userDoc("alice-v2"))
			testenv.WaitFor(t, "the edit", func() bool { return usernameOf(t, store, aliceARN) == "alice-v2" })

			writeFile(t, path, "mapUsers:\n- userarn: "+aliceARN+"\n  username: '{{Nope}}'\n"+
				"- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob\n")
			testenv.WaitFor(t, "the version with a bad record", func() bool { return usernameOf(t, store, "arn:aws:iam::111122223333:user/bob") == "bob" })
			if got := usernameOf(t, store, aliceARN); got != "" {
				t.Fatalf("unexpected username from a refused record; got %q; want none", got)
			}
			if got := testenv.MetricValue(t, reg, "iamgate_mapping_refused_records", "source", "file"); got != 1 {
				t.Fatalf("unexpected iamgate_mapping_refused_records; got %v; want 1", got)
			}

			writeFile(t, path, userDoc("alice-v2"))
			testenv.WaitFor(t, "the second edit", func() bool { return usernameOf(t, store, aliceARN) == "alice-v2" })
			writeFile(t, path, "mapUsers: [\n")
			testenv.WaitFor(t, "the refusal", func() bool {
				return testenv.MetricValue(t, reg, "iamgate_mapping_reloads_total", "source", "file", "result", "error") >= 1
			})
			if got := usernameOf(t, store, aliceARN); got != "alice-v2" {
				t.Fatalf("unexpected username after a bad version; got %q; want the last good %q", got, "alice-v2")
			}
			if !store.Ready() {
				t.Fatalf("unexpected not Ready after a bad version")
			}
			if got := testenv.MetricValue(t, reg, "iamgate_mapping_source_failing", "source", "file"); got != 1 {
				t.Fatalf("unexpected iamgate_mapping_source_failing; got %v; want 1", got)
			}

			os.Remove(path) // a missing file is refused too
			testenv.WaitFor(t, "the second refusal", func() bool {
				return testenv.MetricValue(t, reg, "iamgate_mapping_reloads_total", "source", "file", "result", "error") >= 2
			})
			if got := usernameOf(t, store, aliceARN); got != "alice-v2" {
				t.Fatalf("unexpected username after the file vanished; got %q; want %q", got, "alice-v2")
			}

			writeFile(t, path, userDoc("alice-v3"))
			testenv.WaitFor(t, "the fix", func() bool { return usernameOf(t, store, aliceARN) == "alice-v3" })
			if got := testenv.MetricValue(t, reg, "iamgate_mapping_entries", "kind", "user"); got != 1 {
				t.Fatalf("unexpected iamgate_mapping_entries{kind=user}; got %v; want 1", got)
			}
			for _, name := range []string{"iamgate_mapping_refused_records", "iamgate_mapping_source_failing"} {
				if got := testenv.MetricValue(t, reg, name, "source", "file"); got != 0 {
					t.Fatalf("unexpected %s after the fix; got %v; want 0", name, got)
				}
			}
		})
	}
}

func TestFileInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mapping.yaml")
	writeFile(t, path, userDoc("alice-v1"))
	store := NewStore(nil, nil)
	testenv.Run(t, NewFile(path, store, nil, time.Hour).Run)
	testenv.WaitFor(t, "first load", store.Ready)
	if err := os.WriteFile(path, []byte(userDoc("alice-v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the in-place edit", func() bool { return usernameOf(t, store, aliceARN) == "alice-v2" })
}

// TestFileSymlinkSwap protects the reload of a ConfigMap mounted as a volume: kubelet
// writes the new version into a fresh timestamped directory and atomically renames a new
// "..data" symlink over the old one; the file is a symlink through ..data.
func TestFileSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, data string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "mapping.yaml"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_27_03_00_00.1", userDoc("alice-v1"))
	if err := os.Symlink("..data/mapping.yaml", filepath.Join(dir, "mapping.yaml")); err != nil {
		t.Fatal(err)
	}
	store := NewStore(nil, nil)
	testenv.Run(t, NewFile(filepath.Join(dir, "mapping.yaml"), store, nil, time.Hour).Run)
	testenv.WaitFor(t, "first load", store.Ready)
	if got := usernameOf(t, store, aliceARN); got != "alice-v1" {
		t.Fatalf("unexpected username; got %q; want %q", got, "alice-v1")
	}
	version("..2026_11_27_03_01_00.2", userDoc("alice-v2"))
	os.RemoveAll(filepath.Join(dir, "..2026_11_27_03_00_00.1"))
	testenv.WaitFor(t, "the symlink swap", func() bool { return usernameOf(t, store, aliceARN) == "alice-v2" })
}

func awsAuth(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: mapping.AWSAuthNamespace, Name: mapping.AWSAuthName},
		Data:       data,
	}
}

// TestConfigMap protects the live ConfigMap source, through client-go's fake clientset and
// a real informer: updates apply, a bad record is refused while the rest applies, a key whose
// text does not parse keeps its last good records, deletion maps nothing, other ConfigMaps are
// ignored.
func TestConfigMap(t *testing.T) {
	client := fake.NewClientset(awsAuth(map[string]string{"mapUsers": userDoc("alice-v1")[len("mapUsers:\n"):]}))
	reg := prometheus.NewRegistry()
	store := NewStore(nil, NewMetrics(reg))
	src := NewConfigMap(client, mapping.AWSAuthNamespace, mapping.AWSAuthName, store, nil, 0)
	testenv.Run(t, src.Run)
	testenv.WaitFor(t, "first load", store.Ready)
	if got := usernameOf(t, store, aliceARN); got != "alice-v1" {
		t.Fatalf("unexpected username; got %q; want %q", got, "alice-v1")
	}
	cms := client.CoreV1().ConfigMaps(mapping.AWSAuthNamespace)
	ctx := context.Background()
	update := func(data map[string]string) {
		t.Helper()
		cm := awsAuth(data)
		cur, err := cms.Get(ctx, mapping.AWSAuthName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.ResourceVersion = cur.ResourceVersion
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	update(map[string]string{"mapUsers": "- userarn: " + aliceARN + "\n  username: alice-v2\n"})
	testenv.WaitFor(t, "the update", func() bool { return usernameOf(t, store, aliceARN) == "alice-v2" })

	update(map[string]string{"mapUsers": "- userarn: " + aliceARN + "\n  username: 1234\n",
		"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/node\n  username: node\n"})
	// The metrics are set before the version goes live: wait for the version.
	testenv.WaitFor(t, "the version with the bad record", func() bool {
		return usernameOf(t, store, "arn:aws:sts::111122223333:assumed-role/node/s") == "node"
	})
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_refused_records", "source", "configmap"); got != 1 {
		t.Fatalf("unexpected iamgate_mapping_refused_records; got %v; want 1", got)
	}
	if got := usernameOf(t, store, aliceARN); got != "" {
		t.Fatalf("unexpected username from a refused record; got %q; want none", got)
	}
	update(map[string]string{"mapUsers": "- userarn: " + aliceARN + "\n  username: alice-v2\n",
		"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/node\n  username: node\n"})
	testenv.WaitFor(t, "the fixed record", func() bool { return usernameOf(t, store, aliceARN) == "alice-v2" })
	// mapRoles does not parse: its records of the previous version stay, mapUsers applies.
	update(map[string]string{"mapUsers": "- userarn: " + aliceARN + "\n  username: alice-v3\n",
		"mapRoles": "- rolearn: [\n"})
	testenv.WaitFor(t, "the unparsed key", func() bool { return usernameOf(t, store, aliceARN) == "alice-v3" })
	if got := usernameOf(t, store, "arn:aws:sts::111122223333:assumed-role/node/s"); got != "node" {
		t.Fatalf("unexpected username of a kept list; got %q; want %q", got, "node")
	}
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_unparsed_lists", "source", "configmap"); got != 1 {
		t.Fatalf("unexpected iamgate_mapping_unparsed_lists; got %v; want 1", got)
	}

	// Another ConfigMap in kube-system changes nothing.
	other := awsAuth(map[string]string{"mapUsers": "- userarn: " + aliceARN + "\n  username: other\n"})
	other.Name = "not-aws-auth"
	if _, err := cms.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	update(map[string]string{"mapUsers": "- userarn: " + aliceARN + "\n  username: alice-v4\n"})
	testenv.WaitFor(t, "the fix", func() bool { return usernameOf(t, store, aliceARN) == "alice-v4" })
	if err := cms.Delete(ctx, "not-aws-auth", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := cms.Delete(ctx, mapping.AWSAuthName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the deletion", func() bool { return usernameOf(t, store, aliceARN) == "" })
	if !store.Ready() {
		t.Fatalf("unexpected not Ready after the ConfigMap was deleted")
	}
}

func TestConfigMapMissing(t *testing.T) {
	client := fake.NewClientset()
	store := NewStore(nil, nil)
	testenv.Run(t, NewConfigMap(client, mapping.AWSAuthNamespace, mapping.AWSAuthName, store, nil, 0).Run)
	testenv.WaitFor(t, "the empty load", store.Ready)
	if n := len(store.Table().Records()); n != 0 {
		t.Fatalf("unexpected records; got %d; want 0", n)
	}
	if _, err := client.CoreV1().ConfigMaps(mapping.AWSAuthNamespace).Create(context.Background(),
		awsAuth(map[string]string{"mapUsers": "- userarn: " + aliceARN + "\n  username: late\n"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the late ConfigMap", func() bool { return usernameOf(t, store, aliceARN) == "late" })
}

// TestStorePrecedence protects the documented precedence: the file's records before the
// ConfigMap's, and Ready only when every configured source has loaded.
func TestStorePrecedence(t *testing.T) {
	store := NewStore(nil, nil)
	store.register(KindFile)
	store.register(KindConfigMap)
	cm, err := mapping.ParseDocument("configmap", []byte(userDoc("from-configmap")+
		"- userarn: arn:aws:iam::111122223333:user/bob\n  username: bob-from-configmap\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(KindConfigMap, cm); err != nil {
		t.Fatal(err)
	}
	if store.Ready() {
		t.Fatalf("unexpected Ready before the file loaded")
	}
	if got := usernameOf(t, store, aliceARN); got != "from-configmap" {
		t.Fatalf("unexpected username; got %q; want %q", got, "from-configmap")
	}
	file, err := mapping.ParseDocument("file", []byte(userDoc("from-file")))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(KindFile, file); err != nil {
		t.Fatal(err)
	}
	if !store.Ready() {
		t.Fatalf("unexpected not Ready after both sources loaded")
	}
	if got := usernameOf(t, store, aliceARN); got != "from-file" {
		t.Fatalf("unexpected username; got %q; want %q (the file wins)", got, "from-file")
	}
	if got := usernameOf(t, store, "arn:aws:iam::111122223333:user/bob"); got != "bob-from-configmap" {
		t.Fatalf("unexpected username; got %q; want %q", got, "bob-from-configmap")
	}
	want := `configmap: mapUsers[0] "arn:aws:iam::111122223333:user/alice" is shadowed by mapUsers[0] of file, which matches the same principal and wins (aws-iam-authenticator used the last duplicate)`
	if w := store.Table().Warnings(); len(w) != 1 || w[0] != want {
		t.Fatalf("unexpected warnings; got %q; want [%q]", w, want)
	}
}

// TestStoreConcurrentReaders protects the atomic swap of a new mapping: a reader never sees a
// half-built table. Every version maps two users to names carrying the version; a reader
// resolving both from one mapping.Table must see one version. Run with -race.
func TestStoreConcurrentReaders(t *testing.T) {
	store := NewStore(nil, nil)
	doc := func(v int) *mapping.Document {
		var b []byte
		b = fmt.Appendf(b, "mapUsers:\n")
		for _, u := range []string{"alice", "bob"} {
			b = fmt.Appendf(b, "- userarn: arn:aws:iam::111122223333:user/%s\n  username: %s-v%d\n  groups: [g%d]\n", u, u, v, v)
		}
		d, err := mapping.ParseDocument("test", b)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if err := store.Update(KindFile, doc(0)); err != nil {
		t.Fatal(err)
	}
	alice := testenv.Identity(t, aliceARN, mapping.NewIdentity)
	bob := testenv.Identity(t, "arn:aws:iam::111122223333:user/bob", mapping.NewIdentity)
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				tbl := store.Table()
				a, err1 := tbl.Render(context.Background(), alice, nil)
				b, err2 := tbl.Render(context.Background(), bob, nil)
				if err1 != nil || err2 != nil {
					errs <- fmt.Errorf("unexpected errors: %v, %v", err1, err2)
					return
				}
				var va, vb, ga int
				fmt.Sscanf(a.Username, "alice-v%d", &va)
				fmt.Sscanf(b.Username, "bob-v%d", &vb)
				fmt.Sscanf(a.Groups[0], "g%d", &ga)
				if va != vb || va != ga {
					errs <- fmt.Errorf("half-built table: %q %q %q", a.Username, b.Username, a.Groups)
					return
				}
			}
		}()
	}
	for v := 1; v <= 200; v++ {
		if err := store.Update(KindFile, doc(v)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestStoreFirstLoadWithBadRecord protects the first start with a bad record: the Store is
// ready with the valid records (before, one bad record kept the daemon from ever being ready),
// and Status names the refused record by list, index and line without its ARN or values.
func TestStoreFirstLoadWithBadRecord(t *testing.T) {
	reg := prometheus.NewRegistry()
	store := NewStore(nil, NewMetrics(reg))
	client := fake.NewClientset(awsAuth(map[string]string{
		"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n" +
			"- rolearn: arn:aws:iam::111122223333:role/secret-team\n  username: 'x:{{SessionID}}'\n  groups: [top-secret]\n",
		"mapUsers": "- userarn: " + aliceARN + "\n  username: alice\n",
	}))
	testenv.Run(t, NewConfigMap(client, mapping.AWSAuthNamespace, mapping.AWSAuthName, store, nil, 0).Run)
	testenv.WaitFor(t, "the first load", store.Ready)
	if got := usernameOf(t, store, aliceARN); got != "alice" {
		t.Fatalf("unexpected username; got %q; want %q", got, "alice")
	}
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_refused_records", "source", "configmap"); got != 1 {
		t.Fatalf("unexpected iamgate_mapping_refused_records; got %v; want 1", got)
	}
	want := "configmap kube-system/aws-auth: loaded, 2 records applied, 1 refused\n" +
		"  refused mapRoles[1] (line 3 of mapRoles): unknown template placeholder\n"
	if got := store.Status(); got != want {
		t.Fatalf("unexpected Status;\ngot  %q;\nwant %q", got, want)
	}
}

// oneNode answers {{EC2PrivateDNSName}} with its name for every instance.
type oneNode string

func (n oneNode) PrivateDNSName(context.Context, string) (string, error) { return string(n), nil }

// TestStoreLaterVersions protects the documented choice for later versions with bad parts:
//   - a refused record is not applied and grants nothing, even if its previous version was
//     valid (the edit may have meant to take rights away), while the rest of the version
//     applies, revocations included: nobody whose record is valid loses access;
//   - a list whose text does not parse keeps its previous records (none can be identified,
//     so dropping them would lock out every valid record in it);
//   - a version of which nothing can be identified is refused whole.
func TestStoreLaterVersions(t *testing.T) {
	reg := prometheus.NewRegistry()
	store := NewStore(nil, NewMetrics(reg))
	store.register(KindConfigMap)
	const (
		node  = "arn:aws:sts::111122223333:assumed-role/node/i-0123456789abcdef0"
		ops   = "arn:aws:sts::111122223333:assumed-role/ops/alice"
		bob   = "arn:aws:iam::111122223333:user/bob"
		carol = "arn:aws:iam::111122223333:user/carol"
	)
	res := oneNode("ip-10-0-1-23.ec2.internal")
	user := func(arn string) string {
		t.Helper()
		u, err := store.Table().Render(context.Background(), testenv.Identity(t, arn, mapping.NewIdentity), res)
		if err != nil {
			return "denied"
		}
		return u.Username + fmt.Sprint(u.Groups)
	}
	version := func(roles, users string) {
		t.Helper()
		doc, err := mapping.ParseConfigMapData("configmap kube-system/aws-auth", map[string]string{"mapRoles": roles, "mapUsers": users})
		if err != nil {
			t.Fatalf("unexpected error: %s", err)
		}
		if err := store.Update(KindConfigMap, doc); err != nil {
			t.Fatal(err)
		}
	}
	f := func(step string, want map[string]string) {
		t.Helper()
		for arn, w := range want {
			if got := user(arn); got != w {
				t.Fatalf("%s: unexpected user of %s; got %q; want %q", step, arn, got, w)
			}
		}
	}
	nodeRole := "- rolearn: arn:aws:iam::111122223333:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:nodes]\n"
	version(nodeRole+"- rolearn: arn:aws:iam::111122223333:role/ops\n  username: ops\n  groups: [system:masters]\n",
		"- userarn: "+aliceARN+"\n  username: alice\n- userarn: "+bob+"\n  username: bob\n  groups: [system:masters]\n")
	f("v1", map[string]string{node: "system:node:ip-10-0-1-23.ec2.internal[system:nodes]", ops: "ops[system:masters]",
		aliceARN: "alice[]", bob: "bob[system:masters]", carol: "denied"})

	// v2: ops loses system:masters; bob's record gets a typo; carol is added.
	version(nodeRole+"- rolearn: arn:aws:iam::111122223333:role/ops\n  username: ops\n  groups: [view]\n",
		"- userarn: "+aliceARN+"\n  username: alice\n- userarn: "+bob+"\n  username: 1234\n  groups: [view]\n- userarn: "+carol+"\n  username: carol\n")
	f("v2", map[string]string{node: "system:node:ip-10-0-1-23.ec2.internal[system:nodes]", ops: "ops[view]",
		aliceARN: "alice[]", bob: "denied", carol: "carol[]"})

	// v3: mapUsers does not parse: its v2 records stay (bob still refused); mapRoles applies.
	version(nodeRole, "- userarn: [\n")
	f("v3", map[string]string{node: "system:node:ip-10-0-1-23.ec2.internal[system:nodes]", ops: "denied",
		aliceARN: "alice[]", bob: "denied", carol: "carol[]"})
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_unparsed_lists", "source", "configmap"); got != 1 {
		t.Fatalf("unexpected iamgate_mapping_unparsed_lists; got %v; want 1", got)
	}
	if got := testenv.MetricValue(t, reg, "iamgate_mapping_refused_records", "source", "configmap"); got != 1 {
		t.Fatalf("unexpected iamgate_mapping_refused_records (bob's, kept with mapUsers); got %v; want 1", got)
	}
	want := "configmap kube-system/aws-auth: loaded, 3 records applied, 1 refused\n" +
		"  mapUsers does not parse (bad YAML): its 2 records of the previous version stay live\n" +
		"  refused mapUsers[1] (line 3 of mapUsers): value is not a string\n"
	if got := store.Status(); got != want {
		t.Fatalf("unexpected Status;\ngot  %q;\nwant %q", got, want)
	}

	// v4: both lists parse again; v5 refused whole keeps v4.
	version(nodeRole, "- userarn: "+carol+"\n  username: carol\n")
	f("v4", map[string]string{aliceARN: "denied", carol: "carol[]"})
	store.Refuse(KindConfigMap, "configmap kube-system/aws-auth", fmt.Errorf("%w: too big", mapping.ErrTooLarge))
	f("v5", map[string]string{node: "system:node:ip-10-0-1-23.ec2.internal[system:nodes]", carol: "carol[]"})
	want = "configmap kube-system/aws-auth: loaded, 2 records applied\n" +
		"  last version refused whole (the last good version stays live): mapping document too large\n"
	if got := store.Status(); got != want {
		t.Fatalf("unexpected Status;\ngot  %q;\nwant %q", got, want)
	}

	// A list that does not parse at the first load maps nothing.
	first := NewStore(nil, nil)
	doc, err := mapping.ParseConfigMapData("cm", map[string]string{"mapRoles": "- [", "mapUsers": "- userarn: " + aliceARN + "\n  username: alice\n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Update(KindConfigMap, doc); err != nil {
		t.Fatal(err)
	}
	if len(first.Table().Records()) != 1 || !first.Ready() {
		t.Fatalf("unexpected first load with an unparsed list: %d records, ready %v", len(first.Table().Records()), first.Ready())
	}
	if w := first.Table().Warnings(); len(w) != 1 || w[0] != "cm: mapRoles does not parse: no earlier version of it was loaded, so it maps nothing" {
		t.Fatalf("unexpected warnings; got %q", w)
	}
}
