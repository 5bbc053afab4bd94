// Package mapping turns a verified STS identity into a Kubernetes username and groups, the way
// EKS operators expect from the aws-auth ConfigMap (docs/design.md, Identity and Mapping).
//
// It is the logic alone: no network, no file-system watching, no client-go. What reads, watches
// and swaps the mapping is package mapping/source; what looks EC2 names up is package
// mapping/ec2, which the renderer reaches only through InstanceResolver.
//
// The pieces, in the order a request meets them:
//
//   - NewIdentity canonicalises the ARN STS returned and splits its UserId (see docs/design.md:
//     Identity).
//   - ParseDocument reads an aws-auth ConfigMap manifest or a plain mapRoles/mapUsers/
//     mapAccounts document (ParseConfigMapData the data of a live ConfigMap): EKS's quirks are
//     kept (case-insensitive record keys, blank values as absent), dangerous input is refused
//     record by record (unknown placeholders, empty usernames, invalid ARNs), and every refusal
//     names the record, its list and its line. KeepUnparsed applies a new version of a source
//     over its previous one: a list that does not parse keeps its previous records.
//   - Compile builds an immutable Table: hash maps on the lower-cased canonical ARN (roles
//     without their path), SSO permission sets and accounts, with each record's templates
//     compiled once.
//   - Table.Lookup and Record.Render map an Identity to a User per request; plain records
//     allocate nothing, templated ones only their rendered strings. {{EC2PrivateDNSName}} is
//     asked of an InstanceResolver.
//   - Explain tells an operator which record maps an ARN, or why none does and which records
//     come nearest.
//
// See README.md for the document format, the quirks, the precedence of sources and the
// metrics.
package mapping
