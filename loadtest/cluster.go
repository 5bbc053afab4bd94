package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// The cluster model: K kube-apiserver replicas (k8s.io/apiserver's own webhook token
// authenticator behind its own token cache, see cluster_replica.go) in front of one iamgate,
// and N nodes, M users and some clients with forged tokens, each sending requests through a
// random replica at its own rate, renewing its token before its 15 minutes are up, and
// retrying failures as kubelet does. A run is a list of phases, each starting with events
// (every replica restarted at once, every client presenting a new token) under the fake STS's
// faults (throttling, resets, 5xx, latency), and reports what the clients saw.
//
// Where the later parts of the cluster work plug in:
//   - an iamgate restart is here (KindClusterRestart, with a target that can restart the
//     daemon: make bench's); one iamgate per replica is not yet;
//   - a forged-token flood: more ClientDenied clients with a new forged token per request
//     (a ClientKind beside ClientDenied and a phase event), measured with the same oracle;
//   - the soak: phases that rotate faults, with ClusterTarget sampling goroutines, heap and
//     file descriptors besides CPU and RSS;
//   - DaemonSet-style, one iamgate per replica: a WebhookURL per replica in ClusterTarget,
//     given to replicaFactory per replica instead of one for all;
//   - the adaptive STS rate in the daemon: nothing to add here, the storm targets measure it.

// Kinds of cluster scenario (Scenario.Kind of loadtest run).
const (
	// KindClusterStorm: warm-up; every replica restarted at once (iamgate's cache warm);
	// then every replica restarted and every client with a new token (iamgate has never
	// seen them: the control plane and iamgate's cache restarted together). STS throttled.
	KindClusterStorm = "cluster-storm"
	// KindClusterBrownout: warm-up; then every replica restarted and every client with a new
	// token while STS resets connections, answers 5xx and slows down; then STS recovers.
	KindClusterBrownout = "cluster-brownout"
	// KindClusterRestart: warm-up; then iamgate restarts (its cache lost, the replicas' kept)
	// with STS throttled, for as long as the replicas' cache keeps entries and 30 s more, so
	// that the wave of their expiry is seen. Needs a target that can restart the daemon.
	KindClusterRestart = "cluster-restart"
)

// ClusterPhase is one stretch of a cluster run.
type ClusterPhase struct {
	Name string `json:"name"`
	// RestartReplicas empties every replica's token cache at once: each gets a new
	// authenticator stack (new cache, new connections), as a restarted kube-apiserver has.
	RestartReplicas bool `json:"restartReplicas,omitempty"`
	// RenewTokens gives every client a new token at once: tokens iamgate has never seen.
	RenewTokens bool `json:"renewTokens,omitempty"`
	// RestartDaemon restarts iamgate through ClusterTarget.RestartDaemon; a target without it
	// refuses the scenario.
	RestartDaemon bool `json:"restartDaemon,omitempty"`
	// Faults are set on the fake STS for the phase.
	Faults fakests.Faults `json:"faults"`
	// MaxDuration bounds the phase. With UntilRecovered it ends Settle after every client
	// that must authenticate has done so with a request sent during the phase.
	MaxDuration    time.Duration `json:"maxDurationNs"`
	UntilRecovered bool          `json:"untilRecovered,omitempty"`
	Settle         time.Duration `json:"settleNs,omitempty"`
	// FloodRate is forged tokens per second sent during the phase beside the clients' own
	// traffic, each new, with an invented access key (KindClusterFlood).
	FloodRate float64 `json:"floodRate,omitempty"`
	// Target marks the phase the storm targets are evaluated on.
	Target bool `json:"target,omitempty"`
}

