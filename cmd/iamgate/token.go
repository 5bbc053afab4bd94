package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/iamgate/iamgate/internal/awshttp"
	"github.com/iamgate/iamgate/sigv4"
)

const (
	defaultExecAPIVersion = "client.authentication.k8s.io/v1beta1"
	// credentialLifetime is shorter than the token's 15 minutes so that kubectl asks for a new
	// token before STS stops honouring the old one (see docs/design.md: Tokens).
	credentialLifetime = 14 * time.Minute
)

// tokenOptions are the flags of `iamgate token`, named as aws-iam-authenticator names them so
// that a kubeconfig switches by changing only `command`.
type tokenOptions struct {
	clusterID          string
	region             string
	role               string
	externalID         string
	sessionName        string
	forwardSessionName bool
	globalEndpoint     bool
	tokenOnly          bool
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o tokenOptions
	for _, name := range []string{"i", "cluster-id"} {
		fs.StringVar(&o.clusterID, name, "", "the cluster ID the token is for (required); the webhook's -cluster.id must equal it")
	}
	fs.StringVar(&o.region, "region", "", "STS region to sign for; default: the AWS SDK's region chain, else us-east-1")
	for _, name := range []string{"r", "role"} {
		fs.StringVar(&o.role, name, "", "IAM role ARN to assume before signing (STS AssumeRole)")
	}
	fs.StringVar(&o.externalID, "external-id", "", "external ID for --role")
	fs.StringVar(&o.sessionName, "session-name", "", "role session name for --role (default: chosen by the SDK)")
	fs.BoolVar(&o.forwardSessionName, "forward-session-name", false,
		"with --role, reuse the caller's own session name (from STS GetCallerIdentity); the default session name when the caller has none (an IAM user)")
	fs.BoolVar(&o.globalEndpoint, "global-endpoint", false,
		"sign for the legacy global endpoint sts.amazonaws.com instead of the regional one")
	fs.BoolVar(&o.tokenOnly, "token-only", false, "print only the bare token, not an ExecCredential")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	out, err := mintToken(ctx, o, os.Getenv("KUBERNETES_EXEC_INFO"), time.Now())
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, out)
	return err
}

// mintToken returns what `iamgate token` prints for the options at time now.
func mintToken(ctx context.Context, o tokenOptions, execInfo string, now time.Time) (string, error) {
	if o.clusterID == "" {
		return "", errors.New("missing cluster ID: pass -i CLUSTER (the webhook's -cluster.id)")
	}
	if o.role == "" && (o.externalID != "" || o.sessionName != "" || o.forwardSessionName) {
		return "", errors.New("--external-id, --session-name and --forward-session-name need --role")
	}
	if o.sessionName != "" && o.forwardSessionName {
		return "", errors.New("--session-name and --forward-session-name exclude each other")
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("cannot load AWS configuration: %w", err)
	}
	region := o.region
	if region == "" {
		region = cfg.Region
	}
	if region == "" {
		region = "us-east-1"
	}
	cfg.Region = region
	creds, err := credentialsFor(ctx, cfg, o)
	if err != nil {
		return "", err
	}
	token, err := sigv4.Presign(ctx, sigv4.PresignInput{
		ClusterID:   o.clusterID,
		Credentials: creds,
		Region:      region,
		Global:      o.globalEndpoint,
		Time:        now,
	})
	if err != nil {
		return "", err
	}
	if o.tokenOnly {
		return token + "\n", nil
	}
	return execCredential(token, execInfo, now)
}

// credentialsFor retrieves credentials from the default chain, assuming o.role first if set.
func credentialsFor(ctx context.Context, cfg aws.Config, o tokenOptions) (aws.Credentials, error) {
	provider := cfg.Credentials
	if provider == nil {
		return aws.Credentials{}, errors.New("cannot find AWS credentials: configure the environment, a profile, SSO or instance metadata")
	}
	if o.role != "" {
		// AssumeRole POSTs a form: the SDK race awshttp works around applies.
		client := sts.NewFromConfig(cfg, func(o *sts.Options) {
			if o.HTTPClient != nil {
				o.HTTPClient = awshttp.WithoutBodyWriteTo(o.HTTPClient)
			}
		})
		sessionName := o.sessionName
		if o.forwardSessionName {
			name, err := callerSessionName(ctx, client)
			if err != nil {
				return aws.Credentials{}, err
			}
			sessionName = name
		}
		provider = stscreds.NewAssumeRoleProvider(client, o.role, func(ar *stscreds.AssumeRoleOptions) {
			if o.externalID != "" {
				ar.ExternalID = aws.String(o.externalID)
			}
			if sessionName != "" {
				ar.RoleSessionName = sessionName
			}
		})
	}
	creds, err := provider.Retrieve(ctx)
	if err != nil {
		if o.role != "" {
			return aws.Credentials{}, fmt.Errorf("cannot assume role %s: %w", o.role, err)
		}
		return aws.Credentials{}, fmt.Errorf("cannot get AWS credentials (environment, profile, SSO or instance metadata): %w", err)
	}
	return creds, nil
}

// callerSessionName returns the session name to forward for --forward-session-name, as
// aws-iam-authenticator does: the part after ':' of the caller's unique ID (AROA…:<session>
// for an assumed role, <account>:<name> for a federated user), or "" (the default session
// name) when the ID has no such part, as for an IAM user.
func callerSessionName(ctx context.Context, client *sts.Client) (string, error) {
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("cannot get caller identity for --forward-session-name: %w", err)
	}
	parts := strings.Split(aws.ToString(out.UserId), ":")
	if len(parts) != 2 {
		return "", nil
	}
	return parts[1], nil
}

// execCredential renders the ExecCredential (see docs/design.md: Tokens): the apiVersion of KUBERNETES_EXEC_INFO
// when it is set and valid JSON, else v1beta1; expiry now + 14 minutes.
func execCredential(token, execInfo string, now time.Time) (string, error) {
	apiVersion := defaultExecAPIVersion
	if execInfo != "" {
		var info struct {
			APIVersion string `json:"apiVersion"`
		}
		if json.Unmarshal([]byte(execInfo), &info) == nil && info.APIVersion != "" {
			apiVersion = info.APIVersion
		}
	}
	type status struct {
		ExpirationTimestamp string `json:"expirationTimestamp"`
		Token               string `json:"token"`
	}
	cred := struct {
		Kind       string   `json:"kind"`
		APIVersion string   `json:"apiVersion"`
		Spec       struct{} `json:"spec"`
		Status     status   `json:"status"`
	}{
		Kind:       "ExecCredential",
		APIVersion: apiVersion,
		Status: status{
			ExpirationTimestamp: now.Add(credentialLifetime).UTC().Format(time.RFC3339),
			Token:               token,
		},
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return "", fmt.Errorf("cannot encode ExecCredential: %w", err)
	}
	return string(b) + "\n", nil
}
