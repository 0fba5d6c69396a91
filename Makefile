# make run    a relay on http://127.0.0.1:8090 with a demo terminal (dev mode)
# make test   installs what the tests need, builds, runs every test

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

RELAY := .build/release/relay
PYTEST := .venv/bin/pytest

.PHONY: setup build run test bench

setup:
	@scripts/setup.sh

build: setup
	swift build -c release --product relay

run: build
	exec $(RELAY) --dev --web-root .cache/web

test: setup
	swift build --build-tests
	swift test --skip-build --no-parallel
	scripts/tsan.sh
	swift build -c release --product relay
	swift build -c release --product loadgen
	$(PYTEST) -q Tests/integration

# Side by side with nats-server (Benchmarks/compare.py); not part of the tests.
bench: setup
	swift build -c release --product relay
	swift build -c release --product loadgen
	.venv/bin/python Benchmarks/compare.py
