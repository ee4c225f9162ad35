#!/usr/bin/env python3
"""Where a server's CPU samples go, from a folded-stack file (inferno-collapse-perf).

Each stack is put in the first category whose pattern it contains, in the order
below: the kernel's I/O first (a `writev` called from h2 is socket work, not
h2's), then the relay's own stages, then memory faults and preemption that no
named stage claimed. A stripped binary (Debian's nats-server)
has no user-space symbols, so its user-space samples land in "other user
space"; the kernel's categories compare across both systems.

Usage: profile-summary.py FOLDED [TITLE]   (prints a Markdown table)
"""
import re
import sys
from collections import defaultdict

CATEGORIES = [
    ("disk: fdatasync (the durable commit)", r"sys_fdatasync|sys_fsync"),
    ("disk: pwrite (copy into the page cache)", r"sys_pwrite64"),
    (
        "socket send (on loopback it runs the receiver's TCP path too)",
        r"tcp_sendmsg|sys_writev|vfs_writev|sock_write_iter|__GI___writev|sys_sendmsg|sys_sendto",
    ),
    ("socket receive", r"tcp_recvmsg|sys_recvfrom|sys_recvmsg|sys_read\b"),
    (
        "waiting and waking (epoll, futex, sleeps)",
        r"sys_epoll_wait|sys_epoll_pwait|sys_futex|sys_nanosleep|sys_clock_nanosleep|sys_sched_yield",
    ),
    ("relay log: redb B-tree and commit", r"redb::"),
    (
        "relay publish: decode, prepare, dedup",
        r"Fanout>::publish|prepared::|dedup::|tonic::codec::decode",
    ),
    ("relay dispatch: match and hand to feeds", r"hub::Hub::dispatch|filter::"),
    ("gRPC responses: encode, HTTP/2 framing", r"PipeToSendStream|h2::|hyper::|tonic::"),
    ("tokio scheduler", r"tokio::runtime"),
    ("allocator", r"malloc|_int_free|cfree|realloc"),
    (
        "memory: page faults, madvise, mmap (a garbage collector's)",
        r"exc_page_fault|madvise|sys_mmap|sys_munmap|sys_brk",
    ),
    (
        "preempted (timer tick, reschedule)",
        r"asm_sysvec_apic_timer_interrupt|irqentry_exit_to_user_mode|exit_to_user_mode_loop",
    ),
]


def classify(stack):
    for name, pattern in CATEGORIES:
        if re.search(pattern, stack):
            return name
    if re.search(r"(^|;)[a-z_0-9.]+_\[k\]|entry_SYSCALL|asm_", stack):
        return "other kernel"
    return "other user space"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    shares = defaultdict(int)
    threads = defaultdict(int)
    total = 0
    with open(sys.argv[1]) as folded:
        for line in folded:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            weight = int(count)
            total += weight
            shares[classify(stack)] += weight
            threads[stack.split(";", 1)[0]] += weight
    if total == 0:
        sys.exit(f"{sys.argv[1]}: no samples")
    title = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
    print(f"| {title} | share of the server's samples |")
    print("|---|---:|")
    for name, weight in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {100 * weight / total:.1f}% |")
    print()
    print("| thread | share |")
    print("|---|---:|")
    for name, weight in sorted(threads.items(), key=lambda kv: -kv[1])[:6]:
        print(f"| {name} | {100 * weight / total:.1f}% |")


if __name__ == "__main__":
    main()
