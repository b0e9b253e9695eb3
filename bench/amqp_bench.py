#!/usr/bin/env python3
"""make bench, the AMQP section: modeld's AMQP transport against the original design on
RabbitMQ (a Python worker taking one message at a time), and modeld over Redis, on mlp, with 8
and 64 concurrent clients, all driven by one load generator in one run.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/amqp_bench.py [--concurrency 8,64] [--seconds 3] [--warmup-seconds 1]
        [--generator-processes 4] [--out bench/results/<date>-amqp.md]

Set-ups (bench/README.md, "The AMQP transport"):
- baseline: bench/baselines/amqp_worker/worker.py (the venv's Python, torch and pika) holding
  mlp: basic_qos(prefetch_count=1), one message, one item, answer to reply_to, ack; as many
  workers as mlp's instance_count (one) with the intra-op threads modeld gives an instance
  (redis_bench.py's set-up), and with one intra-op thread: the target takes the faster;
- baseline, one single-threaded worker per core (information: the design at its best here);
- modeld over AMQP: build/bin/modeld --amqp-url on the same private RabbitMQ node
  (tests/integration/rabbitmq_server.py), default AMQP settings;
- modeld over Redis: build/bin/modeld --redis-url on a private redis-server, streams mode.
Every set-up is driven by bench/harness/amqp_clients.py (Python: pika for AMQP, RESP on a
socket for Redis; N clients spread over --generator-processes processes, one event loop each;
each client with a connection and, over AMQP, a reply queue of its own, one request
outstanding, every answer checked against its own request). modeld over Redis is driven by
modeld-bench-redis (C++) as well, to show what the Python generator costs. Writes the markdown
report and a .json beside it; logs and scratch files go to build/bench-amqp/.
"""

import argparse
import datetime
import json
import math
import re
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from harness import processes, repositories  # noqa: E402
from rabbitmq_server import RabbitMQServer  # noqa: E402
from redis_bench import model_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_PYTHON = str(ROOT / ".venv" / "bin" / "python")
MODEL = "mlp"
BINARIES = ("modeld", "modeld-bench-redis")
AMQP_CONSUMING = re.compile(r"amqp: consuming")
REDIS_CONSUMING = re.compile(r"redis: consuming")
MODELD_QUEUE = "modeld.requests"
BASELINE_QUEUE = "baseline.requests"
TARGET_RATIO = 5.0
CASES = 512  # distinct inputs, each with its expected output


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path,
                        default=BENCH / "results" / f"{datetime.date.today().isoformat()}-amqp.md")
    parser.add_argument("--concurrency", default="8,64")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per level")
    parser.add_argument("--generator-processes", type=int, default=processes.nproc(),
                        help="processes the Python clients of a level are spread over "
                             "(default: one per core)")
    parser.add_argument("--delivery-mode", type=int, default=1, choices=(1, 2),
                        help="AMQP requests: 1 transient (default), 2 persistent")
    parser.add_argument("--no-tuned", action="store_true", help="skip 'baseline, tuned'")
    parser.add_argument("--repeats", type=int, default=3,
                        help="more alternating rounds of the target's pair at the top level")
    return parser.parse_args()


