package daemon

import (
	"container/list"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// stsAdmission decides when an STS call may start (see docs/design.md: The STS call):
//
//   - at most maxInflight calls at a time, at most maxQueue waiting per class;
//   - once STS has answered Throttling, at most the adaptive rate (stsRate) per second;
//   - waiting calls in two FIFO queues: calls for an access key STS has verified before go
//     first, calls for a never-seen key get at least one start in newKeyShare. A flood of
//     forged tokens, each with an invented key, then cannot starve the nodes and users whose
//     credentials iamgate already knows;
//   - a call waits for its start until its deadline (-sts.queueWait): a review that waits in
//     one request instead of falling into kube-apiserver's and its client's backoff is
//     answered as soon as STS has room. A call that cannot start before its deadline is
//     refused at once (429, which kube-apiserver retries) instead of holding a goroutine
//     until the deadline;
//   - once draining (shutdown), nothing waits: waiting calls are refused, new ones too
//     unless they can start at once.
//
// Safe for concurrent use. Uncontended, a call costs one lock and no allocation.
type stsAdmission struct {
	maxInflight    int
	maxQueue       int
	preferVerified bool // -sts.keyPriority
	metrics        *metrics

	mu         sync.Mutex
	inflight   int
	queues     [numKeyClasses]list.List // of *stsWaiter
	sinceNew   int                      // starts given to known keys since the last new-key start
	rate       stsRate
	timer      *time.Timer // wakes dispatch when the next rate token is due
	timerArmed bool
	draining   bool
}

// keyClass is how much iamgate knows about a call's access key.
type keyClass uint8

const (
	keyVerified keyClass = iota // STS verified a token of this key recently
	keyNew                      // never seen, or seen only in tokens STS refused
	numKeyClasses
)

var keyClassNames = [numKeyClasses]string{"verified", "new"}

// newKeyShare: while both queues wait, one start in newKeyShare goes to a never-seen key.
const newKeyShare = 4

// errRateLimited is returned without calling STS when the adaptive rate cannot start the call
// before its deadline.
var errRateLimited = errors.New("STS is throttling: the adaptive rate cannot send this call in time")

type stsWaiter struct {
	ready    chan struct{} // receives once when granted or refused
	deadline time.Time     // the start must come before it
	class    keyClass
	elem     *list.Element
	// granted and refusal are guarded by stsAdmission.mu until ready receives; then the
	// waiter reads them alone.
	granted bool
	refusal error // errQueueFull or errRateLimited
}

func newSTSAdmission(maxInflight, maxQueue int, adaptive, preferVerified bool, m *metrics) *stsAdmission {
	a := &stsAdmission{maxInflight: maxInflight, maxQueue: maxQueue, preferVerified: preferVerified, metrics: m}
	a.rate.adaptiveOff = !adaptive
	a.timer = time.AfterFunc(time.Hour, a.wake)
	a.timer.Stop()
	return a
}

// acquire waits for the right to call STS until deadline and returns when it got it; release
// must follow a nil error. now is the caller's reading of the clock, taken just before: a call
// that may start at once starts at now, without reading the clock again.
func (a *stsAdmission) acquire(class keyClass, now, deadline time.Time) (started time.Time, err error) {
	if !a.preferVerified {
		class = keyVerified // one FIFO for all
	}
	a.mu.Lock()
	if a.queues[keyVerified].Len()+a.queues[keyNew].Len() == 0 && a.inflight < a.maxInflight && a.rate.take(now) {
		a.inflight++
		a.mu.Unlock()
		return now, nil
	}
	q := &a.queues[class]
	if q.Len() >= a.maxQueue || a.draining {
		a.mu.Unlock()
		return time.Time{}, a.refused(class, errQueueFull)
	}
	if wait, ok := a.rate.wait(now, a.ahead(class)); ok && now.Add(wait).After(deadline) {
		a.mu.Unlock()
		return time.Time{}, a.refused(class, errRateLimited)
	}
	w := &stsWaiter{ready: make(chan struct{}, 1), deadline: deadline, class: class}
	w.elem = q.PushBack(w)
	a.armLocked(now)
	a.mu.Unlock()

	t := time.NewTimer(deadline.Sub(now))
	defer t.Stop()
	select {
	case <-w.ready:
	case <-t.C:
		a.mu.Lock()
		if !w.granted && w.refusal == nil { // still waiting at its deadline
			q.Remove(w.elem)
			w.refusal = errQueueFull
			if a.rate.pacing {
				w.refusal = errRateLimited
			}
		}
		a.mu.Unlock()
	}
	if w.granted { // possibly as the timer fired: take it
		return time.Now(), nil
	}
	return time.Time{}, a.refused(class, w.refusal)
}

// refused counts a refusal and returns it.
func (a *stsAdmission) refused(class keyClass, err error) error {
	if err == errRateLimited {
		a.metrics.stsRateLimited[class].Inc()
	} else {
		a.metrics.stsQueueRejections.Inc()
	}
	return err
}

// refuseLocked takes w out of its queue and hands it err.
func (a *stsAdmission) refuseLocked(w *stsWaiter, err error) {
	a.queues[w.class].Remove(w.elem)
	w.refusal = err
	w.ready <- struct{}{}
}

// ahead is how many waiting calls start before a new call of class.
func (a *stsAdmission) ahead(class keyClass) int {
	n := a.queues[keyVerified].Len()
	if class == keyNew {
		// Every waiting call, and the verified ones that will still arrive: a lower bound.
		n += a.queues[keyNew].Len()
	}
	return n
}

// release ends a call at now; answered tells whether STS gave a definite answer (not
// throttled, not a network failure), throttled whether it said Throttling, started when the
// call was sent.
func (a *stsAdmission) release(started, now time.Time, answered, throttled bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	switch {
	case throttled:
		before := a.rate.current()
		a.rate.throttled(now, started)
		if a.rate.pacing && (before == 0 || a.rate.current() < before) {
			defer a.refuseLateLocked(now) // after dispatch: what can start now, starts
		}
	case answered:
		a.rate.answered(now, started)
	}
	a.dispatchLocked(now)
}

// refuseLateLocked refuses at once the waiting calls that the rate, just dropped, can no
// longer start before their deadline: the refuse-at-once rule of acquire, applied again,
// rather than holding them until the deadline and answering the same 429 then.
func (a *stsAdmission) refuseLateLocked(now time.Time) {
	// Verified keys first, then new ones behind them all, as ahead counts.
	kept := 0 // waiting calls that start before the next one looked at
	for class := range a.queues {
		q := &a.queues[class]
		for e := q.Front(); e != nil; {
			next := e.Next()
			w := e.Value.(*stsWaiter)
			if wait, ok := a.rate.wait(now, kept); ok && now.Add(wait).After(w.deadline) {
				a.refuseLocked(w, errRateLimited)
			} else {
				kept++
			}
			e = next
		}
	}
}

// drain refuses every waiting call, and from now on every call that cannot start at once:
// on shutdown a review should not wait out -sts.queueWait on a daemon that is stopping, but
// get its 429 now and be retried by kube-apiserver. Calls in flight finish.
func (a *stsAdmission) drain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.draining = true
	for class := range a.queues {
		q := &a.queues[class]
		for q.Len() > 0 {
			a.refuseLocked(q.Front().Value.(*stsWaiter), errQueueFull)
		}
	}
}

