"""The envelopes of modeld's message-queue transports, shared by Redis and AMQP, sync and
asyncio: the ``RequestEnvelope`` of each call and the checks of its ``ReplyEnvelope``
(proto/modeld/redis.proto; docs/redis.md and docs/amqp.md). No I/O.

Each call is one envelope with a fresh request id (a UUID4) and the call's deadline; the
transport adds how the reply finds its way back (a Redis reply key, an AMQP reply queue and
correlation id) and sends it. A call that must not run twice (a training step) is not
`idempotent`: no transport sends it again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from . import _codec, _status, _training
from ._codec import ModelSpec, Tensor
from ._proto import grpc_service_pb2 as pb
from ._proto import redis_pb2
from ._status import ModelStatus
from .errors import ModeldError, error_for_rpc_code

__all__ = [
    "MISROUTED",
    "Request",
    "infer",
    "metadata",
    "model_ready",
    "server_ready",
    "train",
    "decode_reply",
    "metadata_status",
    "server_metadata_unsupported",
    "repository_index_unsupported",
    "model_config_unsupported",
]

#: The code of the error raised for a reply that names another request.
MISROUTED = "MISROUTED"


class Request:
    """One call's envelope (`message`, a RequestEnvelope) and what its answer must carry."""

    __slots__ = ("message", "request_id", "kind", "timeout", "idempotent", "deadline_unix_ms")

    def __init__(self, message: Any, kind: str, timeout: float | None, *,
                 idempotent: bool = True) -> None:
        self.message = message
        self.request_id: str = message.request_id
        self.kind = kind  # the payload field, in the request and in the reply
        self.timeout = timeout
        self.idempotent = idempotent  # False: the request must reach the queue at most once
        #: Unix milliseconds after which modeld drops the request; 0: none.
        self.deadline_unix_ms: int = message.deadline_unix_ms


def _message(timeout: float | None, reply_prefix: str | None) -> Any:
    """A RequestEnvelope with a fresh request id and the deadline of `timeout`; its reply key
    is `reply_prefix` and the request id (Redis), none when `reply_prefix` is None (AMQP)."""
    request_id = uuid.uuid4().hex
    deadline = 0 if timeout is None else int((time.time() + timeout) * 1000)
    reply_key = "" if reply_prefix is None else reply_prefix + request_id
    return redis_pb2.RequestEnvelope(request_id=request_id, reply_key=reply_key,
                                     deadline_unix_ms=deadline)


def infer(model: str, version: str, tensors: Sequence[Tensor], outputs: Sequence[str] | None,
          timeout: float | None, reply_prefix: str | None = None) -> Request:
    message = _message(timeout, reply_prefix)
    _codec.grpc_infer_request(model, version, tensors, outputs, request=message.infer)
    return Request(message, "infer", timeout)


def metadata(model: str, version: str, timeout: float | None,
             reply_prefix: str | None = None) -> Request:
    message = _message(timeout, reply_prefix)
    message.metadata.CopyFrom(pb.ModelMetadataRequest(name=model, version=version))
    return Request(message, "metadata", timeout)


def model_ready(model: str, version: str, timeout: float | None,
                reply_prefix: str | None = None) -> Request:
    message = _message(timeout, reply_prefix)
    message.model_ready.CopyFrom(pb.ModelReadyRequest(name=model, version=version))
    return Request(message, "model_ready", timeout)


def server_ready(timeout: float | None, reply_prefix: str | None = None) -> Request:
    message = _message(timeout, reply_prefix)
    message.server_ready.SetInParent()
    return Request(message, "server_ready", timeout)


def train(model: str, version: str, request_id: str, inputs: Sequence[Tensor],
          targets: Sequence[Tensor], timeout: float | None,
          reply_prefix: str | None = None) -> Request:
    message = _message(timeout, reply_prefix)
    _training.grpc_train_request(model, version, request_id, inputs, targets,
                                 request=message.train)
    return Request(message, "train", timeout, idempotent=False)


def decode_reply(request: Request, data: bytes, source: str) -> Any:
    """The response message of `request` from the bytes of its ReplyEnvelope, which came from
    `source` (for messages: "modeld:reply:<id>", "reply queue amq.gen-..."); raises the error
    the reply carries, or ModeldError for a reply that is malformed or answers another
    request."""
    try:
        reply = redis_pb2.ReplyEnvelope.FromString(data)
    except DecodeError:
        raise ModeldError(f"malformed reply on {source}: not a ReplyEnvelope") from None
    if reply.request_id != request.request_id:
        # Someone else's answer. Never passed off as this call's.
        raise ModeldError(
            f"the reply on {source} answers request {reply.request_id!r}, not this call's "
            f"{request.request_id!r}; refused",
            MISROUTED,
        )
    if reply.code != 0:
        raise error_for_rpc_code(reply.code, reply.message)
    kind = reply.WhichOneof("payload")
    if kind != request.kind:
        raise ModeldError(
            f"malformed reply on {source}: it carries {kind or 'nothing'}, not {request.kind}"
        )
    return getattr(reply, kind)


def metadata_status(decode: Callable[[], Any], model: str, version: str) -> list[ModelStatus]:
    """The model status that modeld's answer to a metadata query stands for; `decode()` gives
    that answer (the ModelMetadataResponse) or raises modeld's error. Errors of the transport
    itself (no answer in time, a broken connection) must be raised before: they say nothing
    about the model."""
    try:
        spec = ModelSpec.from_proto(decode())
    except ModeldError as error:
        entry = _status.from_metadata_error(model, version, error)
        if entry is None:
            raise
        return [entry]
    return _status.from_metadata(model, version, spec.versions)


def server_metadata_unsupported(queue: str) -> ModeldError:
    """`queue`: "Redis queue", "AMQP queue"."""
    return ModeldError(
        f"server metadata is not carried by modeld's {queue} (model metadata and readiness "
        "are); ask modeld over grpc:// or http:// for it",
        "UNIMPLEMENTED",
    )


def model_config_unsupported(queue: str) -> ModeldError:
    return ModeldError(
        f"model config is not carried by modeld's {queue} (model metadata is); ask modeld "
        "over grpc:// or http:// for it",
        "UNIMPLEMENTED",
    )


def repository_index_unsupported(queue: str) -> ModeldError:
    return ModeldError(
        f"the list of models is not carried by modeld's {queue} (model_status() of a named "
        "model is, from its metadata); ask modeld over grpc:// or http:// for it",
        "UNIMPLEMENTED",
    )
