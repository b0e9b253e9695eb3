"""Per-process modeld clients, one per ``MODELD`` alias, created lazily.

:data:`modeld.django.clients` (sync) and :data:`modeld.django.aclients` (asyncio) work like
``django.db.connections``: ``clients["default"]`` is the same object on every call in a
process, created on first use and safe to share between threads. The objects they hand out
wrap a :class:`modeld.Client` (or :class:`modeld.aio.Client`): ``predict``, ``infer`` and
``train`` first consult :func:`modeld.django.testing.override_model` (and so does ``metadata``,
for an override given the model's metadata), everything else goes to the client.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from .._redis_url import redact_url
from . import _overrides
from .conf import AliasSettings, load

if TYPE_CHECKING:
    import modeld
    import modeld.aio
    from modeld import TrainResult

# One lock for the handlers and the lazily created clients; replaced in a forked child, where
# a thread of the parent may have held it.
_lock = threading.RLock()


def _reset_lock_after_fork() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


class AliasDoesNotExist(ImproperlyConfigured, KeyError):
    """``clients[alias]`` for an alias that ``settings.MODELD`` does not define."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def create_client(
    config: AliasSettings, *, timeout: float | None = None, retries: int | None = None
) -> modeld.Client:
    """A new :class:`modeld.Client` for an alias (``timeout``/``retries`` override the setting)."""
    import modeld

    return modeld.Client(
        config.url,
        timeout=config.timeout if timeout is None else timeout,
        retries=config.retries if retries is None else retries,
        backoff=config.backoff,
        **config.security_kwargs(),
    )


def create_async_client(config: AliasSettings) -> modeld.aio.Client:
    """A new :class:`modeld.aio.Client` for an alias."""
    import modeld.aio

    return modeld.aio.Client(
        config.url,
        timeout=config.timeout,
        retries=config.retries,
        backoff=config.backoff,
        **config.security_kwargs(),
    )


class _AliasClientBase:
    def __init__(self, config: AliasSettings) -> None:
        self.config = config
        self._client: Any = None

    @property
    def alias(self) -> str:
        return self.config.alias

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def timeout(self) -> float:
        return self.config.timeout

    @property
    def models(self) -> tuple[str, ...]:
        """The models ``MODELD[alias]['MODELS']`` says this site expects."""
        return self.config.models

    def _create(self) -> Any:
        raise NotImplementedError

    @property
    def client(self) -> Any:
        """The wrapped modeld client, created on first use."""
        client = self._client
        if client is None:
            with _lock:
                if self._client is None:
                    self._client = self._create()
                client = self._client
        return client

    def __getattr__(self, name: str) -> Any:
        # Anything this wrapper does not define (metadata helpers the client may grow).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.client, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.alias!r} {redact_url(self.url)}>"


