"""The registry behind :func:`modeld.django.testing.override_model`.

Kept apart from ``testing`` so the clients can consult it without importing ``django.test``.
Process-wide (like ``override_settings``), so a view run on another thread (the test client's
async views, a live server) sees the overrides of the test that runs it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._common import ClientBase
from .._training import TrainResult
from ._metadata import FakeMetadata


@dataclass(eq=False)
class Override:
    """One active override: calls for ``model`` on alias ``using`` (any alias when None) go to
    ``fn`` (and training steps to ``train``). With ``checks``, the model's metadata, calls are
    checked against it first, as the client and the server check them."""

    model: str
    fn: Callable[[Any], Any]
    using: str | None = None
    output: str | None = None
    checks: FakeMetadata | None = None
    #: what fn was called with, call after call (an array, or a dict of arrays)
    calls: list[Any] = field(default_factory=list)
    train: Callable[[Any, Any], Any] | None = None
    #: what train was called with, step after step: (inputs, targets), dicts of arrays
    train_calls: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = field(
        default_factory=list)

    def matches(self, alias: str, model: str) -> bool:
        return self.model == model and (self.using is None or self.using == alias)

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The model's metadata given to the override (None: none given)."""
        return self.checks.data if self.checks is not None else None

    # --- the two call styles -----------------------------------------------------------------

    def call_predict(self, x: Any) -> Any:
        """``fn(x)`` with x as an array; its raw result (maybe awaitable) goes to
        :meth:`predict_result`."""
        if self.checks is not None:
            name, _ = ClientBase._single(self.checks.spec)  # InvalidInput, as the client's
            array = self.checks.check_inputs({name: x})[name]
        else:
            array = np.asarray(x)
        self.calls.append(array)
        return self.fn(array)

    def predict_result(self, result: Any) -> np.ndarray:
        if self.checks is not None:
            (output,) = self.checks.spec.outputs
            if not isinstance(result, Mapping):
                result = {output.name: result}
            return self.checks.check_outputs(self.model, result, [output.name])[output.name]
        if isinstance(result, Mapping):
            if len(result) != 1:
                raise TypeError(
                    f"override_model({self.model!r}): fn returned a dict with {len(result)} "
                    "outputs to predict(), which needs exactly one")
            (result,) = result.values()
        return np.asarray(result)

    def call_infer(self, inputs: Mapping[str, Any], outputs: Any = None) -> Any:
        """``fn(array)`` for one input, ``fn(dict of arrays)`` for several."""
        if self.checks is not None:
            arrays = self.checks.check_inputs(inputs)
            self.checks.check_requested(outputs)
        else:
            arrays = {name: np.asarray(value) for name, value in inputs.items()}
        argument: Any = arrays
        if len(arrays) == 1:
            (argument,) = arrays.values()
        self.calls.append(argument)
        return self.fn(argument)

    def infer_result(self, result: Any, outputs: Any = None) -> dict[str, np.ndarray]:
        if isinstance(result, Mapping):
            named = {str(name): np.asarray(value) for name, value in result.items()}
        elif self.output is not None:
            named = {self.output: np.asarray(result)}
        elif self.checks is not None and len(self.checks.spec.outputs) == 1:
            named = {self.checks.spec.outputs[0].name: np.asarray(result)}
        else:
            raise TypeError(
                f"override_model({self.model!r}): fn returned an array to infer(), which "
                f"answers a dict; return a dict, or name the output with "
                f"override_model({self.model!r}, fn, output='NAME')")
        if self.checks is not None:
            wanted = self.checks.check_requested(outputs)
            return self.checks.check_outputs(self.model, named, wanted)
        if outputs is None:
            return named
        wanted = [outputs] if isinstance(outputs, str) else list(outputs)
        missing = [name for name in wanted if name not in named]
        if missing:
            from modeld.errors import InvalidInput

            raise InvalidInput(
                f"override_model({self.model!r}): requested outputs {missing} are not among "
                f"fn's outputs {sorted(named)}")
        return {name: named[name] for name in wanted}

    # --- training steps ----------------------------------------------------------------------

    def call_train(self, inputs: Mapping[str, Any], targets: Mapping[str, Any]) -> Any:
        """``train(inputs, targets)``, both dicts of arrays; its raw result (maybe awaitable)
        goes to :meth:`train_result`."""
        if self.train is None:
            raise TypeError(
                f"override_model({self.model!r}) answers predict() and infer() only; give it "
                f"train=fn to answer train() too (fn(inputs, targets) returns the loss)")
        if self.checks is not None:
            checked = self.checks.check_inputs(inputs)
        else:
            checked = {str(n): np.asarray(v) for n, v in inputs.items()}
        arrays = (checked, {str(n): np.asarray(v) for n, v in targets.items()})
        self.train_calls.append(arrays)
        return self.train(*arrays)

    def train_result(self, result: Any, version: Any = None) -> TrainResult:
        """A TrainResult as it is; a number as the loss of step ``len(train_calls)`` of
        ``version`` (1 when none was asked for), never checkpointed."""
        if isinstance(result, TrainResult):
            return result
        if isinstance(result, bool) or not isinstance(result, (int, float, np.number)):
            raise TypeError(
                f"override_model({self.model!r}): train returned {type(result).__name__}; "
                "return the loss (a number) or a modeld.TrainResult")
        return TrainResult(model=self.model, version=int(version) if version is not None else 1,
                           step=len(self.train_calls), loss=float(result), checkpoint_step=0)


_lock = threading.Lock()
_active: list[Override] = []


def _reset_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


def push(override: Override) -> Override:
    with _lock:
        _active.append(override)
    return override


def remove(override: Override) -> None:
    """Removes exactly this override (it need not be the innermost one)."""
    with _lock:
        for index in range(len(_active) - 1, -1, -1):
            if _active[index] is override:
                del _active[index]
                return


def find(alias: str, model: str) -> Override | None:
    """The innermost active override for ``model`` on ``alias``, if any."""
    with _lock:
        for override in reversed(_active):
            if override.matches(alias, model):
                return override
    return None


def active() -> list[Override]:
    """A copy of the active overrides, outermost first."""
    with _lock:
        return list(_active)
