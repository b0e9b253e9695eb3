"""The AMQP transport of the asyncio client (aio-pika), as modeld._amqp for the sync one.

Each event loop that calls has one connection of its own (an aio-pika connection belongs to the
loop it was opened in), with one channel and one exclusive, auto-delete reply queue consumed
on it; every task of that loop shares them. A call publishes its envelope (persistent,
``mandatory``, ``reply_to`` the reply queue, ``correlation_id`` its request id, the deadline in
the ``modeld-deadline-ms`` header) and awaits a future that the consumer resolves with the
reply of that correlation id; a reply no waiting call asked for (late, or unknown) is dropped
and counted. A connection that breaks fails every waiting call with Unavailable, and the next
call opens a new one. Connections of loops that have been closed are dropped; Django runs each
async view of a WSGI site in a fresh loop, so there each call opens a connection: use an ASGI
server, or the sync client, to keep it.

After os.fork() the child starts with no connections. The parent's are kept referenced there,
never closed and never collected: aio-pika closes a collected connection on its loop, which
would send Connection.Close on the socket the parent still uses.

aio-pika is part of the optional dependency ``modeld[amqp]``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _codec, _envelope, _training
from .._amqp import (
    CONNECT_TIMEOUT_S,
    CONTENT_TYPE,
    PING_PREFIX,
    QUEUE,
    REQUEST_TYPE,
    connection_name,
    lost,
    refused,
    request_headers,
    returned_error,
    unauthenticated,
    unreachable,
)
from .._amqp_url import AmqpTarget
from .._codec import ModelSpec, Tensor
from .._common import Endpoint, on_fork
from .._status import ModelStatus
from .._training import TrainResult
from ..errors import InvalidInput, ModeldError, ModelNotFound, Unavailable, client_timeout

__all__ = ["AioAmqpTransport", "import_aio_pika"]

#: Connections inherited from a parent process: kept so that they are never collected (and so
#: never closed) in the child.
_INHERITED: list[Any] = []


def import_aio_pika() -> Any:
    """aio-pika, or ImportError saying how to install it."""
    try:
        import aio_pika
        import aio_pika.exceptions
    except ImportError as error:
        raise ImportError(
            'amqp:// URLs need aio-pika for modeld.aio, which modeld does not install by '
            'itself: pip install "modeld[amqp]"'
        ) from error
    return aio_pika


def _connect_error(target: AmqpTarget, error: BaseException) -> BaseException:
    """The ModeldError for a connection that could not be opened (or `error` itself when it is
    no error of aio-pika's or of the network: a cancellation, say)."""
    import aiormq.exceptions as exceptions

    if isinstance(error, (exceptions.AuthenticationError,
                          exceptions.ProbableAuthenticationError)):
        return unauthenticated(target, error)
    if isinstance(error, exceptions.ConnectionClosed) and error.args and error.args[0] == 403:
        return unauthenticated(target, error)
    if isinstance(error, exceptions.ConnectionNotAllowed) or (
            isinstance(error, exceptions.ConnectionClosed) and error.args
            and error.args[0] == 530):
        return refused(target, error)
    if isinstance(error, exceptions.InvalidFrameError) and "Connection.Close" in str(error):
        # aiormq's words for a Connection.Close in answer to Connection.Open: the vhost.
        return refused(target, RuntimeError(
            f"it closed the connection when asked for vhost {target.vhost!r}: the vhost does "
            f"not exist, or {target.username!r} may not use it"))
    if isinstance(error, (exceptions.AMQPError, OSError, asyncio.TimeoutError)):
        return unreachable(target, error)
    return error


class _NotSent(Exception):
    """A message that never reached the broker: safe to send again, whatever it is."""

    def __init__(self, error: ModeldError) -> None:
        super().__init__(error.message)
        self.error = error


class _Link:
    """One loop's connection: its channel, its reply queue and the calls waiting for replies."""

    def __init__(self, aio_pika: Any, target: AmqpTarget) -> None:
        self._aio_pika = aio_pika
        self._target = target
        self.connection: Any = None
        self.channel: Any = None
        self.reply_queue = ""
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        #: Set (once) when the connection is gone: every later call gets it.
        self.error: ModeldError | None = None
        #: Replies that no waiting call had asked for (late, or unknown): dropped.
        self.dropped = 0
        self._closing = False

    async def open(self, ssl_context: Any, timeout: float) -> None:
        target = self._target
        self.connection = await self._aio_pika.connect(
            host=target.host, port=target.port, login=target.username,
            password=target.password, virtualhost=target.vhost, ssl=target.tls,
            ssl_context=ssl_context, timeout=timeout,
            client_properties={"connection_name": connection_name()})
        try:
            # Publisher confirms: aiormq reports a returned message (no queue for it) only to a
            # publish that awaits its confirmation.
            self.channel = await self.connection.channel(publisher_confirms=True,
                                                         on_return_raises=True)
            queue = await self.channel.declare_queue("", exclusive=True, auto_delete=True)
            self.reply_queue = queue.name
            await queue.consume(self._on_reply, no_ack=True, exclusive=True)
            self.channel.close_callbacks.add(self._on_close)
            self.connection.close_callbacks.add(self._on_close)
        except BaseException:
            await self.close()
            raise

    async def call(self, routing_key: str, message: Any, timeout: float | None) -> bytes:
        """Publishes `message` to `routing_key` and returns the body of the reply with its
        correlation id (as modeld._amqp._Link.call)."""
        exceptions = self._aio_pika.exceptions
        if self.error is not None:
            raise _NotSent(self.error)
        deadline = None if timeout is None else time.monotonic() + timeout
        correlation_id = message.correlation_id
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        try:
            try:
                await asyncio.wait_for(
                    self.channel.default_exchange.publish(message, routing_key, mandatory=True),
                    timeout)
            except asyncio.TimeoutError:
                raise client_timeout(f"the AMQP broker at {self._target.address} did not "
                                     "confirm the request in time") from None
            except exceptions.ChannelInvalidStateError as error:  # closed: nothing was sent
                raise _NotSent(self.error or lost(self._target, error)) from None
            except exceptions.PublishError as error:  # returned: no queue took it
                raise returned_error(self._target, routing_key,
                                     f"{error.frame.reply_code} {error.frame.reply_text}") from None
            except exceptions.DeliveryError as error:  # nacked
                raise Unavailable(f"the AMQP broker at {self._target.address} refused the "
                                  f"request: {error}") from None
            except (exceptions.AMQPError, OSError) as error:
                raise self.error or lost(self._target, error) from None
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                return await asyncio.wait_for(future, remaining)
            except asyncio.TimeoutError:
                raise client_timeout(f"no reply from modeld on {self.reply_queue} "
                                     f"({self._target.describe()})") from None
        finally:
            self._waiting.pop(correlation_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a connection lost mid-publish set it

    async def _on_reply(self, message: Any) -> None:
        future = self._waiting.pop(message.correlation_id or "", None)
        if future is None or future.done():
            self.dropped += 1
            return
        future.set_result(message.body)

    def _on_close(self, sender: Any, error: BaseException | None = None) -> None:
        if self.error is not None:
            return
        if self._closing:
            self.error = Unavailable("the client was closed")
        else:
            self.error = lost(self._target, error)
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(self.error)

    async def close(self) -> None:
        self._closing = True
        if self.connection is not None and not self.connection.is_closed:
            try:
                await self.connection.close()
            except Exception:  # noqa: BLE001 - going away anyway
                pass
        self._on_close(None)


class _LoopState:
    """One event loop's link (None until its first call) and the lock that lets one task at a
    time open a new one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = asyncio.Lock()
        self.link: _Link | None = None


class AioAmqpTransport:
    """Calls modeld through its AMQP queue from coroutines; raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint) -> None:
        assert endpoint.amqp is not None
        self._aio_pika = import_aio_pika()
        self._target: AmqpTarget = endpoint.amqp
        security = endpoint.security
        self._ssl_context = security.ssl_context() if security.tls else None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._loops: dict[int, _LoopState] = {}  # id(loop) -> its state
        self._closed = False
        on_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _state(self) -> _LoopState:
        """The state of the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pid != os.getpid():
                _INHERITED.extend(self._loops.values())
                self._loops = {}
                self._pid = os.getpid()
            state = self._loops.get(id(loop))
            if state is not None and state.loop is loop:
                return state
            for key, other in list(self._loops.items()):
                if other.loop.is_closed() or other.loop is loop:
                    del self._loops[key]
            state = self._loops[id(loop)] = _LoopState(loop)
            return state

    async def _link(self, timeout: float | None) -> _Link:
        state = self._state()
        link = state.link
        if link is not None and link.error is None:
            return link
        try:
            await asyncio.wait_for(state.lock.acquire(), timeout)
        except asyncio.TimeoutError:
            raise client_timeout(f"waited for the connection to the AMQP broker at "
                                 f"{self._target.address}") from None
        try:
            link = state.link
            if link is not None and link.error is None:
                return link
            if self._closed:
                raise ModeldError("the client is closed", "CLOSED")
            state.link = None
            if link is not None:
                await link.close()
            connect_timeout = CONNECT_TIMEOUT_S if timeout is None else min(timeout,
                                                                            CONNECT_TIMEOUT_S)
            link = _Link(self._aio_pika, self._target)
            try:
                await asyncio.wait_for(link.open(self._ssl_context, max(connect_timeout, 0.001)),
                                       max(connect_timeout, 0.001))
            except BaseException as error:
                raise _connect_error(self._target, error) from None
            state.link = link
            return link
        finally:
            state.lock.release()

    async def _exchange(self, routing_key: str | None, body: bytes, properties: dict[str, Any],
                        timeout: float | None) -> tuple[bytes, str]:
        """As modeld._amqp.AmqpTransport._exchange."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in range(2):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            link = await self._link(remaining)
            message = self._aio_pika.Message(body, reply_to=link.reply_queue, **properties)
            try:
                reply = await link.call(routing_key or link.reply_queue, message, remaining)
                return reply, link.reply_queue
            except _NotSent as not_sent:
                if attempt == 0 and (deadline is None or time.monotonic() < deadline):
                    continue
                raise not_sent.error from None
        raise AssertionError("unreachable")

    async def _send(self, request: _envelope.Request) -> tuple[bytes, str]:
        properties = {
            "correlation_id": request.request_id,
            "delivery_mode": self._aio_pika.DeliveryMode.PERSISTENT,
            "content_type": CONTENT_TYPE,
            "type": REQUEST_TYPE,
            "headers": request_headers(request),
        }
        return await self._exchange(self._target.queue, request.message.SerializeToString(),
                                    properties, request.timeout)

    async def _call(self, request: _envelope.Request) -> Any:
        body, queue = await self._send(request)
        return _envelope.decode_reply(request, body, f"reply queue {queue}")

    # --- API --------------------------------------------------------------------------------

    async def live(self, timeout: float | None) -> bool:
        """Whether the broker answers: a message to the client's own reply queue comes back
        (modeld itself is not asked)."""
        await self._exchange(None, b"", {"correlation_id": PING_PREFIX + uuid.uuid4().hex},
                             timeout)
        return True

    async def ready(self, timeout: float | None) -> bool:
        return (await self._call(_envelope.server_ready(timeout))).ready

    async def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        try:
            return (await self._call(_envelope.model_ready(model, version, timeout))).ready
        except (ModelNotFound, InvalidInput):
            return False

    async def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        raise _envelope.server_metadata_unsupported(QUEUE)

    async def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        return ModelSpec.from_proto(await self._call(_envelope.metadata(model, version, timeout)))

    async def model_status(self, model: str, version: str,
                           timeout: float | None) -> list[ModelStatus]:
        request = _envelope.metadata(model, version, timeout)
        body, queue = await self._send(request)
        return _envelope.metadata_status(
            lambda: _envelope.decode_reply(request, body, f"reply queue {queue}"), model, version)

    async def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        raise _envelope.repository_index_unsupported(QUEUE)

    async def model_config(self, model: str, version: str,
                           timeout: float | None) -> dict[str, Any]:
        raise _envelope.model_config_unsupported(QUEUE)

    async def infer(self, model: str, version: str, tensors: Sequence[Tensor],
                    outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        request = _envelope.infer(model, version, tensors, outputs, timeout)
        return _codec.grpc_infer_outputs(await self._call(request))

    async def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
                    targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        request = _envelope.train(model, version, request_id, inputs, targets, timeout)
        return _training.grpc_train_result(await self._call(request))

    async def close(self) -> None:
        """Closes this loop's connection; those of other loops are dropped."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._closed = True
            states, self._loops = self._loops, {}
            same_process = self._pid == os.getpid()
        if not same_process:
            _INHERITED.extend(states.values())
            return
        for state in states.values():
            if state.loop is loop and state.link is not None:
                await state.link.close()
