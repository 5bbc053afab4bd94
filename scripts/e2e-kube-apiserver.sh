#!/usr/bin/env bash
# Prints the path of a kube-apiserver binary for `make e2e`, building it first when the cache
# does not have it. It is built from the k8s.io/kubernetes Go module that e2e/kube-apiserver/go.mod
# pins (there is no prebuilt binary to download), and cached by version in
# ${IAMGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iamgate}/kube-apiserver-<version>,
# so only the first run pays for the build (about 10 minutes on 2 cores, about 130 MB of disk
# plus the Go build cache).
set -euo pipefail
cd "$(dirname "$0")/../e2e/kube-apiserver"

version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
cache=${IAMGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iamgate}
bin=$cache/kube-apiserver-$version

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "Kubernetes $version"; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
echo "e2e: building kube-apiserver $version from the k8s.io/kubernetes module; the first run" >&2
echo "e2e: takes about 10 minutes on 2 cores, later runs use $bin" >&2
start=$(date +%s)
tmp=$(mktemp "$bin.partial.XXXXXX") # same directory: the rename below is atomic
trap 'rm -f "$tmp"' EXIT
minor=${version#v1.}
minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
nice go build -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver
"$tmp" --version | grep -qx "Kubernetes $version" || {
  echo "e2e: the kube-apiserver just built does not report version $version" >&2
  exit 1
}
mv -f "$tmp" "$bin"
echo "e2e: built $bin in $(($(date +%s) - start)) s ($(du -m "$bin" | cut -f1) MB)" >&2
echo "$bin"
