#!/usr/bin/env bash
# Go micro-benchmarks, run ROUNDS times interleaved (one `go test -count=1` per round, so slow
# drift of a shared machine hits every benchmark alike), summarised by benchstat as medians.
# Usage: scripts/microbench.sh [ROUNDS] [PKG...]   (default: 6 rounds of sigv4, daemon, mapping)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
shift || true
pkgs=${*:-./sigv4/ ./daemon/ ./mapping/}
out=${MICROBENCH_OUT:-bench/results/microbench-$(date -u +%Y%m%d)-$(git rev-parse --short HEAD).txt}
mkdir -p "$(dirname "$out")"
{
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '-dirty')"
  echo "# go: $(go version)"
  echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# command: scripts/microbench.sh $rounds $pkgs"
} > "$out"
for i in $(seq "$rounds"); do
  echo "microbench: round $i/$rounds" >&2
  go test -run='^$' -bench=. -benchmem -count=1 -benchtime=500ms $pkgs | grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >> "$out"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out"
echo "microbench: raw results in $out" >&2
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$out"
