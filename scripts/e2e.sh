#!/usr/bin/env bash
# `make e2e`: iamgate behind a real kube-apiserver, with real binaries only (etcd, kube-apiserver,
# iamgate, fakests, kubectl, the AWS CLI v2, curl). It installs what is missing (Debian's
# etcd-server; scripts/test-tools.sh for kubectl and the AWS CLI), builds or reuses the cached
# kube-apiserver (scripts/e2e-kube-apiserver.sh), then runs the assertions of
# e2e/kube_apiserver_test.go (`go test -tags e2e ./e2e/`).
#
# Everything it starts is recorded by PID and stopped on exit, also on failure or Ctrl-C, and
# everything it writes goes to one temporary directory that is removed on exit
# (IAMGATE_E2E_KEEP=1 keeps it, with the logs of every process, for a post-mortem;
# IAMGATE_E2E_RUN=pattern passes -run to go test, e.g. 'TestKubeAPIServer/v1_webhook.*/transient').
# A piece that cannot be had is named; with CI=true that is a failure, otherwise a loud skip.
#
# scripts/soak.sh runs the soak (e2e/soak_test.go) through this script with:
# IAMGATE_E2E_NAME (the target named in messages), IAMGATE_E2E_TAGS (build tags),
# IAMGATE_E2E_ARGS (flags of the test binary), IAMGATE_E2E_TIMEOUT (go test -timeout) and
# IAMGATE_E2E_AWSCLI=0 (no AWS CLI needed).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${IAMGATE_E2E_NAME:-make e2e}
tags=${IAMGATE_E2E_TAGS:-e2e}

skip_or_fail() {
  echo "##########################################################################" >&2
  echo "## $name: MISSING $1" >&2
  if [ "${CI:-}" = "true" ]; then
    echo "## CI=true: failing" >&2
    echo "##########################################################################" >&2
    exit 1
  fi
  echo "## $name is SKIPPED (with CI=true this is a failure)" >&2
  echo "##########################################################################" >&2
  exit 0
}

# kubectl and the AWS CLI v2 (/usr/bin/aws), as for `make test`.
bash scripts/test-tools.sh || skip_or_fail "kubectl or the AWS CLI v2 (see above)"
command -v kubectl >/dev/null 2>&1 || skip_or_fail "kubectl"
if [ "${IAMGATE_E2E_AWSCLI:-1}" = 1 ]; then
  /usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2\.' || skip_or_fail "the AWS CLI v2 at /usr/bin/aws (Debian package awscli)"
fi
command -v curl >/dev/null 2>&1 || skip_or_fail "curl"

# etcd: Debian's etcd-server. Its package does not start a service inside containers
# (policy-rc.d); the test starts its own etcd on loopback with a temporary data dir.
if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "e2e: installing etcd-server with apt-get" >&2
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null 2>&1 || true
  fi
fi
etcd=$(command -v etcd 2>/dev/null) || skip_or_fail "etcd (Debian package etcd-server: apt-get install etcd-server)"
echo "e2e: $("$etcd" --version | head -1) at $etcd" >&2

kas=$(bash scripts/e2e-kube-apiserver.sh) ||
  skip_or_fail "kube-apiserver: building k8s.io/kubernetes/cmd/kube-apiserver failed (needs the Go module proxy; see above)"
echo "e2e: $("$kas" --version) at $kas" >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/iamgate-e2e.XXXXXX")
mkdir -p "$work/tmp"
pidfile=$work/pids
: >"$pidfile"
testpid=

# stop PID COMM: TERM, then KILL, only if PID is still the process we started (comm matches).
stop() {
  local pid=$1 comm=$2
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 0
    sleep 0.1
  done
  echo "e2e: $comm (pid $pid) ignored SIGTERM: killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$testpid" ]; then stop "$testpid" go; fi
  # The test records itself and every process it starts; normally it has stopped them already.
  # (Its children also die with it: they run with a parent-death signal.)
  # Newest first: kube-apiserver before the etcd it needs to shut down.
  while read -r pid comm; do
    [ -n "$pid" ] && stop "$pid" "$comm"
  done < <(tac "$pidfile")
  if [ "${IAMGATE_E2E_KEEP:-}" = 1 ]; then
    echo "e2e: kept $work (IAMGATE_E2E_KEEP=1)" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "e2e: interrupted: stopping what it started" >&2; exit 130' INT TERM

go vet -tags "$tags" ./e2e/

start=$(date +%s)
# IAMGATE_E2E_ARGS is split into words on purpose: flags of the test binary.
# shellcheck disable=SC2086
TMPDIR=$work/tmp \
IAMGATE_E2E_WORKDIR=$work \
IAMGATE_E2E_PIDFILE=$pidfile \
IAMGATE_E2E_ETCD=$etcd \
IAMGATE_E2E_KUBE_APISERVER=$kas \
  go test -tags "$tags" -count=1 -v -timeout "${IAMGATE_E2E_TIMEOUT:-30m}" -run "${IAMGATE_E2E_RUN:-TestKubeAPIServer}" ./e2e/ ${IAMGATE_E2E_ARGS:-} &
testpid=$!
set +e
wait "$testpid"
rc=$?
set -e
testpid=
echo "$name: the test took $(($(date +%s) - start)) s" >&2
exit "$rc"
