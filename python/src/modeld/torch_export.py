"""Packages a PyTorch module as a ``model.pt2`` that modeld serves (platform ``torch_aoti``).

    from modeld.torch_export import export_package

    export_package(model.eval(), (torch.randn(3, 256),), "models/mlp/1/model.pt2",
                   input_names=["x"], output_names=["logits"], max_batch_size=64)

The module is exported with ``torch.export`` and compiled ahead of time by AOTInductor into a
package that modeld's LibTorch runs without Python. The package carries a ModelConfig
fragment (AOTInductor metadata key ``modeld.config``) naming its inputs and outputs, so its
model folder needs no ``config.pbtxt`` (docs/pytorch.md):

    max_batch_size: 64
    input { name: "x" data_type: TYPE_FP32 dims: [ 256 ] }
    output { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] }

Calling convention: forward's positional arguments in order are ``input_names`` in order; it
returns one tensor or a tuple/list of tensors, ``output_names`` in order.

Why the compile is set up the way it is (measured with torch 2.15 on Debian 12):

- **Only libtorch_cpu.so.** Inductor links the wrapper with ``-ltorch``, and the wheel's
  ``libtorch.so`` pulls in ``libtorch_cuda.so`` and the whole CUDA stack at load time; with
  Debian's libtorch-dev 1.13 on the machine, the loader even finds 1.13's ``libtorch.so`` and
  the server crashes (SIGBUS). Inductor also puts Python's library folder
  (``/usr/lib/x86_64-linux-gnu``) before the wheel's on the link line, so ``-ltorch_cpu`` would
  link 1.13 there. Inductor's own switch (``aot_inductor.link_libtorch=False``) links no torch
  library at all: the package then loads in modeld but not in Python, and inductor's CPU
  feature probe fails, leaving scalar kernels. So the compiler is a small wrapper script,
  written to a temporary folder for the call, that drops ``-ltorch`` and puts the running
  torch's lib folder first: the package then needs ``libtorch_cpu.so`` (which modeld has
  loaded already) and nothing of CUDA.
- **Batch size 1.** ``torch.export.Dim("batch", min=1)`` still specialises 0 and 1: the
  program is traced for batch >= 2 and its input check says so. The batch dimension is
  declared with torch 2.15's ``ShapesSpec`` instead, whose (unbacked) sizes are never
  specialised, so one program is valid for every batch from 1 to ``max_batch_size``.
- **Portability.** Inductor compiles for the build machine's CPU (``-march=native``; here
  AVX-512 and AMX). A package built on a newer CPU than the server's dies there with an illegal
  instruction, taking the whole server with it. ``portable=True`` (the default) targets
  x86-64-v3 (AVX2, every x86 server CPU since about 2015) instead.
- **No leftovers.** Precompiled headers (about 250 MB per compile, always under
  ``/tmp/torchinductor_$USER``) are turned off (a single compile is faster without them), and
  inductor's cache goes to a temporary folder that is removed afterwards (``fresh_cache``).

torch is imported inside the functions only: ``import modeld`` never loads it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["export_package", "CONFIG_KEY"]

#: The AOTInductor metadata key of the ModelConfig fragment (modeld's C++ side reads it).
CONFIG_KEY = "modeld.config"

# torch dtype name -> ModelConfig data_type (the datatypes modeld's LibTorch backends serve).
_DATA_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int16": "TYPE_INT16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}

# Names travel as text-proto strings; characters that would need escaping are refused.
_NAME = re.compile(r"^[A-Za-z0-9_.:/-]+$")

# portable=True: the x86-64-v3 level (AVX2, FMA, F16C) and 256-bit vectors.
_PORTABLE_MARCH = "x86-64-v3"
_PORTABLE_SIMD_BITS = 256


def export_package(
    module: Any,
    example_inputs: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    max_batch_size: int = 0,
    dynamic_dims: Mapping[str, Mapping[int, int]] | None = None,
    portable: bool = True,
) -> Path:
    """Exports ``module`` and writes the AOTInductor package ``path`` (a ``.pt2``) for modeld.

    Args:
        module: a ``torch.nn.Module`` in eval mode (a module in training mode is exported as
            it is, dropout included, with a warning).
        example_inputs: one tensor per input, in forward's order. With ``max_batch_size > 0``
            their first dimension is the batch (the same size in all, 1..max_batch_size).
        path: the package to write, e.g. ``<repository>/<model>/1/model.pt2``; its folder is
            created. An existing file is replaced.
        input_names: the inputs' names, in forward's argument order.
        output_names: the outputs' names, in the order forward returns them.
        max_batch_size: > 0: dimension 0 of every input and output is a batch of 1 to
            ``max_batch_size`` items, and modeld batches requests together; 0: no batch
            dimension, every shape as given (except ``dynamic_dims``).
        dynamic_dims: other dimensions whose size varies, ``{input name: {dimension index:
            largest size}}`` (the index counts the batch dimension; sizes start at 1), e.g.
            ``{"tokens": {1: 512}}`` for a sequence length. They read -1 in the config, as do
            output dimensions that follow them.
        portable: True: code for x86-64-v3 (AVX2), which every x86 server CPU since about
            2015 runs; False: for this machine's CPU (``-march=native``, e.g. AVX-512 and
            AMX), faster there but an illegal instruction on an older CPU.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: the names, inputs, outputs or shapes do not fit the contract above (before
            anything is compiled).
        Errors of ``torch.export`` or of the compile, as they are.
    """
    import torch

    if portable and platform.machine() not in ("x86_64", "AMD64"):
        raise ValueError(f"portable=True targets {_PORTABLE_MARCH}; on a "
                         f"{platform.machine()} machine pass portable=False")
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"{path}: an AOTInductor package is a .pt2 file")
    with tempfile.TemporaryDirectory(prefix="modeld-torch-export-") as work, \
            _environment("TORCHINDUCTOR_CACHE_DIR", work):
        # Inductor's cache in a folder of its own, removed afterwards: the first import of
        # inductor would otherwise create /tmp/torchinductor_$USER and keep it, and a failed
        # CPU-feature probe of an earlier compile, cached on disk, could leave this package
        # without SIMD.
        from torch._inductor.utils import fresh_cache

        with fresh_cache(dir=work):
            program, config_text = _export(
                module, example_inputs, input_names=input_names, output_names=output_names,
                max_batch_size=max_batch_size, dynamic_dims=dynamic_dims)
            configs: dict[str, Any] = {
                "aot_inductor.metadata": {CONFIG_KEY: config_text},
                "cpp.cxx": (_write_compiler_wrapper(Path(work), torch),),
                # Precompiled headers would land in /tmp/torchinductor_$USER whatever the cache
                # folder (about 250 MB a compile), and only pay off over many compiles.
                "aot_inductor.precompile_headers": False,
                "cpp_cache_precompile_headers": False,
            }
            if portable:
                configs["cpp.march"] = _PORTABLE_MARCH
                configs["cpp.simdlen"] = _PORTABLE_SIMD_BITS
            path.parent.mkdir(parents=True, exist_ok=True)
            torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                     inductor_configs=configs)
    return path


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Sets an environment variable for the block, then restores it (inductor sets
    TORCHINDUCTOR_CACHE_DIR itself on first use, so it is restored whatever happened)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _write_compiler_wrapper(folder: Path, torch: Any) -> str:
    """A C++ compiler for inductor: the real one, with the running torch's lib folder first on
    the link path and without ``-ltorch`` (see the module docstring)."""
    compiler = os.environ.get("CXX", "g++")
    real = shutil.which(compiler)
    if real is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH: AOTInductor compiles the "
                           "package with one (Debian: apt-get install g++)")
    lib = Path(torch.__file__).resolve().parent / "lib"
    wrapper = folder / "cxx"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# modeld.torch_export: link the running torch's libtorch_cpu, never libtorch.so.\n"
        'for arg do\n  shift\n  [ "$arg" = "-ltorch" ] || set -- "$@" "$arg"\ndone\n'
        f'exec {shlex.quote(real)} {shlex.quote("-L" + str(lib))} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def _export(module: Any, example_inputs: Sequence[Any], *, input_names: Sequence[str],
            output_names: Sequence[str], max_batch_size: int,
            dynamic_dims: Mapping[str, Mapping[int, int]] | None) -> tuple[Any, str]:
    """(the ExportedProgram, the ModelConfig fragment); checks the contract first."""
    import torch
    from torch.fx.experimental.dynamic_spec import ParamsSpec, ShapesSpec, ShapeVar, TensorSpec

    inputs = tuple(example_inputs)
    input_names = list(input_names)
    output_names = list(output_names)
    dynamic_dims = {name: dict(dims) for name, dims in (dynamic_dims or {}).items()}
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, not {type(module).__name__}")
    if module.training:
        warnings.warn("the module is in training mode (dropout, batch-norm statistics); "
                      "call .eval() before export_package to serve inference", stacklevel=3)
    _check_names("input_names", input_names)
    _check_names("output_names", output_names)
    if len(inputs) != len(input_names):
        raise ValueError(f"{len(inputs)} example inputs but {len(input_names)} input_names")
    if not isinstance(max_batch_size, int) or max_batch_size < 0:
        raise ValueError(f"max_batch_size must be an int >= 0, not {max_batch_size!r}")
    unknown = sorted(set(dynamic_dims) - set(input_names))
    if unknown:
        raise ValueError(f"dynamic_dims names {unknown}, which are not input_names")

    batch = ShapeVar("batch", min=1, max=max_batch_size) if max_batch_size > 0 else None
    specs = []
    for name, tensor in zip(input_names, inputs):
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"input '{name}': example inputs must be tensors, not "
                             f"{type(tensor).__name__}")
        _data_type(f"input '{name}'", tensor.dtype)
        dims: list[Any] = [None] * tensor.dim()
        if batch is not None:
            if tensor.dim() < 2:
                raise ValueError(
                    f"input '{name}' has shape {list(tensor.shape)}: with max_batch_size > 0 "
                    "an input needs a dimension besides the batch (give forward [batch, 1])")
            if not 1 <= tensor.shape[0] <= max_batch_size:
                raise ValueError(f"input '{name}': example batch {tensor.shape[0]} is not in "
                                 f"1..max_batch_size ({max_batch_size})")
            if tensor.shape[0] != inputs[0].shape[0]:
                raise ValueError(f"input '{name}': example batch {tensor.shape[0]}, but "
                                 f"'{input_names[0]}' has {inputs[0].shape[0]}")
            dims[0] = batch
        for index, largest in dynamic_dims.get(name, {}).items():
            if not 0 <= index < tensor.dim() or (batch is not None and index == 0):
                raise ValueError(f"dynamic_dims['{name}']: {index} is not a dimension of "
                                 f"{list(tensor.shape)} besides the batch")
            if not 1 <= tensor.shape[index] <= largest:
                raise ValueError(f"dynamic_dims['{name}'][{index}]: example size "
                                 f"{tensor.shape[index]} is not in 1..{largest}")
            dims[index] = ShapeVar(f"dim{len(specs)}_{index}", min=1, max=largest)
        specs.append(dims)

    parameters = _forward_parameters(module, len(inputs))
    dynamic = None
    if any(d is not None for dims in specs for d in dims):
        dynamic = ShapesSpec(params=ParamsSpec(
            {param: TensorSpec(dims) for param, dims in zip(parameters, specs)}))
    with torch.no_grad():
        program = torch.export.export(module, inputs, dynamic_shapes=dynamic)

    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    user_inputs = [n for n, spec in zip(placeholders, program.graph_signature.input_specs)
                   if spec.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    outputs = _output_values(program)
    if len(outputs) != len(output_names):
        raise ValueError(f"forward returns {len(outputs)} tensor(s) but output_names has "
                         f"{len(output_names)}")
    batch_expr = None
    if batch is not None:
        batch_expr = user_inputs[0].meta["val"].shape[0]

    lines = [f"max_batch_size: {max_batch_size}"]
    for name, tensor, spec in zip(input_names, inputs, specs):
        dims = [-1 if d is not None else int(s) for d, s in zip(spec, tensor.shape)]
        lines.append(_tensor_line("input", name, _data_type(f"input '{name}'", tensor.dtype),
                                  dims[1:] if batch is not None else dims))
    for name, value in zip(output_names, outputs):
        dims = [int(d) if _is_static(d) else -1 for d in value.shape]
        if batch is not None:
            if not value.shape or str(value.shape[0]) != str(batch_expr):
                raise ValueError(f"output '{name}' has shape {list(value.shape)}: with "
                                 "max_batch_size > 0 its first dimension must be the batch")
            dims = dims[1:]
            if not dims:
                raise ValueError(f"output '{name}' has no dimension besides the batch "
                                 "(return [batch, 1])")
        lines.append(_tensor_line("output", name, _data_type(f"output '{name}'", value.dtype),
                                  dims))
    return program, "\n".join(lines) + "\n"


def _check_names(what: str, names: list[str]) -> None:
    if not names:
        raise ValueError(f"{what} is empty")
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{what}: {name!r} is not a tensor name modeld takes "
                             "(letters, digits and _ . : / -)")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} repeats a name: {names}")


def _forward_parameters(module: Any, count: int) -> list[str]:
    """The names of forward's first ``count`` positional parameters (ShapesSpec keys)."""
    import inspect

    parameters = [
        p for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(parameters) < count:
        raise ValueError(f"forward takes {len(parameters)} positional argument(s), not "
                         f"the {count} input(s) given")
    return [p.name for p in parameters[:count]]


def _output_values(program: Any) -> list[Any]:
    """The fake tensors forward returns, in order; refuses anything but a tensor or a flat
    tuple/list of tensors."""
    import torch

    spec = program.call_spec.out_spec
    flat = spec is not None and (spec.type in (tuple, list) and all(
        child.type is None for child in spec.children()))
    single = spec is None or spec.type is None
    if not (flat or single):
        raise ValueError(f"forward must return a tensor or a tuple/list of tensors, not "
                         f"{spec}")
    output = next(n for n in program.graph.nodes if n.op == "output")
    values = [node.meta.get("val") if hasattr(node, "meta") else node
              for node in output.args[0]]
    for index, value in enumerate(values):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"forward's result {index} is {type(value).__name__}, not a tensor")
    return values


def _is_static(size: Any) -> bool:
    return isinstance(size, int)


def _data_type(what: str, dtype: Any) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in _DATA_TYPES:
        raise ValueError(f"{what} is {name}; modeld serves {', '.join(_DATA_TYPES)}")
    return _DATA_TYPES[name]


def _tensor_line(kind: str, name: str, data_type: str, dims: list[int]) -> str:
    return (f'{kind} {{ name: "{name}" data_type: {data_type} '
            f'dims: [ {", ".join(str(d) for d in dims)} ] }}')
