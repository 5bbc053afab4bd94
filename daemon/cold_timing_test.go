package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/sigv4"
)

// BenchmarkHandleCold calls the handler directly with a never-seen token each time: local
// validation, a cache miss, one STS call to the in-process fake STS over loopback (plain
// HTTP; the fake's own work is in the same process and counts in ns/op), the cache insert,
// the mapping and the answer. allocs/op and B/op are the daemon's and the fake's together.
func BenchmarkHandleCold(b *testing.B) {
	h := newHarness(b)
	partition, _ := sigv4.PartitionByID("aws")
	// Distinct tokens of alice: one per region and second of the last 14 minutes.
	var tokens []string
	for s := 0; len(tokens) < 30_000 && s < 14*60; s++ {
		for _, region := range partition.Regions {
			tokens = append(tokens, presignAt(b, alice, region, testStart.Add(-time.Duration(s)*time.Second)))
		}
	}
	handle := h.srv.Handler()
	ctx := newReviewCtx(reviewBody(apiVersionV1, tokens[len(tokens)-1]))
	handle(ctx) // warm the pools and the connection
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(tokens)-1 {
			b.Fatalf("more than %d iterations: not enough distinct tokens", i)
		}
		ctx := newReviewCtx(reviewBody(apiVersionV1, tokens[i]))
		handle(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("unexpected status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		i++
	}
}

func presignAt(tb testing.TB, p principal, region string, at time.Time) string {
	tok, err := sigv4.Presign(context.Background(), sigv4.PresignInput{
		ClusterID: testClusterID, Credentials: aws.Credentials{AccessKeyID: p.akid, SecretAccessKey: p.secret},
		Region: region, Time: at,
	})
	if err != nil {
		tb.Fatalf("cannot presign: %s", err)
	}
	return tok
}
