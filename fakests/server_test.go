package fakests

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/iamgate/iamgate/internal/testenv"
)

// Principals of the tests: the credentials of internal/testenv/testdata and a few more.
const (
	testAccount    = "111122223333"
	testUserARN    = "arn:aws:iam::111122223333:user/alice"
	testUserKey    = "AKIAIOSFODNN7EXAMPLE"
	testUserSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testSessionARN = "arn:aws:sts::111122223333:assumed-role/ci/token-maker"
	testSessionKey = "ASIAIOSFODNN7EXAMPLE"
	testRoleARN    = "arn:aws:iam::111122223333:role/eks-admins"
	testInstanceID = "i-0123456789abcdef0"
	testDNSName    = "ip-10-0-1-23.ec2.internal"
)

// testClock is a settable clock; the zero value reads the real time.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time        { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Set(t time.Time)       { c.offset.Store(int64(time.Until(t))) }
func (c *testClock) Shift(d time.Duration) { c.offset.Add(int64(d)) }

// testConfig returns the principals of the tests; the session is the one of the testdata.
func testConfig(tb testing.TB) Config {
	tb.Helper()
	var sessionSecret, sessionToken string
	for _, rt := range testenv.RealClientTokens(tb) {
		if rt.AccessKeyID == testSessionKey {
			sessionSecret, sessionToken = rt.SecretAccessKey, rt.SessionToken
		}
	}
	return Config{
		Users: []User{{ARN: testUserARN, UserID: "AIDAEXAMPLEUSERID1234", AccessKeyID: testUserKey, SecretAccessKey: testUserSecret}},
		Sessions: []Session{{ARN: testSessionARN, AccessKeyID: testSessionKey,
			SecretAccessKey: sessionSecret, SessionToken: sessionToken}},
		Roles:     []Role{{ARN: testRoleARN, Trust: []string{testUserARN}}},
		Instances: []Instance{{InstanceID: testInstanceID, PrivateDNSName: testDNSName}},
	}
}

// startServer starts a fake on loopback and closes it at the end of the test.
func startServer(tb testing.TB, cfg Config, opts Options) *Server {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg, opts)
	if err != nil {
		tb.Fatalf("cannot create fakests: %s", err)
	}
	if _, err := s.Start("127.0.0.1:0"); err != nil {
		tb.Fatalf("cannot start fakests: %s", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("cannot close fakests: %s", err)
		}
	})
	return s
}

// decodeToken returns the presigned URL of a k8s-aws-v1. token.
func decodeToken(tb testing.TB, token string) *url.URL { return testenv.TokenURL(tb, token) }

// tokenGET sends the presigned GET of a token to the fake as the daemon does: to the fake's
// address, with the token's Host, x-k8s-aws-id and Accept: application/json.
func tokenGET(tb testing.TB, client *http.Client, addr string, u *url.URL, clusterID string, jsonAnswer bool) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+u.EscapedPath()+"?"+u.RawQuery, nil)
	if err != nil {
		tb.Fatalf("cannot build request: %s", err)
	}
	req.Host = u.Host
	req.Header.Set("x-k8s-aws-id", clusterID)
	if jsonAnswer {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("cannot send token GET: %s", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("cannot read answer: %s", err)
	}
	return resp.StatusCode, body
}

// callerIdentityJSON is STS's JSON GetCallerIdentity answer.
type callerIdentityJSON struct {
	GetCallerIdentityResponse struct {
		GetCallerIdentityResult struct{ Account, Arn, UserId string }
		ResponseMetadata        struct{ RequestId string }
	}
}

// errJSON is STS's JSON error answer.
type errJSON struct {
	Error     struct{ Code, Message, Type string }
	RequestId string
}

func errorCode(tb testing.TB, body []byte) string {
	tb.Helper()
	var e errJSON
	if err := json.Unmarshal(body, &e); err != nil {
		tb.Fatalf("cannot parse JSON error %q: %s", body, err)
	}
	if e.RequestId == "" || e.Error.Message == "" || (e.Error.Type != "Sender" && e.Error.Type != "Receiver") {
		tb.Errorf("unexpected error shape; got %s", body)
	}
	return e.Error.Code
}

