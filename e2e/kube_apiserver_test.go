//go:build e2e

package e2e

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iamgate/iamgate/internal/testenv"
)

// TestKubeAPIServer runs iamgate behind a real kube-apiserver twice: with webhook API v1 and
// the live kube-system/aws-auth ConfigMap, then with v1beta1 and a mapping file. Each run has
// its own kube-apiserver (and etcd prefix), iamgate and key pair; etcd and the fake STS are
// shared. The numbers it measures are logged as MEASURED lines and summed up at the end.
func TestKubeAPIServer(t *testing.T) {
	e := newEnv(t)
	t.Run("v1 webhook with the aws-auth ConfigMap", e.configMapRun)
	t.Run("v1beta1 webhook with a mapping file", e.fileRun)
	t.Logf("measured:\n  %s", strings.Join(e.results.lines, "\n  "))
}

func (e *env) testdata(name string) string { return filepath.Join(e.repo, "e2e", "testdata", name) }

// pause makes the next token differ from the previous one: a token's X-Amz-Date has
// one-second resolution, and two equal tokens are one cache entry everywhere.
func pause() { time.Sleep(1100 * time.Millisecond) }

func (e *env) configMapRun(t *testing.T) {
	pki, webhookAddr := e.initPKI(t, "configmap")
	kas := e.startKubeAPIServer(t, "kube-apiserver-v1", filepath.Join(pki, "webhook-kubeconfig.yaml"), "v1")
	e.kubectlOK(t, kas.admin, "apply", "-f", filepath.Join(e.repo, "deploy", "rbac.yaml"))
	e.kubectlOK(t, kas.admin, "apply", "-f", e.testdata("aws-auth.yaml"))
	e.kubectlOK(t, kas.admin, "apply", "-f", e.testdata("dev-rbac.yaml"))

	// iamgate reads aws-auth as its ServiceAccount, with exactly deploy/rbac.yaml's rights.
	saToken := strings.TrimSpace(e.kubectlOK(t, kas.admin, "create", "token", "iamgate", "-n", "kube-system", "--duration", "2h"))
	saKubeconfig := kas.tokenKubeconfig(t, e, "iamgate-serviceaccount", saToken)
	e.kubectlOK(t, saKubeconfig, "get", "configmap", "aws-auth", "-n", "kube-system")
	if out, err := e.kubectl(t, saKubeconfig, "get", "configmaps", "-n", "kube-system"); err == nil || !strings.Contains(out, "Forbidden") {
		t.Fatalf("unexpected result listing every ConfigMap of kube-system as iamgate's ServiceAccount; want Forbidden; got %v\n%s", err, out)
	}
	g := e.startIamgate(t, "iamgate-configmap", pki, webhookAddr, "-mapping.configMap", "-kubeconfig", saKubeconfig)

	t.Run("whoami shows the mapped users", func(t *testing.T) { e.checkWhoami(t, kas) })
	t.Run("RBAC decides with the mapped groups", func(t *testing.T) { e.checkRBAC(t, kas) })
	t.Run("unmapped identity gets the familiar message and explain says why", func(t *testing.T) {
		e.checkUnmapped(t, kas, "-mapping.configMap", "-kubeconfig", saKubeconfig)
	})
	t.Run("kube-apiserver's cache answers repeated tokens", func(t *testing.T) { e.checkCache(t, kas, g) })
	t.Run("hostile bearer tokens get 401 and never reach STS", func(t *testing.T) { e.checkHostile(t, kas, g) })
	t.Run("transient STS failures", func(t *testing.T) { e.checkTransient(t, kas, g) })
	t.Run("aws-auth edit and apply without restarts", func(t *testing.T) { e.checkMappingChange(t, kas, g) })
	// Last: it restarts iamgate with HTTP/2 off.
	t.Run("kube-apiserver's reviews arrive over HTTP/2, many to a connection", func(t *testing.T) {
		e.checkProductionPath(t, kas, g, webhookAddr, "-mapping.configMap", "-kubeconfig", saKubeconfig)
	})
}

