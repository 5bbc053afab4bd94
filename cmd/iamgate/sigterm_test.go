package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/internal/testenv"
	"github.com/iamgate/iamgate/sigv4"
)

// TestSIGTERMUnderLoad runs the real binary, sends SIGTERM while reviews wait on a slow STS,
// and checks that every review in flight gets its answer and the process exits cleanly (see docs/design.md: Listeners).
func TestSIGTERMUnderLoad(t *testing.T) {
	dir := t.TempDir()
	bin := buildIamgate(t)
	sts, err := fakests.New(fakests.Config{Users: []fakests.User{{ARN: e2eAlice.arn, AccessKeyID: e2eAlice.akid, SecretAccessKey: e2eAlice.secret}}},
		fakests.Options{Logger: slog.New(slog.DiscardHandler), Faults: fakests.Faults{Latency: fakests.Duration(700 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	stsAddr, err := sts.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sts.Close()
	var out, errOut strings.Builder
	webhookAddr := testenv.FreeAddr(t)
	if err := runInit(t.Context(), []string{"-out", dir, "-server.url", "https://" + webhookAddr + "/authenticate"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	mappingFile := filepath.Join(dir, "aws-auth.yaml")
	if err := os.WriteFile(mappingFile, []byte(e2eMapping), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "-cluster.id", "demo-cluster", "-webhook.listenAddr", webhookAddr, "-internal.listenAddr", "",
		"-tls.certFile", filepath.Join(dir, "cert.pem"), "-tls.keyFile", filepath.Join(dir, "key.pem"),
		"-mapping.file", mappingFile, "-sts.dialOverride", stsAddr, "-sts.insecureHTTP", "-ec2.region", "us-east-1", "-log.level", "warn")
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	var logs testenv.LogBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	pem, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	var written atomic.Int32 // requests wholly sent
	post := func(token string) (int, bool, error) {
		body := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + token + `"}}`
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { written.Add(1) },
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+webhookAddr+"/authenticate", strings.NewReader(body))
		if err != nil {
			return 0, false, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, false, err
		}
		defer resp.Body.Close()
		var tr struct{ Status struct{ Authenticated bool } }
		err = json.NewDecoder(resp.Body).Decode(&tr)
		return resp.StatusCode, tr.Status.Authenticated, err
	}
	mintAt := func(at time.Time) string {
		tok, err := sigv4.Presign(context.Background(), sigv4.PresignInput{ClusterID: "demo-cluster", Region: "us-east-1", Time: at,
			Credentials: aws.Credentials{AccessKeyID: e2eAlice.akid, SecretAccessKey: e2eAlice.secret}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// Wait until the server answers (the first review also pays the STS latency).
	deadline := time.Now().Add(15 * time.Second)
	for {
		if status, _, err := post(mintAt(time.Now().Add(-time.Hour))); err == nil && status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("iamgate did not come up:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	const n = 40
	written.Store(0)
	atSTS := func() uint64 { return sts.Stats().Faults[fakests.FaultLatency] } // counted as each call arrives
	atSTS0 := atSTS()
	now := time.Now()
	var wg sync.WaitGroup
	failures := make(chan string, n)
	for i := range n {
		tok := mintAt(now.Add(-time.Duration(i) * time.Second)) // distinct tokens: each waits on STS
		wg.Go(func() {
			status, ok, err := post(tok)
			if err != nil || status != 200 || !ok {
				failures <- strings.TrimSpace(strings.Join([]string{http.StatusText(status), errString(err)}, " "))
			}
		})
	}
	// SIGTERM once every review waits on the slow STS (a starved machine may take long to send
	// them all): each one is then in flight in iamgate, none still unread in a socket.
	for sent := time.Now(); written.Load() < n || atSTS()-atSTS0 < n; time.Sleep(10 * time.Millisecond) {
		if time.Since(sent) > 15*time.Second {
			t.Fatalf("in 15s, only %d of %d reviews were sent and %d reached STS", written.Load(), n, atSTS()-atSTS0)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("a review in flight at SIGTERM failed: %s", f)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("iamgate exited with %v after SIGTERM:\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("iamgate did not exit after SIGTERM")
	}
	if got := sts.Stats().Total(fakests.ActionGetCallerIdentity); got < n {
		t.Fatalf("unexpected STS calls; got %d; want at least %d (every review reached STS)", got, n)
	}
}

var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// buildIamgate builds this command once per test run, for tests that need the real binary.
func buildIamgate(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "iamgate-test-bin")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "iamgate")
		built.out, built.err = exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("cannot build iamgate: %s\n%s", built.err, built.out)
	}
	return built.path
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