// TestRealClientTokens: every token of internal/testenv/testdata verifies at signed_at + 1 min with
// its cluster ID, and fails with another one, or 16 minutes later.
func TestRealClientTokens(t *testing.T) {
	clock := &testClock{}
	s := startServer(t, testConfig(t), Options{Clock: clock.Now})
	client := &http.Client{Timeout: 5 * time.Second}
	for _, rt := range testenv.RealClientTokens(t) {
		u := decodeToken(t, rt.Token)
		signedAt := rt.SignedTime(t)
		clock.Set(signedAt.Add(time.Minute))

		status, body := tokenGET(t, client, s.Addr(), u, rt.ClusterID, true)
		if status != http.StatusOK {
			t.Fatalf("unexpected status for %s; got %d %s; want 200", rt.Client, status, body)
		}
		var got callerIdentityJSON
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("cannot parse answer %s: %s", body, err)
		}
		r := got.GetCallerIdentityResponse.GetCallerIdentityResult
		wantARN := testUserARN
		if rt.AccessKeyID == testSessionKey {
			wantARN = testSessionARN
		}
		if r.Arn != wantARN || r.Account != testAccount || r.UserId == "" || got.GetCallerIdentityResponse.ResponseMetadata.RequestId == "" {
			t.Errorf("unexpected answer for %s; got %s; want Arn %q", rt.Client, body, wantARN)
		}

		status, body = tokenGET(t, client, s.Addr(), u, rt.ClusterID+"x", true)
		if code := errorCode(t, body); status != http.StatusForbidden || code != CodeSignatureDoesNotMatch {
			t.Errorf("unexpected answer for another cluster ID; got %d %q; want 403 %q", status, code, CodeSignatureDoesNotMatch)
		}

		status, body = tokenGET(t, client, s.Addr(), u, rt.ClusterID, false)
		var x struct {
			XMLName xml.Name `xml:"GetCallerIdentityResponse"`
			Arn     string   `xml:"GetCallerIdentityResult>Arn"`
		}
		if err := xml.Unmarshal(body, &x); status != http.StatusOK || err != nil || x.Arn != wantARN {
			t.Errorf("unexpected XML answer; got %d %s (%v); want 200 with Arn %q", status, body, err, wantARN)
		}

		clock.Set(signedAt.Add(16 * time.Minute))
		status, body = tokenGET(t, client, s.Addr(), u, rt.ClusterID, true)
		if code := errorCode(t, body); status != http.StatusBadRequest || code != CodeRequestExpired {
			t.Errorf("unexpected answer 16 minutes later; got %d %q; want 400 %q", status, code, CodeRequestExpired)
		}
	}
	st := s.Stats()
	n := uint64(len(testenv.RealClientTokens(t)))
	if got := st.Count(ActionGetCallerIdentity, OutcomeOK); got != 2*n {
		t.Errorf("unexpected ok count; got %d; want %d", got, 2*n)
	}
	if got := st.Count(ActionGetCallerIdentity, CodeSignatureDoesNotMatch); got != n {
		t.Errorf("unexpected SignatureDoesNotMatch count; got %d; want %d", got, n)
	}
	if got := st.Count(ActionGetCallerIdentity, CodeRequestExpired); got != n {
		t.Errorf("unexpected RequestExpired count; got %d; want %d", got, n)
	}
}

