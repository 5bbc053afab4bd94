package loadtest

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iamgate/iamgate/fakests"
	"github.com/iamgate/iamgate/sigv4"
)

// The soak's model (`make soak`, e2e/soak_test.go runs it against the real processes): its
// principals, the mapping versions it writes to the mapping file and to the aws-auth
// ConfigMap, and the oracle that judges every answer from the versions in force, the access
// keys deleted and stated propagation windows. Pure, so that tests check it against the
// mapping package and the token validator.

// Accounts of the soak's principals. SoakAccount is never in mapAccounts; SoakMappedAccount
// is, in every other ConfigMap version.
const (
	SoakAccount       = "111122223333"
	SoakMappedAccount = "444455556666"
)

// SoakKind is what decides whether a principal is mapped, and by which source.
type SoakKind uint8

const (
	// SoakFileUser is an IAM user mapped by the mapping file in four versions of five.
	SoakFileUser SoakKind = iota
	// SoakConfigMapUser is an IAM user mapped by the ConfigMap in four versions of five.
	SoakConfigMapUser
	// SoakDevSession is a session of role soak-dev, mapped by the ConfigMap as
	// dev:{{SessionName}} in two versions of three.
	SoakDevSession
	// SoakNode is a session of role soak-node, mapped by the file as
	// system:node:{{EC2PrivateDNSName}} in every version.
	SoakNode
	// SoakAccountUser is an IAM user of SoakMappedAccount, mapped only by mapAccounts.
	SoakAccountUser
	// SoakRotor is an IAM user mapped by the file in every version, whose access key is rotated.
	SoakRotor
	// SoakUnmapped is an IAM user mapped by no version.
	SoakUnmapped
	numSoakKinds
)

var soakKindNames = [numSoakKinds]string{"file-user", "configmap-user", "dev-session", "node", "account-user", "rotor", "unmapped"}

func (k SoakKind) String() string { return soakKindNames[k] }

// How many principals of each kind the model has.
var soakKindCounts = [numSoakKinds]int{20, 20, 4, 3, 4, 1, 5}

// SoakKey is a set of AWS credentials.
type SoakKey struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// SoakPrincipal is one identity of the fake STS. Immutable.
type SoakPrincipal struct {
	Name  string
	Kind  SoakKind
	Index int    // among the principals of its kind
	ARN   string // what STS answers
	// Session is the role session name of a session; InstanceID and PrivateDNSName are a
	// node's instance.
	Session, InstanceID, PrivateDNSName string
	// Key is its first key (the rotor's later keys: SoakModel.RotorKeyFor).
	Key SoakKey
}

// SoakModel is the soak's principals and mapping versions.
type SoakModel struct {
	ClusterID  string
	Principals []*SoakPrincipal
}

// NewSoakModel returns the model's principals for tokens signed for clusterID.
func NewSoakModel(clusterID string) *SoakModel {
	m := &SoakModel{ClusterID: clusterID}
	for kind := range numSoakKinds {
		for i := range soakKindCounts[kind] {
			p := &SoakPrincipal{Kind: kind, Index: i}
			user := func(name, keyTag string) {
				p.Name = name
				p.ARN = "arn:aws:iam::" + SoakAccount + ":user/soak-" + name
				p.Key = SoakKey{AccessKeyID: fmt.Sprintf("AKIASOAK%s%08d", keyTag, i), SecretAccessKey: "soak/" + name + "/secret"}
			}
			session := func(role, name, keyTag string) {
				p.Name, p.Session = name, name
				p.ARN = "arn:aws:sts::" + SoakAccount + ":assumed-role/" + role + "/" + name
				p.Key = SoakKey{AccessKeyID: fmt.Sprintf("ASIASOAK%s%08d", keyTag, i), SecretAccessKey: "soak/" + name + "/secret",
					SessionToken: "SOAKSESSIONTOKEN" + keyTag + strconv.Itoa(i)}
			}
			switch kind {
			case SoakFileUser:
				user(fmt.Sprintf("file-%02d", i), "FILE")
			case SoakConfigMapUser:
				user(fmt.Sprintf("cm-%02d", i), "CMAP")
			case SoakDevSession:
				// An '@' in the session name: {{SessionName}} renders it as '-'.
				session("soak-dev", fmt.Sprintf("dev-%d@soak.example", i), "DEVS")
			case SoakNode:
				p.InstanceID = fmt.Sprintf("i-0aa%014x", i)
				p.PrivateDNSName = fmt.Sprintf("ip-10-9-0-%d.ec2.internal", i+10)
				session("soak-node", p.InstanceID, "NODE")
			case SoakAccountUser:
				user(fmt.Sprintf("acct-%02d", i), "ACCT")
				p.ARN = "arn:aws:iam::" + SoakMappedAccount + ":user/soak-" + p.Name
			case SoakRotor:
				user("rotor", "ROTR")
				p.Key = m.RotorKeyFor(0)
			case SoakUnmapped:
				user(fmt.Sprintf("nobody-%02d", i), "NONE")
			}
			m.Principals = append(m.Principals, p)
		}
	}
	return m
}

