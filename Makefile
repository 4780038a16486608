# tungate — build, test, demo, bench.
#
# The demo and the end-to-end tests build network namespaces and a TUN
# device, so they need root: run them as root, or prefix `sudo` as a
# normal user. Nothing here touches the root network namespace.

SHELL    := /bin/bash
GO       ?= go
BIN      := bin/tungate
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
GOFILES   = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go')
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/test$$')

# Debian packages the tests and demo use, as command:package pairs. nft is
# a test tool too: bench's TestNFTRulesetLoads loads the generated ruleset.
TEST_TOOLS  := ip:iproute2 tcpdump:tcpdump nft:nftables
BENCH_TOOLS := iperf3:iperf3

# staticcheck runs through `go run pkg@version`, so a fresh machine needs
# only Go and go.mod stays free of tool dependencies.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Guard tests: allocation counts, memory per flow, GC pauses. The race
# detector changes what allocates (it empties sync.Pool at random) and makes
# 1M-flow tables slow, so some guards skip under -race; make test runs them
# all once more without it. A guard's name contains Allocs, or is listed
# here (tests with an allocation check among other checks).
GUARD_TESTS := Allocs|^TestMemoryPerEntry$$|^TestGCPauseLiveTable$$|^TestCountPacketByID$$|^TestDomainSets$$|^TestNames$$|^TestTCPFramer$$|^TestDecideDNS$$

# testreport prints go test -json streams as plain go test does, keeps them
# in REPORT_DIR and, at the end, lists the tests that skipped (and under
# CI=true fails on them). Built, not `go run`, because go run adds its own
# "exit status 1" line after go test's closing lines.
TESTREPORT := bin/testreport
REPORT_DIR := bin/test-report

define need_root
	@if [ "$$(id -u)" != 0 ]; then \
		echo "make $@ needs root (network namespaces and a TUN device)."; \
		echo "Run it as root, or as a normal user: sudo make $@"; \
		exit 1; \
	fi
endef

# install_missing installs the Debian packages whose command is missing.
define install_missing
	@missing=""; for pair in $(1); do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "installing packages needs root: sudo make deps"; exit 1; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

.PHONY: all build test unit guards e2e demo bench fmt vet staticcheck deps deps-bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tungate

deps:
	$(call install_missing,$(TEST_TOOLS))

deps-bench: deps
	$(call install_missing,$(BENCH_TOOLS))

fmt:
	gofmt -w $(GOFILES)

vet:
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

# test: formatting, vet, staticcheck, unit tests with the race detector,
# the guard tests without it, then the end-to-end tests against the real
# binary in network namespaces. Each go test stream goes through
# testreport (pipefail keeps go test's own exit status); the last step
# lists skipped tests, and fails on them under CI=true.
test:
	$(need_root)
	@$(MAKE) --no-print-directory deps
	@unformatted=$$(gofmt -l $(GOFILES)); if [ -n "$$unformatted" ]; then \
		echo "gofmt wants to rewrite:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) build -o $(TESTREPORT) ./internal/testreport
	@rm -rf $(REPORT_DIR) && mkdir -p $(REPORT_DIR)
	set -o pipefail; $(GO) test -json -race -count=1 -timeout 15m $(UNIT_PKGS) | $(TESTREPORT) -save $(REPORT_DIR)/unit-race.json
	set -o pipefail; $(GO) test -json -count=1 -timeout 15m -run '$(GUARD_TESTS)' $(UNIT_PKGS) | $(TESTREPORT) -save $(REPORT_DIR)/guards.json
	set -o pipefail; $(GO) test -json -count=1 -timeout 25m ./test/ | $(TESTREPORT) -v -save $(REPORT_DIR)/e2e.json
	@$(TESTREPORT) -skips $(REPORT_DIR)/unit-race.json $(REPORT_DIR)/guards.json $(REPORT_DIR)/e2e.json

unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)

guards:
	$(GO) test -count=1 -run '$(GUARD_TESTS)' $(UNIT_PKGS)

e2e: build
	$(need_root)
	$(GO) test -count=1 -timeout 25m -v ./test/

demo: build
	$(need_root)
	@$(MAKE) --no-print-directory deps
	./$(BIN) demo

# bench: kernel forwarding vs nftables vs tungate (configs/bench.toml) in
# throw-away namespaces; prints one table, writes bench/results/*.json, takes
# under 10 minutes (bench-quick: under 2). PEER="command" adds a column: the
# command runs with sh -c in the gateway namespace and finds the lab in
# BENCH_LAN_IF, BENCH_WAN_IF, BENCH_CLIENT_NETS, BENCH_SERVER_NETS, ...
# BENCH_FLAGS passes more tgbench flags (-variants, -tests, -gwlog, -d).
# The payload column is tungate with a 1000-pattern payload rule armed on
# the TCP bulk flows for their whole stream; its ratio to tungate is
# printed under the table.
BENCH_BIN   := bin/tgbench
BENCH_FLAGS ?=
PROFILE_OUT := bench/results/cpu.pprof
# PROFILE_BIN and PROFILE_CONFIG profile another build or config (for
# instance one with [tun] offload = true).
PROFILE_BIN    ?= $(BIN)
PROFILE_CONFIG ?= configs/bench.toml

.PHONY: bench-quick bench-micro bench-offload profile

bench: build
	$(need_root)
	@$(MAKE) --no-print-directory deps-bench
	$(GO) build -o $(BENCH_BIN) ./bench/cmd/tgbench
	./$(BENCH_BIN) run -bin $(BIN) -config configs/bench.toml -out bench/results -peer "$$PEER" $(BENCH_FLAGS)

bench-quick: build
	$(need_root)
	@$(MAKE) --no-print-directory deps-bench
	$(GO) build -o $(BENCH_BIN) ./bench/cmd/tgbench
	./$(BENCH_BIN) run -quick -bin $(BIN) -config configs/bench.toml -out bench/results -peer "$$PEER" $(BENCH_FLAGS)

# bench-offload: make bench with the TUN offload path ([tun] offload = true,
# virtio-net header, TSO and GRO) as the PEER column, next to the default
# water path, in one run.
OFFLOAD_CONFIG := bin/bench-offload.toml
bench-offload: build
	$(need_root)
	sed 's/^name = "tungate0"$$/name = "tungate0"\noffload = true/' configs/bench.toml > $(OFFLOAD_CONFIG)
	grep -q '^offload = true' $(OFFLOAD_CONFIG)
	$(MAKE) --no-print-directory bench PEER="exec $(CURDIR)/$(BIN) run -c $(CURDIR)/$(OFFLOAD_CONFIG)"

# profile: a CPU profile of tungate under bulk load (TUNGATE_CPUPROFILE),
# then its top consumers.
profile: build
	$(need_root)
	@$(MAKE) --no-print-directory deps-bench
	$(GO) build -o $(BENCH_BIN) ./bench/cmd/tgbench
	./$(BENCH_BIN) profile -bin $(PROFILE_BIN) -config $(PROFILE_CONFIG) -o $(PROFILE_OUT)
	$(GO) tool pprof -top -nodecount=35 $(PROFILE_BIN) $(PROFILE_OUT)

# bench-micro: the Go micro-benchmarks of the hot paths.
bench-micro:
	$(need_root)
	$(GO) test -run '^$$' -bench . -benchmem ./conntrack/ ./policy/ ./stack/

clean:
	rm -rf bin .e2e.log
