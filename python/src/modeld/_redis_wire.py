"""The Redis transport's messages, shared by the sync and asyncio clients: the commands of one
call and the checks of its reply (proto/modeld/redis.proto, docs/redis.md). No I/O.

A call is one ``RequestEnvelope`` with a fresh request id (a UUID) and its own reply key; it is
pushed onto modeld's queue (``XADD <stream> MAXLEN ~ N * envelope <bytes>`` or ``LPUSH <list>
<bytes>``) and its answer popped with ``BLPOP <reply key> <seconds>``. Both commands go out
together: one round trip per call, and still one request outstanding per connection. A call
that must not run twice (a training step) is not `idempotent`: the transports never push it
again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError

from . import _codec, _training
from ._codec import Tensor
from ._proto import grpc_service_pb2 as pb
from ._proto import redis_pb2
from ._redis_url import REPLY_PREFIX, RedisTarget
from .errors import ModeldError, client_timeout, error_for_rpc_code

__all__ = ["Call", "MISROUTED", "READ_GRACE_S", "read_timeout", "infer_call", "metadata_call",
           "model_ready_call", "server_ready_call", "train_call", "answer"]

#: The code of the error raised for a reply that names another request.
MISROUTED = "MISROUTED"
#: Seconds a socket read may wait beyond the call's own timeout before the connection counts as
#: dead: BLPOP itself returns (nil) at the timeout, so this only bounds a Redis that stopped
#: answering.
READ_GRACE_S = 1.0


def read_timeout(timeout: float | None) -> float | None:
    """How long a socket read of a call with `timeout` seconds waits (None: forever)."""
    return None if timeout is None else timeout + READ_GRACE_S


class Call:
    """One request: its envelope and the two commands that send it and wait for the answer."""

    __slots__ = ("request_id", "reply_key", "kind", "commands", "timeout", "idempotent")

    def __init__(self, target: RedisTarget, envelope: Any, kind: str,
                 timeout: float | None, *, idempotent: bool = True) -> None:
        self.request_id: str = envelope.request_id
        self.reply_key: str = envelope.reply_key
        self.kind = kind  # the payload field, in the request and in the reply
        self.timeout = timeout
        self.idempotent = idempotent  # False: the request must reach the queue at most once
        data = envelope.SerializeToString()
        if target.is_list:
            push: tuple[Any, ...] = ("LPUSH", target.queue, data)
        elif target.maxlen > 0:
            push = ("XADD", target.queue, "MAXLEN", "~", target.maxlen, "*", "envelope", data)
        else:
            push = ("XADD", target.queue, "*", "envelope", data)
        # BLPOP 0 waits forever, so a call with time left never sends 0; Redis rounds up to ms.
        seconds = "0" if timeout is None else f"{max(timeout, 0.001):.3f}"
        self.commands = [push, ("BLPOP", self.reply_key, seconds)]


def _envelope(timeout: float | None) -> Any:
    request_id = uuid.uuid4().hex
    deadline = 0 if timeout is None else int((time.time() + timeout) * 1000)
    return redis_pb2.RequestEnvelope(request_id=request_id, reply_key=REPLY_PREFIX + request_id,
                                     deadline_unix_ms=deadline)


def infer_call(target: RedisTarget, model: str, version: str, tensors: Sequence[Tensor],
               outputs: Sequence[str] | None, timeout: float | None) -> Call:
    envelope = _envelope(timeout)
    _codec.grpc_infer_request(model, version, tensors, outputs, request=envelope.infer)
    return Call(target, envelope, "infer", timeout)


def metadata_call(target: RedisTarget, model: str, version: str, timeout: float | None) -> Call:
    envelope = _envelope(timeout)
    envelope.metadata.CopyFrom(pb.ModelMetadataRequest(name=model, version=version))
    return Call(target, envelope, "metadata", timeout)


def model_ready_call(target: RedisTarget, model: str, version: str,
                     timeout: float | None) -> Call:
    envelope = _envelope(timeout)
    envelope.model_ready.CopyFrom(pb.ModelReadyRequest(name=model, version=version))
    return Call(target, envelope, "model_ready", timeout)


def server_ready_call(target: RedisTarget, timeout: float | None) -> Call:
    envelope = _envelope(timeout)
    envelope.server_ready.SetInParent()
    return Call(target, envelope, "server_ready", timeout)


def train_call(target: RedisTarget, model: str, version: str, request_id: str,
               inputs: Sequence[Tensor], targets: Sequence[Tensor],
               timeout: float | None) -> Call:
    envelope = _envelope(timeout)
    _training.grpc_train_request(model, version, request_id, inputs, targets,
                                 request=envelope.train)
    return Call(target, envelope, "train", timeout, idempotent=False)


def answer(call: Call, popped: Any, where: str) -> Any:
    """The response message of `call` from what BLPOP returned ([key, bytes], or None when the
    timeout passed); raises the error the reply carries, or DeadlineExceeded."""
    if popped is None:
        raise client_timeout(f"no reply from modeld on {call.reply_key} ({where})")
    try:
        reply = redis_pb2.ReplyEnvelope.FromString(popped[1])
    except DecodeError:
        raise ModeldError(f"malformed reply on {call.reply_key}: not a ReplyEnvelope") from None
    if reply.request_id != call.request_id:
        # Someone else pushed onto this call's key. Never passed off as the answer.
        raise ModeldError(
            f"the reply on {call.reply_key} answers request {reply.request_id!r}, not this call's "
            f"{call.request_id!r}; refused",
            MISROUTED,
        )
    if reply.code != 0:
        raise error_for_rpc_code(reply.code, reply.message)
    kind = reply.WhichOneof("payload")
    if kind != call.kind:
        raise ModeldError(
            f"malformed reply on {call.reply_key}: it carries {kind or 'nothing'}, not {call.kind}"
        )
    return getattr(reply, kind)