// RotorKeyFor is the n-th access key of the rotor (0 is its key at the start).
func (m *SoakModel) RotorKeyFor(n int) SoakKey {
	return SoakKey{AccessKeyID: fmt.Sprintf("AKIASOAKROTR%08d", n), SecretAccessKey: fmt.Sprintf("soak/rotor/secret/%d", n)}
}

// Rotor is the principal whose key is rotated.
func (m *SoakModel) Rotor() *SoakPrincipal {
	for _, p := range m.Principals {
		if p.Kind == SoakRotor {
			return p
		}
	}
	panic("BUG: the soak model has no rotor")
}

// FakeSTSConfig is the fake STS configuration that knows every principal (the rotor with its
// first key) and the nodes' instances.
func (m *SoakModel) FakeSTSConfig() fakests.Config {
	var cfg fakests.Config
	for _, p := range m.Principals {
		if p.Key.SessionToken == "" {
			cfg.Users = append(cfg.Users, fakests.User{ARN: p.ARN, AccessKeyID: p.Key.AccessKeyID, SecretAccessKey: p.Key.SecretAccessKey})
			continue
		}
		cfg.Sessions = append(cfg.Sessions, fakests.Session{ARN: p.ARN, AccessKeyID: p.Key.AccessKeyID,
			SecretAccessKey: p.Key.SecretAccessKey, SessionToken: p.Key.SessionToken})
		if p.InstanceID != "" {
			cfg.Instances = append(cfg.Instances, fakests.Instance{InstanceID: p.InstanceID, PrivateDNSName: p.PrivateDNSName, OwnerID: SoakAccount})
		}
	}
	return cfg
}

// --- mapping versions ---

// SoakUser is a mapped Kubernetes user (groups as iamgate renders them, without
// system:authenticated).
type SoakUser struct {
	Username string
	Groups   []string
}

// fileRefused is the index of the file user whose record version v writes with an unknown
// placeholder (refused: that user is denied), or -1.
func fileRefused(v int) int {
	if v%4 == 3 {
		return v * 7 % soakKindCounts[SoakFileUser]
	}
	return -1
}

// mappedInVersion: a user of index i is mapped in four versions of five, a different fifth
// left out each time.
func mappedInVersion(v, i int) bool { return (i+v)%5 != 0 }

// Expect is what p must be mapped to under file version file and ConfigMap version cm; false
// means denied.
func (m *SoakModel) Expect(file, cm int, p *SoakPrincipal) (SoakUser, bool) {
	fileGroup, cmGroup := fmt.Sprintf("soak:file-v%d", file), fmt.Sprintf("soak:cm-v%d", cm)
	switch p.Kind {
	case SoakFileUser:
		if mappedInVersion(file, p.Index) && fileRefused(file) != p.Index {
			return SoakUser{p.Name, []string{"soak:file", fileGroup}}, true
		}
	case SoakRotor:
		return SoakUser{"rotor", []string{"soak:file", fileGroup}}, true
	case SoakNode:
		return SoakUser{"system:node:" + p.PrivateDNSName, []string{"system:nodes", fileGroup}}, true
	case SoakConfigMapUser:
		if mappedInVersion(cm, p.Index) {
			return SoakUser{p.Name, []string{"soak:cm", cmGroup}}, true
		}
	case SoakDevSession:
		if cm%3 != 2 {
			return SoakUser{"dev:" + strings.ReplaceAll(p.Session, "@", "-"), []string{"soak:dev", cmGroup}}, true
		}
	case SoakAccountUser:
		if cm%2 == 0 {
			return SoakUser{p.ARN, nil}, true // mapAccounts: the canonical ARN, no group
		}
	}
	return SoakUser{}, false
}

