#!/usr/bin/env python3
"""Wake-up to run delays per thread, from `perf sched timehist` on stdin.

Keeps the server's threads (the process with the relay's writer thread, or
nats-server) and the bench's (the process with its publisher thread), and
prints p50 / p90 / p99 / max of each thread name's "sch delay": how long
it was ready to run before it got a core, each time it got one.
"""
import collections
import re
import sys

SERVER_THREADS = ("graph-relay-wri", "nats-server")
BENCH_THREADS = ("bench-publisher",)


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    rows = []
    for line in sys.stdin:
        fields = line.split()
        # time, cpu, task[tid/pid], wait time, sch delay, run time
        if len(fields) < 6:
            continue
        task = re.match(r"(.*)\[(\d+)/(\d+)\]$", fields[2])
        try:
            delay = float(fields[-2])
        except ValueError:
            continue
        if task:
            rows.append((task.group(1), int(task.group(3)), delay))
    server = {pid for name, pid, _ in rows if name.startswith(SERVER_THREADS)}
    bench = {pid for name, pid, _ in rows if name.startswith(BENCH_THREADS)}
    delays = collections.defaultdict(list)
    for name, pid, delay in rows:
        who = "server" if pid in server else "bench" if pid in bench else None
        if who:
            delays[(who, name)].append(delay)
    print("| process | thread | times on a core | waited for it: p50 | p90 | p99 | max |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (who, name), values in sorted(delays.items(), key=lambda kv: -len(kv[1])):
        if len(values) < 50:
            continue
        cells = " | ".join(f"{quantile(values, q):.3f} ms" for q in (0.5, 0.9, 0.99))
        print(f"| {who} | {name} | {len(values)} | {cells} | {max(values):.3f} ms |")


main()
