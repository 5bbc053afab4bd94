package fakests_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/iamgate/iamgate/fakests"
)

// An aws-sdk-go-v2 STS client pointed at a fake on loopback.
func Example() {
	srv, err := fakests.New(fakests.Config{
		Users: []fakests.User{{
			ARN:             "arn:aws:iam::111122223333:user/alice",
			UserID:          "AIDAEXAMPLEUSERID1234",
			AccessKeyID:     "AKIAIOSFODNN7EXAMPLE",
			SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		}},
	}, fakests.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	if _, err := srv.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Close()

	client := sts.New(sts.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
		BaseEndpoint: aws.String(srv.URL()),
	})
	out, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		panic(err)
	}
	fmt.Println(*out.Arn, *out.UserId)
	fmt.Println(srv.Stats().Count(fakests.ActionGetCallerIdentity, fakests.OutcomeOK))
	// Output:
	// arn:aws:iam::111122223333:user/alice AIDAEXAMPLEUSERID1234
	// 1
}
