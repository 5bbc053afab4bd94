package main

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iamgate/iamgate/internal/kubeconfig"
	"github.com/iamgate/iamgate/internal/pki"
)

const defaultWebhookURL = "https://127.0.0.1:21362/authenticate"

// runInit writes what kube-apiserver needs to call iamgate: a CA and a serving key pair for the
// webhook listener, and the webhook kubeconfig naming them (see docs/design.md: Listeners).
func runInit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "iamgate-pki", "directory to write ca.pem, cert.pem, key.pem and webhook-kubeconfig.yaml into")
	serverURL := fs.String("server.url", defaultWebhookURL,
		"the URL kube-apiserver calls; its host goes into the certificate. See also -hostnames")
	hostnames := fs.String("hostnames", "",
		"comma-separated extra DNS names or IPs for the serving certificate (e.g. a Service name)")
	validity := fs.Duration("validity", 365*24*time.Hour, "how long the certificates are valid; rotate before they expire")
	force := fs.Bool("force", false, "overwrite existing files in -out")
	clusterID := fs.String("cluster.id", "<CLUSTER>", "the cluster ID, only to fill in the printed `iamgate server` command")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	u, err := url.Parse(*serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("cannot use -server.url=%q: it must be an https URL", *serverURL)
	}
	names := []string{u.Hostname(), "localhost", "127.0.0.1"}
	for _, h := range strings.Split(*hostnames, ",") {
		if h = strings.TrimSpace(h); h != "" {
			names = append(names, h)
		}
	}
	files := map[string][]byte{}
	caPEM, certPEM, keyPEM, err := newServingPKI(names, time.Now(), *validity)
	if err != nil {
		return err
	}
	files["ca.pem"], files["cert.pem"], files["key.pem"] = caPEM, certPEM, keyPEM
	files["webhook-kubeconfig.yaml"] = kubeconfig.Webhook(*serverURL, caPEM)

	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("cannot create -out=%q: %w", *out, err)
	}
	for name := range files {
		p := filepath.Join(*out, name)
		if _, err := os.Stat(p); err == nil && !*force {
			return fmt.Errorf("cannot write %s: it exists (pass -force to overwrite)", p)
		}
	}
	for name, data := range files {
		mode := os.FileMode(0o644)
		if name == "key.pem" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(*out, name), data, mode); err != nil {
			return fmt.Errorf("cannot write %s: %w", name, err)
		}
	}
	dir, _ := filepath.Abs(*out)
	fmt.Fprintf(stdout, `Wrote %[1]s/{ca.pem,cert.pem,key.pem,webhook-kubeconfig.yaml}.

Start iamgate with:
  iamgate server -cluster.id=%[2]s -tls.certFile=%[1]s/cert.pem -tls.keyFile=%[1]s/key.pem -mapping.file=<aws-auth.yaml>

Add to kube-apiserver:
  --authentication-token-webhook-config-file=%[1]s/webhook-kubeconfig.yaml
  --authentication-token-webhook-version=v1
  --authentication-token-webhook-cache-ttl=2m
`, dir, *clusterID)
	return nil
}

// newServingPKI creates a CA and a serving certificate for names (DNS names or IPs), both
// ECDSA P-256, valid from an hour before now for validity.
func newServingPKI(names []string, now time.Time, validity time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		return nil, nil, nil, errors.New("cannot create certificates: -validity must be positive")
	}
	ca, err := pki.NewCA(pkix.Name{CommonName: "iamgate webhook CA"}, now, validity)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf, err := ca.IssueServer(pkix.Name{CommonName: "iamgate"}, names)
	if err != nil {
		return nil, nil, nil, err
	}
	if keyPEM, err = leaf.KeyPEM(); err != nil {
		return nil, nil, nil, err
	}
	return ca.CertPEM(), leaf.CertPEM(), keyPEM, nil
}
