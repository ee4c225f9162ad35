#!/usr/bin/env bash
# Where workerd's CPU goes for one notification request, sampled with perf:
# the Rust worker beside the queue floor (bench/js-peer/queue-floor.js: read
# the body, one sendBatch, 202), both under `wrangler dev` as edge_compare runs
# them (no consumer, fast path off, REQUEST_LOGS=errors)
# (docs/benchmarks.md, "Where the cost goes, sampled").
#
#   scripts/profile-edge.sh [SECONDS]
#
# For each worker and each request (GET /healthz; a notification POST)
# it drives one connection with wrk, records every workerd process of that
# `wrangler dev` with perf for SECONDS (default 8) at 4 kHz, and prints the
# samples per request in microseconds: for the process that runs the worker
# and for wrangler's dev proxy in front of it, split into code V8 generated
# at run time (the wasm and the JavaScript: "JIT") and workerd's own code
# (its runtime, V8's, the allocator, the kernel's on its behalf). The
# proxy and the floor are what any worker pays; the worker process's JIT is
# the edge's own code. perf shares the 2 cores, so compare rows of one run,
# not runs.
#
#   scripts/profile-edge.sh --ratio [ROUNDS [MAIN...]]
#
# Without perf: the Rust worker, the JavaScript peer (bench/js-peer/worker.js)
# and the queue floor take turns for ROUNDS (default 3) rounds of 10 s of
# POSTs each, each round starting one worker further along, and each row
# is the worker process's CPU per POST from /proc, the dev proxy's, and
# their ratio. The proxy does the same work for every
# worker, so the ratio cancels the machine's drift, which moves the
# microseconds of one worker by a fifth within minutes. Each MAIN (a path
# from the repository's root) is one more worker taking its turn, named by
# its file: another entry for the same build, to compare with the current
# one, e.g. an earlier `edge/src/worker_glue/entry.mjs` saved beside it.
# A summary follows the rounds (`profile-edge-ratio-summary.py`): each
# worker's median ratio, and its own CPU per POST (its ratio less the queue
# floor's, round by round) with a 95% interval for that median; then the
# Rust worker over the peer, and with MAINs, each over the one before it
# from the floor to the Rust worker: the entries of bench/edge-steps/ take
# the Rust worker's quick route apart a step at a time.
#
# The body is 10 basic items; with PROFILE_EDGE_CASE=rich, 10 rich items and
# one validationToken, signed by a key this script makes and serves as the
# workers' JWKS: the same token on every POST, as Graph sends it, so after
# the first POST every worker has it verified (the "known token" case).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mains=()
if [ "${1:-}" = --ratio ]; then mode=ratio rounds=${2:-3} seconds=10 mains=("${@:3}"); else mode=profile seconds=${1:-8}; fi
[ "$mode" = ratio ] || command -v perf >/dev/null || (apt-get update -qq && apt-get install -y -qq linux-perf)
command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
[ -f edge/build/index.js ] || make edge
case=${PROFILE_EDGE_CASE:-basic}
# Each request kind as the table names it.
declare -A requests=([health]="GET /healthz" [post]="POST, 10 basic items")
case $case in
    basic) ;;
    rich) requests[post]="POST, 10 rich items, known token"
        python3 -c 'import cryptography' 2>/dev/null || (apt-get update -qq && apt-get install -y -qq python3-cryptography) ;;
    *) echo "PROFILE_EDGE_CASE is basic or rich, not $case" >&2 && exit 2 ;;
esac

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The test configuration: the repository's [env.dev] without its consumers.
python3 - "$work" "$root" "$case" "${mains[@]}" <<'PY'
import base64, json, os, sys, time
work, root, case, mains = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
TENANT, APP_ID = "t", "11111111-2222-3333-4444-555555555555"
toml = open(f"{root}/wrangler.toml").read()
blocks = [b for b in toml.split("\n\n") if "[[env.dev.queues.consumers]]" not in b]
toml = "\n\n".join(blocks)
entry = "edge/src/worker_glue/entry.mjs"
workers = [("rust", entry), ("peer", "bench/js-peer/worker.js"), ("floor", "bench/js-peer/queue-floor.js")]
workers += [(f"main{index}", path) for index, path in enumerate(mains)]
for name, main in [(name, f"{root}/{path}") for name, path in workers]:
    open(f"{work}/{name}.toml", "w").write(toml.replace(f'main = "{entry}"', f'main = "{main}"'))
def item(i):
    return {
        "id": f"id-Users/u/Messages/m-{i}", "subscriptionId": f"sub-{i}",
        "subscriptionExpirationDateTime": "2026-12-01T10:00:00.0000000Z", "clientState": "profile-client-state",
        "changeType": "created", "resource": f"Users/u/Messages/m-{i}", "tenantId": TENANT,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "@odata.id": f"Users/u/Messages/m-{i}",
                         "@odata.etag": "W/\"CQAAABYAAAD\"", "id": f"m-{i}"},
    }
