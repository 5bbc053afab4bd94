// Package ec2 answers {{EC2PrivateDNSName}}: Resolver, the mapping.InstanceResolver over EC2's
// DescribeInstances API, with batched, collapsed, cached and rate-limited calls whose
// successful answers a strict reader of its own reads (answer.go), and its metrics. The
// renderer in package mapping reaches it only through mapping.InstanceResolver; cmd/iamgate
// builds one for `iamgate server` and for `iamgate explain -ec2.resolve`.
//
// See ../README.md (EC2 private DNS names, Metrics) and docs/design.md (Mapping).
package ec2
