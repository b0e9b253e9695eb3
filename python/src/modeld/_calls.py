"""What each call of the sync and asyncio clients does, written once and free of I/O.

A call is a generator (a "sans-I/O" coroutine) that checks its arguments, prepares the request
(ClientBase's helpers), decides about retries, keeps the metadata cache and turns the answer
into what the method returns. It does no I/O itself: for each piece it needs it yields a step,

* :class:`Request`: call a method of the client's transport with these arguments;
* :class:`Sleep`: wait this long before trying again,

and the client that runs it does that step: :class:`modeld.Client` with a blocking call,
:class:`modeld.aio.Client` with an await. The client sends the step's answer back in, or throws
its exception in at the ``yield``, so the generator's try/except sees a transport error exactly
where a direct call would have raised it. What the generator finally returns is the method's
result; what it raises is the method's error.

Generators rather than a prepare/finish pair of functions, because a call may take several
round trips (predict() may fetch the metadata, then infer) and retries between them: the
order of those, and every decision about them, is then written once, here. The two clients are
only shells: their methods carry the signatures and the docstrings, and a short loop
(``_run``) does the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from . import _status
from ._codec import ModelSpec
from ._common import ClientBase, Deadline
from ._status import ModelStatus
from ._training import TrainResult, train_id
from .errors import (
    DeadlineExceeded,
    InvalidInput,
    ModeldError,
    ModelNotFound,
    ModelNotReady,
    Unavailable,
)

__all__ = [
    "Request",
    "Sleep",
    "Step",
    "Call",
    "infer",
    "predict",
    "train",
    "live",
    "ready",
    "model_ready",
    "model_status",
    "models",
    "metadata",
    "model_config",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """Call ``transport.<method>(*args)``, the last argument the seconds left (None: no limit).

    The transport methods take their arguments by position: tests and tools wrap them with
    ``def counting(*args)``.
    """

    method: str
    args: tuple[Any, ...]

    def perform(self, transport: Any, sleep: Any) -> Any:
        # Looked up at each request, not bound once: a wrapper put on the transport instance
        # meanwhile (as the tests do to count calls) must be the one called.
        return getattr(transport, self.method)(*self.args)


@dataclass(frozen=True)
class Sleep:
    """Wait `seconds` before the next try (time.sleep, or asyncio.sleep in the asyncio client)."""

    seconds: float

    def perform(self, transport: Any, sleep: Any) -> Any:
        return sleep(self.seconds)


Step = Request | Sleep
#: A call in progress: yields steps, is sent their answers, returns the method's result.
Call = Generator[Step, Any, T]


# --- plumbing -------------------------------------------------------------------------------


#: Each call (its name and model, never tensor values) with its latency at DEBUG, each retry at
#: DEBUG, and each call that fails at WARNING.
logger = logging.getLogger("modeld")
# A library's logger prints nothing until the application configures logging (Django's LOGGING,
# logging.basicConfig): without this, Python would print its warnings on stderr by itself.
logger.addHandler(logging.NullHandler())


def _retrying(
    client: ClientBase,
    what: str,
    method: str,
    args: tuple[Any, ...],
    deadline: Deadline,
    *,
    idempotent: bool = True,
    model: tuple[str, str] | None = None,
) -> Call[Any]:
    """transport.<method>(*args, seconds left), retried on Unavailable with backoff within the
    deadline; a call that is not `idempotent` is sent once.

    A call on `model` (its name and version) that modeld answers "model 'x' is not ready" asks
    the model's status (once for each such answer) and raises ModelNotReady at once for a
    model that failed to load; one that is loading is retried as any Unavailable."""
    retry = 0
    started = time.monotonic()
    asked: str | None = None  # the not-ready answer whose status was asked
    try:
        while True:
            if client._closed:
                raise ModeldError(f"{what}: the client is closed", "CLOSED")
            remaining = deadline.check(what)
            try:
                result = yield Request(method, (*args, remaining))
                logger.debug("%s: %.1f ms%s", what, (time.monotonic() - started) * 1000,
                             f" ({retry} retries)" if retry else "")
                return result
            except DeadlineExceeded as error:
                raise client._timed_out(what, error, deadline) from None
            except Unavailable as error:
                if (model is not None and error.message != asked
                        and _status.not_ready_answer(model[0], error.message) is not None):
                    asked = error.message
                    failed = yield from _not_ready(model, error, deadline)
                    if failed is not None:
                        raise failed from None
                wait = client._policy.delay(retry, deadline) if idempotent else None
                if wait is None:
                    raise
                logger.debug("%s: %s; retry %d in %.0f ms", what, error.message, retry + 1,
                             wait * 1000)
                yield Sleep(wait)  # the client sleeps (or awaits asyncio.sleep), then resumes us
                retry += 1
    except ModeldError as error:
        logger.warning("%s failed after %.1f ms: %s %s", what,
                       (time.monotonic() - started) * 1000, error.code, error.message)
        raise


def _not_ready(
    key: tuple[str, str], error: Unavailable, deadline: Deadline
) -> Call[ModelNotReady | None]:
    """After modeld answered that the model is not ready (`error`): the ModelNotReady to raise
    when its status says it failed (UNAVAILABLE), None when it is loading (or ready by now), or
    when its status cannot be had (the call goes on as for any Unavailable)."""
    model, version = key
    remaining = deadline.remaining()
    if remaining is not None and remaining <= 0:
        return None
    try:
        entries = yield Request("model_status", (model, version, remaining))
        status = _status.summarize(entries)
    except ModeldError as failure:
        logger.debug("model_status of model '%s' after %r: %s", model, error.message, failure)
        return None
    if status.state != ModelStatus.UNAVAILABLE:
        return None
    which = f"version {status.version} of model '{model}'" if status.version else \
        f"model '{model}'"
    return ModelNotReady(
        f"{which} is not ready and is not loading, so retrying will not help: "
        f"{status.reason or 'the server gives no reason'}",
        error.code, model=model, version=status.version, state=status.state,
        reason=status.reason,
    )


def _spec(
    client: ClientBase, model: str, version: int | str | None, deadline: Deadline
) -> Call[ModelSpec]:
    """The model's metadata: cached, else fetched (and cached)."""
    key = client._key(model, version)
    spec = client._specs.get(key)
    if spec is None:
        spec = yield from _retrying(
            client, f"metadata of model '{model}'", "model_metadata", key, deadline, model=key
        )
        client._specs[key] = spec
    return spec