// TestTokenFailures: what a token GET gets for each way it can be wrong.
func TestTokenFailures(t *testing.T) {
	tokens := testenv.RealClientTokens(t)
	clock := &testClock{}
	clock.Set(tokens[0].SignedTime(t).Add(time.Minute))
	s := startServer(t, testConfig(t), Options{Clock: clock.Now})
	client := &http.Client{Timeout: 5 * time.Second}
	good := decodeToken(t, tokens[0].Token)
	f := func(name string, mutate func(u *url.URL), wantStatus int, wantCode string) {
		t.Helper()
		u := *good
		mutate(&u)
		status, body := tokenGET(t, client, s.Addr(), &u, tokens[0].ClusterID, true)
		if code := errorCode(t, body); status != wantStatus || code != wantCode {
			t.Errorf("unexpected answer for %s; got %d %q; want %d %q", name, status, code, wantStatus, wantCode)
		}
	}
	setQuery := func(key, value string) func(u *url.URL) {
		return func(u *url.URL) {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
		}
	}
	f("no signature", func(u *url.URL) { u.RawQuery = "Action=GetCallerIdentity&Version=2011-06-15" }, 403, CodeMissingAuthenticationToken)
	f("unknown key", func(u *url.URL) {
		u.RawQuery = strings.Replace(u.RawQuery, "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7UNKNOWN", 1)
	}, 403, CodeInvalidClientTokenID)
	f("bad algorithm", setQuery("X-Amz-Algorithm", "AWS4-HMAC-SHA1"), 400, CodeIncompleteSignature)
	f("other region host", func(u *url.URL) { u.Host = "sts.eu-west-1.amazonaws.com" }, 403, CodeSignatureDoesNotMatch)
	f("ec2 scope", func(u *url.URL) {
		u.RawQuery = strings.Replace(u.RawQuery, "%2Fsts%2F", "%2Fec2%2F", 1)
	}, 403, CodeSignatureDoesNotMatch)
	f("security token on a long-term key", setQuery("X-Amz-Security-Token", "abc"), 403, CodeInvalidClientTokenID)
	f("changed action", setQuery("Action", "GetSessionToken"), 403, CodeSignatureDoesNotMatch)
	f("other path", func(u *url.URL) { u.Path = "/x" }, 400, CodeInvalidAction)

	// The session key without or with a wrong token.
	var session *url.URL
	for _, rt := range tokens {
		if rt.AccessKeyID == testSessionKey {
			session = decodeToken(t, rt.Token)
			clock.Set(rt.SignedTime(t).Add(time.Minute))
		}
	}
	for name, token := range map[string]string{"missing": "", "wrong": "FwoGZXIvYXdzEXAMPLEWRONG"} {
		q := session.Query()
		if token == "" {
			q.Del("X-Amz-Security-Token")
		} else {
			q.Set("X-Amz-Security-Token", token)
		}
		u := *session
		u.RawQuery = q.Encode()
		status, body := tokenGET(t, client, s.Addr(), &u, tokens[0].ClusterID, true)
		if code := errorCode(t, body); status != 403 || code != CodeInvalidClientTokenID {
			t.Errorf("unexpected answer for a %s session token; got %d %q; want 403 %q", name, status, code, CodeInvalidClientTokenID)
		}
	}
}

// TestConfigErrors: New refuses malformed principals.
func TestConfigErrors(t *testing.T) {
	f := func(name string, cfg Config) {
		t.Helper()
		if _, err := New(cfg, Options{}); err == nil {
			t.Errorf("unexpected success for %s", name)
		}
	}
	user := User{ARN: testUserARN, AccessKeyID: testUserKey, SecretAccessKey: "s"}
	f("account not the ARN's", Config{Users: []User{{ARN: testUserARN, Account: "999999999999", AccessKeyID: testUserKey, SecretAccessKey: "s"}}})
	f("bad ARN", Config{Users: []User{{ARN: "arn:aws:iam::1:user/a", AccessKeyID: testUserKey, SecretAccessKey: "s"}}})
	f("role ARN as user", Config{Users: []User{{ARN: testRoleARN, AccessKeyID: testUserKey, SecretAccessKey: "s"}}})
	f("short key", Config{Users: []User{{ARN: testUserARN, AccessKeyID: "AKIA", SecretAccessKey: "s"}}})
	f("lower-case key", Config{Users: []User{{ARN: testUserARN, AccessKeyID: "akiaiosfodnn7example", SecretAccessKey: "s"}}})
	f("no secret", Config{Users: []User{{ARN: testUserARN, AccessKeyID: testUserKey}}})
	f("duplicate key", Config{Users: []User{user, user}})
	f("session without token", Config{Sessions: []Session{{ARN: testSessionARN, AccessKeyID: testSessionKey, SecretAccessKey: "s"}}})
	f("bad trust", Config{Roles: []Role{{ARN: testRoleARN, Trust: []string{"alice"}}}})
	f("long max duration", Config{Roles: []Role{{ARN: testRoleARN, MaxSessionDuration: Duration(13 * time.Hour)}}})
	f("bad instance", Config{Instances: []Instance{{InstanceID: "i-xyz", PrivateDNSName: "a"}}})
	f("no DNS name", Config{Instances: []Instance{{InstanceID: testInstanceID}}})
	if _, err := New(Config{}, Options{Faults: Faults{ErrorRates: map[string]float64{"NoSuchCode": 1}}}); err == nil {
		t.Errorf("unexpected success for an unknown fault code")
	}
}

