"""Celery signatures for modeld's own tasks: modeld consumes a Celery queue itself.

modeld speaks Celery's message protocol version 2 (``--celery-broker=redis://...`` or
``amqp://...``, docs/design/celery.md), so a Django site that already uses Celery sends work to
the model without any Python worker loading it::

    from celery import Celery
    import modeld.celery

    app = Celery("site", broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/0")
    app.conf.task_routes = modeld.celery.TASK_ROUTES        # "modeld.*" -> queue "modeld"

    result = modeld.celery.send_infer(app, "add_sub", {"INPUT0": a, "INPUT1": b})
    outputs = result.get(timeout=5)                         # {"OUTPUT0": [[...]], ...}

    # or as canvas pieces, like any other signature:
    (modeld.celery.predict("linear", x, app=app) | summarize.s()).apply_async()
    group(modeld.celery.predict("linear", chunk, app=app) for chunk in chunks).apply_async()

The tasks (what modeld answers; the contract is docs/design/celery.md):

- ``modeld.infer(model, inputs, version=None, outputs=None)`` -> ``{output name: nested list}``
- ``modeld.predict(model, data, version=None)`` -> the one output's nested list
- ``modeld.train(model, inputs, targets, version=None)`` ->
  ``{"loss": float, "step": int, "checkpoint_step": int}``

Tensors travel as JSON nested lists (the nesting is the shape, batch dimension included); the
builders here turn numpy arrays into such lists and ``bytes`` into ``{"b64": ...}``. A failure
comes back from ``AsyncResult.get()`` as the exception a local call would raise: ValueError
(bad input), LookupError (unknown model or version), celery.exceptions.TimeLimitExceeded
(the time limit ran out first), NotImplementedError, PermissionError, or RuntimeError (the
rest; the message starts with modeld's status code, e.g. ``UNAVAILABLE: ...``).

This module needs Celery (``pip install "modeld[celery]"``); ``import modeld`` never loads it.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from celery import Signature
except ImportError as _error:  # pragma: no cover - exercised in a fresh interpreter
    raise ImportError(
        'modeld.celery needs Celery, which modeld does not install by itself: '
        'pip install "modeld[celery]"'
    ) from _error

__all__ = [
    "DEFAULT_QUEUE",
    "TASK_ROUTES",
    "INFER",
    "PREDICT",
    "TRAIN",
    "routes",
    "infer",
    "predict",
    "train",
    "send_infer",
    "to_wire",
]

DEFAULT_QUEUE = "modeld"
"""The queue modeld consumes unless started with another ``--celery-queue``."""

INFER = "modeld.infer"
PREDICT = "modeld.predict"
TRAIN = "modeld.train"


def routes(queue: str = DEFAULT_QUEUE) -> dict[str, dict[str, str]]:
    """A ``task_routes`` setting that sends every ``modeld.*`` task to ``queue``.

    Use it when modeld runs with ``--celery-queue=queue``::

        app.conf.task_routes = {**modeld.celery.routes("models"), **other_routes}
    """
    _check_queue(queue)
    return {"modeld.*": {"queue": queue}}


TASK_ROUTES: dict[str, dict[str, str]] = {"modeld.*": {"queue": DEFAULT_QUEUE}}
"""``app.conf.task_routes`` for a modeld on the default queue: ``{"modeld.*": {"queue":
"modeld"}}``. It makes ``app.send_task("modeld.infer", ...)`` go to modeld without naming the
queue at each call (the signatures of this module name it anyway)."""


def infer(model: str, inputs: Mapping[str, Any], *, version: int | str | None = None,
          outputs: Sequence[str] | None = None, app: Any = None,
          queue: str | None = None) -> Signature:
    """The signature of ``modeld.infer(model, inputs, version=None, outputs=None)``.

    Args:
        model: the model's name.
        inputs: input name -> tensor: a numpy array, a nested list (the nesting is the shape,
            batch dimension included), ``bytes`` for BYTES elements.
        version: None (the newest ready version), an integer >= 1 or a string of digits.
        outputs: the output names to answer (None: every output, in config order).
        app: the Celery app that sends it (None: ``celery.current_app`` at send time).
        queue: the queue modeld consumes (None: ``"modeld"``).

    Returns:
        A ``celery.Signature`` for task ``"modeld.infer"`` with args ``(model, inputs)``,
        ``version`` and ``outputs`` as kwargs only when given, and options ``{"queue": ...}``.
        Its result is ``{output name: nested list}``.

    Raises:
        TypeError, ValueError: an argument that modeld would refuse anyway.
    """
    _check_model(model)
    kwargs: dict[str, Any] = {}
    if version is not None:
        kwargs["version"] = _check_version(version)
    if outputs is not None:
        kwargs["outputs"] = _check_outputs(outputs)
    return _signature(INFER, (model, _tensors("inputs", inputs)), kwargs, app, queue)


def predict(model: str, data: Any, *, version: int | str | None = None, app: Any = None,
            queue: str | None = None) -> Signature:
    """The signature of ``modeld.predict(model, data, version=None)``, for a model with one
    input and one output.

    Args:
        model: the model's name.
        data: the input tensor: a numpy array or a nested list, batch dimension included
            (``[[1, 2, 3]]`` is one row of three).
        version, app, queue: as for :func:`infer`.

    Returns:
        A ``celery.Signature`` for task ``"modeld.predict"`` with args ``(model, data)``; its
        result is the output's nested list.

    Raises:
        TypeError, ValueError: an argument that modeld would refuse anyway.
    """
    _check_model(model)
    kwargs: dict[str, Any] = {}
    if version is not None:
        kwargs["version"] = _check_version(version)
    return _signature(PREDICT, (model, _tensor("data", data)), kwargs, app, queue)


def train(model: str, inputs: Mapping[str, Any], targets: Mapping[str, Any], *,
          version: int | str | None = None, app: Any = None,
          queue: str | None = None) -> Signature:
    """The signature of ``modeld.train(model, inputs, targets, version=None)``: one step of
    online learning (docs/online-learning.md).

    Args:
        model: the trainable model's name.
        inputs: input name -> tensor, as for :func:`infer`.
        targets: target name -> tensor, the same way.
        version, app, queue: as for :func:`infer`.

    Returns:
        A ``celery.Signature`` for task ``"modeld.train"`` with args ``(model, inputs,
        targets)``; its result is ``{"loss": float, "step": int, "checkpoint_step": int}``.

    Raises:
        TypeError, ValueError: an argument that modeld would refuse anyway.
    """
    _check_model(model)
    kwargs: dict[str, Any] = {}
    if version is not None:
        kwargs["version"] = _check_version(version)
    args = (model, _tensors("inputs", inputs), _tensors("targets", targets))
    return _signature(TRAIN, args, kwargs, app, queue)


def send_infer(app: Any, model: str, inputs: Mapping[str, Any], *,
               version: int | str | None = None, outputs: Sequence[str] | None = None,
               queue: str | None = None, **options: Any) -> Any:
    """Sends ``modeld.infer`` through ``app`` now; returns its ``celery.result.AsyncResult``.

    The same as ``infer(model, inputs, ..., app=app).apply_async(**options)``. ``options`` are
    ``apply_async``'s: ``countdown``, ``eta``, ``expires``, ``time_limit`` (modeld's deadline),
    ``task_id``, ``link``, ... ``result.get(timeout=...)`` waits for the outputs.
    """
    signature = infer(model, inputs, version=version, outputs=outputs, app=app, queue=queue)
    return signature.apply_async(**options)


def to_wire(value: Any) -> Any:
    """``value`` as the task's JSON wants a tensor: numpy arrays and scalars as nested lists
    and numbers (``.tolist()``), tuples as lists, ``bytes`` as ``{"b64": base64}``; lists are
    converted element by element, anything else is returned as is."""
    numpy = sys.modules.get("numpy")  # not imported: no value can be an ndarray
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


# --- internals -----------------------------------------------------------------------------


def _signature(name: str, args: tuple, kwargs: dict, app: Any, queue: str | None) -> Signature:
    if queue is not None:
        _check_queue(queue)
    return Signature(name, args=args, kwargs=kwargs,
                     options={"queue": queue or DEFAULT_QUEUE}, app=app)


def _check_queue(queue: Any) -> None:
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue must be a non-empty string, not {queue!r}")


def _check_model(model: Any) -> None:
    if not isinstance(model, str):
        raise TypeError(f"model must be a str (the model's name), not {type(model).__name__}")
    if not model:
        raise ValueError("model must be a non-empty string")


def _check_version(version: Any) -> int | str:
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise TypeError(f"version must be an int, a string of digits or None, not "
                        f"{type(version).__name__}")
    if isinstance(version, int) and version < 1:
        raise ValueError(f"version must be >= 1, not {version}")
    if isinstance(version, str) and not (version.isascii() and version.isdigit()):
        raise ValueError(f"version must be a string of digits, not {version!r}")
    return version


def _check_outputs(outputs: Any) -> list[str]:
    if isinstance(outputs, str) or not isinstance(outputs, (list, tuple)):
        raise TypeError("outputs must be a list of output names (or None for every output), "
                        f"not {type(outputs).__name__}")
    for name in outputs:
        if not isinstance(name, str) or not name:
            raise TypeError(f"outputs must hold non-empty strings, not {name!r}")
    return list(outputs)


def _tensors(what: str, tensors: Any) -> dict[str, Any]:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"{what} must be a dict of tensor name -> tensor, not "
                        f"{type(tensors).__name__}")
    wire = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what} names must be non-empty strings, not {name!r}")
        wire[name] = _tensor(f"{what}[{name!r}]", tensor)
    return wire


def _tensor(what: str, tensor: Any) -> list:
    wire = to_wire(tensor)
    if not isinstance(wire, list):
        raise TypeError(f"{what} must be a numpy array or a nested list (batch dimension "
                        f"included), not {type(tensor).__name__}")
    return wire
