#!/usr/bin/env bash
# Installs the real clients the tests use, or says loudly what will be skipped.
# With CI=true every missing tool is an error: CI must never silently skip.
set -u
missing=()

awscli2() {
  # Debian's awscli is AWS CLI v2 at /usr/bin/aws; an AWS CLI v1 may sit earlier on PATH,
  # so tests resolve /usr/bin/aws explicitly (internal/testenv.AWSCLIv2).
  [ -x /usr/bin/aws ] && /usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2\.'
}

need_apt=()
awscli2 || need_apt+=(awscli)
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubectl)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-tools: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 || true
  fi
fi

awscli2 || missing+=("AWS CLI v2 (/usr/bin/aws from Debian's awscli)")
command -v kubectl >/dev/null 2>&1 || missing+=("kubectl")

if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do
    echo "##########################################################################" >&2
    echo "## test-tools: MISSING ${m}: the tests that need it will SKIP" >&2
    echo "##########################################################################" >&2
  done
  if [ "${CI:-}" = "true" ]; then
    echo "test-tools: CI=true and tools are missing: failing" >&2
    exit 1
  fi
fi
exit 0