func (e *env) fileRun(t *testing.T) {
	pki, webhookAddr := e.initPKI(t, "file")
	// A leaf rotation under the same CA needs that CA's key, which iamgate init does not keep
	// (it is meant to be replaced whole, or the pair issued by the operator's own CA, e.g.
	// cert-manager). So this run plays the operator's CA: its own CA and leaf go where
	// iamgate init put its files, and its CA into init's webhook kubeconfig.
	initCA, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t, "e2e webhook CA")
	leaf, key, _ := ca.issue(t, "iamgate", nil, "127.0.0.1")
	replaceKeyPair(t, pki, leaf, key)
	writeFile(t, filepath.Join(pki, "ca.pem"), ca.pem, 0o644)
	setWebhookCA(t, filepath.Join(pki, "webhook-kubeconfig.yaml"), initCA, ca.pem)

	kas := e.startKubeAPIServer(t, "kube-apiserver-v1beta1", filepath.Join(pki, "webhook-kubeconfig.yaml"), "v1beta1")
	e.kubectlOK(t, kas.admin, "apply", "-f", e.testdata("dev-rbac.yaml"))
	mappingFile := filepath.Join(e.work, "aws-auth-file.yaml")
	data, err := os.ReadFile(e.testdata("aws-auth.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, mappingFile, data, 0o644)
	// A short idle timeout closes kube-apiserver's kept-alive webhook connections quickly, so
	// that after a rotation its next review is a new TLS handshake.
	g := e.startIamgate(t, "iamgate-file", pki, webhookAddr, "-mapping.file", mappingFile, "-webhook.idleTimeout", "3s")

	t.Run("whoami shows the mapped users", func(t *testing.T) { e.checkWhoami(t, kas) })
	t.Run("RBAC decides with the mapped groups", func(t *testing.T) { e.checkRBAC(t, kas) })
	t.Run("unmapped identity gets the familiar message and explain says why", func(t *testing.T) {
		e.checkUnmapped(t, kas, "-mapping.file", mappingFile)
	})
	t.Run("rotated webhook key pair without a kube-apiserver restart", func(t *testing.T) { e.checkRotation(t, kas, g, pki, ca) })
}

// --- whoami ---

type wantUser struct {
	id       identity
	username string
	groups   []string
	extra    map[string]string // values to check; all six keys must be present
}

var extraKeys = []string{"accessKeyId", "arn", "canonicalArn", "principalId", "sessionName", "sigs.k8s.io/aws-iam-authenticator/principalId"}

func (e *env) checkWhoami(t *testing.T, kas *apiserver) {
	aliceExtra := map[string]string{"arn": "arn:aws:iam::111122223333:user/alice", "canonicalArn": "arn:aws:iam::111122223333:user/alice", "accessKeyId": alice.akid, "sessionName": ""}
	for _, w := range []wantUser{
		{alice, "alice", []string{"system:masters", "system:authenticated"}, aliceExtra},
		{aliceCLI, "alice", []string{"system:masters", "system:authenticated"}, aliceExtra},
		{dev, "dev:alice-example.com", []string{"dev", "system:authenticated"}, map[string]string{
			"arn":          "arn:aws:sts::111122223333:assumed-role/developers/alice@example.com",
			"canonicalArn": "arn:aws:iam::111122223333:role/developers", "sessionName": "alice@example.com"}},
		{node, "system:node:ip-10-0-1-23.ec2.internal", []string{"system:bootstrappers", "system:nodes", "system:authenticated"}, map[string]string{
			"arn":          "arn:aws:sts::111122223333:assumed-role/eks-node/i-0123456789abcdef0",
			"canonicalArn": "arn:aws:iam::111122223333:role/eks-node", "sessionName": "i-0123456789abcdef0", "accessKeyId": node.akid}},
	} {
		u, out, err := e.whoami(t, kas.execKubeconfig(t, e, w.id))
		if err != nil {
			t.Errorf("%s: kubectl auth whoami failed: %v\n%s", w.id.name, err, out)
			continue
		}
		if u.Username != w.username || !slices.Equal(u.Groups, w.groups) || !strings.HasPrefix(u.UID, "iamgate:111122223333:") {
			t.Errorf("%s: unexpected user; got %q %q uid %q; want %q %q uid iamgate:111122223333:…", w.id.name, u.Username, u.Groups, u.UID, w.username, w.groups)
		}
		for _, k := range extraKeys {
			if len(u.Extra[k]) != 1 {
				t.Errorf("%s: unexpected extra[%q] = %q; want one value (extra: %v)", w.id.name, k, u.Extra[k], u.Extra)
			}
		}
		for k, v := range w.extra {
			if len(u.Extra[k]) != 1 || u.Extra[k][0] != v {
				t.Errorf("%s: unexpected extra[%q]; got %q; want %q", w.id.name, k, u.Extra[k], v)
			}
		}
		if p := u.Extra["principalId"]; len(p) != 1 || p[0] == "" || !slices.Equal(p, u.Extra["sigs.k8s.io/aws-iam-authenticator/principalId"]) {
			t.Errorf("%s: unexpected principal IDs in extra: %v", w.id.name, u.Extra)
		}
		t.Logf("%s: kubectl auth whoami: %s %q %q", w.id.name, u.Username, u.Groups, u.Extra)
	}
	// And as people read it.
	out := e.kubectlOK(t, kas.execKubeconfig(t, e, dev), "auth", "whoami")
	for _, s := range []string{"Username", "dev:alice-example.com", "Groups", "[dev system:authenticated]", "Extra: canonicalArn", "arn:aws:iam::111122223333:role/developers", "Extra: sessionName", "alice@example.com"} {
		if !strings.Contains(out, s) {
			t.Errorf("unexpected kubectl auth whoami output for dev: %q is missing:\n%s", s, out)
		}
	}
}

// --- RBAC ---

func (e *env) checkRBAC(t *testing.T, kas *apiserver) {
	e.kubectlOK(t, kas.execKubeconfig(t, e, alice), "get", "secrets", "-n", "kube-system")
	devKubeconfig := kas.execKubeconfig(t, e, dev)
	if out := e.kubectlOK(t, devKubeconfig, "get", "pods", "-n", "team-a"); !strings.Contains(out, "No resources found in team-a namespace.") {
		t.Errorf("unexpected output of kubectl get pods -n team-a as dev:\n%s", out)
	}
	for _, c := range []struct{ kubeconfig, user, resource, ns string }{
		{devKubeconfig, "dev:alice-example.com", "pods", "default"},
		{devKubeconfig, "dev:alice-example.com", "secrets", "team-a"},
		{kas.execKubeconfig(t, e, node), "system:node:ip-10-0-1-23.ec2.internal", "secrets", "kube-system"},
	} {
		out, err := e.kubectl(t, c.kubeconfig, "get", c.resource, "-n", c.ns)
		want := fmt.Sprintf(`Error from server (Forbidden): %s is forbidden: User %q cannot list resource %q in API group "" in the namespace %q`, c.resource, c.user, c.resource, c.ns)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("unexpected result of kubectl get %s -n %s as %s; want %s; got %v\n%s", c.resource, c.ns, c.user, want, err, out)
		}
	}
}

