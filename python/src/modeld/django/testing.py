"""Test helpers: answer a model with a Python function instead of the server.

``override_model(model, fn, using=None, *, output=None, train=None, metadata=None)`` works as a
context manager, as a decorator of functions (sync or async) and test methods, and as a
decorator of ``unittest.TestCase`` classes (active around each test, like
``override_settings``)::

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

With ``metadata=`` the fake also refuses what modeld would refuse. It is the model's metadata:
a dict shaped as :meth:`modeld.Client.metadata` returns it (``{"inputs": [{"name", "datatype",
"shape"}, ...], "outputs": [...]}``, shapes in full with -1 for any size, plus an optional
``"max_batch_size"``, which KServe metadata does not carry), or ``recorded(path)``: read from
the JSON file at ``path``, or, where there is none yet, asked once of the alias's server
(``using``, else "default") and written there, to commit with the tests; recorded metadata
carries the ``max_batch_size`` of the model's config (:meth:`modeld.Client.model_config`).
Then:

* ``predict``, ``infer`` (and ``train``'s inputs) are checked as the client and the server
  check them, and refused with the :class:`modeld.InvalidInput` and message the server gives:
  a missing or unknown input, a wrong datatype (after the client's safe casts: numbers to a
  float input, integers that fit to an integer one; never floats to integers or numbers to
  BOOL), a wrong rank or fixed dimension, ``outputs=`` naming an output the model does not
  have; ``predict`` of a model with several inputs or outputs. With ``max_batch_size`` also a
  batch of 0 or over it, and inputs that disagree on the batch size.
* ``fn`` is called with the inputs as the server gets them (cast to the declared datatype).
* ``fn``'s outputs must be the model's: an output it does not declare, a missing one (every
  declared output when ``infer`` asks for all), a datatype that the same safe casts do not
  turn into the declared one, or a shape that does not fit raise AssertionError naming the
  fake's mistake (the test fails). An array answers ``infer`` of a one-output model.
* ``metadata(model)`` of the alias's client answers the given metadata.

``version`` is ignored: the metadata is that of the version the test means.

The value bound by ``with ... as fake`` (and passed as ``kwarg_name`` / set as ``attr_name``
when given) records every call's argument in ``fake.calls``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.test.utils import TestContextDecorator

from . import _overrides
from ._metadata import FakeMetadata, Recorded, parse, recorded
from ._overrides import Override
from .conf import DEFAULT_ALIAS

__all__ = ["override_model", "recorded", "Override"]


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
        metadata: Mapping[str, Any] | Recorded | None = None,
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
        # A dict is checked now; recorded(path) when first entered (it may ask the server).
        self.metadata = metadata
        self._checks: FakeMetadata | None = None
        if metadata is not None and not isinstance(metadata, Recorded):
            self._checks = parse(model, metadata)
        self._entered: list[Override] = []
        super().__init__(attr_name=attr_name, kwarg_name=kwarg_name)

    def enable(self) -> Override:
        if self._checks is None and isinstance(self.metadata, Recorded):
            alias = self.using if self.using is not None else DEFAULT_ALIAS
            self._checks = parse(self.model, self.metadata.load(self.model, alias))
        override = Override(self.model, self.fn, using=self.using, output=self.output,
                            train=self.train, checks=self._checks)
        self._entered.append(_overrides.push(override))
        return override

    def disable(self) -> None:
        _overrides.remove(self._entered.pop())
