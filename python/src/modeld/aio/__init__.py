"""The asyncio client of modeld: :class:`modeld.Client` with coroutine methods.

    import modeld.aio

    async with modeld.aio.Client("grpc://127.0.0.1:8001") as client:
        y = await client.predict("linear", [[1.0, 2.0, 3.0]])

gRPC uses grpc.aio; HTTP uses a small built-in HTTP/1.1 client (no extra dependency) with a
pool of keep-alive connections; Redis uses redis.asyncio (``pip install "modeld[redis]"``).
One client may be used from several event loops, one after the other or at once (Django runs
an async view of a WSGI site in a fresh loop for each request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from .._codec import ModelSpec
from .._common import ClientBase, Deadline, Endpoint
from .._training import TrainResult, train_id
from ..errors import DeadlineExceeded, InvalidInput, ModeldError, ModelNotFound, Unavailable

__all__ = ["Client"]

T = TypeVar("T")


def _transport(endpoint: Endpoint) -> Any:
    if endpoint.scheme == "grpc":
        from ._grpc import AioGrpcTransport

        return AioGrpcTransport(endpoint)
    if endpoint.scheme == "redis":
        from ._redis import AioRedisTransport

        return AioRedisTransport(endpoint)
    from ._http import AioHttpTransport

    return AioHttpTransport(endpoint)


class Client(ClientBase):
    """The asyncio client of one modeld server; the arguments are those of
    :class:`modeld.Client`, and every method is a coroutine.

    Args:
        url: ``grpc://host:port``, ``http://host:port`` or ``redis://...`` (see
            :class:`modeld.Client`).
        timeout: default limit in seconds of each call, retries included (None: no limit).
        retries: how many times a call that met :class:`~modeld.Unavailable` is tried again.
        backoff: the first wait before a retry in seconds; it doubles each retry (with jitter).
    """

    _make_transport = staticmethod(_transport)

    # --- plumbing ---------------------------------------------------------------------------

    async def _retrying(
        self,
        what: str,
        call: Callable[[float | None], Awaitable[T]],
        deadline: Deadline,
        *,
        idempotent: bool = True,
    ) -> T:
        """Awaits call(seconds left), retrying on Unavailable with backoff within the deadline;
        a call that is not `idempotent` runs once."""
        retry = 0
        while True:
            if self._closed:
                raise ModeldError(f"{what}: the client is closed", "CLOSED")
            remaining = deadline.check(what)
            try:
                return await call(remaining)
            except DeadlineExceeded as error:
                raise self._timed_out(what, error, deadline) from None
            except Unavailable:
                wait = self._policy.delay(retry, deadline) if idempotent else None
                if wait is None:
                    raise
                await asyncio.sleep(wait)
                retry += 1

    async def _spec(self, model: str, version: int | str | None, deadline: Deadline) -> ModelSpec:
        key = self._key(model, version)
        spec = self._specs.get(key)
        if spec is None:
            spec = await self._retrying(
                f"metadata of model '{model}'",
                lambda t: self._transport.model_metadata(key[0], key[1], t),
                deadline,
            )
            self._specs[key] = spec
        return spec

    async def _infer(
        self,
        model: str,
        inputs: Mapping[str, ArrayLike],
        version: int | str | None,
        outputs: Sequence[str] | None,
        deadline: Deadline,
    ) -> dict[str, np.ndarray]:
        key = self._key(model, version)
        spec = await self._spec(model, version, deadline)
        tensors, names = self._prepare(spec, inputs, outputs)
        try:
            return await self._retrying(
                f"infer on model '{model}'",
                lambda t: self._transport.infer(key[0], key[1], tensors, names, t),
                deadline,
            )
        except (InvalidInput, ModelNotFound):
            self._forget(key)
            raise

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
        return await self._infer(model, inputs, version, outputs, self._deadline(timeout))

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
        deadline = self._deadline(timeout)
        input_name, output_name = self._single(await self._spec(model, version, deadline))
        outputs = await self._infer(model, {input_name: x}, version, [output_name], deadline)
        return outputs[output_name]

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
        deadline = self._deadline(timeout)
        request_id = train_id(id)
        key = self._key(model, version)
        spec = await self._spec(model, version, deadline)
        tensors, target_tensors = self._prepare_train(spec, inputs, targets)
        try:
            return await self._retrying(
                f"train on model '{model}'",
                lambda t: self._transport.train(
                    key[0], key[1], request_id, tensors, target_tensors, t
                ),
                deadline,
                idempotent=False,
            )
        except (InvalidInput, ModelNotFound):
            self._forget(key)
            raise

    async def live(self, *, timeout: float | None = None) -> bool:
        """Whether the server is live. Raises Unavailable when it cannot be reached."""
        return await self._retrying("live", self._transport.live, self._deadline(timeout))

    async def ready(self, *, timeout: float | None = None) -> bool:
        """Whether the server is ready. Raises Unavailable when it cannot be reached."""
        return await self._retrying("ready", self._transport.ready, self._deadline(timeout))

    async def model_ready(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> bool:
        """Whether `model` (at `version`) is ready; False for an unknown model."""
        name, v = self._key(model, version)
        return await self._retrying(
            f"model_ready of model '{model}'",
            lambda t: self._transport.model_ready(name, v, t),
            self._deadline(timeout),
        )

    async def metadata(
        self,
        model: str | None = None,
        version: int | str | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Server metadata, or the model's (see :meth:`modeld.Client.metadata`)."""
        deadline = self._deadline(timeout)
        if model is None:
            if version is not None:
                raise ValueError("a version needs a model")
            return await self._retrying(
                "server metadata", self._transport.server_metadata, deadline
            )
        key = self._key(model, version)
        self._forget(key)
        return (await self._spec(model, version, deadline)).as_dict()

    async def close(self) -> None:
        """Closes the connections; the client cannot be used afterwards."""
        self._closed = True
        await self._transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
