"""The messages of a training step (proto/modeld/training.proto), shared by the gRPC, HTTP and
Redis transports, sync and asyncio. No I/O.

gRPC and Redis carry a ``TrainRequest``: its inputs and then its targets travel in
``raw_input_contents``, one entry per tensor, exactly as ModelInfer's inputs do. HTTP
(``POST /v2/models/{model}[/versions/{v}]/train``) carries them as JSON, each tensor's values
flat in row-major order in ``data``, as the JSON form of KServe's REST infer; the answer is
``{"model_name", "model_version", "id", "step", "loss", "checkpoint_step"}``.

A step changes the model's weights, so a train request must reach the server at most once:
the clients never retry it (docs/django.md, "Online learning").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._codec import Tensor, add_grpc_tensors, decode_tensor
from .errors import InvalidInput, ModeldError

__all__ = [
    "TrainResult",
    "train_id",
    "grpc_train_request",
    "grpc_train_result",
    "http_train_body",
    "http_train_result",
]


@dataclass(frozen=True)
class TrainResult:
    """What one training step answered.

    Attributes:
        model: the model's name.
        version: the model version that took the step.
        step: this step's number: the model's steps since it was first trained, counting those
            restored from its newest checkpoint. Each step of a model is one more than the one
            before.
        loss: the loss the step computed, before it updated the weights.
        checkpoint_step: the step of the model's newest durable checkpoint (0: none yet); if
            the server crashes now, the steps after it are lost.
    """

    model: str
    version: int
    step: int
    loss: float
    checkpoint_step: int


def train_id(value: str | None) -> str:
    """The request id as the protocols carry it: "" for none."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"id must be a str or None, not {type(value).__name__}")
    return value


def _version_number(model: str, version: Any) -> int:
    try:
        return int(str(version))
    except ValueError:
        raise ModeldError(
            f"malformed train response for model '{model}': model_version {version!r} is not a "
            "number (the step was taken)"
        ) from None


# --- gRPC and Redis -------------------------------------------------------------------------


def grpc_train_request(
    model: str,
    version: str,
    request_id: str,
    inputs: Sequence[Tensor],
    targets: Sequence[Tensor],
    request: Any = None,
) -> Any:
    """A ``TrainRequest`` carrying the inputs, then the targets, in ``raw_input_contents``:
    `request` (an empty one, such as the ``train`` field of a Redis envelope, filled in place)
    or a new one."""
    if request is None:
        from ._proto import training_pb2

        request = training_pb2.TrainRequest()
    request.model_name = model
    request.model_version = version
    request.id = request_id
    add_grpc_tensors(request.inputs, request.raw_input_contents, inputs)
    add_grpc_tensors(request.targets, request.raw_input_contents, targets)
    return request


def grpc_train_result(response: Any) -> TrainResult:
    """A ``TrainResponse`` as the client returns it."""
    return TrainResult(
        model=response.model_name,
        version=_version_number(response.model_name, response.model_version),
        step=int(response.step),
        loss=float(response.loss),
        checkpoint_step=int(response.checkpoint_step),
    )


# --- HTTP/REST ------------------------------------------------------------------------------


def _json_tensor(tensor: Tensor, kind: str) -> dict[str, Any]:
    """A tensor in the JSON form of KServe's REST API: its values flat, in row-major order."""
    flat = decode_tensor(tensor.name, tensor.datatype, (math.prod(tensor.shape),), tensor.data)
    if tensor.datatype == "BYTES":
        try:
            data: list[Any] = [bytes(item).decode("utf-8") for item in flat]
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{kind} '{tensor.name}' holds bytes that are not UTF-8 text, which JSON cannot "
                "carry; train over grpc:// or redis:// instead"
            ) from None
    else:
        data = flat.tolist()
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape),
            "data": data}


def http_train_body(
    request_id: str, inputs: Sequence[Tensor], targets: Sequence[Tensor]
) -> bytes:
    """The JSON body of ``POST .../train``."""
    body: dict[str, Any] = {}
    if request_id:
        body["id"] = request_id
    body["inputs"] = [_json_tensor(t, "input") for t in inputs]
    body["targets"] = [_json_tensor(t, "target") for t in targets]
    try:
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise InvalidInput(
            "an input or target holds NaN or infinity, which JSON cannot carry; train over "
            "grpc:// or redis:// instead"
        ) from None
    return text.encode("utf-8")


def http_train_result(data: Any) -> TrainResult:
    """The JSON answer of ``POST .../train``.

    Lenient about how numbers are spelled: 64-bit integers may come as strings and fields at
    their zero value may be missing (protobuf's JSON form); a loss that is not finite may come
    as null or as "NaN" / "Infinity".
    """
    try:
        if not isinstance(data, Mapping):
            raise TypeError(f"the answer is {type(data).__name__}, not an object")
        model = str(data["model_name"])
        version = data["model_version"]
        step = int(data.get("step", 0))
        loss = data.get("loss", 0.0)
        loss = math.nan if loss is None else float(loss)
        checkpoint_step = int(data.get("checkpoint_step", 0))
    except (KeyError, TypeError, ValueError) as error:
        raise ModeldError(
            f"malformed train response from the server (the step was taken): {error!r}"
        ) from None
    return TrainResult(model, _version_number(model, version), step, loss, checkpoint_step)
