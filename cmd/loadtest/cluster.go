package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/iamgate/iamgate/loadtest"
)

// clusterFlags are the -cluster.* flags of `loadtest run -load.kind cluster-…`.
type clusterFlags struct {
	replicas, nodes, users, denied int
	throttle                       float64
	nodeEvery, userEvery           time.Duration
	renewEvery, cacheTTL           time.Duration
	phaseMax, brownFor             time.Duration
	nodeRetries, userRetries       int
	renewOnFailure                 bool
	workers, maxRequests           int
	label                          string
}

func (f *clusterFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.replicas, "cluster.replicas", 3, "kube-apiserver replicas (each k8s.io/apiserver's webhook token authenticator behind its token cache)")
	fs.IntVar(&f.nodes, "cluster.nodes", 500, "kubelets, each with its own token")
	fs.IntVar(&f.users, "cluster.users", 50, "kubectl users, each with its own token")
	fs.IntVar(&f.denied, "cluster.denied", 5, "clients whose token has a forged signature: every answer must be a denial")
	fs.Float64Var(&f.throttle, "cluster.throttle", 50, "the fake STS's throttle in GetCallerIdentity calls per second during the storm phases (cluster-storm)")
	fs.DurationVar(&f.nodeEvery, "cluster.nodeEvery", 10*time.Second, "time between two requests of a node (±10 %)")
	fs.DurationVar(&f.userEvery, "cluster.userEvery", 20*time.Second, "time between two requests of a user (±10 %)")
	fs.DurationVar(&f.renewEvery, "cluster.renewEvery", 14*time.Minute, "how long a client keeps a token (client-go's exec plugin: 14m); compress it to model renewals in a short run")
	fs.DurationVar(&f.cacheTTL, "cluster.cacheTTL", 2*time.Minute, "kube-apiserver's --authentication-token-webhook-cache-ttl, for successes and denials")
	fs.DurationVar(&f.phaseMax, "cluster.phaseMax", 5*time.Minute, "bound on each phase (a phase also ends 2 s after every client authenticated again)")
	fs.DurationVar(&f.brownFor, "cluster.brownFor", 30*time.Second, "length of the STS brown-out (cluster-brownout)")
	fs.IntVar(&f.nodeRetries, "cluster.nodeRetries", 5, "a node's retries of a failed request (backoff 1s doubling to 30s) before it counts as failed")
	fs.IntVar(&f.userRetries, "cluster.userRetries", 0, "a user's retries of a failed request (kubectl: none)")
	fs.BoolVar(&f.renewOnFailure, "cluster.renewOnFailure", false, "renew the token before each retry, as client-go's exec plugin does after a 401 (more distinct tokens)")
	fs.IntVar(&f.workers, "cluster.workers", 0, "authentications in flight at most (the generator's goroutines); 0 means one per client, at most 12288")
	fs.IntVar(&f.maxRequests, "cluster.maxRequests", 5_000_000, "client requests at most in the whole run")
	fs.StringVar(&f.label, "cluster.label", "iamgate", "name of the daemon in the report (e.g. passthrough for iamgate -baseline.passthrough)")
}

func (f *clusterFlags) scenario(kind string) (loadtest.ClusterScenario, error) {
	var sc loadtest.ClusterScenario
	switch kind {
	case loadtest.KindClusterStorm:
		sc = loadtest.ClusterStorm(kind, f.nodes, f.users, f.denied, f.throttle, f.phaseMax)
	case loadtest.KindClusterBrownout:
		sc = loadtest.ClusterBrownout(kind, f.nodes, f.users, f.denied, f.brownFor, f.phaseMax)
	case loadtest.KindClusterRestart:
		return sc, fmt.Errorf("cannot run %s with loadtest run: it restarts the daemon, which only `loadtest bench` controls (-bench.cluster restart-5000)", kind)
	default:
		return sc, fmt.Errorf("unknown cluster scenario kind %q: want %s or %s", kind, loadtest.KindClusterStorm, loadtest.KindClusterBrownout)
	}
	sc.Replicas, sc.NodeEvery, sc.UserEvery, sc.RenewEvery, sc.CacheTTL = f.replicas, f.nodeEvery, f.userEvery, f.renewEvery, f.cacheTTL
	sc.NodeRetries, sc.UserRetries, sc.RenewOnFailure = f.nodeRetries, f.userRetries, f.renewOnFailure
	sc.Workers, sc.MaxRequests = f.workers, f.maxRequests
	return sc, nil
}
