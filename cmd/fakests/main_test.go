package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// TestMain runs the command itself when re-executed by TestBinary.
func TestMain(m *testing.M) {
	if os.Getenv("FAKESTS_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBinary runs the command with the demo config on a free port, checks that it answers and
// that SIGTERM stops it cleanly.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(os.Args[0], "-listen", "127.0.0.1:0", "-addrFile", addrFile,
		"-config", "../../fakests/testdata/config-good-demo.yaml", "-faults.latency", "1ms",
		"-tls", "-tls.caFile", filepath.Join(dir, "ca.pem"), "-admin.listen", "127.0.0.1:0", "-log.level", "warn")
	cmd.Env = append(os.Environ(), "FAKESTS_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start fakests: %s", err)
	}
	defer cmd.Process.Kill()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			addr = strings.TrimSpace(string(b))
			break
		}
	}
	if addr == "" {
		t.Fatalf("fakests did not write -addrFile; stderr: %s", stderr.String())
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool := x509.NewCertPool()
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("unexpected -tls.caFile; got %q (%v)", ca, err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + addr + "/stats")
	if err != nil {
		t.Fatalf("cannot GET /stats over HTTPS: %s", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("unexpected /stats status; got %d; want 200", resp.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("cannot signal fakests: %s", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("unexpected exit; got %v; stderr: %s", err, stderr.String())
	}
}

// TestDryRun: -dryRun checks the config and exits 0; a bad config exits 1.
func TestDryRun(t *testing.T) {
	f := func(wantOK bool, args ...string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], append([]string{"-dryRun"}, args...)...)
		cmd.Env = append(os.Environ(), "FAKESTS_RUN_MAIN=1")
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Errorf("unexpected result for %v; got %v %s; want ok=%v", args, err, out, wantOK)
		}
	}
	f(true, "-config", "../../fakests/testdata/config-good-demo.yaml")
	f(false, "-config", "does-not-exist.yaml")
	f(false, "-faults.errorRates", "Throttling=2")
	f(false, "-faults.errorRates", "Throttling")
	f(false, "-faults.json", `{"outage":true,"nope":1}`)
	f(false, "-clock.at", "yesterday")
	f(true, "-faults.json", `{"outage":true}`, "-clock.at", "20261127T014500Z")
}

// TestFaultsFromFlags: the -faults.* flags make the Faults of the admin JSON.
func TestFaultsFromFlags(t *testing.T) {
	for k, v := range map[string]string{
		"faults.latency": "20ms", "faults.errorRates": "Throttling=0.1, InternalFailure=0.05",
		"faults.throttleRate": "50", "faults.actions": "GetCallerIdentity",
	} {
		if err := flag.Set(k, v); err != nil {
			t.Fatalf("cannot set -%s: %s", k, err)
		}
	}
	got, err := faultsFromFlags()
	if err != nil {
		t.Fatalf("unexpected error; got %v; want nil", err)
	}
	want := fakests.Faults{Latency: fakests.Duration(20 * time.Millisecond), ThrottleRate: 50,
		ErrorRates: map[string]float64{"Throttling": 0.1, "InternalFailure": 0.05}, Actions: []string{"GetCallerIdentity"}}
	if got.String() != want.String() {
		t.Errorf("unexpected faults; got %s; want %s", got, want)
	}
}
