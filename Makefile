# The whole set-up on a fresh Debian machine is `make run` or `make test`:
# both install what is missing first.
#
# One cargo profile (release) serves run, test and CI, so RocksDB's C++ is
# compiled once.

SHELL := /bin/bash
CARGO ?= cargo
PROFILE := --release
VENV := .venv
NATS_SERVER := $(VENV)/bin/nats-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := protobuf-compiler clang libclang-dev python3-venv
# Only the tests need a browser (the dashboard's browser test).
TEST_PACKAGES := chromium

.PHONY: bank-holidays bench bench-quick fuzz run cluster test build deps system-deps test-deps nats-server nextest lint fmt clean-var help deny deny-advisories cargo-deny pinned-images

help:
	@echo "make run    build and start the whole hub locally with demo data"
	@echo "make cluster  the same on a three-node NATS cluster (ports 4222-4224)"
	@echo "make test   install what is missing and run every test"
	@echo "make lint   cargo fmt --check, clippy -D warnings and make deny"
	@echo "make deny   licences, bans and sources of every dependency (deny.toml)"
	@echo "make bench-quick / make bench   the hub against raw JetStream (BENCHMARKS.md)"
	@echo "make fuzz   the fuzz targets, FUZZ_SECONDS each (fuzz/README.md)"
	@echo "make bank-holidays   refresh seeds/bank-holidays.json from GOV.UK (then rebuild the activity projection)"

# Installs the Debian packages given, those that are missing.
define apt-install-missing
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
endef

## Installs the Debian packages the build needs, when missing.
system-deps:
	$(call apt-install-missing,$(DEBIAN_PACKAGES))

## And what only the tests need: a browser, and the identity provider the
## dashboard's sign-in is tested against (tests/oidc, from the npm
## registry, pinned by its package-lock.json) under the machine's Node.js.
test-deps:
	$(call apt-install-missing,$(TEST_PACKAGES))
	@command -v npm >/dev/null || { echo "Installing Debian packages: nodejs npm"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	@[ -d tests/oidc/node_modules/oidc-provider ] || npm ci --prefix tests/oidc --no-audit --no-fund

## The pinned nats-server, in a project-local virtualenv.
$(NATS_SERVER): deploy/nats-server-requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r deploy/nats-server-requirements.txt
	@test -x $(NATS_SERVER)
	@touch $(NATS_SERVER)

nats-server: $(NATS_SERVER)

deps: system-deps nats-server

build: deps
	$(CARGO) build $(PROFILE) --workspace --bins

## cargo-nextest ships with the machine's toolchain; installed when missing.
nextest:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest

test: build nextest test-deps
	HUB_NATS_SERVER=$(abspath $(NATS_SERVER)) HUB_CHROMIUM=/usr/bin/chromium \
	  $(CARGO) nextest run $(PROFILE) --workspace --no-fail-fast
	@echo "Browser screenshots: $(CURDIR)/target/browser-artifacts/ (or under CARGO_TARGET_DIR)" 

run: build
	bash deploy/run-local.sh

## The same hub on a three-node NATS JetStream cluster on loopback
## (deploy/nats/cluster/node.conf), the stream kept on all three.
cluster: build
	HUB_LOCAL_CLUSTER=1 bash deploy/run-local.sh

## The hub against raw JetStream (BENCHMARKS.md): the full run, and the same
## measurements at a scale that finishes in under two minutes. Both write
## target/bench/latest.json.
bench: build
	HUB_NATS_SERVER=$(abspath $(NATS_SERVER)) target/release/hub-bench --scale full

bench-quick: build
	HUB_NATS_SERVER=$(abspath $(NATS_SERVER)) target/release/hub-bench --scale quick

lint: deps deny pinned-images
	$(CARGO) fmt --all --check
	$(CARGO) clippy $(PROFILE) --workspace --all-targets -- -D warnings

## What the hub may depend on (deny.toml): licences, banned crates and
## sources, all offline. cargo-deny (pinned) is installed when missing.
CARGO_DENY_VERSION := 0.20.2
cargo-deny:
	@$(CARGO) deny --version 2>/dev/null | grep -q "$(CARGO_DENY_VERSION)" || \
	  $(CARGO) install --locked cargo-deny@$(CARGO_DENY_VERSION)

deny: cargo-deny
	$(CARGO) deny check licenses bans sources

## Every base image of the container build pinned by digest, not by a tag
## that can move (deploy/Containerfile says how to update them).
pinned-images:
	@unpinned=$$(grep -nE '^FROM ' deploy/Containerfile | grep -vE '@sha256:[0-9a-f]{64}( |$$)'); \
	if [ -n "$$unpinned" ]; then echo "base image not pinned by digest in deploy/Containerfile:"; echo "$$unpinned"; exit 1; fi

## The RustSec advisories: fetches the advisory database from GitHub, so
## only where the network allows (docs/operations.md, "Dependencies").
deny-advisories: cargo-deny
	$(CARGO) deny check advisories

fmt:
	$(CARGO) fmt --all

## Fuzzing (fuzz/README.md): each target for FUZZ_SECONDS (default 600)
## from its corpus in fuzz/corpus/, which it grows. cargo-fuzz is installed
## when missing; RUSTC_BOOTSTRAP lets the stable toolchain take the
## sanitizer flags libFuzzer needs.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := request_validation person_ref event_decoding
fuzz: system-deps
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 || exit 1; \
	done

## England's bank holidays, for the activity projection's out-of-hours
## count: GOV.UK's own file, checked before it replaces the shipped one
## (services/activity-projection/src/calendar.rs says what follows).
BANK_HOLIDAYS_URL := https://www.gov.uk/bank-holidays.json
bank-holidays:
	curl -fsSL $(BANK_HOLIDAYS_URL) -o seeds/bank-holidays.json.new
	python3 -c 'import json,sys; d=json.load(open("seeds/bank-holidays.json.new")); assert d["england-and-wales"]["events"], "no england-and-wales events"'
	mv seeds/bank-holidays.json.new seeds/bank-holidays.json
	@echo "seeds/bank-holidays.json updated: build, then 'hubctl projection rebuild activity' to recount past transactions"

## Forget local data (NATS store, projections, the local hub secret).
clean-var:
	rm -rf var
