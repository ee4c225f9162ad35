# Graph Relay: the two entry points are `make dev` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

EDGE_SOURCES := $(shell find edge/src proto -type f) edge/Cargo.toml Cargo.lock

.PHONY: help setup dev test edge fanout lint bench bench-setup bench-wasm-core profile profile-edge latency-curve clean

help:
	@echo "make dev   - run fan-out + edge (wrangler dev) locally, tail notifications"
	@echo "make test  - install what is missing, build, run every test"

## Installs toolchain pieces and npm packages that are missing (idempotent).
setup:
	@scripts/setup.sh

## The worker, built with worker-build into edge/build/.
edge: setup edge/build/index.js
edge/build/index.js: $(EDGE_SOURCES)
	scripts/build-edge.sh

## The fan-out binary (target/debug/graph-relay), and the Rust subscriber
## example the tests run beside the Python and Node ones.
fanout:
	cargo build -p graph-relay-fanout
	cargo build -p graph-relay-tests --example subscriber

dev: setup edge fanout
	scripts/dev.sh

test: setup edge fanout lint
	scripts/check-wasm-size.sh
	node --test edge/tests/
	cargo test --workspace

## Measurements (docs/performance-history.md); not part of `make test`.
bench: bench-setup
	cargo build --release -p graph-relay-fanout -p graph-relay-bench
	target/release/graph-relay-bench durable
	cargo bench -p graph-relay-bench --bench edge_core
	$(MAKE) bench-wasm-core
	cargo bench -p graph-relay-bench --bench catch_up
	cargo bench -p graph-relay-bench --bench edge_load
	cargo bench -p graph-relay-bench --bench edge_latency
	cargo bench -p graph-relay-bench --bench edge_compare
	target/release/graph-relay-bench fsync
	target/release/graph-relay-bench fanout --csv target/bench-fanout.csv
	target/release/graph-relay-bench idle
	python3 scripts/plot-bench.py target/bench-fanout.csv docs/bench-fanout.png

## The edge's protocol core built to wasm and timed in V8 (Node), a step
## at a time (docs/benchmarks.md, "The protocol core as wasm").
bench-wasm-core: setup
	cargo build --release --target wasm32-unknown-unknown -p graph-relay-wasm-core-bench
	node bench/wasm-core/run.mjs target/wasm32-unknown-unknown/release/graph_relay_wasm_core_bench.wasm

## Flamegraphs of the relay and NATS core at 50% of the relay's saturation,
## 100 subscribers (docs/performance-history.md, "2026-11-29, d9a807d"); writes docs/flamegraph-*.svg.
profile: bench-setup
	scripts/profile-fanout.sh relay 10% 26500
	scripts/profile-fanout.sh nats 10% 26500
	scripts/profile-fanout.sh relay all 3850
	scripts/profile-fanout.sh nats all 3850

## Where workerd's CPU goes per notification request, the Rust worker beside
## the queue floor, sampled with perf (docs/benchmarks.md, "Where the cost goes, sampled").
profile-edge: bench-setup
	scripts/profile-edge.sh

## p50/p99 against offered load, relay and NATS core, 100 subscribers, 5 rounds
## (docs/performance-history.md, "Latency against load"); writes docs/bench-latency-vs-load.png.
latency-curve: bench-setup
	scripts/latency-curve.sh 5

## What only the benchmarks need: wrk (Debian), matplotlib (PyPI); setup
## installs nats-server.
bench-setup: setup edge
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	@python3 -c "import matplotlib" 2>/dev/null || pip install -q matplotlib

lint:
	cargo fmt --all --check
	python3 scripts/check-import-cycles.py
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p graph-relay-fanout --no-default-features -- -D warnings
	cargo clippy -p graph-relay-edge --target wasm32-unknown-unknown -- -D warnings

clean:
	cargo clean
	rm -rf edge/build node_modules target/dev