// ClusterScenario is a cluster model run.
type ClusterScenario struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
	// Replicas is K, the kube-apiserver replicas.
	Replicas int `json:"replicas"`
	// Nodes, Users and Denied are the clients: kubelets, kubectl users, and clients whose
	// token has a forged signature (every answer must be a denial).
	Nodes  int `json:"nodes"`
	Users  int `json:"users"`
	Denied int `json:"denied"`
	// NodeEvery and UserEvery are the time between two requests of one client (±10 %
	// jitter); a forged-token client sends at NodeEvery.
	NodeEvery time.Duration `json:"nodeEveryNs"`
	UserEvery time.Duration `json:"userEveryNs"`
	// RenewEvery is how long a client keeps a token: client-go's exec plugin keeps
	// `aws eks get-token`'s for 14 minutes. First renewals are spread over one period.
	// Compress it to model renewals in a short run.
	RenewEvery time.Duration `json:"renewEveryNs"`
	// NodeRetries and UserRetries are a client's retries of a failed request (backoff
	// RetryBackoff, doubling, ±20 % jitter, at most RetryCap), after which the request has
	// failed where a user sees it. Zero means none (ClusterStorm and ClusterBrownout set
	// NodeRetries to 5, kubelet-like; kubectl does not retry).
	NodeRetries  int           `json:"nodeRetries"`
	UserRetries  int           `json:"userRetries"`
	RetryBackoff time.Duration `json:"retryBackoffNs"`
	RetryCap     time.Duration `json:"retryCapNs"`
	// RenewOnFailure gives a client a new token before each retry, as client-go's exec
	// plugin does after a 401: more distinct tokens, each costing an STS call.
	RenewOnFailure bool `json:"renewOnFailure,omitempty"`
	// CacheTTL is kube-apiserver's --authentication-token-webhook-cache-ttl (2m), for
	// successes and denials alike.
	CacheTTL time.Duration `json:"cacheTtlNs"`
	// Workers bounds the authentications in flight (the generator's goroutines); a client
	// has at most one request in flight. 0 means one per client, at most maxWorkers: a real
	// kubelet does not wait for another's review to end, and a small bound makes attempts
	// late while reviews wait in iamgate's STS queue (thousands of them in a storm).
	Workers int `json:"workers"`
	// MaxRequests bounds the client requests of the whole run.
	MaxRequests int `json:"maxRequests"`
	// SampleEvery is the sampling interval of the fake STS's /stats and of the daemon's CPU.
	SampleEvery time.Duration  `json:"sampleEveryNs"`
	Phases      []ClusterPhase `json:"phases"`
}

// maxWorkers bounds the default Workers. Over HTTP/1.1 (the bench daemon's plain-HTTP
// listener) each authentication on the wire holds a connection, a file in the generator and
// one in the daemon: 12,288 keeps both below a 20,000-file limit (with 16,384 the generator
// held up to 19,600 files: connections of replaced replica stacks, idle pools, dials). Without
// it, a generator whose CPU could not keep up with 22,200 clients held 18,000 connections whose
// answers it had not read yet, and ran out of files; with 8,192, the workers sleeping through
// kube-apiserver's retries (up to 5 s an attempt) were all busy and held the clients back.
const maxWorkers = 12288

// clusterDefaults are the defaults of the fields left zero.
var clusterDefaults = ClusterScenario{
	Replicas: 3, NodeEvery: 10 * time.Second, UserEvery: 20 * time.Second, RenewEvery: 14 * time.Minute,
	NodeRetries: 5, UserRetries: 0, RetryBackoff: time.Second, RetryCap: 30 * time.Second,
	CacheTTL: 2 * time.Minute, MaxRequests: 5_000_000, SampleEvery: time.Second,
}

func (sc ClusterScenario) withDefaults() ClusterScenario {
	d := clusterDefaults
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setI := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setI(&sc.Replicas, d.Replicas)
	setD(&sc.NodeEvery, d.NodeEvery)
	setD(&sc.UserEvery, d.UserEvery)
	setD(&sc.RenewEvery, d.RenewEvery)
	setD(&sc.RetryBackoff, d.RetryBackoff)
	setD(&sc.RetryCap, d.RetryCap)
	setD(&sc.CacheTTL, d.CacheTTL)
	setI(&sc.Workers, min(sc.Nodes+sc.Users+sc.Denied, maxWorkers))
	setI(&sc.MaxRequests, d.MaxRequests)
	setD(&sc.SampleEvery, d.SampleEvery)
	sc.NodeRetries, sc.UserRetries = max(0, sc.NodeRetries), max(0, sc.UserRetries)
	return sc
}

