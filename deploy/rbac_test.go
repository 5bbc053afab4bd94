package deploy_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
)

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
