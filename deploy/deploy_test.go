package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

// serverFlags are the flags of `iamgate server` that a manifest may set, with whether each is a
// bool. The daemon's flag definitions (cmd/iamgate, `iamgate server -h`) are the source of truth;
// keep this list in step with them. The test-only -sts.dialOverride and -sts.insecureHTTP are left
// out on purpose: no shipped manifest may point STS elsewhere.
var serverFlags = map[string]bool{
	"cluster.id":          false,
	"webhook.listenAddr":  false,
	"internal.listenAddr": false,
	"tls.certFile":        false,
	"tls.keyFile":         false,
	"mapping.file":        false,
	"mapping.configMap":   true,
	"kubeconfig":          false,
	"sts.partitions":      false,
	"sts.extraRegions":    false,
	"sts.timeout":         false,
	"sts.maxConcurrency":  false,
	"cache.ttl":           false,
	"cache.negativeTTL":   false,
	"cache.maxBytes":      false,
	"token.maxClockSkew":  false,
	"review.reportErrors": true,
	"log.level":           false,
	"dryRun":              true,
}

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
	raw   []byte
	obj   any // the strictly decoded typed object
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
			m.docs = append(m.docs, document{where: where, raw: raw, obj: obj})
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

// pod is what the checks of a pod template need, whichever workload it came from.
type pod struct {
	where       string
	labels      map[string]string
	annotations map[string]string
	spec        corev1.PodSpec
	selector    *metav1.LabelSelector
}

func workloadPods(m *manifests) []pod {
	var pods []pod
	files := make([]string, 0, len(m.daemonSets))
	for f := range m.daemonSets {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		ds := m.daemonSets[f]
		pods = append(pods, pod{f + " DaemonSet/" + ds.Name, ds.Spec.Template.Labels, ds.Spec.Template.Annotations, ds.Spec.Template.Spec, ds.Spec.Selector})
	}
	for _, d := range m.deployments {
		pods = append(pods, pod{"Deployment/" + d.Name, d.Spec.Template.Labels, d.Spec.Template.Annotations, d.Spec.Template.Spec, d.Spec.Selector})
	}
	return pods
}

// serverArgs parses the args of an iamgate container, which must be `server` followed by flags in
// the -name=value form (-name alone for bools), every one a flag of `iamgate server`.
func serverArgs(t *testing.T, where string, c corev1.Container) map[string]string {
	t.Helper()
	if len(c.Command) != 0 {
		t.Errorf("unexpected command in %s; got %q; want none (the image's ENTRYPOINT)", where, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != "server" {
		t.Fatalf("unexpected args in %s; got %q; want \"server\" first", where, c.Args)
	}
	flags := map[string]string{}
	for _, a := range c.Args[1:] {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		isBool, known := serverFlags[name]
		switch {
		case !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "--"):
			t.Errorf("unexpected arg in %s; got %q; want -name=value", where, a)
		case !known:
			t.Errorf("unexpected flag in %s; got %q; want a flag of `iamgate server`", where, a)
		case !isBool && !hasValue:
			t.Errorf("unexpected flag form in %s; got %q; want -%s=value", where, a, name)
		case flags[name] != "":
			t.Errorf("unexpected repeated flag in %s; got %q twice", where, name)
		}
		if !hasValue {
			value = "true"
		}
		flags[name] = value
	}
	return flags
}

// expandEnv resolves $(VAR) references the way the kubelet does, from the container's env with
// a fieldRef value standing in as fieldRefs[path].
func expandEnv(t *testing.T, where, s string, c corev1.Container) string {
	t.Helper()
	re := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	return re.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		for _, e := range c.Env {
			if e.Name != name {
				continue
			}
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				return "<" + e.ValueFrom.FieldRef.FieldPath + ">"
			}
			return e.Value
		}
		t.Errorf("unexpected reference to an undefined env var in %s; got %q; want a var of the container's env", where, ref)
		return ref
	})
}

// listenAddr returns the host and port of a -*.listenAddr flag, after env expansion.
func listenAddr(t *testing.T, where, flag, value, def string, c corev1.Container) (string, int) {
	t.Helper()
	if value == "" {
		value = def
	}
	host, portStr, err := net.SplitHostPort(expandEnv(t, where, value, c))
	if err != nil {
		t.Errorf("unexpected -%s in %s; got %q; want host:port", flag, where, value)
		return "", 0
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Errorf("unexpected -%s port in %s; got %q; want a number", flag, where, portStr)
	}
	return host, port
}

