package loadtest

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// attemptTimeout bounds one authentication: kube-apiserver's own request timeout (its cache
// bounds a shared webhook lookup at 30 s).
const attemptTimeout = 60 * time.Second

// maxWrongSamples bounds the wrong answers described in a report.
const maxWrongSamples = 10

// clusterClient is one modelled client. Guarded by clusterModel.mu.
type clusterClient struct {
	kind    ClientKind
	token   string
	gen     int // how many tokens it has held
	expect  Expectation
	renewAt time.Time
	every   time.Duration
	retries int
	// seenPhase and seenGen are the phase and token generation last counted as presented.
	seenPhase, seenGen int
}

// job is one due authentication attempt of a client; a client has at most one.
type job struct {
	at       time.Time // when it is due
	reqStart time.Time // when the request's first attempt was due
	client   int32
	attempt  int16
	seq      uint64
}

type jobHeap []job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h jobHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)   { *h = append(*h, x.(job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	return j
}

// phaseTally accumulates one phase. Guarded by clusterModel.mu.
type phaseTally struct {
	start    time.Time
	requests int
	attempts int
	verdicts [numVerdicts]int
	failed   [numClientKinds]int
	distinct int
	renewed  int
	// restarted: the daemon was restarted at the phase's start (its counters began again).
	restarted      bool
	recoveredAt    []time.Duration // per client that must authenticate; notRecovered until it does
	flood          floodTally
	recovered      int
	reqLat, attLat []float64 // seconds
}

type clusterModel struct {
	ctx    context.Context
	cancel context.CancelFunc
	t      *ClusterTarget
	sc     ClusterScenario
	hooks  webhookCounts
	reps   []*replica
	valid  int // clients that must authenticate: nodes then users; forged ones after

	mu       sync.Mutex
	clients  []clusterClient // guarded by mu
	jobs     jobHeap         // guarded by mu
	seq      uint64          // guarded by mu
	phase    int             // guarded by mu
	tally    *phaseTally     // guarded by mu
	stopping bool            // guarded by mu
	requests int             // guarded by mu; requests ended in the whole run
	attempts int             // guarded by mu
	lateMax  time.Duration   // guarded by mu
	late     int             // guarded by mu
	wrong    []string        // guarded by mu
	minter   *Minter         // guarded by mu (a Minter serves one goroutine at a time)
	samples  []stsSample     // guarded by mu
	cpu      []cpuSample     // guarded by mu
	notes    []string        // guarded by mu
	sampleMu sync.Mutex      // serialises sample
	wake     chan struct{}
	work     chan job
	started  time.Time
}

type cpuSample struct {
	at  time.Duration
	cpu time.Duration
}

func newClusterModel(ctx context.Context, t *ClusterTarget, sc ClusterScenario, dir string) (*clusterModel, error) {
	m := &clusterModel{t: t, sc: sc, minter: t.Minter, wake: make(chan struct{}, 1), work: make(chan job)}
	m.ctx, m.cancel = context.WithCancel(ctx)
	urls := t.ReplicaWebhookURLs
	if len(urls) == 0 {
		urls = []string{t.WebhookURL}
	}
	var factories []*replicaFactory
	for i, u := range urls {
		u, _, _ = strings.Cut(u, "?")
		f, err := newReplicaFactory(dir, i, u, sc.CacheTTL, &m.hooks)
		if err != nil {
			return nil, err
		}
		factories = append(factories, f)
	}
	for i := range sc.Replicas {
		r := &replica{factory: factories[i%len(factories)]}
		if err := r.factory.restart(r); err != nil {
			return nil, err
		}
		m.reps = append(m.reps, r)
	}
	m.valid = sc.Nodes + sc.Users
	m.clients = make([]clusterClient, m.valid+sc.Denied)
	for i := range m.clients {
		c := &m.clients[i]
		switch {
		case i < sc.Nodes:
			c.kind, c.every, c.retries = ClientNode, sc.NodeEvery, sc.NodeRetries
		case i < m.valid:
			c.kind, c.every, c.retries = ClientUser, sc.UserEvery, sc.UserRetries
		default:
			c.kind, c.every, c.retries = ClientDenied, sc.NodeEvery, 0
		}
		c.seenPhase = -1
	}
	return m, nil
}

// say writes a progress line.
func (m *clusterModel) say(format string, args ...any) {
	if m.t.Progress != nil {
		fmt.Fprintf(m.t.Progress, "loadtest: %s/%s: "+format+"\n", append([]any{m.sc.Name, m.t.Label}, args...)...)
	}
}

// mintAll gives every client a new token, minted in two batches (valid, forged). The caller
// holds mu or runs before the workers.
func (m *clusterModel) mintAll(now time.Time, spreadRenewals bool) error {
	toks, ps, err := m.minter.FreshFor(m.valid, false)
	if err != nil {
		return err
	}
	var forged []string
	if n := len(m.clients) - m.valid; n > 0 {
		if forged, err = m.minter.Fresh(n, true); err != nil {
			return err
		}
	}
	for i := range m.clients {
		c := &m.clients[i]
		if i < m.valid {
			c.token, c.expect = toks[i], Expectation{Allow: true, Username: ps[i].ARN}
		} else {
			c.token, c.expect = forged[i-m.valid], Expectation{}
		}
		c.gen++
		if spreadRenewals {
			// As if each token had been fetched at a random time in the last period.
			c.renewAt = now.Add(time.Duration(rand.Int64N(int64(m.sc.RenewEvery))) + 1)
		} else {
			c.renewAt = now.Add(m.sc.RenewEvery)
		}
	}
	return nil
}

// renew gives client c a new token. The caller holds mu.
func (m *clusterModel) renew(i int, now time.Time) {
	c := &m.clients[i]
	toks, ps, err := m.minter.FreshFor(1, c.kind == ClientDenied)
	if err != nil {
		m.notes = append(m.notes, "cannot renew a token: "+err.Error())
		c.renewAt = now.Add(m.sc.RenewEvery)
		return
	}
	c.token, c.gen, c.renewAt = toks[0], c.gen+1, now.Add(m.sc.RenewEvery)
	m.tally.renewed++
	if c.kind != ClientDenied {
		c.expect = Expectation{Allow: true, Username: ps[0].ARN}
	}
}

// push schedules a job. The caller holds mu.
func (m *clusterModel) push(j job) {
	m.seq++
	j.seq = m.seq
	heap.Push(&m.jobs, j)
}

func (m *clusterModel) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// jitter returns d × [1-f, 1+f).
func jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*rand.Float64()))
}

