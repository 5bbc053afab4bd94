package fakests

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"strings"
	"time"

	"github.com/iamgate/iamgate/internal/pki"
)

// partitionRegions are the regions of each partition domain (aws-sdk-go-v2 partition data,
// v1.48), for the certificate names and for checking the region of a credential scope against
// the host it was sent to.
var partitionRegions = map[string][]string{
	"amazonaws.com": {"af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2",
		"ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
		"ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
		"ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
		"eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
		"me-south-1", "me-west-1", "mx-central-1", "sa-east-1", "sa-west-1", "us-east-1",
		"us-east-2", "us-west-1", "us-west-2", "us-gov-east-1", "us-gov-west-1"},
	"amazonaws.com.cn": {"cn-north-1", "cn-northwest-1"},
	"amazonaws.eu":     {"eusc-de-east-1"},
	"c2s.ic.gov":       {"us-iso-east-1", "us-iso-west-1"},
	"sc2s.sgov.gov":    {"us-isob-east-1", "us-isob-west-1"},
	"cloud.adc-e.uk":   {"eu-isoe-west-1"},
	"csp.hci.ic.gov":   {"us-isof-east-1", "us-isof-south-1"},
}

// dualStackDomains maps each dual-stack domain to its partition domain.
var dualStackDomains = map[string]string{
	"api.aws": "amazonaws.com", "api.amazonwebservices.com.cn": "amazonaws.com.cn",
	"api.amazonwebservices.eu": "amazonaws.eu", "api.aws.ic.gov": "c2s.ic.gov",
	"api.aws.scloud": "sc2s.sgov.gov", "api.cloud-aws.adc-e.uk": "cloud.adc-e.uk",
	"api.aws.hci.ic.gov": "csp.hci.ic.gov",
}

// hostRegion returns the signing region an AWS endpoint host implies: sts.amazonaws.com and
// ec2.amazonaws.com sign for us-east-1, <service>[-fips].<region>.<domain> for region. Any
// other host (127.0.0.1:port through --endpoint-url) implies nothing: ok is false.
func hostRegion(host string) (region string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	service, rest, found := strings.Cut(host, ".")
	if !found {
		return "", false
	}
	switch strings.TrimSuffix(service, "-fips") {
	case "sts", "ec2":
	default:
		return "", false
	}
	if rest == "amazonaws.com" {
		return "us-east-1", true
	}
	region, domain, found := strings.Cut(rest, ".")
	if !found {
		return "", false
	}
	if _, ok := partitionRegions[domain]; ok {
		return region, true
	}
	if _, ok := dualStackDomains[domain]; ok {
		return region, true
	}
	return "", false
}

// certNames are the DNS names of the leaf: the STS and EC2 endpoints of every known region
// (as *.<region>.<domain> wildcards), the global ones, localhost, plus extra.
func certNames(extra []string) []string {
	names := []string{"sts.amazonaws.com", "ec2.amazonaws.com", "*.amazonaws.com", "localhost"}
	for domain, regions := range partitionRegions {
		for _, r := range regions {
			names = append(names, "*."+r+"."+domain)
		}
	}
	for dual, domain := range dualStackDomains {
		for _, r := range partitionRegions[domain] {
			names = append(names, "*."+r+"."+dual)
		}
	}
	return append(names, extra...)
}

// tlsMaterial is a generated CA and the leaf it signed.
type tlsMaterial struct {
	caPEM  []byte
	config *tls.Config
}

// newTLS generates an ECDSA P-256 CA and a leaf for certNames(extraNames), 127.0.0.1 and ::1,
// valid from now-1h for 30 days (now is the real time: TLS peers check certificates against
// their own clock).
func newTLS(extraNames []string, now time.Time) (*tlsMaterial, error) {
	ca, err := pki.NewCA(pkix.Name{CommonName: "fakests test CA", Organization: []string{"iamgate fakests"}}, now, 30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	leaf, err := ca.IssueServer(pkix.Name{CommonName: "sts.amazonaws.com"}, append(certNames(extraNames), "127.0.0.1", "::1"))
	if err != nil {
		return nil, err
	}
	return &tlsMaterial{
		caPEM: ca.CertPEM(),
		config: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{leaf.TLSCertificate()},
			NextProtos:   []string{"http/1.1"},
		},
	}, nil
}

// tlsListener serves TLS with the generated leaf on ln.
func tlsListener(ln net.Listener, m *tlsMaterial) net.Listener {
	return tls.NewListener(ln, m.config)
}