// containerPort resolves a probe or Service port (number or name) against the container's ports.
func containerPort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// underMount reports whether path lies inside one of the container's volume mounts.
func underMount(c corev1.Container, path string) bool {
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			return true
		}
	}
	return false
}

// TestWorkloads checks every iamgate pod template (both DaemonSets and the Deployment) for what
// an install relies on: known flags, a mapping source, TLS files that are mounted, a locked-down
// security context, probes on the internal listener, resources, and a ServiceAccount exactly when
// the ConfigMap is watched.
func TestWorkloads(t *testing.T) {
	m := loadManifests(t)
	pods := workloadPods(m)
	if len(pods) == 0 {
		t.Fatalf("unexpected number of workloads; got 0; want at least 1")
	}
	secretNames := map[string]bool{}
	for _, s := range m.secrets {
		secretNames[s.Name] = true
	}
	for _, p := range pods {
		checkPod(t, m, p, secretNames)
	}
}

func checkPod(t *testing.T, m *manifests, p pod, secretNames map[string]bool) {
	where := p.where
	sel, err := metav1.LabelSelectorAsSelector(p.selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.labels)) {
		t.Errorf("unexpected selector in %s; got %v; want a non-empty selector of the template labels %v", where, p.selector, p.labels)
	}
	spec := p.spec
	if len(spec.Containers) != 1 || spec.Containers[0].Name != "iamgate" {
		t.Fatalf("unexpected containers in %s; got %d; want one named iamgate", where, len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image == "" || strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("unexpected image in %s; got %q; want a tagged image, not :latest", where, c.Image)
	}

	flags := serverArgs(t, where, c)
	if flags["cluster.id"] == "" {
		t.Errorf("unexpected -cluster.id in %s; got %q; want a cluster ID", where, flags["cluster.id"])
	}
	if flags["dryRun"] != "" {
		t.Errorf("unexpected -dryRun in %s; got %q; want unset (the daemon would exit)", where, flags["dryRun"])
	}
	if flags["mapping.file"] == "" && flags["mapping.configMap"] != "true" {
		t.Errorf("unexpected mapping source in %s; got none; want -mapping.file or -mapping.configMap", where)
	}

	// Files the daemon reads are mounted, read-only, from volumes that exist.
	for _, name := range []string{"tls.certFile", "tls.keyFile", "mapping.file"} {
		path := flags[name]
		if path == "" && name != "mapping.file" {
			t.Errorf("unexpected -%s in %s; got none; want a path (the webhook serves TLS)", name, where)
		}
		if path != "" && !underMount(c, path) {
			t.Errorf("unexpected -%s in %s; got %q; want a path under a volume mount", name, where, path)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			t.Errorf("unexpected volume mount in %s; got %q; want a volume of that name", where, vm.Name)
		}
		if !vm.ReadOnly {
			t.Errorf("unexpected writable mount in %s; got %q; want readOnly", where, vm.Name)
		}
		if v.Secret != nil && !secretNames[v.Secret.SecretName] {
			t.Errorf("unexpected secret in %s; got %q; want the Secret of tls-secret.yaml", where, v.Secret.SecretName)
		}
		if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0) {
			t.Errorf("unexpected secret volume mode in %s; got %s; want no access for others (e.g. 0440)", where, octal(v.Secret.DefaultMode))
		}
	}

	// Security context: effective values, container over pod.
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		t.Fatalf("unexpected securityContext in %s; got none; want one", where)
	}
	runAsNonRoot := csc.RunAsNonRoot
	if runAsNonRoot == nil {
		runAsNonRoot = psc.RunAsNonRoot
	}
	runAsUser := csc.RunAsUser
	if runAsUser == nil {
		runAsUser = psc.RunAsUser
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	fb := func(what string, got *bool, want bool) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("unexpected %s in %s; got %v; want %v", what, where, ptrString(got), want)
		}
	}
	fb("runAsNonRoot", runAsNonRoot, true)
	fb("readOnlyRootFilesystem", csc.ReadOnlyRootFilesystem, true)
	fb("allowPrivilegeEscalation", csc.AllowPrivilegeEscalation, false)
	if csc.Privileged != nil && *csc.Privileged {
		t.Errorf("unexpected privileged in %s; got true; want false", where)
	}
	if runAsUser == nil || *runAsUser == 0 {
		t.Errorf("unexpected runAsUser in %s; got %v; want a non-zero UID (the image's nonroot 65532)", where, ptrString(runAsUser))
	}
	if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) != 0 {
		t.Errorf("unexpected capabilities in %s; got %+v; want drop [ALL], add none", where, csc.Capabilities)
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("unexpected seccompProfile in %s; got %+v; want RuntimeDefault", where, seccomp)
	}

	// Listeners, container ports and probes agree.
	webHost, webPort := listenAddr(t, where, "webhook.listenAddr", flags["webhook.listenAddr"], "127.0.0.1:21362", c)
	intHost, intPort := listenAddr(t, where, "internal.listenAddr", flags["internal.listenAddr"], "127.0.0.1:21363", c)
	if got := containerPort(c, intstr.FromString("webhook")); got != webPort {
		t.Errorf("unexpected container port \"webhook\" in %s; got %d; want %d (-webhook.listenAddr)", where, got, webPort)
	}
	if got := containerPort(c, intstr.FromString("internal")); got != intPort {
		t.Errorf("unexpected container port \"internal\" in %s; got %d; want %d (-internal.listenAddr)", where, got, intPort)
	}
	probe := func(what string, pr *corev1.Probe, path string) {
		t.Helper()
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("unexpected %s in %s; got none; want httpGet %s", what, where, path)
			return
		}
		g := pr.HTTPGet
		if g.Path != path {
			t.Errorf("unexpected %s path in %s; got %q; want %q", what, where, g.Path, path)
		}
		if got := containerPort(c, g.Port); got != intPort {
			t.Errorf("unexpected %s port in %s; got %d; want %d (the internal listener)", what, where, got, intPort)
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			t.Errorf("unexpected %s scheme in %s; got %q; want HTTP", what, where, g.Scheme)
		}
		// The kubelet probes the pod IP unless told otherwise: a loopback listener needs host.
		if isLoopback(intHost) && !isLoopback(g.Host) {
			t.Errorf("unexpected %s host in %s; got %q; want 127.0.0.1 (-internal.listenAddr is loopback)", what, where, g.Host)
		}
	}
	probe("livenessProbe", c.LivenessProbe, "/healthz")
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	if got := p.annotations["prometheus.io/port"]; got != "" && got != strconv.Itoa(intPort) {
		t.Errorf("unexpected prometheus.io/port in %s; got %q; want %q", where, got, strconv.Itoa(intPort))
	}

	// Resources: requests for scheduling, a memory limit above GOMEMLIMIT.
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("unexpected requests in %s; got %v; want cpu and memory", where, req)
	}
	if lim.Memory().IsZero() {
		t.Errorf("unexpected limits in %s; got %v; want memory", where, lim)
	}
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
		if err != nil || q.Cmp(*lim.Memory()) >= 0 {
			t.Errorf("unexpected GOMEMLIMIT in %s; got %q; want below the memory limit %s", where, e.Value, lim.Memory())
		}
	}

	// Kubernetes API access exactly when the ConfigMap is watched, through the bound ServiceAccount.
	if flags["mapping.configMap"] == "true" {
		if !boundServiceAccount(m, spec.ServiceAccountName) {
			t.Errorf("unexpected serviceAccountName in %s; got %q; want the ServiceAccount that rbac.yaml binds", where, spec.ServiceAccountName)
		}
		if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
			t.Errorf("unexpected automountServiceAccountToken in %s; got false; want the token (-mapping.configMap)", where)
		}
	} else if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("unexpected automountServiceAccountToken in %s; got %v; want false (no Kubernetes API use)", where, ptrString(spec.AutomountServiceAccountToken))
	}

	if spec.HostNetwork {
		// Beside kube-apiserver: loopback webhook on every control-plane node, the same URL
		// as the webhook kubeconfig.
		if webHost != "127.0.0.1" || "https://"+net.JoinHostPort(webHost, strconv.Itoa(webPort))+webhookPath != loopbackWebhookURL {
			t.Errorf("unexpected -webhook.listenAddr in %s; got %q; want the loopback address of %s", where, flags["webhook.listenAddr"], loopbackWebhookURL)
		}
		if spec.DNSPolicy != corev1.DNSDefault && spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
			t.Errorf("unexpected dnsPolicy in %s; got %q; want Default (do not depend on cluster DNS)", where, spec.DNSPolicy)
		}
		if v, ok := spec.NodeSelector[controlPlaneLabel]; !ok || v != "" {
			t.Errorf("unexpected nodeSelector in %s; got %v; want %s: \"\"", where, spec.NodeSelector, controlPlaneLabel)
		}
		tolerated := false
		for _, tol := range spec.Tolerations {
			if tol.Key == controlPlaneLabel && tol.Operator == corev1.TolerationOpExists && (tol.Effect == "" || tol.Effect == corev1.TaintEffectNoSchedule) {
				tolerated = true
			}
		}
		if !tolerated {
			t.Errorf("unexpected tolerations in %s; got %+v; want %s:NoSchedule tolerated", where, spec.Tolerations, controlPlaneLabel)
		}
		if spec.PriorityClassName != "system-node-critical" {
			t.Errorf("unexpected priorityClassName in %s; got %q; want %q", where, spec.PriorityClassName, "system-node-critical")
		}
	} else if isLoopback(webHost) {
		t.Errorf("unexpected -webhook.listenAddr in %s; got %q; want an address the Service reaches", where, flags["webhook.listenAddr"])
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

func boundServiceAccount(m *manifests, name string) bool {
	if name == "" || name == "default" {
		return false
	}
	for _, sa := range m.sas {
		if sa.Name != name {
			continue
		}
		for _, rb := range m.roleBindings {
			for _, s := range rb.Subjects {
				if s.Kind == rbacv1.ServiceAccountKind && s.Name == name && s.Namespace == namespace {
					return true
				}
			}
		}
	}
	return false
}

// TestDeploymentAvailability checks the Deployment alternative: replicas on different nodes, a
// Service that reaches the webhook port from 443, and a PodDisruptionBudget that keeps one
// replica yet still lets a node drain.
func TestDeploymentAvailability(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		where := "Deployment/" + d.Name
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		if replicas < 2 {
			t.Errorf("unexpected replicas in %s; got %d; want at least 2", where, replicas)
		}
		podLabels := labels.Set(d.Spec.Template.Labels)
		aff := d.Spec.Template.Spec.Affinity
		spread := false
		if aff != nil && aff.PodAntiAffinity != nil {
			for _, term := range aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
				sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
				if err == nil && term.TopologyKey == "kubernetes.io/hostname" && sel.Matches(podLabels) {
					spread = true
				}
			}
		}
		if !spread {
			t.Errorf("unexpected affinity in %s; got %+v; want required pod anti-affinity on kubernetes.io/hostname", where, aff)
		}
		c := d.Spec.Template.Spec.Containers[0]
		for _, s := range m.services {
			sel := labels.SelectorFromSet(s.Spec.Selector)
			if len(s.Spec.Selector) == 0 || !sel.Matches(podLabels) {
				t.Errorf("unexpected selector in Service/%s; got %v; want one that selects %s", s.Name, s.Spec.Selector, where)
			}
			if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 443 || containerPort(c, s.Spec.Ports[0].TargetPort) != 21362 {
				t.Errorf("unexpected ports in Service/%s; got %+v; want 443 -> the webhook port 21362", s.Name, s.Spec.Ports)
			}
			if net.ParseIP(s.Spec.ClusterIP) == nil {
				t.Errorf("unexpected clusterIP in Service/%s; got %q; want a fixed address (kube-apiserver does not use cluster DNS)", s.Name, s.Spec.ClusterIP)
			}
		}
		for _, pdb := range m.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || !sel.Matches(podLabels) {
				t.Errorf("unexpected selector in PodDisruptionBudget/%s; got %v; want one that selects %s", pdb.Name, pdb.Spec.Selector, where)
			}
			minAvailable := 0
			if pdb.Spec.MinAvailable != nil {
				minAvailable = pdb.Spec.MinAvailable.IntValue()
			}
			if minAvailable < 1 || minAvailable >= int(replicas) || pdb.Spec.MaxUnavailable != nil {
				t.Errorf("unexpected PodDisruptionBudget/%s; got minAvailable %d of %d replicas; want at least 1 and fewer than the replicas", pdb.Name, minAvailable, replicas)
			}
		}
	}
}

