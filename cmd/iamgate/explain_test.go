package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainCommand protects the flags and exit status of `iamgate explain`; what it explains
// is tested in package mapping.
func TestExplainCommand(t *testing.T) {
	mappingFile := filepath.Join(t.TempDir(), "aws-auth.yaml")
	err := os.WriteFile(mappingFile, []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: aws-auth, namespace: kube-system}
data:
  mapRoles: |
    - rolearn: arn:aws:iam::111122223333:role/eks-node-group-role
      username: system:node:{{EC2PrivateDNSName}}
      groups: [system:bootstrappers, system:nodes]
  mapUsers: |
    - userarn: arn:aws:iam::111122223333:user/yaroslav
      username: yaroslav
      groups: [system:masters]
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f := func(args []string, wantErr string, wantOut ...string) {
		t.Helper()
		var stdout, stderr strings.Builder
		err := runExplain(context.Background(), args, &stdout, &stderr)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("unexpected error for %q: %s", args, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("unexpected error for %q; got %v; want it to contain %q", args, err, wantErr)
		}
		for _, w := range wantOut {
			if !strings.Contains(stdout.String(), w) {
				t.Fatalf("unexpected output for %q; got:\n%s\nwant it to contain %q", args, stdout.String(), w)
			}
		}
	}
	f([]string{"-mapping.file", mappingFile, "-arn", "arn:aws:iam::111122223333:user/yaroslav"}, "",
		"MAPPED by mapUsers[0]", `username:       "yaroslav"`, `groups:         ["system:masters"]`)
	f([]string{"-mapping.file", mappingFile, "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/i-0123456789abcdef0"}, "",
		`"system:node:{{EC2PrivateDNSName}}"`, "looked up in EC2 per request")
	f([]string{"-mapping.file", mappingFile, "-arn", "arn:aws:iam::444455556666:user/yaroslav"}, "is not mapped",
		"NOT MAPPED", "same user name in account 111122223333")
	f([]string{"-mapping.file", mappingFile, "-arn", "arn:aws:sts::111122223333:assumed-role/eks-node-group-role/alice"}, "is denied",
		"DENIED", "not an EC2 instance ID")
	f([]string{"-mapping.file", mappingFile, "-arn", "arn:aws:iam::111122223333:group/g"}, "is not a principal ARN", "INVALID")
	f([]string{"-arn", "arn:aws:iam::111122223333:user/yaroslav"}, "no mapping source")
	f([]string{"-mapping.file", mappingFile}, "missing -arn")
	f([]string{"-mapping.file", mappingFile, "-o", "yaml", "x"}, "unknown -o")
	f([]string{"-mapping.file", filepath.Join(t.TempDir(), "missing.yaml"), "x"}, "cannot read -mapping.file")

	var stdout strings.Builder
	if err := runExplain(context.Background(), []string{"-mapping.file", mappingFile, "-o", "json", "arn:aws:iam::111122223333:user/yaroslav"}, &stdout, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Result string `json:"result"`
		User   struct {
			Username string   `json:"username"`
			Groups   []string `json:"groups"`
		} `json:"user"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatalf("cannot decode -o json output: %s", err)
	}
	if got.Result != "mapped" || got.User.Username != "yaroslav" || strings.Join(got.User.Groups, ",") != "system:masters" {
		t.Fatalf("unexpected -o json output: %s", stdout.String())
	}
}
