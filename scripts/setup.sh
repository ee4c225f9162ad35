#!/usr/bin/env bash
# Installs what building and testing Graph Relay needs, idempotently: every
# step checks first and skips what is already there. Offline-safe: everything
# comes from crates.io, npm, PyPI or Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
# wasm-bindgen-cli must equal the wasm-bindgen crate that Cargo.lock pins.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)

say() { printf 'setup: %s\n' "$*"; }

command -v cargo >/dev/null || { echo "setup: cargo (rustup) is required" >&2; exit 1; }
command -v node >/dev/null || { say "installing nodejs and npm"; apt-get update -qq && apt-get install -y -qq nodejs npm; }
# The shared log's tests (`--log nats`) start their own NATS servers and clusters.
command -v nats-server >/dev/null || { say "installing nats-server"; apt-get update -qq && apt-get install -y -qq nats-server; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install -q worker-build --version "$WORKER_BUILD_VERSION"
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# npm ci wipes node_modules, so run it only when the lock file changed:
# wrangler at the top, the Node subscriber example's gRPC packages in examples/node.
npm_install() {
  local dir=$1 check=$2
  local stamp=$dir/node_modules/.graph-relay-lock.sha256
  local want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -e "$dir/node_modules/$check" ]; then
    say "installing npm packages from $dir/package-lock.json"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  fi
}
npm_install . .bin/wrangler
npm_install examples/node @grpc/grpc-js

# Stock gRPC clients from Python for the end-to-end tests and the Python
# subscriber example, in a venv of the project's own (target/python),
# reinstalled only when the requirements change.
venv=target/python
requirements=(tests/python/requirements.txt examples/python/requirements.txt)
want=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.graph-relay-requirements.sha256" 2>/dev/null)" != "$want" ]; then
  say "installing the Python test clients into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${requirements[@]/#/-r}"
  echo "$want" > "$venv/.graph-relay-requirements.sha256"
fi
