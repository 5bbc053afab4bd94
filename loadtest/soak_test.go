package loadtest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iamgate/iamgate/mapping"
	"github.com/iamgate/iamgate/sigv4"
)

type instanceNames map[string]string

func (n instanceNames) PrivateDNSName(_ context.Context, id string) (string, error) {
	if name, ok := n[id]; ok {
		return name, nil
	}
	return "", mapping.ErrInstanceNotFound
}

// The oracle's expectations agree with what the mapping package makes of the documents the soak
// writes, for every principal under every combination of file and ConfigMap versions it cycles
// through (refused records, the dev role and mapAccounts coming and going included).
func TestSoakMappingVersions(t *testing.T) {
	m := NewSoakModel("soak-cluster")
	names := instanceNames{}
	for _, p := range m.Principals {
		if p.InstanceID != "" {
			names[p.InstanceID] = p.PrivateDNSName
		}
	}
	mapped := map[bool]int{}
	for file := range 12 {
		fileDoc, err := mapping.ParseDocument("file", m.FileDocument(file))
		if err != nil {
			t.Fatalf("file version %d does not parse: %v\n%s", file, err, m.FileDocument(file))
		}
		if want := map[bool]int{true: 1, false: 0}[file%4 == 3]; len(fileDoc.Refused) != want || len(fileDoc.Unparsed) != 0 {
			t.Fatalf("unexpected refused records in file version %d; got %v and unparsed %v; want %d", file, fileDoc.Refused, fileDoc.Unparsed, want)
		}
		for cm := range 6 {
			cmDoc, err := mapping.ParseConfigMapData("configmap", m.ConfigMapData(cm))
			if err != nil || len(cmDoc.Refused) != 0 || len(cmDoc.Unparsed) != 0 {
				t.Fatalf("unexpected parse of ConfigMap version %d: %v %v %v", cm, err, cmDoc.Refused, cmDoc.Unparsed)
			}
			table, err := mapping.Compile(fileDoc, cmDoc)
			if err != nil {
				t.Fatalf("cannot compile versions %d/%d: %v", file, cm, err)
			}
			for _, p := range m.Principals {
				account := SoakAccount
				if p.Kind == SoakAccountUser {
					account = SoakMappedAccount
				}
				userID := "AIDASOAK" + p.Key.AccessKeyID
				if p.Session != "" {
					userID = "AROASOAKROLE:" + p.Session
				}
				id, err := mapping.NewIdentity(p.ARN, account, userID, p.Key.AccessKeyID)
				if err != nil {
					t.Fatalf("cannot build the identity of %s: %v", p.Name, err)
				}
				got, err := table.Render(context.Background(), &id, names)
				want, ok := m.Expect(file, cm, p)
				mapped[ok]++
				switch {
				case !ok && (err == nil || !mapping.IsDenial(err)):
					t.Errorf("versions %d/%d: %s: unexpected %+v (%v); want a denial", file, cm, p.Name, got, err)
				case ok && (err != nil || got.Username != want.Username || !slices.Equal(got.Groups, want.Groups)):
					t.Errorf("versions %d/%d: %s: unexpected %+v (%v); want %+v", file, cm, p.Name, got, err, want)
				}
			}
		}
	}
	if mapped[true] == 0 || mapped[false] == 0 {
		t.Fatalf("unexpected: the versions map everyone or no one: %v", mapped)
	}
}

// A garbage file is refused whole by the parser (iamgate keeps the version it had).
func TestSoakGarbageFile(t *testing.T) {
	if doc, err := mapping.ParseDocument("file", SoakGarbageFile); err == nil {
		t.Fatalf("unexpected: the garbage file parses: %+v", doc)
	}
}

