"""PyTorch models of test_pytorch2.py, written with the venv's torch (the release modeld links)
and cached by content, so only the first run after a change pays for them (about 30 s, most
of it the .pt2 compile).

    .venv/bin/python tests/integration/pytorch_models.py      # prints <folder>/repository
    ensure() -> Path                                           # <folder>, from a test

The folder is build/test-models/pytorch2-<hash>, the hash over this file,
python/src/modeld/torch_export.py, the torch version and the machine type; ensure() writes it
in a subprocess (MODELD_GENERATOR_PYTHON, default this interpreter), so the test process
never imports torch. It holds:

  repository/transformer_script/   nn.TransformerEncoderLayer(d_model=32, nhead=4,
                                   dim_feedforward=64, batch_first=True), torch.jit.script:
                                   x FP32 [-1, 32] -> y FP32 [-1, 32], max_batch_size 8. torch
                                   1.13 cannot load it ("Unknown builtin op:
                                   aten::scaled_dot_product_attention").
  repository/transformer_trace/    the same weights through torch.jit.trace
  repository/mlp_gelu/             Linear(64, 128)-LayerNorm-GELU-Linear(128, 10) TorchScript,
                                   x FP32 [64] -> logits FP32 [10], max_batch_size 64,
                                   dynamic batching
  repository/mlp_gelu_pt2/1/model.pt2
                                   the same weights through modeld.torch_export.export_package
                                   (max_batch_size 64), and NO config.pbtxt: modeld completes
                                   the config from the package's metadata
  repository/mlp_gelu_pt2_stated/  the same package with a config.pbtxt that states platform
                                   torch_aoti and the same tensors
  references/<model>/<case>_input.npy, <case>_output.npy
                                   seeded inputs and the eager module's outputs (torch.no_grad,
                                   in Python): mlp_gelu b1, b3, b64 and rows256 (256 rows, for
                                   256 one-row requests); transformer b1_s5, b3_s7, b8_s5
  references/differences.json      the largest |difference| from eager of the scripted, traced
                                   and packaged modules in Python on those inputs
  extras/unknown_op/model.pt       a scripted module calling modeld_test::scale, an op
                                   registered with torch.library in the generating process
                                   only: it saves, and no LibTorch without that registration
                                   can load it
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import model_cache

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = model_cache.CACHE_ROOT
PREFIX = "pytorch2-"
TORCH_EXPORT = REPO_ROOT / "python" / "src" / "modeld" / "torch_export.py"
SEED = 20261207

D_MODEL = 32
TRANSFORMER_MAX_BATCH = 8
MLP_IN, MLP_HIDDEN, MLP_OUT = 64, 128, 10
MLP_MAX_BATCH = 64

MLP_CASES = {"b1": 1, "b3": 3, "b64": 64, "rows256": 256}
TRANSFORMER_CASES = {"b1_s5": (1, 5), "b3_s7": (3, 7), "b8_s5": (8, 5)}
# model folder -> the reference folder its answers are compared with
REFERENCE_OF = {
    "transformer_script": "transformer",
    "transformer_trace": "transformer",
    "mlp_gelu": "mlp_gelu",
    "mlp_gelu_pt2": "mlp_gelu",
    "mlp_gelu_pt2_stated": "mlp_gelu",
}
MODELS = tuple(REFERENCE_OF)

TORCHSCRIPT_CONFIG = """\
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch_size}
input [ {{ name: "{input}" data_type: TYPE_FP32 dims: {input_dims} }} ]
output [ {{ name: "{output}" data_type: TYPE_FP32 dims: {output_dims} }} ]
{extra}"""

# What the package states about itself (torch_export.py writes it; the C++ side reads it).
MLP_PACKAGE_CONFIG = f"""\
max_batch_size: {MLP_MAX_BATCH}
input {{ name: "x" data_type: TYPE_FP32 dims: [ {MLP_IN} ] }}
output {{ name: "logits" data_type: TYPE_FP32 dims: [ {MLP_OUT} ] }}
"""

def stated_pt2_config(name, dims=f"[ {MLP_IN} ]"):
    """config.pbtxt of a .pt2 model that states its tensors (dims of input x as given)."""
    return (f'name: "{name}"\nplatform: "torch_aoti"\nmax_batch_size: {MLP_MAX_BATCH}\n'
            f'input [ {{ name: "x" data_type: TYPE_FP32 dims: {dims} }} ]\n'
            f'output [ {{ name: "logits" data_type: TYPE_FP32 dims: [ {MLP_OUT} ] }} ]\n'
            "dynamic_batching { }\n")


def content_key():
    """The cache key: what the files depend on, without importing torch."""
    return model_cache.content_key([Path(__file__).read_bytes(), TORCH_EXPORT.read_bytes(),
                                    importlib.metadata.version("torch").encode()])


def ensure(cache_root=CACHE_ROOT, python=None):
    """The folder for the current content, written (in a subprocess) when it is missing."""
    return model_cache.ensure(Path(__file__), PREFIX, content_key(), "PyTorch test models",
                              cache_root, python)


def load_references(folder):
    """{reference name: {case: (input, output)}} as numpy arrays."""
    import numpy as np

    references = {}
    for reference in sorted(set(REFERENCE_OF.values())):
        cases = {}
        for path in sorted((Path(folder) / "references" / reference).glob("*_input.npy")):
            case = path.name.removesuffix("_input.npy")
            cases[case] = (np.load(path), np.load(path.with_name(f"{case}_output.npy")))
        references[reference] = cases
    return references


# --- writing (torch from here on) ------------------------------------------------------------


def _modules():
    import torch
    from torch import nn

    class Encoder(nn.Module):
        """forward(x [B, S, 32]) -> [B, S, 32]: one TransformerEncoderLayer."""

        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(d_model=D_MODEL, nhead=4, dim_feedforward=64,
                                                    batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

    class MlpGelu(nn.Module):
        """forward(x [B, 64]) -> logits [B, 10]."""

        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(MLP_IN, MLP_HIDDEN)
            self.norm = nn.LayerNorm(MLP_HIDDEN)
            self.fc2 = nn.Linear(MLP_HIDDEN, MLP_OUT)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(nn.functional.gelu(self.norm(self.fc1(x))))

    class UnknownOp(nn.Module):
        """forward(x [B, 3]) -> modeld_test::scale(x, 2.0), an op only this process knows."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.modeld_test.scale(x, 2.0)

    return Encoder, MlpGelu, UnknownOp


