package fakests

import (
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iamgate/iamgate/sigv4/signature"
)

// principal is one access key and the identity it authenticates as. It is immutable once in
// the store.
type principal struct {
	accessKeyID  string
	secret       string
	sessionToken string    // empty for long-term keys
	expiration   time.Time // zero: never expires
	issued       bool      // issued by AssumeRole (counts against Options.MaxSessions)

	arn       string
	userID    string
	account   string
	partition string
	// canonicalARN is the ARN trust policies match: an assumed role's role ARN (no path).
	canonicalARN string

	// callerIdentity is the GetCallerIdentity answer, JSON and XML, around the request ID.
	callerIdentity answerTemplate

	// key caches the signing key of the last credential scope used (it changes daily).
	key atomic.Pointer[scopedKey]
}

// scopedKey is a SigV4 signing key and the credential scope it was derived for.
type scopedKey struct {
	date, region, service string
	key                   [32]byte
}

// signingKey returns the signing key of p for a scope, derived once per scope.
func (p *principal) signingKey(date, region, service string) [32]byte {
	if k := p.key.Load(); k != nil && k.date == date && k.region == region && k.service == service {
		return k.key
	}
	k := &scopedKey{date: date, region: region, service: service, key: signature.DeriveSigningKey(p.secret, date, region, service)}
	p.key.Store(k)
	return k.key
}

// roleEntry is a configured role.
type roleEntry struct {
	Role
	account, partition, name string
	maxDuration              time.Duration
	trust                    map[string]bool // normalised trust entries
}

// store holds every principal, role and instance. All fields are guarded by mu.
type store struct {
	mu        sync.RWMutex
	keys      map[string]*principal // by access key ID
	roles     map[string]*roleEntry // by role ARN, also by its path-less form
	instances map[string]Instance   // by instance ID
	userIDs   map[string]string     // unique ID of each IAM user with a long-term key, by ARN
	issued    int                   // principals with issued == true
}

func newStore() *store {
	return &store{keys: map[string]*principal{}, roles: map[string]*roleEntry{}, instances: map[string]Instance{}, userIDs: map[string]string{}}
}

func (st *store) lookup(accessKeyID string) *principal {
	st.mu.RLock()
	p := st.keys[accessKeyID]
	st.mu.RUnlock()
	return p
}

// userID returns the unique ID of the IAM user arnText, or "" if it has no key yet.
func (st *store) userID(arnText string) string {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.userIDs[arnText]
}

func (st *store) put(p *principal) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.keys[p.accessKeyID]; ok {
		return fmt.Errorf("cannot add access key ID %q: it exists", p.accessKeyID)
	}
	st.keys[p.accessKeyID] = p
	if p.issued {
		st.issued++
	}
	if p.sessionToken == "" {
		st.userIDs[p.arn] = p.userID
	}
	return nil
}

// putIssued adds credentials issued by AssumeRole, first dropping expired issued credentials
// when the store holds max of them; it reports false when it is still full.
func (st *store) putIssued(p *principal, max int, now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.issued >= max {
		for k, q := range st.keys {
			if q.issued && now.After(q.expiration) {
				delete(st.keys, k)
				st.issued--
			}
		}
		if st.issued >= max {
			return false
		}
	}
	st.keys[p.accessKeyID] = p
	st.issued++
	return true
}

func (st *store) role(roleARN string) *roleEntry {
	st.mu.RLock()
	r := st.roles[roleARN]
	st.mu.RUnlock()
	return r
}

func (st *store) instance(id string) (Instance, bool) {
	st.mu.RLock()
	in, ok := st.instances[id]
	st.mu.RUnlock()
	return in, ok
}

func (st *store) allInstances() []Instance {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]Instance, 0, len(st.instances))
	for _, in := range st.instances {
		out = append(out, in)
	}
	return out
}

// newPrincipal checks an identity and precomputes its answers.
func newPrincipal(arnText, userID, accessKeyID, secret, sessionToken string) (*principal, error) {
	a, err := parseARN(arnText)
	if err != nil {
		return nil, err
	}
	if err := checkAccessKey(accessKeyID, secret); err != nil {
		return nil, err
	}
	p := &principal{
		accessKeyID: accessKeyID, secret: secret, sessionToken: sessionToken,
		arn: arnText, userID: userID, account: a.account, partition: a.partition,
		canonicalARN: canonicalARN(a),
	}
	p.callerIdentity = callerIdentityAnswer(p)
	return p, nil
}

// canonicalARN is the ARN trust policies match: assumed-role/R/S → iam role/R; a role or user
// keeps only its name (trust policies name roles and users without their path).
func canonicalARN(a arn) string {
	kind, rest, _ := strings.Cut(a.resource, "/")
	switch {
	case a.service == "sts" && kind == "assumed-role":
		role, _, _ := strings.Cut(rest, "/")
		return "arn:" + a.partition + ":iam::" + a.account + ":role/" + role
	case a.service == "iam" && (kind == "role" || kind == "user"):
		return "arn:" + a.partition + ":iam::" + a.account + ":" + kind + "/" + rest[strings.LastIndexByte(rest, '/')+1:]
	}
	return "arn:" + a.partition + ":" + a.service + "::" + a.account + ":" + a.resource
}