// retryDelay is the client's backoff before retry n (0-based): RetryBackoff doubling, at most
// RetryCap, ±20 % jitter.
func retryDelay(base, limit time.Duration, n int) time.Duration {
	d := base
	for range n {
		d *= 2
		if d >= limit {
			d = limit
			break
		}
	}
	return jitter(min(d, limit), 0.2)
}

// scheduler hands due jobs to the workers until the run stops.
func (m *clusterModel) scheduler(done chan<- struct{}) {
	defer close(done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			return
		}
		var wait time.Duration = time.Second
		var j job
		ready := false
		if len(m.jobs) > 0 {
			if d := time.Until(m.jobs[0].at); d <= 0 {
				j = heap.Pop(&m.jobs).(job)
				ready = true
			} else {
				wait = min(d, time.Second)
			}
		}
		m.mu.Unlock()
		if ready {
			select {
			case m.work <- j:
			case <-m.ctx.Done():
				return
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-m.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-m.ctx.Done():
			return
		}
	}
}

// worker runs attempts until the work channel closes.
func (m *clusterModel) worker(wg *sync.WaitGroup) {
	defer wg.Done()
	for j := range m.work {
		m.attempt(j)
	}
}

func (m *clusterModel) attempt(j job) {
	m.mu.Lock()
	now := time.Now()
	if late := now.Sub(j.at); late > 0 {
		m.lateMax = max(m.lateMax, late)
		if late > time.Second {
			m.late++
		}
	}
	i := int(j.client)
	c := &m.clients[i]
	if !now.Before(c.renewAt) {
		m.renew(i, now)
	}
	if c.seenPhase != m.phase || c.seenGen != c.gen {
		c.seenPhase, c.seenGen = m.phase, c.gen
		m.tally.distinct++
	}
	token, expect, sent := c.token, c.expect, now
	r := m.reps[rand.IntN(len(m.reps))]
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(m.ctx, attemptTimeout)
	resp, ok, err := r.stack.Load().auth.AuthenticateToken(ctx, token)
	cancel()
	end := time.Now()
	name := ""
	if ok && resp != nil && resp.User != nil {
		name = resp.User.GetName()
	}
	v := Judge(expect, ok, name, err)

	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.signal()
	t := m.tally
	m.attempts++
	t.attempts++
	t.verdicts[v]++
	t.attLat = append(t.attLat, end.Sub(j.at).Seconds())
	if v.Wrong() && len(m.wrong) < maxWrongSamples {
		m.wrong = append(m.wrong, fmt.Sprintf("%s client %d (token %d): %s; got ok=%v user %q err=%v; want %+v", c.kind, i, c.gen, v, ok, name, err, expect))
	}
	if m.stopping || m.ctx.Err() != nil {
		return
	}
	failed := v != VerdictOK && v != VerdictDenied
	if failed && int(j.attempt) < c.retries {
		if m.sc.RenewOnFailure {
			m.renew(i, end)
		}
		m.push(job{at: end.Add(retryDelay(m.sc.RetryBackoff, m.sc.RetryCap, int(j.attempt))), reqStart: j.reqStart, client: j.client, attempt: j.attempt + 1})
		return
	}
	m.requests++
	t.requests++
	t.reqLat = append(t.reqLat, end.Sub(j.reqStart).Seconds())
	if failed {
		t.failed[c.kind]++
	}
	// Recovered: a success of an attempt sent in this phase (after its events: through the
	// restarted replicas, with the renewed token).
	if v == VerdictOK && i < m.valid && t.recoveredAt[i] == notRecovered && !sent.Before(t.start) {
		t.recoveredAt[i] = end.Sub(t.start)
		t.recovered++
	}
	if m.requests >= m.sc.MaxRequests {
		return
	}
	next := j.reqStart.Add(jitter(c.every, 0.1))
	if next.Before(end) {
		next = end
	}
	m.push(job{at: next, reqStart: next, client: j.client})
}