// validate checks the bounds that keep a run finite.
func (sc ClusterScenario) validate() error {
	if sc.Nodes < 0 || sc.Users < 0 || sc.Denied < 0 || sc.Nodes+sc.Users == 0 {
		return fmt.Errorf("cannot run cluster scenario %q: it needs nodes or users", sc.Name)
	}
	if sc.Nodes+sc.Users+sc.Denied > 1_000_000 {
		return fmt.Errorf("cannot run cluster scenario %q: at most 1,000,000 clients", sc.Name)
	}
	if sc.Replicas > 100 {
		return fmt.Errorf("cannot run cluster scenario %q: at most 100 replicas", sc.Name)
	}
	if len(sc.Phases) == 0 {
		return fmt.Errorf("cannot run cluster scenario %q: no phases", sc.Name)
	}
	for _, p := range sc.Phases {
		if p.MaxDuration <= 0 || p.MaxDuration > time.Hour {
			return fmt.Errorf("cannot run cluster scenario %q: phase %q needs a MaxDuration between 0 and 1h", sc.Name, p.Name)
		}
		if p.FloodRate < 0 || p.FloodRate > 10_000 {
			return fmt.Errorf("cannot run cluster scenario %q: phase %q needs a FloodRate between 0 and 10000 per second", sc.Name, p.Name)
		}
		if err := p.Faults.Validate(); err != nil {
			return fmt.Errorf("cannot run cluster scenario %q: phase %q: %w", sc.Name, p.Name, err)
		}
	}
	return nil
}

// ClusterStorm is the restart storm scenario: nodes kubelets, users kubectl users and denied
// forged-token clients, STS throttled at rate calls per second (burst: one second's worth)
// from the second phase on; phaseMax bounds each phase.
func ClusterStorm(name string, nodes, users, denied int, rate float64, phaseMax time.Duration) ClusterScenario {
	throttle := fakests.Faults{ThrottleRate: rate, ThrottleBurst: max(1, int(rate)), Actions: []string{fakests.ActionGetCallerIdentity}}
	return ClusterScenario{
		Name: name, Kind: KindClusterStorm, Nodes: nodes, Users: users, Denied: denied, NodeRetries: clusterDefaults.NodeRetries,
		Description: fmt.Sprintf("%d nodes, %d users, %d forged tokens; every replica restarted at once, then a cold restart storm; STS throttled at %g calls/s", nodes, users, denied, rate),
		Phases: []ClusterPhase{
			{Name: "warm-up", MaxDuration: phaseMax, UntilRecovered: true, Settle: 2 * time.Second},
			{Name: "replica-restart", RestartReplicas: true, Faults: throttle, MaxDuration: phaseMax, UntilRecovered: true, Settle: 2 * time.Second},
			{Name: "cold-storm", RestartReplicas: true, RenewTokens: true, Faults: throttle, MaxDuration: phaseMax, UntilRecovered: true, Settle: 2 * time.Second, Target: true},
		},
	}
}

// ClusterBrownout is the STS brown-out scenario: a cold restart while STS resets 5 % of the
// connections, answers 5 % InternalFailure and 5 % ServiceUnavailable and takes 50–500 ms, for
// brownFor; then STS recovers.
func ClusterBrownout(name string, nodes, users, denied int, brownFor, phaseMax time.Duration) ClusterScenario {
	ms := func(n int) fakests.Duration { return fakests.Duration(time.Duration(n) * time.Millisecond) }
	brown := fakests.Faults{ResetRate: 0.05, Latency: ms(50), Jitter: ms(450),
		ErrorRates: map[string]float64{fakests.CodeInternalFailure: 0.05, fakests.CodeServiceUnavailable: 0.05},
		Actions:    []string{fakests.ActionGetCallerIdentity}}
	return ClusterScenario{
		Name: name, Kind: KindClusterBrownout, Nodes: nodes, Users: users, Denied: denied, NodeRetries: clusterDefaults.NodeRetries,
		Description: fmt.Sprintf("%d nodes, %d users, %d forged tokens; a cold restart during an STS brown-out of %s (5 %% resets, 10 %% 5xx, 50–500 ms)", nodes, users, denied, brownFor),
		Phases: []ClusterPhase{
			{Name: "warm-up", MaxDuration: phaseMax, UntilRecovered: true, Settle: 2 * time.Second},
			{Name: "brown-out", RestartReplicas: true, RenewTokens: true, Faults: brown, MaxDuration: brownFor},
			{Name: "recovery", MaxDuration: phaseMax, UntilRecovered: true, Settle: 2 * time.Second},
		},
	}
}

