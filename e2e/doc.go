// Package e2e runs iamgate behind a real kube-apiserver: etcd, kube-apiserver built from the
// k8s.io/kubernetes module, the fake STS and EC2 over TLS, `iamgate server`, and kubectl with the
// `iamgate token` and `aws eks get-token` exec plugins, all real binaries on loopback.
//
// The tests carry the build tag e2e, so `go test ./...` does not run them; `make e2e`
// (scripts/e2e.sh) provides etcd and kube-apiserver and runs `go test -tags e2e ./e2e/`.
// Without the binaries they skip loudly, and fail under CI=true.
//
// The soak (soak_test.go, build tag soak; `make soak`, `make soak-quick`, scripts/soak.sh)
// reuses the same processes for a long run: mixed traffic straight to iamgate and through
// kube-apiserver, STS faults rotating every period, mapping file and ConfigMap edits, access
// key and TLS key pair rotations, every answer judged by the oracle of loadtest/soak.go, and
// iamgate's goroutines, heap, RSS and open fds sampled and checked for leaks.
package e2e
