package pki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"
)

func TestServerKeyPair(t *testing.T) {
	now := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	ca, err := NewCA(pkix.Name{CommonName: "test CA"}, now, 24*time.Hour)
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	kp, err := ca.IssueServer(pkix.Name{CommonName: "server"}, []string{"svc.example", "*.wild.example", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatalf("unexpected CA PEM: not a certificate")
	}
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	pair, err := tls.X509KeyPair(kp.CertPEM(), keyPEM)
	if err != nil {
		t.Fatalf("cannot load the PEM key pair: %s", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	verify := func(name string, at time.Time) error {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: at})
		return err
	}
	for _, name := range []string{"svc.example", "a.wild.example", "127.0.0.1", "::1"} {
		if err := verify(name, now); err != nil {
			t.Errorf("unexpected verification error for %q: %s", name, err)
		}
	}
	for _, name := range []string{"other.example", "wild.example", "127.0.0.2"} {
		if verify(name, now) == nil {
			t.Errorf("unexpected verification success for %q", name)
		}
	}
	if verify("svc.example", now.Add(-59*time.Minute)) != nil || verify("svc.example", now.Add(-61*time.Minute)) == nil ||
		verify("svc.example", now.Add(24*time.Hour-time.Second)) != nil || verify("svc.example", now.Add(24*time.Hour+time.Second)) == nil {
		t.Errorf("unexpected validity; got %s to %s; want an hour before now to now + 24h", leaf.NotBefore, leaf.NotAfter)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Errorf("unexpected: a server certificate verifies for client authentication")
	}
	if got := kp.TLSCertificate(); len(got.Certificate) != 2 || string(got.Certificate[1]) != string(ca.Cert.Raw) || got.Leaf != kp.Cert {
		t.Errorf("unexpected TLS certificate chain")
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || kp.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Errorf("unexpected CA constraints or serial numbers")
	}
}

func TestClientKeyPair(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(pkix.Name{CommonName: "client CA"}, now, time.Hour)
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	kp, err := ca.IssueClient(pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}})
	if err != nil {
		t.Fatalf("unexpected error: %s", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("unexpected verification error: %s", err)
	}
	if kp.Cert.Subject.CommonName != "admin" || len(kp.Cert.Subject.Organization) != 1 || kp.Cert.Subject.Organization[0] != "system:masters" {
		t.Errorf("unexpected subject %s", kp.Cert.Subject)
	}
}

func TestNewCARefusesNoValidity(t *testing.T) {
	if _, err := NewCA(pkix.Name{CommonName: "x"}, time.Now(), 0); err == nil {
		t.Fatalf("unexpected success for a zero validity")
	}
}