// ClusterDaemonRestart is the daemon restart scenario: after the warm-up, iamgate restarts
// while STS is throttled at rate; the phase lasts the replicas' cache TTL (2m) and 30 s.
func ClusterDaemonRestart(name string, nodes, users, denied int, rate float64, phaseMax time.Duration) ClusterScenario {
	throttle := fakests.Faults{ThrottleRate: rate, ThrottleBurst: max(1, int(rate)), Actions: []string{fakests.ActionGetCallerIdentity}}
	return ClusterScenario{
		Name: name, Kind: KindClusterRestart, Nodes: nodes, Users: users, Denied: denied, NodeRetries: clusterDefaults.NodeRetries,
		Description: fmt.Sprintf("%d nodes, %d users, %d forged tokens; iamgate restarted (its cache lost, the replicas' kept) with STS throttled at %g calls/s", nodes, users, denied, rate),
		Phases: []ClusterPhase{
			{Name: "warm-up", MaxDuration: phaseMax, UntilRecovered: true, Settle: 2 * time.Second},
			{Name: "daemon-restart", RestartDaemon: true, Faults: throttle, MaxDuration: clusterDefaults.CacheTTL + 30*time.Second},
		},
	}
}

// ClusterTarget is a running daemon and its fake STS, for cluster runs.
type ClusterTarget struct {
	// WebhookURL is the daemon's POST /authenticate URL, without a query (kube-apiserver's
	// kubeconfig names the URL); InternalURL its internal listener (/metrics), or "".
	WebhookURL  string
	InternalURL string
	STS         fakests.AdminClient
	// Daemon is the daemon's process; PID 0 skips CPU and memory.
	Daemon Process
	// ReplicaWebhookURLs, when set, gives each replica its own webhook, DaemonSet-style (one
	// iamgate per kube-apiserver): replica i calls URL i mod len. ReplicaDaemons are the
	// processes behind them besides Daemon; their CPU and peak RSS are added to Daemon's.
	// InternalURL's metrics are then one daemon's.
	ReplicaWebhookURLs []string
	ReplicaDaemons     []Process
	// Label names the daemon in reports: "iamgate", or "passthrough" for the baseline.
	Label  string
	Minter *Minter
	// RestartDaemon, when set, restarts the daemon on the same addresses and returns its new
	// process (phases with RestartDaemon need it).
	RestartDaemon func(ctx context.Context) (Process, error)
	// Progress receives progress lines; nil means none.
	Progress io.Writer
}

// ClusterReport is everything measured in one cluster run.
type ClusterReport struct {
	Scenario ClusterScenario `json:"scenario"`
	Daemon   string          `json:"daemon"`
	Clients  int             `json:"clients"`
	Phases   []*PhaseReport  `json:"phases"`
	Elapsed  time.Duration   `json:"elapsedNs"`
	// Requests and Attempts are the client requests and the authentications they made.
	Requests int `json:"requests"`
	Attempts int `json:"attempts"`
	// Workers is the generator's bound on authentications in flight; DispatchLateMax is the
	// most an attempt was sent after its time (all workers busy: the generator lagged), and
	// DispatchLate the attempts sent more than a second late.
	Workers         int           `json:"workers"`
	DispatchLateMax time.Duration `json:"dispatchLateMaxNs"`
	DispatchLate    int           `json:"dispatchLate"`
	GeneratorCPU    time.Duration `json:"generatorCpuNs"`
	// WrongAnswers is the sum over phases; WrongSamples describes the first few.
	WrongAnswers int      `json:"wrongAnswers"`
	WrongSamples []string `json:"wrongSamples,omitempty"`
	Notes        []string `json:"notes,omitempty"`
}

