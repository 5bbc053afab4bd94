package fakests

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// presignToken presigns a token URL for the test user now, as `iamgate token` does.
func presignToken(tb testing.TB, clusterID string) *url.URL {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Expires=60", nil)
	if err != nil {
		tb.Fatalf("cannot build request: %s", err)
	}
	req.Header.Set("x-k8s-aws-id", clusterID)
	creds := aws.Credentials{AccessKeyID: testUserKey, SecretAccessKey: testUserSecret}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sts", "us-east-1", time.Now())
	if err != nil {
		tb.Fatalf("cannot presign: %s", err)
	}
	u, err := url.Parse(signed)
	if err != nil {
		tb.Fatalf("cannot parse presigned URL: %s", err)
	}
	return u
}

// tryTokenGET is tokenGET that returns the transport error instead of failing.
func tryTokenGET(client *http.Client, addr string, u *url.URL) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/?"+u.RawQuery, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = u.Host
	req.Header.Set("x-k8s-aws-id", "demo")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestFaultLatency: a client waits at least the injected latency, then gets its answer.
func TestFaultLatency(t *testing.T) {
	s := startServer(t, testConfig(t), Options{Faults: Faults{Latency: Duration(150 * time.Millisecond), Jitter: Duration(20 * time.Millisecond)}})
	u := presignToken(t, "demo")
	start := time.Now()
	status, body, err := tryTokenGET(&http.Client{Timeout: 5 * time.Second}, s.Addr(), u)
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("unexpected elapsed time; got %s; want at least 150ms", elapsed)
	}
	if err != nil || status != http.StatusOK {
		t.Errorf("unexpected answer; got %d %s %v; want 200", status, body, err)
	}
	if n := s.Stats().Faults[FaultLatency]; n != 1 {
		t.Errorf("unexpected latency fault count; got %d; want 1", n)
	}
}

// TestFaultErrorRate: with rate 1 for a code, every request gets that code and status, in
// STS's JSON shape, and aws-sdk-go-v2 reports the code.
func TestFaultErrorRate(t *testing.T) {
	s := startServer(t, testConfig(t), Options{})
	u := presignToken(t, "demo")
	client := &http.Client{Timeout: 5 * time.Second}
	f := func(code string, wantStatus int) {
		t.Helper()
		if err := s.SetFaults(Faults{ErrorRates: map[string]float64{code: 1}}); err != nil {
			t.Fatalf("cannot set faults: %s", err)
		}
		status, body, err := tryTokenGET(client, s.Addr(), u)
		if err != nil {
			t.Fatalf("unexpected error; got %v; want nil", err)
		}
		if got := errorCode(t, []byte(body)); status != wantStatus || got != code {
			t.Errorf("unexpected answer; got %d %q; want %d %q", status, got, wantStatus, code)
		}
		_, err = stsClient(s, sdkConfig(testUserKey, testUserSecret, "")).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if got := apiErrorCode(err); got != code {
			t.Errorf("unexpected SDK error code; got %q (%v); want %q", got, err, code)
		}
	}
	f(CodeThrottling, 400)
	f(CodeInternalFailure, 500)
	f(CodeServiceUnavailable, 503)
	f(CodeSignatureDoesNotMatch, 403)
	f(CodeInvalidClientTokenID, 403)
	f(CodeExpiredToken, 403)
	f(CodeRequestExpired, 400)
	f(CodeAccessDenied, 403)
	if n := s.Stats().Count(ActionGetCallerIdentity, CodeInternalFailure); n != 2 {
		t.Errorf("unexpected InternalFailure count; got %d; want 2", n)
	}
	// Half and half: both outcomes show up.
	if err := s.SetFaults(Faults{ErrorRates: map[string]float64{CodeThrottling: 0.5}}); err != nil {
		t.Fatalf("cannot set faults: %s", err)
	}
	seen := map[int]int{}
	for range 60 {
		status, _, err := tryTokenGET(client, s.Addr(), u)
		if err != nil {
			t.Fatalf("unexpected error; got %v; want nil", err)
		}
		seen[status]++
	}
	if seen[200] == 0 || seen[400] == 0 || seen[200]+seen[400] != 60 {
		t.Errorf("unexpected statuses at rate 0.5; got %v; want both 200 and 400", seen)
	}
}

// TestFaultThrottle: above the rate, the excess gets 400 Throttling.
func TestFaultThrottle(t *testing.T) {
	s := startServer(t, testConfig(t), Options{Faults: Faults{ThrottleRate: 2, ThrottleBurst: 3}})
	u := presignToken(t, "demo")
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	ok, throttled := 0, 0
	for range 20 {
		status, body, err := tryTokenGET(client, s.Addr(), u)
		switch {
		case err != nil:
			t.Fatalf("unexpected error; got %v; want nil", err)
		case status == 200:
			ok++
		case status == 400 && errorCode(t, []byte(body)) == CodeThrottling:
			throttled++
		default:
			t.Fatalf("unexpected answer; got %d %s", status, body)
		}
	}
	maxOK := 3 + int(time.Since(start).Seconds()*2) + 1
	if ok < 3 || ok > maxOK || throttled != 20-ok {
		t.Errorf("unexpected outcomes; got %d ok, %d throttled; want 3..%d ok, the rest throttled", ok, throttled, maxOK)
	}
}