def _register_unknown_op(torch):
    library = torch.library.Library("modeld_test", "DEF")
    library.define("scale(Tensor x, float factor) -> Tensor")
    library.impl("scale", lambda x, factor: x * factor, "CompositeExplicitAutograd")
    return library  # the op lives as long as this object


def _config(name, max_batch_size, input_dims, output_dims, input="x", output="y", extra=""):
    return TORCHSCRIPT_CONFIG.format(name=name, max_batch_size=max_batch_size, input=input,
                                     output=output, input_dims=input_dims,
                                     output_dims=output_dims, extra=extra)


def write(out):
    """Writes everything the module docstring lists into `out` (which must not exist)."""
    # Inductor's cache (its CPU-feature probes, when the package is loaded here) in a folder
    # removed afterwards, not /tmp/torchinductor_$USER; set before torch is imported.
    inductor_cache = Path(out).parent / f".inductor-{os.getpid()}"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(inductor_cache)
    try:
        _write(Path(out))
    finally:
        shutil.rmtree(inductor_cache, ignore_errors=True)


def _write(out):
    # TorchScript is what platform pytorch_libtorch serves; torch 2.x's deprecation is noise.
    warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit\.")
    import numpy as np
    import torch

    sys.path.insert(0, str(TORCH_EXPORT.parent.parent))  # modeld, also when not installed
    from modeld.torch_export import export_package

    repository, references = out / "repository", out / "references"
    out.mkdir(parents=True)
    Encoder, MlpGelu, UnknownOp = _modules()
    generator = torch.Generator().manual_seed(SEED + 1)
    differences = {}

    def save_script(module, name, config_text):
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "config.pbtxt").write_text(config_text)
        torch.jit.save(module, str(repository / name / "1" / "model.pt"))

    def save_references(reference, cases, eager):
        (references / reference).mkdir(parents=True)
        inputs = {}
        for case, shape in cases.items():
            x = torch.randn(shape, generator=generator, dtype=torch.float32)
            with torch.no_grad():
                y = eager(x)
            np.save(references / reference / f"{case}_input.npy", x.numpy())
            np.save(references / reference / f"{case}_output.npy", y.numpy())
            inputs[case] = (x, y)
        return inputs

    def largest_difference(name, module, inputs):
        with torch.no_grad():
            difference = max(float((module(x) - y).abs().max()) for x, y in inputs.values())
        differences[name] = difference
        # A trace that baked in its example's shape, or a package that got a size wrong, is
        # caught here rather than in the server tests.
        assert difference < 1e-4, f"{name} differs from eager by {difference}"

    torch.manual_seed(SEED)
    encoder = Encoder().eval()
    cases = {case: (b, s, D_MODEL) for case, (b, s) in TRANSFORMER_CASES.items()}
    inputs = save_references("transformer", cases, encoder)
    scripted = torch.jit.script(encoder)
    with torch.no_grad():
        traced = torch.jit.trace(encoder, torch.randn(2, 4, D_MODEL, generator=generator))
    for name, module in (("transformer_script", scripted), ("transformer_trace", traced)):
        save_script(module, name, _config(name, TRANSFORMER_MAX_BATCH, f"[ -1, {D_MODEL} ]",
                                          f"[ -1, {D_MODEL} ]"))
        largest_difference(name, torch.jit.load(str(repository / name / "1" / "model.pt")),
                           inputs)

    torch.manual_seed(SEED)
    mlp = MlpGelu().eval()
    inputs = save_references("mlp_gelu", {c: (n, MLP_IN) for c, n in MLP_CASES.items()}, mlp)
    save_script(torch.jit.script(mlp), "mlp_gelu",
                _config("mlp_gelu", MLP_MAX_BATCH, f"[ {MLP_IN} ]", f"[ {MLP_OUT} ]",
                        output="logits", extra="dynamic_batching { }\n"))
    largest_difference("mlp_gelu", torch.jit.load(str(repository / "mlp_gelu" / "1" / "model.pt")),
                       inputs)

    package = repository / "mlp_gelu_pt2" / "1" / "model.pt2"
    export_package(mlp, (inputs["b3"][0],), package, input_names=["x"],
                   output_names=["logits"], max_batch_size=MLP_MAX_BATCH)
    stated = repository / "mlp_gelu_pt2_stated"
    (stated / "1").mkdir(parents=True)
    shutil.copyfile(package, stated / "1" / "model.pt2")
    (stated / "config.pbtxt").write_text(stated_pt2_config("mlp_gelu_pt2_stated"))
    loaded = torch._inductor.aoti_load_package(str(package))
    metadata = loaded.get_metadata().get("modeld.config")
    assert metadata == MLP_PACKAGE_CONFIG, f"the package states {metadata!r}"

    def packaged(x):  # rows256 runs as batches of up to 64, as the server runs it
        return torch.cat([loaded(part) for part in x.split(MLP_MAX_BATCH)])

    largest_difference("mlp_gelu_pt2", packaged, inputs)

    library = _register_unknown_op(torch)
    unknown = torch.jit.script(UnknownOp())
    (out / "extras" / "unknown_op").mkdir(parents=True)
    torch.jit.save(unknown, str(out / "extras" / "unknown_op" / "model.pt"))
    del library

    (references / "differences.json").write_text(json.dumps(differences, indent=1) + "\n")
    print(json.dumps({"torch": torch.__version__, "differences": differences}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, help="write into this new folder (no cache)")
    parser.add_argument("--print-path", action="store_true",
                        help="print only the repository folder (bench/pytorch_bench.py reads "
                             "it; without --write this is also the default)")
    args = parser.parse_args()
    if args.write:
        write(args.write)
    else:
        print(ensure() / "repository")


if __name__ == "__main__":
    main()
