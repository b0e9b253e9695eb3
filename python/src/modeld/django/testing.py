"""Test helpers: answer a model with a Python function instead of the server.

``override_model(model, fn, using=None, *, output=None, train=None)`` works as a context
manager, as a decorator of functions (sync or async) and test methods, and as a decorator of
``unittest.TestCase`` classes (active around each test, like ``override_settings``)::

    from modeld.django.testing import override_model

    @override_model("mlp", lambda x: np.zeros((len(x), 10)))
    class PageTests(SimpleTestCase):
        ...

    with override_model("linear", lambda x: x.sum(axis=1, keepdims=True)) as fake:
        response = self.client.post(...)
    assert len(fake.calls) == 1

While it is active, calls for ``model`` through ``modeld.django.clients`` / ``aclients`` and the
shortcuts (``predict``, ``infer``, ``apredict``, ``ainfer``; ``train``, ``atrain``) go to ``fn``
(training steps to ``train``) and never reach the server (no client is even created for them);
other models still do. ``using`` limits it to one alias (None: every alias). Overrides nest:
the innermost one for a model wins, and each is removed again on exit. They are process-wide,
so views run on other threads see them.

The exact rule for calling ``fn``:

* ``predict(model, x)`` calls ``fn(numpy.asarray(x))``. Its result goes through
  ``numpy.asarray``; a dict with exactly one entry is accepted too (its value is used).
* ``infer(model, inputs)`` converts each input with ``numpy.asarray``. With **one** input it
  calls ``fn(array)`` -- so one ``fn(x)`` serves ``predict`` and ``infer`` of a single-input
  model -- and with **several** it calls ``fn({name: array, ...})``. A dict result is the
  answer (each value through ``numpy.asarray``); any other result is wrapped as
  ``{output: result}``, which needs the ``output=`` argument (else TypeError). ``outputs=``
  of ``infer`` keeps only those names (a missing one raises :class:`modeld.InvalidInput`).
* ``version`` and ``timeout`` are ignored (but for the version a training step's result
  names). ``fn`` (and ``train``) may raise a :class:`modeld.ModeldError`
  (``modeld.Unavailable("down")``...) to test error handling.
* ``train(model, inputs, targets)`` calls ``train(inputs_dict, targets_dict)`` (each value
  through ``numpy.asarray``), which returns the loss, or a whole :class:`modeld.TrainResult`.
  A loss becomes ``TrainResult(model, version or 1, step, loss, checkpoint_step=0)`` with step
  1 for the override's first step, 2 for its second... Without ``train=`` a training step of
  the model is a TypeError (it never reaches the server). Steps are recorded in
  ``fake.train_calls`` as ``(inputs, targets)`` pairs.
* Through the async API ``fn`` (and ``train``) may also be a coroutine function; through the
  sync API that is a TypeError.

The value bound by ``with ... as fake`` (and passed as ``kwarg_name`` / set as ``attr_name``
when given) records every call's argument in ``fake.calls``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test.utils import TestContextDecorator

from . import _overrides
from ._overrides import Override

__all__ = ["override_model", "Override"]


class override_model(TestContextDecorator):  # noqa: N801 (named like override_settings)
    """Answers ``model`` with ``fn`` while active; see the module docstring for the rule."""

    def __init__(
        self,
        model: str,
        fn: Callable[[Any], Any],
        using: str | None = None,
        *,
        output: str | None = None,
        train: Callable[[Any, Any], Any] | None = None,
        attr_name: str | None = None,
        kwarg_name: str | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise TypeError(f"override_model: model must be a non-empty string, not {model!r}")
        if not callable(fn):
            raise TypeError(f"override_model({model!r}): fn must be callable, not {fn!r}")
        if train is not None and not callable(train):
            raise TypeError(f"override_model({model!r}): train must be callable, not {train!r}")
        self.model = model
        self.fn = fn
        self.using = using
        self.output = output
        self.train = train
        self._entered: list[Override] = []
        super().__init__(attr_name=attr_name, kwarg_name=kwarg_name)

    def enable(self) -> Override:
        override = Override(self.model, self.fn, using=self.using, output=self.output,
                            train=self.train)
        self._entered.append(_overrides.push(override))
        return override

    def disable(self) -> None:
        _overrides.remove(self._entered.pop())
