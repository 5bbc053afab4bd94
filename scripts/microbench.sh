#!/usr/bin/env bash
# Go micro-benchmarks, run ROUNDS times interleaved (one `go test -count=1` per round, so slow
# drift of a shared machine hits every benchmark alike), summarised by benchstat as medians.
# Usage: scripts/microbench.sh [ROUNDS] [PKG...]   (default: 6 rounds of sigv4/..., daemon, mapping)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
shift || true
pkgs=${*:-./sigv4/... ./daemon/ ./mapping/}
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
  echo "# round $i" >> "$out"
  go test -run='^$' -bench=. -benchmem -count=1 -benchtime=500ms $pkgs | grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >> "$out"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out"
echo "microbench: raw results in $out" >&2
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$out"

# Per-round ratios baseline/optimised, then their median: both sides of a ratio ran in the same
# round, minutes apart at most, so machine noise mostly cancels.
echo
echo "ratios (baseline / iamgate, median of per-round ratios):"
awk '
  /^# round/ { r = $3 }
  /^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name); ns[r, name] = $3; rounds[r] = 1 }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    split("BenchmarkValidateAndKey:BenchmarkBaselineValidateAndKey BenchmarkCanonicalKey:BenchmarkBaselineCanonicalKey BenchmarkCanonicalKeyParallel:BenchmarkBaselineCanonicalKeyParallel BenchmarkValidateAndKeyParallel:BenchmarkBaselineValidateAndKeyParallel BenchmarkSignatureVerify:BenchmarkSignatureSDKBaseline BenchmarkHandlerCacheHit:BenchmarkBaselineNetHTTPCacheHit BenchmarkHandlerCacheHitParallel:BenchmarkBaselineNetHTTPCacheHitParallel BenchmarkMap/plain:BenchmarkMapBaseline/plain BenchmarkMap/session:BenchmarkMapBaseline/session BenchmarkMap/user:BenchmarkMapBaseline/user", pairs, " ")
    for (p in pairs) {
      split(pairs[p], ab, ":"); n = 0; delete v
      for (r in rounds) if ((r, ab[1]) in ns && (r, ab[2]) in ns) v[++n] = ns[r, ab[2]] / ns[r, ab[1]]
      if (n) printf "  %-40s %-45s %6.2fx over %d rounds\n", ab[1], ab[2], median(v, n), n
    }
  }' "$out"
