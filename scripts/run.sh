#!/usr/bin/env bash
# `make run`: the fake STS, the iamgate daemon (TLS, keys from `iamgate init`) and a demo
# mapping, all on loopback, then a copy-paste demo. Ctrl-C stops everything.
# `scripts/run.sh --check` runs the demo itself, checks the answers and exits (CI uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[ "${1:-}" = "--check" ] && check=true

run=.run
webhook=${IAMGATE_DEMO_WEBHOOK:-127.0.0.1:21362}
internal=${IAMGATE_DEMO_INTERNAL:-127.0.0.1:21363}
mkdir -p "$run"
rm -f "$run/fakests.addr"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

bin/iamgate init -out "$run/pki" -server.url "https://$webhook/authenticate" -force >/dev/null

bin/fakests -listen 127.0.0.1:0 -addrFile "$run/fakests.addr" \
  -config fakests/testdata/config-good-demo.yaml -log.level warn &
pids+=($!)
for _ in $(seq 100); do [ -s "$run/fakests.addr" ] && break; sleep 0.1; done
sts=$(cat "$run/fakests.addr")

# The daemon's EC2 client ({{EC2PrivateDNSName}}) signs with alice's fake key; the fake STS
# checks that signature like any other.
AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
AWS_SESSION_TOKEN= AWS_PROFILE= AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
bin/iamgate server -cluster.id demo-cluster \
  -webhook.listenAddr "$webhook" -internal.listenAddr "$internal" \
  -tls.certFile "$run/pki/cert.pem" -tls.keyFile "$run/pki/key.pem" \
  -mapping.file scripts/demo/aws-auth.yaml \
  -sts.dialOverride "$sts" -sts.insecureHTTP -ec2.endpoint "http://$sts" -ec2.region us-east-1 \
  -log.level "${IAMGATE_DEMO_LOG:-info}" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://$internal/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$internal/readyz" >/dev/null || { echo "make run: iamgate did not become ready" >&2; exit 1; }

# review TOKEN: post a TokenReview as kube-apiserver would.
review() {
  curl -s --cacert "$run/pki/ca.pem" "https://$webhook/authenticate?timeout=30s" \
    -H 'Content-Type: application/json' \
    -d "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{\"token\":\"$1\"}}"
}
token_as() { # token_as AKID SECRET [SESSION_TOKEN]
  env -u AWS_PROFILE AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" AWS_SESSION_TOKEN="${3:-}" \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
    bin/iamgate token -i demo-cluster --region us-east-1 --token-only
}

if $check; then
  alice=$(review "$(token_as AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY)")
  bob=$(review "$(token_as AKIAI44QH8DHBEXAMPLE je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY)")
  node=$(review "$(token_as ASIAQNODEEXAMPLE0001 nodeSecretKeyEXAMPLE/0123456789abcdefghij FwoGZXIvYXdzEXAMPLENODESESSIONTOKEN)")
  echo "alice: $alice"; echo "bob:   $bob"; echo "node:  $node"
  if /usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2\.'; then
    cli=$(review "$(env -u AWS_PROFILE AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
      AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null \
      /usr/bin/aws eks get-token --cluster-name demo-cluster --region us-east-1 | sed 's/.*"token": "\([^"]*\)".*/\1/')")
    echo "aws eks get-token: $cli"
    grep -q '"authenticated":true,"user":{"username":"alice"' <<<"$cli"
  fi
  grep -q '"authenticated":true,"user":{"username":"alice"' <<<"$alice"
  grep -q '"authenticated":false' <<<"$bob"
  grep -q '"username":"system:node:ip-10-0-1-23.ec2.internal"' <<<"$node"
  echo "make run --check: OK"
  exit 0
fi

cat <<DEMO

iamgate is listening on https://$webhook/authenticate (fake STS at $sts, metrics at
http://$internal/metrics). Copy-paste in another shell, from $(pwd):

  # alice, mapped to system:masters in scripts/demo/aws-auth.yaml
  export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_EC2_METADATA_DISABLED=true
  TOKEN=\$(bin/iamgate token -i demo-cluster --region us-east-1 --token-only)
  curl -s --cacert $run/pki/ca.pem https://$webhook/authenticate -d '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"'\$TOKEN'"}}'

  # bob exists in the fake STS but is not mapped: authenticated false (and a log line here)
  export AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY

  # the real AWS CLI v2 makes tokens iamgate accepts too
  TOKEN=\$(/usr/bin/aws eks get-token --cluster-name demo-cluster --region us-east-1 | sed 's/.*"token": "\([^"]*\)".*/\1/')

Kubernetes side: $run/pki/webhook-kubeconfig.yaml is the file for kube-apiserver's
--authentication-token-webhook-config-file. Ctrl-C stops the demo.
DEMO
wait
