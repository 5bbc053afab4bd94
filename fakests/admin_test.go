package fakests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("cannot build request: %s", err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("cannot %s %s: %s", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("cannot read answer: %s", err)
	}
	return resp.StatusCode, string(b)
}

// TestAdminEndpoints: faults changed live over HTTP, /stats counts, /metrics, /healthz, on the
// main listener and on a separate admin listener.
func TestAdminEndpoints(t *testing.T) {
	s := startServer(t, testConfig(t), Options{})
	adminAddr, err := s.StartAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot start admin listener: %s", err)
	}
	for _, base := range []string{s.URL(), "http://" + adminAddr} {
		status, body := httpDo(t, http.MethodPut, base+"/admin/faults", `{"outage":true,"latency":"5ms","errorRates":{"Throttling":0.25}}`)
		if status != 200 || !strings.Contains(body, `"outage":true`) || !strings.Contains(body, `"latency":"5ms"`) {
			t.Errorf("unexpected PUT answer; got %d %s", status, body)
		}
		f := s.Faults()
		if !f.Outage || time.Duration(f.Latency) != 5*time.Millisecond || f.ErrorRates[CodeThrottling] != 0.25 {
			t.Errorf("unexpected faults; got %+v", f)
		}
		if status, body := httpDo(t, http.MethodPut, base+"/admin/faults", `{"resetRate":2}`); status != 400 {
			t.Errorf("unexpected answer for bad faults; got %d %s; want 400", status, body)
		}
		if status, body := httpDo(t, http.MethodPut, base+"/admin/faults", `{"outage":`); status != 400 {
			t.Errorf("unexpected answer for bad JSON; got %d %s; want 400", status, body)
		}
		if status, _ := httpDo(t, http.MethodDelete, base+"/admin/faults", ""); status != 204 || s.Faults().Outage {
			t.Errorf("unexpected DELETE answer; got %d, faults %+v", status, s.Faults())
		}
		if status, body := httpDo(t, http.MethodGet, base+"/healthz", ""); status != 200 || body != "ok\n" {
			t.Errorf("unexpected healthz; got %d %q", status, body)
		}
	}

	client := &http.Client{Timeout: 5 * time.Second}
	tryTokenGET(client, s.Addr(), presignToken(t, "demo"))
	s.SetFaults(Faults{ErrorRates: map[string]float64{CodeThrottling: 1}})
	tryTokenGET(client, s.Addr(), presignToken(t, "demo"))
	status, body := httpDo(t, http.MethodGet, s.URL()+"/stats", "")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); status != 200 || err != nil {
		t.Fatalf("unexpected /stats answer; got %d %s (%v)", status, body, err)
	}
	if st.Count(ActionGetCallerIdentity, OutcomeOK) != 1 || st.Count(ActionGetCallerIdentity, CodeThrottling) != 1 ||
		st.Total(ActionGetCallerIdentity) != 2 || st.Faults[FaultError] != 1 {
		t.Errorf("unexpected stats; got %s", body)
	}
	status, body = httpDo(t, http.MethodGet, "http://"+adminAddr+"/metrics", "")
	for _, want := range []string{
		`fakests_requests_total{action="GetCallerIdentity",outcome="ok"} 1`,
		`fakests_requests_total{action="GetCallerIdentity",outcome="Throttling"} 1`,
		`fakests_faults_injected_total{fault="error"} 1`,
		`fakests_request_duration_seconds_count{action="GetCallerIdentity"} 2`,
		`fakests_issued_sessions 0`,
	} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("unexpected /metrics; got %d without %q", status, want)
		}
	}
	if status, _ := httpDo(t, http.MethodDelete, s.URL()+"/stats", ""); status != 204 || s.Stats().Total(ActionGetCallerIdentity) != 0 {
		t.Errorf("unexpected DELETE /stats; got %d, stats %+v", status, s.Stats())
	}
	if status, _ := httpDo(t, http.MethodGet, "http://"+adminAddr+"/", ""); status != 404 {
		t.Errorf("unexpected answer for / on the admin listener; got %d; want 404", status)
	}
}

// TestAdminClient: AdminClient, from another process's side, changes the faults and reads and
// zeroes the counters of a running fake, and reports a refused change.
func TestAdminClient(t *testing.T) {
	s := startServer(t, testConfig(t), Options{})
	admin := AdminClient{URL: s.URL()}
	if err := admin.SetFaults(Faults{ErrorRates: map[string]float64{CodeThrottling: 1}}); err != nil {
		t.Fatalf("cannot set faults: %s", err)
	}
	if got := s.Faults().ErrorRates[CodeThrottling]; got != 1 {
		t.Fatalf("unexpected throttling rate; got %v; want 1", got)
	}
	tryTokenGET(&http.Client{Timeout: 5 * time.Second}, s.Addr(), presignToken(t, "demo"))
	st, err := admin.Stats()
	if err != nil {
		t.Fatalf("cannot read stats: %s", err)
	}
	if got := st.Count(ActionGetCallerIdentity, CodeThrottling); got != 1 {
		t.Errorf("unexpected throttled calls; got %d; want 1", got)
	}
	if err := admin.ResetStats(); err != nil {
		t.Fatalf("cannot reset stats: %s", err)
	}
	if got := s.Stats().Total(ActionGetCallerIdentity); got != 0 {
		t.Errorf("unexpected calls after ResetStats; got %d; want 0", got)
	}
	if err := admin.SetFaults(Faults{ResetRate: 2}); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("unexpected error for a refused fault; got %v; want HTTP 400", err)
	}
}