// TestFaultHang: a hung request gets no answer: the client times out; with HangFor the
// connection is reset after that time.
func TestFaultHang(t *testing.T) {
	s := startServer(t, testConfig(t), Options{Faults: Faults{HangRate: 1}})
	u := presignToken(t, "demo")
	// The client gives up after a second: time enough, on a busy machine, for its request to
	// reach the server (which counts the hang as it arrives) before it does.
	_, _, err := tryTokenGET(&http.Client{Timeout: time.Second}, s.Addr(), u)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("unexpected error; got %v; want a client timeout", err)
	}
	if err := s.SetFaults(Faults{HangRate: 1, HangFor: Duration(200 * time.Millisecond)}); err != nil {
		t.Fatalf("cannot set faults: %s", err)
	}
	start := time.Now()
	_, _, err = tryTokenGET(&http.Client{Timeout: 5 * time.Second}, s.Addr(), u)
	if elapsed := time.Since(start); err == nil || elapsed < 200*time.Millisecond {
		t.Errorf("unexpected result; got %v after %s; want a connection error after at least 200ms", err, elapsed)
	}
	if n := s.Stats().Count(ActionGetCallerIdentity, OutcomeHang); n != 2 {
		t.Errorf("unexpected hang count; got %d; want 2", n)
	}
	// A request hung until Close is released by Close.
	if err := s.SetFaults(Faults{HangRate: 1}); err != nil {
		t.Fatalf("cannot set faults: %s", err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := tryTokenGET(&http.Client{Timeout: 10 * time.Second}, s.Addr(), u)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("cannot close: %s", err)
	}
	if err := <-done; err == nil {
		t.Errorf("unexpected success of a hung request")
	}
}

// TestFaultReset: the client sees a connection reset, never an answer.
func TestFaultReset(t *testing.T) {
	s := startServer(t, testConfig(t), Options{Faults: Faults{ResetRate: 1}})
	u := presignToken(t, "demo")
	_, _, err := tryTokenGET(&http.Client{Timeout: 5 * time.Second}, s.Addr(), u)
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("unexpected error; got %v; want connection reset", err)
	}
	if n := s.Stats().Count(ActionGetCallerIdentity, OutcomeReset); n == 0 {
		t.Errorf("unexpected reset count; got 0; want at least 1")
	}
}

// TestFaultOutage: during an outage every request gets 503 ServiceUnavailable; once the fake
// is closed, connections are refused.
func TestFaultOutage(t *testing.T) {
	s := startServer(t, testConfig(t), Options{Faults: Faults{Outage: true}})
	u := presignToken(t, "demo")
	client := &http.Client{Timeout: 5 * time.Second}
	status, body, err := tryTokenGET(client, s.Addr(), u)
	if err != nil || status != 503 || errorCode(t, []byte(body)) != CodeServiceUnavailable {
		t.Errorf("unexpected answer; got %d %s %v; want 503 %s", status, body, err, CodeServiceUnavailable)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("cannot close: %s", err)
	}
	_, _, err = tryTokenGET(client, s.Addr(), u)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("unexpected error after Close; got %v; want connection refused", err)
	}
}

// TestFaultActions: faults limited to one action leave the others alone.
func TestFaultActions(t *testing.T) {
	s := startServer(t, testConfig(t), Options{Faults: Faults{Outage: true, Actions: []string{ActionAssumeRole}}})
	status, body, err := tryTokenGET(&http.Client{Timeout: 5 * time.Second}, s.Addr(), presignToken(t, "demo"))
	if err != nil || status != 200 {
		t.Errorf("unexpected answer for GetCallerIdentity; got %d %s %v; want 200", status, body, err)
	}
	_, err = stsClient(s, sdkConfig(testUserKey, testUserSecret, "")).AssumeRole(context.Background(),
		&sts.AssumeRoleInput{RoleArn: aws.String(testRoleARN), RoleSessionName: aws.String("s1")})
	if code := apiErrorCode(err); code != CodeServiceUnavailable {
		t.Errorf("unexpected AssumeRole error; got %q (%v); want %q", code, err, CodeServiceUnavailable)
	}
}

// TestFaultsValidate: bad faults are refused.
func TestFaultsValidate(t *testing.T) {
	f := func(name string, fl Faults) {
		t.Helper()
		if err := fl.Validate(); err == nil {
			t.Errorf("unexpected success for %s", name)
		}
	}
	f("rate above 1", Faults{ResetRate: 1.5})
	f("negative rate", Faults{HangRate: -0.1})
	f("negative latency", Faults{Latency: Duration(-time.Second)})
	f("unknown code", Faults{ErrorRates: map[string]float64{"Nope": 0.1}})
	f("rates above 1", Faults{ErrorRates: map[string]float64{CodeThrottling: 0.6, CodeInternalFailure: 0.6}})
	f("unknown action", Faults{Actions: []string{"GetSessionToken"}})
	f("negative throttle", Faults{ThrottleRate: -1})
	if err := (Faults{}).Validate(); err != nil {
		t.Errorf("unexpected error for no faults; got %v; want nil", err)
	}
}
