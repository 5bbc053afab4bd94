package fakests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// sdkConfig is an aws-sdk-go-v2 config for static credentials, without retries (so a test sees
// each answer) and without any shared file or IMDS lookup.
func sdkConfig(key, secret, token string) aws.Config {
	return aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(key, secret, token),
		RetryMaxAttempts: 1,
		HTTPClient:       &http.Client{Timeout: 5 * time.Second},
	}
}

func stsClient(s *Server, cfg aws.Config) *sts.Client {
	return sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(s.URL()) })
}

// apiErrorCode returns the AWS error code of err, or "" when it is not an API error.
func apiErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestSDKSTS: aws-sdk-go-v2's STS client (POST form, header-signed, XML answers) gets the
// caller identity, assumes a role and uses the issued credentials until they expire.
func TestSDKSTS(t *testing.T) {
	clock := &testClock{}
	s := startServer(t, testConfig(t), Options{Clock: clock.Now})
	ctx := context.Background()
	user := stsClient(s, sdkConfig(testUserKey, testUserSecret, ""))

	out, err := user.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("cannot get caller identity: %s", err)
	}
	if aws.ToString(out.Arn) != testUserARN || aws.ToString(out.Account) != testAccount || aws.ToString(out.UserId) != "AIDAEXAMPLEUSERID1234" {
		t.Errorf("unexpected identity; got %s %s %s; want %s", aws.ToString(out.Arn), aws.ToString(out.Account), aws.ToString(out.UserId), testUserARN)
	}

	_, err = stsClient(s, sdkConfig(testUserKey, testUserSecret+"x", "")).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code := apiErrorCode(err); code != CodeSignatureDoesNotMatch {
		t.Errorf("unexpected error code for a wrong secret; got %q (%v); want %q", code, err, CodeSignatureDoesNotMatch)
	}

	ar, err := user.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(testRoleARN), RoleSessionName: aws.String("bob@example.com"), DurationSeconds: aws.Int32(900)})
	if err != nil {
		t.Fatalf("cannot assume role: %s", err)
	}
	c := ar.Credentials
	wantARN := "arn:aws:sts::111122223333:assumed-role/eks-admins/bob@example.com"
	if aws.ToString(ar.AssumedRoleUser.Arn) != wantARN || len(aws.ToString(c.AccessKeyId)) != 20 || aws.ToString(c.AccessKeyId)[:4] != "ASIA" {
		t.Errorf("unexpected assumed role; got %s %s; want %s", aws.ToString(ar.AssumedRoleUser.Arn), aws.ToString(c.AccessKeyId), wantARN)
	}
	if d := time.Until(aws.ToTime(c.Expiration)); d < 14*time.Minute || d > 16*time.Minute {
		t.Errorf("unexpected expiration; got %s from now; want 15m", d)
	}

	assumed := stsClient(s, sdkConfig(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
	out, err = assumed.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("cannot get caller identity with assumed-role credentials: %s", err)
	}
	if aws.ToString(out.Arn) != wantARN || aws.ToString(out.UserId) != aws.ToString(ar.AssumedRoleUser.AssumedRoleId) {
		t.Errorf("unexpected identity; got %s %s; want %s", aws.ToString(out.Arn), aws.ToString(out.UserId), wantARN)
	}

	noToken := stsClient(s, sdkConfig(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), ""))
	if _, err := noToken.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); apiErrorCode(err) != CodeInvalidClientTokenID {
		t.Errorf("unexpected error without the session token; got %v; want %s", err, CodeInvalidClientTokenID)
	}

	clock.Shift(16 * time.Minute) // the credentials expire; the SDK still signs with the real time
	_, err = assumed.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if code := apiErrorCode(err); code != CodeExpiredToken {
		t.Errorf("unexpected error code for expired credentials; got %q (%v); want %q", code, err, CodeExpiredToken)
	}
	clock.Shift(-16 * time.Minute)

	f := func(name string, in *sts.AssumeRoleInput, client *sts.Client, want string) {
		t.Helper()
		_, err := client.AssumeRole(ctx, in)
		if code := apiErrorCode(err); code != want {
			t.Errorf("unexpected error code for %s; got %q (%v); want %q", name, code, err, want)
		}
	}
	f("an unknown role", &sts.AssumeRoleInput{RoleArn: aws.String(testRoleARN + "x"), RoleSessionName: aws.String("s1")}, user, CodeAccessDenied)
	f("an untrusted caller", &sts.AssumeRoleInput{RoleArn: aws.String(testRoleARN), RoleSessionName: aws.String("s1")}, assumed, CodeAccessDenied)
	f("a bad session name", &sts.AssumeRoleInput{RoleArn: aws.String(testRoleARN), RoleSessionName: aws.String("a b")}, user, CodeValidationError)
	f("too long a duration", &sts.AssumeRoleInput{RoleArn: aws.String(testRoleARN), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(7200)}, user, CodeValidationError)

	st := s.Stats()
	if st.Count(ActionAssumeRole, OutcomeOK) != 1 || st.Count(ActionGetCallerIdentity, OutcomeOK) != 2 || st.Count(ActionGetCallerIdentity, CodeExpiredToken) != 1 {
		t.Errorf("unexpected stats; got %+v", st.Calls)
	}
}

