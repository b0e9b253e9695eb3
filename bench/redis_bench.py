#!/usr/bin/env python3
"""make bench, the Redis section: modeld's Redis transport against the original Redis-list
design, on mlp, with 8 and 64 concurrent clients, in one run on one redis-server.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/redis_bench.py [--concurrency 8,64] [--seconds 3] [--warmup-seconds 1]

Set-ups (bench/README.md, "The Redis transport"):
- baseline: bench/baselines/redis_list/worker.py (the venv's Python and torch) holding mlp, as
  many workers as mlp's instance_count with the intra-op threads modeld would give each, BRPOPping
  one request and LPUSHing its answer onto ONE shared results list;
- modeld: build/bin/modeld on mlp as generated (dynamic batching), --redis-url on the same
  redis-server, streams mode (the default).
Each is driven by the same C++ load generator (modeld-bench-redis: one thread and connection
per client, one request outstanding each), then by Python clients: the baseline's client.py
(threads), and modeld.Client in several processes. Writes bench/results/<date>-redis.md and
.json; logs and scratch files go to build/bench-redis/.
"""

import argparse
import datetime
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import processes, repositories  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# The venv's interpreter: its torch is the release modeld links (docs/pytorch.md), its redis-py
# the client's. Debian's python3-torch and python3-redis are no longer installed.
VENV_PYTHON = str(ROOT / ".venv" / "bin" / "python")
MODEL = "mlp"
BINARIES = ("modeld", "modeld-bench-redis")
REDIS_CONSUMING = re.compile(r"redis: consuming")
TARGET_RATIO = 5.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--concurrency", default="8,64")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per level")
    parser.add_argument("--python-processes", type=int, default=4,
                        help="processes the modeld.Client load is spread over")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    return parser.parse_args()


