#!/usr/bin/env python3
"""modeld's RSS while clients hold gRPC calls half-sent: 20 connections each open up to 1,000
ModelInfer calls, send 16 KiB of a message that claims 1 MiB, and stall. Measured with the caps
off (--grpc-max-concurrent-streams and --grpc-receive-timeout-seconds set out of reach: what
modeld did before it had them) and on (the default stream cap; a 10 s receive timeout, so the
run is short: the default is 60 s), one after the other in one run.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/stalled_calls.py [--connections 20] [--calls 1000] [--out F.md]

RSS (VmRSS) is read at start, at its peak while the calls are open, once every call is answered
(or, with the caps off, 15 s after the last byte was sent: none is ever answered), and 5 s after
the client closed its connections.
"""

import argparse
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "build" / "python"))  # the generated stubs (make build)

from lifecycle_helpers import vm_rss_kib  # noqa: E402
from modeld_server import start_server  # noqa: E402
from raw_grpc import connect, pump  # noqa: E402

KIB = 1024
MIB = 1024 * KIB


def measure(extra_args, connections, calls):
    server = start_server(ROOT / "examples" / "models", extra_args)
    try:
        pid = server.proc.pid
        time.sleep(2)
        start = vm_rss_kib(pid)
        peak = start
        clients = [connect(server.port) for _ in range(connections)]
        opened = {}
        began = time.monotonic()
        for client in clients:
            opened[client] = [client.start_call(claimed=MIB, sent=16 * KIB)
                              for _ in range(min(calls, client.max_streams()))]
            peak = max(peak, vm_rss_kib(pid))

        def settled():
            nonlocal peak
            peak = max(peak, vm_rss_kib(pid))
            answered = all(set(s) <= c.answers.keys() for c, s in opened.items())
            sent = not any(c.pending for c in clients)
            return answered or (sent and time.monotonic() - began > 15 and not any(
                c.answers for c in clients))

        pump(clients, settled, 600)
        answered = sum(len(c.answers) for c in clients)
        settled_rss = vm_rss_kib(pid)
        for client in clients:
            client.close()
        time.sleep(5)
        closed_rss = vm_rss_kib(pid)
        return {
            "calls open": sum(len(s) for s in opened.values()),
            "answered": answered,
            "start": start // KIB,
            "peak": peak // KIB,
            "settled": settled_rss // KIB,
            "closed +5 s": closed_rss // KIB,
        }
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    runs = [
        ("caps off (before)", ["--grpc-max-concurrent-streams=1000000",
                               "--grpc-receive-timeout-seconds=100000"]),
        ("caps on (100 calls per connection, 10 s receive timeout)",
         ["--grpc-receive-timeout-seconds=10"]),
    ]
    lines = [
        f"# Stalled gRPC calls: {args.connections} connections x up to {args.calls} calls, "
        "16 KiB sent of 1 MiB",
        "",
        "| modeld | calls open | answered | RSS start MiB | peak | settled | closed +5 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, extra in runs:
        r = measure(extra, args.connections, args.calls)
        lines.append(f"| {name} | {r['calls open']} | {r['answered']} | {r['start']} | "
                     f"{r['peak']} | {r['settled']} | {r['closed +5 s']} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
