#!/usr/bin/env bash
# Where iamgate's cold review spends more CPU than the cold path's limit, kernel included:
# runs one round of `loadtest coldpath` with long windows, samples the limit's process and then
# iamgate's with `perf record` (cpu-clock, 999 Hz, 15 s inside each window), and prints both in
# microseconds of CPU per review: by DSO, by group of symbols, and the symbols that differ most.
# pprof cannot do this: it sees no kernel stacks, and the limit has no pprof endpoint.
# Needs perf (linux-perf) and bin/ built (make build). Writes to $OUT (default a temporary
# directory): limit.data, iamgate.data, coldpath.log. ANALYSE=1 reads those again, runs nothing.
# Usage: [OUT=dir] [ANALYSE=1] [VARIANT=sts-20ms-jitter] [ARGS="-cold.daemonArgs ..."] scripts/perfcold.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perfcold: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
out=${OUT:-$(mktemp -d)}
variant=${VARIANT:-sts-20ms-jitter}
mkdir -p "$out"
if [ -z "${ANALYSE:-}" ]; then
  # shellcheck disable=SC2086 # ARGS holds flags
  bin/loadtest coldpath -cold.variants "$variant" -cold.rounds 1 -cold.duration 30s -cold.profile=false \
    -bench.markdown "" -bench.results "$out" ${ARGS:-} >"$out/coldpath.log" 2>&1 &
  run=$!
  trap 'kill $run 2>/dev/null || true' EXIT

  # cputicks PID: the process's user and system CPU time so far, in clock ticks.
  cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

  # record NAME PGREP-PATTERN: waits for the process and for its window (a second in which it
  # uses a fifth of a CPU), skips 5 s of the window, samples 15 s.
  record() {
    local pid="" before after
    for _ in $(seq 1 600); do
      kill -0 $run 2>/dev/null || { cat "$out/coldpath.log" >&2; exit 1; }
      pid=$(pgrep -f "$2" | head -1) || { sleep 0.5; continue; }
      before=$(cputicks "$pid"); sleep 1; after=$(cputicks "$pid")
      [ $((after - before)) -ge $(($(getconf CLK_TCK) / 5)) ] && break
      pid=""
    done
    [ -n "$pid" ] || { echo "perfcold: no busy process matches $2" >&2; exit 1; }
    sleep 4
    perf record -q -e cpu-clock -F 999 -g -p "$pid" -o "$out/$1.data" -- sleep 15 2>/dev/null
  }
  record limit 'loadtest coldlimit'
  record iamgate 'bin/iamgate server'
  wait $run
  trap - EXIT
fi

# CPU per review of each server over its whole window, from coldpath's log line. The samples
# are shared out in proportion: a 15 s recording can catch a stretch where the generator's CPU
# stalled and the server waited, so the window's own rate is not the recording's.
perreview() { sed -n "s/.*round 1\/1:.* $1 [0-9]*\/s \([0-9.]*\) µs\/review.*/\1/p" "$out/coldpath.log" | head -1; }
limit_us=$(perreview limit); iamgate_us=$(perreview iamgate)
[ -n "$limit_us" ] && [ -n "$iamgate_us" ] || { cat "$out/coldpath.log" >&2; exit 1; }
grep 'round 1/1' "$out/coldpath.log"

# symbols NAME US: "µs-per-review<TAB>[k]|[.]<TAB>symbol" for every sampled symbol, the
# process's samples scaled to US µs per review.
symbols() {
  perf report -i "$out/$1.data" --no-children --sort sym -g none -F sample,sym --stdio 2>/dev/null |
    awk -v us="$2" '
      /^#/ || NF < 3 { next }
      { n = $1; kind = $2; $1 = ""; $2 = ""; sub(/^  /, ""); c[kind "\t" $0] += n; total += n }
      END { for (s in c) printf "%.3f\t%s\n", c[s] * us / total, s }'
}
symbols limit "$limit_us" >"$out/limit.sym"
symbols iamgate "$iamgate_us" >"$out/iamgate.sym"

echo
echo "µs of CPU per review (the window's, shared out by samples): limit | iamgate | iamgate - limit"
awk -F'\t' '
  function group(kind, s) {
    if (kind == "[k]") return "kernel"
    if (s ~ /iamgate\/(daemon|sigv4|mapping)/) return "iamgate code"
    if (s ~ /ristretto/) return "ristretto"
    if (s ~ /prometheus/) return "prometheus"
    if (s ~ /^crypto\//) return "crypto"
    if (s ~ /fasthttp/) return "fasthttp"
    if (s ~ /^(runtime\.|internal\/runtime|aeshash|memeq|indexbyte|cmpbody)/) return "Go runtime"
    return "other user"
  }
  FNR == 1 { side++ }
  { g = group($2, $3); t[side, g] += $1; t[side, "total"] += $1
    key = $2 " " $3; u[side, key] += $1; keys[key] = 1 }
  END {
    n = split("kernel,Go runtime,crypto,fasthttp,iamgate code,ristretto,prometheus,other user,total", order, ",")
    for (i = 1; i <= n; i++) { g = order[i]; printf "  %-14s %7.1f %7.1f %+7.1f\n", g, t[1, g], t[2, g], t[2, g] - t[1, g] }
    print "\nsymbols that differ most (iamgate - limit, µs per review):"
    for (k in keys) printf "  %7.2f %7.2f %7.2f  %s\n", u[2, k] - u[1, k], u[1, k], u[2, k], substr(k, 1, 110) | "sort -gr | head -30"
  }' "$out/limit.sym" "$out/iamgate.sym"
echo
echo "perfcold: data in $out"
