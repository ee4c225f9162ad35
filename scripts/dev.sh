#!/usr/bin/env bash
# `make dev`: the Graph emulator, the fan-out (reconciling
# examples/subscriptions.toml against the emulator) and the edge worker
# (wrangler dev / workerd) on loopback; the emulator sends a notification for
# every subscription every few seconds, and `graph-relay tail` in the
# foreground shows them arrive. Ctrl-C stops every process this script started.
#
# LOG=nats runs the distributed mode instead: a local 3-node NATS cluster
# (JetStream, stream replicas 3) and two fan-out replicas sharing its log;
# the edge publishes to both in turn, and one of them reconciles.
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
LOG=${LOG:-redb}
case "$LOG" in redb|nats) ;; *) echo "dev: LOG is redb (the default) or nats, not $LOG" >&2; exit 2 ;; esac
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
serve() { # replica number, main port, ingest port, metrics port, extra flags...
  local replica=$1 main=$2 ingest=$3 metrics=$4; shift 4
  setsid target/debug/graph-relay serve --listen "127.0.0.1:$main" --ingest-listen "127.0.0.1:$ingest" \
    --metrics-listen "127.0.0.1:$metrics" --ingest-token "$INGEST_TOKEN" --subscriber-token "$SUBSCRIBER_TOKEN" \
    --subscriptions-file "$SUBSCRIPTIONS" "$@" >"$logs/fanout$replica.log" 2>&1 &
  pids+=($!)
}
if [ "$LOG" = nats ]; then
  routes=nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224
  for n in 0 1 2; do
    setsid nats-server -a 127.0.0.1 -p $((4222 + n)) -n "n$n" -js -sd "$logs/nats-$n" \
      --cluster_name relay --cluster "nats://127.0.0.1:$((6222 + n))" --routes "$routes" >"$logs/nats-$n.log" 2>&1 &
    pids+=($!)
  done
  nats_urls=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
  # The stream needs the cluster's JetStream leader elected first.
  for _ in $(seq 1 300); do grep -q "metadata leader" "$logs/nats-0.log" 2>/dev/null && break; sleep 0.1; done
  shared=(--log nats --nats-url "$nats_urls" --nats-replicas 3)
  serve 1 "$FANOUT_PORT" "$INGEST_PORT" "$METRICS_PORT" --data-dir "$DATA_DIR/replica-1" "${shared[@]}"
  serve 2 $((FANOUT_PORT + 10)) $((INGEST_PORT + 10)) $((METRICS_PORT + 1)) --data-dir "$DATA_DIR/replica-2" "${shared[@]}"
  fanout_urls=http://127.0.0.1:$INGEST_PORT,http://127.0.0.1:$((INGEST_PORT + 10))
else
  serve "" "$FANOUT_PORT" "$INGEST_PORT" "$METRICS_PORT" --data-dir "$DATA_DIR"
  fanout_urls=http://127.0.0.1:$INGEST_PORT
fi
# validationTokens of rich notifications are signed by the emulator's key.
GRAPH_JWKS_URL=${GRAPH_JWKS_URL:-http://127.0.0.1:$EMULATOR_PORT/common/discovery/v2.0/keys}
GRAPH_APP_IDS=${GRAPH_APP_IDS:-00000000-0000-0000-0000-0000000000bb}
rich_vars=()
for name in GRAPH_JWKS_URL GRAPH_APP_IDS ALLOWED_TENANT_IDS; do
  if [ -n "${!name:-}" ]; then rich_vars+=(--var "$name:${!name}"); fi
done
setsid node_modules/.bin/wrangler dev --config wrangler.toml --env dev --ip 127.0.0.1 --port "$EDGE_PORT" \
  --show-interactive-dev-session=false --persist-to "$logs/wrangler-state" \
  --var "FANOUT_URL:$fanout_urls" --var "CLIENT_STATES:$CLIENT_STATES" \
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
for log in "$logs"/fanout*.log; do wait_for "fan-out" grep -q "graph-relay listening on" "$log"; done
wait_for "edge" curl -sf "http://127.0.0.1:$EDGE_PORT/healthz"

cat <<MSG
dev: fan-out  grpc://127.0.0.1:$FANOUT_PORT   (log: $logs/fanout*.log, data: $DATA_DIR, log backend: $LOG)
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
if [ "$LOG" = nats ]; then
  cat <<MSG
dev: NATS cluster $nats_urls (logs: $logs/nats-*.log)
dev: replica 2 grpc://127.0.0.1:$((FANOUT_PORT + 10)), metrics 127.0.0.1:$((METRICS_PORT + 1)); the edge publishes to both
dev: kill one replica (or NATS node) and watch the other carry on
MSG
fi
GRAPH_RELAY_TOKEN="$SUBSCRIBER_TOKEN" target/debug/graph-relay tail --server "http://127.0.0.1:$FANOUT_PORT" &
pids+=($!)
# Graph sends notifications when things change; here, something changes every few seconds.
setsid bash -c "while sleep $TRIGGER_EVERY; do
    target/debug/graph-relay emulate trigger --emulator http://127.0.0.1:$EMULATOR_PORT >/dev/null 2>&1 || true
  done" &
pids+=($!)
wait -n "${pids[@]}" || true