// TestTLS: with Options.TLS the fake serves HTTPS with a leaf for the AWS host names and
// loopback, signed by the CA of CACertPEM: aws-sdk-go-v2 trusts it through RootCAs, and a
// token GET dialled to the fake with the token's host as server name verifies.
func TestTLS(t *testing.T) {
	s := startServer(t, testConfig(t), Options{TLS: true})
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("unexpected URL; got %q; want https://127.0.0.1:port", s.URL())
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM()) {
		t.Fatalf("cannot parse CA PEM")
	}
	for _, host := range []string{"sts.us-east-1.amazonaws.com", "sts.amazonaws.com", "ec2.eu-west-1.amazonaws.com", "sts.cn-north-1.amazonaws.com.cn", "localhost"} {
		conn, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: pool, ServerName: host})
		if err != nil {
			t.Errorf("cannot verify the leaf for %s: %s", host, err)
			continue
		}
		conn.Close()
	}

	cfg := sdkConfig(testUserKey, testUserSecret, "")
	cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	out, err := stsClient(s, cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil || *out.Arn != testUserARN {
		t.Fatalf("unexpected HTTPS GetCallerIdentity; got %v; want %s", err, testUserARN)
	}

	// As the daemon with -sts.dialOverride: the token's host for TLS and Host, the fake's address.
	addr := s.Addr()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	u := presignToken(t, "demo")
	resp, err := client.Get(u.String()) // https://sts.us-east-1.amazonaws.com/?… without x-k8s-aws-id
	if err != nil {
		t.Fatalf("cannot GET the token over HTTPS: %s", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unexpected status without x-k8s-aws-id; got %d; want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	req.Header.Set("x-k8s-aws-id", "demo")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("cannot GET the token over HTTPS: %s", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("unexpected status; got %d; want 200", resp.StatusCode)
	}
}

// TestAWSCLITLS: the AWS CLI trusts the generated CA through AWS_CA_BUNDLE.
func TestAWSCLITLS(t *testing.T) {
	s := startServer(t, testConfig(t), Options{TLS: true})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, s.CACertPEM(), 0o600); err != nil {
		t.Fatalf("cannot write CA: %s", err)
	}
	out, stderr, err := awsCLI(t, s, testUserKey, testUserSecret, "", "sts", "get-caller-identity", "--endpoint-url", s.URL(), "--ca-bundle", caFile)
	if err != nil || !strings.Contains(out, testUserARN) {
		t.Errorf("unexpected get-caller-identity over HTTPS; got %q %q %v; want %s", out, stderr, err, testUserARN)
	}
}

// TestAccessKeyRotation: a second key added over /admin/accessKeys authenticates as the same
// user; once the first is deleted, requests signed with it get InvalidClientTokenId.
func TestAccessKeyRotation(t *testing.T) {
	s := startServer(t, testConfig(t), Options{})
	const newKey, newSecret = "AKIAROTATEDKEY000001", "rotated/secret/0123456789"
	callerARN := func(key, secret string) (string, string) {
		t.Helper()
		out, err := stsClient(s, sdkConfig(key, secret, "")).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", apiErrorCode(err)
		}
		return *out.Arn + " " + *out.UserId, ""
	}
	before, code := callerARN(testUserKey, testUserSecret)
	if code != "" {
		t.Fatalf("unexpected error before the rotation: %s", code)
	}

	body := `{"arn":"` + testUserARN + `","accessKeyId":"` + newKey + `","secretAccessKey":"` + newSecret + `"}`
	if status, msg := httpDo(t, http.MethodPost, s.URL()+"/admin/accessKeys", body); status != 201 {
		t.Fatalf("unexpected answer adding a key; got %d %s; want 201", status, msg)
	}
	if got, code := callerARN(newKey, newSecret); got != before {
		t.Errorf("unexpected identity of the new key; got %q (%s); want %q", got, code, before)
	}
	if got, _ := callerARN(testUserKey, testUserSecret); got != before {
		t.Errorf("unexpected: the old key stopped working before it was deleted (%q)", got)
	}
	if status, _ := httpDo(t, http.MethodDelete, s.URL()+"/admin/accessKeys?accessKeyId="+testUserKey, ""); status != 204 {
		t.Fatalf("unexpected answer deleting the old key; got %d; want 204", status)
	}
	if got, code := callerARN(testUserKey, testUserSecret); code != CodeInvalidClientTokenID {
		t.Errorf("unexpected answer for the deleted key; got %q %q; want %s", got, code, CodeInvalidClientTokenID)
	}
	if got, _ := callerARN(newKey, newSecret); got != before {
		t.Errorf("unexpected identity of the new key after the rotation; got %q; want %q", got, before)
	}

	for _, c := range []struct{ method, query, body string }{
		{http.MethodPost, "", `{"arn":`},
		{http.MethodPost, "", body}, // the key exists
		{http.MethodPost, "", `{"arn":"arn:aws:iam::111122223333:role/r","accessKeyId":"AKIANOTAUSER00000001","secretAccessKey":"x"}`},
		{http.MethodDelete, "?accessKeyId=" + testUserKey, ""}, // deleted already
		{http.MethodGet, "", ""},
	} {
		want := map[string]int{http.MethodPost: 400, http.MethodDelete: 404, http.MethodGet: 405}[c.method]
		if status, msg := httpDo(t, c.method, s.URL()+"/admin/accessKeys"+c.query, c.body); status != want {
			t.Errorf("unexpected answer to %s %s %s; got %d %s; want %d", c.method, c.query, c.body, status, msg, want)
		}
	}
}