// sample records the fake STS's counters and the daemon's CPU time now, and returns the
// time it is filed under. Samples never overlap (sampleMu), so that their counts grow with
// their times.
func (m *clusterModel) sample() time.Duration {
	m.sampleMu.Lock()
	defer m.sampleMu.Unlock()
	at := time.Since(m.started)
	st, err := m.t.STS.Stats()
	cpu, cpuOK := m.daemonCPU()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.samples = append(m.samples, stsSample{at: at, calls: st.Total(fakests.ActionGetCallerIdentity),
			throttled: st.Count(fakests.ActionGetCallerIdentity, fakests.CodeThrottling)})
	}
	if cpuOK {
		m.cpu = append(m.cpu, cpuSample{at: at, cpu: cpu})
	}
	return at
}

// daemons are the daemons' processes: the one of Daemon (a restart replaces it) and the
// ReplicaDaemons.
func (m *clusterModel) daemons() []Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []Process
	for _, p := range append([]Process{m.t.Daemon}, m.t.ReplicaDaemons...) {
		if p.PID != 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// daemonCPU is the CPU time of every daemon; false when there is none or one cannot be read.
func (m *clusterModel) daemonCPU() (time.Duration, bool) {
	ps := m.daemons()
	var sum time.Duration
	for _, p := range ps {
		v, err := p.CPU()
		if err != nil {
			return 0, false
		}
		sum += v
	}
	return sum, len(ps) > 0
}

// sampler samples every SampleEvery until stop closes.
func (m *clusterModel) sampler(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(m.sc.SampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-m.ctx.Done():
			return
		case <-tick.C:
			m.sample()
		}
	}
}

