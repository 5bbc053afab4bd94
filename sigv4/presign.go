package sigv4

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/iamgate/iamgate/sigv4/internal/aws4"
)

// PresignInput says what to sign. Credentials and ClusterID are required.
type PresignInput struct {
	ClusterID   string
	Credentials aws.Credentials
	// Region is the signing region; empty means us-east-1 (see docs/design.md: Tokens).
	Region string
	// Global signs for the legacy global endpoint sts.amazonaws.com (partition aws, signing
	// region us-east-1) instead of the regional one.
	Global bool
	// Time is the signing time (X-Amz-Date).
	Time time.Time
}

// Presign returns a k8s-aws-v1 token: a GetCallerIdentity GET presigned with aws-sdk-go-v2's
// SigV4 signer, signing host and x-k8s-aws-id (see docs/design.md: Tokens).
func Presign(ctx context.Context, in PresignInput) (string, error) {
	if in.ClusterID == "" {
		return "", fmt.Errorf("cannot presign token: cluster ID is empty")
	}
	if in.Credentials.AccessKeyID == "" || in.Credentials.SecretAccessKey == "" {
		return "", fmt.Errorf("cannot presign token: no AWS credentials")
	}
	region := in.Region
	if region == "" {
		region = "us-east-1"
	}
	host := globalHost
	if in.Global {
		if region != "us-east-1" {
			return "", fmt.Errorf("cannot presign token: the global endpoint signs for us-east-1, not %q", region)
		}
	} else {
		p, ok := PartitionForRegion(region)
		if !ok {
			return "", fmt.Errorf("cannot presign token: region %q belongs to no known partition", region)
		}
		host = p.RegionalHost(region)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"https://"+host+"/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Expires=60", nil)
	if err != nil {
		return "", fmt.Errorf("cannot build STS request: %w", err)
	}
	req.Header.Set(ClusterIDHeader, in.ClusterID)
	// The payload hash is the SHA-256 of the empty body: what aws-sdk-go-v2's STS presigner,
	// botocore and aws-iam-authenticator sign for the bodiless GET (the real-client tokens in
	// internal/testenv/testdata reproduce only with it).
	signed, _, err := v4.NewSigner().PresignHTTP(ctx, in.Credentials, req, aws4.EmptyPayloadHash,
		"sts", region, in.Time.UTC())
	if err != nil {
		return "", fmt.Errorf("cannot presign STS request: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(signed)), nil
}
