package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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

	// A bad record does not hide the others; explain lists it and names it for its principal.
	typo := filepath.Join(t.TempDir(), "aws-auth.yaml")
	if err := os.WriteFile(typo, []byte(`mapUsers:
- userarn: arn:aws:iam::111122223333:user/yaroslav
  username: yaroslav
- userarn: arn:aws:iam::111122223333:user/alice
  username: 1234
`), 0o644); err != nil {
		t.Fatal(err)
	}
	refused := `refused (not applied; every other record applies):
  - file ` + typo + `: mapUsers[1] "arn:aws:iam::111122223333:user/alice" (line 4): value is not a string: username is a number (1234); quote it if a string is meant`
	f([]string{"-mapping.file", typo, "arn:aws:iam::111122223333:user/yaroslav"}, "", "MAPPED by mapUsers[0]", refused)
	f([]string{"-mapping.file", typo, "arn:aws:iam::111122223333:user/alice"}, "is denied",
		"DENIED: matched by mapUsers[1]", "the record that names this principal first is refused", refused)

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

// TestExplainCommandResolve protects -ec2.resolve: the node's name comes from EC2
// DescribeInstances at -ec2.endpoint.
func TestExplainCommandResolve(t *testing.T) {
	ec2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "DescribeInstances" || r.Form.Get("Filter.1.Name") != "instance-id" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>no</Message></Error></Errors><RequestID>r</RequestID></Response>`)
			return
		}
		if r.Form.Get("Filter.1.Value.1") != "i-0123456789abcdef0" {
			// As EC2: an instance-id filter value that matches nothing is no error.
			fmt.Fprint(w, `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><reservationSet/></DescribeInstancesResponse>`)
			return
		}
		fmt.Fprint(w, `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><reservationSet><item><instancesSet><item><instanceId>i-0123456789abcdef0</instanceId><privateDnsName>ip-10-0-1-23.ec2.internal</privateDnsName></item></instancesSet></item></reservationSet></DescribeInstancesResponse>`)
	}))
	defer ec2.Close()
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	mappingFile := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mappingFile, []byte("mapRoles:\n- rolearn: arn:aws:iam::111122223333:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	err := runExplain(context.Background(), []string{"-mapping.file", mappingFile, "-ec2.resolve", "-ec2.endpoint", ec2.URL, "-ec2.region", "us-east-1",
		"arn:aws:sts::111122223333:assumed-role/node/i-0123456789abcdef0"}, &stdout, &strings.Builder{})
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	if want := `username:       "system:node:ip-10-0-1-23.ec2.internal"`; !strings.Contains(stdout.String(), want) {
		t.Fatalf("unexpected output; got:\n%s\nwant it to contain %q", stdout.String(), want)
	}
	err = runExplain(context.Background(), []string{"-mapping.file", mappingFile, "-ec2.resolve", "-ec2.endpoint", ec2.URL, "-ec2.region", "us-east-1",
		"arn:aws:sts::111122223333:assumed-role/node/i-0123456789abcdef1"}, &stdout, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "is denied") {
		t.Fatalf("unexpected error for an unknown instance; got %v; want it to contain %q", err, "is denied")
	}
}