def session_pids(session):
    """Every process whose session id is `session` (RabbitMQ: the script, beam.smp, helpers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:
                pids.append(int(entry.name))
    return pids


class CpuWindow(processes.CpuWindow):
    """processes.CpuWindow that tolerates a process exiting inside the window (counts 0)."""

    def _sample(self):
        def seconds(pid):
            try:
                return processes.process_cpu_seconds(pid)
            except OSError:
                return 0.0
        return {name: sum(seconds(pid) for pid in pids) for name, pids in self._pids.items()}


class AmqpBench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        self.bin = work / "bin"
        self.bin.mkdir()
        for name in BINARIES:  # copies: a rebuild during the run cannot swap a binary
            source = args.build_dir / "bin" / name
            if not source.is_file():
                sys.exit(f"amqp_bench: {source} is missing; run `make build` first")
            shutil.copy2(source, self.bin / name)
        help_text = subprocess.run([str(self.bin / "modeld"), "--help"], capture_output=True,
                                   text=True).stdout
        if "--amqp-url" not in help_text:
            sys.exit(f"amqp_bench: {args.build_dir}/bin/modeld has no --amqp-url; run `make build`")
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
        self.cases = self.write_cases()

    def write_cases(self):
        """CASES random inputs and mlp's outputs for them (the venv's torch, one at a time, as
        the baseline runs them); the generator checks every answer against these."""
        import torch
        torch.set_num_threads(1)
        model = torch.jit.load(str(self.repository / MODEL / "1" / "model.pt")).eval()
        inputs = np.random.default_rng(20261207).uniform(
            -1, 1, (CASES, *self.dims)).astype(np.float32)
        with torch.inference_mode():
            expected = np.stack([model(torch.from_numpy(x[None]))[0].numpy() for x in inputs])
        path = self.work / "cases.npz"
        np.savez(path, inputs=inputs, expected=expected)
        return path

    # --- load --------------------------------------------------------------------------------

    def python_level(self, transport, url, concurrency, pids, queue=None):
        """bench/harness/amqp_clients.py: `concurrency` clients over up to
        --generator-processes processes, one window for all."""
        count = min(self.args.generator_processes, concurrency)
        clients = [concurrency // count + (i < concurrency % count) for i in range(count)]
        stderr_path = self.logs / "generator.log"
        children = []
        with open(stderr_path, "a") as stderr:
            first = 0
            for n in clients:
                argv = [VENV_PYTHON, str(BENCH / "harness" / "amqp_clients.py"),
                        "--transport", transport, "--url", url, "--model", MODEL,
                        "--cases", str(self.cases), "--clients", str(n),
                        "--first-client", str(first),
                        "--warmup-seconds", str(self.args.warmup_seconds),
                        "--seconds", str(self.args.seconds)]
                if queue:
                    argv += ["--queue", queue, "--delivery-mode", str(self.args.delivery_mode)]
                children.append(subprocess.Popen(argv, stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=stderr, text=True))
                first += n
        try:
            deadline = time.monotonic() + 120
            for child in children:  # every client connected before the clock starts
                ready, _, _ = select.select([child.stdout], [], [],
                                            max(0.0, deadline - time.monotonic()))
                if not ready or child.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"a generator process did not connect; see {stderr_path}")
            start_ns = time.monotonic_ns() + int(0.05e9)
            window = CpuWindow(
                pids, start_ns + int(self.args.warmup_seconds * 1e9),
                start_ns + int((self.args.warmup_seconds + self.args.seconds) * 1e9))
            for child in children:
                child.stdin.write(f"{start_ns}\n")
                child.stdin.close()
            reports = []
            for child in children:
                output = child.stdout.read()
                if child.wait(timeout=120) != 0:
                    raise RuntimeError(f"a generator process failed; see {stderr_path}")
                reports.append(json.loads(output.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        latencies = sorted(ns / 1e3 for r in reports for ns in r["latencies_ns"])
        merged = {"wrong": {}, "errors": {}, "examples": {}}
        for r in reports:
            for key in ("wrong", "errors"):
                for code, n in r[key].items():
                    merged[key][code] = merged[key].get(code, 0) + n
            for code, example in r["examples"].items():
                merged["examples"].setdefault(code, example)
        seconds = self.args.seconds
        return {
            "level": concurrency, "seconds": seconds, "sent": sum(r["sent"] for r in reports),
            "successes": len(latencies), "throughput": len(latencies) / seconds,
            "latency": latency_summary(latencies),
            "checked": sum(r["checked"] for r in reports),
            "wrong": sum(merged["wrong"].values()), "wrong_by_kind": merged["wrong"],
            "errors": merged["errors"], "examples": merged["examples"],
            "client_cpu_cores": sum(r["cpu_seconds"] for r in reports) / seconds,
            "client_processes": count, "server_cpu_cores": window.cores(),
        }

    def cpp_redis_level(self, redis_url, concurrency, pids):
        """modeld-bench-redis (C++) against modeld's stream, as redis_bench.py runs it."""
        out = self.work / f"modeld-redis-cpp-c{concurrency}.json"
        start = time.monotonic_ns()
        window = CpuWindow(
            pids, start + int((self.args.warmup_seconds + 0.05) * 1e9),
            start + int((self.args.warmup_seconds + self.args.seconds) * 1e9))
        processes.run_checked(
            [str(self.bin / "modeld-bench-redis"), f"--redis-url={redis_url}",
             "--protocol=envelope", f"--model={MODEL}",
             f"--input=x:{','.join(map(str, self.dims))}",
             f"--concurrency={concurrency}", f"--warmup-seconds={self.args.warmup_seconds}",
             f"--seconds={self.args.seconds}", f"--json={out}"],
            self.logs, f"modeld-redis-cpp-c{concurrency}", timeout=300)
        level = json.loads(out.read_text())["levels"][0]
        level["wrong"] = level.pop("misrouted")
        level["server_cpu_cores"] = window.cores()
        return level

    def measured(self, label, levels_of, metrics):
        """Runs levels_of(c) for each level, with modeld's mean batch size when it has one."""
        result = []
        for c in self.levels:
            before = processes.batch_size_totals(metrics, MODEL)
            level = levels_of(c)
            after = processes.batch_size_totals(metrics, MODEL)
            if before and after and after[1] > before[1]:
                level["mean_batch_size"] = (after[0] - before[0]) / (after[1] - before[1])
            result.append(level)
            report_level(label, level)
        return result

    # --- set-ups -----------------------------------------------------------------------------

    def modeld(self, name, flags, consuming):
        server = processes.Process(name, [
            str(self.bin / "modeld"), f"--model-repository={self.repository}",
            "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0", *flags], self.logs)
        try:
            server.wait_for(processes.MODELD_READY)
            server.wait_for(consuming)
        except BaseException:
            server.stop()
            raise
        return server

    def redis_setups(self):
        """modeld over Redis: the Python generator, then modeld-bench-redis."""
        redis_server, port = processes.start_redis(self.logs)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            server = self.modeld("modeld-redis", [f"--redis-url={url}"], REDIS_CONSUMING)
            try:
                metrics = processes.metrics_url(server)
                pids = {"server": [server.pid], "broker": [redis_server.pid]}
                python = self.measured(
                    "modeld over Redis, Python generator",
                    lambda c: self.python_level("redis", url, c, pids), metrics)
                cpp = self.measured(
                    "modeld over Redis, modeld-bench-redis",
                    lambda c: self.cpp_redis_level(f"redis://127.0.0.1:{port}", c, pids),
                    metrics)
            finally:
                server.stop()
        finally:
            redis_server.stop()
        return {"python": python, "cpp": cpp}

    def start_workers(self, broker, workers_count, threads, name):
        """`workers_count` baseline workers on BASELINE_QUEUE; returns them once all are ready."""
        workers = []
        try:
            for i in range(workers_count):
                workers.append(processes.Process(f"{name}-worker-{i}", [
                    VENV_PYTHON, str(BENCH / "baselines/amqp_worker/worker.py"),
                    "--url", broker.url(), "--queue", BASELINE_QUEUE,
                    "--model", str(self.repository / MODEL / "1" / "model.pt"),
                    "--shape", ",".join(map(str, self.dims)), "--threads", str(threads)],
                    self.logs))
            for worker in workers:
                worker.wait_for(re.compile("worker ready"))
        except BaseException:
            for worker in workers:
                worker.stop(timeout=5)
            raise
        return workers

    def baseline(self, broker, workers_count, threads):
        workers = self.start_workers(broker, workers_count, threads,
                                     f"baseline-{workers_count}x{threads}")
        try:
            pids = {"server": [w.pid for w in workers],
                    "broker": session_pids(broker.proc.pid)}
            levels = self.measured(
                f"baseline {workers_count}x{threads}",
                lambda c: self.python_level("amqp", broker.url(), c, pids, BASELINE_QUEUE), None)
            return {"workers": workers_count, "threads": threads, "levels": levels}
        finally:
            for worker in workers:
                worker.stop(timeout=5)

    def rounds(self, broker, server, chosen):
        """--repeats more measurements of the target's pair at the top level, alternating the
        target's baseline and modeld (both consuming, each on its own queue): how much the
        ratio moves from one window to the next on this machine."""
        top = max(self.levels)
        workers = self.start_workers(broker, chosen["workers"], chosen["threads"], "rounds")
        rounds = []
        try:
            broker_pids = session_pids(broker.proc.pid)
            for i in range(self.args.repeats):
                base = self.python_level(
                    "amqp", broker.url(), top,
                    {"server": [w.pid for w in workers], "broker": broker_pids}, BASELINE_QUEUE)
                modeld = self.python_level(
                    "amqp", broker.url(), top,
                    {"server": [server.pid], "broker": broker_pids}, MODELD_QUEUE)
                rounds.append({"baseline": base, "modeld": modeld})
                processes.log(f"  round {i + 1}, c={top}: baseline {base['throughput']:.0f}, "
                              f"modeld {modeld['throughput']:.0f} req/s "
                              f"({modeld['throughput'] / max(base['throughput'], 1e-9):.2f}×), "
                              f"wrong {base['wrong'] + modeld['wrong']}")
        finally:
            for worker in workers:
                worker.stop(timeout=5)
        return rounds

    def amqp_setups(self):
        processes.log("starting a private RabbitMQ node (tests/integration/rabbitmq_server.py)")
        broker = RabbitMQServer()
        try:
            processes.log(f"RabbitMQ up in {broker.start_s:.1f} s")
            self.broker_version = broker_version(broker)
            # redis_bench.py's set-up (instance_count workers, the intra-op threads modeld gives
            # an instance), the same workers with one intra-op thread, and one single-threaded
            # worker per core ("tuned"). The target takes the better of the first two.
            variants = [(self.instances, self.threads)]
            if self.threads != 1:
                variants.append((self.instances, 1))
            if not self.args.no_tuned and processes.nproc() > self.instances:
                variants.append((processes.nproc(), 1))
            baselines = []
            for workers, threads in variants:
                processes.log(f"baseline: {workers} worker(s), {threads} intra-op thread(s)")
                baselines.append(self.baseline(broker, workers, threads))
            processes.log("modeld over AMQP")
            server = self.modeld("modeld-amqp", [f"--amqp-url={broker.url()}",
                                                 f"--amqp-queue={MODELD_QUEUE}"], AMQP_CONSUMING)
            try:
                metrics = processes.metrics_url(server)
                pids = {"server": [server.pid], "broker": session_pids(broker.proc.pid)}
                modeld = self.measured(
                    "modeld over AMQP",
                    lambda c: self.python_level("amqp", broker.url(), c, pids, MODELD_QUEUE),
                    metrics)
                rounds = []
                if self.args.repeats:
                    chosen = target_baseline({"baselines": baselines}, self.instances,
                                             max(self.levels))
                    processes.log(f"{self.args.repeats} more rounds: {baseline_name(chosen)} "
                                  "and modeld over AMQP, alternating")
                    rounds = self.rounds(broker, server, chosen)
            finally:
                server.stop()
        finally:
            broker.close()
        return baselines, modeld, rounds

    def run(self):
        processes.log("modeld over Redis (streams mode)")
        redis = self.redis_setups()
        baselines, modeld, rounds = self.amqp_setups()
        return {"baselines": baselines, "modeld_amqp": modeld, "rounds": rounds,
                "modeld_redis": redis["python"], "modeld_redis_cpp": redis["cpp"]}