// --- unmapped ---

func (e *env) checkUnmapped(t *testing.T, kas *apiserver, mappingFlags ...string) {
	for _, c := range []struct {
		id   identity
		args []string
	}{
		{bob, []string{"get", "namespaces"}},
		{bob, []string{"auth", "whoami"}},
		{bobCLI, []string{"auth", "whoami"}},
	} {
		id, args := c.id, c.args
		start := time.Now()
		out, err := e.kubectl(t, kas.execKubeconfig(t, e, id), args...)
		t.Logf("%s: kubectl %s: %s", id.name, strings.Join(args, " "), time.Since(start).Round(10*time.Millisecond))
		if err == nil || !isUnauthorized(out) {
			t.Errorf("%s: unexpected result of kubectl %s; want the last line %q; got %v\n%s", id.name, strings.Join(args, " "), unauthorized, err, out)
		}
	}
	pause()
	token := e.mint(t, bob)
	out, err := e.kubectl(t, kas.tokenKubeconfig(t, e, "bob-token", token), "auth", "whoami")
	if err == nil || !isUnauthorized(out) {
		t.Errorf("unexpected result of kubectl auth whoami with bob's token: %v\n%s", err, out)
	}
	cmd := exec.Command(e.iamgateBin, append([]string{"explain", "-i", clusterID, "-sts.dialOverride", e.stsAddr, "-sts.caFile", e.stsCA, "-token", token}, mappingFlags...)...)
	cmd.Env = testenv.AWSEnv(t)
	explained, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(explained), "arn:aws:iam::111122223333:user/bob") || !regexp.MustCompile(`(?m)^result: +NOT MAPPED$`).Match(explained) {
		t.Errorf("unexpected iamgate explain for bob's token; want a non-zero exit, bob's ARN and NOT MAPPED; got %v\n%s", err, explained)
	}
	t.Logf("iamgate explain %s -token <bob's token>:\n%s", strings.Join(mappingFlags, " "), explained)
}

