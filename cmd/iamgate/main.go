// Command iamgate authenticates Kubernetes users by their AWS IAM identity. This main only
// dispatches subcommands; each lives in its own file and builds library objects.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/iamgate/iamgate/internal/subcommand"
)

var commands = []subcommand.Command{
	{Name: "token", Summary: "print an ExecCredential with a k8s-aws-v1 token (kubectl exec plugin)", Run: runToken},
	{Name: "server", Summary: "run the TokenReview webhook", Run: runServer},
	{Name: "verify", Summary: "check a token (locally, then with STS) and print who signed it", Run: runVerify},
	{Name: "explain", Summary: "explain which mapping record maps an ARN or token, or why none does", Run: runExplain},
	{Name: "init", Summary: "write the webhook TLS key pair and the kubeconfig kube-apiserver needs", Run: runInit},
	{Name: "version", Summary: "print the version", Run: runVersion},
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { subcommand.Main("iamgate", commands) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return subcommand.Dispatch(ctx, "iamgate", commands, args, stdout, stderr)
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	_, err := fmt.Fprintf(stdout, "iamgate %s\n", version)
	return err
}
