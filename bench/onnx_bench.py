#!/usr/bin/env python3
"""make bench, the ONNX section: one MLP served by modeld as ONNX, against onnxruntime called
in process from Python (what each Django worker does when it loads the model itself), and
against the same MLP served as TorchScript, at 1 and 32 clients.

Usage (from the repository root, after `make build`):
    .venv/bin/python bench/onnx_bench.py [--concurrency 1,32] [--seconds 3]
        [--warmup-seconds 1] [--out bench/results/<date>-onnx.md]

The model is examples/generate_models.py's `mlp` (256 -> 512 ReLU -> 512 ReLU -> 10, FP32,
the examples' seed), built once with the venv's torch at the start of the run and written
twice into build/bench-onnx/: `torch.jit.trace` (platform pytorch_libtorch, config.pbtxt with
max_batch_size 64, dynamic_batching, one instance) and `torch.onnx.export(dynamo=False)` with
a dynamic batch axis (no config.pbtxt: modeld completes it; the report shows what it
completed). Every set-up gets the same intra-op threads: modeld's default (cores / instances)
and, in process, onnxruntime sessions with that many threads, not spinning (as modeld's).

Load, single-row requests, closed loop (one request outstanding per client):
- modeld-bench (C++, 4 gRPC connections) against each modeld;
- Python clients: harness/redis_python_clients.py's loop (modeld.Client.predict from threads
  sharing one client, all processes starting at one CLOCK_MONOTONIC time), as 1 process x N
  threads or N processes x 1 thread (N Gunicorn workers);
- onnxruntime in process: the same loop and process layouts, with `modeld` swapped for an
  adapter whose Client runs an InferenceSession (one per process, shared by its threads), so
  both sides are measured by the same code.

Answers are checked before the load: torch (eager and traced) against onnxruntime, and every
row sent alone and concurrently (so batched) through each modeld, at rtol 1e-5, atol 1e-6; a
difference stops the run. Logs and scratch files go to build/bench-onnx/.
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness import processes  # noqa: E402
from harness import redis_python_clients as python_clients  # noqa: E402
from demo_memory import kib  # noqa: E402

import modeld  # noqa: E402

BIN = ROOT / "build" / "bin"
WORK = ROOT / "build" / "bench-onnx"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
ONNX, TORCHSCRIPT = "mlp_onnx", "mlp_torchscript"
INPUTS, OUTPUTS = 256, 10
TORCHSCRIPT_MAX_BATCH = 64
RTOL, ATOL = 1e-5, 1e-6  # float32, as tests/integration/test_onnx.py
ROWS = 256  # rows of the answer check
# Calls before the model is timed alone: TorchScript's profiling executor takes 10-20 ms a call
# for the first few calls of each new input shape.
WARMUP_CALLS = 20


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per level")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    parser.add_argument("--out", type=Path, help="default bench/results/<date>-onnx.md")
    return parser.parse_args()


# --- the models ------------------------------------------------------------------------------


def write_models(threads):
    """Writes both repositories; returns (x, {name: output}) for the answer check, and the
    traced module."""
    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    import generate_models

    torch.set_num_threads(threads)
    torch.manual_seed(generate_models.SEED)
    module = generate_models.mlp().eval()
    example = torch.zeros(2, INPUTS)
    script_dir = WORK / "repository-torchscript" / TORCHSCRIPT
    onnx_dir = WORK / "repository-onnx" / ONNX
    (script_dir / "1").mkdir(parents=True)
    (onnx_dir / "1").mkdir(parents=True)
    (script_dir / "config.pbtxt").write_text(generate_models.config(
        TORCHSCRIPT, TORCHSCRIPT_MAX_BATCH, [("x", "TYPE_FP32", [INPUTS])],
        [("logits", "TYPE_FP32", [OUTPUTS])],
        "instance_group [ { count: 1, kind: KIND_CPU } ]\ndynamic_batching { }\n"))
    with warnings.catch_warnings():  # torch 2.x marks both TorchScript paths deprecated
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example)
        traced.save(str(script_dir / "1" / "model.pt"))
        torch.onnx.export(module, (example,), str(onnx_dir / "1" / "model.onnx"), dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    x = np.random.default_rng(5).standard_normal((ROWS, INPUTS)).astype(np.float32)
    with torch.inference_mode():
        outputs = {"torch eager": module(torch.from_numpy(x)).numpy(),
                   "TorchScript (traced, in Python)": traced(torch.from_numpy(x)).numpy()}
    return x, outputs, traced


def compute_alone(onnx_path, traced, threads, x, seconds):
    """{(runtime, batch): median µs of one call}, one thread of this process calling back to
    back after WARMUP_CALLS: onnxruntime as every set-up runs it and with one thread, and the
    traced module through torch's Python API."""
    import torch

    as_modeld, one_thread = session(onnx_path, threads), session(onnx_path, 1)
    runs = {f"onnxruntime, {threads} threads, not spinning (as every set-up)":
            lambda rows: as_modeld.run(None, {"x": rows}),
            "onnxruntime, 1 thread": lambda rows: one_thread.run(None, {"x": rows}),
            f"TorchScript (torch.jit in Python), {threads} threads":
            lambda rows: traced(torch.from_numpy(rows))}
    result = {}
    with torch.inference_mode():
        for name, run in runs.items():
            for batch in (1, TORCHSCRIPT_MAX_BATCH):
                rows, times = x[:batch], []
                for _ in range(WARMUP_CALLS):
                    run(rows)
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    started = time.perf_counter_ns()
                    run(rows)
                    times.append(time.perf_counter_ns() - started)
                result[(name, batch)] = float(np.median(times)) / 1e3
    return result


