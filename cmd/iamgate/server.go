package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/sigv4"
)

// serverFlags are the flags of `iamgate server`, named -group.name.
type serverFlags struct {
	clusterID    string
	webhookAddr  string
	internalAddr string
	certFile     string
	keyFile      string

	stsFlags
	stsConcurrency int
	stsQueue       int
	stsQueueWait   time.Duration
	stsAdaptive    bool
	stsKeyPriority bool
	stsKeys        int

	cacheTTL    time.Duration
	negativeTTL time.Duration
	cacheBytes  byteSize

	mapping mappingFlags

	reportErrors  bool
	readTimeout   time.Duration
	writeTimeout  time.Duration
	idleTimeout   time.Duration
	logLevel      string
	logFormat     string
	dryRun        bool
	insecureNoTLS bool
	http2         bool
	pprof         bool
	passthrough   bool

	certReloader *certReloader // set by config when TLS is on
}

// register defines the flags, their defaults those of daemon.DefaultConfig.
func (f *serverFlags) register(fs *flag.FlagSet) {
	d := daemon.DefaultConfig()
	fs.StringVar(&f.clusterID, "cluster.id", "", "the cluster ID tokens must be signed for (x-k8s-aws-id); `iamgate token -i` and `aws eks get-token --cluster-name` use the same value. Required")
	fs.StringVar(&f.webhookAddr, "webhook.listenAddr", "127.0.0.1:21362", "TLS address of POST /authenticate for kube-apiserver. Loopback by default: on a control-plane node kube-apiserver is local")
	fs.StringVar(&f.internalAddr, "internal.listenAddr", "127.0.0.1:21363", "plain-HTTP address of /metrics, /healthz and /readyz (and /debug/pprof/ with -internal.pprof); empty disables it. Keep it off the webhook port")
	fs.BoolVar(&f.pprof, "internal.pprof", d.Pprof, "also serve /debug/pprof/ on -internal.listenAddr, for profiling. Off by default: profiles and traces are for whoever debugs, not for every host that may scrape metrics")
	fs.StringVar(&f.certFile, "tls.certFile", "", "PEM certificate (chain) of the webhook listener; `iamgate init` writes one. Required")
	fs.StringVar(&f.keyFile, "tls.keyFile", "", "PEM private key of -tls.certFile. Required")

	f.stsFlags.register(fs)
	fs.IntVar(&f.stsConcurrency, "sts.maxConcurrency", d.STS.MaxConcurrency, "STS calls in flight at most; STS throttles per account, and the cache and collapsing keep the need low")
	fs.DurationVar(&f.stsQueueWait, "sts.queueWait", d.STS.QueueWait, "how long a review may wait for an STS slot or rate token before its call starts (then -sts.timeout bounds the call), so that it is answered in one request rather than falling into kube-apiserver's and its client's backoff; a review the adaptive rate cannot start within it gets 429 at once. kube-apiserver gives a review 30s, its retries included, and its retries take up to 5s: keep this plus -sts.timeout at 25s or below")
	fs.IntVar(&f.stsQueue, "sts.maxQueue", d.STS.MaxQueue, "reviews waiting for an STS slot or rate token at most, per class of access key (verified before, new); beyond it reviews fail fast with 429 instead of piling up")
	fs.BoolVar(&f.stsAdaptive, "sts.adaptiveRate", !d.STS.NoAdaptiveRate, "once STS answers Throttling, pace STS calls at the rate it accepts and probe back up, answering the reviews that cannot wait with 429 (kube-apiserver retries them); false only to measure its effect")
	fs.BoolVar(&f.stsKeyPriority, "sts.keyPriority", !d.STS.NoKeyPriority, "when STS calls must wait, start those for access keys STS verified in the last hour or two before those for never-seen keys (which still get 1 start in 4), so that a flood of forged tokens cannot starve known nodes and users; false only to measure its effect")
	fs.IntVar(&f.stsKeys, "sts.verifiedKeys", d.STS.VerifiedKeys, "access keys remembered for -sts.keyPriority, per generation of one hour (about 40 bytes each, two generations)")
	fs.DurationVar(&f.cacheTTL, "cache.ttl", d.CacheTTL, "how long a verified identity is cached, never past its token's 15 minutes; also the revocation delay for deleted IAM keys. Matches kube-apiserver's default webhook cache TTL")
	fs.DurationVar(&f.negativeTTL, "cache.negativeTTL", d.CacheNegativeTTL, "how long a token STS rejected stays rejected without asking STS again (a flood of one bad token costs one call)")
	f.cacheBytes = byteSize(d.CacheMaxBytes)
	fs.Var(&f.cacheBytes, "cache.maxBytes", "memory bound of the identity cache (e.g. 64MiB, 1GiB); about 650 bytes per cached token (make bench's memory step, BENCHMARKS.md)")

	f.mapping.register(fs, true)

	fs.BoolVar(&f.reportErrors, "review.reportErrors", d.ReportErrors, "put the denial reason in status.error; kube-apiserver then does not cache denials (more webhook traffic, clearer audit logs)")
	fs.DurationVar(&f.readTimeout, "webhook.readTimeout", d.ReadTimeout, "time to read a whole request; cuts off slow clients")
	fs.DurationVar(&f.writeTimeout, "webhook.writeTimeout", d.WriteTimeout, "time to write an answer")
	fs.DurationVar(&f.idleTimeout, "webhook.idleTimeout", d.IdleTimeout, "how long an idle keep-alive connection from kube-apiserver stays open")
	fs.StringVar(&f.logLevel, "log.level", "info", "debug, info, warn or error. warn logs the canonical ARN of each unmapped identity and STS and EC2 failures, info adds why tokens were denied, debug per-connection messages; never a token (docs/design.md: Logs)")
	fs.StringVar(&f.logFormat, "log.format", "text", "text or json")
	fs.BoolVar(&f.dryRun, "dryRun", false, "check flags, TLS files and mapping sources, print what would run, and exit")
	fs.BoolVar(&f.http2, "webhook.http2", d.HTTP2, "offer HTTP/2 by ALPN on the TLS webhook listener: kube-apiserver then sends every review over one multiplexed connection instead of opening (and handshaking) new HTTP/1.1 connections whenever more reviews are in flight than its idle pool keeps. false serves HTTP/1.1 only")
	fs.BoolVar(&f.insecureNoTLS, "webhook.insecureNoTLS", false, "serve the webhook over plain HTTP on a loopback address. Local demos and benchmarks ONLY; kube-apiserver requires TLS")
	fs.BoolVar(&f.passthrough, "baseline.passthrough", d.BaselinePassthrough, "switch off the identity cache, the rejection cache and the collapsing of STS calls: one STS call per review, like a webhook without them. Benchmarking baseline ONLY (make bench measures iamgate against it); never in production")
}

