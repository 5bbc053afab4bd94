//go:build soak

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iamgate/iamgate/bench"
	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/loadtest"
)

// TestSoak (`make soak`, scripts/soak.sh) runs iamgate for a long time behind a real
// kube-apiserver and in front of the fake STS, with mixed traffic, faults rotating every
// period, mapping file and ConfigMap edits, access key and TLS key pair rotations, and judges
// every answer with the oracle of loadtest/soak.go. It samples iamgate's goroutines, heap, RSS
// and open fds and checks that they stay flat after the warm-up. See docs/design.md, The soak.

var (
	soakDuration = flag.Duration("soak.duration", 30*time.Minute, "how long traffic, faults and edits run")
	soakShort    = flag.Bool("soak.short", false, "the CI variant: faults rotate every 15 s, samples every 10 s, results as quick-soak-*, BENCHMARKS.md left alone")
	soakResults  = flag.String("soak.results", "", "folder of the results JSON and chart (default: bench/results of this repository)")
	soakMarkdown = flag.String("soak.markdown", "", "file whose soak section is rewritten (default: BENCHMARKS.md of this repository, or none with -soak.short); none for none")
	soakRate     = flag.Float64("soak.rate", 120, "TokenReviews per second posted straight to iamgate")
	soakKASRate  = flag.Float64("soak.kubeAPIServerRate", 10, "SelfSubjectReviews per second through kube-apiserver")
)

// The faults the fake STS rotates through, one per period. Disruptive ones may fail reviews;
// during the others every review must get a definite answer.
var soakFaults = []struct {
	name, json string
	disruptive bool
}{
	{"none", "", false},
	{"latency", `{"latency":"300ms","jitter":"400ms"}`, false},
	{"throttling", `{"throttleRate":5,"throttleBurst":5}`, true},
	{"resets", `{"resetRate":0.3}`, true},
	{"hangs", `{"hangRate":0.3,"hangFor":"8s"}`, true},
	{"outage", `{"outage":true}`, true},
}

const (
	// soakKASCacheTTL is kube-apiserver's webhook cache TTL in the soak: short, so that its
	// cache bounds the oracle's windows on that path to seconds, not the default 2 minutes.
	soakKASCacheTTL = 10 * time.Second
	// soakReloadWindow bounds how long iamgate may answer from a replaced mapping version.
	soakReloadWindow = 10 * time.Second
	// soakIdentityTTL is iamgate's -cache.ttl (its default): how long a verified identity of a
	// deleted key may still be answered from its cache.
	soakIdentityTTL = 2 * time.Minute
	// Fault tails (see loadtest.SoakTimeline.Disrupted): a hung STS call lasts up to
	// -sts.timeout (5 s); kube-apiserver retries a failing webhook for about 4.5 s, 5 calls
	// of up to 5 s each while STS hangs, and its token cache makes later requests join.
	soakDirectTail = 10 * time.Second
	soakKASTail    = 45 * time.Second
	// soakSettle is how long after the traffic the idle sample is taken: iamgate's
	// -webhook.idleTimeout (90 s) has closed kube-apiserver's kept-alive connections by then,
	// and its STS connections close after 30 s idle.
	soakSettle = 100 * time.Second
	// soakTLSWait bounds the wait for iamgate to serve a replaced key pair (it checks the files
	// every 10 s).
	soakTLSWait = 30 * time.Second
	// soakMaxWrong bounds the wrong answers described in the results.
	soakMaxWrong = 20
	// Workers per path: requests beyond them are skipped and counted.
	soakDirectWorkers = 256
	soakKASWorkers    = 64
)

// soakPlan is the run's timing.
type soakPlan struct {
	duration, period, sampleEvery, warmup, renewEvery time.Duration
	directRate, kasRate                               float64
}

func newSoakPlan(t *testing.T) soakPlan {
	p := soakPlan{duration: *soakDuration, period: time.Minute, sampleEvery: time.Minute, directRate: *soakRate, kasRate: *soakKASRate}
	if *soakShort {
		p.period, p.sampleEvery = 15*time.Second, 10*time.Second
	}
	// The warm-up is one whole rotation of the faults, at least the identity cache's TTL.
	p.warmup = max(p.period*time.Duration(len(soakFaults)), soakIdentityTTL)
	p.renewEvery = 5 * p.period
	if p.duration < p.warmup+2*p.sampleEvery {
		t.Fatalf("-soak.duration %s is too short: the warm-up alone takes %s, and the leak check needs two samples after it", p.duration, p.warmup)
	}
	return p
}

// soakPath is how a request reaches iamgate.
type soakPath int

const (
	pathDirect soakPath = iota // a TokenReview posted to iamgate
	pathKAS                    // a SelfSubjectReview through kube-apiserver
	pathProbe                  // a TokenReview of an edit's probe
	numPaths
)

var pathNames = [numPaths]string{"direct", "kube-apiserver", "probe"}

