// Package pki generates the TLS certificates iamgate's tools and tests need: a CA, the server
// and client key pairs it signs, and their PEM encoding. `iamgate init` writes the webhook's
// with it, the fake STS (`fakests -tls`) serves with it, and the e2e suite plays an operator's
// CA with it.
//
// Every key is ECDSA P-256 and every serial number 127 random bits. A CA is valid from one hour
// before the given time (peers whose clock runs behind still accept it) to that time plus the
// given validity, and so is every key pair it issues. Only the standard library is used, so
// importing the package pulls nothing into a binary.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is a self-signed certificate authority that issues key pairs. Its fields are not to be
// modified; a CA is safe for concurrent use.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// KeyPair is a certificate signed by a CA and its private key, with the chain a server
// presents.
type KeyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// chain is the DER of Cert, then of its CA.
	chain [][]byte
}

// NewCA creates a CA for subject, valid from now - 1 h to now + validity, that may sign leaf
// certificates only (path length zero).
func NewCA(subject pkix.Name, now time.Time, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		return nil, errors.New("cannot create CA certificate: the validity must be positive")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cannot create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// IssueServer signs a key pair for TLS server authentication for hosts: each is an IP address
// (IPv4 or IPv6) or else a DNS name, wildcards such as *.example.com included.
func (ca *CA) IssueServer(subject pkix.Name, hosts []string) (*KeyPair, error) {
	tmpl := &x509.Certificate{Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl)
}

// IssueClient signs a key pair for TLS client authentication; Kubernetes reads the user name
// from subject's CommonName and the groups from its Organization.
func (ca *CA) IssueClient(subject pkix.Name) (*KeyPair, error) {
	return ca.issue(&x509.Certificate{Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// issue completes tmpl (serial, validity, key usage) and signs a new key with it.
func (ca *CA) issue(tmpl *x509.Certificate) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate key for %q: %w", tmpl.Subject.CommonName, err)
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, err
	}
	tmpl.NotBefore, tmpl.NotAfter = ca.Cert.NotBefore, ca.Cert.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("cannot create certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	return &KeyPair{Cert: cert, Key: key, chain: [][]byte{der, ca.Cert.Raw}}, nil
}

// CertPEM is the CA certificate in PEM, for a trust store or a kubeconfig.
func (ca *CA) CertPEM() []byte { return certPEM(ca.Cert) }

// CertPEM is the certificate alone in PEM (a server's cert.pem; its CA is distributed apart).
func (kp *KeyPair) CertPEM() []byte { return certPEM(kp.Cert) }

// KeyPEM is the private key in PEM, as an "EC PRIVATE KEY" (SEC 1) block.
func (kp *KeyPair) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(kp.Key)
	if err != nil {
		return nil, fmt.Errorf("cannot encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// TLSCertificate is the key pair for a tls.Config, presenting the certificate and its CA.
func (kp *KeyPair) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: kp.chain, PrivateKey: kp.Key, Leaf: kp.Cert}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// randomSerial is a serial number of up to 127 random bits, within the 20 octets RFC 5280
// allows.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("cannot draw a serial number: %w", err)
	}
	return n, nil
}
