package testenv

import (
	"strings"
	"testing"
)

// Identity builds with newIdentity (mapping.NewIdentity) the identity STS's GetCallerIdentity
// answers for the principal arn: its account, a UserId (a role's carries the session name of
// an assumed-role ARN) and an access key ID. It fails tb when newIdentity refuses them.
func Identity[T any](tb testing.TB, arn string, newIdentity func(arn, account, userID, accessKeyID string) (T, error)) *T {
	tb.Helper()
	var account, resource string
	if f := strings.SplitN(arn, ":", 6); len(f) == 6 {
		account, resource = f[4], f[5]
	}
	userID := "AIDAEXAMPLE"
	switch {
	case strings.HasPrefix(resource, "assumed-role/"):
		userID = "AROAEXAMPLE:" + resource[strings.LastIndexByte(resource, '/')+1:]
	case strings.HasPrefix(resource, "role/"):
		userID = "AROAEXAMPLE:"
	}
	id, err := newIdentity(arn, account, userID, "AKIAIOSFODNN7EXAMPLE")
	if err != nil {
		tb.Fatalf("bad test identity %q: %s", arn, err)
	}
	return &id
}
