#!/usr/bin/env bash
# Instructions per operation of Go benchmarks, counted by valgrind's callgrind: repeatable on a
# busy machine, where timings are not. Each benchmark runs twice, with N1 and N2 iterations;
# (I(N2) - I(N1)) / (N2 - N1) removes the fixed cost of starting the test binary.
# Only instructions inside the benchmark function count (callgrind's --toggle-collect), which
# leaves out the runtime's and the harness's background goroutines (the GC's marking too: an
# allocating baseline costs more than its count says). TOGGLE=<function pattern> narrows it
# further, e.g. to the handler alone.
# Usage: [TOGGLE=pattern] scripts/instrbench.sh PKG BENCH [BENCH...]
#   e.g. scripts/instrbench.sh ./sigv4 Validate
#        TOGGLE='*daemon.(*Server).handleHTTP1' scripts/instrbench.sh ./daemon HandleCacheHit
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=$1; shift
n1=${N1:-2000}; n2=${N2:-22000}
command -v valgrind >/dev/null || { echo "instrbench: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
bin=$(mktemp -d)/bench.test
go test -c -o "$bin" "$pkg"
dir=$(go list -f '{{.Dir}}' "$pkg")
count() {
  # Go's asynchronous preemption signals are not supported under callgrind, nor (valgrind 3.19)
  # the RDTSCP instruction of runtime.cputicks.
  (cd "$dir" && GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    --toggle-collect="${TOGGLE:-*.Benchmark$1}" "$bin" -test.run='^$' -test.bench="^Benchmark$1\$" -test.benchtime="$2x" 2>&1) |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-40s %15s\n' "benchmark ($pkg)" "instructions/op"
for b in "$@"; do
  i1=$(count "$b" "$n1"); i2=$(count "$b" "$n2")
  printf '%-40s %15d\n' "$b" $(( (i2 - i1) / (n2 - n1) ))
done