// wake runs when the next rate token is due.
func (a *stsAdmission) wake() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.timerArmed = false
	a.dispatchLocked(time.Now())
}

// dispatchLocked starts waiting calls while slots and rate tokens allow.
func (a *stsAdmission) dispatchLocked(now time.Time) {
	for a.inflight < a.maxInflight {
		q := a.nextQueueLocked()
		if q == nil {
			break
		}
		if !a.rate.take(now) {
			a.armLocked(now)
			break
		}
		w := q.Remove(q.Front()).(*stsWaiter)
		if w.class == keyNew {
			a.sinceNew = 0
		} else {
			a.sinceNew++
		}
		w.granted = true
		a.inflight++
		w.ready <- struct{}{}
	}
	a.metrics.stsRateLimit.Set(a.rate.current())
}

// nextQueueLocked picks the queue of the next start: verified keys first, a never-seen key
// at least every newKeyShare starts.
func (a *stsAdmission) nextQueueLocked() *list.List {
	verified, unseen := &a.queues[keyVerified], &a.queues[keyNew]
	switch {
	case verified.Len() == 0 && unseen.Len() == 0:
		return nil
	case unseen.Len() == 0:
		return verified
	case verified.Len() == 0 || a.sinceNew >= newKeyShare-1:
		return unseen
	default:
		return verified
	}
}

