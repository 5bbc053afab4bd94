package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/fakests"
)

// Load tests must never leave the machine: every target is a loopback IP literal.
func TestCheckLoopback(t *testing.T) {
	f := func(addr string, ok bool) {
		t.Helper()
		err := CheckLoopback(addr)
		if (err == nil) != ok {
			t.Fatalf("unexpected result for %q; got error %v; want ok=%v", addr, err, ok)
		}
	}
	f("127.0.0.1:8080", true)
	f("127.3.4.5:1", true)
	f("[::1]:8080", true)
	f("localhost:8080", false) // a name can resolve anywhere
	f("10.0.0.1:8080", false)
	f("0.0.0.0:8080", false)
	f("[::]:8080", false)
	f("sts.amazonaws.com:443", false)
	f("127.0.0.1", false)
}

func TestCheckLoopbackURL(t *testing.T) {
	f := func(u string, ok bool) {
		t.Helper()
		err := CheckLoopbackURL(u)
		if (err == nil) != ok {
			t.Fatalf("unexpected result for %q; got error %v; want ok=%v", u, err, ok)
		}
	}
	f("http://127.0.0.1:21362/authenticate", true)
	f("https://127.0.0.1:21362/authenticate?timeout=30s", true)
	f("https://sts.us-east-1.amazonaws.com/", false)
	f("http://192.168.1.10:21362/authenticate", false)
	f("http://user:pw@127.0.0.1:1/", false)
	f("ftp://127.0.0.1:21/", false)
	f("http://127.0.0.1/authenticate", false) // no port: nothing to split
}

func TestRunRefusesRemoteTargets(t *testing.T) {
	for _, u := range []string{"http://10.1.2.3:80/authenticate", "https://kubernetes.default.svc:443/"} {
		_, err := Run(context.Background(), Load{URL: u, Bodies: [][]byte{[]byte("{}")}, Concurrency: 1, Requests: 1, Duration: time.Second})
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("unexpected error for %q; got %v; want a loopback refusal", u, err)
		}
		tg := &Target{WebhookURL: u}
		if _, err := tg.Run(context.Background(), Scenario{Kind: KindHot}); err == nil {
			t.Fatalf("unexpected success of a scenario against %q", u)
		}
	}
	remoteSTS := fakests.AdminClient{URL: "http://203.0.113.5:4566"}
	if _, err := (&Target{WebhookURL: "http://127.0.0.1:1/authenticate", STS: remoteSTS}).Run(context.Background(), Scenario{Kind: KindHot}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("unexpected error of a scenario whose fake STS is remote; got %v; want a loopback refusal", err)
	}
	ct := &ClusterTarget{WebhookURL: "http://127.0.0.1:1/authenticate", STS: remoteSTS, Minter: &Minter{}}
	if _, err := ct.RunCluster(context.Background(), ClusterStorm("remote", 1, 1, 0, 1, time.Second)); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("unexpected error of a cluster run whose fake STS is remote; got %v; want a loopback refusal", err)
	}
	if _, err := ScrapeMetrics("http://203.0.113.5:9100/metrics"); err == nil {
		t.Fatalf("unexpected success of a scrape of a remote address")
	}
}