def session(path, threads):
    """An InferenceSession as modeld opens one: `threads` intra-op threads, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class SessionClient:
    """What harness/redis_python_clients.py calls on a modeld.Client, run in process."""

    def __init__(self, path, threads):
        self.session = session(path, threads)

    def metadata(self, model):
        return {}

    def predict(self, model, x):
        return self.session.run(None, {"x": x})[0]

    def close(self):
        pass


def worker(argv):
    """One client process: python_clients.main() once the parent sends the start time.

    `--url onnx:PATH` runs the model in this process (SessionClient) instead of calling modeld.
    Prints `ready` when loaded, then reads --start-ns from stdin (so no process starts late)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--intra-op-threads", type=int, required=True)
    args, rest = parser.parse_known_args(argv)
    if args.url.startswith("onnx:"):
        client = SessionClient(args.url[len("onnx:"):], args.intra_op_threads)
        client.predict("", np.zeros((1, INPUTS), np.float32))
        python_clients.modeld = types.SimpleNamespace(
            Client=lambda *_, **__: client, ModeldError=modeld.ModeldError)
    else:
        importlib.import_module("modeld._grpc")  # grpc's import, before the start
    print("ready", flush=True)
    start_ns = sys.stdin.readline().strip()
    sys.argv = [python_clients.__file__, "--url", args.url, "--start-ns", start_ns, *rest]
    python_clients.main()


# --- the load --------------------------------------------------------------------------------


class MemorySampler:
    """RSS and PSS (MiB) of groups of processes, summed per group, read once at `at_ns`."""

    def __init__(self, pids, at_ns):
        self.values = {}
        self._thread = threading.Thread(target=self._run, args=(dict(pids), at_ns), daemon=True)
        self._thread.start()

    def _run(self, pids, at_ns):
        time.sleep(max(0.0, (at_ns - time.monotonic_ns()) / 1e9))
        for name, group in pids.items():
            self.values[name] = (sum(kib(pid, "VmRSS") for pid in group) / 1024,
                                 sum(kib(pid, "Pss") for pid in group) / 1024)

    def result(self):
        self._thread.join()
        return self.values


