package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/sigv4"
)

// BenchAccount is the AWS account of every generated principal.
const BenchAccount = "123456789012"

// Principal is an IAM user of the fake STS that tokens are minted for, or a session when
// SessionToken is set.
type Principal struct {
	ARN, AccessKeyID, SecretAccessKey string
	SessionToken                      string
}

// Principals returns n deterministic IAM users of BenchAccount.
func Principals(n int) []Principal {
	ps := make([]Principal, n)
	for i := range ps {
		ps[i] = Principal{
			ARN:             fmt.Sprintf("arn:aws:iam::%s:user/bench/bench-%06d", BenchAccount, i),
			AccessKeyID:     fmt.Sprintf("AKIABENCH%011d", i),
			SecretAccessKey: fmt.Sprintf("bench-secret-%06d", i),
		}
	}
	return ps
}

// FakeSTSConfig is the fake STS configuration that knows ps.
func FakeSTSConfig(ps []Principal) fakests.Config {
	var cfg fakests.Config
	for _, p := range ps {
		cfg.Users = append(cfg.Users, fakests.User{ARN: p.ARN, AccessKeyID: p.AccessKeyID, SecretAccessKey: p.SecretAccessKey})
	}
	return cfg
}

// Minter mints tokens in advance. Every token Fresh returns is distinct from every other
// token of the same Minter: each is signed by a (principal, second) pair never used before,
// counting back from now, so thousands of principals give thousands of tokens per second of
// signing time. Safe for use by one goroutine at a time.
type Minter struct {
	ClusterID  string
	Region     string // empty means us-east-1
	Principals []Principal
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	used map[int64]int // unix second → principals already used for it
}

// Token mints one token for p signed at at; a non-empty wrongSecret signs with that secret
// instead of p's (STS rejects it with SignatureDoesNotMatch).
func (m *Minter) Token(p Principal, at time.Time, wrongSecret string) (string, error) {
	secret := p.SecretAccessKey
	if wrongSecret != "" {
		secret = wrongSecret
	}
	return sigv4.Presign(context.Background(), sigv4.PresignInput{
		ClusterID:   m.ClusterID,
		Credentials: aws.Credentials{AccessKeyID: p.AccessKeyID, SecretAccessKey: secret, SessionToken: p.SessionToken},
		Region:      m.Region,
		Time:        at,
	})
}

// maxSignedAgo bounds how far back Fresh signs: a token it returns stays valid at least five
// minutes, so that a scenario never measures expired tokens by mistake.
const maxSignedAgo = 10 * time.Minute

// Fresh returns n tokens never returned before, valid now (signed at most n/len(Principals)
// seconds ago, counting the seconds earlier calls used); an error when that would reach back
// more than maxSignedAgo. badSignature signs them with a wrong secret.
func (m *Minter) Fresh(n int, badSignature bool) ([]string, error) {
	toks, _, err := m.FreshFor(n, badSignature)
	return toks, err
}

// FreshFor is Fresh that also returns, for each token, the principal it was minted for (the
// identity STS will answer with, unless badSignature).
func (m *Minter) FreshFor(n int, badSignature bool) ([]string, []Principal, error) {
	if len(m.Principals) == 0 {
		return nil, nil, fmt.Errorf("cannot mint tokens: no principals")
	}
	if m.used == nil {
		m.used = map[int64]int{}
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	type job struct {
		p  Principal
		at time.Time
	}
	jobs := make([]job, 0, n)
	newest := now().Unix()
	for sec := newest; len(jobs) < n; sec-- {
		if newest-sec > int64(maxSignedAgo/time.Second) {
			return nil, nil, fmt.Errorf("cannot mint %d more tokens: %d principals sign one token each per second, so they would be signed more than %v ago (a token expires 15 minutes after it is signed): mint fewer at a time or use more principals",
				n, len(m.Principals), maxSignedAgo)
		}
		for m.used[sec] < len(m.Principals) && len(jobs) < n {
			jobs = append(jobs, job{m.Principals[m.used[sec]], time.Unix(sec, 0).UTC()})
			m.used[sec]++
		}
	}
	out := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				wrong := ""
				if badSignature {
					wrong = "wrong-" + jobs[i].p.SecretAccessKey
				}
				out[i], errs[i] = m.Token(jobs[i].p, jobs[i].at, wrong)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	ps := make([]Principal, n)
	for i := range jobs {
		ps[i] = jobs[i].p
	}
	return out, ps, nil
}

// Expired returns n distinct tokens signed more than 15 minutes ago: well-formed, and
// rejected locally (reason expired) after the whole validation.
func (m *Minter) Expired(n int) ([]string, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	base := now().Add(-sigv4.ValidFor - 5*time.Minute)
	out := make([]string, n)
	for i := range out {
		p := m.Principals[i%len(m.Principals)]
		tok, err := m.Token(p, base.Add(-time.Duration(i/len(m.Principals))*time.Second), "")
		if err != nil {
			return nil, err
		}
		out[i] = tok
	}
	return out, nil
}

// ReviewBody is a v1 TokenReview of token, as kube-apiserver sends it.
func ReviewBody(token string) []byte {
	b, err := json.Marshal(map[string]any{
		"apiVersion": "authentication.k8s.io/v1",
		"kind":       "TokenReview",
		"spec":       map[string]any{"token": token},
	})
	if err != nil {
		panic("BUG: cannot encode a TokenReview: " + err.Error())
	}
	return b
}

// ReviewBodies is ReviewBody of each token.
func ReviewBodies(tokens []string) [][]byte {
	out := make([][]byte, len(tokens))
	for i, t := range tokens {
		out[i] = ReviewBody(t)
	}
	return out
}