// --- kube-apiserver's cache ---

func (e *env) checkCache(t *testing.T, kas *apiserver, g *iamgate) {
	const runs = 5
	for _, c := range []struct {
		id      identity
		allowed bool
	}{{alice, true}, {bob, false}} {
		pause()
		kubeconfig := kas.tokenKubeconfig(t, e, c.id.name+"-cache", e.mint(t, c.id))
		reviews, sts := g.reviews(t), e.stsCalls(t, "")
		for range runs {
			out, err := e.kubectl(t, kubeconfig, "get", "namespaces")
			if c.allowed != (err == nil) || (!c.allowed && !isUnauthorized(out)) {
				t.Fatalf("%s: unexpected result of kubectl get namespaces: %v\n%s", c.id.name, err, out)
			}
		}
		gotReviews, gotSTS := g.reviews(t)-reviews, e.stsCalls(t, "")-sts
		if gotReviews != 1 || gotSTS != 1 {
			t.Errorf("%s: unexpected calls for %d kubectl runs with one token; got %d reviews and %d STS calls; want 1 of each (kube-apiserver's cache answers the rest)", c.id.name, runs, gotReviews, gotSTS)
		}
		e.results.add(t, "kube-apiserver's cache: %d kubectl runs with one %s token reached iamgate %d time(s)", runs, map[bool]string{true: "mapped", false: "unmapped"}[c.allowed], gotReviews)
	}
}

// --- hostile tokens ---

func (e *env) checkHostile(t *testing.T, kas *apiserver, g *iamgate) {
	pause()
	valid := e.mint(t, alice)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(valid, "k8s-aws-v1."))
	if err != nil {
		t.Fatal(err)
	}
	u := string(raw)
	enc := func(s string) string { return "k8s-aws-v1." + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	edit := func(old, new string) string {
		t.Helper()
		if !strings.Contains(u, old) {
			t.Fatalf("the token URL %q does not contain %q", u, old)
		}
		return enc(strings.Replace(u, old, new, 1))
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	host, date := parsed.Host, parsed.Query().Get("X-Amz-Date")
	tokens := []struct{ name, token string }{
		{"userinfo in the host", edit("https://", "https://attacker:pw@")},
		{"a port in the host", edit(host+"/", host+":8443/")},
		{"a host outside the allow-list", edit(host+"/", host+".attacker.example/")},
		{"plain http", edit("https://", "http://")},
		{"a query key repeated in another case (CVE-2022-2385)", enc(u + "&x-amz-signedheaders=host")},
		{"another STS action", edit("Action=GetCallerIdentity", "Action=AssumeRole")},
		{"the cluster ID header not signed", edit("SignedHeaders=host%3Bx-k8s-aws-id", "SignedHeaders=host")},
		{"an expired date", edit("X-Amz-Date="+date, "X-Amz-Date=20200101T000000Z")},
		{"a fragment", enc(u + "#fragment")},
		{"not base64url", "k8s-aws-v1.not*base64url!"},
		{"another prefix", "k8s-aws-v2." + strings.TrimPrefix(valid, "k8s-aws-v1.")},
		{"17 KiB long", "k8s-aws-v1." + strings.Repeat("A", 17<<10)},
	}
	sts, stsRequests, rejections := e.stsCalls(t, ""), g.metric(t, "iamgate_sts_requests_total"), g.metric(t, "iamgate_token_rejections_total")
	for _, tok := range tokens {
		out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "60",
			"--cacert", kas.ca, "-H", "Authorization: Bearer "+tok.token, kas.url+"/api").CombinedOutput()
		if err != nil || string(out) != "401" {
			t.Errorf("%s: unexpected answer of kube-apiserver; got %q (%v); want 401", tok.name, out, err)
		}
	}
	if got := e.stsCalls(t, "") - sts; got != 0 {
		t.Errorf("unexpected: %d hostile tokens reached the fake STS", got)
	}
	if got := g.metric(t, "iamgate_sts_requests_total") - stsRequests; got != 0 {
		t.Errorf("unexpected: iamgate made %v STS calls for hostile tokens", got)
	}
	// Each one did reach iamgate (kube-apiserver asked), which refused it locally.
	if got := g.metric(t, "iamgate_token_rejections_total") - rejections; int(got) != len(tokens) {
		t.Errorf("unexpected local rejections; got %v; want %d (one per hostile token)", got, len(tokens))
	}
}

