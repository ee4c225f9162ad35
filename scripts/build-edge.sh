#!/usr/bin/env bash
# Builds the worker (edge/build/) with worker-build, pointing it at the local
# wasm-bindgen, wasm-opt and esbuild so it never downloads anything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/edge"
WASM_BINDGEN_BIN=$(command -v wasm-bindgen) \
WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt" \
ESBUILD_BIN="$root/node_modules/.bin/esbuild" \
  worker-build --profile edge
