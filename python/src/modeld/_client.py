"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from ._codec import ModelSpec
from ._common import ClientBase, Deadline, Endpoint
from ._training import TrainResult, train_id
from .errors import DeadlineExceeded, InvalidInput, ModeldError, ModelNotFound, Unavailable

__all__ = ["Client"]

T = TypeVar("T")


def _transport(endpoint: Endpoint) -> Any:
    # Imported here so that an HTTP client never loads grpc, and only a Redis client loads
    # redis-py (an optional dependency).
    if endpoint.scheme == "grpc":
        from ._grpc import GrpcTransport

        return GrpcTransport(endpoint)
    if endpoint.scheme == "redis":
        from ._redis import RedisTransport

        return RedisTransport(endpoint)
    from ._http import HttpTransport

    return HttpTransport(endpoint)


class Client(ClientBase):
    """A client of one modeld server, over gRPC (``grpc://host:port``) or HTTP
    (``http://host:port``); or of the modeld processes that consume a Redis queue
    (``redis://host:port/db``, see docs/redis.md).

    Thread-safe and fork-safe: share one client between threads, and keep using a client made
    before os.fork() in the child (Gunicorn, Celery); it reconnects there by itself.

    Over Redis, each call is a request on modeld's queue (a stream, or a list with
    ``?list=KEY``) answered on its own reply key; :meth:`live` asks Redis (PING), the other
    calls ask modeld through the queue, so they time out (DeadlineExceeded) while no modeld
    consumes it. :meth:`metadata` without a model is not available over Redis.

    Args:
        url: ``grpc://host:port``, ``http://host:port`` or
            ``redis://[[user]:password@]host[:port][/db][?stream=KEY | ?list=KEY][&maxlen=N]``
            (redis-py needed: ``pip install "modeld[redis]"``); ``grpcs://`` and
            ``https://`` for TLS.
        timeout: default limit in seconds of each call, retries included (None: no limit).
        retries: how many times a call that met :class:`~modeld.Unavailable` is tried again.
        backoff: the first wait before a retry in seconds; it doubles each retry (with jitter).
        tls_ca: gRPC and HTTP: a PEM file of the CAs that sign the server's certificate (None:
            the system's CAs). Any tls_* argument turns TLS on, as grpcs:// and https:// do.
        tls_cert, tls_key: PEM files of a client certificate and its key, for a server that
            requires one (``--grpc-tls-client-ca``, ``--http-tls-client-ca``).
        token: gRPC and HTTP: a bearer token sent with every call, for a server started with
            ``--auth-token-file``; a missing or wrong one raises :class:`~modeld.Unauthenticated`.

    Raises:
        ValueError: for a URL that is not grpc[s]://, http[s]:// or redis:// (or a malformed
            one), TLS files that do not exist, or tls_*/token with a Redis URL.
        ImportError: for a redis:// URL without redis-py installed.
    """

    _make_transport = staticmethod(_transport)

    # --- plumbing ---------------------------------------------------------------------------

    def _retrying(
        self,
        what: str,
        call: Callable[[float | None], T],
        deadline: Deadline,
        *,
        idempotent: bool = True,
    ) -> T:
        """Runs call(seconds left), retrying on Unavailable with backoff within the deadline;
        a call that is not `idempotent` runs once."""
        retry = 0
        while True:
            if self._closed:
                raise ModeldError(f"{what}: the client is closed", "CLOSED")
            remaining = deadline.check(what)
            try:
                return call(remaining)
            except DeadlineExceeded as error:
                raise self._timed_out(what, error, deadline) from None
            except Unavailable:
                wait = self._policy.delay(retry, deadline) if idempotent else None
                if wait is None:
                    raise
                time.sleep(wait)
                retry += 1

    def _spec(self, model: str, version: int | str | None, deadline: Deadline) -> ModelSpec:
        key = self._key(model, version)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._retrying(
                f"metadata of model '{model}'",
                lambda t: self._transport.model_metadata(key[0], key[1], t),
                deadline,
            )
            self._specs[key] = spec
        return spec

    def _infer(
        self,
        model: str,
        inputs: Mapping[str, ArrayLike],
        version: int | str | None,
        outputs: Sequence[str] | None,
        deadline: Deadline,
    ) -> dict[str, np.ndarray]:
        key = self._key(model, version)
        spec = self._spec(model, version, deadline)
        tensors, names = self._prepare(spec, inputs, outputs)
        try:
            return self._retrying(
                f"infer on model '{model}'",
                lambda t: self._transport.infer(key[0], key[1], tensors, names, t),
                deadline,
            )
        except (InvalidInput, ModelNotFound):
            self._forget(key)
            raise

    # --- API --------------------------------------------------------------------------------

    def infer(
        self,
        model: str,
        inputs: Mapping[str, ArrayLike],
        *,
        version: int | str | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs `model` on `inputs` and returns its outputs by name.

        Args:
            model: the model's name.
            inputs: input name -> numpy array or nested list. Values are cast to the datatype
                the model declares where that is safe (Python floats to FP32, for example).
            version: the model version; None for the server's choice (the latest).
            outputs: the names of the outputs wanted; None for all.
            timeout: seconds for the whole call, retries included; None: the client's.

        Returns:
            output name -> numpy array of the output's datatype and shape (BYTES: object
            arrays of bytes).

        Raises:
            ModelNotFound, InvalidInput, ServerBusy, DeadlineExceeded, Unavailable, ModeldError.
        """
        return self._infer(model, inputs, version, outputs, self._deadline(timeout))

    def predict(
        self,
        model: str,
        x: ArrayLike,
        *,
        version: int | str | None = None,
        timeout: float | None = None,
    ) -> np.ndarray:
        """Runs a model with one input and one output on `x` and returns its output.

        The input and output names come from the model's metadata (fetched once and cached).

        Raises:
            InvalidInput: the model has several inputs or outputs (their names are in the
                message), or the server refused `x`. And as :meth:`infer`.
        """
        deadline = self._deadline(timeout)
        input_name, output_name = self._single(self._spec(model, version, deadline))
        return self._infer(model, {input_name: x}, version, [output_name], deadline)[output_name]

    def train(
        self,
        model: str,
        inputs: Mapping[str, ArrayLike],
        targets: Mapping[str, ArrayLike],
        *,
        version: int | str | None = None,
        timeout: float | None = None,
        id: str | None = None,  # noqa: A002 (the protocol's name)
    ) -> TrainResult:
        """Runs one training step of `model` on a batch: the server computes the loss of the
        model's outputs for `inputs` against `targets` and updates the weights with the
        model's optimizer. Inference sees the weights before or after a step, never between.

        The model must be configured as trainable (``parameters { key: "training" ... }`` in
        its config.pbtxt); the targets are named after its outputs.

        Unlike the other calls, a step is **never retried**, whatever ``retries`` says: an
        Unavailable may come after the step was taken (the connection broke before the answer
        arrived) and the client cannot tell, so sending it again could apply it twice. Nor
        does a DeadlineExceeded tell whether the step was taken. The step numbers of
        :class:`~modeld.TrainResult` show which steps were: each is one more than the one
        before. (Fetching the model's metadata first, once per client, is retried as usual.)

        Args:
            model: the model's name.
            inputs: input name -> numpy array or nested list, batch dimension first, cast as
                :meth:`infer` casts them.
            targets: output name -> what the model should have answered for `inputs`, with the
                same batch size, cast to the datatype of that output.
            version: the model version; None for the newest.
            timeout: seconds for the whole call; None: the client's.
            id: a request id of your choosing, which the server logs and echoes.

        Returns:
            The step's :class:`~modeld.TrainResult`: its number, its loss (computed before the
            update) and the step of the newest durable checkpoint.

        Raises:
            ModelNotFound: the model or version is not served.
            InvalidInput: a wrong, missing or extra input or target (named in the message), or
                the model is not trainable (the message says so).
            ServerBusy, DeadlineExceeded, Unavailable, ModeldError: as :meth:`infer`, except
                that nothing is retried.
        """
        deadline = self._deadline(timeout)
        request_id = train_id(id)
        key = self._key(model, version)
        spec = self._spec(model, version, deadline)
        tensors, target_tensors = self._prepare_train(spec, inputs, targets)
        try:
            return self._retrying(
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

    def live(self, *, timeout: float | None = None) -> bool:
        """Whether the server is live. Raises Unavailable when it cannot be reached."""
        return self._retrying("live", self._transport.live, self._deadline(timeout))

    def ready(self, *, timeout: float | None = None) -> bool:
        """Whether the server is ready (every model loaded or failed). Raises Unavailable when
        it cannot be reached."""
        return self._retrying("ready", self._transport.ready, self._deadline(timeout))

    def model_ready(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> bool:
        """Whether `model` (at `version`, or any version) is ready; False for an unknown model.

        Raises Unavailable when the server cannot be reached.
        """
        name, v = self._key(model, version)
        return self._retrying(
            f"model_ready of model '{model}'",
            lambda t: self._transport.model_ready(name, v, t),
            self._deadline(timeout),
        )

    def metadata(
        self,
        model: str | None = None,
        version: int | str | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Server metadata ``{"name", "version", "extensions"}`` without `model`; else the
        model's ``{"name", "versions", "platform", "inputs", "outputs"}``, each input and
        output a ``{"name", "datatype", "shape"}``. Model metadata is fetched and cached.

        Raises:
            ModelNotFound: the model or version is not served.
        """
        deadline = self._deadline(timeout)
        if model is None:
            if version is not None:
                raise ValueError("a version needs a model")
            return self._retrying("server metadata", self._transport.server_metadata, deadline)
        key = self._key(model, version)
        self._forget(key)  # metadata() always asks the server, and refreshes the cache
        return self._spec(model, version, deadline).as_dict()

    def close(self) -> None:
        """Closes the connections; the client cannot be used afterwards."""
        self._closed = True
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
