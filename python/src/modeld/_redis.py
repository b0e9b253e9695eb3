"""The Redis transport of the sync client: calls through modeld's Redis queue (docs/redis.md).

Each call takes a connection from the client's pool, sends its envelope and the BLPOP on its
own reply key in one write (_redis_wire), reads both answers, and gives the connection back
only when nothing is left unread on it (any failure disconnects it instead). A connection that
Redis closed while it was idle is replaced once at no cost: the request never reached Redis.
A call that must not run twice (a training step) is never written again: its idle connection
is checked before use instead, since the failure of a write cannot tell whether Redis took it.

The pool belongs to one process (ForkLocal): after os.fork() the child makes its own, and the
parent's connections are dropped there. redis-py shuts a socket down only in the process that
opened it, so dropping them closes the child's copies and leaves the parent's connections
working.

redis-py is the optional dependency ``modeld[redis]``; only this module and aio/_redis.py
import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _codec, _envelope, _redis_wire, _training
from ._codec import ModelSpec, Tensor
from ._common import Endpoint, ForkLocal
from ._redis_url import RedisTarget
from ._status import ModelStatus
from ._training import TrainResult
from .errors import InvalidInput, ModeldError, ModelNotFound, Unavailable, client_timeout

__all__ = ["RedisTransport", "import_redis", "auth_errors", "connect_error", "unauthenticated",
           "server_metadata_unsupported", "repository_index_unsupported",
           "model_config_unsupported", "metadata_status",
           "CONNECT_TIMEOUT_S", "SEND_TIMEOUT_S", "REDIS_ERROR"]

#: The longest a new connection may take to open (less when the call has less time left).
CONNECT_TIMEOUT_S = 5.0
#: The longest a write may block (a Redis that stopped reading); reads have the call's timeout.
SEND_TIMEOUT_S = 10.0
#: The code of the error raised when Redis refuses a command (WRONGTYPE, NOPERM, OOM, ...).
REDIS_ERROR = "REDIS_ERROR"


def import_redis() -> Any:
    """redis-py, or ImportError saying how to install it."""
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as error:
        raise ImportError(
            'redis:// URLs need redis-py, which modeld does not install by itself: '
            'pip install "modeld[redis]"'
        ) from error
    return redis


def server_metadata_unsupported() -> ModeldError:
    return _envelope.server_metadata_unsupported("Redis queue")


def repository_index_unsupported() -> ModeldError:
    return _envelope.repository_index_unsupported("Redis queue")


def model_config_unsupported() -> ModeldError:
    return _envelope.model_config_unsupported("Redis queue")


def metadata_status(call: _redis_wire.Call, popped: Any, where: str, model: str,
                    version: str) -> list[ModelStatus]:
    """The model status that the answer to a metadata query stands for (modeld's answer: an
    error of Redis itself, or no answer in time, is raised)."""
    return _envelope.metadata_status(lambda: _redis_wire.answer(call, popped, where), model,
                                     version)


class _Pool:
    """The idle connections of one process. list.append and list.pop are atomic under the GIL,
    so threads share the pool without a lock; each call holds its connection alone."""

    def __init__(self, redis: Any, target: RedisTarget) -> None:
        self._redis = redis
        self._target = target
        self._idle: list[Any] = []
        self._closed = False
        # The client's own policy retries (within the call's timeout); redis-py must not.
        self._no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)

    def take(self, timeout: float | None) -> tuple[Any, bool]:
        """A connection, and whether it was idle in the pool (it may have been closed since)."""
        try:
            return self._idle.pop(), True
        except IndexError:
            pass
        redis, target = self._redis, self._target
        connect_timeout = CONNECT_TIMEOUT_S if timeout is None else min(timeout, CONNECT_TIMEOUT_S)
        connection = redis.Connection(
            host=target.host, port=target.port, db=target.db, username=target.username,
            password=target.password, socket_timeout=SEND_TIMEOUT_S,
            socket_connect_timeout=max(connect_timeout, 0.001), retry=self._no_retry)
        try:
            connection.connect()
        except BaseException as error:
            connection.disconnect()
            raise connect_error(redis, target, error) from None
        return connection, False

    def give_back(self, connection: Any) -> None:
        if self._closed:
            connection.disconnect()
        else:
            self._idle.append(connection)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().disconnect()


def auth_errors(redis: Any) -> tuple[type[BaseException], ...]:
    """redis-py's errors for refused credentials or permissions. They subclass its
    ConnectionError, but waiting does not fix them: they are never Unavailable."""
    return (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)


def unauthenticated(target: RedisTarget, error: BaseException) -> ModeldError:
    return ModeldError(f"Redis at {target.address} refused the credentials: {error}",
                       "UNAUTHENTICATED")


def connect_error(redis: Any, target: RedisTarget, error: BaseException) -> BaseException:
    """The ModeldError for a connection that could not be opened (or `error` itself when it is
    no Redis error: KeyboardInterrupt, say)."""
    if isinstance(error, auth_errors(redis)):  # ConnectionErrors to redis-py: test them first
        return unauthenticated(target, error)
    if isinstance(error, redis.ResponseError):  # SELECT of a database that does not exist, ...
        return ModeldError(f"Redis at {target.address} refused the connection: {error}",
                           REDIS_ERROR)
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return Unavailable(f"cannot reach Redis at {target.address}: {error}")
    return error


class RedisTransport:
    """Calls modeld through its Redis queue; every method raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint) -> None:
        assert endpoint.redis is not None
        self._redis = import_redis()
        self._target: RedisTarget = endpoint.redis
        self._pool = ForkLocal(lambda: _Pool(self._redis, self._target))

    def _roundtrip(self, commands: list[tuple[Any, ...]], timeout: float | None,
                   idempotent: bool = True) -> list[Any]:
        """Sends `commands` in one write and returns their replies; `timeout` (None: none) is
        the call's, which bounds the connect, and each read with READ_GRACE_S more. Commands
        that are not `idempotent` are written once, on a connection checked first."""
        redis = self._redis
        pool = self._pool.get()
        read_timeout = _redis_wire.read_timeout(timeout)
        for attempt in range(2):
            connection, reused = pool.take(timeout)
            while reused and not idempotent and self._closed_by_peer(connection):
                connection.disconnect()
                connection, reused = pool.take(timeout)
            replies: list[Any] = []
            try:
                connection.send_packed_command(connection.pack_commands(commands),
                                               check_health=False)
                for _ in commands:
                    # can_read waits for the reply's first bytes (redis-py's read_response takes
                    # no timeout before 8.0); the rest of a reply follows at once.
                    if not connection.can_read(timeout=read_timeout):
                        raise redis.TimeoutError(f"no reply within {read_timeout:g}s")
                    replies.append(connection.read_response())
            except auth_errors(redis) as error:
                raise unauthenticated(self._target, error) from None
            except redis.ResponseError as error:
                raise ModeldError(f"Redis refused the request ({self._target.describe()}): "
                                  f"{error}", REDIS_ERROR) from None
            except redis.TimeoutError:
                raise client_timeout(f"Redis at {self._target.address} did not answer") from None
            except (redis.ConnectionError, OSError) as error:
                if reused and not replies and attempt == 0 and idempotent:
                    continue  # closed while idle (an idle timeout, a restart): never ran
                raise Unavailable(
                    f"lost the connection to Redis at {self._target.address}: {error}"
                ) from None
            finally:
                if len(replies) == len(commands):
                    pool.give_back(connection)
                else:  # something is left unread (a BLPOP still waiting): never reuse it
                    connection.disconnect()
            return replies
        raise AssertionError("unreachable")

    def _closed_by_peer(self, connection: Any) -> bool:
        """Whether an idle connection is unfit for a call: Redis closed it (or sent something
        unasked)."""
        try:
            return bool(connection.can_read(timeout=0))
        except (self._redis.RedisError, OSError):
            return True

    def _call(self, call: _redis_wire.Call) -> Any:
        replies = self._roundtrip(call.commands, call.timeout, call.idempotent)
        return _redis_wire.answer(call, replies[-1], self._target.describe())

    # --- API --------------------------------------------------------------------------------

    def live(self, timeout: float | None) -> bool:
        """Whether Redis answers PING: the queue is reachable (modeld itself is not asked)."""
        return self._roundtrip([("PING",)], timeout)[0] in (b"PONG", "PONG", True)

    def ready(self, timeout: float | None) -> bool:
        return self._call(_redis_wire.server_ready_call(self._target, timeout)).ready

    def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        try:
            call = _redis_wire.model_ready_call(self._target, model, version, timeout)
            return self._call(call).ready
        except (ModelNotFound, InvalidInput):
            return False

    def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        raise server_metadata_unsupported()

    def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        call = _redis_wire.metadata_call(self._target, model, version, timeout)
        return ModelSpec.from_proto(self._call(call))

    def model_status(self, model: str, version: str, timeout: float | None) -> list[ModelStatus]:
        call = _redis_wire.metadata_call(self._target, model, version, timeout)
        replies = self._roundtrip(call.commands, call.timeout, call.idempotent)
        return metadata_status(call, replies[-1], self._target.describe(), model, version)

    def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        raise repository_index_unsupported()

    def model_config(self, model: str, version: str, timeout: float | None) -> dict[str, Any]:
        raise model_config_unsupported()

    def infer(self, model: str, version: str, tensors: Sequence[Tensor],
              outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        call = _redis_wire.infer_call(self._target, model, version, tensors, outputs, timeout)
        return _codec.grpc_infer_outputs(self._call(call))

    def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
              targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        call = _redis_wire.train_call(self._target, model, version, request_id, inputs, targets,
                                      timeout)
        return _training.grpc_train_result(self._call(call))

    def close(self) -> None:
        pool = self._pool.pop()
        if pool is not None:
            pool.close()