// PhaseReport is what one phase measured.
type PhaseReport struct {
	Phase   ClusterPhase  `json:"phase"`
	Start   time.Duration `json:"startNs"`
	Elapsed time.Duration `json:"elapsedNs"`
	// ClientTokens is the tokens held by the clients when the phase began (one each); after a
	// storm each needs one STS call. DistinctTokens is the tokens presented during the phase.
	ClientTokens   int `json:"clientTokens"`
	DistinctTokens int `json:"distinctTokens"`
	// Renewed is the tokens clients renewed one by one in the phase (RenewEvery, or a retry
	// with RenewOnFailure); a RenewTokens event is not counted here.
	Renewed int `json:"renewed"`
	// Requests ended in the phase (after the client's retries); Attempts are authentications.
	Requests int `json:"requests"`
	Attempts int `json:"attempts"`
	// Verdicts counts attempts by the oracle's verdict; Failed counts requests that failed
	// after the client's retries, by client kind: what a user sees ("denied" clients are
	// hostile and their failures are not a user's).
	Verdicts     map[string]int `json:"verdicts"`
	Failed       map[string]int `json:"failed"`
	WrongAnswers int            `json:"wrongAnswers"`
	Recovery     Recovery       `json:"recovery"`
	// IdealRecovery is ClientTokens ÷ the phase's STS throttle rate, for a phase that gives
	// every client a new token (RenewTokens) under a throttle; 0 otherwise.
	IdealRecovery time.Duration `json:"idealRecoveryNs"`
	// Latency is per request as its client saw it (from when it was due, retries included);
	// AttemptLatency per authentication through a replica.
	Latency        Latency      `json:"latency"`
	AttemptLatency Latency      `json:"attemptLatency"`
	Webhook        WebhookCalls `json:"webhook"`
	// WebhookPerAuth is webhook calls per authentication attempt (cache hits of kube-apiserver
	// make none; its retries several).
	WebhookPerAuth float64 `json:"webhookCallsPerAuthentication"`
	STS            STSRate `json:"sts"`
	// Daemon's CPU time in the phase, its busiest sampling interval (CPUs), and its peak RSS
	// (VmHWM, reset at the phase's start when allowed).
	DaemonCPU       time.Duration      `json:"daemonCpuNs"`
	DaemonCPUPeak   float64            `json:"daemonCpuPeakCores"`
	DaemonPeakRSS   int64              `json:"daemonPeakRssBytes"`
	ReviewsByReason map[string]float64 `json:"reviewsByReason,omitempty"`
	STSByOutcome    map[string]float64 `json:"daemonStsByOutcome,omitempty"`
	// Flood is what the phase's forged-token flood did, if it had one.
	Flood *FloodReport `json:"flood,omitempty"`
}

// RunCluster runs sc against t. Every loop is bounded: each phase by its MaxDuration, the run
// by sc.MaxRequests and ctx, each authentication by 60 s.
func (t *ClusterTarget) RunCluster(ctx context.Context, sc ClusterScenario) (*ClusterReport, error) {
	sc = sc.withDefaults()
	if err := sc.validate(); err != nil {
		return nil, err
	}
	if err := CheckLoopbackURL(t.WebhookURL); err != nil {
		return nil, err
	}
	if err := CheckLoopbackURL(t.STS.URL); err != nil {
		return nil, err
	}
	if t.InternalURL != "" {
		if err := CheckLoopbackURL(t.InternalURL); err != nil {
			return nil, err
		}
	}
	for _, p := range sc.Phases {
		if p.RestartDaemon && t.RestartDaemon == nil {
			return nil, fmt.Errorf("cannot run cluster scenario %q: phase %q restarts the daemon and this target cannot", sc.Name, p.Name)
		}
	}
	if t.Minter == nil {
		return nil, errors.New("cannot run a cluster scenario without a Minter")
	}
	dir, err := os.MkdirTemp("", "iamgate-cluster-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	m, err := newClusterModel(ctx, t, sc, dir)
	if err != nil {
		return nil, err
	}
	return m.run()
}