// boundary is what is read at the edge of a phase.
type boundary struct {
	at      time.Duration
	metrics Metrics
	webhook WebhookCalls
	cpu     time.Duration
	cpuOK   bool
}

func (m *clusterModel) readBoundary() boundary {
	b := boundary{at: m.sample(), webhook: m.hooks.snapshot()}
	if m.t.InternalURL != "" {
		if mt, err := ScrapeMetrics(m.t.InternalURL + "/metrics"); err == nil {
			b.metrics = mt
		}
	}
	b.cpu, b.cpuOK = m.daemonCPU()
	return b
}

func (m *clusterModel) run() (*ClusterReport, error) {
	defer m.cancel()
	sc := m.sc
	if err := m.t.STS.SetFaults(fakests.Faults{}); err != nil {
		return nil, err
	}
	defer func() { _ = m.t.STS.SetFaults(fakests.Faults{}) }()
	if err := m.t.STS.ResetStats(); err != nil {
		return nil, err
	}
	m.say("%d replicas, %d nodes, %d users, %d forged; minting tokens", sc.Replicas, sc.Nodes, sc.Users, sc.Denied)
	m.started = time.Now()
	if err := m.mintAll(m.started, true); err != nil {
		return nil, err
	}
	rep := &ClusterReport{Scenario: sc, Daemon: m.t.Label, Clients: len(m.clients), Workers: min(sc.Workers, len(m.clients))}
	cpu0 := selfCPU()

	// The first phase's tally exists before any client sends.
	m.mu.Lock()
	m.phase = 0
	m.tally = m.newTally(time.Now())
	for i := range m.clients {
		first := m.started.Add(time.Duration(rand.Int64N(int64(m.clients[i].every))))
		m.push(job{at: first, reqStart: first, client: int32(i)})
	}
	m.mu.Unlock()

	schedDone, sampDone, stopSampler := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for range rep.Workers {
		wg.Add(1)
		go m.worker(&wg)
	}
	go m.scheduler(schedDone)
	go m.sampler(stopSampler, sampDone)

	var runErr error
	b0 := m.readBoundary()
	for i, ph := range sc.Phases {
		if i > 0 {
			if err := m.startPhase(i, ph); err != nil {
				runErr = err
				break
			}
		} else if err := m.setFaults(ph.Faults); err != nil {
			runErr = err
			break
		}
		for _, d := range m.daemons() {
			_ = d.ResetPeak()
		}
		stopFlood, floodDone := make(chan struct{}), make(chan struct{})
		if ph.FloodRate > 0 {
			go m.flood(ph.FloodRate, stopFlood, floodDone)
		} else {
			close(floodDone)
		}
		m.waitPhase(i, ph)
		close(stopFlood)
		<-floodDone
		b1 := m.readBoundary()
		m.mu.Lock()
		pr := m.phaseReport(ph, m.tally, b0, b1)
		m.mu.Unlock()
		for _, d := range m.daemons() {
			if _, peak, err := d.Memory(); err == nil {
				pr.DaemonPeakRSS += peak
			}
		}
		rep.Phases = append(rep.Phases, pr)
		m.say("phase %s done in %.1fs: recovered %d/%d (all %s), failed %v, wrong %d, STS %d calls (peak %.0f/s), webhook %.2f per authentication",
			ph.Name, pr.Elapsed.Seconds(), pr.Recovery.Recovered, pr.Recovery.Clients, pr.Recovery.All.Round(time.Millisecond),
			pr.Failed, pr.WrongAnswers, pr.STS.Calls, pr.STS.Peak, pr.WebhookPerAuth)
		b0 = b1
		if m.boundReached() {
			m.mu.Lock()
			m.notes = append(m.notes, fmt.Sprintf("phase %s ended the run at its bound of %d requests", ph.Name, sc.MaxRequests))
			m.mu.Unlock()
			break
		}
		if m.ctx.Err() != nil {
			runErr = m.ctx.Err()
			break
		}
	}

	// Stop: no new attempts; those in flight end within attemptTimeout.
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	m.signal()
	<-schedDone
	close(m.work)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(attemptTimeout + 5*time.Second):
		m.cancel()
		<-drained
	}
	close(stopSampler)
	<-sampDone
	for _, r := range m.reps {
		r.stack.Load().closeIdle()
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	rep.Elapsed = time.Since(m.started)
	rep.Requests, rep.Attempts = m.requests, m.attempts
	rep.DispatchLateMax, rep.DispatchLate = m.lateMax, m.late
	rep.GeneratorCPU = selfCPU() - cpu0
	rep.WrongSamples = m.wrong
	for _, p := range rep.Phases {
		rep.WrongAnswers += p.WrongAnswers
	}
	rep.Notes = append(rep.Notes, m.notes...)
	rep.Notes = append(rep.Notes, m.hooks.errorNotes()...)
	if m.late > 0 {
		why := "its CPU starved"
		if rep.Workers < rep.Clients {
			why = fmt.Sprintf("all %d workers busy, or its CPU starved", rep.Workers)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d attempts were sent more than 1 s late (at most %s): the generator lagged (%s), so it, not the daemon, set their pace",
			m.late, m.lateMax.Round(time.Millisecond), why))
	}
	return rep, runErr
}

