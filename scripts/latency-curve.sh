#!/usr/bin/env bash
# p50 and p99 against offered load, the relay beside NATS core, at 100
# subscribers (docs/performance-history.md, "Latency against load"). "50% of saturation" is
# one point of this curve; the curve shows where each system's p99 crosses the
# 5 ms target on this machine, and how far a run's noise moves it.
#
#   scripts/latency-curve.sh [ROUNDS]     (default 2; ~4 minutes per round; make latency-curve runs 5)
#
# Writes target/latency-curve.csv (graph-relay-bench's columns plus the
# offered rate) and docs/bench-latency-vs-load.png.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${1:-2}
cargo build --quiet --release -p graph-relay-fanout -p graph-relay-bench
out=target/latency-curve.csv
run=$(mktemp)
trap 'rm -f "$run"' EXIT
# Notifications/s offered; "all" delivers each to 100 subscribers, "10%" to 10.
declare -A rates=([all]="1000 2000 3000 4000 5000" ["10%"]="5000 10000 15000 20000 25000 30000")
header=""
for round in $(seq 1 "$rounds"); do
    for filter in all 10%; do
        for rate in ${rates[$filter]}; do
            target/release/graph-relay-bench fanout --subscribers 100 --systems relay,nats \
                --filters "$filter" --rate "$rate" --csv "$run" >/dev/null
            if [ -z "$header" ]; then
                header="offered,$(head -1 "$run")"
                echo "$header" >"$out"
            fi
            tail -n +2 "$run" | sed "s/^[0-9]*,/$round,/; s/^/$rate,/" >>"$out"
            echo "round $round, $filter at $rate/s: $(tail -n +2 "$run" | cut -d, -f2,8 | tr '\n' ' ')" >&2
        done
    done
done
python3 scripts/plot-latency-curve.py "$out" docs/bench-latency-vs-load.png
