// Package source is the live mapping: where aws-auth documents come from and how they are
// kept. A Store holds the live mapping.Table in an atomic pointer and rebuilds it whenever one
// of its sources delivers a version: a File (the -mapping.file, watched with fsnotify plus
// polling, including Kubernetes' ..data symlink swap) and a ConfigMap (a client-go informer on
// kube-system/aws-auth, which reports API and RBAC failures at once and keeps retrying). One
// bad record never locks out the others: a version's valid records apply, its refused records
// grant nothing and are logged, counted and listed by Store.Status; a list that does not parse
// keeps its previous records (mapping.KeepUnparsed); a version of which nothing can be
// identified is refused whole and the last good one stays live.
//
// ReadFile and FetchConfigMap read the same sources once (iamgate explain, -dryRun); Mapper is
// the daemon's view of a Store; Metrics are the sources' Prometheus metrics.
//
// What a document means, and how an identity is mapped, is package mapping's; this package
// only reads, watches and swaps. See ../README.md (Sources, reload and precedence; Bad records,
// what applies; Metrics).
package source