// armLocked makes wake run when the next rate token is due, if calls wait for one.
func (a *stsAdmission) armLocked(now time.Time) {
	if a.timerArmed || a.inflight >= a.maxInflight {
		return // a release will dispatch
	}
	d, ok := a.rate.untilToken(now)
	if !ok {
		return
	}
	a.timerArmed = true
	a.timer.Reset(max(d, time.Millisecond))
}

// stsRate is the adaptive rate: off until STS first answers Throttling, then a token bucket
// whose rate follows CUBIC, as the AWS SDKs' adaptive retry mode does. On Throttling the rate
// drops to rateBeta × what STS had been accepting; it then grows back along a cubic curve
// that is flat near that rate and steep beyond it, probing for more; the next Throttling
// starts a new curve. Throttling answers to calls sent before the last drop are the same
// overshoot and are not counted twice. When the curve reaches rateOffFactor × the rate STS
// last accepted without throttling again, the limit is dropped. Not safe for concurrent use.
type stsRate struct {
	adaptiveOff bool // -sts.adaptiveRate=false: never pace
	// pacing: STS answered Throttling and the curve has not yet reached rateOffFactor × peak.
	pacing bool
	rate   float64 // tokens per second, now
	tokens float64
	last   time.Time // of the last refill
	peak   float64   // the rate STS accepted when it last throttled
	// dropFrom is the rate in force at the last drop (+Inf when calls were not paced): what
	// STS accepted then was at most that.
	dropFrom float64
	k        float64   // seconds from epoch until the curve is back at peak
	epoch    time.Time // the last drop

	answers answerWindow // calls STS answered without throttling, over the last second
}

const (
	rateBeta      = 0.9 // the drop on Throttling
	rateCubicC    = 0.4 // the curve's steepness, in calls/s per s³ (the SDKs' value)
	rateMin       = 1.0 // calls per second, the floor
	rateBurst     = 0.1 // seconds of rate the bucket holds: small, so that no burst overshoots
	rateOffFactor = 4.0 // pacing stops when the curve reaches this × peak
)

// current is the paced rate, 0 when calls are not paced (iamgate_sts_rate_limit).
func (r *stsRate) current() float64 {
	if !r.pacing {
		return 0
	}
	return r.rate
}

// refill brings the rate and the bucket to now.
func (r *stsRate) refill(now time.Time) {
	if !r.pacing {
		return
	}
	t := now.Sub(r.epoch).Seconds() - r.k
	r.rate = max(rateMin, r.peak+rateCubicC*t*t*t)
	if r.rate >= rateOffFactor*r.peak {
		r.pacing = false // STS has taken far more than it once refused: no limit
		return
	}
	if dt := now.Sub(r.last).Seconds(); dt > 0 {
		r.tokens = min(max(1, r.rate*rateBurst), r.tokens+dt*r.rate)
		r.last = now
	}
}

// take takes a token if the rate allows a call now.
func (r *stsRate) take(now time.Time) bool {
	r.refill(now)
	if !r.pacing {
		return true
	}
	if r.tokens >= 1 {
		r.tokens--
		return true
	}
	return false
}

// wait is about how long until n calls ahead and one more can start; false when the rate
// is not limited. A queue of several seconds drains at the rate the curve returns to within
// K seconds of a drop and probes beyond, what STS accepted when it throttled, not at the
// dip just after the drop: the wait counts the higher of the two.
func (r *stsRate) wait(now time.Time, n int) (time.Duration, bool) {
	r.refill(now)
	if !r.pacing {
		return 0, false
	}
	need := float64(n) + 1 - r.tokens
	if need <= 0 {
		return 0, true
	}
	return time.Duration(need / max(r.rate, r.peak) * float64(time.Second)), true
}

// untilToken is how long until the next token at the current rate; false when the rate is
// not limited.
func (r *stsRate) untilToken(now time.Time) (time.Duration, bool) {
	r.refill(now)
	if !r.pacing {
		return 0, false
	}
	return time.Duration(max(0, 1-r.tokens) / r.rate * float64(time.Second)), true
}

