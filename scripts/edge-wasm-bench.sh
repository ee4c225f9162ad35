#!/usr/bin/env bash
# The edge's request path as wasm, timed under Node (docs/performance-history.md, "Edge
# request path"): builds bench/edge-wasm with the worker's `edge` profile,
# generates the JS glue with the local wasm-bindgen, and runs the timing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --quiet --target wasm32-unknown-unknown --profile edge -p graph-relay-edge-wasm-bench
out=target/edge-wasm-bench
wasm-bindgen --target nodejs --out-dir "$out" target/wasm32-unknown-unknown/edge/graph_relay_edge_wasm_bench.wasm
node scripts/edge-wasm-bench.mjs "$out"
