#!/usr/bin/env python3
"""make bench: modeld against its baselines, measured side by side in one run.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/run.py [--seconds 3] [--warmup-seconds 1] [--models-dir DIR]

For mlp and cnn: the in-process compute limit (every batch size 1..64), the gRPC echo floor,
modeld with dynamic batching, modeld with batching off, and the original Redis-list design,
each swept over concurrency 1..64 with single-item requests; then mlp overloaded at twice its
measured saturation rate (open loop) while modeld's RSS is sampled. Writes
bench/results/<date>.md (tables, the targets with pass/miss), <date>.json (the raw levels) and
PNG plots. Logs and scratch files go to build/bench-run/. See bench/README.md.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import plots, processes, report, repositories, targets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BINARIES = ("modeld", "modeld-bench", "modeld-bench-echo", "modeld-bench-inprocess")
# The venv's interpreter: its torch is the release modeld links (docs/pytorch.md), its redis-py
# the client's. Debian's python3-torch and python3-redis are no longer installed.
VENV_PYTHON = str(ROOT / ".venv" / "bin" / "python")
SETUPS = """\
- **modeld, dynamic batching**: `build/bin/modeld` on a copy of the repository with the
  models' `dynamic_batching { }` as generated.
- **modeld, batching off**: the same binary on a copy whose config.pbtxt has no
  `dynamic_batching` block, so each instance runs one request at a time (direct scheduler).
- **echo floor**: `modeld-bench-echo`, a bare gRPC callback server (same gRPC, same message
  limit) that runs no model and answers at once with outputs of the model's shapes: exactly
  the bytes modeld sends and receives for the model. The transport's cost alone.
- **Redis list + Python worker**: the original design. `redis-server` (no persistence), one
  Python worker per model instance (as many as modeld's instance_count, with the same
  intra-op threads) that BRPOPs one request, runs the TorchScript model on that one item and
  LPUSHes the answer onto one shared results list; Python client threads (one connection
  each) LPUSH single-item requests and BRPOP answers. Concurrency 1, 4, 16, 64.
- **In-process**: `modeld-bench-inprocess` loads the model through TorchBackend (modeld's own
  code path, same intra-op threads) and calls Model::Run back to back on one instance, no
  transport, no queue: the compute limit at each batch size.
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--concurrency", default="1,2,4,8,16,32,64")
    parser.add_argument("--redis-concurrency", default="1,4,16,64")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured per level")
    parser.add_argument("--inprocess-seconds", type=float, default=0.2, help="per batch size")
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    return parser.parse_args()


def first_input_dims(config_text):
    match = re.search(r"input\s*\[\s*\{[^}]*?dims:\s*\[([^\]]*)\]", config_text)
    return [int(d) for d in match.group(1).split(",")]


def max_batch_size(config_text):
    return int(re.search(r"max_batch_size:\s*(\d+)", config_text).group(1))


