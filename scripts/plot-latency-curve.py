#!/usr/bin/env python3
"""Plots scripts/latency-curve.sh's CSV: p50 and p99 against delivered
notifications/s at 100 subscribers, one panel per filter, every round's point
drawn and the median over rounds joined, with issue 5's 5 ms p99 target.

Also prints, per system and filter, the median p99 at each offered load, and
the median time the server's and the bench's threads waited for a core."""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

P99_TARGET_MS = 5
COLOURS = {"relay": "tab:purple", "nats": "tab:green"}


def print_waits(system: str, selectivity: str, points) -> None:
    """The median time the server's and the bench's threads waited for a
    core at each load, in cores (CSVs since 2026-11-29, 5c5086a have the columns)."""
    cells = []
    for offered in sorted(points):
        runs = points[offered]
        waits = [(r.get("server_waited"), r.get("bench_waited")) for r in runs]
        waits = [(float(s), float(b)) for s, b in waits if s and b]
        if not waits:
            return
        delivered = statistics.median(float(r["delivered_per_s"]) for r in runs)
        server = statistics.median(s for s, _ in waits)
        bench = statistics.median(b for _, b in waits)
        cells.append(f"{int(delivered / 1000)}k/s {server:.2f} / {bench:.2f}")
    print(f"{system} {selectivity} waiting for a core, server / bench: " + ", ".join(cells))


def main(source: str, target: str) -> None:
    rows = list(csv.DictReader(open(source)))
    fig, panels = plt.subplots(1, 2, figsize=(12, 4.5))
    for panel, selectivity in zip(panels, ("all", "10%")):
        for system in ("relay", "nats"):
            points = defaultdict(list)
            for r in rows:
                if r["system"] == system and r["filter"] == selectivity:
                    points[int(r["offered"])].append(r)
            if not points:
                continue
            colour = COLOURS[system]
            for quantile, style in (("p99_us", "-"), ("p50_us", ":")):
                xs, ys = [], []
                for offered in sorted(points):
                    runs = points[offered]
                    delivered = [float(r["delivered_per_s"]) for r in runs]
                    values = [float(r[quantile]) / 1000 for r in runs]
                    panel.scatter(delivered, values, color=colour, s=10, alpha=0.5)
                    xs.append(statistics.median(delivered))
                    ys.append(statistics.median(values))
                name = "p99" if quantile == "p99_us" else "p50"
                panel.plot(xs, ys, style, color=colour, label=f"{system} {name} (median)")
                if quantile == "p99_us":
                    print(f"{system} {selectivity}: " + ", ".join(
                        f"{int(x / 1000)}k/s {y:.2f} ms" for x, y in zip(xs, ys)))
            print_waits(system, selectivity, points)
        panel.axhline(P99_TARGET_MS, color="grey", linewidth=0.8, linestyle="--")
        panel.set(xlabel="delivered notifications/s", ylabel="latency, publish to deliver (ms)",
                  title=f"100 subscribers, filter {selectivity}", yscale="log")
        panel.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        panel.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}" if v in (2, 3, 5, 20, 30) else ""))
        panel.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
        panel.legend(fontsize=8)
        panel.grid(True, which="both", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot-latency-curve.py CSV PNG")
    main(sys.argv[1], sys.argv[2])
