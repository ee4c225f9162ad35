#!/usr/bin/env bash
# `make dev`: the Graph emulator, the fan-out (reconciling
# examples/subscriptions.toml against the emulator) and the edge worker
# (wrangler dev / workerd) on loopback; the emulator sends a notification for
# every subscription every few seconds, and `graph-relay tail` in the
# foreground shows them arrive. Ctrl-C stops every process this script started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

EDGE_PORT=${EDGE_PORT:-8787}
FANOUT_PORT=${FANOUT_PORT:-50051}
INGEST_PORT=${INGEST_PORT:-50052}   # the edge publishes here (--ingest-listen)
METRICS_PORT=${METRICS_PORT:-9464}  # GET /metrics (--metrics-listen)
CLIENT_STATES=${CLIENT_STATES:-dev-client-state}
INGEST_TOKEN=${INGEST_TOKEN:-dev-ingest-token-change-me}
ADMIN_TOKEN=${ADMIN_TOKEN:-dev-admin-token-change-me}
SUBSCRIBER_TOKEN=${SUBSCRIBER_TOKEN:-dev-subscriber-token-change-me}
DATA_DIR=${GRAPH_RELAY_DATA_DIR:-$root/data}
EMULATOR_PORT=8790   # examples/subscriptions.toml points here
SUBSCRIPTIONS=${SUBSCRIPTIONS:-$root/examples/subscriptions.toml}
TRIGGER_EVERY=${TRIGGER_EVERY:-5}
export GRAPH_CLIENT_SECRET=${GRAPH_CLIENT_SECRET:-dev-emulator-client-secret}
export GRAPH_RELAY_CLIENT_STATE=${CLIENT_STATES%%,*}
logs="$root/target/dev"
mkdir -p "$logs"
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false \
       CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "dev: stopped"
}
trap cleanup INT TERM EXIT

# Each child leads its own process group, so wrangler's workerd dies with it.
setsid target/debug/graph-relay emulate --listen "127.0.0.1:$EMULATOR_PORT" \
  --client-secret "$GRAPH_CLIENT_SECRET" >"$logs/emulator.log" 2>&1 &
pids+=($!)
# The reconciler retries the handshake with backoff until the edge is up.
setsid target/debug/graph-relay serve --listen "127.0.0.1:$FANOUT_PORT" --ingest-listen "127.0.0.1:$INGEST_PORT" \
  --metrics-listen "127.0.0.1:$METRICS_PORT" --ingest-token "$INGEST_TOKEN" --data-dir "$DATA_DIR" --subscriber-token "$SUBSCRIBER_TOKEN" \
  --subscriptions-file "$SUBSCRIPTIONS" >"$logs/fanout.log" 2>&1 &
pids+=($!)
# validationTokens of rich notifications are signed by the emulator's key.
GRAPH_JWKS_URL=${GRAPH_JWKS_URL:-http://127.0.0.1:$EMULATOR_PORT/common/discovery/v2.0/keys}
GRAPH_APP_IDS=${GRAPH_APP_IDS:-00000000-0000-0000-0000-0000000000bb}
rich_vars=()
for name in GRAPH_JWKS_URL GRAPH_APP_IDS ALLOWED_TENANT_IDS; do
  if [ -n "${!name:-}" ]; then rich_vars+=(--var "$name:${!name}"); fi
done
setsid node_modules/.bin/wrangler dev --config wrangler.toml --env dev --ip 127.0.0.1 --port "$EDGE_PORT" \
  --show-interactive-dev-session=false --persist-to "$logs/wrangler-state" \
  --var "FANOUT_URL:http://127.0.0.1:$INGEST_PORT" --var "CLIENT_STATES:$CLIENT_STATES" \
  --var "FANOUT_TOKEN:$INGEST_TOKEN" --var "ADMIN_TOKEN:$ADMIN_TOKEN" "${rich_vars[@]}" >"$logs/edge.log" 2>&1 &
pids+=($!)

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "dev: a process exited; see $logs/*.log" >&2; exit 1; }
    done
    sleep 0.1
  done
  echo "dev: $name did not become ready; see $logs/" >&2; exit 1
}
wait_for "emulator" grep -q "graph-relay emulate listening on" "$logs/emulator.log"
wait_for "fan-out" grep -q "graph-relay listening on" "$logs/fanout.log"
wait_for "edge" curl -sf "http://127.0.0.1:$EDGE_PORT/healthz"

cat <<MSG
dev: fan-out  grpc://127.0.0.1:$FANOUT_PORT   (log: $logs/fanout.log, data: $DATA_DIR)
dev: ingest   grpc://127.0.0.1:$INGEST_PORT   (the edge's Publish calls)
dev: edge     http://127.0.0.1:$EDGE_PORT     (log: $logs/edge.log)
dev: Graph emulator http://127.0.0.1:$EMULATOR_PORT (log: $logs/emulator.log, state: /emulator/state)
dev: subscriptions from $SUBSCRIPTIONS: graph-relay subscriptions list --data-dir $DATA_DIR
dev: the emulator notifies every subscription every ${TRIGGER_EVERY}s; by hand:
  target/debug/graph-relay emulate trigger --kind chatMessage --count 3
  target/debug/graph-relay emulate lifecycle --subscription-id ID --event missed
dev: notificationUrl       http://127.0.0.1:$EDGE_PORT/graph/notifications
dev: lifecycleNotificationUrl http://127.0.0.1:$EDGE_PORT/graph/lifecycle
dev: send one:
  curl -i -H 'content-type: application/json' http://127.0.0.1:$EDGE_PORT/graph/notifications \\
    -d '{"value":[{"subscriptionId":"demo","clientState":"$CLIENT_STATES","changeType":"created","resource":"users/u1/messages/m1","tenantId":"t1"}]}'
dev: metrics: curl http://127.0.0.1:$METRICS_PORT/metrics
dev: dead letters: curl -H 'authorization: Bearer $ADMIN_TOKEN' http://127.0.0.1:$EDGE_PORT/admin/dead-letters
dev: notifications appear below (graph-relay tail); Ctrl-C stops everything.
MSG
GRAPH_RELAY_TOKEN="$SUBSCRIBER_TOKEN" target/debug/graph-relay tail --server "http://127.0.0.1:$FANOUT_PORT" &
pids+=($!)
# Graph sends notifications when things change; here, something changes every few seconds.
setsid bash -c "while sleep $TRIGGER_EVERY; do
    target/debug/graph-relay emulate trigger --emulator http://127.0.0.1:$EMULATOR_PORT >/dev/null 2>&1 || true
  done" &
pids+=($!)
wait -n "${pids[@]}" || true
