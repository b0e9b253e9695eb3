#!/usr/bin/env python3
"""Writes modeld's example model repository: small TorchScript models in Triton's layout, and
a scikit-learn digits classifier in ONNX.

Usage:  .venv/bin/python examples/generate_models.py --out examples/models   (make models)

Runs with the venv's torch (scripts/requirements-nodeps.txt), the release whose LibTorch modeld
links, so the examples are what a user of that release saves, and the venv's scikit-learn,
skl2onnx and onnxruntime (scripts/requirements.txt) for digits. Deterministic: every model seeds
torch (or scikit-learn) before it builds its weights, and the files are byte-identical from run
to run on one release of those libraries. Idempotent: each model's folder is deleted and
written again (other folders under --out are left alone). Nothing is downloaded: digits is
trained on the data set that ships inside scikit-learn. Files saved by torch 1.13 still load:
tests/fixtures/torch113.

Layout, for each model:
    <out>/<model>/config.pbtxt           Triton model config, platform "pytorch_libtorch"
    <out>/<model>/<version>/model.pt     TorchScript module (torch.jit.script + torch.jit.save)
    <out>/<model>/reference/input.npy    (mlp, cnn) a float32 batch of 4, seeded
    <out>/<model>/reference/output.npy   (mlp, cnn) torch's own output for it, to compare with
                                         what the server answers (the scan skips the folder,
                                         its name is not a version number)

forward() takes the config inputs in config order and returns the config outputs in order.

digits is the exception, modeld's zero-config path (docs/onnx.md): no config.pbtxt, modeld
completes the config from the ONNX file (max_batch_size 256, dynamic batching; label [N] is
answered as [N, 1]):
    <out>/digits/1/model.onnx                 skl2onnx export, platform onnxruntime_onnx
    <out>/digits/reference/input.npy          8 test-split images, FP32 [8, 64]
    <out>/digits/reference/label.npy          onnxruntime's answer for them, INT64 [8]
    <out>/digits/reference/probabilities.npy  and FP32 [8, 10]
    <out>/digits/reference/summary.json       test accuracy (sklearn's and the ONNX file's),
                                              the split's sizes, the library versions

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
    digits         a handwritten-digit classifier: Pipeline(StandardScaler,
                   MLPClassifier(64 hidden units, alpha 1.0, seeded)) trained on
                   sklearn.datasets.load_digits() (1797 8x8 images, values 0..16; a stratified,
                   seeded 75/25 split), 0.973 accuracy on the held-out quarter (the generator
                   refuses under 0.95; reference/summary.json records it). About a second.
                   pixels FP32 [N, 64] (the 8x8 image row by row, 0..16) -> label INT64 [N],
                   probabilities FP32 [N, 10] (zipmap=False). The demo site's draw-a-digit
                   canvas (examples/django_demo) asks it.
"""

import argparse
import json
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

# digits: the highest ai.onnx and ai.onnx.ml opsets the export may use (those of
# tests/integration/onnx_models.py; skl2onnx picks the lowest that suffice), the held-out
# share of the data set, the least test accuracy the generator accepts, and the reference's
# rows.
DIGITS_OPSETS = {"": 17, "ai.onnx.ml": 3}
DIGITS_TEST_SIZE = 0.25
DIGITS_MIN_ACCURACY = 0.95
DIGITS_REFERENCE_ROWS = 8

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


def write_digits(out):
    """Trains the digits classifier and writes it as ONNX, without a config.pbtxt."""
    import onnx
    import onnxruntime
    import sklearn
    import skl2onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    digits = load_digits()  # ships with scikit-learn: nothing is downloaded
    x = digits.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=DIGITS_TEST_SIZE, random_state=SEED % 2**31,
        stratify=digits.target)
    # A strong L2 penalty (alpha) keeps the network smooth, so hand-drawn digits (thinner or
    # wider than the data set's) are still read well; it also gives the best held-out score.
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("mlp", MLPClassifier(hidden_layer_sizes=(64,), alpha=1.0, max_iter=500,
                                               random_state=SEED % 2**31))])
    pipeline.fit(x_train, y_train)
    accuracy = float(pipeline.score(x_test, y_test))

    model = convert_sklearn(pipeline, initial_types=[("pixels", FloatTensorType([None, 64]))],
                            target_opset=DIGITS_OPSETS,
                            options={id(pipeline): {"zipmap": False}})
    # skl2onnx names the graph with a random UUID, may list a domain twice and orders the
    # domains as a set iterates: fixed here, so the file's bytes are the same from run to run.
    model.graph.name = "digits"
    opsets = {}
    for opset in model.opset_import:
        opsets[opset.domain] = max(opset.version, opsets.get(opset.domain, 0))
    del model.opset_import[:]
    for domain, version in sorted(opsets.items()):
        model.opset_import.add(domain=domain, version=version)
    onnx.checker.check_model(model)

    folder = out / "digits"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "1").mkdir(parents=True)
    onnx.save_model(model, str(folder / "1" / "model.onnx"))

    # The reference and the accuracy come from the saved file itself, through onnxruntime.
    session = onnxruntime.InferenceSession(str(folder / "1" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    signature = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if signature != (["pixels"], ["label", "probabilities"]):
        raise SystemExit(f"digits: the ONNX file's inputs and outputs are {signature}")
    labels, _ = session.run(None, {"pixels": x_test})
    onnx_accuracy = float(np.mean(labels == y_test))
    if min(accuracy, onnx_accuracy) < DIGITS_MIN_ACCURACY:
        raise SystemExit(f"digits: test accuracy {accuracy:.4f} (ONNX {onnx_accuracy:.4f}) is "
                         f"under {DIGITS_MIN_ACCURACY}")
    batch = x_test[:DIGITS_REFERENCE_ROWS]
    label, probabilities = session.run(None, {"pixels": batch})
    (folder / "reference").mkdir()
    np.save(folder / "reference" / "input.npy", batch)
    np.save(folder / "reference" / "label.npy", label)
    np.save(folder / "reference" / "probabilities.npy", probabilities)
    summary = {
        "test_accuracy": round(accuracy, 6),
        "onnx_test_accuracy": round(onnx_accuracy, 6),
        "train_rows": len(x_train),
        "test_rows": len(x_test),
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    (folder / "reference" / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {folder} (test accuracy {accuracy:.4f}, ONNX {onnx_accuracy:.4f}, "
          f"{len(x_test)} held-out images)")


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

    write_digits(out)


if __name__ == "__main__":
    main()