class Bench:
    def __init__(self, args, threads, x):
        self.args, self.threads, self.x = args, threads, x
        self.logs = WORK / "logs"
        self.logs.mkdir(parents=True)
        self.bin = WORK / "bin"  # copies, so that a rebuild cannot swap them mid-run
        self.bin.mkdir()
        for name in ("modeld", "modeld-bench"):
            if not (BIN / name).is_file():
                sys.exit(f"onnx_bench: {BIN / name} is missing; run `make build` first")
            shutil.copy2(BIN / name, self.bin / name)
        self.levels = []

    def window(self, start_ns):
        begin = start_ns + int(self.args.warmup_seconds * 1e9)
        return begin, begin + int(self.args.seconds * 1e9)

    def record(self, level, metrics, model, before):
        after = processes.batch_size_totals(metrics, model)
        if before and after and after[1] > before[1]:
            level["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
        self.levels.append(level)
        batch = f", mean batch {level['mean_batch']:.1f}" if "mean_batch" in level else ""
        processes.log(f"{level['setup']}, {level['load']}, c={level['clients']}: "
                      f"{level['req_per_s']:.0f} req/s, p50 {level['p50_us']:.0f} µs, "
                      f"p99 {level['p99_us']:.0f} µs, errors: {error_text(level)}{batch}")

    def modeld_bench(self, address, model, concurrency, pids):
        """One closed-loop level of modeld-bench (C++) against modeld."""
        out = WORK / f"{model}-modeld-bench-c{concurrency}.json"
        begin, end = self.window(time.monotonic_ns())
        begin += int(0.1e9)  # the generator's own start
        cpu = processes.CpuWindow(pids, begin, end)
        memory = MemorySampler(pids, (begin + end) // 2)
        processes.run_checked(
            [str(self.bin / "modeld-bench"), f"--target={address}", f"--model={model}",
             f"--concurrency={concurrency}", f"--warmup-seconds={self.args.warmup_seconds}",
             f"--seconds={self.args.seconds}", "--channels=4", f"--json={out}"],
            self.logs, f"{model}-modeld-bench-c{concurrency}", timeout=300)
        run = json.loads(out.read_text())["levels"][0]
        cores = cpu.cores()
        return {"clients": concurrency, "req_per_s": run["throughput"],
                "p50_us": run["latency"]["p50_us"], "p99_us": run["latency"]["p99_us"],
                "errors": dict(run["errors"]),
                "cpu_cores": {"clients": run["client_cpu_cores"], **cores},
                "memory_mib": memory.result()}

    def python(self, url, model, process_count, threads_each, pids):
        """One level of python_clients' loop in `process_count` processes."""
        argv = [PYTHON, __file__, "--worker", "--url", url,
                "--intra-op-threads", str(self.threads), "--model", model,
                "--input-size", str(INPUTS), "--threads", str(threads_each),
                "--warmup-seconds", str(self.args.warmup_seconds),
                "--seconds", str(self.args.seconds)]
        with open(self.logs / "python-clients.log", "a") as stderr:
            children = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, text=True)
                        for _ in range(process_count)]
            try:
                for child in children:
                    if child.stdout.readline().strip() != "ready":
                        raise RuntimeError(f"a client process failed to start; see "
                                           f"{self.logs / 'python-clients.log'}")
                start_ns = time.monotonic_ns() + int(0.1e9)
                begin, end = self.window(start_ns)
                groups = {**pids, "clients": [child.pid for child in children]}
                cpu = processes.CpuWindow(pids, begin, end)
                memory = MemorySampler(groups, (begin + end) // 2)
                for child in children:
                    child.stdin.write(f"{start_ns}\n")
                    child.stdin.flush()
                reports = []
                for child in children:
                    output, _ = child.communicate(timeout=300)
                    if child.returncode != 0:
                        raise RuntimeError(f"a client process failed; see "
                                           f"{self.logs / 'python-clients.log'}")
                    reports.append(json.loads(output.strip().splitlines()[-1]))
            finally:
                for child in children:
                    if child.poll() is None:
                        child.kill()
                        child.wait()
        latencies = sorted(ns / 1e3 for r in reports for ns in r["latencies_ns"])
        errors = {}
        for report in reports:
            for code, count in report["errors"].items():
                errors[code] = errors.get(code, 0) + count
        return {"clients": process_count * threads_each, "req_per_s": len(latencies) /
                self.args.seconds, "p50_us": processes.percentile(latencies, 0.5),
                "p99_us": processes.percentile(latencies, 0.99),
                "errors": errors,
                "cpu_cores": {"clients": sum(r["cpu_seconds"] for r in reports) /
                              self.args.seconds, **cpu.cores()},
                "memory_mib": memory.result()}

    def layouts(self):
        """(load name, processes, threads each, clients) for every level."""
        for clients in (int(c) for c in self.args.concurrency.split(",")):
            if clients == 1:
                yield "Python, 1 process", 1, 1, 1
            else:
                yield f"Python, 1 process × {clients} threads", 1, clients, clients
                yield f"Python, {clients} processes", clients, 1, clients

    def served(self, setup, repository, model):
        """modeld on `repository`: modeld-bench, then the Python clients; returns the config
        modeld serves and its answers to the check's rows."""
        server, address = processes.start_grpc_server(f"modeld-{model}", [
            str(self.bin / "modeld"), f"--model-repository={repository}",
            "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0"], self.logs)
        metrics = processes.metrics_url(server)
        pids = {"modeld": [server.pid]}
        try:
            config = completed_config(address, model)
            answers = served_answers(address, model, self.x)
            for clients in (int(c) for c in self.args.concurrency.split(",")):
                before = processes.batch_size_totals(metrics, model)
                level = self.modeld_bench(address, model, clients, pids)
                self.record({"setup": setup, "load": "modeld-bench (C++)", **level}, metrics,
                            model, before)
            for load, count, each, clients in self.layouts():
                before = processes.batch_size_totals(metrics, model)
                level = self.python(f"grpc://{address}", model, count, each, pids)
                self.record({"setup": setup, "load": f"{load} (modeld.Client)", **level},
                            metrics, model, before)
        finally:
            server.stop()
        return config, answers

    def in_process(self, path):
        for load, count, each, clients in self.layouts():
            level = self.python(f"onnx:{path}", ONNX, count, each, {})
            self.record({"setup": "onnxruntime in process", "load": f"{load} (a session each)"
                         if count > 1 else f"{load} (one session)", **level}, None, ONNX,
                        None)


def completed_config(address, model):
    """The model's config as modeld serves it (ModelConfig), in text format."""
    import grpc
    from modeld._grpc import stubs
    from modeld._proto import grpc_service_pb2 as pb

    with grpc.insecure_channel(address) as channel:
        response = stubs(channel)["ModelConfig"](pb.ModelConfigRequest(name=model), timeout=30)
    return response.config


def served_answers(address, model, x):
    """Each row of x sent alone, 32 at a time (so modeld batches them), then all in one batch
    of 64 rows at a time; returns both, stacked."""
    with modeld.Client(f"grpc://{address}", timeout=30) as client:
        with ThreadPoolExecutor(32) as pool:
            rows = np.concatenate(list(pool.map(
                lambda i: client.predict(model, x[i:i + 1]), range(len(x)))))
        batches = np.concatenate([client.predict(model, x[i:i + TORCHSCRIPT_MAX_BATCH])
                                  for i in range(0, len(x), TORCHSCRIPT_MAX_BATCH)])
    return rows, batches


def error_text(level):
    """`0`, or each gRPC code with its count."""
    return ", ".join(f"{count} {code}" for code, count in sorted(level["errors"].items())) or "0"


def check_answers(reference, answers):
    """Raises (stopping the run) unless every answer is within RTOL/ATOL of onnxruntime's;
    returns {name: max abs difference}."""
    differences = {}
    for name, got in answers.items():
        np.testing.assert_allclose(got, reference, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name} against onnxruntime in Python")
        differences[name] = float(np.max(np.abs(got - reference)))
    return differences


# --- the report ------------------------------------------------------------------------------


def render(info, levels):
    def cell(level, name):
        value = level["cpu_cores"].get(name)
        return "–" if value is None else f"{value:.2f}"

    def memory(level, index):
        """`clients + modeld`, or the one of them the level has."""
        values = level["memory_mib"]
        return " + ".join(f"{values[name][index]:.0f}" for name in ("clients", "modeld")
                          if name in values)

    rows = ["| clients | set-up | load | req/s | p50 µs | p99 µs | mean batch | "
            "CPU: clients | CPU: modeld | RSS MiB | PSS MiB | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for level in sorted(levels, key=lambda level: level["clients"]):
        batch = f"{level['mean_batch']:.1f}" if "mean_batch" in level else "–"
        rows.append(f"| {level['clients']} | {level['setup']} | {level['load']} | "
                    f"{level['req_per_s']:.0f} | {level['p50_us']:.0f} | "
                    f"{level['p99_us']:.0f} | {batch} | {cell(level, 'clients')} | "
                    f"{cell(level, 'modeld')} | {memory(level, 0)} | {memory(level, 1)} | "
                    f"{error_text(level)} |")

    def find(setup, load, clients):
        return next((level for level in levels if level["setup"] == setup and
                     level["load"].startswith(load) and level["clients"] == clients), None)

    def memory_sum(level):
        return tuple(sum(values[index] for values in level["memory_mib"].values())
                     for index in (0, 1))

    def layout(level):
        return level["load"].split(" (")[0]

    def ratios(setup, base_setup, title, with_memory):
        """A line per level of base_setup that `setup` has too: setup ÷ base."""
        lines = []
        for base in (level for level in levels if level["setup"] == base_setup):
            level = find(setup, layout(base), base["clients"])
            if not (level and base["req_per_s"] and base["p50_us"]):
                continue
            line = (f"- {base['clients']} client(s), {layout(base)}: {title}: "
                    f"{level['req_per_s'] / base['req_per_s']:.2f}× the req/s, "
                    f"{level['p50_us'] / base['p50_us']:.2f}× the p50")
            if with_memory:
                (rss, pss), (base_rss, base_pss) = memory_sum(level), memory_sum(base)
                line += (f"; clients + modeld against the in-process clients: RSS {rss:.0f} vs "
                         f"{base_rss:.0f} MiB, PSS {pss:.0f} vs {base_pss:.0f} MiB")
            lines.append(line + ".")
        return lines

    alone = ["| model alone, in Python | batch 1: µs a call | batch "
             f"{TORCHSCRIPT_MAX_BATCH}: µs a call | batch {TORCHSCRIPT_MAX_BATCH}: µs a row |",
             "|---|---|---|---|"]
    for name in dict.fromkeys(name for name, _ in info["alone"]):
        one, many = info["alone"][(name, 1)], info["alone"][(name, TORCHSCRIPT_MAX_BATCH)]
        alone.append(f"| {name} | {one:.0f} | {many:.0f} | "
                     f"{many / TORCHSCRIPT_MAX_BATCH:.1f} |")
    differences = ", ".join(f"{name} {value:.1e}" for name, value in info["differences"].items())
    return "\n".join([
        f"# ONNX: an MLP in modeld vs onnxruntime in process vs TorchScript — {info['date']}",
        "",
        f"`{info['command']}` (the ONNX step of `make bench`), {info['elapsed_seconds']:.0f} s. "
        f"Commit {info['commit']}. {info['nproc']} CPU(s) ({info['cpu']}), "
        f"{info['memory_gib']:.1f} GiB; {info['load']}. Python {info['python']}, onnxruntime "
        f"{info['onnxruntime']}, onnx {info['onnx']}, torch {info['torch']}, numpy "
        f"{info['numpy']}.", "",
        *rows, "",
        "Ratios. The like-for-like pair, and the headline, is `Python, N processes` (N web "
        "workers, each with either a modeld.Client or its own onnxruntime session); "
        "`1 process × N threads` shares one client or one session between threads:", "",
        *ratios("modeld, ONNX", "onnxruntime in process",
                 "modeld (ONNX) ÷ onnxruntime in process", True),
        *ratios("modeld, ONNX", "modeld, TorchScript", "ONNX ÷ TorchScript in modeld", False),
        "",
        "What one call of the model costs without any transport (one thread calling back to "
        "back in the bench process, median):", "",
        *alone, "",
        "## Set-up", "",
        f"- Model: examples/generate_models.py's `mlp` (FP32 x[{INPUTS}] → Linear 512 → "
        f"ReLU → Linear 512 → ReLU → Linear {OUTPUTS}, the examples' seed), built with torch "
        f"{info['torch']} at the start of the run and written twice: `torch.jit.trace` "
        f"(`{TORCHSCRIPT}`, platform pytorch_libtorch, config.pbtxt with max_batch_size "
        f"{TORCHSCRIPT_MAX_BATCH}, `dynamic_batching {{ }}`, one instance) and "
        f"`torch.onnx.export(dynamo=False)` with a dynamic batch axis (`{ONNX}`, opset "
        f"{info['opset']}, no config.pbtxt). modeld completed `{ONNX}`'s config as "
        f"max_batch_size {info['onnx_config']['max_batch_size']}, "
        f"{info['onnx_config']['batching']}, {info['onnx_config']['instances']} instance(s); "
        "kept as completed.",
        f"- Intra-op threads: {info['threads']} everywhere — modeld's default for both models "
        "(cores / instances) and, in process, `intra_op_num_threads` of every onnxruntime "
        "session (inter-op 1, `allow_spinning` 0, as modeld opens its sessions). With 32 "
        "processes that is 32 sessions of that many threads each, as 32 Gunicorn workers "
        "would have.",
        f"- Answers: torch eager and the traced module in Python, and each modeld (every one "
        f"of {ROWS} rows sent alone, 32 at a time so modeld batches them, and in batches of "
        f"{TORCHSCRIPT_MAX_BATCH}), against onnxruntime in Python on the same rows: all "
        f"within rtol {RTOL:g}, atol {ATOL:g} (else the run stops). Largest absolute "
        f"differences: {differences}.",
        "- Load: single-row requests, closed loop, one request outstanding per client; "
        f"{info['warmup_seconds']:g} s warm-up then {info['seconds']:g} s measured per level. "
        "`modeld-bench (C++)`: bench/load_generator over 4 gRPC connections. `Python, …`: "
        "bench/harness/redis_python_clients.py's loop (`predict()` from threads sharing one "
        "client per process; every process of a level starts at one CLOCK_MONOTONIC time, "
        "once all have loaded), with `modeld.Client(\"grpc://…\")` against modeld, or in "
        "process an adapter whose `predict()` is `InferenceSession.run` on the process's "
        "one session — the same code times both. 1 process × N threads is one worker "
        "process with threads; N processes are N Gunicorn sync workers. req/s counts the "
        "answers; `errors` are the failed calls by code (modeld's or gRPC's), not counted; "
        "any makes the script exit 1 once the report is written.",
        "- CPU: cores used on average over the measured window (clients: the Python "
        "processes, getrusage, or modeld-bench's own figure; modeld: /proc). RSS and PSS "
        "(which splits shared pages between the processes sharing them) read once in the "
        "middle of the window and summed over the client processes, `clients + modeld`; the "
        "modeld-bench rows show modeld's alone.",
        "- The clients share the machine's cores with modeld: with many clients the Python "
        "processes' CPU (their column) is taken from the server. Windows are a few seconds: "
        "expect several percent of run-to-run variation, more at p99.",
        "", "Config modeld completed for the ONNX model (ModelConfig):", "", "```",
        info["onnx_config"]["text"].rstrip(), "```",
    ]) + "\n"


def describe(config):
    from google.protobuf import text_format

    return {"max_batch_size": config.max_batch_size,
            "batching": "dynamic_batching" if config.HasField("dynamic_batching")
            else "no dynamic batching",
            "instances": sum(group.count for group in config.instance_group) or 1,
            "text": text_format.MessageToString(config)}


def main():
    if sys.argv[1:2] == ["--worker"]:
        return worker(sys.argv[2:])
    args = parse_args()
    started = time.monotonic()
    load_before = processes.warn_if_loaded("onnx_bench")
    machine_start, ours_start = processes.cpu_seconds()
    shutil.rmtree(WORK, ignore_errors=True)
    threads = processes.nproc()
    processes.log(f"writing {ONNX} and {TORCHSCRIPT} with torch into {WORK}")
    x, answers, traced = write_models(threads)
    bench = Bench(args, threads, x)
    onnx_path = WORK / "repository-onnx" / ONNX / "1" / "model.onnx"
    reference = session(onnx_path, threads).run(None, {"x": x})[0]
    check_answers(reference, answers)
    alone = compute_alone(onnx_path, traced, threads, x, min(0.5, args.seconds))
    del traced
    onnx_config, (rows, batches) = bench.served("modeld, ONNX", WORK / "repository-onnx", ONNX)
    answers.update({"modeld ONNX (rows)": rows, "modeld ONNX (batches)": batches})
    check_answers(reference, answers)
    bench.in_process(onnx_path)
    _, (rows, batches) = bench.served("modeld, TorchScript", WORK / "repository-torchscript",
                                      TORCHSCRIPT)
    answers.update({"modeld TorchScript (rows)": rows, "modeld TorchScript (batches)": batches})
    differences = check_answers(reference, answers)
    machine_end, ours_end = processes.cpu_seconds()
    elapsed = time.monotonic() - started
    # The client processes are this process's children: "others" is the rest of the machine.
    others = max(0.0, (machine_end - machine_start) - (ours_end - ours_start))
    import onnx
    import onnxruntime
    import torch

    info = {
        "date": args.date, "concurrency": args.concurrency,
        "command": shlex.join([".venv/bin/python", "bench/onnx_bench.py", *sys.argv[1:]]),
        "commit": processes.commit_line(ROOT, "bench/results"), "nproc": processes.nproc(),
        "cpu": processes.cpu_model(), "memory_gib": processes.memory_gib(),
        "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "opset": max(o.version for o in onnx.load(str(onnx_path)).opset_import if not o.domain),
        "threads": threads, "alone": alone, "onnx_config": describe(onnx_config),
        "differences": differences,
        "warmup_seconds": args.warmup_seconds, "seconds": args.seconds,
        "elapsed_seconds": elapsed,
        "load": f"load average {load_before:.2f} before the run; other processes used "
                f"{others:.0f} CPU-seconds during it ({others / (elapsed * processes.nproc()):.1%}"
                " of the machine)"}
    report = render(info, bench.levels)
    out = args.out or ROOT / "bench" / "results" / f"{args.date}-onnx.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    (WORK / "levels.json").write_text(json.dumps(
        {"info": {k: v for k, v in info.items() if k not in ("onnx_config", "alone")},
         "levels": bench.levels},
        indent=1))
    print(report)
    processes.log(f"wrote {out} in {elapsed:.0f} s")
    errors = sum(sum(level["errors"].values()) for level in bench.levels)
    if errors:
        sys.exit(f"onnx_bench: {errors} failed requests (see the table)")


if __name__ == "__main__":
    main()
