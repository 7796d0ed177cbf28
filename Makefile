# sandbox-webhook. `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

KUBE_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.6.16
ENVTEST_ASSETS := $(CURDIR)/bin/k8s/$(KUBE_VERSION)
export KUBEBUILDER_ASSETS := $(ENVTEST_ASSETS)

GO ?= go
TEST_FLAGS ?= -count=1 -timeout 30m
BENCH ?= .
BENCH_FLAGS ?= -benchmem -benchtime=1s -count=1
# Interleaved rounds of every target per concurrency in make bench-load.
LOAD_ROUNDS ?= 3

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/sandbox-webhook.
	$(GO) build -o bin/sandbox-webhook ./cmd/sandbox-webhook

.PHONY: lint
lint: ## gofmt check and go vet.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd test/deploy && $(GO) vet ./...

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for the envtest suites from pinned source (minutes, once).
	@KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) ENVTEST_ASSETS=$(ENVTEST_ASSETS) bash test/toolchain/build.sh

.PHONY: test
test: lint envtest ## Lint, then every test including the envtest, e2e and deployment suites.
	$(GO) test $(TEST_FLAGS) ./...
	@echo "deployment manifests (kustomize + cert-manager CA injection; its own module):"
	cd test/deploy && $(GO) test $(TEST_FLAGS) ./...

.PHONY: bench
bench: envtest ## Run the benchmarks and print their figures.
	$(GO) test -run '^$$' -bench '$(BENCH)' $(BENCH_FLAGS) ./...

.PHONY: bench-load
bench-load: envtest ## serve's webhooks over HTTPS beside null webhooks: CPU per request, p50/p99, ratios, peak RSS.
	$(GO) test -run '^$$' -bench 'Load' -benchtime $(LOAD_ROUNDS)x -timeout 30m ./test/loadbench/

# bench-api flags: -apibench.rounds, -apibench.creates, -apibench.tenants, -apibench.secrets,
# -apibench.load, -apibench.profiles (folder for serve's heap profiles), -apibench.cpuprofile.
APIBENCH_FLAGS ?=

.PHONY: bench-api
bench-api: envtest build ## Pod creates through the API server (none/mutating/both webhooks) and serve's memory.
	$(GO) test ./test/apibench -run '^$$' -bench . -benchtime=1x -count=1 -timeout 30m -args -apibench.binary=$(CURDIR)/bin/sandbox-webhook $(APIBENCH_FLAGS)

.PHONY: run
run: envtest build ## Show the demo, then keep a local API server + etcd with the webhook running.
	@echo "run: bin/sandbox-webhook dev --demo --keep-running: kube-apiserver and etcd on loopback, the webhook, the demo; Ctrl-C stops them all"
	@bin/sandbox-webhook dev --demo --keep-running

.PHONY: clean
clean: ## Remove build output (keeps the envtest toolchain in bin/k8s).
	rm -f bin/sandbox-webhook
