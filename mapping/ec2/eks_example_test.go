package ec2

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/mapping/source"
)

// TestEKSExampleScenario is a typical EKS cluster's mapping end to end across the mapping
// packages: the aws-auth manifest maps the node group's role to
// system:node:{{EC2PrivateDNSName}} and yaroslav to system:masters. The node's assumed-role
// identity resolves through this package's Resolver (the real aws-sdk-go-v2 client against the
// fake STS's EC2 API, which checks the client's SigV4 signature like AWS) to its private DNS
// name; yaroslav maps; an unmapped user is denied, and explain says why. The manifest is loaded
// both as a mapping file and as the live ConfigMap (through client-go's fake clientset) by the
// sources of package mapping/source.
func TestEKSExampleScenario(t *testing.T) {
	const (
		node     = "i-0a1b2c3d4e5f60718"
		nodeDNS  = "ip-192-168-12-34.eu-west-1.compute.internal"
		nodeARN  = "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/" + node
		yaroslav = "arn:aws:iam::111122223333:user/yaroslav"
		mallory  = "arn:aws:iam::111122223333:user/mallory"
	)
	ec2URL := startFakeEC2(t, fakests.Instance{InstanceID: node, PrivateDNSName: nodeDNS}).URL()

	res, err := NewResolver(Config{Client: newEC2Client(ec2URL), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	fixture := filepath.Join("..", "testdata", "aws-auth-good-eks-example.yaml")
	manifest, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(manifest, &cm); err != nil {
		t.Fatalf("cannot decode the manifest as a ConfigMap: %s", err)
	}

	stores := map[string]*source.Store{}
	fileStore := source.NewStore(nil, nil)
	testenv.Run(t, source.NewFile(fixture, fileStore, nil, time.Hour).Run)
	stores["file"] = fileStore
	cmStore := source.NewStore(nil, nil)
	testenv.Run(t, source.NewConfigMap(fake.NewClientset(&cm), mapping.AWSAuthNamespace, mapping.AWSAuthName, cmStore, nil, 0).Run)
	stores["configmap"] = cmStore

	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			testenv.WaitFor(t, "the mapping", store.Ready)
			table := store.Table()
			ctx := context.Background()
			f := func(arn, wantUser, wantGroups string) {
				t.Helper()
				u, err := table.Render(ctx, testenv.Identity(t, arn, mapping.NewIdentity), res)
				if err != nil {
					t.Fatalf("unexpected error for %s: %s", arn, err)
				}
				if u.Username != wantUser || strings.Join(u.Groups, ",") != wantGroups {
					t.Fatalf("unexpected user for %s; got %q %q; want %q %q", arn, u.Username, u.Groups, wantUser, wantGroups)
				}
			}
			f(nodeARN, "system:node:"+nodeDNS, "system:bootstrappers,system:nodes")
			f(yaroslav, "yaroslav", "system:masters")

			_, err := table.Render(ctx, testenv.Identity(t, mallory, mapping.NewIdentity), res)
			if !errors.Is(err, mapping.ErrNotMapped) || !mapping.IsDenial(err) {
				t.Fatalf("unexpected answer for an unmapped user; got %v; want mapping.ErrNotMapped", err)
			}
			e := mapping.Explain(table, mallory)
			if e.Result != "not_mapped" {
				t.Fatalf("unexpected explain result; got %q; want %q", e.Result, "not_mapped")
			}
			var text strings.Builder
			if err := e.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"NOT MAPPED", `You must be logged in to the server (Unauthorized)`, "no record names this principal"} {
				if !strings.Contains(text.String(), want) {
					t.Fatalf("unexpected explain text; got:\n%s\nwant it to contain %q", text.String(), want)
				}
			}
			// yaroslav from another account: explain names the record that comes nearest.
			e = mapping.Explain(table, "arn:aws:iam::444455556666:user/yaroslav")
			if len(e.Nearest) != 1 || e.Nearest[0].Record.ARN != yaroslav {
				t.Fatalf("unexpected nearest records: %+v", e.Nearest)
			}
		})
	}
}