def broker_version(broker):
    try:
        return broker.rabbitmqctl("version").strip()
    except Exception:  # the report says unknown rather than failing the run
        return "unknown"


def latency_summary(latencies_us):
    return {"count": len(latencies_us),
            "mean_us": sum(latencies_us) / len(latencies_us) if latencies_us else 0,
            "p50_us": processes.percentile(latencies_us, 0.5),
            "p90_us": processes.percentile(latencies_us, 0.9),
            "p99_us": processes.percentile(latencies_us, 0.99),
            "max_us": latencies_us[-1] if latencies_us else 0}


def report_level(name, level):
    latency = level["latency"]
    processes.log(f"  {name} c={level['level']:.0f}: {level['throughput']:.0f} req/s, "
                  f"p50 {latency['p50_us']:.0f} µs, p99 {latency['p99_us']:.0f} µs, "
                  f"wrong {level['wrong']}, errors {sum(level['errors'].values())}, "
                  f"client CPU {level['client_cpu_cores']:.2f}")


# --- the report ------------------------------------------------------------------------------


def at(levels, concurrency):
    return next(level for level in levels if level["level"] == concurrency)


def checked(level):
    """Answers checked: the Python generator counts them all (warm-up included);
    modeld-bench-redis counts those of the window."""
    return level.get("checked", level["latency"]["count"] + level["wrong"]
                     + sum(level.get("errors", {}).values()))