// config validates the flags and turns them into daemon settings.
func (f *serverFlags) config() (daemon.Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if f.clusterID == "" {
		bad("-cluster.id is required")
	}
	if f.insecureNoTLS {
		if host, _, err := net.SplitHostPort(f.webhookAddr); err != nil || !net.ParseIP(host).IsLoopback() {
			bad("-webhook.insecureNoTLS needs a loopback -webhook.listenAddr, not %q", f.webhookAddr)
		}
	} else if f.certFile == "" || f.keyFile == "" {
		bad("-tls.certFile and -tls.keyFile are required (`iamgate init` writes them)")
	}
	errs = append(errs, f.mapping.check()...)
	if f.stsConcurrency < 1 || f.stsConcurrency > 10000 {
		bad("-sts.maxConcurrency=%d must be between 1 and 10000", f.stsConcurrency)
	}
	if f.stsKeys < 1 || f.stsKeys > 10_000_000 {
		bad("-sts.verifiedKeys=%d must be between 1 and 10000000", f.stsKeys)
	}
	if f.stsQueueWait < 0 || f.stsQueueWait > time.Minute {
		bad("-sts.queueWait=%s must be between 0 and 1m", f.stsQueueWait)
	}
	if f.stsQueue < 0 || f.stsQueue > 1_000_000 {
		bad("-sts.maxQueue=%d must be between 0 and 1000000", f.stsQueue)
	}
	if f.cacheTTL <= 0 || f.cacheTTL > sigv4.ValidFor {
		bad("-cache.ttl=%s must be positive and at most %s (a token's life)", f.cacheTTL, sigv4.ValidFor)
	}
	if f.negativeTTL < 0 || f.negativeTTL > sigv4.ValidFor {
		bad("-cache.negativeTTL=%s must be between 0 and %s", f.negativeTTL, sigv4.ValidFor)
	}
	if f.cacheBytes < 1<<20 {
		bad("-cache.maxBytes=%s must be at least 1MiB", f.cacheBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-webhook.readTimeout", f.readTimeout}, {"-webhook.writeTimeout", f.writeTimeout}, {"-webhook.idleTimeout", f.idleTimeout}} {
		if d.v <= 0 {
			bad("%s=%s must be positive", d.name, d.v)
		}
	}
	cfg := daemon.Config{
		ClusterID: f.clusterID,
		CacheTTL:  f.cacheTTL, CacheNegativeTTL: f.negativeTTL, CacheMaxBytes: int64(f.cacheBytes),
		Pprof:        f.pprof,
		ReportErrors: f.reportErrors, BaselinePassthrough: f.passthrough,
		ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout, IdleTimeout: f.idleTimeout,
		HTTP2:   f.http2,
		Version: version,
	}
	errs = append(errs, f.stsFlags.apply(&cfg)...)
	cfg.STS.MaxConcurrency, cfg.STS.MaxQueue, cfg.STS.QueueWait = f.stsConcurrency, f.stsQueue, f.stsQueueWait
	cfg.STS.NoAdaptiveRate, cfg.STS.NoKeyPriority, cfg.STS.VerifiedKeys = !f.stsAdaptive, !f.stsKeyPriority, f.stsKeys
	if !f.insecureNoTLS && f.certFile != "" && f.keyFile != "" {
		reloader, err := newCertReloader(f.certFile, f.keyFile, 10*time.Second, slog.Default())
		if err != nil {
			errs = append(errs, err)
		} else {
			cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: reloader.getCertificate}
			f.certReloader = reloader
		}
	}
	return cfg, errors.Join(errs...)
}

