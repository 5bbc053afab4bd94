package deploy_test

import (
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// serverFlags are the flags of `iamgate server` that a manifest may set, with whether each is a
// bool. The daemon's flag definitions (cmd/iamgate, `iamgate server -h`) are the source of truth;
// keep this list in step with them. The test-only -sts.dialOverride and -sts.insecureHTTP are left
// out on purpose: no shipped manifest may point STS elsewhere.
var serverFlags = map[string]bool{
	"cluster.id":          false,
	"webhook.listenAddr":  false,
	"internal.listenAddr": false,
	"internal.pprof":      true,
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

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandEnv resolves $(VAR) references in args the way the kubelet does, from the container's
// env; a fieldRef value becomes "<fieldPath>".
func expandEnv(t *testing.T, where, s string, c corev1.Container) string {
	t.Helper()
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
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
	// The internal listener serves metrics and health only: profiles and traces stay off in
	// every shipped manifest (the DaemonSets put that listener on the node's address).
	if v := flags["internal.pprof"]; v != "" && v != "false" {
		t.Errorf("unexpected -internal.pprof in %s; got %q; want unset (/debug/pprof/ off)", where, v)
	}
	if flags["mapping.file"] == "" && flags["mapping.configMap"] != "true" {
		t.Errorf("unexpected mapping source in %s; got none; want -mapping.file or -mapping.configMap", where)
	}
	checkMounts(t, where, spec, c, flags, secretNames)
	checkSecurityContext(t, where, spec, c)
	webHost, webPort := checkListeners(t, where, p, c, flags)
	checkResources(t, where, c)

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
		checkBesideAPIServer(t, where, spec, net.JoinHostPort(webHost, strconv.Itoa(webPort)))
	} else if isLoopback(webHost) {
		t.Errorf("unexpected -webhook.listenAddr in %s; got %q; want an address the Service reaches", where, flags["webhook.listenAddr"])
	}
}

// checkMounts: the files the daemon reads are mounted, read-only, from volumes that exist; the
// key pair comes from the Secret of tls-secret.yaml, unreadable to others.
func checkMounts(t *testing.T, where string, spec corev1.PodSpec, c corev1.Container, flags map[string]string, secretNames map[string]bool) {
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
}

// checkSecurityContext checks the effective values (container over pod): non-root, read-only
// root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp.
func checkSecurityContext(t *testing.T, where string, spec corev1.PodSpec, c corev1.Container) {
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		t.Errorf("unexpected securityContext in %s; got none; want one", where)
		return
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
	f := func(what string, got *bool, want bool) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("unexpected %s in %s; got %v; want %v", what, where, ptrString(got), want)
		}
	}
	f("runAsNonRoot", runAsNonRoot, true)
	f("readOnlyRootFilesystem", csc.ReadOnlyRootFilesystem, true)
	f("allowPrivilegeEscalation", csc.AllowPrivilegeEscalation, false)
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
}

// checkListeners checks that the listen flags, the named container ports, the probes and the
// scrape annotation agree, and returns the webhook listener's host and port.
func checkListeners(t *testing.T, where string, p pod, c corev1.Container, flags map[string]string) (string, int) {
	webHost, webPort := listenAddr(t, where, "webhook.listenAddr", flags["webhook.listenAddr"], "127.0.0.1:21362", c)
	intHost, intPort := listenAddr(t, where, "internal.listenAddr", flags["internal.listenAddr"], "127.0.0.1:21363", c)
	if got := containerPort(c, intstr.FromString("webhook")); got != webPort {
		t.Errorf("unexpected container port \"webhook\" in %s; got %d; want %d (-webhook.listenAddr)", where, got, webPort)
	}
	if got := containerPort(c, intstr.FromString("internal")); got != intPort {
		t.Errorf("unexpected container port \"internal\" in %s; got %d; want %d (-internal.listenAddr)", where, got, intPort)
	}
	// On the host network, the internal listener is on the node's own address or loopback,
	// never on every address of the node.
	if p.spec.HostNetwork && !isLoopback(intHost) && intHost != "<status.hostIP>" {
		t.Errorf("unexpected -internal.listenAddr host in %s; got %q; want the node's address $(NODE_IP) from status.hostIP, or loopback", where, intHost)
	}
	f := func(what string, pr *corev1.Probe, path string) {
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
	f("livenessProbe", c.LivenessProbe, "/healthz")
	f("readinessProbe", c.ReadinessProbe, "/readyz")
	if got := p.annotations["prometheus.io/port"]; got != "" && got != strconv.Itoa(intPort) {
		t.Errorf("unexpected prometheus.io/port in %s; got %q; want %q", where, got, strconv.Itoa(intPort))
	}
	return webHost, webPort
}

// checkResources: requests for scheduling, a memory limit, GOMEMLIMIT below it.
func checkResources(t *testing.T, where string, c corev1.Container) {
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
		q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B")) // 230MiB -> 230Mi
		if err != nil || q.Cmp(*lim.Memory()) >= 0 {
			t.Errorf("unexpected GOMEMLIMIT in %s; got %q; want below the memory limit %s", where, e.Value, lim.Memory())
		}
	}
}

// checkBesideAPIServer checks a host-network pod: on every control-plane node, tolerated there,
// node-critical, host DNS, and the loopback webhook URL of the webhook kubeconfig.
func checkBesideAPIServer(t *testing.T, where string, spec corev1.PodSpec, webAddr string) {
	if "https://"+webAddr+webhookPath != loopbackWebhookURL {
		t.Errorf("unexpected -webhook.listenAddr in %s; got %q; want the address of %s", where, webAddr, loopbackWebhookURL)
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
