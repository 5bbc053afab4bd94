package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/mapping/ec2"
	"github.com/iamgate/iamgate/mapping/source"
)

// runExplain is `iamgate explain`: which record maps an ARN and to what user, or why none does
// (see docs/design.md: Mapping). It reads the same sources as the server, once. The exit status is non-zero when
// the ARN is not mapped, so scripts can test it.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mappingFile := fs.String("mapping.file", "", "YAML mapping to explain: an aws-auth ConfigMap manifest or a plain mapRoles/mapUsers/mapAccounts document. See also -mapping.configMap")
	configMap := fs.Bool("mapping.configMap", false, "read the live kube-system/aws-auth ConfigMap (in-cluster config or -kubeconfig); its records come after -mapping.file's, as in the server")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for -mapping.configMap; empty means the in-cluster config")
	arn := fs.String("arn", "", "the principal to explain: an assumed-role ARN as STS reports it (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), or a role, user, root or federated-user ARN; may also be given as the only argument")
	output := fs.String("o", "text", "output format: text for people, json for scripts")
	resolve := fs.Bool("ec2.resolve", false, "look {{EC2PrivateDNSName}} up with EC2 DescribeInstances (needs AWS credentials allowed to call it) instead of showing it unrendered. See also -ec2.endpoint, -ec2.region")
	ec2Endpoint := fs.String("ec2.endpoint", "", "EC2 API endpoint URL for -ec2.resolve; empty means the regional AWS endpoint (fakests serves EC2 too)")
	ec2Region := fs.String("ec2.region", "", "region of the EC2 API for -ec2.resolve; empty means the AWS SDK's region chain")
	token := fs.String("token", "", "explain the identity behind this token instead of -arn: it is validated and verified with STS like the webhook does (see -i and the -sts.* flags)")
	clusterID := fs.String("i", "", "with -token, the cluster ID the token is for")
	var sts stsFlags
	sts.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: iamgate explain [flags] [-arn] ARN\n\nExplains which mapping record maps ARN and to which Kubernetes user and groups, or why none does, naming the nearest records.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *token != "" && (*arn != "" || fs.NArg() > 0):
		return errors.New("give either -token or an ARN, not both")
	case *arn == "" && fs.NArg() == 1:
		*arn = fs.Arg(0)
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q: give one ARN", fs.Args())
	}
	if *arn == "" && *token == "" {
		fs.Usage()
		return errors.New("missing -arn")
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("unknown -o=%q: want text or json", *output)
	}
	if *mappingFile == "" && !*configMap {
		return errors.New("no mapping source: set -mapping.file and/or -mapping.configMap")
	}

	var docs []*mapping.Document
	if *mappingFile != "" {
		doc, err := source.ReadFile(*mappingFile)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	if *configMap {
		client, err := source.NewKubeClient(*kubeconfig)
		if err != nil {
			return err
		}
		doc, err := source.FetchConfigMap(ctx, client, mapping.AWSAuthNamespace, mapping.AWSAuthName)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	table, err := mapping.Compile(docs...)
	if err != nil {
		return err
	}
	var res mapping.InstanceResolver
	if *resolve {
		r, err := newEC2Resolver(ctx, *ec2Endpoint, *ec2Region, ec2.Config{BatchWindow: time.Millisecond})
		if err != nil {
			return err
		}
		res = r
	}
	if *token != "" {
		// Explain the identity STS vouches for, exactly as the webhook would see it.
		cfg := daemon.Config{ClusterID: *clusterID}
		if *clusterID == "" {
			return errors.New("-token needs -i CLUSTER (the cluster ID the token is for)")
		}
		if errs := sts.apply(&cfg); len(errs) > 0 {
			return fmt.Errorf("invalid flags:\n%w", errors.Join(errs...))
		}
		id, err := daemon.VerifyToken(ctx, cfg, *token, time.Now())
		if err != nil {
			return fmt.Errorf("cannot verify -token: %w", err)
		}
		*arn = id.ARN
		return explainResult(mapping.ExplainIdentity(ctx, table, &id, res), *arn, *output, stdout)
	}
	return explainResult(mapping.ExplainARN(ctx, table, *arn, res), *arn, *output, stdout)
}

// explainResult prints e and turns "not mapped" into a non-zero exit status for scripts.
func explainResult(e mapping.Explanation, arn, output string, stdout io.Writer) error {
	var err error
	if output == "json" {
		_, err = stdout.Write(e.JSON())
	} else {
		err = e.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	switch e.Result {
	case "mapped":
		return nil
	case "invalid":
		return fmt.Errorf("%s is not a principal ARN: %s", arn, e.Error)
	}
	return fmt.Errorf("%s is %s", arn, strings.ReplaceAll(e.Result, "_", " "))
}