// Every mangled form of a valid token is rejected by iamgate's validator, each for a reason
// of its own kind, while the token itself passes.
func TestSoakMangle(t *testing.T) {
	m := NewSoakModel("soak-cluster")
	now := time.Now()
	valid, err := m.Mint(m.Principals[0].Key, now, "", "")
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := sigv4.NewAllowList([]string{"aws"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := sigv4.NewValidator(hosts, sigv4.DefaultMaxClockSkew)
	var r sigv4.Request
	if err := v.Validate([]byte(valid), now, &r); err != nil {
		t.Fatalf("the valid token is rejected: %v", err)
	}
	seen := map[string]bool{}
	for i := range SoakMalformedKinds {
		bad := SoakMangle(valid, i)
		if seen[bad] {
			t.Errorf("mangled form %d repeats another", i)
		}
		seen[bad] = true
		if err := v.Validate([]byte(bad), now, &r); err == nil {
			t.Errorf("mangled form %d passes the validator: %.120s", i, bad)
		}
	}
}

func TestSoakJudge(t *testing.T) {
	m := NewSoakModel("soak-cluster")
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	w := SoakWindows{Mapping: 10 * time.Second, Revocation: 2 * time.Minute}
	tl := NewSoakTimeline(t0, 1, 1)
	tl.SetFile(at(60), 2)
	tl.SetConfigMap(at(90), 2)

	// file-02 is mapped in file version 1 and not in version 2 ((2+3)%5 == 0 is file-03).
	var file02, file03, cm00, nobody *SoakPrincipal
	for _, p := range m.Principals {
		switch p.Name {
		case "file-02":
			file02 = p
		case "file-03":
			file03 = p
		case "cm-00":
			cm00 = p
		case "nobody-00":
			nobody = p
		}
	}
	hot := func(p *SoakPrincipal) *SoakToken {
		return &SoakToken{Kind: SoakHot, Principal: p, AccessKeyID: p.Key.AccessKeyID, MintedAt: t0}
	}
	allowed := func(tok *SoakToken, u SoakUser) SoakAnswer {
		return SoakAnswer{Decided: true, Allowed: true, Username: u.Username, Groups: u.Groups, ARN: tok.Principal.ARN, AccessKeyID: tok.AccessKeyID}
	}
	denied := SoakAnswer{Decided: true}
	check := func(name string, tok *SoakToken, sent, answered time.Time, a SoakAnswer, want Verdict) {
		t.Helper()
		if got := tl.Judge(m, tok, sent, answered, a, w); got != want {
			t.Errorf("%s: unexpected verdict; got %s; want %s", name, got, want)
		}
	}
	u := func(file, cm int, p *SoakPrincipal) SoakUser {
		t.Helper()
		u, ok := m.Expect(file, cm, p)
		if !ok {
			t.Fatalf("BUG in the test: %s is not mapped in %d/%d", p.Name, file, cm)
		}
		return u
	}

	f02 := hot(file02)
	check("mapped, version 1", f02, at(10), at(11), allowed(f02, u(1, 1, file02)), VerdictOK)
	check("stale groups before the edit", f02, at(10), at(11), allowed(f02, u(2, 1, file02)), VerdictWrongUser)
	check("denied while mapped", f02, at(10), at(11), denied, VerdictFalseDeny)
	check("failed", f02, at(10), at(11), SoakAnswer{}, VerdictTransient)
	// file-03 is mapped in version 1, not in version 2: either, within the window after the edit.
	f03 := hot(file03)
	check("old version within the window", f03, at(65), at(66), allowed(f03, u(1, 1, file03)), VerdictOK)
	check("new version within the window", f03, at(65), at(66), denied, VerdictDenied)
	check("old version after the window", f03, at(71), at(72), allowed(f03, u(1, 1, file03)), VerdictFalseAllow)
	check("new version after the window", f03, at(71), at(72), denied, VerdictDenied)
	// The ConfigMap edit changes cm-00's groups, not the file's.
	c00 := hot(cm00)
	check("configmap version 1 before its edit", c00, at(80), at(81), allowed(c00, u(2, 1, cm00)), VerdictOK)
	check("configmap version 1 well after its edit", c00, at(120), at(121), allowed(c00, u(2, 1, cm00)), VerdictWrongUser)
	check("configmap version 2 after its edit", c00, at(120), at(121), allowed(c00, u(2, 2, cm00)), VerdictOK)
	// Someone else's identity, or another key's, is wrong even with the right user.
	other := allowed(c00, u(2, 2, cm00))
	other.ARN = file02.ARN
	check("another ARN", c00, at(120), at(121), other, VerdictWrongUser)

	// Never allowed: unmapped and hostile tokens, whatever the version.
	nb := hot(nobody)
	check("unmapped denied", nb, at(10), at(11), denied, VerdictDenied)
	check("unmapped allowed", nb, at(10), at(11), SoakAnswer{Decided: true, Allowed: true, Username: "nobody-00", ARN: nobody.ARN, AccessKeyID: nb.AccessKeyID}, VerdictFalseAllow)
	forged := &SoakToken{Kind: SoakForged, Principal: file02, AccessKeyID: file02.Key.AccessKeyID, MintedAt: at(10)}
	check("forged token allowed as its principal", forged, at(10), at(11), allowed(forged, u(1, 1, file02)), VerdictFalseAllow)
	check("forged token denied", forged, at(10), at(11), denied, VerdictDenied)

	// Key deletion: a token minted before it may be allowed within the revocation window;
	// after it, or minted after the deletion, never.
	rotor := m.Rotor()
	tl.DeleteKey(at(200), rotor.Key.AccessKeyID)
	old := &SoakToken{Kind: SoakHot, Principal: rotor, AccessKeyID: rotor.Key.AccessKeyID, MintedAt: at(150)}
	ru := u(2, 2, rotor)
	check("old key before the deletion", old, at(190), at(191), allowed(old, ru), VerdictOK)
	check("old key, sent before the deletion, answered after", old, at(199), at(201), denied, VerdictDenied)
	check("old key within the revocation window", old, at(250), at(251), allowed(old, ru), VerdictOK)
	check("old key within the revocation window, denied", old, at(250), at(251), denied, VerdictDenied)
	check("old key after the revocation window", old, at(330), at(331), allowed(old, ru), VerdictFalseAllow)
	late := &SoakToken{Kind: SoakHot, Principal: rotor, AccessKeyID: rotor.Key.AccessKeyID, MintedAt: at(205)}
	check("old key, minted after the deletion", late, at(206), at(207), allowed(late, ru), VerdictFalseAllow)
	newKey := m.RotorKeyFor(1)
	fresh := &SoakToken{Kind: SoakHot, Principal: rotor, AccessKeyID: newKey.AccessKeyID, MintedAt: at(205)}
	check("new key", fresh, at(206), at(207), allowed(fresh, ru), VerdictOK)
	check("new key denied", fresh, at(206), at(207), denied, VerdictFalseDeny)
}

func TestSoakTimelineFaults(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tl := NewSoakTimeline(t0, 0, 0)
	tl.SetFault(at(60), "latency", false)
	tl.SetFault(at(120), "outage", true)
	tl.SetFault(at(180), "none", false)
	for _, c := range []struct {
		from, to int
		want     bool
	}{
		{0, 119, false}, {100, 121, true}, {150, 151, true}, {185, 189, true}, {190, 195, false}, {300, 301, false},
	} {
		if got := tl.Disrupted(at(c.from), at(c.to), 10*time.Second); got != c.want {
			t.Errorf("Disrupted(%d s, %d s): got %v; want %v", c.from, c.to, got, c.want)
		}
	}
	for s, want := range map[int]string{0: "none", 61: "latency", 150: "outage", 400: "none"} {
		if got := tl.Fault(at(s)); got != want {
			t.Errorf("Fault(%d s): got %q; want %q", s, got, want)
		}
	}
}

// The principals are distinct and every kind is there.
func TestSoakModel(t *testing.T) {
	m := NewSoakModel("soak-cluster")
	seen := map[string]bool{}
	kinds := map[SoakKind]int{}
	for _, p := range m.Principals {
		for _, k := range []string{p.ARN, p.Key.AccessKeyID, p.Name} {
			if seen[k] {
				t.Errorf("%q repeats", k)
			}
			seen[k] = true
		}
		kinds[p.Kind]++
		if len(p.Key.AccessKeyID) != 20 || !strings.HasPrefix(p.ARN, "arn:aws:") {
			t.Errorf("unexpected principal %+v", p)
		}
	}
	if len(kinds) != int(numSoakKinds) {
		t.Errorf("unexpected kinds: %v", kinds)
	}
	cfg := m.FakeSTSConfig()
	if n := len(cfg.Users) + len(cfg.Sessions); n != len(m.Principals) || len(cfg.Instances) != soakKindCounts[SoakNode] {
		t.Errorf("unexpected fake STS config: %d users, %d sessions, %d instances", len(cfg.Users), len(cfg.Sessions), len(cfg.Instances))
	}
	if k := m.RotorKeyFor(3); k.AccessKeyID == m.Rotor().Key.AccessKeyID || len(k.AccessKeyID) != 20 {
		t.Errorf("unexpected rotor key %v", k)
	}
}
