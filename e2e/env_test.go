//go:build e2e || soak

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/pki"
	"github.com/iamgate/iamgate/internal/testenv"
)

// The plumbing of the end-to-end test: real processes started by PID (each recorded in
// IAMGATE_E2E_PIDFILE for scripts/e2e.sh, and each killed with the test process if that dies
// first), certificates, kubeconfigs, and the clients that talk to them.

const (
	clusterID = "e2e-cluster"
	region    = "us-east-1"
	// unauthorized is the familiar kubectl message for a token kube-apiserver refuses.
	unauthorized = "error: You must be logged in to the server (Unauthorized)"
)

// env is what both kube-apiserver runs share: tools, binaries, the fake STS and etcd.
type env struct {
	repo, work         string
	kubectlBin, awsBin string
	etcdBin, kasBin    string
	iamgateBin         string
	fakestsBin         string

	stsConfig string // the fake STS's principals (YAML)
	stsAddr   string // host:port of the fake STS and EC2 (TLS)
	stsCA     string // its CA, for the daemon, the AWS SDK and the AWS CLI
	stsClient *http.Client
	etcdURL   string

	adminCA, adminCert, adminKey string // client CA of kube-apiserver, and system:masters' cert
	saKey, saPub                 string // service-account signing key pair

	results *results
}

// results are the numbers the test measures, printed at the end.
type results struct {
	mu    sync.Mutex
	lines []string
}

func (r *results) add(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log("MEASURED: " + line)
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
}

// need returns the environment variable's value or skips (fails under CI=true) naming what is missing.
func need(t *testing.T, name, what string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: %s is missing; run `make e2e`, which provides it", name, what)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", msg)
	}
	t.Skip("SKIPPING: " + msg)
	return ""
}

func newEnv(t *testing.T) *env {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWith(t, filepath.Join(repo, "e2e", "testdata", "fakests.yaml"), true)
}

