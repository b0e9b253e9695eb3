"""The model metadata an :func:`~modeld.django.testing.override_model` may be given, and the
checks it then makes: inputs as the client and the server check them, outputs of the fake.

The input checks mirror modeld's (``src/core/request_validator.cc``), message for message, after
the client's own encoding (``modeld._codec``: the same safe casts, the same local refusals), so
a test sees the ``modeld.InvalidInput`` that production would. KServe metadata has no
``max_batch_size``; the batch-size rules (and the server's "(the first dimension is the batch
size)" in a shape refusal) apply only where the metadata dict carries one: ``recorded()`` takes
it from the model's config (:meth:`modeld.Client.model_config`), a hand-written dict adds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._codec import DTYPES, ModelSpec, TensorSpec, _cast, datatype_of, to_array
from ..errors import InvalidInput

__all__ = ["FakeMetadata", "Recorded", "recorded", "parse"]


@dataclass(frozen=True)
class FakeMetadata:
    """A model's metadata as an override checks calls against it."""

    spec: ModelSpec
    #: the metadata dict given (or read from the recorded file), as ``metadata()`` answers it
    data: dict[str, Any]
    #: the model's max_batch_size where the dict gives one (KServe metadata does not)
    max_batch_size: int | None = None

    # --- as the server describes tensors -----------------------------------------------------

    @staticmethod
    def describe(spec: TensorSpec) -> str:
        return f"'{spec.name}' ({spec.datatype} {_shape(spec.shape)})"

    def describe_all(self, specs: Sequence[TensorSpec]) -> str:
        return ", ".join(self.describe(spec) for spec in specs)

    @property
    def batches(self) -> bool:
        return bool(self.max_batch_size)

    # --- inputs: what the client and then the server refuse ----------------------------------

    def check_inputs(self, inputs: Any) -> dict[str, np.ndarray]:
        """The inputs as the server would receive them (each cast as the client casts it);
        InvalidInput with the server's message for what the server would refuse."""
        if not isinstance(inputs, Mapping):
            raise TypeError(
                f"inputs must be a mapping of input name to array, not {type(inputs).__name__}")
        spec, model = self.spec, self.spec.name
        arrays: dict[str, np.ndarray] = {}
        for name, value in inputs.items():  # the client's encoding, input by input
            array = to_array(value, spec.input(str(name)))
            datatype_of(array.dtype, str(name))
            arrays[str(name)] = array
        if not arrays:
            raise InvalidInput(f"request for model '{model}' has no inputs; it expects "
                               f"{self.describe_all(spec.inputs)}")
        for name in arrays:
            if spec.input(name) is None:
                raise InvalidInput(f"unknown input '{name}' for model '{model}'; its inputs are "
                                   f"{self.describe_all(spec.inputs)}")
        batch: tuple[str, int] | None = None
        for declared in spec.inputs:
            array = arrays.get(declared.name)
            if array is None:
                raise InvalidInput(
                    f"missing input {self.describe(declared)} for model '{model}'")
            datatype = datatype_of(array.dtype, declared.name)
            if datatype != declared.datatype:
                raise InvalidInput(
                    f"input '{declared.name}' has datatype {datatype} but model '{model}' "
                    f"expects {declared.datatype}")
            self._check_shape(declared, array.shape)
            if self.batches:
                if batch is not None and batch[1] != array.shape[0]:
                    raise InvalidInput(
                        f"inputs disagree on the batch size: '{batch[0]}' has {batch[1]}, "
                        f"'{declared.name}' has {array.shape[0]}")
                batch = (declared.name, array.shape[0])
        return arrays

    def _check_shape(self, declared: TensorSpec, shape: tuple[int, ...]) -> None:
        expected = declared.shape
        if not _fits(shape, expected):
            raise InvalidInput(
                f"input '{declared.name}' has shape {_shape(shape)} but model "
                f"'{self.spec.name}' expects {_shape(expected)}"
                + (" (the first dimension is the batch size)" if self.batches else ""))
        if self.batches:
            if shape[0] < 1:
                raise InvalidInput(
                    f"input '{declared.name}' has batch size 0; it must be at least 1")
            if shape[0] > self.max_batch_size:  # type: ignore[operator]
                raise InvalidInput(
                    f"input '{declared.name}' has batch size {shape[0]} but model "
                    f"'{self.spec.name}' takes at most max_batch_size {self.max_batch_size}")

    def check_requested(self, outputs: Any) -> list[str] | None:
        """The output names asked for (None: all); InvalidInput as the server's."""
        if outputs is None:
            return None
        if isinstance(outputs, str):
            raise TypeError("outputs must be a sequence of output names, not a string")
        wanted = [str(name) for name in outputs]
        seen: set[str] = set()
        for name in wanted:
            if self.spec.output(name) is None:
                raise InvalidInput(
                    f"requested output '{name}' is not an output of model '{self.spec.name}'; "
                    f"its outputs are {self.describe_all(self.spec.outputs)}")
            if name in seen:
                raise InvalidInput(f"output '{name}' is requested more than once")
            seen.add(name)
        return wanted

    # --- outputs: what the test's fn must return ---------------------------------------------

    def check_outputs(self, model: str, named: Mapping[str, np.ndarray],
                      wanted: Sequence[str] | None) -> dict[str, np.ndarray]:
        """fn's outputs checked against the metadata (AssertionError naming what is wrong:
        the fake, not the request, disagrees with the model), cast as the server's would be,
        and only those `wanted` (None: every declared output, as the server answers)."""
        declared = self.describe_all(self.spec.outputs)
        for name in named:
            if self.spec.output(name) is None:
                raise AssertionError(
                    f"override_model({model!r}): fn returned output '{name}', which the model "
                    f"does not have; its metadata declares {declared}")
        names = list(wanted) if wanted is not None else [t.name for t in self.spec.outputs]
        result = {}
        for name in names:
            if name not in named:
                raise AssertionError(
                    f"override_model({model!r}): fn returned no output '{name}' "
                    f"(it returned {sorted(named) or 'none'}); the model answers {declared}")
            spec = self.spec.output(name)
            assert spec is not None
            array = _cast(np.asarray(named[name]), spec.datatype)
            datatype = "BYTES" if array.dtype.kind in "OSU" else _datatype_or_none(array.dtype)
            if datatype != spec.datatype:
                raise AssertionError(
                    f"override_model({model!r}): fn returned output '{name}' as numpy "
                    f"{array.dtype}, but the model answers {spec.datatype} "
                    f"({self.describe(spec)})")
            if not _fits(array.shape, spec.shape):
                raise AssertionError(
                    f"override_model({model!r}): fn returned output '{name}' with shape "
                    f"{_shape(array.shape)}, but the model answers {_shape(spec.shape)} "
                    "(-1: any size)")
            result[name] = array
        return result


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _fits(shape: Sequence[int], expected: Sequence[int]) -> bool:
    return len(shape) == len(expected) and all(
        d >= 0 and (e == -1 or e == d) for d, e in zip(shape, expected))