class AliasClient(_AliasClientBase):
    """The sync client of one alias: a :class:`modeld.Client` that honours ``override_model``."""

    def _create(self) -> modeld.Client:
        return create_client(self.config)

    def predict(
        self, model: str, x: Any, *, version: str | int | None = None,
        timeout: float | None = None,
    ) -> np.ndarray:
        """Runs a single-input, single-output model on ``x``; see :meth:`modeld.Client.predict`."""
        override = _overrides.find(self.alias, model)
        if override is not None:
            result = override.call_predict(x)
            _refuse_awaitable(result, model)
            return override.predict_result(result)
        return self.client.predict(model, x, version=version, timeout=timeout)

    def infer(
        self, model: str, inputs: Mapping[str, Any], *, version: str | int | None = None,
        outputs: Any = None, timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a model on named inputs; see :meth:`modeld.Client.infer`."""
        override = _overrides.find(self.alias, model)
        if override is not None:
            result = override.call_infer(inputs, outputs)
            _refuse_awaitable(result, model)
            return override.infer_result(result, outputs)
        return self.client.infer(model, inputs, version=version, outputs=outputs,
                                 timeout=timeout)

    def train(
        self, model: str, inputs: Mapping[str, Any], targets: Mapping[str, Any], *,
        version: str | int | None = None, timeout: float | None = None, id: str | None = None,
    ) -> TrainResult:
        """Runs one training step (never retried); see :meth:`modeld.Client.train`."""
        override = _overrides.find(self.alias, model)
        if override is not None:
            result = override.call_train(inputs, targets)
            _refuse_awaitable(result, model)
            return override.train_result(result, version)
        return self.client.train(model, inputs, targets, version=version, timeout=timeout,
                                 id=id)

    def live(self, *, timeout: float | None = None) -> bool:
        return self.client.live(timeout=timeout)

    def ready(self, *, timeout: float | None = None) -> bool:
        return self.client.ready(timeout=timeout)

    def model_ready(self, model: str, version: str | int | None = None, *,
                    timeout: float | None = None) -> bool:
        return self.client.model_ready(model, version, timeout=timeout)

    def metadata(self, model: str | None = None, version: str | int | None = None, *,
                 timeout: float | None = None) -> dict:
        faked = _faked_metadata(self.alias, model)
        if faked is not None:
            return faked
        return self.client.metadata(model, version, timeout=timeout)

    def close(self) -> None:
        """Closes the wrapped client; the next call opens a new one."""
        with _lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


class AsyncAliasClient(_AliasClientBase):
    """The asyncio client of one alias, for one event loop; honours ``override_model``.

    ``fn`` of an override may be a plain function or a coroutine function. The wrapped client
    is closed when its loop shuts down through ``asyncio.run`` (as each async view's loop
    does under WSGI): an async generator armed on first use closes it when the loop finalizes
    its async generators.
    """

    def __init__(self, config: AliasSettings) -> None:
        super().__init__(config)
        self._closer: Any = None

    def _create(self) -> modeld.aio.Client:
        return create_async_client(self.config)

    async def _close_with_loop(self) -> Any:
        try:
            yield
        finally:
            await self.close()

    async def _client_for_call(self) -> Any:
        """The wrapped client, with the closer armed in this loop."""
        client = self.client
        if self._closer is None:
            self._closer = self._close_with_loop()
            await self._closer.__anext__()  # first iteration: the loop now tracks it
        return client

    async def predict(
        self, model: str, x: Any, *, version: str | int | None = None,
        timeout: float | None = None,
    ) -> np.ndarray:
        override = _overrides.find(self.alias, model)
        if override is not None:
            result = override.call_predict(x)
            if inspect.isawaitable(result):
                result = await result
            return override.predict_result(result)
        client = await self._client_for_call()
        return await client.predict(model, x, version=version, timeout=timeout)

    async def infer(
        self, model: str, inputs: Mapping[str, Any], *, version: str | int | None = None,
        outputs: Any = None, timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        override = _overrides.find(self.alias, model)
        if override is not None:
            result = override.call_infer(inputs, outputs)
            if inspect.isawaitable(result):
                result = await result
            return override.infer_result(result, outputs)
        client = await self._client_for_call()
        return await client.infer(model, inputs, version=version, outputs=outputs,
                                  timeout=timeout)

    async def train(
        self, model: str, inputs: Mapping[str, Any], targets: Mapping[str, Any], *,
        version: str | int | None = None, timeout: float | None = None, id: str | None = None,
    ) -> TrainResult:
        override = _overrides.find(self.alias, model)
        if override is not None:
            result = override.call_train(inputs, targets)
            if inspect.isawaitable(result):
                result = await result
            return override.train_result(result, version)
        client = await self._client_for_call()
        return await client.train(model, inputs, targets, version=version, timeout=timeout,
                                  id=id)

    async def live(self, *, timeout: float | None = None) -> bool:
        return await (await self._client_for_call()).live(timeout=timeout)

    async def ready(self, *, timeout: float | None = None) -> bool:
        return await (await self._client_for_call()).ready(timeout=timeout)

    async def model_ready(self, model: str, version: str | int | None = None, *,
                          timeout: float | None = None) -> bool:
        client = await self._client_for_call()
        return await client.model_ready(model, version, timeout=timeout)

    async def metadata(self, model: str | None = None, version: str | int | None = None, *,
                       timeout: float | None = None) -> dict:
        faked = _faked_metadata(self.alias, model)
        if faked is not None:
            return faked
        return await (await self._client_for_call()).metadata(model, version, timeout=timeout)

    async def close(self) -> None:
        with _lock:
            client, self._client = self._client, None
        if client is not None:
            await client.close()


def _faked_metadata(alias: str, model: str | None) -> dict | None:
    """The metadata an active override_model(..., metadata=...) gives `model`, if any."""
    if model is None:
        return None
    override = _overrides.find(alias, model)
    if override is None or override.metadata is None:
        return None
    return copy.deepcopy(override.metadata)


def _refuse_awaitable(result: Any, model: str) -> None:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: no "coroutine was never awaited" warning
        raise TypeError(
            f"override_model({model!r}): fn is asynchronous; it can only answer the async "
            "API (aclients, apredict, ainfer, atrain)")


class _HandlerBase:
    def __init__(self) -> None:
        self._settings: dict[str, AliasSettings] | None = None

    @property
    def settings(self) -> dict[str, AliasSettings]:
        """The parsed ``MODELD`` setting (read once; :meth:`reset` reads it again)."""
        if self._settings is None:
            with _lock:
                if self._settings is None:
                    self._settings = load()
        return self._settings

    def config(self, alias: str) -> AliasSettings:
        try:
            return self.settings[alias]
        except KeyError:
            configured = ", ".join(repr(name) for name in self.settings) or "none"
            raise AliasDoesNotExist(
                f"The modeld alias {alias!r} is not in settings.MODELD "
                f"(configured: {configured})."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def __contains__(self, alias: object) -> bool:
        return alias in self.settings


class ClientHandler(_HandlerBase):
    """``clients[alias]``: one :class:`AliasClient` per alias and process."""

    def __init__(self) -> None:
        super().__init__()
        self._clients: dict[str, AliasClient] = {}

    def __getitem__(self, alias: str) -> AliasClient:
        client = self._clients.get(alias)
        if client is None:
            config = self.config(alias)
            with _lock:
                client = self._clients.setdefault(alias, AliasClient(config))
        return client

    def all(self) -> list[AliasClient]:
        """The client of every configured alias."""
        return [self[alias] for alias in self]

    def close_all(self) -> None:
        """Closes every client created so far (they reopen on next use)."""
        with _lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()

    def reset(self) -> None:
        """Closes the clients and forgets the settings (after ``MODELD`` changed)."""
        with _lock:
            clients, self._clients, self._settings = list(self._clients.values()), {}, None
        for client in clients:
            client.close()


class AsyncClientHandler(_HandlerBase):
    """``aclients[alias]``: one :class:`AsyncAliasClient` per alias and running event loop.

    An asyncio client belongs to the loop it first ran on. Under ASGI there is one loop per
    process, so one client per alias; under WSGI Django runs each async view in a fresh loop,
    and its clients are dropped once that loop is closed. Use it inside a coroutine.
    """

    def __init__(self) -> None:
        super().__init__()
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, AsyncAliasClient]
        ] = weakref.WeakKeyDictionary()

    def __getitem__(self, alias: str) -> AsyncAliasClient:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "modeld.django.aclients is for coroutines (no event loop is running); "
                "use modeld.django.clients in synchronous code") from None
        per_loop = self._loops.get(loop)
        client = per_loop.get(alias) if per_loop is not None else None
        if client is None:
            config = self.config(alias)
            with _lock:
                self._prune()
                per_loop = self._loops.setdefault(loop, {})
                client = per_loop.setdefault(alias, AsyncAliasClient(config))
        return client

    def _prune(self) -> None:
        for loop in [loop for loop in self._loops if loop.is_closed()]:
            del self._loops[loop]

    def loop_count(self) -> int:
        """How many event loops hold clients (after dropping those of closed loops)."""
        with _lock:
            self._prune()
            return len(self._loops)

    async def close_all(self) -> None:
        """Closes the clients of the running loop."""
        with _lock:
            clients = list(self._loops.pop(asyncio.get_running_loop(), {}).values())
        for client in clients:
            await client.close()

    def reset(self) -> None:
        """Forgets every client and the settings (after ``MODELD`` changed)."""
        with _lock:
            self._loops = weakref.WeakKeyDictionary()
            self._settings = None
