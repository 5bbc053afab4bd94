package kubeconfig

import (
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// TestWebhookLoads: client-go reads the webhook kubeconfig as kube-apiserver does, with and
// without a CA.
func TestWebhookLoads(t *testing.T) {
	for _, c := range []struct {
		url string
		ca  []byte
	}{
		{"https://127.0.0.1:21362/authenticate", []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")},
		{"http://127.0.0.1:21362/authenticate", nil},
	} {
		cfg, err := clientcmd.Load(Webhook(c.url, c.ca))
		if err != nil {
			t.Fatalf("cannot load the kubeconfig of %s: %s", c.url, err)
		}
		ctx := cfg.Contexts[cfg.CurrentContext]
		if ctx == nil || ctx.AuthInfo != "kube-apiserver" {
			t.Fatalf("unexpected current context of %s; got %+v; want user kube-apiserver", c.url, ctx)
		}
		cluster := cfg.Clusters[ctx.Cluster]
		if cluster == nil || cluster.Server != c.url || string(cluster.CertificateAuthorityData) != string(c.ca) {
			t.Fatalf("unexpected cluster of %s; got %+v", c.url, cluster)
		}
		if user := cfg.AuthInfos[ctx.AuthInfo]; user == nil || user.Token != "" || user.ClientCertificateData != nil {
			t.Fatalf("unexpected user of %s; got %+v; want no credentials", c.url, user)
		}
	}
}
