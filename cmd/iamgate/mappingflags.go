package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/mapping/ec2"
	"github.com/iamgate/iamgate/mapping/source"
)

// mappingFlags are the mapping sources and the EC2 lookups of `iamgate server`, which watches
// the sources (or, with -dryRun, checks them once), and of `iamgate explain`, which reads them
// once. Each flag is named, described and wired here only.
type mappingFlags struct {
	live bool // iamgate server: the sources are watched, the EC2 names cached for every review

	file       string
	configMap  bool
	kubeconfig string

	ec2Endpoint string
	ec2Region   string

	// iamgate server only.
	poll          time.Duration
	configMapWait time.Duration
	ec2CacheTTL   time.Duration
	ec2RateLimit  float64

	// iamgate explain only: the server always resolves {{EC2PrivateDNSName}}.
	ec2Resolve bool
}

// register defines the flags on fs: with live, those of `iamgate server`; otherwise those of
// `iamgate explain`.
func (f *mappingFlags) register(fs *flag.FlagSet, live bool) {
	f.live = live
	fs.StringVar(&f.file, "mapping.file", "", "YAML mapping: an aws-auth ConfigMap manifest or a plain mapRoles/mapUsers/mapAccounts document; the server re-reads it when it changes. See also -mapping.configMap")
	fs.BoolVar(&f.configMap, "mapping.configMap", false, "read the kube-system/aws-auth ConfigMap (in-cluster config or -kubeconfig; the server watches it); its records come after -mapping.file's")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for -mapping.configMap; empty means the in-cluster config")
	fs.StringVar(&f.ec2Endpoint, "ec2.endpoint", "", "EC2 API endpoint URL for {{EC2PrivateDNSName}} lookups; empty means the regional AWS endpoint (fakests serves EC2 too)")
	fs.StringVar(&f.ec2Region, "ec2.region", "", "region of the EC2 API; empty means the AWS SDK's region chain")
	if !live {
		fs.BoolVar(&f.ec2Resolve, "ec2.resolve", false, "look {{EC2PrivateDNSName}} up with EC2 DescribeInstances (needs AWS credentials allowed to call it) instead of showing it unrendered. See also -ec2.endpoint, -ec2.region")
		return
	}
	fs.DurationVar(&f.poll, "mapping.pollInterval", 10*time.Second, "how often -mapping.file is checked besides file-system events (some mounts send none)")
	fs.DurationVar(&f.configMapWait, "mapping.configMapTimeout", source.DefaultConfigMapTimeout, "how long the first read of the aws-auth ConfigMap may take. A 403 (RBAC) or other API error is reported at once (log, iamgate_mapping_configmap_errors_total, /readyz); past this bound the ConfigMap is reported as failing and no longer holds readiness back, so -mapping.file's records apply without it. iamgate never exits for it and applies the ConfigMap as soon as it can be read")
	fs.DurationVar(&f.ec2CacheTTL, "ec2.cacheTTL", time.Hour, "how long an instance's private DNS name is cached (it never changes while the instance lives)")
	fs.Float64Var(&f.ec2RateLimit, "ec2.rateLimit", 10, "DescribeInstances calls per second at most; EC2 throttles per account")
}

// check returns every problem with the flags.
func (f *mappingFlags) check() []error {
	var errs []error
	if f.file == "" && !f.configMap {
		errs = append(errs, errors.New("no mapping source: set -mapping.file and/or -mapping.configMap"))
	}
	if f.live {
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"-mapping.pollInterval", f.poll}, {"-mapping.configMapTimeout", f.configMapWait}} {
			if d.v <= 0 {
				errs = append(errs, fmt.Errorf("%s=%s must be positive", d.name, d.v))
			}
		}
	}
	return errs
}

// start builds the live mapping of `iamgate server`: a Store on reg's metrics, its sources and
// the EC2 resolver, and returns the daemon's Mapper and the Run of each source. With dryRun it
// reads each source once instead and fails on a refused record: the server would apply the
// other records, a check before deploying must not pass.
func (f *mappingFlags) start(ctx context.Context, log *slog.Logger, reg prometheus.Registerer, dryRun bool) (source.Mapper, []func(context.Context) error, error) {
	store := source.NewStore(log, source.NewMetrics(reg))
	resolver, err := f.resolver(ctx, ec2.NewMetrics(reg))
	if err != nil {
		return source.Mapper{}, nil, err
	}
	var runs []func(context.Context) error
	if f.file != "" {
		src := source.NewFile(f.file, store, log, f.poll)
		if dryRun {
			if err := src.Load(); err != nil {
				return source.Mapper{}, nil, fmt.Errorf("cannot load -mapping.file=%q: %w", f.file, err)
			}
			if err := mapping.RefusedError(store.Table()); err != nil {
				return source.Mapper{}, nil, fmt.Errorf("-mapping.file=%q has refused records (the server would apply the others):\n%w", f.file, err)
			}
		}
		runs = append(runs, src.Run)
	}
	if f.configMap {
		client, err := source.NewKubeClient(f.kubeconfig)
		if err != nil {
			return source.Mapper{}, nil, err
		}
		if dryRun {
			doc, err := source.FetchConfigMap(ctx, client, mapping.AWSAuthNamespace, mapping.AWSAuthName)
			if err != nil {
				return source.Mapper{}, nil, err
			}
			if err := doc.Err(); err != nil {
				return source.Mapper{}, nil, fmt.Errorf("%s has refused records (the server would apply the others):\n%w", doc.Source, err)
			}
		}
		src := source.NewConfigMap(client, mapping.AWSAuthNamespace, mapping.AWSAuthName, store, log, 10*time.Minute)
		src.Timeout = f.configMapWait
		runs = append(runs, src.Run)
	}
	return source.Mapper{Store: store, Resolver: resolver}, runs, nil
}

// table reads each source once, as `iamgate explain` does, and compiles them in the server's
// precedence.
func (f *mappingFlags) table(ctx context.Context) (*mapping.Table, error) {
	var docs []*mapping.Document
	if f.file != "" {
		doc, err := source.ReadFile(f.file)
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
	if f.configMap {
		client, err := source.NewKubeClient(f.kubeconfig)
		if err != nil {
			return nil, err
		}
		doc, err := source.FetchConfigMap(ctx, client, mapping.AWSAuthNamespace, mapping.AWSAuthName)
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
	return mapping.Compile(docs...)
}

// resolver builds the {{EC2PrivateDNSName}} resolver over EC2's API at -ec2.endpoint (empty:
// the regional AWS endpoint). It needs AWS credentials only when a lookup happens; the SDK
// resolves them lazily. metrics may be nil.
func (f *mappingFlags) resolver(ctx context.Context, metrics *ec2.Metrics) (*ec2.Resolver, error) {
	var opts []func(*config.LoadOptions) error
	if f.ec2Region != "" {
		opts = append(opts, config.WithRegion(f.ec2Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot load AWS configuration for EC2 lookups: %w", err)
	}
	cfg := ec2.Config{
		Client: awsec2.NewFromConfig(awsCfg, func(o *awsec2.Options) {
			if f.ec2Endpoint != "" {
				o.BaseEndpoint = aws.String(f.ec2Endpoint)
			}
		}),
		Now: time.Now, TTL: f.ec2CacheTTL, RatePerSecond: f.ec2RateLimit, Metrics: metrics,
	}
	return ec2.NewResolver(cfg)
}