def baseline_name(baseline):
    return (f"baseline, {baseline['workers']} worker{'s' if baseline['workers'] > 1 else ''} × "
            f"{baseline['threads']} thread{'s' if baseline['threads'] > 1 else ''}")


def target_baseline(results, instances, top):
    """The baseline of the target: of the set-ups with instance_count workers (one worker for
    mlp), the one with the most req/s at `top` clients: the strictest comparison."""
    candidates = [b for b in results["baselines"] if b["workers"] == instances]
    return max(candidates, key=lambda b: at(b["levels"], top)["throughput"])


def ratios(results, levels, instances):
    """modeld over AMQP ÷ the target's baseline at the top level: the main table's, then each
    round's."""
    top = max(levels)
    base = at(target_baseline(results, instances, top)["levels"], top)["throughput"]
    pairs = [(at(results["modeld_amqp"], top)["throughput"], base)]
    pairs += [(r["modeld"]["throughput"], r["baseline"]["throughput"])
              for r in results.get("rounds", [])]
    return [m / b if b else math.inf for m, b in pairs]


def targets(results, levels, instances):
    top = max(levels)
    baseline = target_baseline(results, instances, top)
    modeld, base = at(results["modeld_amqp"], top), at(baseline["levels"], top)
    measured = ratios(results, levels, instances)
    ratio = statistics.median(measured)
    modeld_levels = [level for key in ("modeld_amqp", "modeld_redis", "modeld_redis_cpp")
                     for level in results[key]]
    modeld_levels += [r["modeld"] for r in results.get("rounds", [])]
    wrong = sum(level["wrong"] for level in modeld_levels)
    answers = sum(checked(level) for level in modeld_levels)
    if len(measured) > 1:
        how = (f"median of {len(measured)} windows ({', '.join(f'{r:.2f}×' for r in measured)}"
               f"; {sum(r >= TARGET_RATIO for r in measured)} of {len(measured)} ≥ "
               f"{TARGET_RATIO:g}×)")
    else:
        how = f"{ratio:.2f}×"
    return [
        {"name": f"mlp c={top}: modeld over AMQP vs the original design on RabbitMQ "
                 f"({baseline_name(baseline)})",
         "requirement": f"≥ {TARGET_RATIO:g} × its throughput (same load generator)",
         "measured": f"{modeld['throughput']:.0f} vs {base['throughput']:.0f} req/s in the "
                     f"table; ratio {how}",
         "value": f"{ratio:.2f}×", "pass": ratio >= TARGET_RATIO},
        {"name": "answers delivered to the wrong request (modeld)",
         "requirement": "0, every level, AMQP and Redis",
         "measured": f"{wrong} of {answers} answers checked", "value": f"{wrong}",
         "pass": wrong == 0},
    ]


