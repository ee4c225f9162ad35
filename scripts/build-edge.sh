#!/usr/bin/env bash
# Builds the worker (edge/build/) with worker-build, pointing it at the local
# wasm-bindgen, wasm-opt and esbuild so it never downloads anything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/edge"
# Source paths end up in the wasm (panic locations, the generated protobuf
# code's include): remapped, the wasm is the same wherever the repository
# and the cargo registry live, and its size against the budget with it.
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$root=/graph-relay --remap-path-prefix=$registry=/registry" \
WASM_BINDGEN_BIN=$(command -v wasm-bindgen) \
WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt" \
ESBUILD_BIN="$root/node_modules/.bin/esbuild" \
  worker-build --profile edge
