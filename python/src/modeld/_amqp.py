"""The AMQP transport of the sync client: calls through modeld's RabbitMQ queue (docs/amqp.md).

A client has one connection to the broker per process, with one channel, one reply queue and
one thread of its own that drives it: pika's BlockingConnection is not thread-safe, so no
other thread ever touches it. A call hands its envelope to that thread (through
``add_callback_threadsafe``, pika's one thread-safe method), which publishes it to the request
queue, persistent, with the reply queue as ``reply_to``, the request id as ``correlation_id``
and the deadline in the ``modeld-deadline-ms`` header; the call then waits on an Event until
the thread hands it the reply with that correlation id. Any number of threads have calls
outstanding at once on the one connection. A reply whose correlation id no waiting call has
(the answer to a call that timed out, or a message nobody asked for) is dropped and counted,
never handed to another call; the reply's own request id is checked as well (MISROUTED).

The reply queue is an exclusive, auto-delete queue named by the broker, consumed on the channel
that publishes, rather than RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``): it works
with any AMQP 0-9-1 broker, it shows in ``rabbitmqctl list_queues``, and it costs one
declaration per connection, which lives as long as the process. The broker deletes it with the
connection; a reply modeld publishes after that is returned to modeld and counted there.

Requests are published ``mandatory``: a request queue that does not exist (no modeld has
declared it on this vhost) makes the broker return the request at once, and the call raises
Unavailable naming the queue instead of waiting for its timeout. A queue that exists with no
modeld consuming it keeps the request: the call times out (DeadlineExceeded) and modeld, when
it comes, answers DEADLINE_EXCEEDED without running it.

When the connection breaks, the thread ends, every waiting call gets Unavailable (which the
client's retry policy retries, except a training step) and the next call opens a new
connection. A request that never left (the connection broke before the thread published it) is
sent once more on the new connection at once, a training step too: the broker never had it.

The connection belongs to one process (ForkLocal): after os.fork() the child opens its own on
its first call, and the parent's is dropped there without a word on its socket (closing it
would send Connection.Close on the socket the parent still uses; its thread does not exist in
the child).

pika is the optional dependency ``modeld[amqp]``; only this module imports it (aio/_amqp.py
imports aio-pika).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _codec, _envelope, _training
from ._amqp_url import AmqpTarget
from ._codec import ModelSpec, Tensor
from ._common import Endpoint, ForkLocal
from ._status import ModelStatus
from ._training import TrainResult
from .errors import InvalidInput, ModeldError, ModelNotFound, Unavailable, client_timeout

__all__ = ["AmqpTransport", "import_pika", "AMQP_ERROR", "CONNECT_TIMEOUT_S", "DEADLINE_HEADER",
           "connection_name", "request_headers", "returned_error", "QUEUE"]

#: The longest a new connection may take to open (less when the call has less time left).
CONNECT_TIMEOUT_S = 5.0
#: A connection the broker blocks this long (a memory or disk alarm) is closed: Unavailable.
BLOCKED_TIMEOUT_S = 30.0
#: How long close() waits for the connection's thread to close it.
CLOSE_TIMEOUT_S = 5.0
#: The code of the error raised when the broker refuses something other than the credentials
#: (a vhost that does not exist, or that the user may not use).
AMQP_ERROR = "AMQP_ERROR"
#: The header of the request's deadline, in Unix milliseconds (docs/amqp.md).
DEADLINE_HEADER = "modeld-deadline-ms"
CONTENT_TYPE = "application/x-protobuf"
REQUEST_TYPE = "modeld.redis.RequestEnvelope"
#: The correlation ids of live()'s pings, which go to the client's own reply queue.
PING_PREFIX = "modeld-ping-"
#: For messages: what the queue is called.
QUEUE = "AMQP queue"


def import_pika() -> Any:
    """pika, or ImportError saying how to install it."""
    try:
        import pika
        import pika.exceptions
    except ImportError as error:
        raise ImportError(
            'amqp:// URLs need pika, which modeld does not install by itself: '
            'pip install "modeld[amqp]"'
        ) from error
    return pika


def connection_name() -> str:
    """The name the broker shows for a client's connection (rabbitmqctl list_connections
    name): ``modeld client <host>:<pid>``."""
    return f"modeld client {socket.gethostname()}:{os.getpid()}"


def request_headers(request: _envelope.Request) -> dict[str, Any] | None:
    """The headers of a request: its deadline, as the envelope also carries it."""
    if not request.deadline_unix_ms:
        return None
    return {DEADLINE_HEADER: request.deadline_unix_ms}


def returned_error(target: AmqpTarget, routing_key: str, why: str) -> ModeldError:
    """The error of a request the broker returned (basic.return, `why`: "312 NO_ROUTE"): no
    queue took it."""
    if routing_key == target.queue:
        return Unavailable(
            f"the AMQP broker at {target.address} has no queue {target.queue!r} for the "
            f"request ({why}): no modeld has declared it there yet (modeld's --amqp-queue, or "
            "the URL's ?queue=, is another name?)"
        )
    return Unavailable(f"the AMQP broker at {target.address} returned the message to "
                       f"{routing_key!r}: {why}")


def unauthenticated(target: AmqpTarget, error: BaseException) -> ModeldError:
    return ModeldError(f"the AMQP broker at {target.address} refused the login of "
                       f"{target.username!r}: {error}", "UNAUTHENTICATED")


def refused(target: AmqpTarget, error: BaseException) -> ModeldError:
    return ModeldError(f"the AMQP broker at {target.address} refused the connection: {error}",
                       AMQP_ERROR)


def unreachable(target: AmqpTarget, error: BaseException) -> Unavailable:
    return Unavailable(f"cannot reach the AMQP broker at {target.address}: {_describe(error)}")


def lost(target: AmqpTarget, error: BaseException | None) -> Unavailable:
    why = f": {_describe(error)}" if error is not None else ""
    return Unavailable(f"lost the connection to the AMQP broker at {target.address}{why}")


def _describe(error: BaseException) -> str:
    """`error` in a few words: pika wraps the error of a failed connection (a refused socket)
    in others whose str() is empty."""
    for _ in range(5):
        if len(error.args) == 1 and isinstance(error.args[0], BaseException):
            error = error.args[0]
    name = type(error).__name__
    text = str(error) or repr(error)
    return text if text.startswith(name) else f"{name}: {text}"


def _connect_error(pika: Any, target: AmqpTarget, error: BaseException) -> BaseException:
    """The ModeldError for a connection that could not be opened (or `error` itself when it is
    no error of pika's or of the network: KeyboardInterrupt, say)."""
    exceptions = pika.exceptions
    code = getattr(error, "reply_code", None)
    if isinstance(error, (exceptions.AuthenticationError,
                          exceptions.ProbableAuthenticationError)) or code == 403:
        return unauthenticated(target, error)
    if isinstance(error, exceptions.ProbableAccessDeniedError) or code == 530:
        return refused(target, error)
    if isinstance(error, (exceptions.AMQPError, OSError)):
        return unreachable(target, error)
    return error


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # noqa: BLE001 - a connection that is going away anyway
        pass


def _nothing() -> None:
    pass


class _NotSent(Exception):
    """A message that never reached the broker (the connection broke before it was published):
    safe to send again, whatever it is."""

    def __init__(self, error: ModeldError) -> None:
        super().__init__(error.message)
        self.error = error


class _Waiter:
    """A call waiting for its reply: the thread of the connection fills it in."""

    __slots__ = ("event", "body", "error", "sent")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.body: bytes | None = None
        self.error: BaseException | None = None
        self.sent = False  # published (the broker may have it)

    def finish(self, body: bytes | None = None, error: BaseException | None = None) -> None:
        self.body = body
        self.error = error
        self.event.set()


class _Link:
    """One connection to the broker: its channel, its reply queue consumed on that channel, the
    calls waiting for replies, and the thread that drives it all (the only one that touches
    the connection once it is open). Opened in the caller's thread, so that its errors are
    the caller's."""

    def __init__(self, pika: Any, target: AmqpTarget, ssl_context: Any,
                 timeout: float | None) -> None:
        self._pika = pika
        self._target = target
        self.pid = os.getpid()
        connect_timeout = CONNECT_TIMEOUT_S if timeout is None else min(timeout, CONNECT_TIMEOUT_S)
        connect_timeout = max(connect_timeout, 0.001)
        ssl_options = None
        if ssl_context is not None:
            ssl_options = pika.SSLOptions(ssl_context, server_hostname=target.host)
        parameters = pika.ConnectionParameters(
            host=target.host, port=target.port, virtual_host=target.vhost,
            credentials=pika.PlainCredentials(target.username, target.password),
            ssl_options=ssl_options, connection_attempts=1, socket_timeout=connect_timeout,
            stack_timeout=connect_timeout, blocked_connection_timeout=BLOCKED_TIMEOUT_S,
            client_properties={"connection_name": connection_name()})
        self.connection = pika.BlockingConnection(parameters)
        try:
            self.channel = self.connection.channel()
            declared = self.channel.queue_declare("", exclusive=True, auto_delete=True)
            #: The broker-named queue this connection's replies come to.
            self.reply_queue: str = declared.method.queue
            self.channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True,
                                       exclusive=True)
            self.channel.add_on_return_callback(self._on_return)
        except BaseException:
            _close_quietly(self.connection)
            raise
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiter] = {}
        #: Set (once) when the connection is gone: every later call gets it.
        self.error: ModeldError | None = None
        #: Replies that no waiting call had asked for (late, or unknown): dropped.
        self.dropped = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._drive, daemon=True,
                                        name=f"modeld-amqp {target.host}:{target.port}")
        self._thread.start()

    # --- in the calling threads -------------------------------------------------------------

    def call(self, routing_key: str, body: bytes, properties: Any,
             timeout: float | None) -> bytes:
        """Publishes `body` to `routing_key` (on the default exchange) and returns the body of
        the reply with the same correlation id. Raises _NotSent when it was not published,
        Unavailable when the connection broke after it was (or the broker returned it),
        DeadlineExceeded when no reply came within `timeout` seconds (None: no limit)."""
        correlation_id = properties.correlation_id
        waiter = _Waiter()
        with self._lock:
            if self.error is not None:
                raise _NotSent(self.error)
            self._waiting[correlation_id] = waiter
        try:
            self.connection.add_callback_threadsafe(
                functools.partial(self._publish, waiter, routing_key, body, properties))
        except self._pika.exceptions.AMQPError as error:  # the connection is closing
            self._forget(correlation_id)
            raise _NotSent(self.error or lost(self._target, error)) from None
        if not waiter.event.wait(timeout):
            self._forget(correlation_id)
            if not waiter.event.is_set():  # else the reply came just now: take it
                raise client_timeout(
                    f"no reply from modeld on {self.reply_queue} ({self._target.describe()})")
        if waiter.error is not None:
            raise waiter.error
        assert waiter.body is not None
        return waiter.body

    def _forget(self, correlation_id: str) -> None:
        with self._lock:
            self._waiting.pop(correlation_id, None)

    def close(self) -> None:
        """Stops the thread, which closes the connection; waits for it (a while). Nothing in a
        process other than the one that opened it: the parent still uses the connection."""
        if self.pid != os.getpid():
            return
        self._stopping = True
        try:
            self.connection.add_callback_threadsafe(_nothing)  # wakes the thread up
        except self._pika.exceptions.AMQPError:
            pass  # closed already
        if threading.current_thread() is not self._thread:
            self._thread.join(CLOSE_TIMEOUT_S)

    # --- in the connection's thread ---------------------------------------------------------

    def _drive(self) -> None:
        error: BaseException | None = None
        try:
            while not self._stopping:
                self.connection.process_data_events(time_limit=None)
                if self.channel.is_closed:  # the broker closed it: the consumer is gone
                    error = getattr(self.channel, "_closing_reason", None)
                    break
        except BaseException as caught:  # noqa: BLE001 - the connection broke: reported below
            error = caught
        _close_quietly(self.connection)
        if self._stopping:
            failure: ModeldError = Unavailable("the client was closed")
        else:
            failure = lost(self._target, error)
        with self._lock:
            self.error = failure
            waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            waiter.finish(error=failure if waiter.sent else _NotSent(failure))

    def _publish(self, waiter: _Waiter, routing_key: str, body: bytes, properties: Any) -> None:
        exceptions = self._pika.exceptions
        with self._lock:
            if self._waiting.get(properties.correlation_id) is not waiter:
                return  # the call gave up (timed out) before its turn: never sent
        try:
            self.channel.basic_publish("", routing_key, body, properties, mandatory=True)
        except (exceptions.ChannelWrongStateError, exceptions.ConnectionWrongStateError) as error:
            # Refused before anything was written: the broker never saw it.
            self._forget(properties.correlation_id)
            waiter.finish(error=_NotSent(lost(self._target, error)))
            return
        except Exception as error:  # noqa: BLE001 - broke while writing: it may have gone out
            self._forget(properties.correlation_id)
            waiter.finish(error=lost(self._target, error))
            return
        waiter.sent = True

    def _on_reply(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        correlation_id = properties.correlation_id
        with self._lock:
            waiter = self._waiting.pop(correlation_id, None) if correlation_id else None
            if waiter is None:
                self.dropped += 1
        if waiter is not None:
            waiter.finish(body=body)

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        with self._lock:
            waiter = self._waiting.pop(properties.correlation_id or "", None)
        if waiter is not None:
            waiter.finish(error=returned_error(self._target, method.routing_key,
                                               f"{method.reply_code} {method.reply_text}"))


class _Holder:
    """This process's link (None until the first call) and the lock that lets one thread at a
    time open a new one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.link: _Link | None = None


def _close_holder(state: ForkLocal) -> None:
    holder = state.pop()
    if holder is not None and holder.link is not None:
        holder.link.close()


class AmqpTransport:
    """Calls modeld through its AMQP queue; every method raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint) -> None:
        assert endpoint.amqp is not None
        self._pika = import_pika()
        self._target: AmqpTarget = endpoint.amqp
        security = endpoint.security
        self._ssl_context = security.ssl_context() if security.tls else None
        self._state = ForkLocal(_Holder)
        self._closed = False
        # A client dropped without close() closes its connection when it is collected (its
        # thread would keep it open otherwise).
        self._finalizer = weakref.finalize(self, _close_holder, self._state)

    def _link(self, timeout: float | None) -> _Link:
        """This process's open link, opened now if there is none (or it broke)."""
        holder = self._state.get()
        link = holder.link
        if link is not None and link.error is None:
            return link
        if not holder.lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.001)):
            raise client_timeout(f"waited for the connection to the AMQP broker at "
                                 f"{self._target.address}")
        try:
            link = holder.link
            if link is not None and link.error is None:
                return link
            if self._closed:
                raise ModeldError("the client is closed", "CLOSED")
            holder.link = None
            if link is not None:
                link.close()  # broken: its thread has ended, or is ending
            try:
                holder.link = _Link(self._pika, self._target, self._ssl_context, timeout)
            except BaseException as error:
                raise _connect_error(self._pika, self._target, error) from None
            return holder.link
        finally:
            holder.lock.release()

    def _exchange(self, routing_key: str | None, body: bytes, properties: dict[str, Any],
                  timeout: float | None) -> tuple[bytes, str]:
        """Publishes `body` with `properties` to `routing_key` (None: the client's own reply
        queue) and waits for its reply: (its body, the reply queue it came from). A message
        that never reached the broker is sent once more, on a new connection."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in range(2):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            link = self._link(remaining)
            props = self._pika.BasicProperties(reply_to=link.reply_queue, **properties)
            try:
                reply = link.call(routing_key or link.reply_queue, body, props, remaining)
                return reply, link.reply_queue
            except _NotSent as not_sent:
                if attempt == 0 and (deadline is None or time.monotonic() < deadline):
                    continue
                raise not_sent.error from None
        raise AssertionError("unreachable")

    def _send(self, request: _envelope.Request) -> tuple[bytes, str]:
        properties = {
            "correlation_id": request.request_id,
            "delivery_mode": 2,  # persistent: the request survives a broker restart
            "content_type": CONTENT_TYPE,
            "type": REQUEST_TYPE,
            "headers": request_headers(request),
        }
        return self._exchange(self._target.queue, request.message.SerializeToString(),
                              properties, request.timeout)

    def _call(self, request: _envelope.Request) -> Any:
        body, queue = self._send(request)
        return _envelope.decode_reply(request, body, f"reply queue {queue}")

    # --- API --------------------------------------------------------------------------------

    def live(self, timeout: float | None) -> bool:
        """Whether the broker answers: a message to the client's own reply queue comes back
        (modeld itself is not asked)."""
        self._exchange(None, b"", {"correlation_id": PING_PREFIX + uuid.uuid4().hex}, timeout)
        return True

    def ready(self, timeout: float | None) -> bool:
        return self._call(_envelope.server_ready(timeout)).ready

    def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        try:
            return self._call(_envelope.model_ready(model, version, timeout)).ready
        except (ModelNotFound, InvalidInput):
            return False

    def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        raise _envelope.server_metadata_unsupported(QUEUE)

    def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        return ModelSpec.from_proto(self._call(_envelope.metadata(model, version, timeout)))

    def model_status(self, model: str, version: str, timeout: float | None) -> list[ModelStatus]:
        request = _envelope.metadata(model, version, timeout)
        body, queue = self._send(request)  # the broker's errors are raised here, not statuses
        return _envelope.metadata_status(
            lambda: _envelope.decode_reply(request, body, f"reply queue {queue}"), model, version)

    def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        raise _envelope.repository_index_unsupported(QUEUE)

    def model_config(self, model: str, version: str, timeout: float | None) -> dict[str, Any]:
        raise _envelope.model_config_unsupported(QUEUE)

    def infer(self, model: str, version: str, tensors: Sequence[Tensor],
              outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        request = _envelope.infer(model, version, tensors, outputs, timeout)
        return _codec.grpc_infer_outputs(self._call(request))

    def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
              targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        request = _envelope.train(model, version, request_id, inputs, targets, timeout)
        return _training.grpc_train_result(self._call(request))

    def close(self) -> None:
        self._closed = True
        self._finalizer()