// --- transient failures ---

func (e *env) checkTransient(t *testing.T, kas *apiserver, g *iamgate) {
	ids := []identity{alice, dev, node}
	usernames := []string{"alice", "dev:alice-example.com", "system:node:ip-10-0-1-23.ec2.internal"}
	// The fault is held until every kubectl run has met it, then this long: STS is back
	// before kube-apiserver's webhook retries (about 4 s of backoff over 5 calls) run out.
	const holdAfterHit = 1500 * time.Millisecond
	for _, c := range []struct{ name, faults, outcome string }{
		{"outage", `{"outage":true,"actions":["GetCallerIdentity"]}`, "ServiceUnavailable"},
		{"throttling", `{"errorRates":{"Throttling":1},"actions":["GetCallerIdentity"]}`, "Throttling"},
	} {
		t.Run("kubectl started during a short STS "+c.name+" succeeds", func(t *testing.T) {
			// Fresh tokens, minted beforehand so that the kubectl runs reach kube-apiserver
			// at once; no cache anywhere knows them.
			pause()
			kubeconfigs := make([]string, len(ids))
			for i, id := range ids {
				kubeconfigs[i] = kas.tokenKubeconfig(t, e, "transient-"+c.name+"-"+id.name, e.mint(t, id))
			}
			faulted, reviews := e.stsCalls(t, c.outcome), g.reviews(t)
			e.setFaults(t, c.faults)
			began := time.Now()
			t.Cleanup(func() { e.setFaults(t, "") })
			type result struct {
				user string
				out  string
				err  error
				took time.Duration
			}
			results := make([]result, len(ids))
			var wg sync.WaitGroup
			for i := range ids {
				wg.Go(func() {
					start := time.Now()
					u, out, err := e.whoami(t, kubeconfigs[i])
					results[i] = result{u.Username, out, err, time.Since(start)}
				})
			}
			for e.stsCalls(t, c.outcome)-faulted < len(ids) && time.Since(began) < 15*time.Second {
				time.Sleep(20 * time.Millisecond)
			}
			hits := e.stsCalls(t, c.outcome) - faulted
			time.Sleep(holdAfterHit)
			e.setFaults(t, "")
			lasted := time.Since(began)
			wg.Wait()
			if hits < len(ids) {
				t.Fatalf("only %d STS answers of %d kubectl runs met the %s in %s", hits, len(ids), c.name, lasted)
			}
			var took []string
			for i, r := range results {
				took = append(took, fmt.Sprintf("%s %s", ids[i].name, r.took.Round(10*time.Millisecond)))
				if r.err != nil {
					t.Errorf("%s: kubectl auth whoami during a %s STS %s failed after %s: kube-apiserver did not retry until STS was back: %v\n%s",
						ids[i].name, lasted.Round(10*time.Millisecond), c.name, r.took.Round(10*time.Millisecond), r.err, r.out)
				} else if r.user != usernames[i] {
					t.Errorf("%s: unexpected user; got %q; want %q", ids[i].name, r.user, usernames[i])
				}
			}
			e.results.add(t, "a %s STS %s (held %s after every kubectl run met it): kubectl auth whoami took %s; %d reviews for %d tokens; succeeded: %v",
				lasted.Round(100*time.Millisecond), c.name, holdAfterHit, strings.Join(took, ", "), g.reviews(t)-reviews, len(ids), !t.Failed())
		})
	}

	t.Run("a long outage gives Unauthorized and cached identities keep working", func(t *testing.T) {
		aliceKubeconfig := kas.execKubeconfig(t, e, alice)
		pause()
		cached := kas.tokenKubeconfig(t, e, "alice-cached", e.mint(t, alice))
		if _, out, err := e.whoami(t, cached); err != nil {
			t.Fatalf("kubectl auth whoami with alice's token: %v\n%s", err, out)
		}
		pause()
		e.setFaults(t, `{"outage":true,"actions":["GetCallerIdentity"]}`)
		t.Cleanup(func() { e.setFaults(t, "") })
		start, reviews := time.Now(), g.reviews(t)
		out, err := e.kubectl(t, aliceKubeconfig, "auth", "whoami")
		gaveUp, asked := time.Since(start), g.reviews(t)-reviews
		if err == nil || !isUnauthorized(out) {
			t.Errorf("unexpected result of a fresh token during a long STS outage; want %q; got %v\n%s", unauthorized, err, out)
		}
		if u, out, err := e.whoami(t, cached); err != nil || u.Username != "alice" {
			t.Errorf("unexpected: a token kube-apiserver had cached stopped working during the STS outage: %v\n%s", err, out)
		}
		e.setFaults(t, "")
		e.results.add(t, "a long STS outage: kubectl with a fresh token got Unauthorized after %s and %d reviews, STS still out; a token kube-apiserver had cached kept working", gaveUp.Round(10*time.Millisecond), asked)
		pause()
		if _, out, err := e.whoami(t, aliceKubeconfig); err != nil {
			t.Errorf("unexpected: alice cannot log in after the STS outage ended: %v\n%s", err, out)
		}
	})
}

