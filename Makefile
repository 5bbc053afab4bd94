# iamgate — see README.md. Every target works on a fresh machine: `make test` installs
# what the tests need (scripts/test-tools.sh) and CI runs exactly `make test`.
GO        ?= go
BIN       := bin
PKGS      := ./...
FUZZTIME  ?= 30s
SOAK_DURATION ?= 30m

.PHONY: run-check all build fakests test test-tools test-race e2e soak soak-quick fuzz bench bench-quick coldpath loadtest lint run clean microbench

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

fakests:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/fakests ./cmd/fakests

# test-tools installs the real clients the tests drive (Debian's awscli = AWS CLI v2, kubectl
# when missing) or prints a loud notice; with CI=true a missing tool fails the run.
test-tools:
	@bash scripts/test-tools.sh

test: test-tools lint
	$(GO) test -count=1 $(PKGS)

test-race: test-tools
	$(GO) test -race -count=1 $(PKGS)

# e2e runs iamgate behind a real kube-apiserver (RBAC, its webhook cache and retries, a live
# aws-auth ConfigMap) with etcd (Debian's etcd-server, installed when missing), fake STS/EC2,
# kubectl and the AWS CLI v2. kube-apiserver is built from its Go module on the first run
# (about 10 minutes on 2 idle cores) and cached in ~/.cache/iamgate; later runs take 4 to 6 minutes.
e2e:
	@bash scripts/e2e.sh

# soak runs iamgate for SOAK_DURATION behind the e2e kube-apiserver with mixed traffic, STS
# faults rotating every minute, mapping file and ConfigMap edits and key rotations; every answer
# is judged and iamgate's goroutines, heap, RSS and fds must stay flat. It writes
# bench/results/soak-*.json, bench/results/soak.svg and the soak section of BENCHMARKS.md.
soak:
	@SOAK_DURATION=$(SOAK_DURATION) bash scripts/soak.sh

# soak-quick is the same for 3 minutes, faults rotating every 15 s (CI runs it); it writes
# bench/results/quick-soak-* and leaves BENCHMARKS.md alone.
soak-quick:
	@SOAK_DURATION=3m SOAK_QUICK=1 bash scripts/soak.sh

# fuzz runs every Fuzz* target for FUZZTIME each (go test allows one target per run).
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

# bench runs every load scenario against bin/iamgate server and the fake STS (pinned with
# taskset), the 1M-identity memory step and the Go micro-benchmarks (~10 min), the cluster
# model against iamgate and iamgate -baseline.passthrough (30-60 min more; skip it with
# `bin/loadtest bench -bench.cluster none`), then the cold path over TLS (coldpath below), and
# writes bench/results/<date>-<commit>.json, cold-*.json and the generated sections of
# BENCHMARKS.md.
bench: build
	$(BIN)/loadtest bench
	$(BIN)/loadtest coldpath -cold.rounds $(COLD_ROUNDS) -memory.points 100000,1000000

# coldpath measures never-seen tokens as production sees them: the webhook and the fake STS
# over TLS, wrk walking a file of tokens no request sent before, iamgate against the cold-path
# limit (loadtest coldlimit) in interleaved rounds, with 0, 20 and 10-30 ms of STS latency, STS
# rejections and {{EC2PrivateDNSName}} roles (about 18 min at 3 rounds); it writes
# bench/results/cold-*.json and the cold path's generated section of BENCHMARKS.md.
COLD_ROUNDS ?= 3
coldpath: build
	$(BIN)/loadtest coldpath -cold.rounds $(COLD_ROUNDS)

# microbench runs the Go micro-benchmarks alone, as make bench runs them: 6 interleaved rounds,
# medians and per-round ratios to their baselines (MICRO_ROUNDS=n for more or fewer), and
# writes bench/results/micro-*.json and their section of BENCHMARKS.md (~4 min).
MICRO_ROUNDS ?= 6
microbench: build
	$(BIN)/loadtest bench -bench.microOnly -micro.rounds $(MICRO_ROUNDS)

# bench-quick is the same in about 2 minutes (short scenarios, a small time-compressed cluster
# storm, no micro-benchmarks); it writes
# bench/results/quick-*.json and leaves BENCHMARKS.md alone.
bench-quick: build
	$(BIN)/loadtest bench -bench.quick

# loadtest runs one scenario against a daemon and fake STS already running (e.g. make run):
# make loadtest ARGS='-load.kind cold -load.duration 20s'
loadtest: build
	$(BIN)/loadtest run $(ARGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# run: fake STS + daemon + demo mapping on loopback, with a copy-paste demo (Ctrl-C stops).
run: build
	@bash scripts/run.sh

# run-check: the same, but runs the demo itself and checks the answers (CI runs it).
run-check: build
	@bash scripts/run.sh --check

clean:
	rm -rf $(BIN)
