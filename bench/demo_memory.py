#!/usr/bin/env python3
"""The demo's memory: one modeld + N Gunicorn workers against N workers that each load mlp.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/demo_memory.py [--workers 4] [--requests 400] [--out FILE.md]

Two set-ups, measured one after the other in one run, each serving `mlp` behind the same
JSON endpoint shape (POST /api/predict/mlp {"inputs": [256 floats]}):

- **modeld**: `build/bin/modeld` on a repository holding only mlp, and the demo site
  (examples/django_demo) under Gunicorn with N sync workers, talking to it over gRPC.
- **in process**: bench/baselines/django_inprocess under the same Gunicorn with N sync
  workers, each loading mlp with torch.jit.load (the venv's Python and torch).

Each set-up first answers `--requests` requests from 8 client threads, until every worker
has served (answers carry the worker's pid; a worker that never served would not have loaded
its model or client). The answers of both are compared (they must agree to 1e-4). Then the RSS (VmRSS)
and PSS (proportional set size, which splits shared pages between the processes sharing
them) of every process of the set-up are read from /proc and summed.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import processes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
DEMO = ROOT / "examples" / "django_demo"
GUNICORN_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
GUNICORN_WORKER = re.compile(r"Booting worker with pid: (\d+)")


def kib(pid, field):
    """A field of /proc/<pid>/status or smaps_rollup in KiB (VmRSS, Pss)."""
    source = "status" if field.startswith("Vm") else "smaps_rollup"
    for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/{source} has no {field}")


def gunicorn(name, argv, log_dir, workers, env):
    """Starts Gunicorn; returns (process, port) once all its workers have booted."""
    process = processes.Process(name, argv, log_dir, env=env)
    port = int(process.wait_for(GUNICORN_LISTENING, timeout=60).group(1))
    deadline = time.monotonic() + 60
    while len(GUNICORN_WORKER.findall(process.log())) < workers:
        if time.monotonic() > deadline or process.popen.poll() is not None:
            process.stop()
            raise RuntimeError(f"{name}: {workers} workers did not boot:\n{process.log()[-2000:]}")
        time.sleep(0.05)
    return process, port


def worker_pids(process):
    pids = [int(p) for p in GUNICORN_WORKER.findall(process.log())]
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def drive(port, requests, x, workers):
    """Sends `requests` predictions from 8 threads; returns one answer (they must agree).

    Raises unless all `workers` answered some."""
    body = json.dumps({"inputs": x.tolist()}).encode()
    answers, errors, pids = [], [], set()

    def client(count):
        for _ in range(count):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/predict/mlp", data=body,
                headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read())
                answers.append(np.asarray(answer["outputs"], dtype=np.float32).reshape(-1))
                pids.add(answer["pid"])
            except OSError as error:
                errors.append(error)

    threads = [threading.Thread(target=client, args=(requests // 8,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    if len(pids) < workers:
        raise RuntimeError(f"only {len(pids)} of {workers} workers answered; raise --requests")
    for answer in answers[1:]:
        np.testing.assert_allclose(answer, answers[0], rtol=1e-5, atol=1e-5)
    return answers[0]


def measure(named_pids):
    rows = [(name, pid, kib(pid, "VmRSS"), kib(pid, "Pss")) for name, pid in named_pids]
    return rows, sum(r[2] for r in rows), sum(r[3] for r in rows)


def run_modeld(args, log_dir, repository, x):
    server, address = processes.start_grpc_server("modeld", [
        str(ROOT / "build" / "bin" / "modeld"), f"--model-repository={repository}",
        "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0"], log_dir)
    env = dict(os.environ, MODELD_URL=f"grpc://{address}")
    web = None
    try:
        web, port = gunicorn("demo-gunicorn", [
            str(VENV_PYTHON), "-m", "gunicorn", "--config", str(DEMO / "gunicorn.conf.py"),
            "--workers", str(args.workers), "--bind", "127.0.0.1:0"], log_dir, args.workers, env)
        answer = drive(port, args.requests, x, args.workers)
        pids = [("modeld", server.pid), ("gunicorn master", web.pid)]
        pids += [(f"worker {i + 1}", pid) for i, pid in enumerate(worker_pids(web))]
        return answer, measure(pids)
    finally:
        if web:
            web.stop()
        server.stop()


def run_inprocess(args, log_dir, repository, x):
    baseline = ROOT / "bench" / "baselines" / "django_inprocess"
    # The venv's torch (the release modeld links), Django and Gunicorn.
    env = dict(os.environ, PYTHONPATH=str(baseline), MODEL_REPOSITORY=str(repository))
    web, port = gunicorn("inprocess-gunicorn", [
        str(VENV_PYTHON), "-m", "gunicorn", "--chdir", str(baseline), "--workers",
        str(args.workers), "--bind", "127.0.0.1:0", "wsgi:application"], log_dir,
        args.workers, env)
    try:
        answer = drive(port, args.requests, x, args.workers)
        pids = [("gunicorn master", web.pid)]
        pids += [(f"worker {i + 1}", pid) for i, pid in enumerate(worker_pids(web))]
        return answer, measure(pids)
    finally:
        web.stop()


def table(title, rows, rss, pss):
    lines = [f"**{title}**", "", "| process | pid | RSS MiB | PSS MiB |", "|---|---|---|---|"]
    lines += [f"| {name} | {pid} | {r / 1024:.1f} | {p / 1024:.1f} |" for name, pid, r, p in rows]
    lines.append(f"| **sum** | | **{rss / 1024:.1f}** | **{pss / 1024:.1f}** |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--out", type=Path, help="also write the report (markdown) here")
    args = parser.parse_args()

    log_dir = ROOT / "build" / "bench-run" / "demo-memory"
    log_dir.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(7).standard_normal(256).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(tmp) / "models"
        repository.mkdir()
        shutil.copytree(args.models_dir / "mlp", repository / "mlp")
        served, (rows_a, rss_a, pss_a) = run_modeld(args, log_dir, repository, x)
        local, (rows_b, rss_b, pss_b) = run_inprocess(args, log_dir, repository, x)
    np.testing.assert_allclose(served, local, rtol=1e-4, atol=1e-4)
    report = "\n\n".join([
        f"# Demo memory: mlp behind {args.workers} Gunicorn workers",
        f"{args.requests} requests through each set-up first; both answered alike (1e-4).",
        table(f"modeld + {args.workers} workers (demo site over gRPC)", rows_a, rss_a, pss_a),
        table(f"{args.workers} workers loading mlp in process", rows_b, rss_b, pss_b),
        f"In process / modeld: RSS {rss_b / rss_a:.2f}x, PSS {pss_b / pss_a:.2f}x "
        f"(modeld saves {(rss_b - rss_a) / 1024:.0f} MiB RSS, {(pss_b - pss_a) / 1024:.0f} MiB PSS)."])
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
