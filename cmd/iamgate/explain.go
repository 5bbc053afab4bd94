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
)

// runExplain is `iamgate explain`: which record maps an ARN and to what user, or why none does
// (see docs/design.md: Mapping). It reads the same sources as the server, once. The exit status is non-zero when
// the ARN is not mapped, so scripts can test it.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf mappingFlags
	mf.register(fs, false)
	arn := fs.String("arn", "", "the principal to explain: an assumed-role ARN as STS reports it (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), or a role, user, root or federated-user ARN; may also be given as the only argument")
	output := fs.String("o", "text", "output format: text for people, json for scripts")
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
	if errs := mf.check(); len(errs) > 0 {
		return errors.Join(errs...)
	}

	table, err := mf.table(ctx)
	if err != nil {
		return err
	}
	var res mapping.InstanceResolver
	if mf.ec2Resolve {
		r, err := mf.resolver(ctx, nil)
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