def _infer(
    client: ClientBase,
    model: str,
    inputs: Mapping[str, ArrayLike],
    version: int | str | None,
    outputs: Sequence[str] | None,
    deadline: Deadline,
) -> Call[dict[str, np.ndarray]]:
    key = client._key(model, version)
    spec = yield from _spec(client, model, version, deadline)
    tensors, names = client._prepare(spec, inputs, outputs)
    try:
        return (yield from _retrying(
            client, f"infer on model '{model}'", "infer", (*key, tensors, names), deadline,
            model=key,
        ))
    except (InvalidInput, ModelNotFound, ModelNotReady):
        client._forget(key)
        raise


# --- the calls of the API (the docstrings are those of modeld.Client) -----------------------


def infer(
    client: ClientBase,
    model: str,
    inputs: Mapping[str, ArrayLike],
    version: int | str | None,
    outputs: Sequence[str] | None,
    timeout: float | None,
) -> Call[dict[str, np.ndarray]]:
    return (yield from _infer(client, model, inputs, version, outputs, client._deadline(timeout)))


def predict(
    client: ClientBase,
    model: str,
    x: ArrayLike,
    version: int | str | None,
    timeout: float | None,
) -> Call[np.ndarray]:
    # One deadline for both the metadata (to learn the names) and the inference.
    deadline = client._deadline(timeout)
    input_name, output_name = client._single((yield from _spec(client, model, version, deadline)))
    outputs = yield from _infer(client, model, {input_name: x}, version, [output_name], deadline)
    return outputs[output_name]


def train(
    client: ClientBase,
    model: str,
    inputs: Mapping[str, ArrayLike],
    targets: Mapping[str, ArrayLike],
    version: int | str | None,
    timeout: float | None,
    request_id: str | None,
) -> Call[TrainResult]:
    deadline = client._deadline(timeout)
    request_id = train_id(request_id)
    key = client._key(model, version)
    spec = yield from _spec(client, model, version, deadline)
    tensors, target_tensors = client._prepare_train(spec, inputs, targets)
    try:
        # Never retried: an Unavailable may come after the step was taken.
        return (yield from _retrying(
            client,
            f"train on model '{model}'",
            "train",
            (*key, request_id, tensors, target_tensors),
            deadline,
            idempotent=False,
            model=key,
        ))
    except (InvalidInput, ModelNotFound, ModelNotReady):
        client._forget(key)
        raise


def live(client: ClientBase, timeout: float | None) -> Call[bool]:
    return (yield from _retrying(client, "live", "live", (), client._deadline(timeout)))


def ready(client: ClientBase, timeout: float | None) -> Call[bool]:
    return (yield from _retrying(client, "ready", "ready", (), client._deadline(timeout)))


def model_ready(
    client: ClientBase, model: str, version: int | str | None, timeout: float | None
) -> Call[bool]:
    key = client._key(model, version)
    return (yield from _retrying(
        client, f"model_ready of model '{model}'", "model_ready", key, client._deadline(timeout)
    ))


def model_status(
    client: ClientBase, model: str, version: int | str | None, timeout: float | None
) -> Call[ModelStatus]:
    key = client._key(model, version)
    _status.check_version(key[1])
    # An unknown model, or one that failed, is an answer here, not an error: the transport
    # returns it as a status, so it is neither retried nor logged as a failure.
    versions = yield from _retrying(
        client, f"model_status of model '{model}'", "model_status", key,
        client._deadline(timeout)
    )
    return _status.summarize(versions)


def models(client: ClientBase, timeout: float | None) -> Call[list[ModelStatus]]:
    # modeld serves its repository index in every --model-control-mode; the queues (Redis,
    # AMQP) carry none, and their transports raise UNIMPLEMENTED.
    return (yield from _retrying(
        client, "models", "repository_index", (), client._deadline(timeout)
    ))


def metadata(
    client: ClientBase, model: str | None, version: int | str | None, timeout: float | None
) -> Call[dict[str, Any]]:
    deadline = client._deadline(timeout)
    if model is None:
        if version is not None:
            raise ValueError("a version needs a model")
        return (yield from _retrying(client, "server metadata", "server_metadata", (), deadline))
    # metadata() always asks the server, and refreshes the cache.
    client._forget(client._key(model, version))
    return (yield from _spec(client, model, version, deadline)).as_dict()


def model_config(
    client: ClientBase, model: str, version: int | str | None, timeout: float | None
) -> Call[dict[str, Any]]:
    key = client._key(model, version)
    return (yield from _retrying(
        client, f"config of model '{model}'", "model_config", key, client._deadline(timeout),
        model=key,
    ))
