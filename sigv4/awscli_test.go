package sigv4

import (
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// TestAWSCLIv2Token validates a fresh token from the real AWS CLI v2 (`aws eks get-token`).
func TestAWSCLIv2Token(t *testing.T) {
	aws := testenv.AWSCLIv2(t)
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		cmd := exec.Command(aws, "eks", "get-token", "--cluster-name", "demo-cluster", "--region", region)
		cmd.Env = testenv.AWSEnv(t, "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
			"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("aws eks get-token failed: %v", err)
		}
		var cred struct{ Status struct{ Token string } }
		if err := json.Unmarshal(out, &cred); err != nil {
			t.Fatalf("cannot parse aws eks get-token output: %s", err)
		}
		v := testValidator(t)
		var r Request
		if err := v.Validate([]byte(cred.Status.Token), time.Now(), &r); err != nil {
			t.Fatalf("unexpected error for the AWS CLI v2 token: %v", err)
		}
		if r.Region() != region {
			t.Fatalf("unexpected region; got %q; want %q", r.Region(), region)
		}
		// Its signature verifies as AWS would verify it, and only with the right inputs.
		u := sigTokenURL(t, cred.Status.Token)
		if err := sigCheck(sigTokenRequest(u, u.RawQuery, "demo-cluster"), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", time.Now()); err != nil {
			t.Fatalf("unexpected signature error for the AWS CLI v2 token: %v", err)
		}
		if err := sigCheck(sigTokenRequest(u, u.RawQuery, "demo-cluster"), "wrong", time.Now()); err == nil {
			t.Fatalf("unexpected: the AWS CLI v2 token verifies with a wrong secret")
		}
		if err := sigCheck(sigTokenRequest(u, u.RawQuery, "other-cluster"), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", time.Now()); err == nil {
			t.Fatalf("unexpected: the AWS CLI v2 token verifies for another cluster")
		}
	}
}