func (m *clusterModel) boundReached() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests >= m.sc.MaxRequests
}

func (m *clusterModel) newTally(start time.Time) *phaseTally {
	t := &phaseTally{start: start, recoveredAt: make([]time.Duration, m.valid)}
	for i := range t.recoveredAt {
		t.recoveredAt[i] = notRecovered
	}
	return t
}

// startPhase applies phase i's events and faults and starts its tally.
func (m *clusterModel) startPhase(i int, ph ClusterPhase) error {
	if err := m.setFaults(ph.Faults); err != nil {
		return err
	}
	if ph.RestartDaemon {
		m.say("restarting the daemon")
		p, err := m.t.RestartDaemon(m.ctx)
		if err != nil {
			return fmt.Errorf("cannot restart the daemon: %w", err)
		}
		m.mu.Lock()
		m.t.Daemon = p
		m.mu.Unlock()
	}
	if ph.RestartReplicas {
		for _, r := range m.reps {
			if err := r.factory.restart(r); err != nil {
				return err
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if ph.RenewTokens {
		if err := m.mintAll(now, false); err != nil {
			return err
		}
	}
	m.phase = i
	m.tally = m.newTally(now)
	m.tally.restarted = ph.RestartDaemon
	return nil
}

// setFaults sets the fake STS's faults, trying 3 times: on a generator CPU that cannot keep up
// with the clients (the fake STS shares it), one admin request may time out.
func (m *clusterModel) setFaults(f fakests.Faults) error {
	var err error
	for range 3 {
		if err = m.t.STS.SetFaults(f); err == nil || m.ctx.Err() != nil {
			return err
		}
		m.say("retrying the fake STS's faults: %v", err)
	}
	return err
}

// waitPhase returns when phase i is over: its MaxDuration passed, or Settle after every
// client recovered (UntilRecovered), or the run's request bound or ctx ended it.
func (m *clusterModel) waitPhase(i int, ph ClusterPhase) {
	m.mu.Lock()
	start := m.tally.start
	m.mu.Unlock()
	deadline := time.NewTimer(time.Until(start.Add(ph.MaxDuration)))
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastSay := time.Now()
	var recoveredAt time.Time
	for {
		select {
		case <-deadline.C:
			return
		case <-m.ctx.Done():
			return
		case now := <-tick.C:
			m.mu.Lock()
			rec, att, bound := m.tally.recovered, m.tally.attempts, m.requests >= m.sc.MaxRequests
			m.mu.Unlock()
			if bound {
				return
			}
			if ph.UntilRecovered && rec == m.valid {
				if recoveredAt.IsZero() {
					recoveredAt = now
				}
				if now.Sub(recoveredAt) >= ph.Settle {
					return
				}
			}
			if now.Sub(lastSay) >= 5*time.Second {
				lastSay = now
				m.say("phase %s %5.1fs: recovered %d/%d, %d attempts", ph.Name, now.Sub(start).Seconds(), rec, m.valid, att)
			}
		}
	}
}

// phaseReport turns a tally and the boundaries around it into a report. The caller holds mu.
func (m *clusterModel) phaseReport(ph ClusterPhase, t *phaseTally, b0, b1 boundary) *PhaseReport {
	pr := &PhaseReport{
		Phase: ph, Start: b0.at, Elapsed: b1.at - b0.at,
		ClientTokens: len(m.clients), DistinctTokens: t.distinct, Renewed: t.renewed,
		Requests: t.requests, Attempts: t.attempts,
		Verdicts: map[string]int{}, Failed: map[string]int{},
		Recovery:       recoveryOf(t.recoveredAt),
		IdealRecovery:  idealOf(ph, len(m.clients)),
		Latency:        Summarize(t.reqLat),
		AttemptLatency: Summarize(t.attLat),
		Webhook:        b1.webhook.sub(b0.webhook),
	}
	for v, n := range t.verdicts {
		if n > 0 {
			pr.Verdicts[Verdict(v).String()] = n
		}
		if Verdict(v).Wrong() {
			pr.WrongAnswers += n
		}
	}
	for k, n := range t.failed {
		pr.Failed[ClientKind(k).String()] = n
	}
	if ph.FloodRate > 0 {
		f := t.flood.FloodReport
		pr.Flood = &f
		pr.WrongAnswers += f.Wrong
	}
	pr.WebhookPerAuth = Ratio(float64(pr.Webhook.Calls), float64(t.attempts))
	var in []stsSample
	for _, s := range m.samples {
		if s.at >= b0.at && s.at <= b1.at {
			in = append(in, s)
		}
	}
	slices.SortFunc(in, func(a, b stsSample) int { return cmp.Compare(a.at, b.at) })
	pr.STS = stsRateOf(in, m.sc.SampleEvery/2)
	if t.restarted {
		// The new process's counters start at zero: the phase's figures are its totals.
		b0.cpu, b0.metrics = 0, Metrics{}
	}
	if b0.cpuOK && b1.cpuOK {
		pr.DaemonCPU = b1.cpu - b0.cpu
		var cs []cpuSample
		for _, s := range m.cpu {
			if s.at >= b0.at && s.at <= b1.at {
				cs = append(cs, s)
			}
		}
		slices.SortFunc(cs, func(a, b cpuSample) int { return cmp.Compare(a.at, b.at) })
		var prev *cpuSample
		for k := range cs {
			s := &cs[k]
			if prev != nil && s.at-prev.at >= m.sc.SampleEvery/2 {
				pr.DaemonCPUPeak = max(pr.DaemonCPUPeak, round3((s.cpu-prev.cpu).Seconds()/(s.at-prev.at).Seconds()))
				prev = s
			} else if prev == nil {
				prev = s
			}
		}
	}
	if b0.metrics != nil && b1.metrics != nil {
		d := b1.metrics.Delta(b0.metrics)
		pr.ReviewsByReason = d.Labeled("iamgate_reviews_total", "reason")
		pr.STSByOutcome = d.Labeled("iamgate_sts_requests_total", "outcome")
	}
	return pr
}

// idealOf is the ideal recovery of a phase that gives every client a new token under a
// throttle; other phases have none (the tokens may be known already).
func idealOf(ph ClusterPhase, tokens int) time.Duration {
	if !ph.RenewTokens {
		return 0
	}
	return IdealRecovery(tokens, ph.Faults.ThrottleRate)
}
