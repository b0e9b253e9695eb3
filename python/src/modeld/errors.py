"""Exceptions raised by the modeld clients, and the mapping from transport errors to them.

Every error a client raises is a :class:`ModeldError`; the subclasses name the cases a caller
usually handles differently:

==========================  ==========================================  =================
exception                   gRPC status (and Redis reply code)          HTTP status
==========================  ==========================================  =================
:class:`ModelNotFound`      NOT_FOUND                                   404
:class:`InvalidInput`       INVALID_ARGUMENT, FAILED_PRECONDITION,      400
                            OUT_OF_RANGE
:class:`ServerBusy`         RESOURCE_EXHAUSTED                          429
:class:`DeadlineExceeded`   DEADLINE_EXCEEDED, or the client's timeout  504
:class:`Unauthenticated`    UNAUTHENTICATED (no or a wrong bearer       401
                            token)
:class:`Unavailable`        UNAVAILABLE, or the server cannot be        503
                            reached (refused, reset), or Redis cannot
:class:`ModelNotReady`      UNAVAILABLE for a model that failed to      503
                            load (the model status the client then
                            asks says UNAVAILABLE, not LOADING)
:class:`ModelFailed`        INTERNAL: the model ran and its framework   500
                            failed (the server logged it)
:class:`ModeldError`        anything else                               anything else
==========================  ==========================================  =================

Over Redis, a reply's ``code`` (a ``google.rpc.Code``, numbered as gRPC's status codes) maps as
the gRPC status of the same name. Errors of the Redis transport itself are ModeldErrors with
the codes ``"MISROUTED"`` (a reply that answers another request), ``"REDIS_ERROR"`` (Redis
refused a command: WRONGTYPE, NOPERM, OOM, ...), ``"UNAUTHENTICATED"`` (Redis refused the
credentials) and ``"UNIMPLEMENTED"`` (server metadata and the list of models, which the queue
does not carry). Over AMQP the replies are the same envelopes, mapped the same way, and the
transport's own errors are ModeldErrors with the codes ``"MISROUTED"``, ``"UNAUTHENTICATED"``
(the broker refused the login), ``"AMQP_ERROR"`` (it refused the vhost) and
``"UNIMPLEMENTED"``; a broker that cannot be reached, a connection that broke while a call
waited, and a request queue that does not exist (the broker returns the request: no modeld has
declared it) are Unavailable.

modeld answers a call on a model that has no ready version UNAVAILABLE (503), whether the model
is still loading (waiting helps) or failed to load (it does not). So when a call on a model
gets that answer from the server (not a connection failure), the client asks the model's status
once: for a model that failed (state ``"UNAVAILABLE"``) it raises :class:`ModelNotReady` with
the server's reason at once, without retrying; for one that is loading it goes on as for any
Unavailable (retried, then raised).

Mistakes in how a client is made or called are not ModeldErrors, and are raised before anything
is sent: ValueError (a bad URL; a TLS file that is missing, unreadable or holds no PEM data; an
argument out of range), TypeError (an argument of the wrong type) and ImportError (``redis://``
without redis-py, ``amqp://`` without pika or aio-pika). python/README.md lists them all.
"""

from __future__ import annotations

__all__ = [
    "ModeldError",
    "ModelNotFound",
    "InvalidInput",
    "ServerBusy",
    "DeadlineExceeded",
    "Unavailable",
    "ModelNotReady",
    "Unauthenticated",
    "ModelFailed",
    "error_for_grpc",
    "error_for_rpc_code",
    "client_timeout",
    "error_for_http",
]


class ModeldError(Exception):
    """An error from modeld or from talking to it.

    Attributes:
        message: the server's message (or the client's, for errors found locally).
        code: a short string: the gRPC status name (``"NOT_FOUND"``) over gRPC and Redis, the
            HTTP status (``"404"``) over HTTP, ``"UNAVAILABLE"`` / ``"DEADLINE_EXCEEDED"`` for
            connection errors and client-side timeouts, ``"INVALID_ARGUMENT"`` for inputs
            refused locally.
    """

    #: The code used when none is given.
    default_code = "UNKNOWN"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: str = code if code is not None else self.default_code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"

    def __reduce__(self):  # picklable (Celery sends exceptions between processes)
        # The attributes of the subclasses (ModelNotReady's model, version, state, reason) go
        # along as the instance's state.
        return (type(self), (self.message, self.code), dict(self.__dict__))


class ModelNotFound(ModeldError):
    """The model (or the version asked for) is not served."""

    default_code = "NOT_FOUND"


