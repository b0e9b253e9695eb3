#!/usr/bin/env python3
"""Writes modeld's example model repository: small TorchScript models in Triton's layout.

Usage:  .venv/bin/python examples/generate_models.py --out examples/models   (make models)

Runs with the venv's torch (scripts/requirements-nodeps.txt), the release whose LibTorch modeld
links, so the examples are what a user of that release saves. Deterministic: every model seeds
torch before it builds its weights, and the files are byte-identical from run to run on one
torch release. Idempotent: each model's folder is deleted and written again (other folders
under --out are left alone). Files saved by torch 1.13 still load: tests/fixtures/torch113.

Layout, for each model:
    <out>/<model>/config.pbtxt           Triton model config, platform "pytorch_libtorch"
    <out>/<model>/<version>/model.pt     TorchScript module (torch.jit.script + torch.jit.save)
    <out>/<model>/reference/input.npy    (mlp, cnn) a float32 batch of 4, seeded
    <out>/<model>/reference/output.npy   (mlp, cnn) torch's own output for it, to compare with
                                         what the server answers (the scan skips the folder,
                                         its name is not a version number)

forward() takes the config inputs in config order and returns the config outputs in order.

Models:
    linear         y = x @ W + b, x FP32 [3] -> y FP32 [1], batches up to 64. The regression of
                   the original Django + TensorFlow design. Two versions, both served
                   (version_policy all): v1 W = [[0.5], [-1.25], [2.0]], b = [0.75]; v2 doubles
                   both, so a client can tell which version answered.
    mlp            logits = MLP(x): Linear(256, 512)-ReLU-Linear(512, 512)-ReLU-Linear(512, 10),
                   x FP32 [256], seeded random weights, one CPU instance (on 2 cores
                   one instance with big batches beats two: bench/README.md), dynamic
                   batching.
    cnn            logits = CNN(image), image FP32 [1, 28, 28] (MNIST-sized):
                   Conv2d(1, 8, 3)-ReLU-MaxPool2d(2)-Conv2d(8, 16, 3)-ReLU-MaxPool2d(2)-Flatten-
                   Linear(16*5*5, 10), seeded, dynamic batching.
    add_sub        OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, FP32 [16], no batching
                   (Triton's classic example).
    identity_fp32  OUTPUT0 = INPUT0, FP32 of any length, batches up to 64 (dynamic batching).
    int64_bool     masked_ids = ids * mask (INT64), positive = ids > 0 (BOOL), for the
                   non-float datatypes; any length, batches up to 64.
"""

import argparse
import os
import pathlib
import shutil
import sys
import warnings
from typing import Tuple

import numpy as np
import torch
from torch import nn

SEED = 20240601

# torch 2.x marks torch.jit.script/save/load deprecated in favour of torch.export; TorchScript
# is still what platform pytorch_libtorch serves (docs/pytorch.md), so the warning is noise here.
warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit\.")


class Linear(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight, dtype=torch.float32))
        self.bias = nn.Parameter(torch.tensor(bias, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class AddSub(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return a + b, a - b


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Int64Bool(nn.Module):
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return ids * mask.to(torch.int64), ids > 0


def mlp():
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 5 * 5, 10))


def tensor(name, data_type, dims):
    return f'  {{ name: "{name}" data_type: {data_type} dims: {dims} }}'


def config(name, max_batch_size, inputs, outputs, extra=""):
    """config.pbtxt text; inputs and outputs are (name, data_type, dims) triples."""
    input_text = ",\n".join(tensor(*t) for t in inputs)
    output_text = ",\n".join(tensor(*t) for t in outputs)
    return (f'name: "{name}"\nplatform: "pytorch_libtorch"\nmax_batch_size: {max_batch_size}\n'
            f"input [\n{input_text}\n]\noutput [\n{output_text}\n]\n{extra}")


def write_model(out, name, config_text, versions, reference_shape=None):
    """Writes one model folder; `versions` maps version numbers to eager modules."""
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config_text)
    for version, module in versions.items():
        (folder / str(version)).mkdir()
        scripted = torch.jit.script(module.eval())
        torch.jit.save(scripted, str(folder / str(version) / "model.pt"))
    if reference_shape is not None:
        # Computed with the saved module itself, so the reference is what LibTorch should give.
        generator = torch.Generator().manual_seed(SEED + 1)
        batch = torch.randn(reference_shape, generator=generator, dtype=torch.float32)
        with torch.no_grad():
            result = torch.jit.load(str(folder / "1" / "model.pt"))(batch)
        (folder / "reference").mkdir()
        np.save(folder / "reference" / "input.npy", batch.numpy())
        np.save(folder / "reference" / "output.npy", result.numpy())
    print(f"wrote {folder}")


def main():
    # TorchScript writes module constants in Python set order, which string hashing randomises
    # per process; a fixed hash seed makes the files byte-identical from run to run.
    if os.environ.get("PYTHONHASHSEED") != "0":
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, *sys.argv], environment)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parent / "models")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)

    weight, bias = [[0.5], [-1.25], [2.0]], [0.75]
    write_model(out, "linear",
                config("linear", 64, [("x", "TYPE_FP32", [3])], [("y", "TYPE_FP32", [1])],
                       "version_policy: { all: {} }\n"),
                {1: Linear(weight, bias),
                 2: Linear([[2 * w for w in row] for row in weight], [2 * b for b in bias])})

    torch.manual_seed(SEED)
    write_model(out, "mlp",
                config("mlp", 64, [("x", "TYPE_FP32", [256])], [("logits", "TYPE_FP32", [10])],
                       "instance_group [ { count: 1, kind: KIND_CPU } ]\n"
                       "dynamic_batching { }\n"),
                {1: mlp()}, reference_shape=(4, 256))

    torch.manual_seed(SEED)
    write_model(out, "cnn",
                config("cnn", 64, [("image", "TYPE_FP32", [1, 28, 28])],
                       [("logits", "TYPE_FP32", [10])], "dynamic_batching { }\n"),
                {1: cnn()}, reference_shape=(4, 1, 28, 28))

    write_model(out, "add_sub",
                config("add_sub", 0,
                       [("INPUT0", "TYPE_FP32", [16]), ("INPUT1", "TYPE_FP32", [16])],
                       [("OUTPUT0", "TYPE_FP32", [16]), ("OUTPUT1", "TYPE_FP32", [16])]),
                {1: AddSub()})

    write_model(out, "identity_fp32",
                config("identity_fp32", 64, [("INPUT0", "TYPE_FP32", [-1])],
                       [("OUTPUT0", "TYPE_FP32", [-1])], "dynamic_batching { }\n"),
                {1: Identity()})

    write_model(out, "int64_bool",
                config("int64_bool", 64,
                       [("ids", "TYPE_INT64", [-1]), ("mask", "TYPE_BOOL", [-1])],
                       [("masked_ids", "TYPE_INT64", [-1]), ("positive", "TYPE_BOOL", [-1])]),
                {1: Int64Bool()})


if __name__ == "__main__":
    main()
