#!/usr/bin/env python3
"""What LibTorch's OpenMP threads cost modeld between requests: the torch wheel's GNU OpenMP
(libgomp) lets a worker that finished a parallel region spin a while before it sleeps, unless
OMP_WAIT_POLICY=passive; OMP_WAIT_POLICY=active spins for ever. Spinning threads take the cores
gRPC's threads need, so modeld sets passive when the environment sets nothing
(src/app/openmp_env.h); an empty value gets libgomp's default. For each policy this starts modeld on examples/models, drives `mlp` with
--clients closed-loop gRPC clients (batch 1) for --seconds, and reports requests/s, modeld's CPU
time per request, latency, and the CPU modeld burns in the 3 s after the load stops (idle).

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/omp_wait.py [--clients 4] [--seconds 8] [--out F.md]
"""

import argparse
import os
import pathlib
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "build" / "python"))  # the generated stubs (make build)

import numpy as np  # noqa: E402

from infer_helpers import make_request, make_stub  # noqa: E402
from modeld_server import start_server  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure(policy, clients, seconds):
    env_before = os.environ.get("OMP_WAIT_POLICY")
    if policy is None:
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = policy
    try:
        server = start_server(ROOT / "examples" / "models")
    finally:
        if env_before is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
        else:
            os.environ["OMP_WAIT_POLICY"] = env_before
    try:
        pid = server.proc.pid
        stub = make_stub(server.channel())
        x = np.random.default_rng(1).random((1, 256), np.float32)
        request = make_request("mlp", [("x", x)])
        for _ in range(50):
            stub.ModelInfer(request, timeout=30)
        latencies = []
        stop = time.monotonic() + seconds

        def client():
            mine = []
            while time.monotonic() < stop:
                began = time.perf_counter()
                stub.ModelInfer(request, timeout=30)
                mine.append(time.perf_counter() - began)
            latencies.extend(mine)

        cpu_start = cpu_seconds(pid)
        began = time.monotonic()
        workers = [threading.Thread(target=client) for _ in range(clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - began
        cpu_load = cpu_seconds(pid) - cpu_start
        idle_start = cpu_seconds(pid)
        time.sleep(3)
        idle = cpu_seconds(pid) - idle_start
        done = len(latencies)
        return {
            "requests/s": done / elapsed,
            "cpu us/request": cpu_load / done * 1e6,
            "p50 ms": float(np.percentile(latencies, 50)) * 1e3,
            "p99 ms": float(np.percentile(latencies, 99)) * 1e3,
            "idle cpu s (3 s)": idle,
        }
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    lines = [
        f"# OpenMP wait policy: mlp, batch 1, {args.clients} closed-loop gRPC clients, "
        f"{args.seconds:g} s each, {os.cpu_count()} cores",
        "",
        "| OMP_WAIT_POLICY | requests/s | modeld CPU µs/request | p50 ms | p99 ms | idle CPU s in 3 s |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "": "'' (libgomp's default)",
        None: "unset (modeld sets passive)",
        "active": "active",
    }
    for policy, name in names.items():
        r = measure(policy, args.clients, args.seconds)
        lines.append(f"| {name} | {r['requests/s']:.0f} | "
                     f"{r['cpu us/request']:.0f} | {r['p50 ms']:.2f} | {r['p99 ms']:.2f} | "
                     f"{r['idle cpu s (3 s)']:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