def table(rows, broker_column):
    out = ["| set-up | clients | req/s | p50 µs | p99 µs | wrong answers | errors "
           f"| generator CPU | server CPU | {broker_column} CPU | all CPU | mean batch |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, level in rows:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(level.get("errors", {}).items()) if v)
        cpu = level.get("server_cpu_cores", {})
        batch = f"{level['mean_batch_size']:.1f}" if "mean_batch_size" in level else "–"
        out.append(
            f"| {name} | {level['level']:.0f} | {level['throughput']:.0f} "
            f"| {level['latency']['p50_us']:.0f} | {level['latency']['p99_us']:.0f} "
            f"| {level['wrong']} of {checked(level)} | {errors or '0'} "
            f"| {level['client_cpu_cores']:.2f} | {cpu.get('server', 0):.2f} "
            f"| {cpu.get('broker', 0):.2f} | {cores_sum(level):.2f} | {batch} |")
    return "\n".join(out)


def cores_sum(level):
    return level["client_cpu_cores"] + sum(level.get("server_cpu_cores", {}).values())


def per_request_us(level, part):
    cores = (level["client_cpu_cores"] if part == "generator"
             else level["server_cpu_cores"].get(part, 0))
    return 1e6 * cores / max(level["throughput"], 1e-9)


def render(info, results, computed, levels):
    top = max(levels)
    amqp_rows = [(baseline_name(b), level) for b in results["baselines"] for level in b["levels"]]
    amqp_rows += [("modeld over AMQP", level) for level in results["modeld_amqp"]]
    redis_rows = ([("modeld over Redis", level) for level in results["modeld_redis"]]
                  + [("modeld over Redis, C++ generator", level)
                     for level in results["modeld_redis_cpp"]])
    modeld_amqp, modeld_redis = at(results["modeld_amqp"], top), at(results["modeld_redis"], top)
    redis_cpp = at(results["modeld_redis_cpp"], top)
    chosen = target_baseline(results, info["instances"], top)
    baseline_wrong = {}
    for b in results["baselines"]:
        for level in b["levels"]:
            for kind, n in level["wrong_by_kind"].items():
                baseline_wrong[kind] = baseline_wrong.get(kind, 0) + n
    ratios = [f"{baseline_name(b)} "
              f"{modeld_amqp['throughput'] / max(at(b['levels'], top)['throughput'], 1e-9):.2f}×"
              for b in results["baselines"]]
    lines = [
        f"# modeld over AMQP vs the original design on RabbitMQ — {info['date']}", "",
        f"`{info['command']}` (the AMQP step of `make bench`), {info['elapsed_seconds']:.0f} s. "
        f"Commit {info['commit']}. {info['nproc']} CPU(s) ({info['cpu']}), "
        f"{info['memory_gib']:.1f} GiB; {info['load']}.", "",
        "## Targets", "",
        "| target | requirement | measured | ratio | result |", "|---|---|---|---|---|",
        *[f"| {t['name']} | {t['requirement']} | {t['measured']} | {t['value']} "
          f"| **{'MET' if t['pass'] else 'MISS'}** |" for t in computed], "",
        f"The baseline of the target is the faster, at c={top}, of the two one-worker set-ups "
        f"({baseline_name(chosen)} here). modeld over AMQP at c={top} against each baseline "
        f"row: {', '.join(ratios)}.", "",
        "## AMQP: one RabbitMQ node, one load generator", "",
        f"Python clients (`bench/harness/amqp_clients.py`, pika {info['pika_version']}), "
        f"spread over up to {info['generator_processes']} processes, each running its clients "
        "on one pika IOLoop: every client has its own connection, channel and exclusive reply "
        "queue and one request outstanding; it publishes a `RequestEnvelope` to the set-up's "
        f"queue ({info['delivery']}) and sends the next request when the answer arrives on its "
        "queue. Latency from publish to answer. **Wrong answers**: an answer whose "
        "correlation_id or request_id is not the request's, whose logits are not mlp's output "
        f"for the request's own input (one of {CASES} inputs, outputs computed with the venv's "
        "torch before the run; rtol 1e-4, atol 1e-5), or one arriving with no request "
        "outstanding; never counted in req/s, and counted over the whole level (warm-up "
        "included, as is the \"of N\" of answers checked).", "",
        table(amqp_rows, "RabbitMQ"), "",
        *rounds_section(results, top, chosen),
        "## Redis, in the same run", "",
        "modeld over Redis (streams mode) on a private redis-server, driven by the same Python "
        "generator (the same processes, loop, envelopes and checks; the request is "
        "`XADD modeld:requests MAXLEN ~ 100000 * envelope …` and `BLPOP modeld:reply:<id>` "
        "written together, as modeld's Python client sends them), then by "
        "`modeld-bench-redis` (C++, redis_bench.py's generator; it checks each reply's "
        "request_id, not the values) to show what the Python generator itself costs.", "",
        table(redis_rows, "redis-server"), "",
        f"At c={top}, with the same Python generator: modeld over AMQP "
        f"{modeld_amqp['throughput']:.0f} req/s, over Redis {modeld_redis['throughput']:.0f} "
        f"req/s (AMQP/Redis "
        f"{modeld_amqp['throughput'] / max(modeld_redis['throughput'], 1e-9):.2f}). "
        f"The C++ generator gets {redis_cpp['throughput']:.0f} req/s from modeld over Redis.", "",
        "## What limits these numbers", "",
        *limits(info, results, top, chosen), "",
        "## Set-up", "",
        f"- RabbitMQ {info['broker_version']} (Debian's), a private node started for the run "
        "by `tests/integration/rabbitmq_server.py` (its own folder, ports and epmd, no "
        "plugins, loopback, Erlang's defaults), shared by the baselines and modeld on separate "
        f"durable classic queues (`{BASELINE_QUEUE}`, `{MODELD_QUEUE}`).",
        "- Baselines: `bench/baselines/amqp_worker/worker.py` (the venv's Python, torch and "
        "pika, a BlockingConnection): basic_qos(prefetch_count=1), one message, mlp on its one "
        "item, basic_publish of the `ReplyEnvelope` to reply_to with the correlation_id (no "
        f"publisher confirms), basic_ack. {info['instances']} worker(s) (mlp's instance_count) "
        f"with {info['threads']} intra-op thread(s) (what modeld's TorchBackend gives an "
        "instance, and torch's default on this machine), as redis_bench.py runs its baseline; "
        f"the same with 1 thread; and {info['nproc']} single-threaded workers, one per core.",
        f"- modeld over AMQP: `build/bin/modeld --amqp-url=amqp://…/%2F "
        f"--amqp-queue={MODELD_QUEUE}` on `{MODEL}` as generated (`dynamic_batching {{ }}`, "
        "one instance), default AMQP settings (prefetch 64; publisher confirms: a request is "
        "acknowledged once the broker has its reply).",
        "- modeld over Redis: `build/bin/modeld --redis-url=redis://127.0.0.1:PORT/0`, streams "
        "mode, default settings, on a `redis-server` started for the run (`--save '' "
        "--appendonly no`). Measured first, before the RabbitMQ node starts.",
        f"- mlp: one item per request, FP32 x[{','.join(map(str, info['dims']))}] "
        f"({4 * math.prod(info['dims'])} bytes) → logits[10]. {info['warmup_seconds']:g} s "
        f"warm-up, then {info['seconds']:g} s measured per level; every generator process "
        "connects all its clients before the common start time.",
        "- CPU columns: cores used on average over the measured window: generator (getrusage "
        "of its processes), server (modeld or the baseline workers), broker (every process of "
        "the RabbitMQ node's session, or redis-server), from /proc/<pid>/stat; \"all\" is "
        "their sum.", "",
    ]
    lines += [f"Note: {note}" for note in info["notes"]]
    if baseline_wrong:
        lines.append(f"Note: the baselines' wrong answers by kind: {baseline_wrong}.")
    return "\n".join(lines).rstrip() + "\n"


def rounds_section(results, top, chosen):
    rounds = results.get("rounds")
    if not rounds:
        return []
    lines = [f"Then {len(rounds)} more windows of the target's pair at c={top}, alternating "
             f"{baseline_name(chosen)} and modeld over AMQP (both consuming, each on its own "
             "queue), to show how much the ratio moves between windows on this machine:", "",
             "| round | baseline req/s | modeld req/s | ratio | wrong answers (both) "
             "| all CPU (baseline; modeld) |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(rounds, 1):
        base, modeld = r["baseline"], r["modeld"]
        lines.append(
            f"| {i} | {base['throughput']:.0f} | {modeld['throughput']:.0f} "
            f"| {modeld['throughput'] / max(base['throughput'], 1e-9):.2f}× "
            f"| {base['wrong'] + modeld['wrong']} of {checked(base) + checked(modeld)} "
            f"| {cores_sum(base):.2f}; {cores_sum(modeld):.2f} |")
    return lines + [""]


def workers_line(results, top):
    costs = [(b, per_request_us(at(b["levels"], top), "server")) for b in results["baselines"]]
    line = ("- **The baselines' workers** spent, a request at c=" + str(top) + ": "
            + ", ".join(f"{baseline_name(b)} {us:.0f} µs" for b, us in costs) + ".")
    one = [us for b, us in costs if b["workers"] == 1 and b["threads"] == 1]
    many = [(b, us) for b, us in costs if b["workers"] == 1 and b["threads"] > 1]
    if one and many and many[0][1] > 1.5 * one[0]:
        threaded, single = many[0][0], next(b for b, _ in costs
                                            if b["workers"] == 1 and b["threads"] == 1)
        share = (at(threaded["levels"], top)["throughput"]
                 / max(at(single["levels"], top)["throughput"], 1e-9))
        line += (f" With {threaded['threads']} intra-op threads the one worker burns "
                 f"{many[0][1] / one[0]:.1f}× the CPU of one thread per item, and answers "
                 f"{share:.0%} as many requests: torch's OpenMP threads wait for each other "
                 "(spinning) on cores the broker and the generator also need.")
    return line


def limits(info, results, top, chosen):
    modeld = at(results["modeld_amqp"], top)
    baseline = at(chosen["levels"], top)
    redis_py, redis_cpp = at(results["modeld_redis"], top), at(results["modeld_redis_cpp"], top)
    nproc = info["nproc"]

    def split(level):
        cpu = level["server_cpu_cores"]
        return (f"generator {level['client_cpu_cores']:.2f}, server {cpu.get('server', 0):.2f}, "
                f"broker {cpu.get('broker', 0):.2f}: {cores_sum(level):.2f} of {nproc} cores")

    generator, broker, server = (per_request_us(modeld, part)
                                 for part in ("generator", "broker", "server"))
    cpp_generator = per_request_us(redis_cpp, "generator")
    needed = TARGET_RATIO * baseline["throughput"]
    ceiling = nproc * 1e6 / max(generator + broker + server, 1e-9)
    ceiling_cpp = nproc * 1e6 / max(cpp_generator + broker + server, 1e-9)
    return [
        f"- **One machine for everything.** The generator, the broker and the server share "
        f"{nproc} cores. At c={top}: modeld over AMQP {split(modeld)}; "
        f"{baseline_name(chosen)} {split(baseline)}. What the three do not use went to other "
        "processes (see the load line at the top) or to waiting.",
        f"- **CPU per request** at c={top} (µs): modeld over AMQP: generator {generator:.0f}, "
        f"RabbitMQ {broker:.0f}, modeld {server:.0f}; {baseline_name(chosen)}: generator "
        f"{per_request_us(baseline, 'generator'):.0f}, RabbitMQ "
        f"{per_request_us(baseline, 'broker'):.0f}, worker "
        f"{per_request_us(baseline, 'server'):.0f}; modeld over Redis: generator "
        f"{per_request_us(redis_py, 'generator'):.0f}, redis-server "
        f"{per_request_us(redis_py, 'broker'):.0f}, modeld "
        f"{per_request_us(redis_py, 'server'):.0f}; modeld-bench-redis {cpp_generator:.0f}. "
        "The broker's figure includes Erlang's schedulers spinning while they wait for work "
        "(Erlang's default busy wait), which is why it is larger per request at the "
        "baseline's lower rate.",
        f"- **The ceiling this mix allows.** With every core busy at those costs, modeld over "
        f"AMQP could answer at most about {ceiling:.0f} req/s here; {TARGET_RATIO:g}× the "
        f"baseline is {needed:.0f} req/s. The broker alone takes {broker:.0f} µs a request "
        f"(modeld {server:.0f} µs). A generator costing what modeld-bench-redis costs over "
        f"Redis ({cpp_generator:.0f} µs) would lift that ceiling to about {ceiling_cpp:.0f} "
        f"req/s ({'still below' if ceiling_cpp < needed else 'above'} {TARGET_RATIO:g}× the "
        "baseline); there is no C++ AMQP generator, and AMQP has more frames to write and read "
        "than RESP, so take this as an upper bound. The baseline would gain little: its one "
        "Python worker runs one item at a time and, with prefetch_count=1, waits a round trip "
        "to the broker between messages.",
        workers_line(results, top),
        f"- **modeld itself** spent {server:.0f} µs of CPU a request over AMQP (mean batch "
        f"{modeld.get('mean_batch_size', 0):.1f}) and {per_request_us(redis_py, 'server'):.0f} "
        f"µs over Redis (mean batch {redis_py.get('mean_batch_size', 0):.1f}), with the same "
        "generator at the same concurrency: smaller batches cost more a request, and the AMQP "
        "path also confirms each reply with the broker before acknowledging its request.",
        f"- **The Python generator** costs {generator:.0f} µs a request over AMQP (pika's "
        "frame codec and event loop, plus the checks) where modeld-bench-redis costs "
        f"{cpp_generator:.0f} over Redis; over Redis, the Python generator got "
        f"{redis_py['throughput']:.0f} req/s from modeld and the C++ one "
        f"{redis_cpp['throughput']:.0f}. It runs one event loop per process (a thread per "
        "client with pika's BlockingConnection costs several times more; bench/README.md).",
    ]


def main():
    args = parse_args()
    started = time.monotonic()
    load_before = processes.warn_if_loaded("amqp_bench")
    machine_start, ours_start = processes.cpu_seconds()
    work = args.build_dir / "bench-amqp"
    shutil.rmtree(work, ignore_errors=True)
    bench = AmqpBench(args, work)
    results = bench.run()
    computed = targets(results, bench.levels, bench.instances)
    machine_end, ours_end = processes.cpu_seconds()
    elapsed = time.monotonic() - started
    others = max(0.0, (machine_end - machine_start) - (ours_end - ours_start))
    import pika
    date = re.match(r"\d{4}-\d{2}-\d{2}", args.out.name)
    info = {
        "date": date.group(0) if date else datetime.date.today().isoformat(),
        "command": shlex.join([".venv/bin/python", "bench/amqp_bench.py", *sys.argv[1:]]),
        "commit": processes.commit_line(ROOT, "bench/results"), "nproc": processes.nproc(),
        "cpu": processes.cpu_model(), "memory_gib": processes.memory_gib(),
        "broker_version": bench.broker_version, "pika_version": pika.__version__,
        "warmup_seconds": args.warmup_seconds, "seconds": args.seconds,
        "generator_processes": args.generator_processes,
        "delivery": ("transient messages, delivery_mode 1" if args.delivery_mode == 1
                     else "persistent messages, delivery_mode 2"),
        "dims": bench.dims, "instances": bench.instances, "threads": bench.threads,
        "notes": bench.notes, "elapsed_seconds": elapsed,
        "load": f"load average {load_before:.2f} before the run; other processes used "
                f"{others:.0f} CPU-seconds during it ({others / (elapsed * processes.nproc()):.1%}"
                " of the machine)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(info, results, computed, bench.levels))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"info": info, "targets": computed, "results": results}, indent=1))
    for t in computed:
        print(f"{'MET ' if t['pass'] else 'MISS'}  {t['name']}: {t['measured']} ({t['value']})")
    processes.log(f"wrote {args.out} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
