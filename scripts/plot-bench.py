#!/usr/bin/env python3
"""Plots graph-relay-bench's CSV: delivered/s at saturation and p99 at 50% load,
against the number of subscribers, for every system and filter."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

# Issue 5's latency target at 100 subscribers, drawn so a reader sees the margin.
P99_TARGET_MS = 5


def main(source: str, target: str) -> None:
    # With `--rounds`, the first round (the plot shows one run; the summary
    # table gives the spread).
    rows = [r for r in csv.DictReader(open(source)) if r.get("round", "1") == "1"]
    fig, (throughput, latency) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = {"relay": "tab:purple", "nats": "tab:green", "jetstream": "tab:blue"}
    for system in sorted({r["system"] for r in rows}):
        for selectivity, style in (("all", "-"), ("10%", "--")):
            def series(load, column):
                points = sorted(
                    (int(r["subscribers"]), float(r[column]))
                    for r in rows
                    if r["system"] == system and r["filter"] == selectivity and r["load"] == load
                )
                return [p[0] for p in points], [p[1] for p in points]

            label = f"{system}, filter {selectivity}"
            x, y = series("saturation", "delivered_per_s")
            colour = colours.get(system)
            throughput.plot(x, y, style, marker="o", label=label, color=colour)
            x, y = series("50%", "p99_us")
            latency.plot(x, [v / 1000 for v in y], style, marker="o", label=label, color=colour)
    throughput.set(xscale="log", yscale="log", xlabel="subscribers", ylabel="delivered notifications/s",
                   title="Throughput at saturation")
    latency.set(xscale="log", yscale="log", xlabel="subscribers", ylabel="p99 publish→deliver (ms)",
                title="p99 latency at 50% of saturation")
    latency.axhline(P99_TARGET_MS, color="grey", linestyle=":", linewidth=1)
    latency.annotate(f"target: {P99_TARGET_MS} ms", (1, P99_TARGET_MS), textcoords="offset points",
                     xytext=(2, 3), fontsize=8, color="grey")
    # Plain numbers: log axes otherwise label minor ticks as "6 × 10^1".
    latency.set_yticks([1, 2, 5, 10, 20, 50, 100])
    plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
    latency.yaxis.set_major_formatter(plain)
    latency.yaxis.set_minor_formatter(ticker.NullFormatter())
    for axis in (throughput, latency):
        axis.grid(True, which="both", alpha=0.3)
        axis.xaxis.set_major_formatter(plain)
    throughput.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
