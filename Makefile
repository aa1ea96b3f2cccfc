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

.PHONY: help run test bench lint build deno clean

help:
	@echo "make run    build kraken and run the demo tentacle (no Slack or cluster needed)"
	@echo "make test   install what the tests need and run them all with the race detector"
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

run: deno build
	$(BIN) tentacle validate examples/hello-fanout
	$(BIN) tentacle visualize examples/hello-fanout
	$(BIN) tentacle run examples/hello-fanout --input '{"name":"newcomer"}'

test: deno
	$(GO) test -race -count=1 ./...

bench: deno build
	$(GO) run ./hack/bench --kraken $(BIN)

lint: deno
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	DENO_NO_UPDATE_CHECK=1 $(DENO) check --quiet --no-remote --no-npm --no-config \
		--import-map engine/harness/import_map.json engine/harness/harness.ts examples/*/nodes/*.ts

clean:
	rm -rf bin $(CACHE)
