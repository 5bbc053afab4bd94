package main

import (
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/sigv4"
)

// stsFlags are how `iamgate server` and `iamgate verify` validate tokens and reach STS.
type stsFlags struct {
	partitions   string
	extraRegions string
	stsTimeout   time.Duration
	dialOverride string
	insecureHTTP bool
	stsCAFile    string
	maxClockSkew time.Duration
}

// register defines the flags, their defaults those of daemon.DefaultConfig.
func (f *stsFlags) register(fs *flag.FlagSet) {
	d := daemon.DefaultConfig()
	fs.StringVar(&f.partitions, "sts.partitions", strings.Join(d.Partitions, ","), "comma-separated AWS partitions whose STS hosts tokens may name ("+strings.Join(sigv4.PartitionIDs(), ", ")+"). See also -sts.extraRegions")
	fs.StringVar(&f.extraRegions, "sts.extraRegions", "", "comma-separated regions to allow beyond the built-in list (a region newer than this build); each must match one of -sts.partitions")
	fs.DurationVar(&f.stsTimeout, "sts.timeout", d.STS.Timeout, "bound on one STS call once it has started (the wait before it is -sts.queueWait, for iamgate server); kube-apiserver's own webhook timeout is 30s and it retries 5xx")
	fs.StringVar(&f.dialOverride, "sts.dialOverride", "", "send every STS call to this host:port, keeping the signed Host header and TLS server name. Tests, benchmarks and local development with fakests ONLY")
	fs.BoolVar(&f.insecureHTTP, "sts.insecureHTTP", false, "with -sts.dialOverride, speak plain HTTP (fakests without -tls). Never in production")
	fs.StringVar(&f.stsCAFile, "sts.caFile", "", "PEM CA bundle to verify STS with instead of the system pool (fakests -tls writes one)")
	fs.DurationVar(&f.maxClockSkew, "token.maxClockSkew", d.MaxClockSkew, "how far in the future a token's X-Amz-Date may be; tolerates client clocks that run fast")
}

// apply validates the flags into cfg and returns every problem found.
func (f *stsFlags) apply(cfg *daemon.Config) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if f.stsTimeout < 100*time.Millisecond || f.stsTimeout > time.Minute {
		bad("-sts.timeout=%s must be between 100ms and 1m", f.stsTimeout)
	}
	if f.insecureHTTP && f.dialOverride == "" {
		bad("-sts.insecureHTTP needs -sts.dialOverride")
	}
	if f.maxClockSkew < 0 || f.maxClockSkew > time.Hour {
		bad("-token.maxClockSkew=%s must be between 0 and 1h", f.maxClockSkew)
	}
	cfg.Partitions = splitList(f.partitions)
	cfg.ExtraRegions = splitList(f.extraRegions)
	cfg.MaxClockSkew = f.maxClockSkew
	cfg.STS.Timeout = f.stsTimeout
	cfg.STS.DialOverride = f.dialOverride
	cfg.STS.InsecureHTTP = f.insecureHTTP
	if _, err := sigv4.NewAllowList(cfg.Partitions, cfg.ExtraRegions); err != nil {
		errs = append(errs, err)
	}
	if f.stsCAFile != "" {
		pem, err := os.ReadFile(f.stsCAFile)
		if err != nil {
			bad("cannot read -sts.caFile=%q: %w", f.stsCAFile, err)
		} else {
			cfg.STS.RootCAs = x509.NewCertPool()
			if !cfg.STS.RootCAs.AppendCertsFromPEM(pem) {
				bad("cannot use -sts.caFile=%q: no PEM certificate in it", f.stsCAFile)
			}
		}
	}
	return errs
}
