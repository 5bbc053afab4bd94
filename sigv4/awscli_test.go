package sigv4

import (
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// TestAWSCLIv2Token validates a fresh token from the real AWS CLI v2 (`aws eks get-token`);
// sigv4/signature's test of the same name verifies its signature.
func TestAWSCLIv2Token(t *testing.T) {
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		token := testenv.EKSToken(t, "demo-cluster", region, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
		v := testValidator(t)
		var r Request
		if err := v.Validate([]byte(token), time.Now(), &r); err != nil {
			t.Fatalf("unexpected error for the AWS CLI v2 token: %v", err)
		}
		if r.Region() != region {
			t.Fatalf("unexpected region; got %q; want %q", r.Region(), region)
		}
	}
}
