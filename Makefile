# The Kraken. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO          ?= go
DENO_VERSION := 2.9.6
CACHE       := $(CURDIR)/.cache
DENO_ARCH   := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
DENO        := $(CACHE)/deno/node_modules/@deno/linux-$(DENO_ARCH)-glibc/deno
BIN         := $(CURDIR)/bin/kraken
export KRAKEN_DENO := $(DENO)
# The test control plane (hack/kubetest) is built once into a cache outside
# the clone, so a kept machine stays warm across clones and `make clean`.
KUBETEST_CACHE ?= $(HOME)/.cache/kube-testenv
KUBETEST    := hack/kubetest/kube-testenv.sh
# Longer than go test's 10 min default: the k8s tests run real engines.
TEST_TIMEOUT ?= 30m

.PHONY: help run test bench lint build deno clean cluster cluster-stop cluster-smoke

help:
	@echo "make run    build kraken and start kraken dev: this terminal becomes a Slack channel with the bot in it"
	@echo "make test   install what the tests need and run them all with the race detector,"
	@echo "            against a real Kubernetes control plane on 127.0.0.1 (built once, ~10 min)"
	@echo "make cluster        start that control plane and leave it running; prints export KUBECONFIG=..."
	@echo "make cluster-stop   stop it"
	@echo "make cluster-smoke  check it with client-go (RBAC, quota, Deployments, pod logs)"
	@echo "make bench  measure the engine and print the figures"
	@echo "make lint   gofmt, go vet, and a type check of the node harness and examples"

# Deno comes from the npm registry, pinned, into a cache this Makefile owns.
# The platform package carries the binary, so no install script has to run.
deno: $(DENO)
$(DENO):
	@command -v npm >/dev/null || { echo "npm is needed to install Deno: apt-get install -y npm"; exit 1; }
	mkdir -p $(CACHE)/deno
	npm install --prefix $(CACHE)/deno --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
		@deno/linux-$(DENO_ARCH)-glibc@$(DENO_VERSION)
	@$(DENO) --version | head -1

build:
	$(GO) build -o $(BIN) ./cmd/kraken

# Interactive: it reads commands from the terminal until Ctrl-D; with no
# terminal (stdin at its end) it stops at once. State is kept in
# .kraken-dev/ between runs.
run: deno build
	$(BIN) dev --data .kraken-dev --examples examples

# with-cluster.sh starts the control plane unless it is up, exports
# KUBECONFIG to the tests, and stops it afterwards (even when they fail)
# unless it was already running.
# The object-store tests run against versitygw, an S3 server built once
# from Go modules (~2 min cold) into a cache outside the clone.
test: deno
	vgw=$$(hack/tools/versitygw.sh) && KRAKEN_VERSITYGW=$$vgw \
	KUBETEST_CACHE="$(KUBETEST_CACHE)" hack/kubetest/with-cluster.sh \
		$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

cluster:
	@kc=$$($(KUBETEST) "$(KUBETEST_CACHE)" start) && echo "export KUBECONFIG=$$kc"

cluster-stop:
	$(KUBETEST) "$(KUBETEST_CACHE)" stop

cluster-smoke:
	KUBETEST_CACHE="$(KUBETEST_CACHE)" hack/kubetest/with-cluster.sh \
		sh -c 'cd hack/kubetest && $(GO) run ./smoke'

# One run prints every figure: the engine's, then provisioning and deploy
# against the real control plane (p50/p95 in ms, API requests per call).
bench: deno build
	$(GO) run ./hack/bench --kraken $(BIN)
	@echo
	KUBETEST_CACHE="$(KUBETEST_CACHE)" hack/kubetest/with-cluster.sh \
		$(GO) test -run '^$$' -bench 'Provision|Deploy' -benchtime 30x ./k8s
	@echo
	KUBETEST_CACHE="$(KUBETEST_CACHE)" hack/kubetest/with-cluster.sh \
		$(GO) test -run '^$$' -bench 'ServeAck|Failover' -benchtime 1x ./cmd/kraken
	@echo
	$(GO) test -run '^$$' -bench 'TenThousand|SharedState' -benchtime 1x ./bot/schedule
	$(GO) test -run '^$$' -bench 'WebhookToRun' -benchtime 2000x ./bot/hooks
	@echo
	vgw=$$(hack/tools/versitygw.sh) && KRAKEN_VERSITYGW=$$vgw \
		$(GO) test -run '^$$' -bench 'Exoskeleton' -benchtime 3x ./cmd/kraken

lint: deno
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	DENO_NO_UPDATE_CHECK=1 $(DENO) check --quiet --no-remote --no-npm --no-config \
		--import-map engine/harness/import_map.json engine/harness/harness.ts examples/*/nodes/*.ts

clean:
	rm -rf bin $(CACHE)
