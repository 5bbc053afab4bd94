// Package kubeconfig writes the webhook kubeconfig kube-apiserver reads from
// --authentication-token-webhook-config-file: `iamgate init` writes it for a cluster, and the
// load tests for the webhook clients they build as kube-apiserver does.
package kubeconfig

import (
	"encoding/base64"
	"fmt"
)

// Webhook is the webhook kubeconfig for serverURL, trusting caPEM (none for a plain-HTTP
// URL when empty): the cluster is iamgate, the user is kube-apiserver itself, with no client
// credentials.
func Webhook(serverURL string, caPEM []byte) []byte {
	ca := ""
	if len(caPEM) > 0 {
		ca = "\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(caPEM)
	}
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: iamgate
  cluster:
    server: %q%s
users:
- name: kube-apiserver
  user: {}
contexts:
- name: webhook
  context:
    cluster: iamgate
    user: kube-apiserver
current-context: webhook
`, serverURL, ca)
}