// throttled records a Throttling answer to a call sent at started.
func (r *stsRate) throttled(now, started time.Time) {
	if r.adaptiveOff || (r.pacing && started.Before(r.epoch)) {
		return
	}
	r.refill(now)
	accepted := r.answers.rate(now)
	r.dropFrom = math.Inf(1)
	if r.pacing {
		accepted = min(accepted, r.rate)
		r.dropFrom = r.rate
	}
	r.peak = max(rateMin, accepted)
	r.rate = max(rateMin, rateBeta*r.peak)
	r.k = math.Cbrt(r.peak * (1 - rateBeta) / rateCubicC)
	r.epoch, r.last, r.tokens = now, now, 0
	r.pacing = true
}

// answered records a call sent at started that STS answered without throttling.
func (r *stsRate) answered(now, started time.Time) {
	r.answers.add(now)
	if !r.pacing || !started.Before(r.epoch) {
		return
	}
	// Sent before the last drop: part of what STS accepted when it throttled, which the drop
	// could not count yet (STS may answer Throttling at once and an accepted call only
	// later). Raise the curve's peak to what was accepted, never above the rate of the drop.
	if accepted := min(r.answers.rate(now), r.dropFrom); accepted > r.peak {
		r.refill(now)
		r.peak = accepted
		r.k = math.Cbrt(r.peak * (1 - rateBeta) / rateCubicC)
	}
}

// answerWindow counts events over about the last second, in 100 ms slots.
type answerWindow struct {
	slots [11]struct {
		at int64 // slot number: unix time in 100 ms units
		n  int
	}
}

const answerSlot = int64(100 * time.Millisecond)

func (w *answerWindow) add(now time.Time) {
	at := now.UnixNano() / answerSlot
	s := &w.slots[at%int64(len(w.slots))]
	if s.at != at {
		s.at, s.n = at, 0
	}
	s.n++
}

// rate is the events per second over the ten whole slots before now's and the part of now's.
func (w *answerWindow) rate(now time.Time) float64 {
	at := now.UnixNano() / answerSlot
	n := 0
	for _, s := range w.slots {
		if at-s.at < int64(len(w.slots)) {
			n += s.n
		}
	}
	part := float64(now.UnixNano()%answerSlot) / float64(answerSlot)
	return float64(n) / ((float64(len(w.slots)-1) + part) / 10)
}

// verifiedKeys remembers the access key IDs of tokens STS verified, as 64-bit hashes in two
// generations: a key in either is known. The generations turn every keyGeneration or when the
// current one holds limit keys, so memory stays below about 2 × limit × 40 bytes. A hash
// collision only gives a forged key priority; the seed is random per process.
type verifiedKeys struct {
	seed  maphash.Seed
	limit int

	mu        sync.RWMutex
	cur, prev map[uint64]struct{}
	turned    time.Time
}

// keyGeneration is how long a verified key keeps its priority at least: longer than a token
// (15 minutes), so a node's next token with the same credentials is known.
const keyGeneration = time.Hour

// newVerifiedKeys remembers up to limit keys per generation, the first beginning at now (the
// clock of the review that calls add).
func newVerifiedKeys(limit int, now time.Time) *verifiedKeys {
	if limit <= 0 {
		limit = 100_000
	}
	return &verifiedKeys{seed: maphash.MakeSeed(), limit: limit, cur: make(map[uint64]struct{}), turned: now}
}

func (v *verifiedKeys) class(accessKeyID string) keyClass {
	h := maphash.String(v.seed, accessKeyID)
	v.mu.RLock()
	_, inCur := v.cur[h]
	_, inPrev := v.prev[h]
	v.mu.RUnlock()
	if inCur || inPrev {
		return keyVerified
	}
	return keyNew
}

// add remembers accessKeyID, verified at now.
func (v *verifiedKeys) add(accessKeyID string, now time.Time) {
	h := maphash.String(v.seed, accessKeyID)
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cur) >= v.limit || now.Sub(v.turned) >= keyGeneration {
		v.prev, v.cur, v.turned = v.cur, make(map[uint64]struct{}, len(v.cur)), now
	}
	v.cur[h] = struct{}{}
}
