#!/usr/bin/env bash
# How long each thread of the relay's (or NATS core's) server and of the bench
# waited for a core after it woke, at 100 subscribers with "10%" filters at
# the relay's "50% of saturation" (docs/performance-history.md, "Waiting for a core").
#
#   scripts/sched-delay.sh [relay|nats] [RATE]     (default: relay 26500)
#
# `perf sched record` (system-wide, 2 s, from 2.5 s into the run) into
# /dev/shm, then `perf sched timehist`. Recording adds load of its own: the
# run's end-to-end p99 comes out higher than without it, so read the table
# for its shape (how often and how long a wake-up waits), not as that run's
# latency. Needs root or kernel.perf_event_paranoid <= 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
system=${1:-relay}
rate=${2:-26500}
cargo build --quiet --release -p graph-relay-fanout -p graph-relay-bench
data=$(mktemp -p /dev/shm sched-XXXXXX.data)
trap 'rm -f "$data"' EXIT
(sleep 2.5 && perf sched record -o "$data" -- sleep 2 >/dev/null 2>&1) &
target/release/graph-relay-bench fanout --subscribers 100 --systems "$system" \
    --filters 10% --rate "$rate" 2>/dev/null | grep "^| $system"
wait
perf sched timehist -i "$data" 2>/dev/null | python3 scripts/sched-delay.py
