"""The Redis transport's messages, shared by the sync and asyncio clients: the commands of one
call and the checks of its reply (proto/modeld/redis.proto, docs/redis.md; the envelopes
themselves are modeld._envelope's, shared with AMQP). No I/O.

A call is one ``RequestEnvelope`` with a fresh request id (a UUID) and its own reply key; it is
pushed onto modeld's queue (``XADD <stream> MAXLEN ~ N * envelope <bytes>`` or ``LPUSH <list>
<bytes>``) and its answer popped with ``BLPOP <reply key> <seconds>``. Both commands go out
together: one round trip per call, and still one request outstanding per connection. A call
that must not run twice (a training step) is not `idempotent`: the transports never push it
again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _envelope
from ._codec import Tensor
from ._envelope import MISROUTED
from ._redis_url import REPLY_PREFIX, RedisTarget
from .errors import client_timeout

__all__ = ["Call", "MISROUTED", "READ_GRACE_S", "read_timeout", "infer_call", "metadata_call",
           "model_ready_call", "server_ready_call", "train_call", "answer"]

#: Seconds a socket read may wait beyond the call's own timeout before the connection counts as
#: dead: BLPOP itself returns (nil) at the timeout, so this only bounds a Redis that stopped
#: answering.
READ_GRACE_S = 1.0


def read_timeout(timeout: float | None) -> float | None:
    """How long a socket read of a call with `timeout` seconds waits (None: forever)."""
    return None if timeout is None else timeout + READ_GRACE_S


class Call:
    """One request: its envelope and the two commands that send it and wait for the answer."""

    __slots__ = ("request", "request_id", "reply_key", "kind", "commands", "timeout",
                 "idempotent")

    def __init__(self, target: RedisTarget, request: _envelope.Request) -> None:
        envelope = request.message
        self.request = request
        self.request_id: str = request.request_id
        self.reply_key: str = envelope.reply_key
        self.kind = request.kind  # the payload field, in the request and in the reply
        self.timeout = request.timeout
        self.idempotent = request.idempotent  # False: push it onto the queue at most once
        data = envelope.SerializeToString()
        if target.is_list:
            push: tuple[Any, ...] = ("LPUSH", target.queue, data)
        elif target.maxlen > 0:
            push = ("XADD", target.queue, "MAXLEN", "~", target.maxlen, "*", "envelope", data)
        else:
            push = ("XADD", target.queue, "*", "envelope", data)
        # BLPOP 0 waits forever, so a call with time left never sends 0; Redis rounds up to ms.
        timeout = request.timeout
        seconds = "0" if timeout is None else f"{max(timeout, 0.001):.3f}"
        self.commands = [push, ("BLPOP", self.reply_key, seconds)]


def infer_call(target: RedisTarget, model: str, version: str, tensors: Sequence[Tensor],
               outputs: Sequence[str] | None, timeout: float | None) -> Call:
    return Call(target, _envelope.infer(model, version, tensors, outputs, timeout, REPLY_PREFIX))


def metadata_call(target: RedisTarget, model: str, version: str, timeout: float | None) -> Call:
    return Call(target, _envelope.metadata(model, version, timeout, REPLY_PREFIX))


def model_ready_call(target: RedisTarget, model: str, version: str,
                     timeout: float | None) -> Call:
    return Call(target, _envelope.model_ready(model, version, timeout, REPLY_PREFIX))


def server_ready_call(target: RedisTarget, timeout: float | None) -> Call:
    return Call(target, _envelope.server_ready(timeout, REPLY_PREFIX))


def train_call(target: RedisTarget, model: str, version: str, request_id: str,
               inputs: Sequence[Tensor], targets: Sequence[Tensor],
               timeout: float | None) -> Call:
    return Call(target, _envelope.train(model, version, request_id, inputs, targets, timeout,
                                        REPLY_PREFIX))


def answer(call: Call, popped: Any, where: str) -> Any:
    """The response message of `call` from what BLPOP returned ([key, bytes], or None when the
    timeout passed); raises the error the reply carries, or DeadlineExceeded."""
    if popped is None:
        raise client_timeout(f"no reply from modeld on {call.reply_key} ({where})")
    return _envelope.decode_reply(call.request, popped[1], call.reply_key)
