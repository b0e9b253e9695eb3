"""The asyncio client of modeld: :class:`modeld.Client` with coroutine methods.

    import modeld.aio

    async with modeld.aio.Client("grpc://127.0.0.1:8001") as client:
        y = await client.predict("linear", [[1.0, 2.0, 3.0]])

gRPC uses grpc.aio; HTTP uses a small built-in HTTP/1.1 client (no extra dependency) with a
pool of keep-alive connections; Redis uses redis.asyncio (``pip install "modeld[redis]"``),
AMQP aio-pika (``pip install "modeld[amqp]"``).
One client may be used from several event loops, one after the other or at once (Django runs
an async view of a WSGI site in a fresh loop for each request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from .. import _calls
from .._common import ClientBase, Endpoint
from .._status import ModelStatus
from .._training import TrainResult

__all__ = ["Client"]

T = TypeVar("T")


def _transport(endpoint: Endpoint) -> Any:
    if endpoint.scheme == "grpc":
        from ._grpc import AioGrpcTransport

        return AioGrpcTransport(endpoint)
    if endpoint.scheme == "redis":
        from ._redis import AioRedisTransport

        return AioRedisTransport(endpoint)
    if endpoint.scheme == "amqp":
        from ._amqp import AioAmqpTransport

        return AioAmqpTransport(endpoint)
    from ._http import AioHttpTransport

    return AioHttpTransport(endpoint)


class Client(ClientBase):
    """The asyncio client of one modeld server; the arguments are those of
    :class:`modeld.Client`, and every method is a coroutine.

    Args:
        url: ``grpc://host:port``, ``http://host:port``, ``redis://...`` or ``amqp[s]://...``
            (see :class:`modeld.Client`).
        timeout: default limit in seconds of each call, retries included (None: no limit).
        retries: how many times a call that met :class:`~modeld.Unavailable` is tried again.
        backoff: the first wait before a retry in seconds; it doubles each retry (with jitter).
    """

    _make_transport = staticmethod(_transport)

    # --- plumbing ---------------------------------------------------------------------------

    async def _run(self, call: _calls.Call[T]) -> T:
        """Runs a call of modeld._calls to its end, awaiting each step of I/O it yields;
        returns its result or raises its error (as modeld.Client._run, with awaits)."""
        try:
            step = next(call)
            while True:
                try:
                    answer = await step.perform(self._transport, asyncio.sleep)
                except BaseException as error:  # thrown in (cancellation too): the call decides
                    step = call.throw(error)
                else:
                    step = call.send(answer)
        except StopIteration as done:
            return done.value

    # --- API --------------------------------------------------------------------------------

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, ArrayLike],
        *,
        version: int | str | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs `model` on `inputs` and returns its outputs by name (see
        :meth:`modeld.Client.infer`)."""
        return await self._run(_calls.infer(self, model, inputs, version, outputs, timeout))

    async def predict(
        self,
        model: str,
        x: ArrayLike,
        *,
        version: int | str | None = None,
        timeout: float | None = None,
    ) -> np.ndarray:
        """Runs a model with one input and one output on `x` and returns its output (see
        :meth:`modeld.Client.predict`)."""
        return await self._run(_calls.predict(self, model, x, version, timeout))

    async def train(
        self,
        model: str,
        inputs: Mapping[str, ArrayLike],
        targets: Mapping[str, ArrayLike],
        *,
        version: int | str | None = None,
        timeout: float | None = None,
        id: str | None = None,  # noqa: A002 (the protocol's name)
    ) -> TrainResult:
        """Runs one training step of `model` on `inputs` against `targets` (see
        :meth:`modeld.Client.train`). Never retried: a step sent twice could be applied
        twice."""
        return await self._run(_calls.train(self, model, inputs, targets, version, timeout, id))

    async def live(self, *, timeout: float | None = None) -> bool:
        """Whether the server is live. Raises Unavailable when it cannot be reached."""
        return await self._run(_calls.live(self, timeout))

    async def ready(self, *, timeout: float | None = None) -> bool:
        """Whether the server is ready. Raises Unavailable when it cannot be reached."""
        return await self._run(_calls.ready(self, timeout))

    async def model_ready(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> bool:
        """Whether `model` (at `version`) is ready; False for an unknown model."""
        return await self._run(_calls.model_ready(self, model, version, timeout))

    async def model_status(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> ModelStatus:
        """The state of `model` (at `version`) and why it is not ready (see
        :meth:`modeld.Client.model_status`)."""
        return await self._run(_calls.model_status(self, model, version, timeout))

    async def models(self, *, timeout: float | None = None) -> list[ModelStatus]:
        """Every model and version the server knows, with state and reason (see
        :meth:`modeld.Client.models`)."""
        return await self._run(_calls.models(self, timeout))

    async def metadata(
        self,
        model: str | None = None,
        version: int | str | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Server metadata, or the model's (see :meth:`modeld.Client.metadata`)."""
        return await self._run(_calls.metadata(self, model, version, timeout))

    async def model_config(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The model's configuration as a dict (see :meth:`modeld.Client.model_config`)."""
        return await self._run(_calls.model_config(self, model, version, timeout))

    async def close(self) -> None:
        """Closes the connections; the client cannot be used afterwards."""
        self._closed = True
        await self._transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
