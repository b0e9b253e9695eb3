#!/usr/bin/env python3
"""make bench, the Celery section: modeld as the Celery worker vs a Python Celery worker that
holds the same model, both serving `modeld.infer` tasks sent by real Celery 5 clients.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/celery_bench.py [--submitters 64] [--submitter-processes 4]
        [--seconds 10] [--warmup-seconds 3] [--out bench/results/<date>-celery.md]

Set-ups (docs/design/celery.md; the issue's target: modeld >= 5x the Python worker's tasks/s,
with less memory than the Python worker's processes):
- Python worker: `celery -A celery_bench worker --pool=prefork --concurrency=2` (this file is
  its app when CELERY_BENCH_BROKER is set), torch imported in the parent (shared by the forked
  children), mlp's TorchScript file (examples/models/mlp/1/model.pt) loaded in each child in
  `worker_process_init`, one intra-op thread per child; the task `modeld.infer` on the queue
  `python`, the same signature and result as modeld's.
- modeld: build/bin/modeld --celery-broker on the same Redis, queue `modeld`, serving the same
  model file (mlp, dynamic batching, as examples/models has it).
Both: Redis broker (db 0) and Redis result backend (db 1) on one private redis-server, JSON.
Load: --submitters threads (64) spread over --submitter-processes processes, each thread a loop
of send_task + AsyncResult.get() with one task outstanding, single-item tasks (one row of 256
values), every answer checked against the model's output computed here with torch. Measured
over --seconds after --warmup-seconds: tasks/s (tasks completed in the window), p50 / p99 of
send -> result, CPU of the submitters, of the worker side and of redis-server, and PSS of the
worker side (the Python worker: parent and children summed; modeld: its process), read in the
middle of the window. Writes the markdown table to stdout and to --out, and a .json beside it;
logs go to build/bench-celery/.
"""

import os

# --- the Python worker's app: `celery -A celery_bench worker` imports this module ----------------

BROKER_ENV = "CELERY_BENCH_BROKER"
BACKEND_ENV = "CELERY_BENCH_BACKEND"
MODEL_ENV = "CELERY_BENCH_MODEL_FILE"

if os.environ.get(BROKER_ENV):
    import torch  # in the parent: the prefork children share its pages
    from celery import Celery
    from celery.signals import worker_process_init

    app = Celery("celery-bench-worker", broker=os.environ[BROKER_ENV],
                 backend=os.environ[BACKEND_ENV])
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                    worker_enable_remote_control=False, worker_send_task_events=False,
                    broker_connection_retry_on_startup=True)
    _model = None

    @worker_process_init.connect
    def _load_model(**_):
        global _model
        torch.set_num_threads(1)
        _model = torch.jit.load(os.environ[MODEL_ENV]).eval()

    @app.task(name="modeld.infer")
    def infer(model, inputs, version=None, outputs=None):
        with torch.inference_mode():
            y = _model(torch.tensor(inputs["x"], dtype=torch.float32))
        return {"logits": y.tolist()}


# --- the benchmark -----------------------------------------------------------------------------

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MODEL = "mlp"
CASES = 64
TARGET_RATIO = 5.0



def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path, default=BENCH / "results" /
                        f"{datetime.date.today().isoformat()}-celery.md")
    parser.add_argument("--submitters", type=int, default=64)
    parser.add_argument("--submitter-processes", type=int, default=4)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--python-concurrency", type=int, default=2)
    parser.add_argument("--setups", default="python,modeld",
                        help="which worker sides to run (comma-separated: python, modeld)")
    return parser.parse_args()


def kib(pid, field):
    source = "status" if field.startswith("Vm") else "smaps_rollup"
    for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def process_tree(pid):
    """`pid` and its descendants."""
    pids = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids.extend(process_tree(int(child)))
    return pids


# --- submitters (processes of their own, spawned) -------------------------------------------------


