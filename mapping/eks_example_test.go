package mapping

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
)

// startFakeEC2 serves DescribeInstances for instances from the fake STS, which accepts the
// signature of newEC2Client's key; its URL() is the endpoint.
func startFakeEC2(t *testing.T, instances ...fakests.Instance) *fakests.Server {
	t.Helper()
	srv, err := fakests.New(fakests.Config{
		Users: []fakests.User{{ARN: "arn:aws:iam::111122223333:user/iamgate", AccessKeyID: "AKIAIOSFODNN7EXAMPLE",
			SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		Instances: instances,
	}, fakests.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// TestEKSExampleScenario is a typical EKS cluster's mapping end to end inside the package: the aws-auth
// manifest maps the node group's role to system:node:{{EC2PrivateDNSName}} and yaroslav to
// system:masters. The node's assumed-role identity resolves through EC2 (the real
// aws-sdk-go-v2 client against the fake STS's EC2 API, which checks the client's SigV4
// signature like AWS) to its private DNS name; yaroslav maps; an
// unmapped user is denied, and explain says why. The manifest is loaded both as a mapping file
// and as the live ConfigMap (through client-go's fake clientset).
func TestEKSExampleScenario(t *testing.T) {
	const (
		node     = "i-0a1b2c3d4e5f60718"
		nodeDNS  = "ip-192-168-12-34.eu-west-1.compute.internal"
		nodeARN  = "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/" + node
		yaroslav = "arn:aws:iam::111122223333:user/yaroslav"
		mallory  = "arn:aws:iam::111122223333:user/mallory"
	)
	ec2URL := startFakeEC2(t, fakests.Instance{InstanceID: node, PrivateDNSName: nodeDNS}).URL()

	res, err := NewEC2Resolver(EC2ResolverConfig{Client: newEC2Client(ec2URL), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	manifest := readFixture(t, "aws-auth-good-eks-example.yaml")
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(manifest, &cm); err != nil {
		t.Fatalf("cannot decode the manifest as a ConfigMap: %s", err)
	}

	stores := map[string]*Store{}
	fileStore := NewStore(nil, nil)
	testenv.Run(t, NewFileSource(filepath.Join("testdata", "aws-auth-good-eks-example.yaml"), fileStore, nil, time.Hour).Run)
	stores["file"] = fileStore
	cmStore := NewStore(nil, nil)
	testenv.Run(t, NewConfigMapSource(fake.NewClientset(&cm), AWSAuthNamespace, AWSAuthName, cmStore, nil, 0).Run)
	stores["configmap"] = cmStore

	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			testenv.WaitFor(t, "the mapping", store.Ready)
			table := store.Table()
			ctx := context.Background()
			f := func(arn, wantUser, wantGroups string) {
				t.Helper()
				u, err := table.Render(ctx, testIdentity(t, arn), res)
				if err != nil {
					t.Fatalf("unexpected error for %s: %s", arn, err)
				}
				if u.Username != wantUser || strings.Join(u.Groups, ",") != wantGroups {
					t.Fatalf("unexpected user for %s; got %q %q; want %q %q", arn, u.Username, u.Groups, wantUser, wantGroups)
				}
			}
			f(nodeARN, "system:node:"+nodeDNS, "system:bootstrappers,system:nodes")
			f(yaroslav, "yaroslav", "system:masters")

			_, err := table.Render(ctx, testIdentity(t, mallory), res)
			if !errors.Is(err, ErrNotMapped) || !IsDenial(err) {
				t.Fatalf("unexpected answer for an unmapped user; got %v; want ErrNotMapped", err)
			}
			e := Explain(table, mallory)
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
			e = Explain(table, "arn:aws:iam::444455556666:user/yaroslav")
			if len(e.Nearest) != 1 || e.Nearest[0].Record.ARN != yaroslav {
				t.Fatalf("unexpected nearest records: %+v", e.Nearest)
			}
		})
	}
}
