#!/usr/bin/env python3
"""make bench, the online-learning section: what training costs inference on the same model.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/train_bench.py [--concurrency 8] [--seconds 5] [--train-batch 32]

The model is the example `mlp` (FP32 x[256] -> 512 -> 512 -> logits[10], examples/models) with
training on (modeld's own step: sgd, mse against random targets; no checkpoints during the
measurement, so the figures show the contention alone). One modeld serves it; the C++ load
generator (`modeld-bench`, closed loop, one item per request) measures inference three ways in
one run:

- **inference alone**;
- **while training**: one client sends training steps of `--train-batch` rows back to back
  (`modeld.Client.train` over gRPC) during the whole measurement;
- **while training, checkpoints every 50 steps**: the same, with a checkpoint (the module and
  the optimizer state, fsynced) every 50 steps.

Each step and each inference batch holds the model's lock (docs/online-learning.md), so the
ratio of the two throughputs is the price of training next to serving. Writes
bench/results/<date>-training.md (and .json); logs go to build/bench-train/.
"""

import argparse
import datetime
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness import processes  # noqa: E402

MODEL = "mlp"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--models", type=Path, default=ROOT / "examples" / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    return parser.parse_args()


def write_repository(folder, models, checkpoint_every_steps):
    model = folder / MODEL
    shutil.rmtree(folder, ignore_errors=True)
    (model / "1").mkdir(parents=True)
    shutil.copy(models / MODEL / "1" / "model.pt", model / "1" / "model.pt")
    config = (models / MODEL / "config.pbtxt").read_text()
    parameters = {"training": "true", "training_learning_rate": "0.0001",
                  "checkpoint_every_steps": str(checkpoint_every_steps),
                  "checkpoint_every_seconds": "0"}
    config += "".join(f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}\n'
                      for k, v in parameters.items())
    (model / "config.pbtxt").write_text(config)


class Trainer(threading.Thread):
    """Sends training steps back to back until stopped; counts them."""

    def __init__(self, address, batch):
        super().__init__(daemon=True)
        import modeld

        self.client = modeld.Client(f"grpc://{address}", timeout=60)
        rng = np.random.default_rng(1)
        self.x = rng.standard_normal((batch, 256)).astype(np.float32)
        self.y = rng.standard_normal((batch, 10)).astype(np.float32)
        self.stop = threading.Event()
        self.steps = 0
        self.last = None

    def run(self):
        while not self.stop.is_set():
            self.last = self.client.train(MODEL, {"x": self.x}, {"logits": self.y})
            self.steps += 1


def measure(args, work, logs, binary, name, checkpoint_every_steps, train):
    repository = work / f"repository-{name}"
    write_repository(repository, args.models, checkpoint_every_steps)
    server, address = processes.start_grpc_server(
        f"modeld-{name}", [str(binary), f"--model-repository={repository}",
                           "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0"], logs)
    trainer = None
    try:
        if train:
            trainer = Trainer(address, args.train_batch)
            trainer.start()
            time.sleep(0.5)  # steps are flowing before the warm-up starts
        out = work / f"{name}.json"
        steps_before = trainer.steps if trainer else 0
        started = time.monotonic()
        processes.run_checked(
            [str(args.build_dir / "bin" / "modeld-bench"), f"--target={address}",
             f"--model={MODEL}", f"--concurrency={args.concurrency}",
             f"--warmup-seconds={args.warmup_seconds}", f"--seconds={args.seconds}",
             f"--json={out}"], logs, f"load-{name}", timeout=600)
        elapsed = time.monotonic() - started
        level = json.loads(out.read_text())["levels"][0]
        result = {"name": name, "throughput": level["throughput"],
                  "p50_us": level["latency"]["p50_us"], "p99_us": level["latency"]["p99_us"],
                  "errors": level["errors"], "successes": level["successes"],
                  "sent": level["sent"]}
        if trainer is not None:
            result["train_steps_per_second"] = (trainer.steps - steps_before) / elapsed
            result["last_step"] = trainer.last.step if trainer.last else 0
            result["checkpoint_step"] = trainer.last.checkpoint_step if trainer.last else 0
        return result
    finally:
        if trainer is not None:
            trainer.stop.set()
            trainer.join(timeout=60)
        server.stop()


def main():
    args = parse_args()
    work = args.build_dir / "bench-train"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # A copy, so a rebuild cannot swap the binary mid-run.
    binary = work / "modeld"
    shutil.copy(args.build_dir / "bin" / "modeld", binary)
    runs = [
        measure(args, work, logs, binary, "alone", 0, train=False),
        measure(args, work, logs, binary, "training", 0, train=True),
        measure(args, work, logs, binary, "training-checkpoints", 50, train=True),
    ]
    alone = runs[0]["throughput"]
    lines = [
        f"# Online learning: inference while training ({args.date})", "",
        f"`make bench` → `bench/train_bench.py`: the example `mlp` with training on, "
        f"`modeld-bench` closed loop at {args.concurrency} in flight (one item per request), "
        f"{args.seconds:g} s per run; training steps of {args.train_batch} rows back to back "
        "from one client. Same machine, same run.", "",
        "| inference | req/s | vs alone | p50 µs | p99 µs | errors | train steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        steps = run.get("train_steps_per_second")
        lines.append(
            f"| {run['name']} | {run['throughput']:,.0f} | {run['throughput'] / alone:.2f}× | "
            f"{run['p50_us']:,.0f} | {run['p99_us']:,.0f} | {sum(run['errors'].values())} | "
            f"{'' if steps is None else f'{steps:,.0f}'} |")
    lines += ["", "Every inference request succeeded in every run: "
              f"{all(not r['errors'] and r['successes'] == r['sent'] for r in runs)}.", ""]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.date}-training.md").write_text(text)
    (args.out / f"{args.date}-training.json").write_text(json.dumps(runs, indent=2))
    if any(r["errors"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
