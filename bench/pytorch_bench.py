#!/usr/bin/env python3
"""LibTorch 2.15 (the torch wheel modeld now links) against LibTorch 1.13 (Debian's, before),
and TorchScript against a torch.export package (AOTInductor) of the same model.

1. mlp and cnn, in process (modeld-bench-inprocess: TorchBackend's Model::Run, no transport)
   at batch 1 and 64, and through modeld (modeld-bench, gRPC, single-item requests, dynamic
   batching) at concurrency 1 and 64; LibTorch 1.13's figures are those of --baseline, the
   last `make bench` run with Debian's LibTorch (same machine, another day: the ratios carry
   that day's noise; Debian's LibTorch is no longer installed to run both in one run).
2. mlp_gelu as TorchScript and as model.pt2, from the test repository that
   tests/integration/pytorch_models.py writes (cached under build/test-models/): in process
   and through modeld, measured in this run.

Usage (from the repository root, after `make build models`):
    .venv/bin/python bench/pytorch_bench.py [--seconds 3] [--out F.md]
Logs and scratch files go to build/bench-pytorch/.
"""

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness import processes  # noqa: E402

BIN = ROOT / "build" / "bin"
WORK = ROOT / "build" / "bench-pytorch"
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def inprocess(model_dir, seconds):
    out = WORK / f"{model_dir.name}-inprocess.json"
    processes.run_checked(
        [str(BIN / "modeld-bench-inprocess"), f"--model-dir={model_dir}", "--batch-sizes=1,64",
         f"--seconds-per-size={seconds}", f"--json={out}"], WORK, f"{model_dir.name}-inprocess",
        timeout=600)
    sizes = json.loads(out.read_text())["sizes"]
    return {entry["batch"]: entry["items_per_second"] for entry in sizes}


def served(repository, model, seconds):
    server, address = processes.start_grpc_server(
        f"{model}-modeld", [str(BIN / "modeld"), f"--model-repository={repository}",
                            "--grpc-address=127.0.0.1:0", "--http-address=127.0.0.1:0"], WORK)
    try:
        result = {}
        for concurrency in (1, 64):
            out = WORK / f"{model}-c{concurrency}.json"
            processes.run_checked(
                [str(BIN / "modeld-bench"), f"--target={address}", f"--model={model}",
                 "--warmup-seconds=1", f"--seconds={seconds}", "--channels=4",
                 f"--concurrency={concurrency}", f"--json={out}"], WORK,
                f"{model}-c{concurrency}", timeout=600)
            level = json.loads(out.read_text())["levels"][0]
            result[concurrency] = (level["items_per_second"], level["latency"]["p50_us"])
        return result
    finally:
        server.stop()


def baseline(path, model):
    results = json.loads(path.read_text())["results"][model]
    sizes = {entry["batch"]: entry["items_per_second"] for entry in results["inprocess"]["sizes"]}
    levels = {int(entry["level"]): (entry["items_per_second"], entry["latency"]["p50_us"])
              for entry in results["modeld"]["levels"]}
    return sizes, levels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--baseline", type=pathlib.Path,
                        default=ROOT / "bench" / "results" / "2026-11-24.json")
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    examples = ROOT / "examples" / "models"
    lines = [
        "# PyTorch: LibTorch 2.15 (torch wheel) vs 1.13 (Debian), TorchScript vs torch.export",
        "",
        f"LibTorch 1.13 figures: {args.baseline.relative_to(ROOT)} (another run). "
        "Items/s; through modeld: single-item gRPC requests, dynamic batching, p50 in µs.",
        "",
        "| model | measure | LibTorch 1.13 | LibTorch 2.15 | 2.15 / 1.13 |",
        "|---|---|---|---|---|",
    ]
    for model in ("mlp", "cnn"):
        old_sizes, old_levels = baseline(args.baseline, model)
        new_sizes = inprocess(examples / model, args.seconds)
        for batch in (1, 64):
            lines.append(f"| {model} | in process, batch {batch} | {old_sizes[batch]:.0f} | "
                         f"{new_sizes[batch]:.0f} | {new_sizes[batch] / old_sizes[batch]:.2f}× |")
        new_levels = served(examples, model, args.seconds)
        for concurrency in (1, 64):
            (old, old_p50), (new, new_p50) = old_levels[concurrency], new_levels[concurrency]
            lines.append(f"| {model} | modeld, concurrency {concurrency} | {old:.0f} "
                         f"(p50 {old_p50:.0f}) | {new:.0f} (p50 {new_p50:.0f}) | "
                         f"{new / old:.2f}× |")
        print("\n".join(lines[-4:]), flush=True)

    repository = pathlib.Path(subprocess.run(
        [PYTHON, str(ROOT / "tests" / "integration" / "pytorch_models.py"), "--print-path"],
        check=True, capture_output=True, text=True).stdout.strip())
    lines += [
        "",
        "mlp_gelu (Linear-LayerNorm-GELU-Linear, 64 -> 10), both formats measured in this run:",
        "",
        "| measure | TorchScript | torch.export (.pt2) | .pt2 / TorchScript |",
        "|---|---|---|---|",
    ]
    script = inprocess(repository / "mlp_gelu", args.seconds)
    package = inprocess(repository / "mlp_gelu_pt2_stated", args.seconds)
    for batch in (1, 64):
        lines.append(f"| in process, batch {batch} | {script[batch]:.0f} | {package[batch]:.0f} | "
                     f"{package[batch] / script[batch]:.2f}× |")
    script = served(repository, "mlp_gelu", args.seconds)
    package = served(repository, "mlp_gelu_pt2_stated", args.seconds)
    for concurrency in (1, 64):
        (s, s_p50), (p, p_p50) = script[concurrency], package[concurrency]
        lines.append(f"| modeld, concurrency {concurrency} | {s:.0f} (p50 {s_p50:.0f}) | "
                     f"{p:.0f} (p50 {p_p50:.0f}) | {p / s:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
