package deploy_test

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

const (
	namespace          = "kube-system"
	awsAuthName        = "aws-auth"
	controlPlaneLabel  = "node-role.kubernetes.io/control-plane"
	webhookPath        = "/authenticate"
	loopbackWebhookURL = "https://127.0.0.1:21362/authenticate"
)

// document is one YAML document of one file in deploy/.
type document struct {
	where string // "file.yaml#2", for failure messages
	obj   any    // the strictly decoded typed object
}

// manifests holds every decoded document of deploy/*.yaml by type.
type manifests struct {
	docs         []document
	daemonSets   map[string]*appsv1.DaemonSet // by file name
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	sas          []*corev1.ServiceAccount
	roles        []*rbacv1.Role
	roleBindings []*rbacv1.RoleBinding
	secrets      []*corev1.Secret
	configMaps   []*corev1.ConfigMap
	kubeconfigs  map[string][]byte // by file name: kind Config, for clientcmd
}

// newObject returns an empty typed object for apiVersion and kind, or nil for a kind that has no
// business in deploy/ (ClusterRole, for one).
func newObject(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "v1 Service":
		return &corev1.Service{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Config":
		return &clientcmdv1.Config{}
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocuments splits a YAML stream on `---` lines and drops documents that hold only
// comments and blank lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(data), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// loadManifests decodes every document of deploy/*.yaml strictly into its typed object: an
// unknown or misspelt field, a duplicate key or a wrong type fails the test.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatalf("cannot list deploy/*.yaml: %s", err)
	}
	if len(files) == 0 {
		t.Fatalf("unexpected number of manifests; got 0; want at least 1")
	}
	m := &manifests{daemonSets: map[string]*appsv1.DaemonSet{}, kubeconfigs: map[string][]byte{}}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("cannot read %s: %s", file, err)
		}
		for i, raw := range splitDocuments(data) {
			where := file + "#" + strconv.Itoa(i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(raw, &tm); err != nil {
				t.Errorf("cannot read apiVersion and kind of %s: %s", where, err)
				continue
			}
			obj := newObject(tm.APIVersion, tm.Kind)
			if obj == nil {
				t.Errorf("unexpected object in %s; got %q; want one of the kinds in newObject", where, tm.APIVersion+" "+tm.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict(raw, obj); err != nil {
				t.Errorf("unexpected strict decode error in %s (%s); got %q; want none", where, tm.Kind, err)
				continue
			}
			m.docs = append(m.docs, document{where: where, obj: obj})
			switch o := obj.(type) {
			case *appsv1.DaemonSet:
				m.daemonSets[file] = o
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *corev1.Service:
				m.services = append(m.services, o)
			case *policyv1.PodDisruptionBudget:
				m.pdbs = append(m.pdbs, o)
			case *corev1.ServiceAccount:
				m.sas = append(m.sas, o)
			case *rbacv1.Role:
				m.roles = append(m.roles, o)
			case *rbacv1.RoleBinding:
				m.roleBindings = append(m.roleBindings, o)
			case *corev1.Secret:
				m.secrets = append(m.secrets, o)
			case *corev1.ConfigMap:
				m.configMaps = append(m.configMaps, o)
			case *clientcmdv1.Config:
				m.kubeconfigs[file] = raw
			}
		}
	}
	return m
}

// TestStrictDecodeCatchesUnknownFields protects the premise of every other test here: a
// misspelt field must fail, not vanish.
func TestStrictDecodeCatchesUnknownFields(t *testing.T) {
	var ds appsv1.DaemonSet
	err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n"), &ds)
	if err == nil {
		t.Fatalf("unexpected strict decode result for a misspelt field; got no error; want an error")
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	want := map[string]bool{"daemonset.yaml": true, "daemonset-hostpath.yaml": true}
	for file := range want {
		if m.daemonSets[file] == nil {
			t.Errorf("unexpected DaemonSet in %s; got none; want one", file)
		}
	}
	f := func(what string, got, wantN int) {
		t.Helper()
		if got != wantN {
			t.Errorf("unexpected number of %s; got %d; want %d", what, got, wantN)
		}
	}
	f("Deployments", len(m.deployments), 1)
	f("Services", len(m.services), 1)
	f("PodDisruptionBudgets", len(m.pdbs), 1)
	f("ServiceAccounts", len(m.sas), 1)
	f("Roles", len(m.roles), 1)
	f("RoleBindings", len(m.roleBindings), 1)
	f("Secrets", len(m.secrets), 1)
	f("ConfigMaps", len(m.configMaps), 1)
	f("webhook kubeconfigs", len(m.kubeconfigs), 1)

	// Every Kubernetes object lives in kube-system and has a name.
	for _, d := range m.docs {
		o, ok := d.obj.(metav1.Object)
		if !ok {
			continue // the webhook kubeconfig
		}
		if o.GetNamespace() != namespace {
			t.Errorf("unexpected namespace in %s; got %q; want %q", d.where, o.GetNamespace(), namespace)
		}
		if o.GetName() == "" {
			t.Errorf("unexpected empty name in %s", d.where)
		}
	}
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

func octal(p *int32) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%#o", *p)
}

// yamlString renders v for comparison and failure messages.
func yamlString(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestWebhookKubeconfig loads the webhook kubeconfig the way kube-apiserver does (client-go's
// clientcmd) and checks that it sends TokenReviews to the DaemonSet's loopback /authenticate URL,
// trusting a CA and presenting no credentials.
func TestWebhookKubeconfig(t *testing.T) {
	m := loadManifests(t)
	data, ok := m.kubeconfigs["webhook-kubeconfig.yaml"]
	if !ok {
		t.Fatalf("unexpected webhook kubeconfig; got none; want webhook-kubeconfig.yaml")
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatalf("cannot load webhook-kubeconfig.yaml with clientcmd: %s", err)
	}
	if err := clientcmd.Validate(*cfg); err != nil {
		t.Errorf("unexpected validation error in webhook-kubeconfig.yaml; got %q; want none", err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		t.Fatalf("unexpected current-context; got %q; want a defined context", cfg.CurrentContext)
	}
	cluster, ok := cfg.Clusters[ctx.Cluster]
	if !ok {
		t.Fatalf("unexpected context cluster; got %q; want a defined cluster", ctx.Cluster)
	}
	if cluster.Server != loopbackWebhookURL {
		t.Errorf("unexpected server; got %q; want %q", cluster.Server, loopbackWebhookURL)
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Path != webhookPath || u.RawQuery != "" {
		t.Errorf("unexpected server path; got %q; want %q and no query (kube-apiserver appends ?timeout)", cluster.Server, webhookPath)
	}
	if len(cluster.CertificateAuthorityData) == 0 || cluster.InsecureSkipTLSVerify {
		t.Errorf("unexpected TLS trust; got %d bytes of CA data, insecure=%v; want CA data and verification", len(cluster.CertificateAuthorityData), cluster.InsecureSkipTLSVerify)
	}
	user := cfg.AuthInfos[ctx.AuthInfo]
	if user == nil || user.Token != "" || user.TokenFile != "" || len(user.ClientCertificateData) != 0 || user.ClientCertificate != "" || user.Exec != nil {
		t.Errorf("unexpected user %q; got %+v; want an empty user", ctx.AuthInfo, user)
	}
}

// TestTLSSecretTemplate checks the Secret template has the shape the workloads mount.
func TestTLSSecretTemplate(t *testing.T) {
	m := loadManifests(t)
	for _, s := range m.secrets {
		if s.Type != corev1.SecretTypeTLS {
			t.Errorf("unexpected type of Secret/%s; got %q; want %q", s.Name, s.Type, corev1.SecretTypeTLS)
		}
		for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if s.StringData[key] == "" && len(s.Data[key]) == 0 {
				t.Errorf("unexpected keys of Secret/%s; got no %q; want %q and %q", s.Name, key, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
			}
		}
	}
}

// mapRecord is one record of mapRoles or mapUsers, as aws-auth writes it. The mapping package's
// own parser is the reference; this is enough to check the example's shape.
type mapRecord struct {
	RoleARN  string   `json:"rolearn,omitempty"`
	UserARN  string   `json:"userarn,omitempty"`
	Username string   `json:"username"`
	Groups   []string `json:"groups,omitempty"`
}

// TestAWSAuthExample checks the example aws-auth: a node role mapped to
// system:node:{{EC2PrivateDNSName}} in system:bootstrappers and system:nodes, an IAM user in
// system:masters, and only the templates iamgate knows.
func TestAWSAuthExample(t *testing.T) {
	m := loadManifests(t)
	if len(m.configMaps) != 1 || m.configMaps[0].Name != awsAuthName {
		t.Fatalf("unexpected ConfigMaps; got %d; want one named %q", len(m.configMaps), awsAuthName)
	}
	cm := m.configMaps[0]
	for key := range cm.Data {
		if key != "mapRoles" && key != "mapUsers" && key != "mapAccounts" {
			t.Errorf("unexpected aws-auth key; got %q; want mapRoles, mapUsers or mapAccounts (case-sensitive)", key)
		}
	}
	records := func(key string) []mapRecord {
		var rs []mapRecord
		if err := yaml.UnmarshalStrict([]byte(cm.Data[key]), &rs); err != nil {
			t.Fatalf("cannot decode aws-auth %s: %s", key, err)
		}
		return rs
	}
	roles, users := records("mapRoles"), records("mapUsers")
	template := regexp.MustCompile(`\{\{[^}]*\}\}`)
	known := []string{"{{AccountID}}", "{{SessionName}}", "{{SessionNameRaw}}", "{{AccessKeyID}}", "{{EC2PrivateDNSName}}"}
	node, admin := false, false
	for _, r := range append(slices.Clone(roles), users...) {
		for _, s := range append([]string{r.Username}, r.Groups...) {
			for _, tmpl := range template.FindAllString(s, -1) {
				if !slices.Contains(known, tmpl) {
					t.Errorf("unexpected template in aws-auth; got %q; want one of %q", tmpl, known)
				}
			}
		}
		if r.RoleARN != "" && r.Username == "system:node:{{EC2PrivateDNSName}}" && slices.Equal(r.Groups, []string{"system:bootstrappers", "system:nodes"}) {
			node = true
		}
		if r.UserARN != "" && slices.Contains(r.Groups, "system:masters") {
			admin = true
		}
		if (r.RoleARN == "") == (r.UserARN == "") || r.Username == "" {
			t.Errorf("unexpected aws-auth record; got %+v; want one ARN and a username", r)
		}
	}
	if !node {
		t.Errorf("unexpected mapRoles; got %+v; want a node role as system:node:{{EC2PrivateDNSName}} in system:bootstrappers, system:nodes", roles)
	}
	if !admin {
		t.Errorf("unexpected mapUsers; got %+v; want a user in system:masters", users)
	}
}

// TestReadmeNamesKubeAPIServerFlags keeps the README's kube-apiserver section in step with what
// `iamgate init` prints.
func TestReadmeNamesKubeAPIServerFlags(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("cannot read README.md: %s", err)
	}
	for _, flag := range []string{
		"--authentication-token-webhook-config-file=",
		"--authentication-token-webhook-version=v1",
		"--authentication-token-webhook-cache-ttl=2m",
	} {
		if !bytes.Contains(data, []byte(flag)) {
			t.Errorf("unexpected README.md; got no %q; want the kube-apiserver flag", flag)
		}
	}
}