// TestRoleReadsOnlyAWSAuth checks that iamgate may get, list and watch the one ConfigMap
// kube-system/aws-auth and nothing else, and that this rule authorizes the requests the
// informer makes (list and watch with the field selector metadata.name=aws-auth) while refusing
// a list of every ConfigMap in kube-system. The requests go through k8s.io/apiserver's
// RequestInfoFactory, the code kube-apiserver runs to turn a request into RBAC attributes.
func TestRoleReadsOnlyAWSAuth(t *testing.T) {
	m := loadManifests(t)
	if len(m.roles) != 1 {
		t.Fatalf("unexpected number of Roles; got %d; want 1", len(m.roles))
	}
	role := m.roles[0]
	want := rbacv1.PolicyRule{
		APIGroups:     []string{""},
		Resources:     []string{"configmaps"},
		ResourceNames: []string{awsAuthName},
		Verbs:         []string{"get", "list", "watch"},
	}
	if len(role.Rules) != 1 {
		t.Fatalf("unexpected rules in Role/%s; got %d; want exactly 1", role.Name, len(role.Rules))
	}
	rule := role.Rules[0]
	got := rule
	got.Verbs = slices.Sorted(slices.Values(got.Verbs))
	if s, w := yamlString(got), yamlString(want); s != w {
		t.Errorf("unexpected rule in Role/%s; got %q; want %q", role.Name, s, w)
	}
	for _, rb := range m.roleBindings {
		if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || rb.RoleRef.APIGroup != rbacv1.GroupName {
			t.Errorf("unexpected roleRef in RoleBinding/%s; got %+v; want Role/%s", rb.Name, rb.RoleRef, role.Name)
		}
	}

	factory := &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
	f := func(target string, wantAllowed bool) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "https://kube-apiserver"+target, nil)
		if err != nil {
			t.Fatalf("cannot build request %s: %s", target, err)
		}
		info, err := factory.NewRequestInfo(req)
		if err != nil {
			t.Fatalf("cannot resolve request %s: %s", target, err)
		}
		allowed := info.Namespace == role.Namespace && ruleAllows(rule, info)
		if allowed != wantAllowed {
			t.Errorf("unexpected decision for %s (verb %s, name %q); got allowed=%v; want allowed=%v", target, info.Verb, info.Name, allowed, wantAllowed)
		}
	}
	selector := "fieldSelector=" + url.QueryEscape("metadata.name="+awsAuthName)
	f("/api/v1/namespaces/kube-system/configmaps/aws-auth", true)
	f("/api/v1/namespaces/kube-system/configmaps?"+selector+"&limit=500&resourceVersion=0", true)
	f("/api/v1/namespaces/kube-system/configmaps?"+selector+"&watch=true&allowWatchBookmarks=true&resourceVersion=12345", true)
	f("/api/v1/namespaces/kube-system/configmaps", false)
	f("/api/v1/namespaces/kube-system/configmaps?watch=true", false)
	f("/api/v1/namespaces/kube-system/configmaps/kubeadm-config", false)
	f("/api/v1/namespaces/kube-system/configmaps?fieldSelector="+url.QueryEscape("metadata.name=kubeadm-config"), false)
	f("/api/v1/namespaces/default/configmaps/aws-auth", false)
	f("/api/v1/namespaces/kube-system/secrets/aws-auth", false)
}

// ruleAllows mirrors RBAC's RuleAllows (k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go)
// for resource requests.
func ruleAllows(rule rbacv1.PolicyRule, info *request.RequestInfo) bool {
	match := func(list []string, v string) bool {
		return slices.Contains(list, "*") || slices.Contains(list, v)
	}
	resource := info.Resource
	if info.Subresource != "" {
		resource += "/" + info.Subresource
	}
	return info.IsResourceRequest &&
		match(rule.Verbs, info.Verb) &&
		match(rule.APIGroups, info.APIGroup) &&
		match(rule.Resources, resource) &&
		(len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, info.Name))
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