func TestSoak(t *testing.T) {
	plan := newSoakPlan(t)
	res := bench.NewSoakResults(*soakShort)
	model := loadtest.NewSoakModel(clusterID)

	// The fake STS knows the soak's principals, and alice, whose keys sign iamgate's EC2 calls.
	cfg := model.FakeSTSConfig()
	cfg.Users = append(cfg.Users, fakestsUser(alice))
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stsConfig := filepath.Join(t.TempDir(), "fakests-soak.json")
	writeFile(t, stsConfig, cfgJSON, 0o644)
	e := newEnvWith(t, stsConfig, false)

	// iamgate's key pair comes from a CA of the soak's own, so that it can issue new leaves
	// (iamgate init does not keep its CA's key): as in the file run of TestKubeAPIServer.
	pki, webhookAddr := e.initPKI(t, "soak")
	initCA, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, "soak webhook CA")
	leaf, key, _ := ca.issue(t, "iamgate", nil, "127.0.0.1")
	replaceKeyPair(t, pki, leaf, key)
	writeFile(t, filepath.Join(pki, "ca.pem"), ca.pem, 0o644)
	setWebhookCA(t, filepath.Join(pki, "webhook-kubeconfig.yaml"), initCA, ca.pem)

	kasCacheFlag := "--authentication-token-webhook-cache-ttl=" + soakKASCacheTTL.String()
	kas := e.startKubeAPIServer(t, "kube-apiserver-soak", filepath.Join(pki, "webhook-kubeconfig.yaml"), "v1", kasCacheFlag)
	e.kubectlOK(t, kas.admin, "apply", "-f", filepath.Join(e.repo, "deploy", "rbac.yaml"))
	saToken := strings.TrimSpace(e.kubectlOK(t, kas.admin, "create", "token", "iamgate", "-n", "kube-system", "--duration", (plan.duration + time.Hour).String()))
	saKubeconfig := kas.tokenKubeconfig(t, e, "iamgate-serviceaccount", saToken)
	// Edits and faults are a few calls a minute: each on a new connection, so that none goes
	// out on a kept-alive one the server is closing (fakests closes them after a minute idle,
	// the soak's period).
	admin := kas.httpClient(t, e, true)
	admin.Transport.(*http.Transport).DisableKeepAlives = true

	stsAdmin := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: e.stsClient.Transport.(*http.Transport).TLSClientConfig.Clone(), DisableKeepAlives: true}}
	s := &soak{t: t, e: e, plan: plan, model: model, res: res, kas: kas, admin: admin, stsAdmin: stsAdmin, ca: ca, pki: pki}
	s.mappingFile = filepath.Join(e.work, "aws-auth-soak.yaml")
	if err := s.writeMappingFile(model.FileDocument(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.applyConfigMap(0); err != nil {
		t.Fatal(err)
	}
	iamgateFlags := []string{"-mapping.file", s.mappingFile, "-mapping.configMap", "-kubeconfig", saKubeconfig}
	s.g = e.startIamgate(t, "iamgate-soak", pki, webhookAddr, iamgateFlags...)
	s.setup()
	res.Settings = bench.SoakSettings{
		Duration: plan.duration.String(), Period: plan.period.String(), SampleEvery: plan.sampleEvery.String(), Warmup: plan.warmup.String(),
		Settle:     soakSettle.String(),
		DirectRate: plan.directRate, KubeAPIServerRate: plan.kasRate,
		Mix: "55 % a principal's current token (renewed every " + plan.renewEvery.String() + "), 20 % a fresh token (one STS call each), " +
			"25 % hostile: mangled (rejected locally), a forged signature, another cluster's, an unknown access key, a deleted key's " +
			"(STS rejects them); principals of every kind, unmapped users included",
		Windows: []string{
			fmt.Sprintf("a replaced mapping version may answer for %s after its replacement (%s through kube-apiserver, whose webhook cache TTL is %s)",
				s.windows[pathDirect].Mapping, s.windows[pathKAS].Mapping, soakKASCacheTTL),
			fmt.Sprintf("a token of a deleted access key, minted before the deletion, may be allowed for %s after it (%s through kube-apiserver): iamgate's identity cache TTL",
				s.windows[pathDirect].Revocation, s.windows[pathKAS].Revocation),
			fmt.Sprintf("a disruptive fault may fail reviews until %s after it is cleared (%s through kube-apiserver)", soakDirectTail, soakKASTail),
		},
		IAMGateFlags: []string{"-mapping.file <the edited file>", "-mapping.configMap -kubeconfig <its ServiceAccount>",
			"-tls.certFile/-tls.keyFile <rotated>", "-sts.dialOverride <the fake STS> -sts.caFile <its CA>", "-ec2.endpoint <the fake EC2>"},
		KubeAPIServer: "v1.37.2 with `" + kasCacheFlag + "`",
	}
	for _, f := range soakFaults {
		res.Settings.Faults = append(res.Settings.Faults, f.name+": "+map[bool]string{true: f.json, false: "{}"}[f.json != ""])
	}
	res.Command = os.Getenv("IAMGATE_SOAK_COMMAND")
	if res.Command == "" {
		res.Command = fmt.Sprintf("go test -tags soak ./e2e/ -run TestSoak -soak.duration=%s", plan.duration)
	}

	s.run()
	s.finish()
}

// fakestsUser is id as a user of the fake STS's config.
func fakestsUser(id identity) fakests.User {
	return fakests.User{ARN: "arn:aws:iam::111122223333:user/" + id.name, AccessKeyID: id.akid, SecretAccessKey: id.secret}
}

// soak is one run's state. Fields below mu are shared by the traffic, the edits and the sampler.
type soak struct {
	t           *testing.T
	e           *env
	g           *iamgate
	kas         *apiserver
	plan        soakPlan
	model       *loadtest.SoakModel
	res         *bench.SoakResults
	admin       *http.Client // kube-apiserver, as system:masters
	stsAdmin    *http.Client // the fake STS's admin endpoints
	direct      *http.Client // iamgate's webhook, trusting the soak's CA
	kasClient   *http.Client // kube-apiserver, no client certificate
	ca          *certAuthority
	pki         string
	mappingFile string
	windows     [numPaths]loadtest.SoakWindows
	start, end  time.Time
	tl          *loadtest.SoakTimeline

	mu         sync.Mutex
	hot        map[*loadtest.SoakPrincipal]*hotToken
	lastSec    map[string]int64 // by access key ID: the last signing second used
	rotorKey   int              // index of the rotor's current key
	staleKeys  []loadtest.SoakKey
	answers    [numPaths][loadtest.NumSoakTokenKinds]bench.SoakCount
	byFault    map[string]*bench.SoakCount
	faultOrder []string
	skipped    map[string]int
	badStatus  []string
	events     bench.SoakEvents
	late       []string // edits not followed within the window
	errs       []string // failures of the edits and rotations (the test fails on any)
}

type hotToken struct {
	tok     *loadtest.SoakToken
	renewAt time.Time
}

// --- setup ---

func (s *soak) setup() {
	t := s.t
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.ca.pem)
	s.direct = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
	s.kasClient = s.kas.httpClient(t, s.e, false)
	s.kasClient.Timeout = 90 * time.Second
	// Idle connections are dropped well before a server would close them: a request sent on
	// one it is closing fails, and the soak would count that against iamgate.
	s.kasClient.Transport.(*http.Transport).MaxIdleConnsPerHost = 32
	s.kasClient.Transport.(*http.Transport).IdleConnTimeout = 30 * time.Second
	s.windows[pathDirect] = loadtest.SoakWindows{Mapping: soakReloadWindow, Revocation: soakIdentityTTL + 10*time.Second}
	s.windows[pathProbe] = s.windows[pathDirect]
	s.windows[pathKAS] = loadtest.SoakWindows{Mapping: soakReloadWindow + soakKASCacheTTL, Revocation: soakIdentityTTL + 10*time.Second + soakKASCacheTTL}
	s.hot = map[*loadtest.SoakPrincipal]*hotToken{}
	s.lastSec = map[string]int64{}
	s.byFault = map[string]*bench.SoakCount{}
	s.skipped = map[string]int{}
	s.tl = loadtest.NewSoakTimeline(time.Now(), 0, 0)

	// Both sources are live: a user of each answers as the first versions say, straight and
	// through kube-apiserver.
	for _, name := range []string{"file-01", "cm-01", "dev-0@soak.example", "ip-10-9-0-10.ec2.internal"} {
		var p *loadtest.SoakPrincipal
		for _, q := range s.model.Principals {
			if q.Name == name || q.PrivateDNSName == name {
				p = q
			}
		}
		want, _ := s.model.Expect(0, 0, p)
		deadline := time.Now().Add(30 * time.Second)
		for {
			tok := s.token(loadtest.SoakCold, p)
			a, status, err := s.review(tok.Token)
			if a.Decided && a.Allowed && a.Username == want.Username && slices.Equal(a.Groups, want.Groups) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is not answered as %+v 30 s after the start; last answer %d %+v %v", name, want, status, a, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	tok := s.token(loadtest.SoakCold, s.model.Rotor())
	if a, status, err := s.selfSubjectReview(tok.Token); !a.Allowed || a.Username != "rotor" {
		t.Fatalf("unexpected SelfSubjectReview of the rotor through kube-apiserver: %d %+v %v", status, a, err)
	}
}

// --- tokens ---

// signAt returns a signing time for key id no token of the soak has used: one (key, second)
// is one token, and two equal tokens would be one cache entry. The caller holds mu.
func (s *soak) signAt(id string) time.Time {
	sec := time.Now().Unix()
	if last := s.lastSec[id]; sec <= last {
		sec = last + 1 // at most a few seconds ahead: within every skew allowance
	}
	s.lastSec[id] = sec
	return time.Unix(sec, 0).UTC()
}

// currentKey is p's key now (the rotor's rotates). The caller holds mu.
func (s *soak) currentKey(p *loadtest.SoakPrincipal) loadtest.SoakKey {
	if p.Kind == loadtest.SoakRotor {
		return s.model.RotorKeyFor(s.rotorKey)
	}
	return p.Key
}

// token makes a token of kind for p (nil: a random principal).
func (s *soak) token(kind loadtest.SoakTokenKind, p *loadtest.SoakPrincipal) *loadtest.SoakToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenLocked(kind, p)
}

func (s *soak) tokenLocked(kind loadtest.SoakTokenKind, p *loadtest.SoakPrincipal) *loadtest.SoakToken {
	if p == nil {
		p = s.model.Principals[rand.IntN(len(s.model.Principals))]
	}
	now := time.Now()
	if kind == loadtest.SoakHot {
		h := s.hot[p]
		if h == nil || now.After(h.renewAt) {
			// Renewals are spread over a period; the first ones over the whole renewal period.
			every := s.plan.renewEvery
			if h == nil {
				every = time.Duration(rand.Int64N(int64(every))) + time.Second
			}
			h = &hotToken{tok: s.tokenLocked(loadtest.SoakCold, p), renewAt: now.Add(every)}
			h.tok.Kind = loadtest.SoakHot
			s.hot[p] = h
		}
		return h.tok
	}
	key := s.currentKey(p)
	tok := &loadtest.SoakToken{Kind: kind, Principal: p, AccessKeyID: key.AccessKeyID}
	cluster, wrongSecret := "", ""
	switch kind {
	case loadtest.SoakForged:
		wrongSecret = "forged/" + key.SecretAccessKey
	case loadtest.SoakOtherCluster:
		cluster = "another-cluster"
	case loadtest.SoakUnknownKey:
		key = loadtest.SoakKey{AccessKeyID: fmt.Sprintf("AKIASOAKUNKN%08d", rand.IntN(1e8)), SecretAccessKey: "unknown"}
		tok.AccessKeyID = key.AccessKeyID
	case loadtest.SoakStaleKey:
		if len(s.staleKeys) == 0 {
			return s.tokenLocked(loadtest.SoakMalformed, p)
		}
		key = s.staleKeys[rand.IntN(len(s.staleKeys))]
		tok.Principal, tok.AccessKeyID = s.model.Rotor(), key.AccessKeyID
	}
	tok.MintedAt = time.Now()
	var err error
	tok.Token, err = s.model.Mint(key, s.signAt(key.AccessKeyID), cluster, wrongSecret)
	if err != nil {
		panic("BUG: cannot mint a soak token: " + err.Error())
	}
	if kind == loadtest.SoakMalformed {
		tok.Token = loadtest.SoakMangle(tok.Token, rand.IntN(loadtest.SoakMalformedKinds))
		tok.Principal = nil
	}
	return tok
}

// pick draws the next request's token from the mix.
func (s *soak) pick() *loadtest.SoakToken {
	r := rand.Float64()
	switch {
	case r < 0.55:
		return s.token(loadtest.SoakHot, nil)
	case r < 0.75:
		return s.token(loadtest.SoakCold, nil)
	case r < 0.85:
		return s.token(loadtest.SoakMalformed, nil)
	}
	hostile := []loadtest.SoakTokenKind{loadtest.SoakForged, loadtest.SoakOtherCluster, loadtest.SoakUnknownKey, loadtest.SoakStaleKey}
	return s.token(hostile[rand.IntN(len(hostile))], nil)
}

// --- the two paths ---

type tokenReviewAnswer struct {
	Status struct {
		Authenticated bool `json:"authenticated"`
		User          struct {
			Username string              `json:"username"`
			Groups   []string            `json:"groups"`
			Extra    map[string][]string `json:"extra"`
		} `json:"user"`
	} `json:"status"`
}

func answerOf(allowed bool, username string, groups []string, extra map[string][]string) loadtest.SoakAnswer {
	a := loadtest.SoakAnswer{Decided: true, Allowed: allowed, Username: username}
	for _, g := range groups {
		if g != "system:authenticated" { // kube-apiserver adds it
			a.Groups = append(a.Groups, g)
		}
	}
	if v := extra["arn"]; len(v) == 1 {
		a.ARN = v[0]
	}
	if v := extra["accessKeyId"]; len(v) == 1 {
		a.AccessKeyID = v[0]
	}
	return a
}

// review posts a TokenReview to iamgate. 429 and 5xx are undecided; so is any other status,
// which the caller records as unexpected.
func (s *soak) review(token string) (loadtest.SoakAnswer, int, error) {
	resp, err := s.direct.Post("https://"+s.g.webhook+"/authenticate", "application/json", bytes.NewReader(loadtest.ReviewBody(token)))
	if err != nil {
		return loadtest.SoakAnswer{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return loadtest.SoakAnswer{}, resp.StatusCode, err
	}
	var r tokenReviewAnswer
	if err := json.Unmarshal(body, &r); err != nil {
		return loadtest.SoakAnswer{}, -1, fmt.Errorf("cannot decode the TokenReview answer: %w", err)
	}
	u := r.Status.User
	return answerOf(r.Status.Authenticated, u.Username, u.Groups, u.Extra), resp.StatusCode, nil
}

// selfSubjectReview asks kube-apiserver who the token is: 201 with the user, or 401.
func (s *soak) selfSubjectReview(token string) (loadtest.SoakAnswer, int, error) {
	req, err := http.NewRequest(http.MethodPost, s.kas.url+"/apis/authentication.k8s.io/v1/selfsubjectreviews",
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	if err != nil {
		return loadtest.SoakAnswer{}, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.kasClient.Do(req)
	if err != nil {
		return loadtest.SoakAnswer{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return loadtest.SoakAnswer{}, resp.StatusCode, err
	case resp.StatusCode == http.StatusUnauthorized:
		return loadtest.SoakAnswer{Decided: true}, resp.StatusCode, nil
	case resp.StatusCode != http.StatusCreated:
		return loadtest.SoakAnswer{}, resp.StatusCode, nil
	}
	var r struct {
		Status struct {
			UserInfo userInfo `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return loadtest.SoakAnswer{}, -1, fmt.Errorf("cannot decode the SelfSubjectReview: %w", err)
	}
	u := r.Status.UserInfo
	return answerOf(true, u.Username, u.Groups, u.Extra), resp.StatusCode, nil
}

// send sends tok on path and judges the answer.
func (s *soak) send(path soakPath, tok *loadtest.SoakToken) loadtest.SoakAnswer {
	sent := time.Now()
	var a loadtest.SoakAnswer
	var status int
	var err error
	if path == pathKAS {
		a, status, err = s.selfSubjectReview(tok.Token)
	} else {
		a, status, err = s.review(tok.Token)
	}
	answered := time.Now()
	v := s.tl.Judge(s.model, tok, sent, answered, a, s.windows[path])
	tail := soakDirectTail
	if path == pathKAS {
		tail = soakKASTail
	}
	disrupted := s.tl.Disrupted(sent, answered, tail)
	if path == pathKAS && v == loadtest.VerdictFalseDeny && disrupted {
		v = loadtest.VerdictTransient // kube-apiserver's 401 after its retries gave up
	}
	fault := s.tl.Fault(sent)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[path][tok.Kind].Add(v, disrupted)
	fc := s.byFault[fault]
	if fc == nil {
		fc = &bench.SoakCount{}
		s.byFault[fault] = fc
		s.faultOrder = append(s.faultOrder, fault)
	}
	fc.Add(v, disrupted)
	unexpected := err == nil && !a.Decided && status != http.StatusTooManyRequests && status < 500
	if unexpected && len(s.badStatus) < soakMaxWrong {
		s.badStatus = append(s.badStatus, fmt.Sprintf("%s %s: HTTP %d", pathNames[path], tok.Kind, status))
	}
	if (v.Wrong() || (v == loadtest.VerdictTransient && !disrupted)) && len(s.res.Wrong) < soakMaxWrong {
		s.res.Wrong = append(s.res.Wrong, s.describe(path, tok, sent, answered, a, v, status, err))
	}
	return a
}

// describe says what went wrong with one answer, never with the token.
func (s *soak) describe(path soakPath, tok *loadtest.SoakToken, sent, answered time.Time, a loadtest.SoakAnswer, v loadtest.Verdict, status int, err error) string {
	who := "(no principal)"
	if tok.Principal != nil {
		who = tok.Principal.Name
	}
	got := fmt.Sprintf("HTTP %d", status)
	switch {
	case err != nil:
		got = "error: " + err.Error()
	case a.Allowed:
		got = fmt.Sprintf("allowed as %q %q (arn %s, key %s)", a.Username, a.Groups, a.ARN, a.AccessKeyID)
	case a.Decided:
		got = "denied"
	}
	allow, denyOK := s.tl.Admissible(s.model, tok, sent, answered, s.windows[path])
	return fmt.Sprintf("%s at %s (+%.1f s), %s token of %s (key %s), fault %s, answered in %s: %s: %s; admissible: %v, denial admissible: %v",
		v, sent.UTC().Format("15:04:05.000"), sent.Sub(s.start).Seconds(), tok.Kind, who, tok.AccessKeyID, s.tl.Fault(sent),
		answered.Sub(sent).Round(time.Millisecond), pathNames[path], got, allow, denyOK)
}

// traffic sends rate requests per second on path until ctx ends, each from a bounded pool of
// workers; a request due while every worker is busy is skipped and counted.
func (s *soak) traffic(ctx context.Context, wg *sync.WaitGroup, path soakPath, rate float64, workers int) {
	sem := make(chan struct{}, workers)
	start := time.Now()
	sent := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for due := int(now.Sub(start).Seconds() * rate); sent < due; sent++ {
				select {
				case sem <- struct{}{}:
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						s.send(path, s.pick())
					}()
				default:
					s.mu.Lock()
					s.skipped[pathNames[path]]++
					s.mu.Unlock()
				}
			}
		}
	}
}

// --- edits and rotations ---

// writeMappingFile replaces the mapping file by a rename, as an operator's tool or a mounted
// ConfigMap does: iamgate never reads half a file.
func (s *soak) writeMappingFile(data []byte) error {
	tmp := s.mappingFile + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.mappingFile)
}

// applyConfigMap writes ConfigMap version v with server-side apply, as kubectl apply
// --server-side does.
func (s *soak) applyConfigMap(v int) error {
	body, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "aws-auth", "namespace": "kube-system"},
		"data":     s.model.ConfigMapData(v),
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPatch, s.kas.url+"/api/v1/namespaces/kube-system/configmaps/aws-auth?fieldManager=iamgate-soak&force=true", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/apply-patch+yaml")
	resp, err := s.admin.Do(req)
	if err != nil {
		return fmt.Errorf("cannot apply aws-auth version %d: %w", v, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("cannot apply aws-auth version %d: HTTP %d: %s", v, resp.StatusCode, msg)
	}
	return nil
}

// setFault sets the fake STS's fault of period n.
func (s *soak) setFault(n int) error {
	f := soakFaults[n%len(soakFaults)]
	method, body := http.MethodPut, io.Reader(strings.NewReader(f.json))
	if f.json == "" {
		method, body = http.MethodDelete, nil
	}
	req, err := http.NewRequest(method, "https://"+s.e.stsAddr+"/admin/faults", body)
	if err != nil {
		return err
	}
	// Recorded first: a disruptive fault may fail a review as soon as it is set, and a benign
	// one is benign only once set.
	if f.disruptive {
		s.tl.SetFault(time.Now(), f.name, true)
	}
	resp, err := s.stsAdmin.Do(req)
	if err != nil {
		return fmt.Errorf("cannot set the fault %s: %w", f.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("cannot set the fault %s: HTTP %d", f.name, resp.StatusCode)
	}
	if !f.disruptive {
		s.tl.SetFault(time.Now(), f.name, false)
	}
	return nil
}

func (s *soak) adminSTS(method, path string, body []byte) error {
	req, err := http.NewRequest(method, "https://"+s.e.stsAddr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := s.stsAdmin.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, msg)
	}
	return nil
}

// rotateAccessKey gives the rotor a new access key and deletes the old one at the fake STS,
// as an IAM key rotation does. The client keeps its old token, and some clients keep signing
// with the deleted key.
func (s *soak) rotateAccessKey() error {
	s.mu.Lock()
	n := s.rotorKey + 1
	s.mu.Unlock()
	old, next := s.model.RotorKeyFor(n-1), s.model.RotorKeyFor(n)
	body, _ := json.Marshal(map[string]string{"arn": s.model.Rotor().ARN, "accessKeyId": next.AccessKeyID, "secretAccessKey": next.SecretAccessKey})
	if err := s.adminSTS(http.MethodPost, "/admin/accessKeys", body); err != nil {
		return err
	}
	s.mu.Lock()
	s.rotorKey = n
	s.mu.Unlock()
	// Recorded before the deletion: STS may refuse the key as soon as the request arrives.
	s.tl.DeleteKey(time.Now(), old.AccessKeyID)
	if err := s.adminSTS(http.MethodDelete, "/admin/accessKeys?accessKeyId="+old.AccessKeyID, nil); err != nil {
		return err
	}
	s.mu.Lock()
	s.staleKeys = append(s.staleKeys, old)
	s.events.KeyRotations++
	s.mu.Unlock()
	return nil
}

// rotateTLS replaces iamgate's key pair by a new leaf of the same CA and waits, in wg, until
// iamgate serves it.
func (s *soak) rotateTLS(wg *sync.WaitGroup) {
	leaf, key, serial := s.ca.issue(s.t, "iamgate", nil, "127.0.0.1")
	replaceKeyPair(s.t, s.pki, leaf, key)
	replaced := time.Now()
	wg.Go(func() {
		for time.Since(replaced) < soakTLSWait {
			if got, err := servedSerial(s.g.webhook, s.ca.pem); err == nil && got == serial {
				s.mu.Lock()
				s.events.TLSRotations++
				s.events.TLSServedAfter = append(s.events.TLSServedAfter, time.Since(replaced).Seconds())
				s.mu.Unlock()
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		s.fail("iamgate did not serve its replaced key pair within %s", soakTLSWait)
	})
}

// servedSerial is the serial number of the leaf a TLS server at addr presents, verified
// against ca.
func servedSerial(addr string, ca []byte) (string, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func (s *soak) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

// probe measures how long after a write iamgate answers p under the versions written (file,
// cm): a token of p, cached in iamgate before the write when STS allows, reviewed every 100 ms
// until the answer is the new one. Every answer is judged. The edit is late when a review sent
// after the reload window still gets a definite answer that is not the new one. It is
// unmeasured when no definite answer came from the window's end until a fault's tail later or
// the source's next edit (STS or EC2 faulted, the token not cached): when iamgate read the edit
// is then unknown.
func (s *soak) probe(wg *sync.WaitGroup, source string, p *loadtest.SoakPrincipal, tok *loadtest.SoakToken, written time.Time, file, cm int) {
	want, ok := s.model.Expect(file, cm, p)
	wg.Go(func() {
		// The next edit of the same source ends the probe: its answers are judged from then on
		// against the next version.
		replaced := func() bool {
			f, c := s.tl.Current()
			return source == "file" && f != file || source != "file" && c != cm
		}
		for time.Since(written) < soakReloadWindow+soakDirectTail && !replaced() {
			sent := time.Since(written)
			a := s.send(pathProbe, tok)
			if replaced() {
				break
			}
			current := a.Decided && a.Allowed == ok && (!ok || a.Username == want.Username && slices.Equal(a.Groups, want.Groups))
			switch {
			case current && sent < soakReloadWindow:
				s.mu.Lock()
				if source == "file" {
					s.events.FilePropagation = append(s.events.FilePropagation, time.Since(written).Seconds())
				} else {
					s.events.ConfigMapPropagation = append(s.events.ConfigMapPropagation, time.Since(written).Seconds())
				}
				s.mu.Unlock()
				return
			case current:
				s.mu.Lock()
				s.events.Unmeasured++
				s.mu.Unlock()
				return
			case a.Decided && sent >= soakReloadWindow:
				s.mu.Lock()
				s.late = append(s.late, fmt.Sprintf("%s version %d/%d: a review of %s sent %s after the write was answered under an older version",
					source, file, cm, p.Name, sent.Round(time.Millisecond)))
				s.mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.mu.Lock()
		s.events.Unmeasured++
		s.mu.Unlock()
	})
}

// probeToken is a new token of p, reviewed once so that iamgate caches its identity (unless
// STS is faulted): a probe then measures the mapping alone.
func (s *soak) probeToken(p *loadtest.SoakPrincipal) *loadtest.SoakToken {
	tok := s.token(loadtest.SoakCold, p)
	tok.Kind = loadtest.SoakHot
	s.send(pathProbe, tok)
	return tok
}

// editFile writes the next mapping file: a new version, or every seventh write a file that
// is not YAML (refused whole: the version stays).
func (s *soak) editFile(wg *sync.WaitGroup, writes *int, version *int) error {
	*writes++
	if *writes%7 == 6 {
		s.mu.Lock()
		s.events.GarbageWrites++
		s.mu.Unlock()
		return s.writeMappingFile(loadtest.SoakGarbageFile)
	}
	*version++
	_, cm := s.tl.Current()
	node := s.model.Principals[0]
	for _, p := range s.model.Principals {
		if p.Kind == loadtest.SoakNode {
			node = p
			break
		}
	}
	tok := s.probeToken(node)
	written := time.Now()
	s.tl.SetFile(written, *version)
	if err := s.writeMappingFile(s.model.FileDocument(*version)); err != nil {
		return err
	}
	s.mu.Lock()
	s.events.FileEdits++
	s.mu.Unlock()
	s.probe(wg, "file", node, tok, written, *version, cm)
	return nil
}

// editConfigMap applies the next ConfigMap version and probes a user mapped in it.
func (s *soak) editConfigMap(wg *sync.WaitGroup, version *int) error {
	*version++
	file, _ := s.tl.Current()
	var user *loadtest.SoakPrincipal
	for _, p := range s.model.Principals {
		if _, ok := s.model.Expect(file, *version, p); ok && p.Kind == loadtest.SoakConfigMapUser {
			user = p
			break
		}
	}
	tok := s.probeToken(user)
	written := time.Now()
	s.tl.SetConfigMap(written, *version)
	if err := s.applyConfigMap(*version); err != nil {
		return err
	}
	s.mu.Lock()
	s.events.ConfigMapEdits++
	s.mu.Unlock()
	s.probe(wg, "configmap", user, tok, written, file, *version)
	return nil
}

// --- the run ---

func (s *soak) run() {
	t := s.t
	s.start = time.Now()
	s.end = s.start.Add(s.plan.duration)
	if err := s.takeSample(true); err != nil {
		t.Fatalf("cannot sample iamgate: %v", err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), s.end)
	defer cancel()
	var traffic, background sync.WaitGroup
	t.Cleanup(func() { cancel(); traffic.Wait(); background.Wait() })
	go s.traffic(ctx, &traffic, pathDirect, s.plan.directRate, soakDirectWorkers)
	go s.traffic(ctx, &traffic, pathKAS, s.plan.kasRate, soakKASWorkers)
	sampled := make(chan struct{})
	background.Go(func() {
		defer close(sampled)
		s.sample(ctx)
	})
	t.Logf("soak: %s of traffic (%.0f/s straight to iamgate, %.0f/s through kube-apiserver), a fault and two edits every %s, samples every %s, warm-up %s",
		s.plan.duration, s.plan.directRate, s.plan.kasRate, s.plan.period, s.plan.sampleEvery, s.plan.warmup)

	// at waits until start+d; false when that is past the end.
	at := func(d time.Duration) bool {
		when := s.start.Add(d)
		if !when.Before(s.end) {
			return false
		}
		select {
		case <-time.After(time.Until(when)):
			return true
		case <-ctx.Done():
			return false
		}
	}
	fileWrites, fileVersion, cmVersion := 0, 0, 0
	P := s.plan.period
	for n := 0; ; n++ {
		base := time.Duration(n) * P
		if !at(base) {
			break
		}
		check := func(what string, err error) {
			if err != nil {
				s.fail("period %d: %s: %v", n, what, err)
			}
		}
		check("fault", s.setFault(n))
		t.Logf("soak: +%s period %d: fault %s (%d answers so far)", base, n, soakFaults[n%len(soakFaults)].name, s.requests())
		if !at(base + P/4) {
			break
		}
		check("mapping file edit", s.editFile(&background, &fileWrites, &fileVersion))
		if !at(base + P/2) {
			break
		}
		switch n % 5 {
		case 2:
			check("access key rotation", s.rotateAccessKey())
		case 4:
			s.rotateTLS(&background)
		}
		if !at(base + 3*P/4) {
			break
		}
		check("ConfigMap edit", s.editConfigMap(&background, &cmVersion))
		if errs := s.errorsSoFar(); len(errs) > 0 {
			t.Logf("soak: stopping early: %v", errs)
			cancel()
			break
		}
	}
	<-ctx.Done()
	<-sampled
	// In-flight requests end within their clients' timeouts; then STS is healthy again.
	traffic.Wait()
	background.Wait()
	if err := s.setFault(0); err != nil {
		s.fail("cannot clear the faults: %v", err)
	}
	t.Logf("soak: traffic stopped after %s, %d answers; the idle sample in %s", time.Since(s.start).Round(time.Second), s.requests(), soakSettle)
	s.direct.CloseIdleConnections()
	s.kasClient.CloseIdleConnections()
	time.Sleep(soakSettle)
	if err := s.takeSample(true); err != nil {
		s.fail("cannot sample iamgate: %v", err)
	}
}

func (s *soak) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, byKind := range s.answers {
		for _, c := range byKind {
			n += c.Requests
		}
	}
	return n
}

func (s *soak) errorsSoFar() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// sample records iamgate's resources every sampleEvery half-way between the fault changes
// (each fault's steady state, not a change), and at the end of the traffic.
func (s *soak) sample(ctx context.Context) {
	for k := 1; ; k++ {
		when := s.start.Add(time.Duration(k)*s.plan.sampleEvery - s.plan.sampleEvery/2)
		if when.After(s.end) {
			when = s.end
		}
		select {
		case <-time.After(time.Until(when)):
		case <-ctx.Done():
		}
		if err := s.takeSample(false); err != nil {
			s.fail("cannot sample iamgate: %v", err)
		}
		if !when.Before(s.end) || ctx.Err() != nil {
			return
		}
	}
}

// takeSample records iamgate's resources now; idle says no traffic is running.
func (s *soak) takeSample(idle bool) error {
	m, err := loadtest.ScrapeMetrics(s.g.internal + "/metrics")
	if err != nil {
		return err
	}
	pid := s.g.cmd.Process.Pid
	proc := loadtest.Process{PID: pid}
	rss, _, err := proc.Memory()
	if err != nil {
		return err
	}
	cpu, err := proc.CPU()
	if err != nil {
		return err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return err
	}
	now := time.Now()
	x := bench.SoakSample{
		At: now.Sub(s.start).Round(time.Second), Idle: idle, Fault: s.tl.Fault(now),
		Goroutines: m.Sum("go_goroutines"), HeapInuse: m.Sum("go_memstats_heap_inuse_bytes"), HeapAlloc: m.Sum("go_memstats_heap_alloc_bytes"),
		RSS: rss, FDs: len(fds), CPU: cpu,
		CacheEntries: m.Sum("iamgate_cache_entries"), Reviews: m.Sum("iamgate_reviews_total"), STSCalls: m.Sum("iamgate_sts_requests_total"),
	}
	if idle {
		x.Fault = "idle"
	}
	if x.Goroutines == 0 || x.HeapInuse == 0 {
		return fmt.Errorf("iamgate's /metrics lacks go_goroutines or go_memstats_heap_inuse_bytes")
	}
	s.t.Logf("soak: sample at %s (%s): %.0f goroutines, heap %.1f MiB, RSS %.1f MiB, %d fds, %.0f cached identities",
		x.At, x.Fault, x.Goroutines, x.HeapInuse/(1<<20), float64(x.RSS)/(1<<20), x.FDs, x.CacheEntries)
	s.mu.Lock()
	s.res.Samples = append(s.res.Samples, x)
	s.mu.Unlock()
	return nil
}

// --- results ---

func (s *soak) finish() {
	t := s.t
	res := s.res
	s.mu.Lock()
	for path := range numPaths {
		for kind := range loadtest.NumSoakTokenKinds {
			if c := s.answers[path][kind]; c.Requests > 0 {
				res.Answers = append(res.Answers, bench.SoakRow{Path: pathNames[path], Kind: kind.String(), SoakCount: c})
			}
		}
	}
	for _, f := range soakFaults {
		if c := s.byFault[f.name]; c != nil {
			res.ByFault = append(res.ByFault, bench.SoakRow{Kind: f.name, SoakCount: *c})
		}
	}
	res.Events = s.events
	res.Skipped = s.skipped
	late, errs, badStatus := s.late, s.errs, s.badStatus
	answers := s.answers
	s.mu.Unlock()

	m, err := loadtest.ScrapeMetrics(s.g.internal + "/metrics")
	if err != nil {
		t.Errorf("cannot scrape iamgate at the end: %v", err)
	}
	res.Events.FileRefusedWhole = m.Sum("iamgate_mapping_reloads_total", `source="file"`, `result="error"`)
	res.Finish()

	check := func(target, got string, met bool) {
		res.Checks = append(res.Checks, bench.Check{Scenario: "soak", Target: target, Got: got, Met: met})
	}
	tot := res.Totals
	check("zero wrong answers (wrong user or groups, allowed though it must be denied, denied though it must be allowed)",
		fmt.Sprintf("%d of %d answers", tot.Wrong(), tot.Requests), tot.Wrong() == 0)
	check("zero `authenticated: true` for a token that must be denied (hostile, unmapped, deleted key)",
		fmt.Sprintf("%d", tot.FalseAllow), tot.FalseAllow == 0)
	check("zero failed reviews while no disruptive fault was in force",
		fmt.Sprintf("%d (of %d failed reviews in all)", tot.TransientHealthy, tot.Transient), tot.TransientHealthy == 0)
	check("no answer but 200 (straight) or 201/401 (kube-apiserver), 429 and 5xx",
		fmt.Sprintf("%d %v", len(badStatus), badStatus), len(badStatus) == 0)
	missing := []string{}
	for _, path := range []soakPath{pathDirect, pathKAS} {
		for kind := range loadtest.NumSoakTokenKinds {
			if c := answers[path][kind]; c.OK+c.Denied == 0 {
				missing = append(missing, pathNames[path]+"/"+kind.String())
			}
		}
	}
	check("every kind of token got a definite answer on both paths", fmt.Sprintf("missing: %v", missing), len(missing) == 0)
	ev := res.Events
	check(fmt.Sprintf("every mapping edit answered by iamgate within %s", soakReloadWindow),
		fmt.Sprintf("file %d edits, ConfigMap %d edits, %d late, %d unmeasured (STS faulted)%s", ev.FileEdits, ev.ConfigMapEdits, len(late), ev.Unmeasured, joinPrefixed(": ", late)),
		len(late) == 0 && ev.FileEdits > 0 && ev.ConfigMapEdits > 0 && len(ev.FilePropagation)+len(ev.ConfigMapPropagation) > 0)
	check("files that are not YAML refused whole by iamgate", fmt.Sprintf("%d written, iamgate counted %.0f", ev.GarbageWrites, ev.FileRefusedWhole),
		ev.GarbageWrites == 0 || ev.FileRefusedWhole >= 1)
	check("access keys rotated, TLS key pairs served", fmt.Sprintf("%d keys, %d key pairs", ev.KeyRotations, ev.TLSRotations), ev.KeyRotations > 0 && ev.TLSRotations > 0)
	check("edits and rotations all carried out", fmt.Sprintf("%d failures%s", len(errs), joinPrefixed(": ", errs)), len(errs) == 0)
	restarted := s.g.exited() || s.kas.exited()
	check("no restart of iamgate or kube-apiserver", fmt.Sprintf("restarted or exited: %v", restarted), !restarted)
	leaked := tokenInLog(s.g.logPath)
	check("no token, signature or credential in iamgate's log", leaked, leaked == "none")
	res.Checks = append(res.Checks, bench.SoakFlatness(res.Samples, s.plan.warmup)...)

	resultsDir := *soakResults
	if resultsDir == "" {
		resultsDir = filepath.Join(s.e.repo, "bench", "results")
	}
	markdown := *soakMarkdown
	switch {
	case markdown == "none" || (markdown == "" && *soakShort):
		markdown = ""
	case markdown == "":
		markdown = filepath.Join(s.e.repo, "BENCHMARKS.md")
	}
	if err := bench.WriteSoak(res, resultsDir, markdown); err != nil {
		t.Errorf("cannot write the results: %v", err)
	}
	t.Logf("soak results: %s (markdown: %q)", filepath.Join(resultsDir, res.RunID+".json"), markdown)
	for _, c := range res.Checks {
		mark := "met"
		if !c.Met {
			mark = "MISSED"
			t.Errorf("soak: %s: %s", c.Target, c.Got)
		}
		t.Logf("soak check %s: %s: %s", mark, c.Target, c.Got)
	}
	for _, w := range res.Wrong {
		t.Errorf("soak: %s", w)
	}
}

func joinPrefixed(prefix string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return prefix + strings.Join(items, "; ")
}

// tokenInLog reports what of a token iamgate's log holds ("none" when nothing): its prefix,
// a signature or a credential parameter.
func tokenInLog(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "cannot read the log: " + err.Error()
	}
	var found []string
	for _, needle := range []string{"k8s-aws-v", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "SOAKSESSIONTOKEN"} {
		if bytes.Contains(data, []byte(needle)) {
			found = append(found, needle)
		}
	}
	if len(found) == 0 {
		return "none"
	}
	return "found " + strings.Join(found, ", ")
}
