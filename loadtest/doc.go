// Package loadtest drives an iamgate webhook with rakyll/hey's requester and measures what
// each load costs: throughput, latency percentiles, answers by status, fake STS calls per
// review, cache hit ratio, the daemon's CPU time and peak RSS (from /proc), and the load
// generator's own CPU, so a reader sees when the generator is the bottleneck.
//
// Every target is a loopback address: the package refuses anything else (see CheckLoopback),
// so a load test can never be pointed at a real cluster or at AWS. Runs are closed loop and
// bounded twice, by a request count and by a duration, and stop by themselves.
//
// The pieces:
//
//   - Load and Run (run.go): one closed-loop run of hey's requester, with a body per request.
//   - Summary (report.go): percentiles and ratios of a run.
//   - Process (proc.go): CPU ticks and peak RSS of another process from /proc.
//   - Metrics (metrics.go): samples of a Prometheus /metrics page (the daemon's).
//   - Minter (tokens.go): tokens minted in advance with sigv4.Presign.
//   - TrivialHandler (trivial.go): the limit, a fasthttp server answering a fixed TokenReview.
//   - Wrk (wrk.go): the hot path measured with wrk when hey saturates first.
//   - ClusterTarget.RunCluster (cluster*.go): the cluster model. K kube-apiserver replicas,
//     each k8s.io/apiserver's own webhook token authenticator behind its own token cache, in
//     front of one daemon; nodes, users and forged-token clients on a bounded worker pool;
//     phases with restart storms and STS faults; an oracle (Judge) for every answer; recovery
//     time, STS calls per second, webhook calls per authentication, the daemon's CPU and RSS.
//   - SoakModel and SoakTimeline (soak.go): the soak's principals, the mapping versions it
//     writes, its tokens (hostile ones included) and the oracle that judges an answer from the
//     versions in force, the access keys deleted and stated windows (e2e/soak_test.go runs it).
package loadtest
