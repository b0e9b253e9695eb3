#!/usr/bin/env python3
"""What LibTorch's OpenMP threads cost modeld between requests: the torch wheel's GNU OpenMP
(libgomp) lets a worker that finished a parallel region spin (300,000 rounds) before it
sleeps; OMP_WAIT_POLICY=passive never spins, active spins for ever, GOMP_SPINCOUNT sets the
rounds. Spinning threads take the cores gRPC's threads need; sleeping ones must be woken at
each operator. modeld sets GOMP_SPINCOUNT=3000 when the environment sets neither variable
(src/app/openmp_env.h); an empty OMP_WAIT_POLICY gets libgomp's default. For each setting this
starts modeld on examples/models, drives mlp with 4 closed-loop Python gRPC clients, then cnn
with 1 and mlp with 64 modeld-bench clients (batch 1) for --seconds each, and reports requests/s, modeld's CPU time per request, latency, and
the CPU modeld burns in the 3 s after the load stops (idle).

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/omp_wait.py [--seconds 6] [--out F.md]
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "build" / "python"))  # the generated stubs (make build)

import numpy as np  # noqa: E402

from infer_helpers import make_request, make_stub  # noqa: E402
from modeld_server import start_server  # noqa: E402

GENERATOR = ROOT / "build" / "bin" / "modeld-bench"

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


INPUTS = {"mlp": ("x", (1, 256)), "cnn": ("image", (1, 1, 28, 28))}


def start(env):
    """modeld on examples/models with `env` ({name: value, or None to unset}) added."""
    before = {name: os.environ.get(name) for name in env}
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        return start_server(ROOT / "examples" / "models")
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_generator(server, model, clients, seconds):
    """modeld-bench (C++, no GIL) at concurrency `clients`: (requests, latencies in s)."""
    out = pathlib.Path(tempfile.mkdtemp()) / "run.json"
    subprocess.run([str(GENERATOR), f"--target={server.address}", f"--model={model}",
                    "--warmup-seconds=1", f"--seconds={seconds}", "--channels=4",
                    f"--concurrency={clients}", f"--json={out}"], check=True,
                   capture_output=True, timeout=600)
    level = json.loads(out.read_text())["levels"][0]
    shutil.rmtree(out.parent)
    return level["successes"], level["latency"]


def measure(env, model, clients, seconds, generator):
    server = start(env)
    try:
        pid = server.proc.pid
        if generator:
            cpu_start = cpu_seconds(pid)
            done, latency = run_generator(server, model, clients, seconds)
            cpu_load = cpu_seconds(pid) - cpu_start  # the warm-up second included
            idle_start = cpu_seconds(pid)
            time.sleep(3)
            return {
                "requests/s": done / seconds,
                "cpu us/request": cpu_load / done * 1e6,
                "p50 ms": latency["p50_us"] / 1e3,
                "p99 ms": latency["p99_us"] / 1e3,
                "idle cpu s (3 s)": cpu_seconds(pid) - idle_start,
            }
        stub = make_stub(server.channel())
        name, shape = INPUTS[model]
        x = np.random.default_rng(1).random(shape, np.float32)
        request = make_request(model, [(name, x)])
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


# (row name, environment added to modeld's). modeld sets its default itself when the
# environment sets neither variable (src/app/openmp_env.h); an empty OMP_WAIT_POLICY is
# libgomp's default policy.
SETTINGS = [
    ("libgomp's default (OMP_WAIT_POLICY='')", {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": None}),
    ("passive", {"OMP_WAIT_POLICY": "passive", "GOMP_SPINCOUNT": None}),
    ("active", {"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": None}),
    ("GOMP_SPINCOUNT=30000", {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "30000"}),
    ("modeld's default (both unset: GOMP_SPINCOUNT=3000)", {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}),
]
# (model, closed-loop clients, C++ generator?): Python clients on the same cores, as a web
# tier on modeld's host would be; one client's latency on a model of many operators (each a
# parallel region its threads must wake for); and a saturating load, from modeld-bench.
LOADS = [("mlp", 4, False), ("cnn", 1, True), ("mlp", 64, True)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    lines = [
        f"# OpenMP wait policy: batch-1 gRPC requests, closed loop, {args.seconds:g} s each, "
        f"{os.cpu_count()} cores",
        "",
        "| setting | model, clients | requests/s | modeld CPU µs/request | p50 ms | p99 ms | "
        "idle CPU s in 3 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, env in SETTINGS:
        for model, clients, generator in LOADS:
            r = measure(env, model, clients, args.seconds, generator)
            load = f"{model}, {clients} {'modeld-bench' if generator else 'Python'} client(s)"
            lines.append(f"| {name} | {load} | {r['requests/s']:.0f} | "
                         f"{r['cpu us/request']:.0f} | {r['p50 ms']:.2f} | {r['p99 ms']:.2f} | "
                         f"{r['idle cpu s (3 s)']:.2f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
