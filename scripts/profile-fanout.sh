#!/usr/bin/env bash
# A CPU profile of one fan-out server under the bench's paced load, as a
# flamegraph and a table of where its samples go (docs/performance-history.md, "Where the
# server's CPU goes, as flamegraphs").
#
#   scripts/profile-fanout.sh [relay|nats] [FILTER] [RATE] [SUBSCRIBERS]
#
# Defaults: relay, 10%, 26500 notifications/s (50% of the relay's saturation
# at 100 × "10%" in 2026-11-29, bb1be54), 100 subscribers. Runs `graph-relay-bench
# fanout --rate` for 15 s, waits until its server is up and warm, records the
# server process with perf for 6 s, renders docs/flamegraph-<system>-<filter>.svg
# with inferno (the folded stacks stay in target/) and prints the summary (scripts/profile-summary.py). perf costs
# CPU on the same 2 cores, so the bench's latencies in this run are not the
# benchmark's: only the shares are the point.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
system=${1:-relay}
filter=${2:-10%}
rate=${3:-26500}
subscribers=${4:-100}
case "$system" in
relay) pattern="graph-relay serve" call_graph="dwarf,16384" ;;
# Debian's nats-server is a stripped Go binary: Go keeps frame pointers, and
# without symbols only the kernel's frames are named.
nats) pattern="nats-server" call_graph="fp" ;;
*) echo "system: relay or nats, not $system" >&2 && exit 2 ;;
esac
command -v perf >/dev/null || (apt-get update -qq && apt-get install -y -qq linux-perf)
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno
cargo build --quiet --release -p graph-relay-fanout -p graph-relay-bench

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/graph-relay-bench fanout --subscribers "$subscribers" --systems "$system" \
    --filters "$filter" --rate "$rate" --seconds 15 --in-flight 128 >"$work/bench.out" 2>&1 &
bench=$!
server=""
for _ in $(seq 1 100); do
    server=$(pgrep -f "$pattern" | head -1 || true)
    [ -n "$server" ] && break
    sleep 0.1
done
[ -n "$server" ] || { cat "$work/bench.out" >&2; echo "no $pattern process appeared" >&2; exit 1; }
# Record once every subscriber and the publisher hold a connection to the server
# (101 with 100 subscribers), then skip 3 s of ramp-up (nats-server's heap grows in
# the first seconds: page faults were 19% of one profile taken 1 s in).
for _ in $(seq 1 300); do
    connections=$(ss -Htnp state established 2>/dev/null | grep -c "pid=$server," || true)
    [ "$connections" -gt "$subscribers" ] && break
    sleep 0.1
done
[ "$connections" -gt "$subscribers" ] || { echo "only $connections connections to the server after 30 s" >&2; exit 1; }
sleep 3
perf record --quiet -F 499 -g --call-graph "$call_graph" -p "$server" -o "$work/perf.data" -- sleep 6
wait "$bench"
name="$system-${filter/\%/pct}"
folded="target/profile-$name.folded"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$folded"
mkdir -p docs
inferno-flamegraph --minwidth 0.2 --countname "ns of CPU" \
    --title "$system, $subscribers subscribers, filter $filter, $rate notifications/s" \
    "$folded" >"docs/flamegraph-$name.svg"
grep -A4 "^| system" "$work/bench.out" || true
python3 scripts/profile-summary.py "$folded" "$system, $subscribers × $filter, $rate/s"
echo "flamegraph: docs/flamegraph-$name.svg, stacks: $folded"
