package signature

import (
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// TestAWSCLIv2Token: a fresh token from the real AWS CLI v2 (`aws eks get-token`) verifies as
// AWS would verify it, and only with the right secret and cluster ID.
func TestAWSCLIv2Token(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	// One region: the CLI is slow to start, and the real-client tokens of TestRealClientTokens
	// cover the others.
	u := tokenURL(t, testenv.EKSToken(t, "demo-cluster", "eu-west-1", "AKIAIOSFODNN7EXAMPLE", secret))
	if err := check(tokenRequest(u, u.RawQuery, "demo-cluster"), secret, time.Now()); err != nil {
		t.Fatalf("unexpected signature error for the AWS CLI v2 token: %v", err)
	}
	if err := check(tokenRequest(u, u.RawQuery, "demo-cluster"), "wrong", time.Now()); err == nil {
		t.Fatalf("unexpected: the AWS CLI v2 token verifies with a wrong secret")
	}
	if err := check(tokenRequest(u, u.RawQuery, "other-cluster"), secret, time.Now()); err == nil {
		t.Fatalf("unexpected: the AWS CLI v2 token verifies for another cluster")
	}
}
