package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iamgate/iamgate/daemon"
	"github.com/iamgate/iamgate/sigv4"
)

// runVerify checks one token as the webhook would (local rules, then STS) and prints who
// signed it: the answer to "whose token is this, and does it still work?".
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return verifyWith(ctx, args, os.Stdin, stdout, stderr, time.Now)
}

func verifyWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var clusterID, token, output string
	for _, name := range []string{"i", "cluster-id"} {
		fs.StringVar(&clusterID, name, "", "the cluster ID the token must be signed for (required)")
	}
	fs.StringVar(&token, "t", "", "the token; empty or - reads it from standard input")
	fs.StringVar(&output, "o", "text", "output: text or json")
	var sts stsFlags
	sts.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if clusterID == "" {
		return errors.New("missing cluster ID: pass -i CLUSTER")
	}
	if output != "text" && output != "json" {
		return fmt.Errorf("cannot use -o=%q: want text or json", output)
	}
	if token == "" || token == "-" {
		line, err := bufio.NewReader(io.LimitReader(stdin, sigv4.MaxTokenSize+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("cannot read the token from standard input: %w", err)
		}
		token = strings.TrimSpace(line)
	}
	cfg := daemon.Config{ClusterID: clusterID}
	if errs := sts.apply(&cfg); len(errs) > 0 {
		return fmt.Errorf("invalid flags:\n%w", errors.Join(errs...))
	}
	id, err := daemon.VerifyToken(ctx, cfg, token, now())
	if err != nil {
		var reject *sigv4.RejectError
		if errors.As(err, &reject) {
			return fmt.Errorf("token rejected locally (%s): %w", reject.Reason(), err)
		}
		return fmt.Errorf("token not verified: %w", err)
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]string{
			"arn": id.ARN, "canonicalArn": id.CanonicalARN, "account": id.AccountID, "userId": id.UserID,
			"principalId": id.PrincipalID, "sessionName": id.SessionName, "accessKeyId": id.AccessKeyID,
		})
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, row := range [][2]string{
		{"ARN", id.ARN}, {"Canonical ARN", id.CanonicalARN}, {"Account", id.AccountID}, {"User ID", id.UserID},
		{"Principal ID", id.PrincipalID}, {"Session name", id.SessionName}, {"Access key ID", id.AccessKeyID},
	} {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
	return w.Flush()
}
