#!/usr/bin/env python3
"""modeld's RSS before, during and after a burst of large gRPC requests, with the idle trim
(--idle-trim-ms, default 1000: malloc_trim once modeld has been idle that long) and without it
(--idle-trim-ms=0), measured one after the other in one run; and the burst's throughput in
each, for the trim's cost.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/memory_burst.py [--threads 64] [--requests 10] [--mib 4] [--out F.md]

Each client thread sends --requests identity_fp32 requests of --mib MiB back to back. RSS (VmRSS)
is read at start (after a small warm-up burst), at its peak (sampled every 50 ms during the
burst), and 5 s after the burst ended.
"""

import argparse
import pathlib
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "build" / "python"))  # the generated stubs (make build)

import numpy as np  # noqa: E402

from infer_helpers import make_request, make_stub  # noqa: E402
from lifecycle_helpers import vm_rss_kib  # noqa: E402
from modeld_server import EXAMPLE_MODELS, start_server  # noqa: E402, F401

MIB = 1024 * 1024


def burst(stub, threads, requests, mib=1):
    x = np.random.default_rng(1).random((1, mib * MIB // 4), np.float32)
    request = make_request("identity_fp32", [("INPUT0", x)])

    def client():
        for _ in range(requests):
            stub.ModelInfer(request, timeout=120)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    return workers, started


def measure(extra_args, threads, requests, mib):
    server = start_server(ROOT / "examples" / "models", extra_args)
    try:
        pid = server.proc.pid
        stub = make_stub(server.channel())
        for worker in burst(stub, 2, 5)[0]:
            worker.join()
        time.sleep(2)
        start = vm_rss_kib(pid)
        workers, began = burst(stub, threads, requests, mib)
        peak = start
        while any(worker.is_alive() for worker in workers):
            peak = max(peak, vm_rss_kib(pid))
            time.sleep(0.05)
        seconds = time.monotonic() - began
        time.sleep(5)
        after = vm_rss_kib(pid)
        return {"start": start // 1024, "peak": peak // 1024, "after": after // 1024,
                "rps": threads * requests / seconds}
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--mib", type=int, default=4, help="MiB per request")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for name, extra in (("trim off (--idle-trim-ms=0)", ["--idle-trim-ms=0"]),
                        ("trim on (default, 1000 ms)", [])):
        result = measure(extra, args.threads, args.requests, args.mib)
        rows.append(f"| {name} | {result['start']} | {result['peak']} | {result['after']} | "
                    f"{result['rps']:.0f} |")
    table = "\n".join([
        f"{args.threads} clients x {args.requests} requests of {args.mib} MiB (identity_fp32, "
        "gRPC)",
        "",
        "| modeld | RSS at start (MiB) | peak | 5 s after the burst | requests/s |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(table)
    if args.out:
        pathlib.Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
