"""modeld.torch_export: the ModelConfig fragment a package states, what export_package refuses,
and one real package (two inputs, two outputs, INT64 next to FP32, a batch dimension) loaded
back with torch's own AOTInductor loader.

Compiling a package takes 10-30 s, so this file compiles one, cached by content under
build/test-models/torch-export-<hash>/ (the hash over this file, torch_export.py and the torch
version): a later session with nothing changed compiles nothing. The other tests only export
(about a second each), which checks everything export_package decides before compiling.
The server side (modeld serving .pt2 packages) is tested in tests/integration/test_pytorch2.py.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
CACHE_ROOT = REPO_ROOT / "build" / "test-models"
PREFIX = "torch-export-"
TORCH_EXPORT = REPO_ROOT / "python" / "src" / "modeld" / "torch_export.py"
# Inductor's cache of this process (the CPU-feature probe torch runs when it loads a package)
# under build/, not /tmp/torchinductor_$USER; set before torch's inductor is first imported.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE_ROOT / "inductor"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from modeld import torch_export  # noqa: E402

MAX_BATCH = 8
# What the packaged TwoInTwoOut states (exactly: the C++ side parses this text).
PACKAGE_CONFIG = """\
max_batch_size: 8
input { name: "features" data_type: TYPE_FP32 dims: [ 4 ] }
input { name: "ids" data_type: TYPE_INT64 dims: [ 3 ] }
output { name: "scores" data_type: TYPE_FP32 dims: [ 2 ] }
output { name: "big_ids" data_type: TYPE_INT64 dims: [ 1 ] }
"""


class TwoInTwoOut(nn.Module):
    """forward(features [B, 4] FP32, ids [B, 3] INT64) -> (scores [B, 2], big_ids [B, 1])."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(100, 4)
        self.linear = nn.Linear(4, 2)

    def forward(self, features, ids):
        hidden = features + self.embedding(ids).mean(dim=1)
        return torch.tanh(self.linear(hidden)), (ids > 50).sum(dim=1, keepdim=True)


class Sequence(nn.Module):
    """forward(tokens [B, S, 8]) -> [B, S, 2]: per-position, so S may vary."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 2)

    def forward(self, tokens):
        return self.linear(tokens)


def two_in_two_out():
    torch.manual_seed(20261207)
    return TwoInTwoOut().eval()


def example(batch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, generator=generator),
            torch.randint(0, 100, (batch, 3), generator=generator))


def export_text(module, inputs, **kwargs):
    return torch_export._export(module, inputs, max_batch_size=kwargs.pop("max_batch_size", 0),
                                dynamic_dims=kwargs.pop("dynamic_dims", None), **kwargs)[1]


def content_key():
    digest = hashlib.sha256()
    for part in (Path(__file__).read_bytes(), TORCH_EXPORT.read_bytes(),
                 importlib.metadata.version("torch").encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def package() -> Path:
    """TwoInTwoOut packaged with the defaults (portable) and max_batch_size 8; compiled once
    per content."""
    folder = CACHE_ROOT / f"{PREFIX}{content_key()}"
    path = folder / "model.pt2"
    if path.is_file():
        return path
    partial = CACHE_ROOT / f".partial-{folder.name}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    torch_export.export_package(two_in_two_out(), example(3), partial / "model.pt2",
                                input_names=["features", "ids"],
                                output_names=["scores", "big_ids"], max_batch_size=MAX_BATCH)
    try:
        partial.rename(folder)
    except OSError:  # another session wrote it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    for stale in CACHE_ROOT.glob(f"{PREFIX}*"):
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return path


@pytest.fixture(scope="module")
def loaded(package):
    return torch._inductor.aoti_load_package(str(package))


@pytest.fixture(scope="module")
def unpacked(package, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


# --- importing ---------------------------------------------------------------------------------


def test_import_does_not_load_torch():
    code = textwrap.dedent("""
        import json, sys
        import modeld.torch_export
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    loaded_modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "torch" not in loaded_modules and "modeld" in loaded_modules


# --- the config fragment -----------------------------------------------------------------------


def test_batched_config_leaves_out_the_batch_dimension():
    assert export_text(two_in_two_out(), example(3), input_names=["features", "ids"],
                       output_names=["scores", "big_ids"], max_batch_size=MAX_BATCH) \
        == PACKAGE_CONFIG