// kube-apiserver (k8s.io/apiserver) waits 30 s for one TokenReview request, the timeout its
// webhook kubeconfig loader sets, and 30 s for a token's lookup with its retries, the bound of
// its token cache; its default backoff sends the last retry up to about 5 s into the lookup.
const (
	kubeAPIServerWebhookTimeout = 30 * time.Second
	kubeAPIServerRetrySpan      = 5 * time.Second
)

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serverFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return fmt.Errorf("invalid flags:\n%w", err)
	}
	cfg.Logger = log
	cfg.Registry = prometheus.NewRegistry()
	if f.certReloader != nil {
		f.certReloader.log = log
	}

	mapper, sources, err := f.mapping.start(ctx, log, cfg.Registry, f.dryRun)
	if err != nil {
		return err
	}
	srv, err := daemon.New(cfg, mapper)
	if err != nil {
		return err
	}
	if f.passthrough {
		log.Warn("-baseline.passthrough: no identity cache, no rejection cache, no collapsing; one STS call per review. Benchmarking baseline ONLY")
	}
	if cfg.STS.QueueWait+cfg.STS.Timeout > kubeAPIServerWebhookTimeout-kubeAPIServerRetrySpan {
		log.Warn("-sts.queueWait plus -sts.timeout leave less than kube-apiserver's retries take within its webhook timeout: it may give up on reviews iamgate still holds",
			"queueWait", cfg.STS.QueueWait, "timeout", cfg.STS.Timeout, "kubeAPIServerTimeout", kubeAPIServerWebhookTimeout)
	}
	if f.dialOverride != "" {
		log.Warn("STS calls go to -sts.dialOverride: for tests and local development only", "dialOverride", f.dialOverride, "insecureHTTP", f.insecureHTTP)
	}
	if f.dryRun {
		fmt.Fprintf(stdout, "flags OK; cluster %q; webhook %s; internal %s; partitions %s\n", f.clusterID, f.webhookAddr, f.internalAddr, f.partitions)
		if t := mapper.Store.Table(); t != nil {
			fmt.Fprintf(stdout, "mapping OK: %+v\n", t.Entries())
		}
		return nil
	}

	webhook, err := net.Listen("tcp", f.webhookAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on -webhook.listenAddr=%q: %w", f.webhookAddr, err)
	}
	var internal net.Listener
	if f.internalAddr != "" {
		if internal, err = net.Listen("tcp", f.internalAddr); err != nil {
			webhook.Close()
			return fmt.Errorf("cannot listen on -internal.listenAddr=%q: %w", f.internalAddr, err)
		}
	}
	log.Info("iamgate listening", "webhook", webhook.Addr().String(), "internal", f.internalAddr,
		"clusterID", f.clusterID, "tls", cfg.TLS != nil, "http2", cfg.TLS != nil && cfg.HTTP2, "version", version)

	g, gctx := errgroup.WithContext(ctx)
	for _, run := range sources {
		g.Go(func() error { return run(gctx) })
	}
	g.Go(func() error { return srv.Serve(gctx, webhook, internal) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("iamgate stopped")
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("cannot use -log.level=%q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("cannot use -log.format=%q: want text or json", format)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