items = [item(i) for i in range(10)]
if case == "rich":
    for rich in items:
        rich["encryptedContent"] = {"data": "ZGF0YQ==", "dataKey": "a2V5", "dataSignature": "c2ln",
                                    "encryptionCertificateId": "c1", "encryptionCertificateThumbprint": "t"}
collection = {"value": items}
if case == "rich":
    # One key in a JWKS the workers fetch (GRAPH_JWKS_URL), and one token
    # it signed, as Graph sends one per app and tenant for an hour.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    part = lambda value: b64(json.dumps(value).encode())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = key.public_key().public_numbers().n
    jwk = {"kty": "RSA", "use": "sig", "kid": "profile", "n": b64(n.to_bytes(256, "big")), "e": "AQAB"}
    os.makedirs(f"{work}/jwks")
    open(f"{work}/jwks/keys.json", "w").write(json.dumps({"keys": [jwk]}))
    now = int(time.time())
    claims = {"aud": APP_ID, "iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT,
              "appid": "0bf30f3b-4a52-48df-9a82-234910c4a086", "iat": now - 60, "nbf": now - 60, "exp": now + 6 * 3600}
    signed = f"{part({'alg': 'RS256', 'kid': 'profile', 'typ': 'JWT'})}.{part(claims)}"
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    collection["validationTokens"] = [f"{signed}.{b64(signature)}"]
open(f"{work}/body.json", "w").write(json.dumps(collection))
open(f"{work}/post.lua", "w").write(
    f'local f = io.open("{work}/body.json", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
    'wrk.headers["content-type"] = "application/json"\n')
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Settings of the rich case: the JWKS, served here, and the token's audience.
rich_vars=()
if [ "$case" = rich ]; then
    jwks_port=$(free_port)
    setsid python3 -m http.server "$jwks_port" --bind 127.0.0.1 --directory "$work/jwks" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 1 40); do curl -sf "http://127.0.0.1:$jwks_port/keys.json" >/dev/null && break; sleep 0.25; done
    rich_vars=(--var "GRAPH_JWKS_URL:http://127.0.0.1:$jwks_port/keys.json"
        --var GRAPH_APP_IDS:11111111-2222-3333-4444-555555555555)
fi

# Starts `wrangler dev` for config $1 and sets port_$1 once /healthz answers.
start() {
    local name=$1 port inspector
    port=$(free_port) inspector=$(free_port)
    printf -v "port_$name" '%s' "$port"
    WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true \
        setsid node_modules/.bin/wrangler dev --env dev --config "$work/$name.toml" --ip 127.0.0.1 --port "$port" \
        --inspector-port "$inspector" --show-interactive-dev-session=false --persist-to "$work/state-$name" \
        --var FANOUT_URL:http://127.0.0.1:9 --var CLIENT_STATES:profile-client-state \
        --var FANOUT_TOKEN:profile-ingest-token --var FAST_PATH:off --var REQUEST_LOGS:errors \
        --var ADMIN_TOKEN:profile-admin-token "${rich_vars[@]}" >"$work/wrangler-$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 180); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
        sleep 0.5
    done
    echo "wrangler dev ($name) did not start:" >&2 && tail -20 "$work/wrangler-$name.log" >&2 && exit 1
}

