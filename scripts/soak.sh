#!/usr/bin/env bash
# `make soak` (SOAK_DURATION, 30m by default) and `make soak-quick` (SOAK_QUICK=1, 3 minutes,
# what CI runs): e2e/soak_test.go through scripts/e2e.sh, which provides etcd and
# kube-apiserver, records every process it starts by PID and stops them on exit, also on
# failure or Ctrl-C. The full run writes bench/results/soak-<date>-<commit>.json,
# bench/results/soak.svg and the soak section of BENCHMARKS.md; the quick one writes
# bench/results/quick-soak-* (ignored by git) and leaves BENCHMARKS.md alone.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${SOAK_DURATION:-30m}
args="-soak.duration=$duration"
name="make soak"
command="make soak SOAK_DURATION=$duration"
if [ "${SOAK_QUICK:-}" = 1 ]; then
  args="$args -soak.short"
  name="make soak-quick"
  command="make soak-quick"
fi

# minutes prints a Go duration made of h, m and s parts (30m, 1h30m, 90s) in whole minutes,
# rounded up.
minutes() {
  local d=$1 total=0
  while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
    local n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    d=${BASH_REMATCH[3]}
    case $unit in
      h) total=$((total + n * 3600)) ;;
      m) total=$((total + n * 60)) ;;
      s) total=$((total + n)) ;;
    esac
  done
  if [ -n "$d" ] || [ "$total" = 0 ]; then
    echo "$name: SOAK_DURATION=$1 is not a duration like 30m, 1h30m or 90s" >&2
    exit 2
  fi
  echo $(((total + 59) / 60))
}
mins=$(minutes "$duration")

# Start-up (etcd, kube-apiserver, builds) and shutdown take a few minutes more than the soak.
IAMGATE_E2E_NAME=$name \
IAMGATE_E2E_TAGS=soak \
IAMGATE_E2E_RUN=TestSoak \
IAMGATE_E2E_ARGS=$args \
IAMGATE_E2E_TIMEOUT=$((mins + 20))m \
IAMGATE_E2E_AWSCLI=0 \
IAMGATE_SOAK_COMMAND=$command \
  exec bash scripts/e2e.sh