// --- mapping changes and kube-apiserver's cache TTL ---

func (e *env) checkMappingChange(t *testing.T, kas *apiserver, g *iamgate) {
	carolKubeconfig := kas.execKubeconfig(t, e, carol)
	if _, out, err := e.whoami(t, carolKubeconfig); err == nil || !isUnauthorized(out) {
		t.Fatalf("unexpected result for carol before she is mapped: %v\n%s", err, out)
	}
	kasPID, iamgatePID := kas.cmd.Process.Pid, g.cmd.Process.Pid
	reloads := g.metric(t, "iamgate_mapping_reloads_total", `source="configmap"`, `result="ok"`)

	// kubectl edit, with an editor that adds carol's record at the top of mapUsers.
	record := filepath.Join(e.work, "aws-auth-add-carol.txt")
	data, err := os.ReadFile(e.testdata("aws-auth-add-carol.txt"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, record, data, 0o644)
	editor := filepath.Join(e.work, "add-carol-editor.sh")
	writeFile(t, editor, []byte("#!/bin/sh\n# kubectl edit's editor: add carol's record at the top of mapUsers.\nexec sed -i -e '/^  mapUsers: |/r "+record+"' \"$1\"\n"), 0o755)
	edited := time.Now()
	out, err := e.kubectlEnv(t, kas.admin, []string{"KUBE_EDITOR=" + editor}, "edit", "configmap", "aws-auth", "-n", "kube-system")
	if err != nil || !strings.Contains(out, "configmap/aws-auth edited") {
		t.Fatalf("kubectl edit configmap aws-auth: %v\n%s", err, out)
	}
	var u userInfo
	for {
		pause() // and a fresh token: kube-apiserver cached the denial of the previous one
		if u, out, err = e.whoami(t, carolKubeconfig); err == nil {
			break
		}
		if time.Since(edited) > 30*time.Second {
			t.Fatalf("carol still cannot log in 30 s after kubectl edit added her: %v\n%s", err, out)
		}
	}
	mappedAfter := time.Since(edited)
	if u.Username != "carol" || !slices.Equal(u.Groups, []string{"dev", "system:authenticated"}) {
		t.Errorf("unexpected user for carol: %q %q", u.Username, u.Groups)
	}
	if got := g.metric(t, "iamgate_mapping_reloads_total", `source="configmap"`, `result="ok"`); got <= reloads {
		t.Errorf("unexpected: iamgate_mapping_reloads_total{source=configmap,result=ok} did not grow (%v)", got)
	}

	// The token kube-apiserver caches from now on.
	pause()
	cached := kas.tokenKubeconfig(t, e, "carol-cached", e.mint(t, carol))
	if _, out, err := e.whoami(t, cached); err != nil {
		t.Fatalf("kubectl auth whoami with carol's token: %v\n%s", err, out)
	}
	cachedAt := time.Now()

	// kubectl apply of the original aws-auth removes her.
	e.kubectlOK(t, kas.admin, "apply", "-f", e.testdata("aws-auth.yaml"))
	removed := time.Now()
	for {
		pause()
		if _, out, err = e.whoami(t, carolKubeconfig); err != nil {
			if !isUnauthorized(out) {
				t.Fatalf("unexpected result for a fresh token of carol after her removal: %v\n%s", err, out)
			}
			break
		}
		if time.Since(removed) > 30*time.Second {
			t.Fatalf("a fresh token of carol still works 30 s after kubectl apply removed her")
		}
	}
	freshRefusedAfter := time.Since(removed)

	// Her cached token works until kube-apiserver's cache TTL runs out, without asking iamgate.
	reviews := g.reviews(t)
	var lastOK time.Time
	for {
		_, out, err := e.whoami(t, cached)
		if err != nil {
			if !isUnauthorized(out) {
				t.Fatalf("unexpected result for carol's cached token: %v\n%s", err, out)
			}
			break
		}
		lastOK = time.Now()
		if got := g.reviews(t) - reviews; got != 0 {
			t.Errorf("unexpected: %d reviews reached iamgate for a token kube-apiserver had cached", got)
		}
		if time.Since(cachedAt) > 4*time.Minute {
			t.Fatalf("carol's cached token still works 4 minutes after it was cached")
		}
		time.Sleep(2 * time.Second)
	}
	refusedAfter := time.Since(cachedAt)
	if refusedAfter < 110*time.Second || refusedAfter > 150*time.Second {
		t.Errorf("unexpected lifetime of carol's cached token; got %s; want about kube-apiserver's default webhook cache TTL of 2m", refusedAfter.Round(time.Second))
	}
	if kas.exited() || g.exited() || kas.cmd.Process.Pid != kasPID || g.cmd.Process.Pid != iamgatePID {
		t.Errorf("unexpected restart of kube-apiserver or iamgate")
	}
	e.results.add(t, "aws-auth: a user added with kubectl edit logged in %s after the edit, without a restart", mappedAfter.Round(100*time.Millisecond))
	e.results.add(t, "aws-auth: after kubectl apply removed that user, a fresh token was refused %s later; the token kube-apiserver had cached worked until %s and was refused %s after it was cached (%s after the removal): kube-apiserver's default webhook cache TTL of 2m",
		freshRefusedAfter.Round(100*time.Millisecond), lastOK.Sub(cachedAt).Round(time.Second), refusedAfter.Round(time.Second), time.Since(removed).Round(time.Second))
}

// --- key pair rotation ---

func (e *env) checkRotation(t *testing.T, kas *apiserver, g *iamgate, pki string, ca *certAuthority) {
	aliceKubeconfig := kas.execKubeconfig(t, e, alice)
	kasPID := kas.cmd.Process.Pid
	rotate := func(issuer *certAuthority) time.Duration {
		t.Helper()
		leaf, key, sn := issuer.issue(t, "iamgate", nil, "127.0.0.1")
		replaceKeyPair(t, pki, leaf, key)
		rotated := time.Now()
		waitFor(t, "iamgate to serve the new leaf", g.process, 30*time.Second, 500*time.Millisecond, func() bool {
			got, err := g.servedSerial(t, issuer.pem)
			return err == nil && got == sn
		})
		servedAfter := time.Since(rotated)
		time.Sleep(4 * time.Second) // -webhook.idleTimeout=3s: kube-apiserver's next review is a new connection
		return servedAfter
	}

	servedAfter := rotate(ca)
	if u, out, err := e.whoami(t, aliceKubeconfig); err != nil || u.Username != "alice" {
		t.Fatalf("unexpected result after a rotation to a new leaf of the same CA: %v\n%s", err, out)
	}
	// A leaf of another CA is refused: kube-apiserver checks every new connection.
	rotate(newCA(t, "not the webhook CA"))
	if out, err := e.kubectl(t, aliceKubeconfig, "auth", "whoami"); err == nil || !isUnauthorized(out) {
		t.Fatalf("unexpected result with a webhook leaf of another CA; want %q; got %v\n%s", unauthorized, err, out)
	}
	rotate(ca)
	if u, out, err := e.whoami(t, aliceKubeconfig); err != nil || u.Username != "alice" {
		t.Fatalf("unexpected result after rotating back to a leaf of the webhook CA: %v\n%s", err, out)
	}
	if kas.exited() || kas.cmd.Process.Pid != kasPID {
		t.Errorf("unexpected restart of kube-apiserver")
	}
	e.results.add(t, "key pair rotation: iamgate served the new leaf %s after the files changed; kube-apiserver accepted it (same CA) and refused another CA's leaf, without a restart", servedAfter.Round(100*time.Millisecond))
}
