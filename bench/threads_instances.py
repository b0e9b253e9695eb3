#!/usr/bin/env python3
"""More instances or more intra-op threads? For mlp and cnn (examples/models), modeld with the
machine's cores spent either way: N instances of 1 intra-op thread, or 1 instance of N threads
(N = the cores), with dynamic batching as generated and without it (one request per run),
each driven by modeld-bench (closed loop, batch 1) at 1, 8 and 64 clients. Reports requests/s and latency; docs/operations.md ("Threads
and cores") draws the rule from it.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/threads_instances.py [--seconds 3] [--out F.md]
"""

import argparse
import datetime
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import processes, repositories  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "bench-threads"
LEVELS = "1,8,64"


def layout_config(text, instances, threads, batching):
    """`text` with `instances` CPU instances of `threads` intra-op threads each, with dynamic
    batching or without."""
    text = re.sub(r"instance_group\s*\[[^\]]*\]\s*\n?", "", text)
    text = re.sub(r'parameters\s*\{\s*key:\s*"intra_op_thread_count"[^}]*\}\s*\}\s*\n?', "", text)
    text = repositories.with_batching(text) if batching else repositories.without_batching(text)
    return text + (
        f"instance_group [ {{ count: {instances}, kind: KIND_CPU }} ]\n"
        f'parameters {{ key: "intra_op_thread_count" value {{ string_value: "{threads}" }} }}\n')


def run(model, instances, threads, batching, args, logs):
    repository = WORK / f"{model}-{instances}x{threads}-{'batching' if batching else 'direct'}"
    shutil.rmtree(repository, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "models" / model, repository / model,
                    ignore=shutil.ignore_patterns("reference"))
    config = repository / model / "config.pbtxt"
    config.write_text(layout_config(config.read_text(), instances, threads, batching))
    server, address = processes.start_grpc_server(
        f"modeld-{model}-{instances}x{threads}",
        [str(ROOT / "build" / "bin" / "modeld"), f"--model-repository={repository}",
         "--grpc-address=127.0.0.1:0"], logs)
    out = repository.with_suffix(".json")
    try:
        processes.run_checked(
            [str(ROOT / "build" / "bin" / "modeld-bench"), f"--target={address}",
             f"--model={model}", f"--concurrency={LEVELS}", f"--seconds={args.seconds}",
             f"--warmup-seconds={args.warmup_seconds}", f"--json={out}"],
            logs, f"load-{model}-{instances}x{threads}", timeout=600)
    finally:
        server.stop()
    return json.loads(out.read_text())["levels"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" /
                        f"{datetime.date.today().isoformat()}-threads-instances.md")
    args = parser.parse_args()
    started = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    logs = WORK / "logs"
    logs.mkdir(parents=True)
    cores = os.cpu_count()
    layouts = [(cores, 1), (1, cores)]
    lines = [f"# More instances or more intra-op threads ({datetime.date.today().isoformat()})",
             "",
             f"`{' '.join(['.venv/bin/python', 'bench/threads_instances.py', *sys.argv[1:]])}` "
             f"on {processes.cpu_model()}, {cores} cores. Closed loop, batch-1 requests, "
             f"{args.seconds:g} s per level.", "",
             "| model | batching | instances × threads | clients | req/s | p50 µs | p99 µs |",
             "|---|---|---|---|---|---|---|"]
    for model in ("mlp", "cnn"):
        for batching in (True, False):
            for instances, threads in layouts:
                for level in run(model, instances, threads, batching, args, logs):
                    latency = level["latency"]
                    lines.append(
                        f"| {model} | {'dynamic' if batching else 'off'} | {instances} × "
                        f"{threads} | {level['level']:.0f} | {level['throughput']:.0f} | "
                        f"{latency['p50_us']:.0f} | {latency['p99_us']:.0f} |")
                    print(lines[-1], flush=True)
    lines += ["", f"Elapsed: {time.monotonic() - started:.0f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
