#!/usr/bin/env python3
"""Sums up the rounds of `scripts/profile-edge.sh --ratio` (its table on stdin).

Per worker: the median of its rounds' ratio (worker process CPU over the dev
proxy's), and its own CPU per POST: per round, its ratio less the queue
floor's in that round, times the two proxies' mean CPU per POST; the median
of the rounds, with a 95% interval for that median from order statistics (no
assumption about how a drifting machine spreads the rounds). The same
summary as `edge_compare`'s drift-cancelled table (bench/src/stats.rs).

Then the same paired difference between two workers other than the floor:
the Rust worker over the JavaScript peer, and, with `--steps A,B,C,...`
(labels in order, comma-separated), each of B, C, ... over the one before
it: what one step adds.
"""
import argparse
import re
import statistics
import sys
from math import comb

FLOOR = "queue floor"
RUST, PEER = "Rust (wasm)", "JavaScript peer"
ROW = re.compile(r"\| (.+?) \| (\d+) \| (\d+) µs \| (\d+) µs \| ([\d.]+) \| (\d+) \|")


def median_interval(samples):
    """The k-th smallest and k-th largest of `samples`, for the largest k
    that leaves at most 2.5% on each side; None under six samples."""
    samples, n = sorted(samples), len(samples)
    k = 0
    while k < n and sum(comb(n, i) for i in range(k + 1)) / 2**n <= 0.025:
        k += 1
    return (samples[k - 1], samples[n - k]) if k else None


def paired(worker, reference):
    """Per round that both ran: `worker`'s ratio less `reference`'s, times
    the two proxies' mean CPU per POST (µs)."""
    return [(worker[r][0] - reference[r][0]) * (worker[r][1] + reference[r][1]) / 2 for r in worker if r in reference]


def shown(samples):
    """The median of `samples` with its interval, in µs."""
    interval = median_interval(samples)
    return f"{statistics.median(samples):.0f} µs" + (f" [{interval[0]:.0f}, {interval[1]:.0f}]" if interval else "")


arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
arguments.add_argument("--steps", help="labels in order, comma-separated: each over the one before")
steps = arguments.parse_args().steps
rounds = {}
for line in sys.stdin:
    if match := ROW.match(line):
        name, round_, proxy, ratio = match.group(1), int(match.group(2)), int(match.group(4)), float(match.group(5))
        rounds.setdefault(name, {})[round_] = (ratio, proxy)
floor = rounds.get(FLOOR, {})
print(f"\n| worker | rounds | ratio, median | own CPU per POST, median [95% interval] |")
print("|---|---:|---:|---:|")
for name, by_round in rounds.items():
    ratio = statistics.median(ratio for ratio, _ in by_round.values())
    print(f"| {name} | {len(by_round)} | {ratio:.3f} | {shown(paired(by_round, floor))} |")
pairs = [(RUST, PEER)] if RUST in rounds and PEER in rounds else []
if steps:
    order = steps.split(",")
    missing = [name for name in order if name not in rounds]
    if missing:
        sys.exit(f"--steps names workers with no rounds: {', '.join(missing)}")
    pairs += list(zip(order[1:], order))
if pairs:
    print(f"\n| worker | over | CPU per POST, median [95% interval] |")
    print("|---|---|---:|")
    for worker, reference in pairs:
        print(f"| {worker} | {reference} | {shown(paired(rounds[worker], rounds[reference]))} |")
