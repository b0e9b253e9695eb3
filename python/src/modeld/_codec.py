"""numpy <-> KServe V2 tensors, and the request and response messages of the transports.

Shared by the gRPC, HTTP and Redis clients, sync and asyncio (a Redis envelope carries the gRPC
messages). Tensors always travel as raw bytes (gRPC ``raw_input_contents`` /
``raw_output_contents``, HTTP binary tensor extension), little endian, row major; a BYTES
element is a 4-byte little-endian length followed by its bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidInput, ModeldError

__all__ = [
    "DTYPES",
    "TensorSpec",
    "ModelSpec",
    "Tensor",
    "datatype_of",
    "to_array",
    "encode_inputs",
    "decode_tensor",
    "serialize_bytes",
    "deserialize_bytes",
    "version_string",
]

#: KServe datatype -> numpy dtype (explicitly little endian); BYTES elements are Python bytes.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}

_KIND_SIZE_TO_DATATYPE: dict[tuple[str, int], str] = {
    (dtype.kind, dtype.itemsize): name for name, dtype in DTYPES.items() if name != "BYTES"
}
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as the model's metadata declares it (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSpec:
    """A model's metadata: its name, served versions, platform, inputs and outputs."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    _inputs_by_name: dict[str, TensorSpec] = field(init=False, repr=False, compare=False)
    _outputs_by_name: dict[str, TensorSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inputs_by_name", {t.name: t for t in self.inputs})
        object.__setattr__(self, "_outputs_by_name", {t.name: t for t in self.outputs})

    def input(self, name: str) -> TensorSpec | None:
        """The declared input called `name`, or None."""
        return self._inputs_by_name.get(name)

    def output(self, name: str) -> TensorSpec | None:
        """The declared output called `name`, or None."""
        return self._outputs_by_name.get(name)

    def as_dict(self) -> dict[str, Any]:
        """The metadata as the client returns it (the KServe V2 model metadata fields)."""
        return {
            "name": self.name,
            "versions": list(self.versions),
            "platform": self.platform,
            "inputs": [t.as_dict() for t in self.inputs],
            "outputs": [t.as_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Reads the JSON model metadata of the HTTP API."""
        try:
            return cls(
                name=str(data["name"]),
                versions=tuple(str(v) for v in data.get("versions", ())),
                platform=str(data.get("platform", "")),
                inputs=tuple(_spec_from_dict(t) for t in data.get("inputs", ())),
                outputs=tuple(_spec_from_dict(t) for t in data.get("outputs", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModeldError(f"malformed model metadata from the server: {error!r}") from None

    @classmethod
    def from_proto(cls, response: Any) -> ModelSpec:
        """Reads a ``ModelMetadataResponse`` of the gRPC API."""

        def specs(tensors: Any) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in tensors)

        return cls(
            name=response.name,
            versions=tuple(response.versions),
            platform=response.platform,
            inputs=specs(response.inputs),
            outputs=specs(response.outputs),
        )


def _spec_from_dict(data: Mapping[str, Any]) -> TensorSpec:
    shape = tuple(int(d) for d in data["shape"])
    return TensorSpec(str(data["name"]), str(data["datatype"]), shape)


@dataclass(frozen=True)
class Tensor:
    """An input ready to send: its KServe datatype, shape and raw bytes."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes


def version_string(version: int | str | None) -> str:
    """The model version as the protocols spell it: "" for the server's choice (the latest)."""
    if version is None:
        return ""
    if isinstance(version, bool) or not isinstance(version, (int, str, np.integer)):
        raise TypeError(f"version must be an int, a str or None, not {type(version).__name__}")
    return str(version).strip()


# --- numpy -> KServe ------------------------------------------------------------------------


def datatype_of(dtype: np.dtype, name: str = "", kind: str = "input") -> str:
    """The KServe datatype of a numpy dtype; InvalidInput for one KServe cannot carry (the
    message names the `kind` of tensor: "input", or "target" for a training step's targets)."""
    if dtype.kind in "OSU":
        return "BYTES"
    datatype = _KIND_SIZE_TO_DATATYPE.get((dtype.kind, dtype.itemsize))
    if datatype is None:
        raise InvalidInput(
            f"{kind} '{name}' has numpy dtype {dtype}, which KServe cannot carry; use bool, "
            "(u)int8-64, float16/32/64 or bytes/str"
        )
    return datatype


def _fits(array: np.ndarray, dtype: np.dtype) -> bool:
    if array.size == 0:
        return True
    info = np.iinfo(dtype)
    return bool(array.min() >= info.min and array.max() <= info.max)


def _cast(array: np.ndarray, datatype: str) -> np.ndarray:
    """`array` cast to the declared `datatype` when that is safe; else `array` unchanged.

    Safe: anything numeric (or bool) to a float type; bool or integers whose values fit to an
    integer type; text to BYTES. Floats never become integers and numbers never become bool:
    the server then names the mismatch.
    """
    target = DTYPES.get(datatype)
    if target is None or datatype == "BYTES":
        return array
    kind = array.dtype.kind
    if array.dtype == target:
        return array
    if target.kind == "f" and kind in "biuf":
        return array.astype(target)
    if target.kind in "iu" and (kind == "b" or (kind in "iu" and _fits(array, target))):
        return array.astype(target)
    return array


def to_array(value: Any, spec: TensorSpec | None = None, kind: str = "input") -> np.ndarray:
    """An input value (array, nested list, scalar) as a numpy array of the declared type."""
    if isinstance(value, np.ndarray):
        array = value
    elif spec is not None and spec.datatype == "BYTES":
        array = np.array(value, dtype=object)
    else:
        try:
            array = np.asarray(value)
        except ValueError as error:  # ragged nested lists
            name = spec.name if spec is not None else "?"
            raise InvalidInput(f"{kind} '{name}' is not a rectangular array: {error}") from None
    return _cast(array, spec.datatype) if spec is not None else array


def serialize_bytes(array: np.ndarray) -> bytes:
    """A BYTES tensor's elements, each as a 4-byte little-endian length and its bytes.

    Elements may be bytes, str (UTF-8 encoded) or anything else (its str(), as tritonclient).
    """
    parts: list[bytes] = []
    for item in array.flat:
        if isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
        elif isinstance(item, str):
            data = item.encode("utf-8")
        else:
            data = str(item).encode("utf-8")
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes(buffer: bytes | bytearray | memoryview, count: int) -> np.ndarray:
    """`count` length-prefixed elements of a BYTES tensor as a flat object array of bytes."""
    view = memoryview(buffer)
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(view):
            raise ModeldError(f"malformed BYTES tensor: element {i} of {count} is missing")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise ModeldError(f"malformed BYTES tensor: element {i} runs past the end")
        out[i] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(view):
        raise ModeldError(
            f"malformed BYTES tensor: {len(view) - offset} bytes after {count} elements"
        )
    return out


def encode_inputs(
    inputs: Mapping[str, Any], model: ModelSpec | None, *, kind: str = "input"
) -> list[Tensor]:
    """The inputs as raw tensors, each cast to its declared datatype where that is safe.

    With ``kind="target"``, a training step's targets: named after the model's outputs, so each
    is cast to the datatype of the output of its name.
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(
            f"{kind}s must be a mapping of {kind} name to array, not {type(inputs).__name__}"
        )
    declared = None
    if model is not None:
        declared = model.output if kind == "target" else model.input
    tensors = []
    for name, value in inputs.items():
        spec = declared(name) if declared is not None else None
        array = to_array(value, spec, kind)
        datatype = datatype_of(array.dtype, name, kind)
        if datatype == "BYTES":
            data = serialize_bytes(array)
        else:
            data = array.astype(DTYPES[datatype], copy=False).tobytes()
        tensors.append(Tensor(str(name), datatype, tuple(int(d) for d in array.shape), data))
    return tensors


# --- KServe -> numpy ------------------------------------------------------------------------


def _element_count(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def decode_tensor(name: str, datatype: str, shape: Sequence[int], data: Any) -> np.ndarray:
    """A raw output tensor as a (writable) numpy array; BYTES as an object array of bytes."""
    shape = tuple(int(d) for d in shape)
    count = _element_count(shape)
    if datatype == "BYTES":
        return deserialize_bytes(data, count).reshape(shape)
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise ModeldError(
            f"output '{name}' has datatype '{datatype}', which the client does not know"
        )
    if len(data) != count * dtype.itemsize:
        raise ModeldError(
            f"output '{name}' has {len(data)} bytes but shape {list(shape)} of {datatype} "
            f"needs {count * dtype.itemsize}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
    if not array.flags.writeable:
        array = array.copy()
    return array


# --- gRPC messages --------------------------------------------------------------------------

_CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def add_grpc_tensors(fields: Any, raw_contents: Any, tensors: Sequence[Tensor]) -> None:
    """Appends each tensor's ``InferInputTensor`` to `fields` and its bytes to `raw_contents`
    (the repeated fields of a ``ModelInferRequest``, or of a ``TrainRequest``)."""
    for tensor in tensors:
        fields.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        raw_contents.append(tensor.data)


def grpc_infer_request(
    model: str,
    version: str,
    tensors: Sequence[Tensor],
    outputs: Sequence[str] | None,
    request: Any = None,
) -> Any:
    """A ``ModelInferRequest`` carrying every input in ``raw_input_contents``: `request` (an
    empty one, such as the ``infer`` field of a Redis envelope, filled in place so the tensors
    are not copied again) or a new one."""
    if request is None:
        from ._proto import grpc_service_pb2 as pb

        request = pb.ModelInferRequest()
    request.model_name = model
    request.model_version = version
    add_grpc_tensors(request.inputs, request.raw_input_contents, tensors)
    for name in outputs or ():
        request.outputs.add(name=name)
    return request


def grpc_infer_outputs(response: Any) -> dict[str, np.ndarray]:
    """The outputs of a ``ModelInferResponse`` (raw or typed contents) by name."""
    raw = response.raw_output_contents
    if raw and len(raw) != len(response.outputs):
        raise ModeldError(
            f"malformed response: {len(response.outputs)} outputs but {len(raw)} raw contents"
        )
    result = {}
    for i, output in enumerate(response.outputs):
        if raw:
            result[output.name] = decode_tensor(output.name, output.datatype, output.shape, raw[i])
            continue
        field_name = _CONTENTS_FIELDS.get(output.datatype)
        values = list(getattr(output.contents, field_name)) if field_name else []
        if output.datatype == "BYTES":
            array = np.empty(len(values), dtype=object)
            array[:] = values
        else:
            array = np.array(values, dtype=DTYPES.get(output.datatype, np.float64))
        if array.size != _element_count(output.shape):
            raise ModeldError(f"malformed response: output '{output.name}' has {array.size} values "
                              f"for shape {list(output.shape)}")
        result[output.name] = array.reshape(tuple(output.shape))
    return result


# --- HTTP/REST messages ---------------------------------------------------------------------


def http_infer_body(tensors: Sequence[Tensor], outputs: Sequence[str] | None) -> tuple[bytes, int]:
    """The body of a binary-extension infer request, and the length of its JSON header."""
    header: dict[str, Any] = {
        "inputs": [
            {
                "name": t.name,
                "datatype": t.datatype,
                "shape": list(t.shape),
                "parameters": {"binary_data_size": len(t.data)},
            }
            for t in tensors
        ],
        "parameters": {"binary_data_output": True},
    }
    if outputs:
        header["outputs"] = [
            {"name": name, "parameters": {"binary_data": True}} for name in outputs
        ]
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return b"".join([head, *(t.data for t in tensors)]), len(head)


def http_infer_outputs(body: bytes | bytearray, header_length: int | None) -> dict[str, np.ndarray]:
    """The outputs of an infer response (JSON, optionally followed by binary tensors)."""
    view = memoryview(body)
    if header_length is None:
        header_length = len(view)
    if header_length > len(view):
        raise ModeldError(
            f"malformed response: Inference-Header-Content-Length {header_length} is larger than "
            f"the body ({len(view)} bytes)"
        )
    try:
        header = json.loads(bytes(view[:header_length]))
        outputs = header["outputs"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModeldError(f"malformed infer response: {error!r}") from None
    offset = header_length
    result = {}
    for output in outputs:
        name, datatype, shape = output["name"], output["datatype"], output["shape"]
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if offset + size > len(view):
                raise ModeldError(f"malformed response: output '{name}' runs past the body")
            result[name] = decode_tensor(name, datatype, shape, view[offset : offset + size])
            offset += size
        elif datatype == "BYTES":
            values = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in output["data"]]
            array = np.empty(len(values), dtype=object)
            array[:] = values
            result[name] = array.reshape(tuple(shape))
        else:
            dtype = DTYPES.get(datatype)
            if dtype is None:
                raise ModeldError(f"output '{name}' has unknown datatype '{datatype}'")
            result[name] = np.array(output["data"], dtype=dtype).reshape(tuple(shape))
    return result


def http_error_message(body: bytes, reason: str) -> str:
    """The message of an HTTP error response: its JSON "error", else its text, else `reason`."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"]
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return text or reason
