package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestInitWritesLoadableKubeconfigAndPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var out, errOut strings.Builder
	args := []string{"-out", dir, "-cluster.id", "my-cluster", "-server.url", "https://iamgate.kube-system.svc:443/authenticate", "-hostnames", "10.0.0.7,iamgate"}
	if err := runInit(t.Context(), args, &out, &errOut); err != nil {
		t.Fatalf("unexpected error: %s (%s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), "--authentication-token-webhook-config-file="+dir) || !strings.Contains(out.String(), "-cluster.id=my-cluster") {
		t.Fatalf("unexpected output; got %q; want the kube-apiserver flags", out.String())
	}
	cfg, err := clientcmd.LoadFromFile(filepath.Join(dir, "webhook-kubeconfig.yaml"))
	if err != nil {
		t.Fatalf("cannot load the webhook kubeconfig with client-go: %s", err)
	}
	cluster := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	if cluster == nil || cluster.Server != "https://iamgate.kube-system.svc:443/authenticate" {
		t.Fatalf("unexpected cluster in kubeconfig: %+v", cluster)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cluster.CertificateAuthorityData) {
		t.Fatalf("unexpected certificate-authority-data: not PEM")
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatalf("cannot load the serving key pair: %s", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"iamgate.kube-system.svc", "localhost", "127.0.0.1", "10.0.0.7", "iamgate"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Fatalf("unexpected verification error for %q: %s", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "evil.example.com"}); err == nil {
		t.Fatalf("unexpected verification success for a name not asked for")
	}
	st, err := os.Stat(filepath.Join(dir, "key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("unexpected key.pem mode; got %v; want 0600", st.Mode().Perm())
	}
	// A second run must not overwrite the key pair silently.
	if err := runInit(t.Context(), args, &out, &errOut); err == nil || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("unexpected result for an existing -out; got %v; want a refusal naming -force", err)
	}
	if err := runInit(t.Context(), append(args, "-force"), &out, &errOut); err != nil {
		t.Fatalf("unexpected error with -force: %s", err)
	}
}

func TestInitRefusesBadFlags(t *testing.T) {
	f := func(args ...string) {
		t.Helper()
		var out, errOut strings.Builder
		if err := runInit(t.Context(), append([]string{"-out", t.TempDir()}, args...), &out, &errOut); err == nil {
			t.Fatalf("unexpected success for %q", args)
		}
	}
	f("-server.url", "http://127.0.0.1:21362/authenticate")
	f("-server.url", "::")
	f("-validity", "-1h")
	f("positional")
}