def test_unbatched_config_states_every_dimension():
    assert export_text(two_in_two_out(), example(3), input_names=["features", "ids"],
                       output_names=["scores", "big_ids"]) == textwrap.dedent("""\
        max_batch_size: 0
        input { name: "features" data_type: TYPE_FP32 dims: [ 3, 4 ] }
        input { name: "ids" data_type: TYPE_INT64 dims: [ 3, 3 ] }
        output { name: "scores" data_type: TYPE_FP32 dims: [ 3, 2 ] }
        output { name: "big_ids" data_type: TYPE_INT64 dims: [ 3, 1 ] }
        """)


def test_dynamic_dims_read_minus_one_in_inputs_and_the_outputs_that_follow_them():
    assert export_text(Sequence().eval(), (torch.randn(2, 5, 8),), input_names=["tokens"],
                       output_names=["logits"], max_batch_size=4,
                       dynamic_dims={"tokens": {1: 64}}) == textwrap.dedent("""\
        max_batch_size: 4
        input { name: "tokens" data_type: TYPE_FP32 dims: [ -1, 8 ] }
        output { name: "logits" data_type: TYPE_FP32 dims: [ -1, 2 ] }
        """)


@pytest.mark.parametrize("dtype, data_type", [
    (torch.float16, "TYPE_FP16"), (torch.float64, "TYPE_FP64"), (torch.int32, "TYPE_INT32"),
    (torch.int16, "TYPE_INT16"), (torch.int8, "TYPE_INT8"), (torch.uint8, "TYPE_UINT8"),
    (torch.bool, "TYPE_BOOL"),
])
def test_datatypes(dtype, data_type):
    class Same(nn.Module):
        def forward(self, x):
            return x.clone()

    text = export_text(Same().eval(), (torch.zeros(2, 3, dtype=dtype),), input_names=["x"],
                       output_names=["y"], max_batch_size=2)
    assert f'input {{ name: "x" data_type: {data_type} dims: [ 3 ] }}' in text
    assert f'output {{ name: "y" data_type: {data_type} dims: [ 3 ] }}' in text


# --- what export_package refuses, before compiling ---------------------------------------------


class Reduce(nn.Module):
    def forward(self, x):
        return x.sum(dim=0)


class Dict(nn.Module):
    def forward(self, x):
        return {"y": x + 1}


class Vector(nn.Module):
    def forward(self, x):
        return x * 2


