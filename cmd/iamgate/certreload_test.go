package main

import (
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	initPKI := func() {
		t.Helper()
		var out, errOut strings.Builder
		if err := runInit(t.Context(), []string{"-out", dir, "-force"}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
	}
	serial := func(r *certReloader) string {
		t.Helper()
		c, err := r.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber.String()
	}
	initPKI()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	r, err := newCertReloader(certFile, keyFile, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := serial(r)
	if again := serial(r); again != first {
		t.Fatalf("unexpected new certificate without a change on disk")
	}
	initPKI() // a rotation: new files
	rotated := serial(r)
	if rotated == first {
		t.Fatalf("unexpected: the rotated key pair was not picked up")
	}
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nhalf-written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := serial(r); got != rotated {
		t.Fatalf("unexpected certificate after a broken write; got serial %s; want the previous %s", got, rotated)
	}
	if _, err := newCertReloader(certFile, keyFile, 0, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatalf("unexpected success loading a broken key pair at start")
	}
}
