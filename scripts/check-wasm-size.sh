#!/usr/bin/env bash
# Fails when the built worker outgrows its budget: gzip size of
# edge/build/index_bg.wasm must stay under WASM_GZIP_BUDGET bytes (220 KB,
# decimal). The performance target is 250 KB; the budget sits closer to the
# wasm (~204 KB at `opt-level = 3`) so that a dependency slipping back in
# shows: the `url` crate alone was ~70 KB.
# Cloudflare's own limit is 3 MB compressed on the free plan; the budget keeps
# startup time and deploys fast, and makes growth a decision, not an accident.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${WASM_GZIP_BUDGET:-220000}
wasm=edge/build/index_bg.wasm
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "worker wasm: $raw bytes raw, $gz bytes gzip (budget $budget)"
if [ "$gz" -gt "$budget" ]; then
  echo "worker wasm is over budget by $((gz - budget)) bytes gzip" >&2
  exit 1
fi