class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        # Copies, so a rebuild during the run cannot swap a binary half-way.
        self.bin = work / "bin"
        self.bin.mkdir()
        for name in BINARIES:
            source = args.build_dir / "bin" / name
            if not source.is_file():
                sys.exit(f"bench: {source} is missing; run `make build` first")
            shutil.copy2(source, self.bin / name)
        help_text = subprocess.run([str(self.bin / "modeld"), "--help"], capture_output=True,
                                   text=True).stdout
        self.modeld_has_http = "--http-address" in help_text

    def log(self, message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def load(self, name, argv, address, model, extra=()):
        """Runs modeld-bench against `address`; returns its JSON."""
        out = self.work / f"{name}.json"
        processes.run_checked(
            [str(self.bin / "modeld-bench"), f"--target={address}", f"--model={model}",
             f"--warmup-seconds={self.args.warmup_seconds}", f"--seconds={self.args.seconds}",
             f"--channels={self.args.channels}", f"--json={out}", *argv, *extra],
            self.logs, name, timeout=600)
        return json.loads(out.read_text())

    def sweep(self, name, server_argv, model):
        """One modeld-bench per level, so modeld's batch-size metric (when it serves /metrics)
        can be read around each level."""
        metrics_url = None
        if server_argv[0].endswith("/modeld") and self.modeld_has_http:
            server_argv = [*server_argv, "--http-address=127.0.0.1:0"]
        server, address = processes.start_grpc_server(name, server_argv, self.logs)
        if "--http-address=127.0.0.1:0" in server_argv:
            metrics_url = processes.metrics_url(server)
        try:
            levels = []
            for concurrency in self.args.concurrency.split(","):
                before = processes.batch_size_totals(metrics_url, model)
                run = self.load(f"{name}-c{concurrency}", [f"--concurrency={concurrency}"],
                                address, model)
                after = processes.batch_size_totals(metrics_url, model)
                if before and after and after[1] > before[1]:
                    run["levels"][0]["mean_batch_size"] = (
                        (after[0] - before[0]) / (after[1] - before[1]))
                levels.extend(run["levels"])
            run["levels"] = levels
        finally:
            server.stop()
        best = targets.saturation(run)
        self.log(f"  {name}: best {best['items_per_second']:.0f} items/s at "
                 f"c={best['level']:.0f}; c=1 p50 {run['levels'][0]['latency']['p50_us']:.0f} µs")
        return run

    def modeld_argv(self, repository):
        return [str(self.bin / "modeld"), f"--model-repository={repository}",
                "--grpc-address=127.0.0.1:0", *getattr(self.args, "modeld_flag", [])]

    def inprocess(self, model, model_dir):
        out = self.work / f"{model}-inprocess.json"
        processes.run_checked(
            [str(self.bin / "modeld-bench-inprocess"), f"--model-dir={model_dir}",
             "--batch-sizes=all", f"--seconds-per-size={self.args.inprocess_seconds}",
             f"--json={out}"], self.logs, f"{model}-inprocess", timeout=600)
        result = json.loads(out.read_text())
        best = targets.inprocess_best(result)
        self.log(f"  in-process: best {best['items_per_second']:.0f} items/s at batch "
                 f"{best['batch']}, batch 1 {result['sizes'][0]['items_per_second']:.0f}")
        return result

    def redis(self, model, model_dir, inprocess):
        config = (model_dir / "config.pbtxt").read_text()
        dims = first_input_dims(config)
        server, port = processes.start_redis(self.logs)
        workers = []
        try:
            for i in range(inprocess["config_instance_count"]):
                workers.append(processes.Process(f"{model}-redis-worker-{i}", [
                    VENV_PYTHON, str(BENCH / "baselines/redis_list/worker.py"),
                    "--port", str(port), "--model", str(model_dir / "1" / "model.pt"),
                    "--shape", ",".join(map(str, dims)),
                    "--threads", str(inprocess["intra_op_threads"])], self.logs))
            for worker in workers:
                worker.wait_for(re.compile("worker ready"))
            out = self.work / f"{model}-redis.json"
            item_bytes = 4 * math.prod(dims)  # FP32 inputs
            processes.run_checked([
                VENV_PYTHON, str(BENCH / "baselines/redis_list/client.py"), "--port",
                str(port), "--item-bytes", str(item_bytes),
                "--concurrency", self.args.redis_concurrency,
                "--warmup-seconds", str(self.args.warmup_seconds),
                "--seconds", str(self.args.seconds), "--json", str(out)],
                self.logs, f"{model}-redis-client", timeout=600)
        finally:
            for worker in workers:
                worker.stop(timeout=5)
            server.stop()
        run = json.loads(out.read_text())
        best = targets.saturation(run)
        self.log(f"  redis: best {best['throughput']:.0f} req/s at c={best['level']}")
        return run

    def model(self, model, repos):
        self.log(f"{model}")
        results = {"inprocess": self.inprocess(model, repos["batching"] / model)}
        results["echo"] = self.sweep(f"{model}-echo", [
            str(self.bin / "modeld-bench-echo"),
            f"--config={repos['batching'] / model / 'config.pbtxt'}"], model)
        results["modeld"] = self.sweep(f"{model}-modeld",
                                       self.modeld_argv(repos["batching"]), model)
        results["direct"] = self.sweep(f"{model}-direct", self.modeld_argv(repos["direct"]), model)
        results["redis"] = self.redis(model, repos["batching"] / model, results["inprocess"])
        return results

    def overload(self, repos, mlp):
        saturation_rate = targets.saturation(mlp["modeld"])["throughput"]
        rate = 2 * saturation_rate
        self.log(f"overload: mlp at {rate:.0f} req/s (2 × {saturation_rate:.0f})")
        server, address = processes.start_grpc_server(
            "overload-modeld", self.modeld_argv(repos["overload"]), self.logs)
        sampler = processes.RssSampler(server.pid)
        try:
            launched = time.monotonic() - sampler.start_time
            warmup = self.args.warmup_seconds
            run = self.load("overload-load", [f"--rate={rate:.0f}", "--deadline-seconds=10"],
                            address, "mlp",
                            extra=[f"--warmup-seconds={warmup}",
                                   f"--seconds={self.args.overload_seconds}"])
        finally:
            samples = sampler.stop()
            server.stop()
        config = (repos["overload"] / "mlp" / "config.pbtxt").read_text()
        return {"run": run, "rss": samples, "saturation_rate": saturation_rate,
                "warmup_seconds": warmup, "max_batch_size": max_batch_size(config),
                "window_start": launched + warmup,
                "window_end": launched + warmup + self.args.overload_seconds}


def batch_source(results):
    if any("mean_batch_size" in e for r in results.values() if "modeld" in r
           for e in r["modeld"]["levels"]):
        return ("read from modeld's /metrics (modeld_batch_size, sum / count around each "
                "level); the cnn target uses in-process throughput at the mean batch size of "
                "the saturation level, rounded.")
    return ("modeld serves no /metrics here (no HTTP port), so the batch sizes it formed are "
            "unknown; the cnn target compares with the *best* in-process batch size over every "
            "size 1..64, the strictest choice.")


def tree_info(binary):
    commit = processes.commit_line(ROOT, "bench/")
    in_source = any("class DynamicBatcher" in p.read_text(errors="replace")
                    for p in (ROOT / "src" / "batching").glob("*.h"))
    in_binary = b"DynamicBatcher" in Path(binary).read_bytes()
    return commit, (f"DynamicBatcher in src/batching: {'yes' if in_source else 'no'}; "
                    f"in the modeld binary measured: {'yes' if in_binary else 'no'}")


def main():
    args = parse_args()
    started = time.monotonic()
    load_before = processes.warn_if_loaded("bench")
    machine_start, ours_start = processes.cpu_seconds()
    models = args.models.split(",")
    work = args.build_dir / "bench-run"
    shutil.rmtree(work, ignore_errors=True)
    bench = Bench(args, work)
    repos, notes = repositories.make_copies(args.models_dir, models, work / "repositories")
    results = {model: bench.model(model, repos) for model in models}
    if "mlp" in results:
        results["overload"] = bench.overload(repos, results["mlp"])

    args.out.mkdir(parents=True, exist_ok=True)
    date = args.date
    for model in models:
        best = targets.inprocess_best(results[model]["inprocess"])
        plots.throughput_plot(model, results[model], best,
                              args.out / f"{date}-{model}-throughput.png")
        plots.latency_plot(model, results[model], args.out / f"{date}-{model}-p99.png")
    if "overload" in results:
        o = results["overload"]
        plots.rss_plot(o["rss"], (o["window_start"], o["window_end"]),
                       args.out / f"{date}-overload-rss.png")
    computed = targets.compute(results) if {"mlp", "cnn"} <= set(models) else []
    commit, batcher = tree_info(bench.bin / "modeld")
    machine_end, ours_end = processes.cpu_seconds()
    elapsed = time.monotonic() - started
    others = max(0.0, (machine_end - machine_start) - (ours_end - ours_start))
    info = {
        "command": shlex.join([".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
        "commit": commit, "batcher": batcher, "nproc": processes.nproc(),
        "cpu": processes.cpu_model(), "memory_gib": processes.memory_gib(),
        "warmup_seconds": args.warmup_seconds, "seconds": args.seconds,
        "channels": args.channels, "models": models, "notes": notes, "setups": SETUPS,
        "batch_source": batch_source(results),
        "elapsed_seconds": elapsed,
        "load": f"{load_before:.2f} before the run (1-minute load average). Other processes "
                f"(not this run's) used {others:.0f} CPU-seconds during it, "
                f"{others / (elapsed * processes.nproc()):.1%} of the machine; near 0 % "
                "means the figures are this run's alone"}
    (args.out / f"{date}.md").write_text(report.render(date, info, results, computed))
    (args.out / f"{date}.json").write_text(json.dumps(
        {"info": info, "targets": computed, "results": results}, indent=1))
    for t in computed:
        print(f"{'pass' if t['pass'] else 'MISS'}  {t['name']}: {t['measured']} ({t['value']})")
    bench.log(f"wrote {args.out / (date + '.md')} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