# Every workerd process serving port $1, comma-separated; the one that runs
# the worker (it has the inspector) first, then the dev proxy.
workerd_pids() {
    local listener group pid worker="" proxy=""
    listener=$(ss -ltnp | grep "127.0.0.1:$1 " | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    group=$(ps -o pgid= -p "$listener" | tr -d ' ')
    for pid in $(ps -eo pgid=,comm=,pid= | awk -v g="$group" '$1 == g && $2 == "workerd" { print $3 }'); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- --inspector-addr; then worker=$pid; else proxy=$pid; fi
    done
    echo "$worker,$proxy"
}

# The threads of process $1, space-separated (perf reports samples by thread).
threads() { ls "/proc/$1/task" | paste -sd' '; }

# Samples workerd while wrk drives one request kind; prints its table row.
profile() {
    local name=$1 label=$2 port=$3 kind=$4 lua="" path=/healthz processes roles
    [ "$kind" = post ] && lua="-s $work/post.lua" path=/graph/notifications
    processes=$(workerd_pids "$port")
    roles="$(threads "${processes%,*}"),$(threads "${processes#*,}")"
    # shellcheck disable=SC2086
    wrk -t1 -c1 -d"$((seconds + 3))s" $lua "http://127.0.0.1:$port$path" >"$work/$name-$kind.wrk" &
    local load=$!
    sleep 1
    perf record -q -F 4000 -p "$processes" -o "$work/$name-$kind.data" -- sleep "$seconds" >/dev/null 2>&1
    wait "$load"
    perf report -i "$work/$name-$kind.data" --no-children -g none -n --sort pid,dso --stdio 2>/dev/null \
        | python3 scripts/profile-edge-summary.py "$label" "${requests[$kind]}" "$seconds" "$work/$name-$kind.wrk" "$roles"
}

# The worker process's and the dev proxy's CPU per POST while wrk drives
# POSTs at port $2 for $seconds; prints its table row.
ratio() {
    local label=$1 port=$2 round=$3 processes worker proxy before after
    processes=$(workerd_pids "$port")
    worker=${processes%,*} proxy=${processes#*,}
    wrk -t1 -c1 -d"$((seconds + 2))s" -s "$work/post.lua" "http://127.0.0.1:$port/graph/notifications" >"$work/ratio.wrk" &
    local load=$!
    sleep 1
    before="$(ticks "$worker") $(ticks "$proxy")"
    sleep "$seconds"
    after="$(ticks "$worker") $(ticks "$proxy")"
    wait "$load"
    all_accepted "$work/ratio.wrk"
    python3 - "$label" "$round" "$seconds" "$(getconf CLK_TCK)" "$before" "$after" "$work/ratio.wrk" <<'PY'
import re, sys
label, round_, seconds, tck, before, after, wrk = sys.argv[1:]
(w0, p0), (w1, p1) = ([int(t) for t in x.split()] for x in (before, after))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", open(wrk).read()).group(1))
per_post = lambda ticks: ticks / int(tck) / (int(seconds) * rps) * 1e6
print(f"| {label} | {round_} | {per_post(w1 - w0):.0f} µs | {per_post(p1 - p0):.0f} µs | {(w1 - w0) / (p1 - p0):.3f} | {rps:.0f} |")
PY
}

# POSTs for 6 s to each port given: the JIT tiers the wasm and the JavaScript
# up under load. Then the Rust worker must have accepted them all: a token
# it refused would be quarantined, a cheaper path than the one measured
# (the JavaScript peer checks the same token by the same rules, silently).
warm_up() {
    for port in "$@"; do
        wrk -t1 -c1 -d6s -s "$work/post.lua" "http://127.0.0.1:$port/graph/notifications" >"$work/warm-up.wrk"
        all_accepted "$work/warm-up.wrk"
    done
    local quarantined
    quarantined=$(curl -sf -H "authorization: Bearer profile-admin-token" "http://127.0.0.1:$port_rust/admin/quarantine" | head -1)
    [ "$quarantined" = "0 quarantined batches" ] || { echo "the Rust worker refused the body: $quarantined" >&2; exit 1; }
}

# Fails when wrk's report $1 counts an answer other than 2xx.
all_accepted() {
    if grep -q "Non-2xx" "$1"; then echo "answers other than 202:" >&2 && cat "$1" >&2 && exit 1; fi
}

# CPU ticks (user and system) of process $1 so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

if [ "$mode" = ratio ]; then
    # Each worker's config name (see above) and its row's label.
    names=(rust peer floor) labels=("Rust (wasm)" "JavaScript peer" "queue floor")
    for index in "${!mains[@]}"; do names+=("main$index") labels+=("$(basename "${mains[$index]}")"); done
    ports=()
    for name in "${names[@]}"; do
        start "$name" && port="port_$name" && ports+=("${!port}")
    done
    warm_up "${ports[@]}"
    echo "| worker | round | worker process per POST | dev proxy per POST | ratio | requests/s |"
    echo "|---|---:|---:|---:|---:|---:|"
    # Each round starts one worker further along, so that no worker keeps
    # one place in the turns (after the same worker, at the same point of
    # the host's drift) through the whole run.
    for round in $(seq 1 "$rounds"); do
        for turn in "${!names[@]}"; do
            index=$(((turn + round - 1) % ${#names[@]}))
            ratio "${labels[$index]}" "${ports[$index]}" "$round"
        done
    done | tee "$work/rounds.md"
    # With more entries: what each adds over the one before, from the
    # floor through them to the Rust worker.
    steps=()
    [ ${#mains[@]} -eq 0 ] || steps=(--steps "$(IFS=,; echo "${labels[2]},${labels[*]:3},${labels[0]}")")
    python3 scripts/profile-edge-ratio-summary.py "${steps[@]}" <"$work/rounds.md"
    exit 0
fi

start rust
start floor
warm_up "$port_rust" "$port_floor"

echo "| worker | request | requests/s | worker process: JIT | worker process: workerd | dev proxy | total |"
echo "|---|---|---:|---:|---:|---:|---:|"
for kind in health post; do
    profile rust "Rust (wasm)" "$port_rust" "$kind"
    profile floor "queue floor" "$port_floor" "$kind"
done