def model_settings(config_text):
    """(input dims of one item, instance_count, intra-op threads as TorchBackend sets them)."""
    dims = [int(d) for d in re.search(r"input\s*\[\s*\{[^}]*?dims:\s*\[([^\]]*)\]",
                                      config_text).group(1).split(",")]
    count = re.search(r"instance_group\s*\[[^\]]*?count:\s*(\d+)", config_text)
    instances = int(count.group(1)) if count else 1
    parameter = re.search(r'key:\s*"intra_op_thread_count"\s*value\s*\{\s*string_value:\s*'
                          r'"(\d+)"', config_text)
    threads = (int(parameter.group(1)) if parameter
               else max(1, processes.nproc() // max(1, instances)))
    return dims, instances, threads


class RedisBench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        self.bin = work / "bin"
        self.bin.mkdir()
        for name in BINARIES:  # copies: a rebuild during the run cannot swap a binary
            source = args.build_dir / "bin" / name
            if not source.is_file():
                sys.exit(f"redis_bench: {source} is missing; run `make build` first")
            shutil.copy2(source, self.bin / name)
        self.levels = [int(c) for c in args.concurrency.split(",")]
        self.notes = []
        self.repository = work / "repository"
        shutil.copytree(args.models_dir / MODEL, self.repository / MODEL,
                        ignore=shutil.ignore_patterns("reference"))
        config = self.repository / MODEL / "config.pbtxt"
        if not repositories.has_batching(config.read_text()):
            self.notes.append(f"{args.models_dir}/{MODEL}/config.pbtxt has no dynamic_batching; "
                              "this run adds `dynamic_batching { }`")
            config.write_text(repositories.with_batching(config.read_text()))
        self.dims, self.instances, self.threads = model_settings(config.read_text())
        self.item = f"x:{','.join(map(str, self.dims))}"

    # --- load --------------------------------------------------------------------------------

    def cpp_level(self, name, protocol, concurrency, pids):
        """One modeld-bench-redis level; returns its JSON level with the server CPU added."""
        out = self.work / f"{name}-c{concurrency}.json"
        start = time.monotonic_ns()
        window = processes.CpuWindow(
            pids, start + int((self.args.warmup_seconds + 0.05) * 1e9),
            start + int((self.args.warmup_seconds + self.args.seconds) * 1e9))
        processes.run_checked(
            [str(self.bin / "modeld-bench-redis"), f"--redis-url={self.redis_url}",
             f"--protocol={protocol}", f"--model={MODEL}", f"--input={self.item}",
             f"--concurrency={concurrency}", f"--warmup-seconds={self.args.warmup_seconds}",
             f"--seconds={self.args.seconds}", f"--json={out}"],
            self.logs, f"{name}-c{concurrency}", timeout=300)
        level = json.loads(out.read_text())["levels"][0]
        level["server_cpu_cores"] = window.cores()
        return level

    def baseline_python_level(self, concurrency, pids):
        """bench/baselines/redis_list/client.py at one level (its Python threads)."""
        out = self.work / f"baseline-python-c{concurrency}.json"
        start = time.monotonic_ns()
        window = processes.CpuWindow(
            pids, start + int((self.args.warmup_seconds + 0.3) * 1e9),
            start + int((self.args.warmup_seconds + self.args.seconds) * 1e9))
        processes.run_checked(
            [VENV_PYTHON, str(BENCH / "baselines/redis_list/client.py"), "--port",
             str(self.redis_port), "--item-bytes", str(4 * math.prod(self.dims)),
             "--concurrency", str(concurrency), "--warmup-seconds", str(self.args.warmup_seconds),
             "--seconds", str(self.args.seconds), "--json", str(out)],
            self.logs, f"baseline-python-c{concurrency}", timeout=300)
        level = json.loads(out.read_text())["levels"][0]
        level["misrouted"] = level.pop("mixed_up")
        level["server_cpu_cores"] = window.cores()
        return level

    def modeld_python_level(self, concurrency, pids):
        """modeld.Client in up to --python-processes processes (threads each) at one level."""
        count = min(self.args.python_processes, concurrency)
        threads = [concurrency // count + (i < concurrency % count) for i in range(count)]
        start_ns = time.monotonic_ns() + int(3e9)  # time for the interpreters to start
        window = processes.CpuWindow(
            pids, start_ns + int(self.args.warmup_seconds * 1e9),
            start_ns + int((self.args.warmup_seconds + self.args.seconds) * 1e9))
        stderr_path = self.logs / "modeld-python-clients.log"
        with open(stderr_path, "a") as stderr:
            children = [subprocess.Popen(
                [sys.executable, str(BENCH / "harness" / "redis_python_clients.py"),
                 "--url", f"{self.redis_url}/0", "--model", MODEL,
                 "--input-size", str(math.prod(self.dims)), "--threads", str(n),
                 "--start-ns", str(start_ns), "--warmup-seconds", str(self.args.warmup_seconds),
                 "--seconds", str(self.args.seconds)],
                stdout=subprocess.PIPE, stderr=stderr, text=True) for n in threads]
            reports = []
            for child in children:
                output, _ = child.communicate(timeout=300)
                if child.returncode != 0:
                    raise RuntimeError(f"a Python client process failed; see {stderr_path}")
                reports.append(json.loads(output.strip().splitlines()[-1]))
        latencies = sorted(ns / 1e3 for r in reports for ns in r["latencies_ns"])
        errors = {}
        for r in reports:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        seconds = self.args.seconds
        return {
            "level": concurrency, "seconds": seconds, "sent": sum(r["sent"] for r in reports),
            "successes": len(latencies), "throughput": len(latencies) / seconds,
            "latency": {"count": len(latencies),
                        "mean_us": sum(latencies) / len(latencies) if latencies else 0,
                        "p50_us": processes.percentile(latencies, 0.5),
                        "p90_us": processes.percentile(latencies, 0.9),
                        "p99_us": processes.percentile(latencies, 0.99),
                        "max_us": latencies[-1] if latencies else 0},
            "errors": {k: v for k, v in errors.items() if k != "MISROUTED"},
            "misrouted": errors.get("MISROUTED", 0),
            "client_cpu_cores": sum(r["cpu_seconds"] for r in reports) / seconds,
            "client_processes": count, "server_cpu_cores": window.cores(),
        }

    # --- set-ups -----------------------------------------------------------------------------

    def baseline(self, redis_pid, workers_count, threads, python_clients):
        """The Redis-list design with `workers_count` workers of `threads` intra-op threads."""
        workers = []
        name = f"baseline-{workers_count}x{threads}"
        try:
            for i in range(workers_count):
                workers.append(processes.Process(f"{name}-worker-{i}", [
                    VENV_PYTHON, str(BENCH / "baselines/redis_list/worker.py"),
                    "--port", str(self.redis_port),
                    "--model", str(self.repository / MODEL / "1" / "model.pt"),
                    "--shape", ",".join(map(str, self.dims)), "--threads", str(threads)],
                    self.logs))
            for worker in workers:
                worker.wait_for(re.compile("worker ready"))
            pids = {"server": [w.pid for w in workers], "redis": [redis_pid]}
            result = {"workers": workers_count, "threads": threads, "cpp": [], "python": []}
            for c in self.levels:
                result["cpp"].append(self.cpp_level(name, "list-baseline", c, pids))
                self.report_level(f"{name}, C++ clients", result["cpp"][-1])
            for c in self.levels if python_clients else ():
                result["python"].append(self.baseline_python_level(c, pids))
                self.report_level(f"{name}, Python clients", result["python"][-1])
            return result
        finally:
            for worker in workers:
                worker.stop(timeout=5)

    def modeld(self, redis_pid):
        server = processes.Process("modeld", [
            str(self.bin / "modeld"), f"--model-repository={self.repository}",
            "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0",
            f"--redis-url={self.redis_url}/0"], self.logs)
        try:
            server.wait_for(processes.MODELD_READY)
            server.wait_for(REDIS_CONSUMING)
            metrics = processes.metrics_url(server)
            pids = {"server": [server.pid], "redis": [redis_pid]}
            result = {"cpp": [], "python": []}
            for kind in ("cpp", "python"):
                for c in self.levels:
                    before = processes.batch_size_totals(metrics, MODEL)
                    if kind == "cpp":
                        level = self.cpp_level("modeld", "envelope", c, pids)
                    else:
                        level = self.modeld_python_level(c, pids)
                    after = processes.batch_size_totals(metrics, MODEL)
                    if before and after and after[1] > before[1]:
                        level["mean_batch_size"] = (after[0] - before[0]) / (after[1] - before[1])
                    result[kind].append(level)
                    self.report_level(f"modeld, {'C++' if kind == 'cpp' else 'Python'} clients",
                                      level)
            return result
        finally:
            server.stop()

    def report_level(self, name, level):
        processes.log(f"  {name} c={level['level']:.0f}: {level['throughput']:.0f} req/s, "
            f"p50 {level['latency']['p50_us']:.0f} µs, p99 {level['latency']['p99_us']:.0f} µs, "
            f"misrouted {level['misrouted']}, client CPU {level['client_cpu_cores']:.2f}")

    def run(self):
        server, self.redis_port = processes.start_redis(self.logs)
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}"
        try:
            processes.log(f"baseline: {self.instances} Python worker(s), {self.threads} intra-op thread(s)")
            baseline = self.baseline(server.pid, self.instances, self.threads, True)
            # The baseline tuned for this machine: a single-threaded worker per core.
            tuned = None
            if processes.nproc() > self.instances:
                processes.log(f"baseline, tuned: {processes.nproc()} workers of 1 intra-op thread")
                tuned = self.baseline(server.pid, processes.nproc(), 1, False)
            # Same redis-server, emptied: the baseline's lists must not linger beside the stream.
            redis.Redis(host="127.0.0.1", port=self.redis_port).flushall()
            processes.log("modeld: streams mode, dynamic batching")
            modeld = self.modeld(server.pid)
        finally:
            server.stop()
        return {"baseline": baseline, "baseline_tuned": tuned, "modeld": modeld}


# --- the report ------------------------------------------------------------------------------


def at(levels, concurrency):
    return next(level for level in levels if level["level"] == concurrency)


def targets(results, levels):
    top = max(levels)
    modeld, baseline = at(results["modeld"]["cpp"], top), at(results["baseline"]["cpp"], top)
    ratio = modeld["throughput"] / baseline["throughput"] if baseline["throughput"] else math.inf
    misrouted = sum(level["misrouted"] for kind in ("cpp", "python")
                    for level in results["modeld"][kind])
    return [
        {"name": f"mlp c={top} vs the Redis-list design",
         "requirement": f"≥ {TARGET_RATIO:g} × its throughput (same load generator)",
         "measured": f"{modeld['throughput']:.0f} vs {baseline['throughput']:.0f} req/s",
         "value": f"{ratio:.2f}×", "pass": ratio >= TARGET_RATIO},
        {"name": "misrouted answers (modeld)", "requirement": "0, every level and client",
         "measured": f"{misrouted}", "value": f"{misrouted}", "pass": misrouted == 0},
    ]


def table(rows):
    out = ["| set-up | clients | req/s | p50 µs | p99 µs | misrouted | errors | client CPU "
           "| server CPU | redis CPU | mean batch |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, level in rows:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(level.get("errors", {}).items()) if v)
        cpu = level.get("server_cpu_cores", {})
        batch = f"{level['mean_batch_size']:.1f}" if "mean_batch_size" in level else "–"
        out.append(
            f"| {name} | {level['level']:.0f} | {level['throughput']:.0f} "
            f"| {level['latency']['p50_us']:.0f} | {level['latency']['p99_us']:.0f} "
            f"| {level['misrouted']} of {level['latency']['count']} | {errors or '0'} "
            f"| {level['client_cpu_cores']:.2f} | {cpu.get('server', 0):.2f} "
            f"| {cpu.get('redis', 0):.2f} | {batch} |")
    return "\n".join(out)


def render(date, info, results, computed, levels):
    def rows(kind):
        names = [("baseline", "baseline"), ("baseline_tuned", "baseline, tuned"),
                 ("modeld", "modeld")]
        return [(label, level) for key, label in names if results.get(key)
                for level in results[key][kind]]

    top = max(levels)
    python_ratio = (at(results["modeld"]["python"], top)["throughput"]
                    / max(1e-9, at(results["baseline"]["python"], top)["throughput"]))
    lines = [
        f"# modeld's Redis transport vs the original Redis-list design — {date}", "",
        f"`{info['command']}` (the Redis step of `make bench`), {info['elapsed_seconds']:.0f} s. "
        f"Commit {info['commit']}. {info['nproc']} CPU(s) ({info['cpu']}), "
        f"{info['memory_gib']:.1f} GiB; {info['load']}.", "",
        "## Targets", "",
        "| target | requirement | measured | ratio | result |", "|---|---|---|---|---|",
        *[f"| {t['name']} | {t['requirement']} | {t['measured']} | {t['value']} "
          f"| **{'pass' if t['pass'] else 'miss'}** |" for t in computed], "",
        "## Same load generator (modeld-bench-redis, C++)", "",
        "Each client: a thread with its own connection and one request outstanding. modeld: "
        "XADD + BLPOP on the request's own reply key, sent together; the baseline: LPUSH + BRPOP "
        "on the shared results list. Latency from send to answer (baseline: from the popped "
        "answer's own send time, as its client.py measures). A baseline answer popped by the "
        "wrong client still counts in its req/s; modeld's would not.", "",
        table(rows("cpp")), "",
        *tuned_note(results, top), "",
        "## Python clients", "",
        f"The baseline's own `client.py` (Python threads in one process) and "
        f"`modeld.Client(\"redis://…\").predict()`, both on the venv's redis-py "
        f"{redis.__version__}, in up to {info['python_processes']} processes sharing the "
        f"clients. On this machine the Python clients compete with modeld and redis-server for "
        f"the same cores: their CPU column shows what they take. modeld/baseline at c={top}: "
        f"{python_ratio:.2f}×.", "",
        table(rows("python")), "",
        "## Set-up", "",
        f"- One `redis-server` ({info['redis_version']}) for both, started by the harness: "
        "`--save '' --appendonly no` (no persistence), loopback, emptied (FLUSHALL) between "
        "the set-ups.",
        f"- Baseline: {info['instances']} `bench/baselines/redis_list/worker.py` (the venv's "
        f"Python and torch; as many as mlp's instance_count), {info['threads']} intra-op "
        "thread(s) each (what modeld's TorchBackend gives an instance), BRPOP one request, "
        "run mlp on that one item, LPUSH the answer onto one shared results list.",
        f"- modeld: `build/bin/modeld --redis-url=redis://127.0.0.1:PORT/0` on `{MODEL}` as "
        "generated (`dynamic_batching { }`), streams mode (stream `modeld:requests`, group "
        "`modeld`), default settings (read count 64, max in flight 256).",
        f"- mlp: one item per request, FP32 x[{','.join(map(str, info['dims']))}] "
        f"({4 * math.prod(info['dims'])} bytes) → logits[10]. {info['warmup_seconds']:g} s "
        f"warm-up, then {info['seconds']:g} s measured per level.",
        "- CPU columns: cores used on average over the measured window (client: the load "
        "generator's own processes; server: modeld or the baseline workers; redis: "
        "redis-server), read from getrusage and /proc/<pid>/stat. Their sum near the machine's "
        "core count means the machine, not one process, is the limit.", "",
    ]
    lines += [f"Note: {note}" for note in info["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def tuned_note(results, top):
    tuned = results.get("baseline_tuned")
    if not tuned:
        return []
    modeld = at(results["modeld"]["cpp"], top)["throughput"]
    best = at(tuned["cpp"], top)["throughput"]
    return [f"\"baseline, tuned\" is not the set-up of the target (run.py's: one worker per "
            f"mlp instance, with the intra-op threads modeld gives an instance) but the same "
            f"design at its best on this machine: {tuned['workers']} workers of "
            f"{tuned['threads']} intra-op thread, one per core. modeld at c={top} does "
            f"{modeld / max(best, 1e-9):.2f}× its throughput. With answers finishing out of "
            "order, its shared results list also hands answers to the wrong clients more "
            "often (misrouted column)."]


def main():
    args = parse_args()
    started = time.monotonic()
    load_before = processes.warn_if_loaded("redis_bench")
    machine_start, ours_start = processes.cpu_seconds()
    work = args.build_dir / "bench-redis"
    shutil.rmtree(work, ignore_errors=True)
    bench = RedisBench(args, work)
    results = bench.run()
    computed = targets(results, bench.levels)
    machine_end, ours_end = processes.cpu_seconds()
    elapsed = time.monotonic() - started
    others = max(0.0, (machine_end - machine_start) - (ours_end - ours_start))
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.split()[2]
    info = {
        "command": shlex.join([".venv/bin/python", "bench/redis_bench.py", *sys.argv[1:]]),
        "commit": processes.commit_line(ROOT, "bench/results"), "nproc": processes.nproc(), "cpu": processes.cpu_model(),
        "memory_gib": processes.memory_gib(), "redis_version": redis_version,
        "warmup_seconds": args.warmup_seconds, "seconds": args.seconds,
        "python_processes": args.python_processes, "dims": bench.dims,
        "instances": bench.instances, "threads": bench.threads, "notes": bench.notes,
        "elapsed_seconds": elapsed,
        "load": f"load average {load_before:.2f} before the run; other processes used "
                f"{others:.0f} CPU-seconds during it ({others / (elapsed * processes.nproc()):.1%}"
                " of the machine)"}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{args.date}-redis"
    stem.with_suffix(".md").write_text(render(args.date, info, results, computed, bench.levels))
    stem.with_suffix(".json").write_text(json.dumps(
        {"info": info, "targets": computed, "results": results}, indent=1))
    for t in computed:
        print(f"{'pass' if t['pass'] else 'MISS'}  {t['name']}: {t['measured']} ({t['value']})")
    processes.log(f"wrote {stem}.md in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
