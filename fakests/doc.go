// Package fakests is an offline stand-in for AWS STS and EC2: a fasthttp server that answers
// GetCallerIdentity (presigned GET and signed POST), AssumeRole and DescribeInstances for the
// principals it is given, verifying every SigV4 signature as AWS does (package sigv4/signature). It makes
// iamgate's token path testable and benchmarkable without AWS, and cmd/fakests runs it on a
// laptop. docs/design.md, The fake STS, is its contract; README.md in this folder documents the binary.
//
// Use in a Go test:
//
//	srv, err := fakests.New(fakests.Config{Users: []fakests.User{{
//		ARN: "arn:aws:iam::111122223333:user/alice", AccessKeyID: "AKIA…", SecretAccessKey: "…",
//	}}}, fakests.Options{Clock: clock})
//	addr, err := srv.Start("127.0.0.1:0") // then point the daemon's STS dial override at addr
//	defer srv.Close()
//	srv.SetFaults(fakests.Faults{ErrorRates: map[string]float64{fakests.CodeThrottling: 0.5}})
//	n := srv.Stats().Count(fakests.ActionGetCallerIdentity, fakests.OutcomeOK)
//
// How a request is judged, in order: faults (see Faults); the SigV4 form
// (MissingAuthenticationToken, IncompleteSignature); the credential scope's service (sts or ec2,
// which also picks the answer shape) and region (it must match an AWS endpoint host such as
// sts.eu-west-1.amazonaws.com; any region goes for other hosts, e.g. 127.0.0.1 through
// --endpoint-url); the access key (InvalidClientTokenId); the session token and its expiry
// (InvalidClientTokenId, ExpiredToken); the 15-minute window around X-Amz-Date, X-Amz-Expires
// being ignored as STS does (RequestExpired, or SignatureDoesNotMatch for a date in the future);
// the signature, computed over the headers the client signed, so a token sent with another
// x-k8s-aws-id gets 403 SignatureDoesNotMatch exactly as from AWS; then the action.
//
// Concurrency and retention: every Server method is safe for concurrent use, including adding
// principals and changing faults while serving. Config values are copied; the Server keeps no
// reference to caller memory. Stats returns a snapshot the caller owns. Credentials issued by
// AssumeRole are kept until they expire and room is needed (Options.MaxSessions).
package fakests