REFUSED = {
    "fewer names than inputs": (
        TwoInTwoOut, example(3), dict(input_names=["features"], output_names=["a", "b"]),
        "2 example inputs but 1 input_names"),
    "fewer names than outputs": (
        TwoInTwoOut, example(3), dict(input_names=["features", "ids"], output_names=["a"]),
        "forward returns 2 tensor(s) but output_names has 1"),
    "a quote in a name": (
        TwoInTwoOut, example(3), dict(input_names=["features", 'i"ds'], output_names=["a", "b"]),
        "'i\"ds' is not a tensor name"),
    "a repeated name": (
        TwoInTwoOut, example(3), dict(input_names=["x", "x"], output_names=["a", "b"]),
        "repeats a name"),
    "an example batch above max_batch_size": (
        TwoInTwoOut, example(3), dict(input_names=["features", "ids"], output_names=["a", "b"],
                                      max_batch_size=2),
        "example batch 3 is not in 1..max_batch_size (2)"),
    "bfloat16": (
        Vector, (torch.zeros(2, 3, dtype=torch.bfloat16),),
        dict(input_names=["x"], output_names=["y"]), "input 'x' is bfloat16"),
    "a dict result": (
        Dict, (torch.zeros(2, 3),), dict(input_names=["x"], output_names=["y"]),
        "forward must return a tensor or a tuple/list of tensors"),
    "an output without the batch": (
        Reduce, (torch.zeros(2, 3),), dict(input_names=["x"], output_names=["y"],
                                           max_batch_size=4),
        "output 'y' has shape [3]: with max_batch_size > 0 its first dimension must be the "
        "batch"),
    "an input that is only a batch": (
        Vector, (torch.zeros(2),), dict(input_names=["x"], output_names=["y"], max_batch_size=4),
        "input 'x' has shape [2]"),
    "a dynamic batch dimension": (
        Vector, (torch.zeros(2, 3),), dict(input_names=["x"], output_names=["y"],
                                           max_batch_size=4, dynamic_dims={"x": {0: 4}}),
        "dynamic_dims['x']: 0 is not a dimension of [2, 3] besides the batch"),
    "a dynamic dimension of an unknown input": (
        Vector, (torch.zeros(2, 3),), dict(input_names=["x"], output_names=["y"],
                                           dynamic_dims={"z": {1: 4}}),
        "dynamic_dims names ['z']"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(case):
    module_type, inputs, kwargs, message = REFUSED[case]
    with pytest.raises(ValueError) as info:
        export_text(module_type().eval(), inputs, **kwargs)
    assert message in str(info.value)


def test_refuses_a_path_that_is_not_a_pt2(tmp_path):
    with pytest.raises(ValueError, match=r"model\.so: an AOTInductor package is a \.pt2 file"):
        torch_export.export_package(Vector().eval(), (torch.zeros(2, 3),), tmp_path / "model.so",
                                    input_names=["x"], output_names=["y"])
    assert list(tmp_path.iterdir()) == []


# --- one real package --------------------------------------------------------------------------


def test_package_states_its_config(loaded):
    metadata = loaded.get_metadata()
    assert metadata[torch_export.CONFIG_KEY] == PACKAGE_CONFIG
    # portable=True (the default): AVX2 code, which every x86-64-v3 CPU runs.
    assert metadata["AOTI_CPU_ISA"] == "AVX2"


@pytest.mark.parametrize("batch", [1, 3, MAX_BATCH])
def test_package_gives_pytorchs_answers(loaded, batch):
    """Batch 1 and max_batch_size included: the batch dimension is dynamic from 1."""
    inputs = example(batch, seed=batch)
    with torch.no_grad():
        expected_scores, expected_ids = two_in_two_out()(*inputs)
    scores, big_ids = loaded(*inputs)
    assert scores.shape == (batch, 2) and big_ids.shape == (batch, 1)
    assert big_ids.dtype == torch.int64
    np.testing.assert_allclose(scores.numpy(), expected_scores.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(big_ids.numpy(), expected_ids.numpy())


def test_package_checks_accept_batch_1_and_refuse_above_the_maximum(package, tmp_path):
    """With AOTInductor's own input checks on, batch 1 passes (export did not specialise it
    away) and batch 9 is refused: the program's bounds are 1..max_batch_size."""
    code = textwrap.dedent(f"""
        import torch
        package = torch._inductor.aoti_load_package({str(package)!r})
        ids = torch.zeros(1, 3, dtype=torch.int64)
        assert package(torch.zeros(1, 4), ids)[0].shape == (1, 2)
        try:
            package(torch.zeros(9, 4), torch.zeros(9, 3, dtype=torch.int64))
        except RuntimeError as error:
            print("refused:", str(error).splitlines()[0])
    """)
    env = dict(os.environ, AOTI_RUNTIME_CHECK_INPUTS="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout, result.stdout + result.stderr
    assert re.search(r"expected to be <= 8", result.stdout + result.stderr), result.stderr


def test_package_needs_libtorch_cpu_only(unpacked):
    """Not libtorch.so (it loads libtorch_cuda.so and the CUDA stack, or Debian's 1.13), and
    not a versioned Debian library."""
    [library] = unpacked.rglob("*.wrapper.so")
    dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True,
                             check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
    assert "libtorch_cpu.so" in needed, needed
    assert not [n for n in needed if n.startswith(("libtorch.so", "libtorch_cuda", "libcuda",
                                                   "libc10_cuda"))], needed
    assert not [n for n in needed if "1.13" in n], needed


def test_package_was_compiled_portably_without_precompiled_headers(unpacked):
    # AOTInductor writes each compile command into its generated sources, as comments.
    commands = "\n".join(path.read_text() for path in unpacked.rglob("*.cpp"))
    assert "-march=x86-64-v3" in commands and "-march=native" not in commands
    assert "precompiled_headers" not in commands
