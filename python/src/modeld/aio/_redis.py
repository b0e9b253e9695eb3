"""The Redis transport of the asyncio client (redis.asyncio), as modeld._redis for the sync one.

A redis.asyncio connection belongs to the event loop it was opened in, so the transport keeps
idle connections per running loop; those of loops that have been closed are dropped (garbage
collection closes their sockets). Django runs each async view of a WSGI site in a fresh loop,
so there a call opens a new connection: use an ASGI server, or the sync client, to keep them.
After os.fork() the child starts with no connections; dropping the parent's there closes only
the child's copies of their sockets.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _codec, _redis_wire, _training
from .._codec import ModelSpec, Tensor
from .._common import Endpoint, on_fork
from .._redis import (
    CONNECT_TIMEOUT_S,
    REDIS_ERROR,
    auth_errors,
    connect_error,
    import_redis,
    metadata_status,
    model_config_unsupported,
    repository_index_unsupported,
    server_metadata_unsupported,
    unauthenticated,
)
from .._redis_url import RedisTarget
from .._status import ModelStatus
from .._training import TrainResult
from ..errors import InvalidInput, ModeldError, ModelNotFound, Unavailable, client_timeout

__all__ = ["AioRedisTransport"]


async def _exchange(connection: Any, commands: list[tuple[Any, ...]], replies: list[Any]) -> None:
    """Sends `commands` in one write and appends their replies to `replies` as they come."""
    await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
    for _ in commands:
        replies.append(await connection.read_response())


class AioRedisTransport:
    """Calls modeld through its Redis queue from coroutines; raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint) -> None:
        assert endpoint.redis is not None
        self._redis = import_redis()
        import redis.asyncio  # noqa: F401  (part of redis-py)

        self._target: RedisTarget = endpoint.redis
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # id(loop) -> (loop, its idle connections); list.append / list.pop are atomic.
        self._pools: dict[int, tuple[asyncio.AbstractEventLoop, list[Any]]] = {}
        self._closed = False
        self._no_retry = self._redis.asyncio.retry.Retry(self._redis.backoff.NoBackoff(), 0)
        on_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _idle(self) -> list[Any]:
        """The idle connections of the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pid != os.getpid():
                self._pools = {}
                self._pid = os.getpid()
            entry = self._pools.get(id(loop))
            if entry is not None and entry[0] is loop:
                return entry[1]
            for key, (other, _) in list(self._pools.items()):
                if other.is_closed() or other is loop:
                    del self._pools[key]
            idle: list[Any] = []
            self._pools[id(loop)] = (loop, idle)
            return idle

    async def _take(self, idle: list[Any], timeout: float | None) -> tuple[Any, bool]:
        try:
            return idle.pop(), True
        except IndexError:
            pass
        target = self._target
        connect_timeout = CONNECT_TIMEOUT_S if timeout is None else min(timeout, CONNECT_TIMEOUT_S)
        connection = self._redis.asyncio.Connection(
            host=target.host, port=target.port, db=target.db, username=target.username,
            password=target.password, socket_timeout=None,
            socket_connect_timeout=max(connect_timeout, 0.001), retry=self._no_retry)
        try:
            await connection.connect()
        except BaseException as error:
            await connection.disconnect(nowait=True)
            raise connect_error(self._redis, target, error) from None
        return connection, False

    async def _roundtrip(self, commands: list[tuple[Any, ...]], timeout: float | None,
                         idempotent: bool = True) -> list[Any]:
        """As RedisTransport._roundtrip: one write, every reply read within the timeout;
        commands that are not `idempotent` written once, on a connection checked first."""
        redis = self._redis
        idle = self._idle()
        for attempt in range(2):
            connection, reused = await self._take(idle, timeout)
            while reused and not idempotent and await self._closed_by_peer(connection):
                await connection.disconnect(nowait=True)
                connection, reused = await self._take(idle, timeout)
            replies: list[Any] = []
            try:
                await asyncio.wait_for(_exchange(connection, commands, replies),
                                       _redis_wire.read_timeout(timeout))
            except auth_errors(redis) as error:
                raise unauthenticated(self._target, error) from None
            except redis.ResponseError as error:
                raise ModeldError(f"Redis refused the request ({self._target.describe()}): "
                                  f"{error}", REDIS_ERROR) from None
            except (asyncio.TimeoutError, redis.TimeoutError):
                raise client_timeout(f"Redis at {self._target.address} did not answer") from None
            except (redis.ConnectionError, OSError) as error:
                if reused and not replies and attempt == 0 and idempotent:
                    continue  # closed while idle: the request never reached Redis
                raise Unavailable(
                    f"lost the connection to Redis at {self._target.address}: {error}"
                ) from None
            finally:
                if len(replies) == len(commands) and not self._closed:
                    idle.append(connection)
                else:  # something is left unread (a BLPOP still waiting): never reuse it
                    await connection.disconnect(nowait=True)
            return replies
        raise AssertionError("unreachable")

    async def _closed_by_peer(self, connection: Any) -> bool:
        """Whether an idle connection is unfit for a call: Redis closed it (or sent something
        unasked). redis-py 8 names the check can_read, 5 can_read_destructive."""
        check = getattr(connection, "can_read", None) or connection.can_read_destructive
        try:
            return bool(await check())
        except (self._redis.RedisError, OSError):
            return True

    async def _call(self, call: _redis_wire.Call) -> Any:
        replies = await self._roundtrip(call.commands, call.timeout, call.idempotent)
        return _redis_wire.answer(call, replies[-1], self._target.describe())

    # --- API --------------------------------------------------------------------------------

    async def live(self, timeout: float | None) -> bool:
        """Whether Redis answers PING: the queue is reachable (modeld itself is not asked)."""
        return (await self._roundtrip([("PING",)], timeout))[0] in (b"PONG", "PONG", True)

    async def ready(self, timeout: float | None) -> bool:
        return (await self._call(_redis_wire.server_ready_call(self._target, timeout))).ready

    async def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        try:
            call = _redis_wire.model_ready_call(self._target, model, version, timeout)
            return (await self._call(call)).ready
        except (ModelNotFound, InvalidInput):
            return False

    async def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        raise server_metadata_unsupported()

    async def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        call = _redis_wire.metadata_call(self._target, model, version, timeout)
        return ModelSpec.from_proto(await self._call(call))

    async def model_status(self, model: str, version: str,
                           timeout: float | None) -> list[ModelStatus]:
        call = _redis_wire.metadata_call(self._target, model, version, timeout)
        replies = await self._roundtrip(call.commands, call.timeout, call.idempotent)
        return metadata_status(call, replies[-1], self._target.describe(), model, version)

    async def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        raise repository_index_unsupported()

    async def model_config(self, model: str, version: str,
                           timeout: float | None) -> dict[str, Any]:
        raise model_config_unsupported()

    async def infer(self, model: str, version: str, tensors: Sequence[Tensor],
                    outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        call = _redis_wire.infer_call(self._target, model, version, tensors, outputs, timeout)
        return _codec.grpc_infer_outputs(await self._call(call))

    async def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
                    targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        call = _redis_wire.train_call(self._target, model, version, request_id, inputs, targets,
                                      timeout)
        return _training.grpc_train_result(await self._call(call))

    async def close(self) -> None:
        """Closes this loop's connections; those of other loops are dropped."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._closed = True
            pools, self._pools = self._pools, {}
            same_process = self._pid == os.getpid()
        if not same_process:
            return
        for other, idle in pools.values():
            if other is loop:
                while idle:
                    await idle.pop().disconnect(nowait=True)
