"""modeld for Django: per-process clients configured by ``settings.MODELD``.

Add ``"modeld.django"`` to ``INSTALLED_APPS`` (app label ``modeld``), then::

    from modeld.django import clients, predict, train

    y = predict("linear", [[1.0, 2.0, 3.0]])                  # alias "default"
    y = clients["fraud"].predict("scorer", x, timeout=0.5)    # another alias
    result = train("scorer", {"x": x}, {"y": label})          # one training step, not retried

    async def view(request):
        y = await apredict("linear", [[1.0, 2.0, 3.0]])

See :mod:`modeld.django.conf` for the setting, :mod:`modeld.django.checks` for the system
checks, :mod:`modeld.django.views` for the health view and the staff status page, and
:mod:`modeld.django.testing` for ``override_model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._training import TrainResult
from .conf import DEFAULT_ALIAS
from .handler import (
    AliasClient,
    AliasDoesNotExist,
    AsyncAliasClient,
    AsyncClientHandler,
    ClientHandler,
)

__all__ = [
    "clients",
    "aclients",
    "predict",
    "infer",
    "apredict",
    "ainfer",
    "train",
    "atrain",
    "AliasClient",
    "AsyncAliasClient",
    "AliasDoesNotExist",
    "DEFAULT_ALIAS",
]

#: ``clients[alias]`` -> :class:`AliasClient`, one per alias and process.
clients = ClientHandler()
#: ``aclients[alias]`` -> :class:`AsyncAliasClient`, one per alias and running event loop.
aclients = AsyncClientHandler()


def predict(model: str, x: Any, *, using: str = DEFAULT_ALIAS, **kwargs: Any) -> np.ndarray:
    """``clients[using].predict(model, x, **kwargs)`` (``version=``, ``timeout=``)."""
    return clients[using].predict(model, x, **kwargs)


def infer(
    model: str, inputs: Mapping[str, Any], *, using: str = DEFAULT_ALIAS, **kwargs: Any
) -> dict[str, np.ndarray]:
    """``clients[using].infer(model, inputs, **kwargs)``: ``version=``, ``outputs=``,
    ``timeout=``."""
    return clients[using].infer(model, inputs, **kwargs)


async def apredict(model: str, x: Any, *, using: str = DEFAULT_ALIAS, **kwargs: Any) -> np.ndarray:
    """``await aclients[using].predict(model, x, **kwargs)``."""
    return await aclients[using].predict(model, x, **kwargs)


async def ainfer(
    model: str, inputs: Mapping[str, Any], *, using: str = DEFAULT_ALIAS, **kwargs: Any
) -> dict[str, np.ndarray]:
    """``await aclients[using].infer(model, inputs, **kwargs)``."""
    return await aclients[using].infer(model, inputs, **kwargs)


def train(
    model: str,
    inputs: Mapping[str, Any],
    targets: Mapping[str, Any],
    *,
    using: str = DEFAULT_ALIAS,
    **kwargs: Any,
) -> TrainResult:
    """``clients[using].train(model, inputs, targets, **kwargs)``: ``version=``, ``timeout=``,
    ``id=``. One training step, never retried (see :meth:`modeld.Client.train`)."""
    return clients[using].train(model, inputs, targets, **kwargs)


async def atrain(
    model: str,
    inputs: Mapping[str, Any],
    targets: Mapping[str, Any],
    *,
    using: str = DEFAULT_ALIAS,
    **kwargs: Any,
) -> TrainResult:
    """``await aclients[using].train(model, inputs, targets, **kwargs)``."""
    return await aclients[using].train(model, inputs, targets, **kwargs)