def _datatype_or_none(dtype: np.dtype) -> str | None:
    try:
        return datatype_of(dtype)
    except InvalidInput:
        return None


# --- the metadata argument ------------------------------------------------------------------


def parse(model: str, data: Any) -> FakeMetadata:
    """The metadata dict of ``override_model(model, fn, metadata=data)``, checked: ValueError
    (or TypeError) saying what is wrong with it."""
    where = f"override_model({model!r}): metadata"
    if not isinstance(data, Mapping):
        raise TypeError(f"{where} must be a dict (as modeld.Client.metadata() returns) or "
                        f"modeld.django.testing.recorded(path), not {type(data).__name__}")
    name = data.get("name", model)
    if name != model:
        raise ValueError(f"{where} is that of model {name!r}")
    for key in ("inputs", "outputs"):
        if not isinstance(data.get(key), (list, tuple)):
            raise ValueError(f"{where} needs {key!r}: a list of {{'name', 'datatype', 'shape'}}")
    max_batch_size = data.get("max_batch_size")
    if max_batch_size is not None and (isinstance(max_batch_size, bool) or
                                       not isinstance(max_batch_size, int) or max_batch_size < 0):
        raise ValueError(f"{where}: max_batch_size must be an int >= 0, not {max_batch_size!r}")
    spec = ModelSpec(
        name=model,
        versions=tuple(str(v) for v in data.get("versions", ())),
        platform=str(data.get("platform", "")),
        inputs=tuple(_tensor(where, "inputs", t) for t in data["inputs"]),
        outputs=tuple(_tensor(where, "outputs", t) for t in data["outputs"]),
    )
    answer = spec.as_dict()
    if max_batch_size is not None:
        answer["max_batch_size"] = max_batch_size
    return FakeMetadata(spec, answer, max_batch_size)


