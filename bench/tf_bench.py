#!/usr/bin/env python3
"""make bench, the TensorFlow section: a Keras MLP served by modeld against the same SavedModel
called in process from Python, at 1 and 32 concurrent clients, in one run.

Usage (from the repository root, after `make build`):
    .venv/bin/python bench/tf_bench.py [--concurrency 1,32] [--seconds 4] [--warmup-seconds 1]

The model is tests/integration/tf_models.py's keras_mlp (Keras 3, FP32 x[64] -> 128 relu ->
output_0[10], fixed seeded weights), written at the start of the run with the venv's
TensorFlow in Triton's layout with its config.pbtxt (max_batch_size 64, dynamic_batching).
One item per request. Set-ups:

- **modeld**: `build/bin/modeld` (a copy, so a rebuild cannot swap it mid-run) serving it;
  clients are threads of this process sharing one `modeld.Client("grpc://...")`, each a closed
  loop calling `client.infer("keras_mlp", {"x": row})`;
- **in process**: `tf.saved_model.load` + the `serving_default` signature called from threads
  of this process, all on the one loaded model: what a Django worker does today when it loads
  the model itself (TensorFlow's default thread pools).

Answers are checked against the in-process model during the warm-up of every level. Writes
bench/results/<date>-tensorflow.md (and .json); logs go to build/bench-tf/.
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import processes  # noqa: E402
import tf_models  # noqa: E402

MODEL = "keras_mlp"
RTOL, ATOL = 1e-5, 1e-6  # float32, as tests/integration/test_tensorflow.py
ROWS = 256  # distinct inputs the clients cycle through


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured per level")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    return parser.parse_args()


def close(got, expected):
    return got.shape == expected.shape and bool(
        np.all(np.abs(got - expected) <= ATOL + RTOL * np.abs(expected)))


def closed_loop(call, x, expected, concurrency, warmup, seconds, cpu_pids):
    """`concurrency` threads, each calling call(row) back to back; one request outstanding per
    thread. Returns the level's figures: answers completed in the measured window, their
    latencies, errors, wrong answers (checked during the warm-up only) and CPU per process."""
    barrier = threading.Barrier(concurrency + 1)
    latencies = [[] for _ in range(concurrency)]
    errors, wrong = [0] * concurrency, [0] * concurrency
    first_error = []
    window = {}

    def client(index):
        barrier.wait()
        start, end = window["start"], window["end"]
        i = index * 17
        while True:
            row = i % ROWS
            i += 1
            sent = time.monotonic_ns()
            if sent >= end:
                return
            try:
                answer = call(x[row:row + 1])
            except Exception as error:  # noqa: BLE001  (counted and reported, not fatal)
                errors[index] += 1
                if not first_error:
                    first_error.append(repr(error))
                continue
            done = time.monotonic_ns()
            if sent < start:
                if not close(answer, expected[row:row + 1]):
                    wrong[index] += 1
            elif done <= end:
                latencies[index].append(done - sent)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    now = time.monotonic_ns()
    window["start"] = now + int(warmup * 1e9)
    window["end"] = window["start"] + int(seconds * 1e9)
    cpu = processes.CpuWindow(cpu_pids, window["start"], window["end"])
    barrier.wait()
    for thread in threads:
        thread.join()
    merged = sorted(v for per_thread in latencies for v in per_thread)
    return {
        "clients": concurrency,
        "requests": len(merged),
        "req_per_s": len(merged) / seconds,
        "p50_us": processes.percentile(merged, 0.50) / 1e3,
        "p99_us": processes.percentile(merged, 0.99) / 1e3,
        "errors": sum(errors),
        "first_error": first_error[0] if first_error else None,
        "wrong_answers": sum(wrong),
        "cpu_cores": cpu.cores(),
    }


class TfBench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        source = args.build_dir / "bin" / "modeld"
        if not source.is_file():
            sys.exit(f"tf_bench: {source} is missing; run `make build` first")
        self.binary = work / "modeld"
        shutil.copy2(source, self.binary)
        self.levels = [int(c) for c in args.concurrency.split(",")]
        self.native = []  # modeld under the C++ load generator
        self.repository = work / "repository"
        processes.log(f"writing {MODEL} with TensorFlow into {self.repository}")
        tf_models.write_keras_mlp(self.repository / MODEL)
        self.config = (self.repository / MODEL / "config.pbtxt").read_text()
        self.x = np.random.default_rng(5).standard_normal((ROWS, 64)).astype(np.float32)
        savedmodel = self.repository / MODEL / "1" / "model.savedmodel"
        self.inprocess = tf_models.load_signature(savedmodel)
        self.expected = self.inprocess({"x": self.x})["output_0"]

    def modeld(self):
        import modeld

        server, address = processes.start_grpc_server("modeld", [
            str(self.binary), f"--model-repository={self.repository}",
            "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0"], self.logs)
        metrics = processes.metrics_url(server)
        results = []
        try:
            client = modeld.Client(f"grpc://{address}", timeout=30)

            def call(row):
                return client.infer(MODEL, {"x": row})["output_0"]

            for concurrency in self.levels:
                before = processes.batch_size_totals(metrics, MODEL)
                level = closed_loop(call, self.x, self.expected, concurrency,
                                    self.args.warmup_seconds, self.args.seconds,
                                    {"modeld": [server.pid], "clients": [os.getpid()]})
                after = processes.batch_size_totals(metrics, MODEL)
                if before and after and after[1] > before[1]:
                    level["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
                results.append(level)
                self.report("modeld", level)
            client.close()
            # The same server under modeld-bench (C++, many connections): what modeld itself
            # can do when the clients are many processes, as Django's workers are, rather than
            # threads of one Python process.
            for concurrency in self.levels:
                before = processes.batch_size_totals(metrics, MODEL)
                out = self.work / f"modeld-bench-c{concurrency}.json"
                processes.run_checked(
                    [str(self.args.build_dir / "bin" / "modeld-bench"), f"--target={address}",
                     f"--model={MODEL}", f"--concurrency={concurrency}",
                     f"--warmup-seconds={self.args.warmup_seconds}",
                     f"--seconds={self.args.seconds}", f"--json={out}"],
                    self.logs, f"modeld-bench-c{concurrency}", timeout=300)
                after = processes.batch_size_totals(metrics, MODEL)
                run = json.loads(out.read_text())["levels"][0]
                level = {"clients": concurrency, "req_per_s": run["throughput"],
                         "p50_us": run["latency"]["p50_us"], "p99_us": run["latency"]["p99_us"],
                         "errors": sum(run["errors"].values()), "wrong_answers": 0,
                         "cpu_cores": {"clients": run["client_cpu_cores"]}}
                if before and after and after[1] > before[1]:
                    level["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
                self.native.append(level)
                self.report("modeld (modeld-bench)", level)
            results_rss = processes.rss_bytes(server.pid)
        finally:
            server.stop()
        return results, results_rss

    def in_process(self):
        function = self.inprocess

        def call(row):
            return function({"x": row})["output_0"]

        results = []
        for concurrency in self.levels:
            level = closed_loop(call, self.x, self.expected, concurrency,
                                self.args.warmup_seconds, self.args.seconds,
                                {"python": [os.getpid()]})
            results.append(level)
            self.report("in process", level)
        return results

    @staticmethod
    def report(name, level):
        batch = f", mean batch {level['mean_batch']:.1f}" if "mean_batch" in level else ""
        processes.log(f"{name} c={level['clients']}: {level['req_per_s']:.0f} req/s, p50 "
            f"{level['p50_us']:.0f} µs, p99 {level['p99_us']:.0f} µs, {level['errors']} errors, "
            f"{level['wrong_answers']} wrong{batch}")


def render(info, modeld_levels, inprocess_levels, native_levels):
    def cpu(level, name):
        return f"{level['cpu_cores'].get(name, 0):.2f}"

    rows = ["| set-up | clients | req/s | p50 µs | p99 µs | errors | wrong | mean batch | "
            "CPU: server | CPU: Python |", "|---|---|---|---|---|---|---|---|---|---|"]
    for level in modeld_levels:
        batch = f"{level['mean_batch']:.1f}" if "mean_batch" in level else "–"
        rows.append(f"| modeld (gRPC, modeld.Client) | {level['clients']} | "
                    f"{level['req_per_s']:.0f} | {level['p50_us']:.0f} | {level['p99_us']:.0f} | "
                    f"{level['errors']} | {level['wrong_answers']} | {batch} | "
                    f"{cpu(level, 'modeld')} | {cpu(level, 'clients')} |")
    for level in native_levels:
        batch = f"{level['mean_batch']:.1f}" if "mean_batch" in level else "–"
        rows.append(f"| modeld (gRPC, modeld-bench) | {level['clients']} | "
                    f"{level['req_per_s']:.0f} | {level['p50_us']:.0f} | {level['p99_us']:.0f} | "
                    f"{level['errors']} | – | {batch} | – | "
                    f"{cpu(level, 'clients')} (C++ client) |")
    for level in inprocess_levels:
        rows.append(f"| in process (tf.saved_model.load) | {level['clients']} | "
                    f"{level['req_per_s']:.0f} | {level['p50_us']:.0f} | {level['p99_us']:.0f} | "
                    f"{level['errors']} | {level['wrong_answers']} | – | – | "
                    f"{cpu(level, 'python')} |")
    ratios = []
    for served, local in zip(modeld_levels, inprocess_levels):
        if local["req_per_s"] > 0:
            ratios.append(f"c={served['clients']}: modeld/in-process throughput "
                          f"{served['req_per_s'] / local['req_per_s']:.2f}×, p50 "
                          f"{served['p50_us'] / max(local['p50_us'], 1e-9):.2f}×")
    return "\n".join([
        f"# TensorFlow: Keras MLP in modeld vs in process — {info['date']}", "",
        f"`{info['command']}` (the TensorFlow step of `make bench`), "
        f"{info['elapsed_seconds']:.0f} s. "
        f"Commit {info['commit']}. {info['nproc']} CPU(s) ({info['cpu']}), "
        f"{info['memory_gib']:.1f} GiB; {info['load']}.", "",
        *rows, "",
        "; ".join(ratios) + ".", "",
        "## Set-up", "",
        f"- Model: `keras_mlp` of tests/integration/tf_models.py, Keras {info['keras']} on "
        f"TensorFlow {info['tensorflow']} (FP32 x[64] → Dense 128 relu → Dense 10, output "
        "`output_0`), exported with `model.export()`, written at the start of the run. "
        "One item (1 × 64 FP32) per request.",
        f"- modeld: `build/bin/modeld` on that model with its config.pbtxt "
        f"(max_batch_size {tf_models.KERAS_MLP_MAX_BATCH}, `dynamic_batching {{ }}`, one "
        f"instance); modeld's RSS after the run {info['modeld_rss_mib']:.0f} MiB. Clients: "
        "threads of the bench process sharing one `modeld.Client(\"grpc://…\")`, each calling "
        "`client.infer()` in a closed loop (one request outstanding).",
        "- In process: `tf.saved_model.load` and the `serving_default` signature, called with "
        "a `tf.constant` from threads of the same process, all on the one loaded model "
        "(TensorFlow's default thread pools): what each Django worker does today when it loads "
        "the model itself.",
        f"- {info['warmup_seconds']:g} s warm-up (every answer compared with the in-process "
        f"model: rtol {RTOL:g}, atol {ATOL:g}; the `wrong` column), then "
        f"{info['seconds']:g} s measured per level. Latency from call to answer; req/s: "
        "answers completed in the measured window. CPU columns: cores used on average over "
        "the measured window (server: modeld; Python: the bench process, which holds the "
        "clients or the in-process model).",
        "- The Python clients run under one GIL: at 32 threads the client process, not modeld, "
        "may be the limit (compare its CPU column with the machine's cores). The modeld-bench "
        "rows load the same server from bench/load_generator (C++, 4 gRPC connections, random "
        "inputs, answers not checked), as many Django worker processes would.",
    ]) + "\n"


def main():
    args = parse_args()
    started = time.monotonic()
    load_before = processes.warn_if_loaded("tf_bench")
    machine_start, ours_start = processes.cpu_seconds()
    work = args.build_dir / "bench-tf"
    shutil.rmtree(work, ignore_errors=True)
    bench = TfBench(args, work)
    modeld_levels, modeld_rss = bench.modeld()
    inprocess_levels = bench.in_process()
    machine_end, ours_end = processes.cpu_seconds()
    elapsed = time.monotonic() - started
    # This process is a client too, and reaps modeld: "others" is what the rest of the machine
    # took.
    others = max(0.0, (machine_end - machine_start) - (ours_end - ours_start))
    import keras
    import tensorflow as tf

    info = {
        "date": args.date,
        "command": shlex.join([".venv/bin/python", "bench/tf_bench.py", *sys.argv[1:]]),
        "commit": processes.commit_line(ROOT, "bench/results"), "nproc": processes.nproc(),
        "cpu": processes.cpu_model(), "memory_gib": processes.memory_gib(),
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "warmup_seconds": args.warmup_seconds, "seconds": args.seconds,
        "modeld_rss_mib": modeld_rss / 2**20, "config": bench.config,
        "elapsed_seconds": elapsed,
        "load": f"load average {load_before:.2f} before the run; other processes used "
                f"{others:.0f} CPU-seconds during it ({others / (elapsed * processes.nproc()):.1%}"
                " of the machine)"}
    report = render(info, modeld_levels, inprocess_levels, bench.native)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{args.date}-tensorflow"
    stem.with_suffix(".md").write_text(report)
    stem.with_suffix(".json").write_text(json.dumps(
        {"info": info, "modeld": modeld_levels, "modeld_bench": bench.native,
         "in_process": inprocess_levels}, indent=1))
    print(report)
    failures = sum(level["errors"] + level["wrong_answers"]
                   for level in modeld_levels + inprocess_levels + bench.native)
    processes.log(f"wrote {stem}.md in {elapsed:.0f} s")
    if failures:
        sys.exit(f"tf_bench: {failures} errors or wrong answers (see the table)")


if __name__ == "__main__":
    main()