// TestSDKEC2: aws-sdk-go-v2's EC2 client reads private DNS names through DescribeInstances.
func TestSDKEC2(t *testing.T) {
	s := startServer(t, testConfig(t), Options{})
	if err := s.AddInstance(Instance{InstanceID: "i-0abcdef1", PrivateDNSName: "ip-10-0-0-9.eu-west-1.compute.internal"}); err != nil {
		t.Fatalf("cannot add instance: %s", err)
	}
	client := ec2.NewFromConfig(sdkConfig(testUserKey, testUserSecret, ""), func(o *ec2.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	ctx := context.Background()
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{testInstanceID, "i-0abcdef1"}})
	if err != nil {
		t.Fatalf("cannot describe instances: %s", err)
	}
	got := map[string]string{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			got[aws.ToString(in.InstanceId)] = aws.ToString(in.PrivateDnsName)
		}
	}
	if len(got) != 2 || got[testInstanceID] != testDNSName || got["i-0abcdef1"] != "ip-10-0-0-9.eu-west-1.compute.internal" {
		t.Errorf("unexpected instances; got %v", got)
	}
	_, err = client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0000000000000000f"}})
	if code := apiErrorCode(err); code != CodeInvalidInstanceIDNotFound {
		t.Errorf("unexpected error code for an unknown instance; got %q (%v); want %q", code, err, CodeInvalidInstanceIDNotFound)
	}
	// An instance-id filter tolerates unknown and malformed IDs: they match nothing, as in EC2.
	filter := func(in *ec2.DescribeInstancesInput) []string {
		t.Helper()
		var ids []string
		for {
			out, err := client.DescribeInstances(ctx, in)
			if err != nil {
				t.Fatalf("cannot describe instances with a filter: %s", err)
			}
			for _, r := range out.Reservations {
				for _, i := range r.Instances {
					ids = append(ids, aws.ToString(i.InstanceId)+"="+aws.ToString(i.PrivateDnsName))
				}
			}
			if out.NextToken == nil {
				return ids
			}
			in.NextToken = out.NextToken
		}
	}
	byID := func(values ...string) []types.Filter {
		return []types.Filter{{Name: aws.String("instance-id"), Values: values}}
	}
	got2 := filter(&ec2.DescribeInstancesInput{Filters: byID(testInstanceID, "i-0000000000000000f", "i-xyz", "i-0abcdef1")})
	if want := []string{testInstanceID + "=" + testDNSName, "i-0abcdef1=ip-10-0-0-9.eu-west-1.compute.internal"}; !slices.Equal(got2, want) {
		t.Errorf("unexpected instances for a filter with unknown IDs; got %q; want %q", got2, want)
	}
	if got2 := filter(&ec2.DescribeInstancesInput{Filters: byID("i-0000000000000000f")}); len(got2) != 0 {
		t.Errorf("unexpected instances for a filter matching nothing; got %q", got2)
	}
	for i := range 10 {
		if err := s.AddInstance(Instance{InstanceID: fmt.Sprintf("i-%08x", 0x100+i), PrivateDNSName: fmt.Sprintf("ip-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got2 := filter(&ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)}); len(got2) != 12 {
		t.Errorf("unexpected instances over pages of 5; got %d (%q); want 12", len(got2), got2)
	}
	_, err = client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"x"}}}})
	if code := apiErrorCode(err); code != CodeInvalidParameterValue {
		t.Errorf("unexpected error code for an unknown filter; got %q (%v); want %q", code, err, CodeInvalidParameterValue)
	}
	_, err = client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{testInstanceID}, MaxResults: aws.Int32(5)})
	if code := apiErrorCode(err); code != CodeInvalidParameterCombination {
		t.Errorf("unexpected error code for MaxResults with InstanceIds; got %q (%v); want %q", code, err, CodeInvalidParameterCombination)
	}

	bad := ec2.NewFromConfig(sdkConfig(testUserKey, "wrong", ""), func(o *ec2.Options) { o.BaseEndpoint = aws.String(s.URL()) })
	_, err = bad.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{testInstanceID}})
	if code := apiErrorCode(err); code != "AuthFailure" {
		t.Errorf("unexpected error code for a wrong secret; got %q (%v); want AuthFailure", code, err)
	}
	if n := s.Stats().Count(ActionDescribeInstances, OutcomeOK); n != 6 {
		t.Errorf("unexpected DescribeInstances count; got %d; want 6", n)
	}
}