// yamlRecord writes one aws-auth record; every value double-quoted (a username starting with
// "{{" would otherwise be a YAML flow mapping).
func yamlRecord(b *strings.Builder, indent, arnKey, arn, username string, groups ...string) {
	q := strconv.Quote
	fmt.Fprintf(b, "%s- %s: %s\n%s  username: %s\n", indent, arnKey, q(arn), indent, q(username))
	if len(groups) > 0 {
		var gs []string
		for _, g := range groups {
			gs = append(gs, q(g))
		}
		fmt.Fprintf(b, "%s  groups: [%s]\n", indent, strings.Join(gs, ", "))
	}
}

func (m *SoakModel) of(kind SoakKind) []*SoakPrincipal {
	var out []*SoakPrincipal
	for _, p := range m.Principals {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// FileDocument is version v of the mapping file: a plain mapping document with the node role,
// the rotor and the file users, one of them refused in every fourth version.
func (m *SoakModel) FileDocument(v int) []byte {
	g := fmt.Sprintf("soak:file-v%d", v)
	var b strings.Builder
	fmt.Fprintf(&b, "# iamgate soak: mapping file version %d\nmapRoles:\n", v)
	yamlRecord(&b, "  ", "rolearn", "arn:aws:iam::"+SoakAccount+":role/soak-node", "system:node:{{EC2PrivateDNSName}}", "system:nodes", g)
	b.WriteString("mapUsers:\n")
	rotor := m.Rotor()
	yamlRecord(&b, "  ", "userarn", rotor.ARN, "rotor", "soak:file", g)
	for _, p := range m.of(SoakFileUser) {
		switch {
		case fileRefused(v) == p.Index:
			yamlRecord(&b, "  ", "userarn", p.ARN, "{{NoSuchPlaceholder}}", "soak:file", g)
		case mappedInVersion(v, p.Index):
			yamlRecord(&b, "  ", "userarn", p.ARN, p.Name, "soak:file", g)
		}
	}
	return []byte(b.String())
}

// SoakGarbageFile is a mapping file that is not YAML: iamgate refuses it whole and keeps the
// version it had.
var SoakGarbageFile = []byte("mapUsers: [\n  - {userarn: \"arn:aws:iam::" + SoakAccount + ":user/soak-file-00\n\t")

// ConfigMapData is version v of the aws-auth ConfigMap's data: the dev role in two versions of
// three, the ConfigMap users, and mapAccounts in every other version.
func (m *SoakModel) ConfigMapData(v int) map[string]string {
	g := fmt.Sprintf("soak:cm-v%d", v)
	data := map[string]string{}
	if v%3 != 2 {
		var b strings.Builder
		yamlRecord(&b, "", "rolearn", "arn:aws:iam::"+SoakAccount+":role/soak-dev", "dev:{{SessionName}}", "soak:dev", g)
		data["mapRoles"] = b.String()
	}
	var b strings.Builder
	for _, p := range m.of(SoakConfigMapUser) {
		if mappedInVersion(v, p.Index) {
			yamlRecord(&b, "", "userarn", p.ARN, p.Name, "soak:cm", g)
		}
	}
	data["mapUsers"] = b.String()
	if v%2 == 0 {
		data["mapAccounts"] = "- " + strconv.Quote(SoakMappedAccount) + "\n"
	}
	return data
}

// --- tokens ---

// SoakTokenKind is how a token was made, and so what it deserves.
type SoakTokenKind uint8

const (
	// SoakHot is a principal's current token, sent many times (renewed every few minutes).
	SoakHot SoakTokenKind = iota
	// SoakCold is a token sent once: one STS call each.
	SoakCold
	// SoakMalformed is a valid token mangled so that iamgate rejects it without calling STS.
	SoakMalformed
	// SoakForged is signed with a wrong secret: STS answers SignatureDoesNotMatch.
	SoakForged
	// SoakOtherCluster is signed for another cluster ID: STS refuses it with iamgate's.
	SoakOtherCluster
	// SoakUnknownKey is signed with an access key STS does not know.
	SoakUnknownKey
	// SoakStaleKey is signed, after its deletion, with a rotated-away key of the rotor.
	SoakStaleKey
	NumSoakTokenKinds
)

var soakTokenKindNames = [NumSoakTokenKinds]string{"hot", "cold", "malformed", "forged", "other-cluster", "unknown-key", "stale-key"}

func (k SoakTokenKind) String() string { return soakTokenKindNames[k] }

// Hostile reports whether every token of kind k must be denied.
func (k SoakTokenKind) Hostile() bool { return k >= SoakMalformed }

// SoakToken is one token and what it deserves.
type SoakToken struct {
	Token string
	Kind  SoakTokenKind
	// Principal is the identity whose key signed it.
	Principal   *SoakPrincipal
	AccessKeyID string
	MintedAt    time.Time
}

// Mint signs a token for m's cluster (or clusterID when not empty) with key at at; a
// non-empty wrongSecret signs with it instead of the key's secret.
func (m *SoakModel) Mint(key SoakKey, at time.Time, clusterID, wrongSecret string) (string, error) {
	if clusterID == "" {
		clusterID = m.ClusterID
	}
	secret := key.SecretAccessKey
	if wrongSecret != "" {
		secret = wrongSecret
	}
	return sigv4.Presign(context.Background(), sigv4.PresignInput{
		ClusterID:   clusterID,
		Credentials: aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: secret, SessionToken: key.SessionToken},
		Time:        at,
	})
}

// SoakMalformedKinds is the number of ways SoakMangle breaks a token.
const SoakMalformedKinds = 12

// SoakMangle returns the i-th (mod SoakMalformedKinds) mangled form of a valid token: each one
// iamgate must reject locally (userinfo, a port or a foreign host, plain http, a repeated key in
// another case, another action, the cluster ID not signed, an expired date, a fragment, not
// base64url, another prefix, too long).
func SoakMangle(valid string, i int) string {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(valid, "k8s-aws-v1."))
	if err != nil {
		return "k8s-aws-v1.not*base64url!"
	}
	u := string(raw)
	enc := func(s string) string { return "k8s-aws-v1." + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	host := "sts.us-east-1.amazonaws.com"
	switch i % SoakMalformedKinds {
	case 0:
		return enc(strings.Replace(u, "https://", "https://attacker:pw@", 1))
	case 1:
		return enc(strings.Replace(u, host+"/", host+":8443/", 1))
	case 2:
		return enc(strings.Replace(u, host+"/", host+".attacker.example/", 1))
	case 3:
		return enc(strings.Replace(u, "https://", "http://", 1))
	case 4:
		return enc(u + "&x-amz-signedheaders=host")
	case 5:
		return enc(strings.Replace(u, "Action=GetCallerIdentity", "Action=AssumeRole", 1))
	case 6:
		return enc(strings.Replace(u, "SignedHeaders=host%3Bx-k8s-aws-id", "SignedHeaders=host", 1))
	case 7:
		j := strings.Index(u, "X-Amz-Date=")
		if j < 0 {
			return enc(u + "#no-date")
		}
		return enc(u[:j] + "X-Amz-Date=20200101T000000Z" + u[j+len("X-Amz-Date=yyyymmddThhmmssZ"):])
	case 8:
		return enc(u + "#fragment")
	case 9:
		return "k8s-aws-v1.not*base64url!"
	case 10:
		return "k8s-aws-v2." + strings.TrimPrefix(valid, "k8s-aws-v1.")
	default:
		return "k8s-aws-v1." + strings.Repeat("A", 17<<10)
	}
}

// --- the oracle ---

// SoakWindows are the oracle's tolerances, stated in the report.
type SoakWindows struct {
	// Mapping: an answer may follow a mapping version replaced at most this long before the
	// request was sent (iamgate's reload, plus kube-apiserver's cache TTL on that path).
	Mapping time.Duration
	// Revocation: a token of a deleted key, minted before the deletion, may still be allowed
	// this long after it (iamgate's identity cache TTL, plus kube-apiserver's on that path).
	Revocation time.Duration
}

// SoakAnswer is what one review said.
type SoakAnswer struct {
	// Decided: allowed or denied; otherwise the review failed (429, 5xx, no answer).
	Decided bool
	Allowed bool
	// The allowed user, and the extra arn and accessKeyId it came with.
	Username    string
	Groups      []string // without system:authenticated
	ARN         string
	AccessKeyID string
}

type soakVersion struct {
	at       time.Time
	file, cm int
}

type soakFault struct {
	at         time.Time
	name       string
	disruptive bool
}

// SoakTimeline is what the soak did when: mapping versions written, access keys deleted,
// faults set. Safe for concurrent use.
type SoakTimeline struct {
	mu       sync.RWMutex
	versions []soakVersion
	deleted  map[string]time.Time
	faults   []soakFault
}

// NewSoakTimeline starts at file version file and ConfigMap version cm, with no fault.
func NewSoakTimeline(at time.Time, file, cm int) *SoakTimeline {
	return &SoakTimeline{versions: []soakVersion{{at, file, cm}}, deleted: map[string]time.Time{},
		faults: []soakFault{{at: at, name: "none"}}}
}

func (tl *SoakTimeline) setVersion(at time.Time, file, cm int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	last := tl.versions[len(tl.versions)-1]
	if file < 0 {
		file = last.file
	}
	if cm < 0 {
		cm = last.cm
	}
	tl.versions = append(tl.versions, soakVersion{at, file, cm})
}

// SetFile records that file version v was written at at (when the write returned).
func (tl *SoakTimeline) SetFile(at time.Time, v int) { tl.setVersion(at, v, -1) }

// SetConfigMap records that ConfigMap version v was written at at.
func (tl *SoakTimeline) SetConfigMap(at time.Time, v int) { tl.setVersion(at, -1, v) }

// Current returns the versions written last.
func (tl *SoakTimeline) Current() (file, cm int) {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	last := tl.versions[len(tl.versions)-1]
	return last.file, last.cm
}

// DeleteKey records that access key id was deleted at STS at at.
func (tl *SoakTimeline) DeleteKey(at time.Time, id string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.deleted[id] = at
}

// KeyDeleted reports when access key id was deleted, if it was.
func (tl *SoakTimeline) KeyDeleted(id string) (time.Time, bool) {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	at, ok := tl.deleted[id]
	return at, ok
}

// SetFault records the fault set at at; disruptive faults may make reviews fail.
func (tl *SoakTimeline) SetFault(at time.Time, name string, disruptive bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.faults = append(tl.faults, soakFault{at, name, disruptive})
}

// Fault is the name of the fault set at t.
func (tl *SoakTimeline) Fault(t time.Time) string {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	name := tl.faults[0].name
	for _, f := range tl.faults {
		if f.at.After(t) {
			break
		}
		name = f.name
	}
	return name
}

// Disrupted reports whether a disruptive fault was in force, or had ended less than tail
// before, at any moment of [from, to]. The tail covers the reviews a fault still fails after it
// is cleared: an STS call that hangs until iamgate's -sts.timeout, kube-apiserver's retries,
// and the later requests that join either.
func (tl *SoakTimeline) Disrupted(from, to time.Time, tail time.Duration) bool {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	for i, f := range tl.faults {
		if !f.disruptive || f.at.After(to) {
			continue
		}
		if i+1 == len(tl.faults) || tl.faults[i+1].at.Add(tail).After(from) {
			return true
		}
	}
	return false
}

// Admissible returns the users tok may be answered as, and whether a denial is right, for a
// review sent at sent and answered at answered.
func (tl *SoakTimeline) Admissible(m *SoakModel, tok *SoakToken, sent, answered time.Time, w SoakWindows) (allow []SoakUser, denyOK bool) {
	if tok.Kind.Hostile() || tok.Principal == nil {
		return nil, true
	}
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	from := sent.Add(-w.Mapping)
	for i, v := range tl.versions {
		replaced := i+1 < len(tl.versions) && !tl.versions[i+1].at.After(from)
		if replaced || v.at.After(answered) {
			continue // out of force before the window, or written after the answer
		}
		if u, ok := m.Expect(v.file, v.cm, tok.Principal); ok {
			allow = append(allow, u)
		} else {
			denyOK = true
		}
	}
	if d, ok := tl.deleted[tok.AccessKeyID]; ok && d.Before(answered) {
		denyOK = true
		verifiedBefore := sent.Before(d) || (tok.MintedAt.Before(d) && answered.Before(d.Add(w.Revocation)))
		if !verifiedBefore {
			allow = nil
		}
	}
	return allow, denyOK
}

// Judge is the oracle: the verdict on answer a to a review of tok sent at sent and answered
// at answered. A token whose every admissible expectation is a denial (hostile, unmapped,
// revoked) is never allowed: such an answer is VerdictFalseAllow, whatever the windows.
func (tl *SoakTimeline) Judge(m *SoakModel, tok *SoakToken, sent, answered time.Time, a SoakAnswer, w SoakWindows) Verdict {
	if !a.Decided {
		return VerdictTransient
	}
	allow, denyOK := tl.Admissible(m, tok, sent, answered, w)
	if !a.Allowed {
		if denyOK {
			return VerdictDenied
		}
		return VerdictFalseDeny
	}
	if len(allow) == 0 {
		return VerdictFalseAllow
	}
	for _, u := range allow {
		if u.Username == a.Username && slices.Equal(u.Groups, a.Groups) && a.ARN == tok.Principal.ARN && a.AccessKeyID == tok.AccessKeyID {
			return VerdictOK
		}
	}
	return VerdictWrongUser
}