// newEnvWith is newEnv with the fake STS's config stsConfig; awsCLI says whether the AWS CLI v2
// is needed.
func newEnvWith(t *testing.T, stsConfig string, awsCLI bool) *env {
	t.Helper()
	e := &env{results: &results{}, stsConfig: stsConfig}
	e.kasBin = need(t, "IAMGATE_E2E_KUBE_APISERVER", "kube-apiserver (scripts/e2e-kube-apiserver.sh builds it)")
	e.etcdBin = need(t, "IAMGATE_E2E_ETCD", "etcd (Debian package etcd-server)")
	e.kubectlBin = testenv.Kubectl(t)
	if awsCLI {
		e.awsBin = testenv.AWSCLIv2(t)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is missing: %v", err)
	}
	var err error
	if e.repo, err = filepath.Abs(".."); err != nil {
		t.Fatal(err)
	}
	e.work = os.Getenv("IAMGATE_E2E_WORKDIR")
	if e.work == "" {
		e.work = t.TempDir()
	}
	for _, d := range []string{"bin", "logs", "pki", "kubeconfigs"} {
		if err := os.MkdirAll(filepath.Join(e.work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	recordPID(t, os.Getpid())

	// The binaries under test, built from this checkout.
	start := time.Now()
	build := exec.Command("go", "build", "-o", filepath.Join(e.work, "bin")+"/", "./cmd/iamgate", "./cmd/fakests")
	build.Dir = e.repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build iamgate and fakests: %v\n%s", err, out)
	}
	e.iamgateBin = filepath.Join(e.work, "bin", "iamgate")
	e.fakestsBin = filepath.Join(e.work, "bin", "fakests")
	t.Logf("built iamgate and fakests in %s", time.Since(start).Round(time.Second))

	e.writeClientPKI(t)
	e.startFakeSTS(t)
	e.startEtcd(t)
	return e
}

// --- processes ---

// process is a child started by PID. It dies with the test process (parent-death signal)
// and is stopped by the test's cleanup, in reverse order of start.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// recordPID appends "PID COMM" to IAMGATE_E2E_PIDFILE, so that scripts/e2e.sh can stop
// what a crashed or timed-out test left behind, by PID and only if the name still matches.
func recordPID(t *testing.T, pid int) {
	t.Helper()
	path := os.Getenv("IAMGATE_E2E_PIDFILE")
	if path == "" {
		return
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return // already gone
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%d %s\n", pid, strings.TrimSpace(string(comm)))
}

func (e *env) start(t *testing.T, name, bin string, args, environ []string) *process {
	t.Helper()
	p := &process{name: name, logPath: filepath.Join(e.work, "logs", name+".log"), done: make(chan struct{})}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = environ
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("cannot start %s: %v", name, err)
	}
	recordPID(t, p.cmd.Process.Pid)
	go func() {
		p.err = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s (%s):\n%s", name, p.logPath, p.tail(25))
		}
		p.stop(t)
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 15 s, and waits.
func (p *process) stop(t *testing.T) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Logf("%s (pid %d) did not stop on SIGTERM: killing it", p.name, p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) tail(n int) string {
	data, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls ok every interval until it returns true, the process exits, or timeout.
func waitFor(t *testing.T, what string, p *process, timeout, interval time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if p != nil && p.exited() {
			t.Fatalf("%s exited (%v) while waiting for %s:\n%s", p.name, p.err, what, p.tail(40))
		}
		if time.Now().After(deadline) {
			msg := ""
			if p != nil {
				msg = "\n" + p.tail(40)
			}
			t.Fatalf("timed out after %s waiting for %s%s", timeout, what, msg)
		}
		time.Sleep(interval)
	}
}

// --- the fake STS and etcd ---

func (e *env) startFakeSTS(t *testing.T) {
	t.Helper()
	addrFile := filepath.Join(e.work, "fakests.addr")
	e.stsCA = filepath.Join(e.work, "pki", "fakests-ca.pem")
	p := e.start(t, "fakests", e.fakestsBin, []string{
		"-listen", "127.0.0.1:0", "-addrFile", addrFile,
		"-config", e.stsConfig,
		"-tls", "-tls.caFile", e.stsCA, "-log.level", "warn",
	}, os.Environ())
	waitFor(t, "the fake STS's address", p, 20*time.Second, 50*time.Millisecond, func() bool {
		b, err := os.ReadFile(addrFile)
		e.stsAddr = strings.TrimSpace(string(b))
		return err == nil && e.stsAddr != ""
	})
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(e.stsCA)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("cannot read the fake STS's CA %s: %v", e.stsCA, err)
	}
	e.stsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitFor(t, "the fake STS's /healthz", p, 20*time.Second, 50*time.Millisecond, func() bool {
		resp, err := e.stsClient.Get("https://" + e.stsAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// stsCalls is the number of GetCallerIdentity calls the fake STS answered with outcome
// ("" sums every outcome).
func (e *env) stsCalls(t *testing.T, outcome string) int {
	t.Helper()
	resp, err := e.stsClient.Get("https://" + e.stsAddr + "/stats")
	if err != nil {
		t.Fatalf("cannot read the fake STS's /stats: %v", err)
	}
	defer resp.Body.Close()
	var stats struct{ Calls map[string]map[string]int }
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatalf("cannot decode the fake STS's /stats: %v", err)
	}
	n := 0
	for o, c := range stats.Calls["GetCallerIdentity"] {
		if outcome == "" || o == outcome {
			n += c
		}
	}
	return n
}

// setFaults replaces the fake STS's faults (PUT /admin/faults); "" clears them.
func (e *env) setFaults(t *testing.T, faultsJSON string) {
	t.Helper()
	method, body := http.MethodPut, io.Reader(strings.NewReader(faultsJSON))
	if faultsJSON == "" {
		method, body = http.MethodDelete, nil
	}
	req, err := http.NewRequest(method, "https://"+e.stsAddr+"/admin/faults", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.stsClient.Do(req)
	if err != nil {
		t.Fatalf("cannot set the fake STS's faults: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("cannot set the fake STS's faults %s: %d %s", faultsJSON, resp.StatusCode, msg)
	}
}

func (e *env) startEtcd(t *testing.T) {
	t.Helper()
	client, peer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	e.etcdURL = "http://" + client
	environ := os.Environ()
	if runtime.GOARCH == "arm64" {
		environ = append(environ, "ETCD_UNSUPPORTED_ARCH=arm64")
	}
	p := e.start(t, "etcd", e.etcdBin, []string{
		"--name", "e2e", "--data-dir", filepath.Join(e.work, "etcd"),
		"--listen-client-urls", e.etcdURL, "--advertise-client-urls", e.etcdURL,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "e2e=http://" + peer, "--logger", "zap", "--log-level", "warn",
	}, environ)
	waitFor(t, "etcd's /health", p, 30*time.Second, 100*time.Millisecond, func() bool {
		resp, err := http.Get(e.etcdURL + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), `"true"`)
	})
}

// --- certificates ---

// certAuthority is a CA of the test (an operator's, kube-apiserver's client CA) and its PEM.
type certAuthority struct {
	*pki.CA
	pem []byte
}

func newCA(t *testing.T, name string) *certAuthority {
	t.Helper()
	ca, err := pki.NewCA(pkix.Name{CommonName: name}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &certAuthority{CA: ca, pem: ca.CertPEM()}
}

// issue returns a leaf (PEM certificate, PEM key, serial) for a client (cn, orgs) or a server (ips).
func (ca *certAuthority) issue(t *testing.T, cn string, orgs []string, ips ...string) (certPEM, keyPEM []byte, sn string) {
	t.Helper()
	subject := pkix.Name{CommonName: cn, Organization: orgs}
	var kp *pki.KeyPair
	var err error
	if len(ips) > 0 {
		kp, err = ca.IssueServer(subject, append([]string{"localhost"}, ips...))
	} else {
		kp, err = ca.IssueClient(subject)
	}
	if err != nil {
		t.Fatal(err)
	}
	if keyPEM, err = kp.KeyPEM(); err != nil {
		t.Fatal(err)
	}
	return kp.CertPEM(), keyPEM, kp.Cert.SerialNumber.String()
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// writeClientPKI writes kube-apiserver's client CA with an admin certificate in group
// system:masters (the operator's own access, not through the webhook) and the
// service-account key pair.
func (e *env) writeClientPKI(t *testing.T) {
	t.Helper()
	dir := filepath.Join(e.work, "pki")
	ca := newCA(t, "e2e client CA")
	cert, key, _ := ca.issue(t, "e2e-admin", []string{"system:masters"})
	e.adminCA, e.adminCert, e.adminKey = filepath.Join(dir, "client-ca.pem"), filepath.Join(dir, "admin.pem"), filepath.Join(dir, "admin-key.pem")
	writeFile(t, e.adminCA, ca.pem, 0o644)
	writeFile(t, e.adminCert, cert, 0o644)
	writeFile(t, e.adminKey, key, 0o600)

	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	e.saKey, e.saPub = filepath.Join(dir, "sa-key.pem"), filepath.Join(dir, "sa-pub.pem")
	writeFile(t, e.saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}), 0o600)
	writeFile(t, e.saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// --- kube-apiserver ---

type apiserver struct {
	*process
	url, ca string // https://127.0.0.1:port and the CA of its self-signed serving cert
	admin   string // kubeconfig of the system:masters client certificate
	name    string
}

// startKubeAPIServer starts kube-apiserver on loopback with RBAC, the webhook config from
// webhookKubeconfig in webhook API version, its default webhook cache TTL, and the flags extra.
func (e *env) startKubeAPIServer(t *testing.T, name, webhookKubeconfig, version string, extra ...string) *apiserver {
	t.Helper()
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	certDir := filepath.Join(e.work, name+"-certs")
	start := time.Now()
	p := e.start(t, name, e.kasBin, append([]string{
		"--etcd-servers=" + e.etcdURL,
		"--etcd-prefix=/registry-" + name,
		"--bind-address=127.0.0.1", "--secure-port=" + port,
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--cert-dir=" + certDir,
		"--client-ca-file=" + e.adminCA,
		"--authorization-mode=RBAC",
		"--service-account-key-file=" + e.saPub,
		"--service-account-signing-key-file=" + e.saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--authentication-token-webhook-config-file=" + webhookKubeconfig,
		"--authentication-token-webhook-version=" + version,
		"--profiling=false",
		"--v=1",
	}, extra...), os.Environ())
	s := &apiserver{process: p, url: "https://" + addr, ca: filepath.Join(certDir, "apiserver.crt"), name: name}
	waitFor(t, name+"'s serving certificate", p, 60*time.Second, 100*time.Millisecond, func() bool {
		_, err := os.Stat(s.ca)
		return err == nil
	})
	s.admin = s.writeKubeconfig(t, e, name+"-admin", map[string]any{
		"client-certificate": e.adminCert, "client-key": e.adminKey,
	})
	client := s.httpClient(t, e, true)
	waitFor(t, name+"'s /readyz", p, 3*time.Minute, 250*time.Millisecond, func() bool {
		resp, err := client.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	t.Logf("%s ready in %s (webhook %s)", name, time.Since(start).Round(100*time.Millisecond), version)
	return s
}

func (s *apiserver) httpClient(t *testing.T, e *env, admin bool) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(s.ca)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("cannot read kube-apiserver's CA %s: %v", s.ca, err)
	}
	cfg := &tls.Config{RootCAs: pool}
	if admin {
		pair, err := tls.LoadX509KeyPair(e.adminCert, e.adminKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// writeKubeconfig writes a kubeconfig (JSON, which kubectl reads as YAML) for this
// kube-apiserver with the given user and returns its path.
func (s *apiserver) writeKubeconfig(t *testing.T, e *env, name string, user map[string]any) string {
	t.Helper()
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config",
		"clusters":        []any{map[string]any{"name": "e2e", "cluster": map[string]any{"server": s.url, "certificate-authority": s.ca}}},
		"users":           []any{map[string]any{"name": name, "user": user}},
		"contexts":        []any{map[string]any{"name": "e2e", "context": map[string]any{"cluster": "e2e", "user": name}}},
		"current-context": "e2e",
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.work, "kubeconfigs", name+".json")
	writeFile(t, path, data, 0o600)
	return path
}

// tokenKubeconfig is a kubeconfig with a fixed bearer token (no exec plugin, no client cert).
func (s *apiserver) tokenKubeconfig(t *testing.T, e *env, name, token string) string {
	t.Helper()
	return s.writeKubeconfig(t, e, s.name+"-"+name, map[string]any{"token": token})
}

// --- identities and kubectl ---

// identity is an AWS principal of e2e/testdata/fakests.yaml and how a kubeconfig gets its token.
type identity struct {
	name         string
	akid, secret string
	session      string
	role         string // --role for iamgate token
	sessionName  string
	awsCLI       bool // aws eks get-token instead of iamgate token
}

var (
	alice = identity{name: "alice", akid: "AKIAE2EALICE00000001", secret: "alice/e2e/secret/0123456789abcdefghijklmn"}
	bob   = identity{name: "bob", akid: "AKIAE2EBOB0000000001", secret: "bob/e2e/secret/0123456789abcdefghijklmnop"}
	carol = identity{name: "carol", akid: "AKIAE2ECAROL00000001", secret: "carol/e2e/secret/0123456789abcdefghijklmn"}
	// dev is alice after assuming the developers role with a session name that has an '@'.
	dev  = identity{name: "dev", akid: alice.akid, secret: alice.secret, role: "arn:aws:iam::111122223333:role/developers", sessionName: "alice@example.com"}
	node = identity{name: "node", akid: "ASIAE2ENODE000000001", secret: "node/e2e/secret/0123456789abcdefghijklmno",
		session: "FwoGZXIvYXdzE2ENODESESSIONTOKENFAKE0123456789"}
	aliceCLI = identity{name: "alice-awscli", akid: alice.akid, secret: alice.secret, awsCLI: true}
	bobCLI   = identity{name: "bob-awscli", akid: bob.akid, secret: bob.secret, awsCLI: true}
)

// awsVars are the variables an exec plugin for id runs with: its keys, the fake STS for
// AssumeRole and its CA. Nothing else from AWS reaches the plugins (testenv.AWSEnv).
func (e *env) awsVars(id identity) map[string]string {
	m := map[string]string{
		"AWS_ACCESS_KEY_ID": id.akid, "AWS_SECRET_ACCESS_KEY": id.secret,
		"AWS_CA_BUNDLE": e.stsCA, "AWS_EC2_METADATA_DISABLED": "true",
	}
	if id.session != "" {
		m["AWS_SESSION_TOKEN"] = id.session
	}
	if !id.awsCLI {
		// AssumeRole goes to the fake; presigned GetCallerIdentity URLs still name the real
		// regional STS host, which is all iamgate accepts.
		m["AWS_ENDPOINT_URL_STS"] = "https://" + e.stsAddr
	}
	return m
}

func (e *env) pluginCommand(id identity) (string, []string) {
	if id.awsCLI {
		return e.awsBin, []string{"eks", "get-token", "--cluster-name", clusterID, "--region", region}
	}
	args := []string{"token", "-i", clusterID, "--region", region}
	if id.role != "" {
		args = append(args, "--role", id.role, "--session-name", id.sessionName)
	}
	return e.iamgateBin, args
}

// execKubeconfig is a kubeconfig whose user runs the exec plugin of id: every kubectl run
// mints a fresh token.
func (s *apiserver) execKubeconfig(t *testing.T, e *env, id identity) string {
	t.Helper()
	command, args := e.pluginCommand(id)
	var envList []any
	for k, v := range e.awsVars(id) {
		envList = append(envList, map[string]any{"name": k, "value": v})
	}
	apiVersion := "client.authentication.k8s.io/v1"
	if id.awsCLI {
		apiVersion = "client.authentication.k8s.io/v1beta1" // what aws eks get-token prints
	}
	return s.writeKubeconfig(t, e, s.name+"-"+id.name, map[string]any{"exec": map[string]any{
		"apiVersion": apiVersion, "command": command, "args": args, "env": envList,
		"interactiveMode": "Never",
	}})
}

// mint runs `iamgate token --token-only` as id: a token to reuse across kubectl runs.
func (e *env) mint(t *testing.T, id identity) string {
	t.Helper()
	command, args := e.pluginCommand(identity{akid: id.akid, secret: id.secret, session: id.session, role: id.role, sessionName: id.sessionName})
	var kv []string
	for k, v := range e.awsVars(id) {
		kv = append(kv, k+"="+v)
	}
	cmd := exec.Command(command, append(args, "--token-only")...)
	cmd.Env = testenv.AWSEnv(t, kv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("iamgate token as %s: %v\n%s", id.name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// kubectl runs kubectl with kubeconfig and returns its combined output.
func (e *env) kubectl(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	return e.kubectlEnv(t, kubeconfig, nil, args...)
}

func (e *env) kubectlEnv(t *testing.T, kubeconfig string, extraEnv []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = testenv.AWSEnv(t, append([]string{"KUBECACHEDIR=" + filepath.Join(e.work, "kubecache")}, extraEnv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectlOK runs kubectl and fails the test unless it succeeds.
func (e *env) kubectlOK(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := e.kubectl(t, kubeconfig, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// isUnauthorized reports whether kubectl's output ends with exactly the familiar message.
func isUnauthorized(out string) bool {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[len(lines)-1] == unauthorized
}

// userInfo is status.userInfo of `kubectl auth whoami -o json` (a SelfSubjectReview).
type userInfo struct {
	Username string              `json:"username"`
	UID      string              `json:"uid"`
	Groups   []string            `json:"groups"`
	Extra    map[string][]string `json:"extra"`
}

func (e *env) whoami(t *testing.T, kubeconfig string) (userInfo, string, error) {
	t.Helper()
	out, err := e.kubectl(t, kubeconfig, "auth", "whoami", "-o", "json")
	if err != nil {
		return userInfo{}, out, err
	}
	var r struct {
		Status struct {
			UserInfo userInfo `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return userInfo{}, out, fmt.Errorf("cannot decode kubectl auth whoami -o json: %w", err)
	}
	return r.Status.UserInfo, out, nil
}

// --- iamgate ---

type iamgate struct {
	*process
	webhook  string // host:port of the TLS webhook
	internal string // http://host:port of /metrics, /readyz
	pki      string // directory of iamgate init's files
}

// initPKI runs `iamgate init` for a webhook on a fresh loopback port.
func (e *env) initPKI(t *testing.T, name string) (dir, webhookAddr string) {
	t.Helper()
	webhookAddr = testenv.FreeAddr(t)
	dir = filepath.Join(e.work, "pki", name)
	out, err := exec.Command(e.iamgateBin, "init", "-out", dir, "-server.url", "https://"+webhookAddr+"/authenticate", "-cluster.id", clusterID).CombinedOutput()
	if err != nil {
		t.Fatalf("iamgate init: %v\n%s", err, out)
	}
	return dir, webhookAddr
}

// startIamgate runs `iamgate server` with the key pair in pki, the fake STS and EC2 over TLS,
// and the mapping flags in extra.
func (e *env) startIamgate(t *testing.T, name, pki, webhookAddr string, extra ...string) *iamgate {
	t.Helper()
	g := &iamgate{webhook: webhookAddr, internal: "http://" + testenv.FreeAddr(t), pki: pki}
	args := append([]string{
		"-cluster.id", clusterID,
		"-webhook.listenAddr", webhookAddr, "-internal.listenAddr", strings.TrimPrefix(g.internal, "http://"),
		"-tls.certFile", filepath.Join(pki, "cert.pem"), "-tls.keyFile", filepath.Join(pki, "key.pem"),
		"-sts.dialOverride", e.stsAddr, "-sts.caFile", e.stsCA,
		"-ec2.endpoint", "https://" + e.stsAddr, "-ec2.region", region,
		"-log.level", "info",
	}, extra...)
	// The EC2 client ({{EC2PrivateDNSName}}) signs with alice's fake keys and trusts the
	// fake's CA through the AWS SDK's AWS_CA_BUNDLE.
	environ := testenv.AWSEnv(t, "AWS_ACCESS_KEY_ID="+alice.akid, "AWS_SECRET_ACCESS_KEY="+alice.secret, "AWS_CA_BUNDLE="+e.stsCA)
	g.process = e.start(t, name, e.iamgateBin, append([]string{"server"}, args...), environ)
	waitFor(t, name+"'s /readyz", g.process, 30*time.Second, 100*time.Millisecond, func() bool {
		resp, err := http.Get(g.internal + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g
}

// metric sums every sample of the metric family name on iamgate's /metrics whose labels
// contain all of labels (e.g. `result="allowed"`).
func (g *iamgate) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(g.internal + "/metrics")
	if err != nil {
		t.Fatalf("cannot scrape iamgate: %v", err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("cannot parse metric line %q", line)
		}
		sum += v
	}
	return sum
}

// reviews is the number of TokenReviews iamgate has answered: kube-apiserver's calls.
func (g *iamgate) reviews(t *testing.T) int {
	t.Helper()
	return int(g.metric(t, "iamgate_reviews_total"))
}

// servedSerial is the serial number of the leaf the webhook presents, verified against ca.
func (g *iamgate) servedSerial(t *testing.T, ca []byte) (string, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.webhook, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// replaceKeyPair writes a new key pair over pki's files, each by an atomic rename.
func replaceKeyPair(t *testing.T, pki string, certPEM, keyPEM []byte) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{{"key.pem", keyPEM}, {"cert.pem", certPEM}} {
		tmp := filepath.Join(pki, "."+f.name+".new")
		writeFile(t, tmp, f.data, 0o600)
		if err := os.Rename(tmp, filepath.Join(pki, f.name)); err != nil {
			t.Fatal(err)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// setWebhookCA replaces certificate-authority-data in the webhook kubeconfig iamgate init wrote.
func setWebhookCA(t *testing.T, kubeconfig string, oldCA, newCA []byte) {
	t.Helper()
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(b []byte) []byte { return []byte(b64(b)) }
	if !bytes.Contains(data, enc(oldCA)) {
		t.Fatalf("%s does not carry iamgate init's CA", kubeconfig)
	}
	writeFile(t, kubeconfig, bytes.Replace(data, enc(oldCA), enc(newCA), 1), 0o644)
}