// TestParseConfig: the YAML format of cmd/fakests, strict about unknown keys.
func TestParseConfig(t *testing.T) {
	const doc = `
users:
  - arn: arn:aws:iam::111122223333:user/alice
    accessKeyId: AKIAIOSFODNN7EXAMPLE
    secretAccessKey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
roles:
  - arn: arn:aws:iam::111122223333:role/eks-admins
    trust: ["arn:aws:iam::111122223333:root"]
    maxSessionDuration: 2h
sessions:
  - arn: arn:aws:sts::111122223333:assumed-role/ci/token-maker
    accessKeyId: ASIAIOSFODNN7EXAMPLE
    secretAccessKey: x
    sessionToken: y
    expiration: 2030-01-02T03:04:05Z
instances:
  - instanceId: i-0123456789abcdef0
    privateDnsName: ip-10-0-1-23.ec2.internal
`
	cfg, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatalf("unexpected error; got %v; want nil", err)
	}
	if len(cfg.Users) != 1 || len(cfg.Roles) != 1 || time.Duration(cfg.Roles[0].MaxSessionDuration) != 2*time.Hour ||
		cfg.Sessions[0].Expiration.Year() != 2030 || cfg.Instances[0].PrivateDNSName != testDNSName {
		t.Errorf("unexpected config; got %+v", cfg)
	}
	if _, err := New(cfg, Options{}); err != nil {
		t.Errorf("unexpected error; got %v; want nil", err)
	}
	if _, err := ParseConfig([]byte("users:\n  - arn: x\n    secret: y\n")); err == nil {
		t.Errorf("unexpected success for an unknown key")
	}
}

// TestDemoConfig: the demo config of the README loads and replays the testdata tokens.
func TestDemoConfig(t *testing.T) {
	cfg, err := LoadConfig("testdata/config-good-demo.yaml")
	if err != nil {
		t.Fatalf("unexpected error; got %v; want nil", err)
	}
	clock := &testClock{}
	s := startServer(t, cfg, Options{Clock: clock.Now})
	client := &http.Client{Timeout: 5 * time.Second}
	for _, rt := range testenv.RealClientTokens(t) {
		clock.Set(rt.SignedTime(t).Add(time.Minute))
		if status, body := tokenGET(t, client, s.Addr(), decodeToken(t, rt.Token), rt.ClusterID, true); status != http.StatusOK {
			t.Errorf("unexpected status for %s; got %d %s; want 200", rt.Client, status, body)
		}
	}
}

// TestConcurrentUse: token GETs, AssumeRole calls, principal additions, fault changes and stats
// reads at once (run with -race); every call is counted once.
func TestConcurrentUse(t *testing.T) {
	s := startServer(t, testConfig(t), Options{})
	u := presignToken(t, "demo")
	const workers, perWorker = 6, 30
	errs := make(chan error, workers*perWorker)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			sdk := stsClient(s, sdkConfig(testUserKey, testUserSecret, ""))
			for i := range perWorker {
				switch i % 3 {
				case 0:
					if status, body, err := tryTokenGET(client, s.Addr(), u); err != nil || status != 200 {
						errs <- fmt.Errorf("token GET: %d %s %v", status, body, err)
					}
				case 1:
					_, err := sdk.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(testRoleARN), RoleSessionName: aws.String(fmt.Sprintf("w%d-%d", w, i))})
					if err != nil {
						errs <- fmt.Errorf("AssumeRole: %w", err)
					}
				case 2:
					_ = s.SetFaults(Faults{Latency: Duration(time.Duration(i) * time.Microsecond)})
					_ = s.Stats()
					if err := s.AddUser(User{ARN: fmt.Sprintf("arn:aws:iam::111122223333:user/u%d-%d", w, i),
						AccessKeyID: fmt.Sprintf("AKIACONCURRENT%02d%04d", w, i), SecretAccessKey: "s"}); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	if got, want := st.Count(ActionGetCallerIdentity, OutcomeOK)+st.Count(ActionAssumeRole, OutcomeOK), uint64(workers*perWorker*2/3); got != want {
		t.Errorf("unexpected ok count; got %d; want %d (%v)", got, want, st.Calls)
	}
}
