// Package mapping turns a verified STS identity into a Kubernetes username and groups, the way
// EKS operators expect from the aws-auth ConfigMap (SPEC §6 and §7).
//
// The pieces, in the order a request meets them:
//
//   - NewIdentity canonicalises the ARN STS returned ([I1]) and splits its UserId ([I2]).
//   - ParseDocument reads an aws-auth ConfigMap manifest or a plain mapRoles/mapUsers/
//     mapAccounts document: EKS's quirks are kept (case-insensitive record keys, blank values
//     as absent), dangerous input is refused record by record (unknown placeholders, empty
//     usernames, invalid ARNs), and every refusal names the record, its list and its line.
//   - Compile builds an immutable Table: hash maps on the lower-cased canonical ARN (roles
//     without their path), SSO permission sets and accounts, with each record's templates
//     compiled once.
//   - Table.Lookup and Record.Render map an Identity to a User per request; plain records
//     allocate nothing, templated ones only their rendered strings. EC2Resolver answers
//     {{EC2PrivateDNSName}} with batched, collapsed, cached, rate-limited DescribeInstances
//     calls.
//   - A Store holds the live Table in an atomic pointer, fed by a FileSource (fsnotify plus
//     polling, including Kubernetes' ..data symlink swap) and a ConfigMapSource (a client-go
//     informer on kube-system/aws-auth, which reports API and RBAC failures at once and keeps
//     retrying). One bad record never locks out the others: a version's valid records apply,
//     its refused records grant nothing and are logged, counted and listed by Store.Status; a
//     list that does not parse keeps its previous records; a version of which nothing can be
//     identified is refused whole and the last good one stays live.
//   - Explain tells an operator which record maps an ARN, or why none does and which records
//     come nearest.
//
// See README.md for the document format, the quirks, the precedence of sources and the
// metrics.
package mapping
