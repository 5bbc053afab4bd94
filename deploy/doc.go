// Package deploy holds iamgate's Kubernetes manifests, the kube-apiserver webhook kubeconfig and
// the Grafana dashboard; it has no code. Its tests decode every manifest strictly into its
// k8s.io/api type and check the invariants an install relies on (see README.md).
package deploy
