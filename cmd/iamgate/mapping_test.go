package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// startServerWith runs `iamgate server` (plain-HTTP webhook on loopback, no STS needed) with
// args added, and returns its internal listener's URL and its logs.
func startServerWith(t *testing.T, args ...string) (internal string, logs *testenv.LogBuffer) {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	internalAddr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs = &testenv.LogBuffer{}
	all := append([]string{"-cluster.id", "c", "-webhook.insecureNoTLS", "-webhook.listenAddr", testenv.FreeAddr(t),
		"-internal.listenAddr", internalAddr, "-ec2.region", "us-east-1", "-log.format", "json"}, args...)
	go func() { done <- runServer(ctx, all, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("iamgate server did not stop")
		}
	})
	return "http://" + internalAddr, logs
}

// readyz polls /readyz until it answers wantStatus, and returns its body.
func readyz(t *testing.T, internal string, wantStatus int, logs *testenv.LogBuffer) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(internal + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == wantStatus {
				return string(body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d: %v\n%s", wantStatus, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServerReadyWithBadRecord protects the first start with a bad record in the mapping: the
// server becomes ready with the valid records (before, it never did and answered every review
// with an error), /readyz names the refused record by list, index and line without its ARN or
// values, the log names it with its ARN, and the metric counts it.
func TestServerReadyWithBadRecord(t *testing.T) {
	mappingFile := filepath.Join(t.TempDir(), "aws-auth.yaml")
	if err := os.WriteFile(mappingFile, []byte(`mapUsers:
- userarn: arn:aws:iam::111122223333:user/yaroslav
  username: yaroslav
- userarn: arn:aws:iam::111122223333:user/secret-agent
  username: 1234
  groups: [top-secret]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	internal, logs := startServerWith(t, "-mapping.file", mappingFile)
	body := readyz(t, internal, 200, logs)
	want := "ok\nfile " + mappingFile + ": loaded, 1 records applied, 1 refused\n" +
		"  refused mapUsers[1] (line 4): value is not a string\n"
	if body != want {
		t.Fatalf("unexpected /readyz body;\ngot  %q;\nwant %q", body, want)
	}
	for _, secret := range []string{"secret-agent", "1234", "top-secret"} {
		if strings.Contains(body, secret) {
			t.Fatalf("/readyz shows %q from the record: %q", secret, body)
		}
	}
	log := logs.String()
	for _, w := range []string{`"msg":"mapping record refused; the other records apply"`, `"list":"mapUsers"`, `"index":1`, `"line":4`,
		`"arn":"arn:aws:iam::111122223333:user/secret-agent"`, `"level":"ERROR"`} {
		if !strings.Contains(log, w) {
			t.Fatalf("unexpected log; want it to contain %s:\n%s", w, log)
		}
	}
	resp, err := http.Get(internal + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `iamgate_mapping_refused_records{source="file"} 1`; !strings.Contains(string(metrics), want) {
		t.Fatalf("unexpected metrics; want %s", want)
	}

	// -dryRun, the check before deploying, fails on the same file.
	var out, errOut strings.Builder
	err = runServer(t.Context(), []string{"-cluster.id", "c", "-webhook.insecureNoTLS", "-mapping.file", mappingFile, "-ec2.region", "us-east-1", "-dryRun"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `has refused records (the server would apply the others):`+"\n"+`mapUsers[1] "arn:aws:iam::111122223333:user/secret-agent" (line 4)`) {
		t.Fatalf("unexpected -dryRun result; got %v; want the refused record", err)
	}
}