def submitter(index, threads, broker, backend, queue, cases, start_wall, end_wall, results):
    """`threads` loops of send_task + get(); puts (index, counts, latencies) on `results`."""
    from celery import Celery

    client = Celery(f"submitter-{index}", broker=broker, backend=backend, set_as_current=False)
    client.conf.update(task_serializer="json", result_serializer="json",
                       accept_content=["json"], broker_connection_retry_on_startup=True)
    lock = threading.Lock()
    stats = {"done": 0, "errors": 0, "wrong": 0, "latencies": [], "first_error": None}

    def loop(thread_index):
        k = thread_index
        while time.time() < end_wall:
            x, expected = cases[k % len(cases)]
            k += 7
            sent_wall = time.time()
            sent = time.perf_counter()
            try:
                answer = client.send_task("modeld.infer", args=[MODEL, {"x": [x]}],
                                          queue=queue).get(timeout=60)
            except Exception as error:  # noqa: BLE001  (counted)
                with lock:
                    stats["errors"] += 1
                    stats["first_error"] = stats["first_error"] or repr(error)
                continue
            elapsed = time.perf_counter() - sent
            done_wall = time.time()
            got = answer["logits"][0]
            ok = len(got) == len(expected) and all(abs(a - b) <= 1e-3 + 1e-3 * abs(b)
                                                    for a, b in zip(got, expected))
            with lock:
                if not ok:
                    stats["wrong"] += 1
                if start_wall <= done_wall <= end_wall:
                    stats["done"] += 1
                if start_wall <= sent_wall and done_wall <= end_wall:
                    stats["latencies"].append(elapsed)

    workers = [threading.Thread(target=loop, args=(index * threads + t,))
               for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    client.close()
    results.put((index, stats))


# --- the worker sides ---------------------------------------------------------------------


class Child:
    def __init__(self, name, argv, log_dir, env=None, cwd=None):
        import subprocess

        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                      start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pattern.search(self.log()):
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not log {pattern.pattern!r}: {self.log()[-3000:]}")

    def stop(self):
        import signal
        import subprocess

        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()


def start_python_worker(args, log_dir, broker, backend):
    env = dict(os.environ, **{BROKER_ENV: broker, BACKEND_ENV: backend,
                              MODEL_ENV: str(args.models_dir / MODEL / "1" / "model.pt")})
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    worker = Child("python-worker", [
        sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "--pool=prefork",
        f"--concurrency={args.python_concurrency}", "-Q", "python", "-n", "bench@localhost",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        log_dir, env=env, cwd=BENCH)
    return worker


def start_modeld(args, log_dir, repository, broker, backend):
    return Child("modeld", [
        str(args.build_dir / "bin" / "modeld"), f"--model-repository={repository}",
        "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0", "--log-level=info",
        f"--celery-broker={broker}", "--celery-queue=modeld",
        f"--celery-result-backend={backend}"], log_dir)


def wait_serving(broker, backend, queue, case, timeout=120):
    """Sends one task until it is answered (the worker's consumer is up, the model loaded)."""
    from celery import Celery

    client = Celery("probe", broker=broker, backend=backend, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"])
    try:
        client.send_task("modeld.infer", args=[MODEL, {"x": [case[0]]}],
                         queue=queue).get(timeout=timeout)
    finally:
        client.close()


def metrics_text(modeld):
    import urllib.request

    match = re.search(r"HTTP listening on (\S+):(\d+)", modeld.log())
    if not match:
        return ""
    url = f"http://{match.group(1)}:{match.group(2)}/metrics"
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return ""


def batch_totals(text):
    totals = {"sum": 0.0, "count": 0.0}
    for kind, labels, value in re.findall(r"^modeld_batch_size_(sum|count)\{([^}]*)\}\s+(\S+)",
                                          text, re.M):
        if f'model="{MODEL}"' in labels:
            totals[kind] += float(value)
    return totals["sum"], totals["count"]


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def machine_busy_seconds():
    """Busy CPU seconds of the whole machine (all but idle and iowait), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def percentile(values, quantile):
    import math

    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values), max(1, math.ceil(quantile * len(values)))) - 1]


def measure(args, name, queue, broker, backend, worker_pids, redis_pid, cases, modeld=None):
    """One run of the load against the worker on `queue`; returns a row (dict)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = max(1, min(args.submitter_processes, args.submitters))
    per_process = [args.submitters // processes + (1 if i < args.submitters % processes else 0)
                   for i in range(processes)]
    start_wall = time.time() + args.warmup_seconds + 1.0  # the spawns take ~1 s
    end_wall = start_wall + args.seconds
    children = [context.Process(target=submitter, args=(
        i, per_process[i], broker, backend, queue, cases, start_wall, end_wall, results))
        for i in range(processes)]
    for child in children:
        child.start()
    client_pids = [child.pid for child in children]
    side = {}

    def sample():
        time.sleep(max(0.0, start_wall - time.time()))
        pids = worker_pids()
        side["start"] = (cpu_seconds(client_pids), cpu_seconds(pids), cpu_seconds([redis_pid]),
                         machine_busy_seconds())
        side["batch_start"] = batch_totals(metrics_text(modeld)) if modeld else None
        time.sleep(max(0.0, start_wall + args.seconds / 2 - time.time()))
        side["pss"] = sum(kib(pid, "Pss") for pid in worker_pids()) / 1024
        side["rss"] = sum(kib(pid, "VmRSS") for pid in worker_pids()) / 1024
        side["processes"] = len(worker_pids())
        time.sleep(max(0.0, end_wall - time.time()))
        side["end"] = (cpu_seconds(client_pids), cpu_seconds(worker_pids()),
                       cpu_seconds([redis_pid]), machine_busy_seconds())
        side["batch_end"] = batch_totals(metrics_text(modeld)) if modeld else None

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stats = [results.get(timeout=args.warmup_seconds + args.seconds + 120)
             for _ in children]
    for child in children:
        child.join(30)
    sampler.join(30)
    latencies = [v for _, s in stats for v in s["latencies"]]
    done = sum(s["done"] for _, s in stats)
    cpu = [(e - s) / args.seconds for s, e in zip(side["start"], side["end"])]
    mean_batch = None
    if side.get("batch_start") and side.get("batch_end"):
        rows = side["batch_end"][0] - side["batch_start"][0]
        runs = side["batch_end"][1] - side["batch_start"][1]
        mean_batch = rows / runs if runs else None
    errors = sum(s["errors"] for _, s in stats)
    first_error = next((s["first_error"] for _, s in stats if s["first_error"]), None)
    return {
        "set-up": name, "submitters": args.submitters, "processes": processes,
        "tasks": done, "tasks_per_s": done / args.seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_batch": mean_batch, "cpu_clients": cpu[0], "cpu_worker": cpu[1],
        "cpu_redis": cpu[2], "cpu_others": max(0.0, cpu[3] - cpu[0] - cpu[1] - cpu[2]),
        "pss_mib": side["pss"], "rss_mib": side["rss"],
        "worker_processes": side["processes"], "errors": errors,
        "wrong": sum(s["wrong"] for _, s in stats), "first_error": first_error,
    }


def make_cases():
    import torch

    torch.manual_seed(7)
    model = torch.jit.load(str(ROOT / "examples" / "models" / MODEL / "1" / "model.pt")).eval()
    cases = []
    with torch.inference_mode():
        for _ in range(CASES):
            x = (torch.randint(-16, 17, (256,)).float() / 8).tolist()
            y = model(torch.tensor([x])).tolist()[0]
            cases.append((x, y))
    return cases


def shown(path):
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def report(args, rows, elapsed, load):
    sys.path.insert(0, str(BENCH))
    from harness import processes as hp

    python, modeld = rows["python"], rows["modeld"]
    ratio = modeld["tasks_per_s"] / python["tasks_per_s"] if python["tasks_per_s"] else 0.0
    date = datetime.date.today().isoformat()
    import celery
    import torch

    lines = [
        f"# Celery: modeld as the worker vs a Python Celery worker holding the model — {date}",
        "",
        f"`.venv/bin/python bench/celery_bench.py --out {shown(args.out)}` "
        f"(the Celery step of `make bench`), {elapsed:.0f} s. Commit "
        f"{hp.commit_line(ROOT, 'bench/results')}. {hp.nproc()} CPU(s) ({hp.cpu_model()}), "
        f"{hp.memory_gib():.1f} GiB; load average {load:.2f} before the run. Python "
        f"{sys.version.split()[0]}, Celery {celery.__version__}, torch {torch.__version__}.",
        "",
        f"Model `{MODEL}` (examples/models/mlp/1/model.pt, TorchScript, x FP32 [256] -> logits "
        f"[10]), single-item tasks `modeld.infer(\"{MODEL}\", {{\"x\": [[...256 values]]}})`. "
        f"Redis broker (db 0) and result backend (db 1), one private redis-server. "
        f"{args.submitters} submitter threads over {python['processes']} processes, one task "
        f"outstanding each (send_task + AsyncResult.get()), every answer checked. "
        f"{args.warmup_seconds:.0f} s warm-up, {args.seconds:.0f} s measured. PSS/RSS of the "
        f"worker side read mid-window (Python: parent + {args.python_concurrency} prefork "
        "children, summed). CPU in cores (1.0 = one core busy).",
        "",
        "| worker | tasks | tasks/s | p50 ms | p99 ms | mean batch | CPU: submitters | "
        "CPU: worker | CPU: redis | CPU: other processes | PSS MiB (worker) | RSS MiB (worker) | "
        "errors | wrong |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("python", f"Python Celery worker, prefork × {args.python_concurrency} "
                                  "(torch)"), ("modeld", "modeld --celery-broker")):
        r = rows[key]
        batch = f"{r['mean_batch']:.1f}" if r["mean_batch"] else "–"
        lines.append(
            f"| {label} | {r['tasks']} | {r['tasks_per_s']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {batch} | {r['cpu_clients']:.2f} | {r['cpu_worker']:.2f} | "
            f"{r['cpu_redis']:.2f} | {r['cpu_others']:.2f} | {r['pss_mib']:.0f} ({r['worker_processes']} proc) | "
            f"{r['rss_mib']:.0f} | {r['errors']} | {r['wrong']} |")
    met = "MET" if ratio >= TARGET_RATIO else "MISS"
    mem = "MET" if modeld["pss_mib"] < python["pss_mib"] else "MISS"
    lines += [
        "",
        "| target | requirement | measured | result |",
        "|---|---|---|---|",
        f"| tasks/s, modeld ÷ Python worker | ≥ {TARGET_RATIO:.0f}× | "
        f"{modeld['tasks_per_s']:.0f} / {python['tasks_per_s']:.0f} = {ratio:.2f}× | **{met}** |",
        f"| memory (PSS) of the worker side | modeld < the Python worker's processes | "
        f"{modeld['pss_mib']:.0f} vs {python['pss_mib']:.0f} MiB | **{mem}** |",
        "",
    ]
    total = (modeld["cpu_clients"] + modeld["cpu_worker"] + modeld["cpu_redis"]
             + modeld["cpu_others"])
    per_task_ms = (1000 * modeld["cpu_clients"] / modeld["tasks_per_s"]
                   if modeld["tasks_per_s"] else 0.0)
    lines.append(
        f"CPU: with modeld the submitters took {modeld['cpu_clients']:.2f} cores "
        f"({per_task_ms:.2f} ms of client CPU per task), modeld {modeld['cpu_worker']:.2f}, "
        f"redis-server {modeld['cpu_redis']:.2f}, other processes {modeld['cpu_others']:.2f}: "
        f"{total:.2f} of {hp.nproc()} cores. "
        + ("The machine's CPUs were saturated, and the Celery client side (send_task + get() "
           "in Python) took the largest share: modeld's tasks/s is bounded by what the "
           "submitters can send on this machine (modeld's mean batch shows spare capacity), "
           "so the ratio understates modeld. It needs a machine with cores for the submitters."
           if total > 0.85 * hp.nproc() and modeld["cpu_clients"] > modeld["cpu_worker"] else
           "The machine's CPUs were not saturated."))
    cost = {key: 1000 * rows[key]["cpu_worker"] / rows[key]["tasks_per_s"]
            for key in ("python", "modeld") if rows[key]["tasks_per_s"]}
    if len(cost) == 2 and cost["modeld"]:
        lines.append(
            f"\nWorker-side CPU per task: Python worker {cost['python']:.2f} ms, modeld "
            f"{cost['modeld']:.2f} ms ({cost['python'] / cost['modeld']:.1f}× less in modeld): "
            "what the tasks/s ratio would approach where the submitters do not compete with "
            "the worker for the cores.")
    for key in ("python", "modeld"):
        if rows[key]["first_error"]:
            lines.append(f"\nFirst error ({key}): `{rows[key]['first_error']}`")
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    sys.path.insert(0, str(BENCH))
    from harness import processes as hp

    for binary in ("modeld",):
        if not (args.build_dir / "bin" / binary).is_file():
            sys.exit(f"{args.build_dir / 'bin' / binary} is missing: run `make build` first")
    load = hp.warn_if_loaded("celery_bench")
    began = time.monotonic()
    log_dir = args.build_dir / "bench-celery"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    repository = log_dir / "repository"
    shutil.copytree(args.models_dir / MODEL, repository / MODEL)
    cases = make_cases()
    redis_proc, port = hp.start_redis(log_dir)
    broker, backend = f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
    rows = {}
    try:
        setups = args.setups.split(",")
        if "python" in setups:
            hp.log("Python Celery worker: starting")
            worker = start_python_worker(args, log_dir, broker, backend)
            try:
                wait_serving(broker, backend, "python", cases[0])
                hp.log("Python Celery worker: measuring")
                rows["python"] = measure(args, "python", "python", broker, backend,
                                         lambda: process_tree(worker.pid), redis_proc.pid, cases)
            finally:
                worker.stop()
            hp.log(f"Python Celery worker: {rows['python']['tasks_per_s']:.0f} tasks/s")
            print(json.dumps(rows["python"]), flush=True)
        if "modeld" not in setups:
            return
        hp.log("modeld: starting")
        modeld = start_modeld(args, log_dir, repository, broker, backend)
        try:
            modeld.wait_for(re.compile(r"modeld is ready"), timeout=120)
            wait_serving(broker, backend, "modeld", cases[0])
            hp.log("modeld: measuring")
            rows["modeld"] = measure(args, "modeld", "modeld", broker, backend,
                                     lambda: [modeld.pid], redis_proc.pid, cases, modeld=modeld)
        finally:
            modeld.stop()
        hp.log(f"modeld: {rows['modeld']['tasks_per_s']:.0f} tasks/s")
    finally:
        redis_proc.stop()
    text = report(args, rows, time.monotonic() - began, load)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
