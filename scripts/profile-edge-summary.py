#!/usr/bin/env python3
"""One row of scripts/profile-edge.sh's table: perf samples per request.

Reads `perf report --sort pid,dso -n --stdio` on stdin. Samples in code V8
generated at run time (perf names its DSO "[JIT] tid N": wasm and JavaScript)
are told apart from workerd's own code and the kernel's. perf records at
4 kHz, so a sample stands for 250 µs of CPU; per request, that is divided by
the requests wrk completed while perf recorded (its rate times SECONDS).

perf reports samples by thread: the last argument names the threads of the
process that runs the worker and of the dev proxy, space-separated, the two
lists separated by a comma.

Usage: profile-edge-summary.py LABEL REQUEST SECONDS WRK_OUTPUT "WORKER_TIDS,PROXY_TIDS"
"""
import re
import sys
from collections import Counter

SAMPLE_MICROSECONDS = 1_000_000 / 4000


def main() -> None:
    label, request, seconds, wrk_output, roles = sys.argv[1:6]
    worker, proxy = (set(tids.split()) for tids in roles.split(","))
    rate_match = re.search(r"Requests/sec:\s+([\d.]+)", open(wrk_output).read())
    if rate_match is None:
        sys.exit(f"no request rate in {wrk_output}")
    rate = float(rate_match.group(1))
    samples = Counter()
    for line in sys.stdin:
        row = re.match(r"\s+[\d.]+%\s+(\d+)\s+(\d+):\S+\s+(.*)$", line)
        if row is None:
            continue
        count, pid, dso = int(row.group(1)), row.group(2), row.group(3)
        role = "worker" if pid in worker else "proxy" if pid in proxy else "other"
        samples[(role, "jit" if "[JIT]" in dso else "native")] += count
    per_request = lambda count: count * SAMPLE_MICROSECONDS / (rate * float(seconds))
    jit, native = per_request(samples[("worker", "jit")]), per_request(samples[("worker", "native")])
    proxy_cpu = per_request(samples[("proxy", "jit")] + samples[("proxy", "native")])
    total = per_request(sum(samples.values()))
    print(f"| {label} | {request} | {rate:,.0f} | {jit:.0f} µs | {native:.0f} µs | {proxy_cpu:.0f} µs | {total:.0f} µs |")


if __name__ == "__main__":
    main()
