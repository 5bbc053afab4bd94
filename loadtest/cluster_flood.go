package loadtest

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/sigv4"
)

// KindClusterFlood: warm-up; then, with STS throttled, phases in which a flood of forged
// tokens (each new, with an invented access key and a current date: one STS call each, which
// no cache can save) comes beside the cluster's own traffic.
const KindClusterFlood = "cluster-flood"

// maxFloodInFlight bounds the flood's authentications in flight; beyond it the generator
// drops flood requests (counted) rather than grow without bound.
const maxFloodInFlight = 4096

// FloodReport is what the flood of one phase did.
type FloodReport struct {
	// Sent is the forged tokens presented; Dropped those the generator could not send (too
	// many in flight).
	Sent    int `json:"sent"`
	Dropped int `json:"dropped"`
	// Denied were answered as they must be; Failed ended with an error after the replica's
	// retries (429 or 5xx: iamgate could not or would not ask STS in time); Wrong were
	// authenticated: never acceptable.
	Denied int `json:"denied"`
	Failed int `json:"failed"`
	Wrong  int `json:"wrong"`
}

// ClusterFlood is the forged-token flood scenario: nodes and users renew their tokens every
// renewEvery (so the cluster itself needs (nodes+users)/renewEvery STS calls per second, from
// access keys STS has verified before); after the warm-up STS is throttled at rate, and each
// later phase lasts phaseFor with floods[i] forged tokens per second.
func ClusterFlood(name string, nodes, users int, rate float64, floods []float64, renewEvery, phaseFor time.Duration) ClusterScenario {
	throttle := fakests.Faults{ThrottleRate: rate, ThrottleBurst: max(1, int(rate)), Actions: []string{fakests.ActionGetCallerIdentity}}
	sc := ClusterScenario{
		Name: name, Kind: KindClusterFlood, Nodes: nodes, Users: users, NodeRetries: clusterDefaults.NodeRetries, RenewEvery: renewEvery,
		Description: fmt.Sprintf("%d nodes, %d users renewing their tokens every %s; STS throttled at %g calls/s; floods of forged tokens (each new, an invented access key) at %v per second",
			nodes, users, renewEvery, rate, floods),
		Phases: []ClusterPhase{{Name: "warm-up", MaxDuration: 5 * time.Minute, UntilRecovered: true, Settle: 2 * time.Second}},
	}
	for _, f := range floods {
		sc.Phases = append(sc.Phases, ClusterPhase{Name: fmt.Sprintf("flood-%g", f), Faults: throttle, FloodRate: f, MaxDuration: phaseFor})
	}
	return sc
}

// floodTally counts one phase's flood. Guarded by clusterModel.mu.
type floodTally struct{ FloodReport }

// flood sends rate forged tokens per second through random replicas until stop closes, then
// waits for those in flight (each bounded by attemptTimeout).
func (m *clusterModel) flood(rate float64, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	slots := make(chan struct{}, maxFloodInFlight)
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start, sent := time.Now(), 0
	for {
		select {
		case <-stop:
			return
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			due := int(rate*now.Sub(start).Seconds()) - sent
			if due <= 0 {
				continue
			}
			toks, err := inventedTokens(m.minter.ClusterID, m.minter.Region, now, due)
			if err != nil {
				m.mu.Lock()
				m.notes = append(m.notes, "cannot mint flood tokens: "+err.Error())
				m.mu.Unlock()
				return
			}
			sent += due
			for _, tok := range toks {
				select {
				case slots <- struct{}{}:
				default:
					m.mu.Lock()
					m.tally.flood.Dropped++
					m.mu.Unlock()
					continue
				}
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					defer func() { <-slots }()
					m.floodAttempt(tok)
				}()
			}
		}
	}
}

func (m *clusterModel) floodAttempt(token string) {
	r := m.reps[mrand.IntN(len(m.reps))]
	ctx, cancel := context.WithTimeout(m.ctx, attemptTimeout)
	resp, ok, err := r.stack.Load().auth.AuthenticateToken(ctx, token)
	cancel()
	name := ""
	if ok && resp != nil && resp.User != nil {
		name = resp.User.GetName()
	}
	v := Judge(Expectation{}, ok, name, err)
	m.mu.Lock()
	defer m.mu.Unlock()
	f := &m.tally.flood
	f.Sent++
	switch {
	case v.Wrong():
		f.Wrong++
		if len(m.wrong) < maxWrongSamples {
			m.wrong = append(m.wrong, fmt.Sprintf("flood: a forged token with an invented key: %s; got ok=%v user %q", v, ok, name))
		}
	case v == VerdictDenied:
		f.Denied++
	default:
		f.Failed++
	}
}

// inventedTokens mints n tokens signed at now with invented access keys (AKIA and 16
// random base-32 characters) and secrets: the shape, host and date are valid; STS answers
// InvalidClientTokenId.
func inventedTokens(clusterID, region string, now time.Time, n int) ([]string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	out := make([]string, n)
	b := make([]byte, 16+20)
	for i := range out {
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		key := []byte("AKIA")
		for _, c := range b[:16] {
			key = append(key, alphabet[c%32])
		}
		tok, err := sigv4.Presign(context.Background(), sigv4.PresignInput{
			ClusterID:   clusterID,
			Credentials: aws.Credentials{AccessKeyID: string(key), SecretAccessKey: fmt.Sprintf("%x", b[16:])},
			Region:      region,
			Time:        now,
		})
		if err != nil {
			return nil, err
		}
		out[i] = tok
	}
	return out, nil
}
