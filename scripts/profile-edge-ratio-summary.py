#!/usr/bin/env python3
"""Sums up the rounds of `scripts/profile-edge.sh --ratio` (its table on stdin).

Per worker: the median of its rounds' ratio (worker process CPU over the dev
proxy's), and its own CPU per POST: per round, its ratio less the queue
floor's in that round, times the two proxies' mean CPU per POST; the median
of the rounds, with a 95% interval for that median from order statistics (no
assumption about how a drifting machine spreads the rounds). The same
summary as `edge_compare`'s drift-cancelled table (bench/src/stats.rs).
"""
import re
import statistics
import sys
from math import comb

FLOOR = "queue floor"
ROW = re.compile(r"\| (.+?) \| (\d+) \| (\d+) µs \| (\d+) µs \| ([\d.]+) \| (\d+) \|")


def median_interval(samples):
    """The k-th smallest and k-th largest of `samples`, for the largest k
    that leaves at most 2.5% on each side; None under six samples."""
    samples, n = sorted(samples), len(samples)
    k = 0
    while k < n and sum(comb(n, i) for i in range(k + 1)) / 2**n <= 0.025:
        k += 1
    return (samples[k - 1], samples[n - k]) if k else None


rounds = {}
for line in sys.stdin:
    if match := ROW.match(line):
        name, round_, proxy, ratio = match.group(1), int(match.group(2)), int(match.group(4)), float(match.group(5))
        rounds.setdefault(name, {})[round_] = (ratio, proxy)
floor = rounds.get(FLOOR, {})
print(f"\n| worker | rounds | ratio, median | own CPU per POST, median [95% interval] |")
print("|---|---:|---:|---:|")
for name, by_round in rounds.items():
    paired = [r for r in by_round if r in floor]
    own = [(by_round[r][0] - floor[r][0]) * (by_round[r][1] + floor[r][1]) / 2 for r in paired]
    interval = median_interval(own)
    shown = f" [{interval[0]:.0f}, {interval[1]:.0f}]" if interval else ""
    ratio = statistics.median(ratio for ratio, _ in by_round.values())
    print(f"| {name} | {len(by_round)} | {ratio:.3f} | {statistics.median(own):.0f} µs{shown} |")