// AddUser adds an IAM user with its access key. It is safe for concurrent use.
func (s *Server) AddUser(u User) error {
	a, err := parseARN(u.ARN)
	if err != nil {
		return fmt.Errorf("cannot add user: %w", err)
	}
	if a.service != "iam" || !strings.HasPrefix(a.resource, "user/") {
		return fmt.Errorf("cannot add user %q: the ARN is not an IAM user", u.ARN)
	}
	if u.Account != "" && u.Account != a.account {
		return fmt.Errorf("cannot add user %q: account %q is not the ARN's", u.ARN, u.Account)
	}
	if u.UserID == "" {
		// Another key of a known user keeps its unique ID, as in IAM.
		u.UserID = s.store.userID(u.ARN)
	}
	if u.UserID == "" {
		u.UserID = derivedID("AIDA", u.ARN)
	}
	p, err := newPrincipal(u.ARN, u.UserID, u.AccessKeyID, u.SecretAccessKey, "")
	if err != nil {
		return fmt.Errorf("cannot add user %q: %w", u.ARN, err)
	}
	return s.store.put(p)
}

// DeleteAccessKey removes an access key, as IAM's DeleteAccessKey does: requests signed with
// it get InvalidClientTokenId from then on. It is safe for concurrent use.
func (s *Server) DeleteAccessKey(accessKeyID string) error {
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	p, ok := st.keys[accessKeyID]
	if !ok {
		return fmt.Errorf("cannot delete access key ID %q: it does not exist", accessKeyID)
	}
	delete(st.keys, accessKeyID)
	if p.issued {
		st.issued--
	}
	return nil
}

// AddSession adds fixed temporary credentials (access key, secret, session token) for an
// identity, usually an assumed role. It is safe for concurrent use.
func (s *Server) AddSession(ss Session) error {
	if ss.SessionToken == "" {
		return fmt.Errorf("cannot add session %q: the session token is empty", ss.ARN)
	}
	if ss.UserID == "" {
		ss.UserID = sessionUserID(ss.ARN)
	}
	p, err := newPrincipal(ss.ARN, ss.UserID, ss.AccessKeyID, ss.SecretAccessKey, ss.SessionToken)
	if err != nil {
		return fmt.Errorf("cannot add session %q: %w", ss.ARN, err)
	}
	p.expiration = ss.Expiration
	return s.store.put(p)
}

// sessionUserID derives AROA…:<session> for an assumed-role ARN, else an AIDA… ID.
func sessionUserID(arnText string) string {
	a, err := parseARN(arnText)
	if err == nil {
		if rest, ok := strings.CutPrefix(a.resource, "assumed-role/"); ok {
			role, session, _ := strings.Cut(rest, "/")
			return derivedID("AROA", "arn:"+a.partition+":iam::"+a.account+":role/"+role) + ":" + session
		}
	}
	return derivedID("AIDA", arnText)
}

// AddRole adds a role that AssumeRole can issue credentials for. It is safe for concurrent use.
func (s *Server) AddRole(r Role) error {
	a, err := parseARN(r.ARN)
	if err != nil {
		return fmt.Errorf("cannot add role: %w", err)
	}
	pathName, ok := strings.CutPrefix(a.resource, "role/")
	if a.service != "iam" || !ok || pathName == "" {
		return fmt.Errorf("cannot add role %q: the ARN is not an IAM role", r.ARN)
	}
	e := &roleEntry{Role: r, account: a.account, partition: a.partition, trust: map[string]bool{}}
	e.name = pathName[strings.LastIndexByte(pathName, '/')+1:]
	if e.RoleID == "" {
		e.RoleID = derivedID("AROA", "arn:"+a.partition+":iam::"+a.account+":role/"+e.name)
	}
	e.maxDuration = time.Duration(r.MaxSessionDuration)
	if e.maxDuration == 0 {
		e.maxDuration = time.Hour
	}
	if e.maxDuration < time.Hour || e.maxDuration > 12*time.Hour {
		return fmt.Errorf("cannot add role %q: maxSessionDuration %s is outside 1h..12h", r.ARN, e.maxDuration)
	}
	for _, t := range r.Trust {
		if t == "*" {
			e.trust[t] = true
			continue
		}
		ta, err := parseARN(t)
		if err != nil {
			return fmt.Errorf("cannot add role %q: trust: %w", r.ARN, err)
		}
		e.trust[canonicalARN(ta)] = true
	}
	pathless := "arn:" + a.partition + ":iam::" + a.account + ":role/" + e.name
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if _, ok := s.store.roles[r.ARN]; ok {
		return fmt.Errorf("cannot add role %q: it exists", r.ARN)
	}
	s.store.roles[r.ARN] = e
	s.store.roles[pathless] = e
	return nil
}

// trusts reports whether the role may be assumed by the caller.
func (e *roleEntry) trusts(caller *principal) bool {
	return e.trust["*"] || e.trust[caller.canonicalARN] ||
		e.trust["arn:"+caller.partition+":iam::"+caller.account+":root"]
}

// AddInstance adds an EC2 instance for DescribeInstances. It is safe for concurrent use.
func (s *Server) AddInstance(in Instance) error {
	if !checkInstanceID(in.InstanceID) {
		return fmt.Errorf("cannot add instance %q: want i- and 8 or 17 lower-case hex digits", in.InstanceID)
	}
	if in.PrivateDNSName == "" {
		return fmt.Errorf("cannot add instance %q: privateDnsName is empty", in.InstanceID)
	}
	if in.OwnerID == "" {
		in.OwnerID = "123456789012"
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	s.store.instances[in.InstanceID] = in
	return nil
}

// randomString returns n characters drawn from alphabet with crypto/rand.
func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