class InvalidInput(ModeldError):
    """The request was refused: a wrong, missing or extra input, shape or datatype."""

    default_code = "INVALID_ARGUMENT"


class ServerBusy(ModeldError):
    """The server refused the request because a queue is full (try again later)."""

    default_code = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(ModeldError):
    """The call took longer than its timeout, or it timed out in the server's queue."""

    default_code = "DEADLINE_EXCEEDED"


class Unavailable(ModeldError):
    """The server cannot be reached or is not serving (it is starting or stopping)."""

    default_code = "UNAVAILABLE"


class ModelNotReady(ModeldError):
    """The model has no version that serves, and none is loading: it failed to load (or, with
    ``--model-control-mode=explicit``, was unloaded). Asking again will not help until the
    model's files (or the server's repository) change; the server's reason says why.

    Not an :class:`Unavailable`: the client does not retry it, and a web view should not answer
    it "busy, try again" (``docs/django.md``, section 5).

    Attributes:
        model: the model's name.
        version: the version the status is of (a string); None for a model whose
            configuration failed before any version was read, and where the server's answer
            names no version (over Redis and AMQP, whose queues carry no model status).
        state: the model's state as the server reports it: ``"UNAVAILABLE"``.
        reason: the server's reason, in its words (the load error), or None when it gives none.
    """

    default_code = "UNAVAILABLE"

    def __init__(self, message: str, code: str | None = None, *, model: str = "",
                 version: str | None = None, state: str = "UNAVAILABLE",
                 reason: str | None = None) -> None:
        super().__init__(message, code)
        self.model: str = model
        self.version: str | None = version
        self.state: str = state
        self.reason: str | None = reason


class Unauthenticated(ModeldError):
    """The server wants a bearer token (``token=``) and got none, or one it does not accept."""

    default_code = "UNAUTHENTICATED"


class ModelFailed(ModeldError):
    """The model ran and failed: its framework raised an error that is not about the request's
    shape or types (those are InvalidInput). The message is the framework's; the server logged
    it. Usually a bug in the model, or data it cannot take."""

    default_code = "INTERNAL"


def client_timeout(detail: str = "") -> DeadlineExceeded:
    """A DeadlineExceeded for a timeout found by the client itself (not told by the server).

    The client replaces its message with one that names the call and its timeout.
    """
    error = DeadlineExceeded(detail or "no answer in time")
    error.client_side = True  # type: ignore[attr-defined]
    return error


_GRPC_CLASSES: dict[str, type[ModeldError]] = {
    "NOT_FOUND": ModelNotFound,
    "INVALID_ARGUMENT": InvalidInput,
    "FAILED_PRECONDITION": InvalidInput,
    "OUT_OF_RANGE": InvalidInput,
    "RESOURCE_EXHAUSTED": ServerBusy,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "UNAVAILABLE": Unavailable,
    "UNAUTHENTICATED": Unauthenticated,
    "INTERNAL": ModelFailed,
}

_HTTP_CLASSES: dict[int, type[ModeldError]] = {
    400: InvalidInput,
    401: Unauthenticated,
    404: ModelNotFound,
    413: InvalidInput,  # the body is over the server's --http-max-body-bytes
    429: ServerBusy,
    503: Unavailable,
    504: DeadlineExceeded,
    500: ModelFailed,
}


def error_for_grpc(code_name: str, message: str) -> ModeldError:
    """The exception for a gRPC status, given by name (``grpc.StatusCode.X.name``)."""
    if code_name == "RESOURCE_EXHAUSTED" and (
            "--grpc-max-message-bytes" in message or "larger than max" in message):
        # A message over --grpc-max-message-bytes (modeld's refusal naming the flag, or gRPC's
        # own past twice the limit): retrying later cannot help, unlike a full queue.
        return InvalidInput(message, code_name)
    return _GRPC_CLASSES.get(code_name, ModeldError)(message, code_name)


#: google.rpc.Code number -> name; the numbers of grpc.StatusCode (not imported: a Redis client
#: never loads grpc).
RPC_CODE_NAMES: dict[int, str] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


def error_for_rpc_code(code: int, message: str) -> ModeldError:
    """The exception for a ``google.rpc.Code`` number (a Redis reply's ``code``), as for the
    gRPC status of the same name; an unknown number is a plain ModeldError with the number as
    its code."""
    return error_for_grpc(RPC_CODE_NAMES.get(code, str(code)), message)


def error_for_http(status: int, message: str) -> ModeldError:
    """The exception for an HTTP error status."""
    return _HTTP_CLASSES.get(status, ModeldError)(message, str(status))