def _tensor(where: str, key: str, data: Any) -> TensorSpec:
    if not isinstance(data, Mapping) or not {"name", "datatype", "shape"} <= set(data):
        raise ValueError(f"{where}: each of {key!r} is a {{'name', 'datatype', 'shape'}} dict, "
                         f"not {data!r}")
    datatype, shape = data["datatype"], data["shape"]
    if datatype not in DTYPES:
        raise ValueError(f"{where}: {data['name']!r} has datatype {datatype!r}; one of "
                         + ", ".join(DTYPES))
    if (not isinstance(shape, (list, tuple)) or
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape)):
        raise ValueError(f"{where}: {data['name']!r} has shape {shape!r}; a list of sizes, -1 "
                         "for any size (the first the batch size of a model that batches)")
    return TensorSpec(str(data["name"]), datatype, tuple(shape))


class Recorded:
    """``metadata=recorded(path)``: the metadata read from the JSON file at `path`; where it
    does not exist yet, asked once of the override's alias (``using``, else "default") and
    written there, so later runs need no server. Delete the file to record it again.

    What is recorded is the model's metadata (:meth:`modeld.Client.metadata`) and the
    ``max_batch_size`` of its config (:meth:`modeld.Client.model_config`; 0: it does not
    batch), so that the fake refuses the batches the server refuses. Through a ``redis://`` or
    ``amqp://`` alias, whose queue carries no config, the file has no ``max_batch_size``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"recorded({str(self.path)!r})"

    def load(self, model: str, alias: str) -> dict[str, Any]:
        """The metadata: read from the file, or fetched from the alias's server and written."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            data = self._fetch(model, alias)
            self._write(data)
            return data
        try:
            return json.loads(text)
        except ValueError as error:
            raise ValueError(f"override_model({model!r}, metadata={self!r}): {self.path} is "
                             f"not JSON ({error}); delete it to record it again") from None

    def _fetch(self, model: str, alias: str) -> dict[str, Any]:
        import modeld

        from . import clients
        from .handler import create_client

        config = clients.config(alias)
        try:
            with create_client(config) as client:
                data = client.metadata(model)
                try:
                    model_config = client.model_config(model)
                except modeld.ModeldError as error:
                    if error.code != "UNIMPLEMENTED":  # a Redis or AMQP queue: no config
                        raise
                else:
                    data["max_batch_size"] = int(model_config.get("max_batch_size") or 0)
                return data
        except modeld.ModeldError as error:
            raise RuntimeError(
                f"override_model({model!r}, metadata={self!r}): {self.path} does not exist, "
                f"and the server of alias {alias!r} could not give the metadata to record "
                f"there ({type(error).__name__}: {error.message}); start modeld once to record "
                f"it, or write the file") from error

    def _write(self, data: Mapping[str, Any]) -> None:
        # Written whole, then renamed: tests run in parallel never read half a file.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def recorded(path: str | os.PathLike[str]) -> Recorded:
    """The metadata of ``override_model(..., metadata=recorded(path))``: see :class:`Recorded`.

    A relative `path` is relative to the working directory, as ``open()`` takes it;
    ``Path(__file__).parent / "modeld" / "linear.json"`` keeps it beside the test module.
    """
    return Recorded(path)
