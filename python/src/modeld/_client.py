"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from . import _calls
from ._common import ClientBase, Endpoint
from ._status import ModelStatus
from ._training import TrainResult

__all__ = ["Client"]

T = TypeVar("T")


def _transport(endpoint: Endpoint) -> Any:
    # Imported here so that an HTTP client never loads grpc, only a Redis client loads redis-py
    # and only an AMQP client pika (optional dependencies).
    if endpoint.scheme == "grpc":
        from ._grpc import GrpcTransport

        return GrpcTransport(endpoint)
    if endpoint.scheme == "redis":
        from ._redis import RedisTransport

        return RedisTransport(endpoint)
    if endpoint.scheme == "amqp":
        from ._amqp import AmqpTransport

        return AmqpTransport(endpoint)
    from ._http import HttpTransport

    return HttpTransport(endpoint)


class Client(ClientBase):
    """A client of one modeld server, over gRPC (``grpc://host:port``) or HTTP
    (``http://host:port``); or of the modeld processes that consume a Redis queue
    (``redis://host:port/db``, see docs/redis.md) or a RabbitMQ queue
    (``amqp://user:password@host:port/vhost``, see docs/amqp.md).

    Thread-safe and fork-safe: share one client between threads, and keep using a client made
    before os.fork() in the child (Gunicorn, Celery); it reconnects there by itself.

    Over Redis, each call is a request on modeld's queue (a stream, or a list with
    ``?list=KEY``) answered on its own reply key; :meth:`live` asks Redis (PING), the other
    calls ask modeld through the queue, so they time out (DeadlineExceeded) while no modeld
    consumes it. :meth:`metadata` without a model and :meth:`models` are not available over
    Redis.

    Over AMQP, each call is a persistent message on modeld's queue (``?queue=NAME``, default
    ``modeld.requests``) answered on the client's own exclusive reply queue, over one
    connection per client and process that its threads share; :meth:`live` asks the broker,
    the other calls ask modeld through the queue (DeadlineExceeded while no modeld consumes
    it, Unavailable at once while no modeld has declared it). What Redis does not carry, AMQP
    does not either.

    Args:
        url: ``grpc://host:port``, ``http://host:port`` or
            ``redis://[[user]:password@]host[:port][/db][?stream=KEY | ?list=KEY][&maxlen=N]``
            (redis-py needed: ``pip install "modeld[redis]"``) or
            ``amqp://[user[:password]@]host[:port][/vhost][?queue=NAME]`` (pika needed:
            ``pip install "modeld[amqp]"``); ``grpcs://``, ``https://`` and ``amqps://`` for
            TLS.
        timeout: default limit in seconds of each call, retries included (None: no limit).
        retries: how many times a call that met :class:`~modeld.Unavailable` is tried again.
        backoff: the first wait before a retry in seconds; it doubles each retry (with jitter).
        tls_ca: gRPC, HTTP and amqps://: a PEM file of the CAs that sign the server's (or the
            broker's) certificate (None: the system's CAs). Any tls_* argument turns TLS on, as
            grpcs:// and https:// do; an AMQP URL must say amqps:// itself.
        tls_cert, tls_key: PEM files of a client certificate and its key, for a server that
            requires one (``--grpc-tls-client-ca``, ``--http-tls-client-ca``), or a broker.
        token: gRPC and HTTP: a bearer token sent with every call, for a server started with
            ``--auth-token-file``; a missing or wrong one raises :class:`~modeld.Unauthenticated`.

    Raises:
        ValueError: for a URL that is not grpc[s]://, http[s]://, redis:// or amqp[s]:// (or
            a malformed one), TLS files that do not exist, tls_*/token with a Redis URL, a
            token with an AMQP URL, or tls_* with amqp:// (not amqps://).
        ImportError: for a redis:// URL without redis-py installed, or an amqp:// URL without
            pika (aio-pika for modeld.aio.Client).
    """

    _make_transport = staticmethod(_transport)

    # --- plumbing ---------------------------------------------------------------------------

    def _run(self, call: _calls.Call[T]) -> T:
        """Runs a call of modeld._calls to its end, doing each step of I/O it yields with a
        blocking call; returns its result or raises its error."""
        try:
            step = next(call)
            while True:
                try:
                    answer = step.perform(self._transport, time.sleep)
                except BaseException as error:  # thrown in: the call retries, maps or raises it
                    step = call.throw(error)
                else:
                    step = call.send(answer)
        except StopIteration as done:
            return done.value

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
            ModelNotReady: the model failed to load (modeld answered UNAVAILABLE and its model
                status says so); raised at once, with the server's reason, never retried.
            Unavailable: the server cannot be reached, or the model is still loading (after
                the retries).
            ModelNotFound, InvalidInput, ServerBusy, DeadlineExceeded, ModelFailed, ModeldError.
        """
        return self._run(_calls.infer(self, model, inputs, version, outputs, timeout))

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
        return self._run(_calls.predict(self, model, x, version, timeout))

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
            ModelNotReady, ServerBusy, DeadlineExceeded, Unavailable, ModelFailed, ModeldError:
                as :meth:`infer`, except that nothing is retried.
        """
        return self._run(_calls.train(self, model, inputs, targets, version, timeout, id))

    def live(self, *, timeout: float | None = None) -> bool:
        """Whether the server is live. Raises Unavailable when it cannot be reached."""
        return self._run(_calls.live(self, timeout))

    def ready(self, *, timeout: float | None = None) -> bool:
        """Whether the server is ready (every model loaded or failed). Raises Unavailable when
        it cannot be reached."""
        return self._run(_calls.ready(self, timeout))

    def model_ready(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> bool:
        """Whether `model` (at `version`, or any version) is ready; False for an unknown model.

        Raises Unavailable when the server cannot be reached.
        """
        return self._run(_calls.model_ready(self, model, version, timeout))

    def model_status(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> ModelStatus:
        """The state of `model` (at `version`) as the server reports it, and why it is not
        ready: the load error of a model that failed, "unknown model 'x'" for one the server
        does not have.

        Without `version`, the status is of the version a request naming none would get (the
        newest ready one); when none is ready, of the newest version loading, else of the
        newest. An unknown model or version is an answer (state ``"UNKNOWN"``), not an error.

        Asks modeld's model status (TensorFlow Serving's GetModelStatus, which modeld serves in
        every --model-control-mode; ``GET /v1/models/{m}`` over HTTP). Over Redis and AMQP,
        whose queues carry model metadata and not version states, a model that is not ready
        is ``"UNAVAILABLE"`` with modeld's reason (which says when it is loading).

        Raises:
            Unavailable: the server cannot be reached (after the retries).
            InvalidInput: a version that is not a number.
            DeadlineExceeded, Unauthenticated, ModeldError.
        """
        return self._run(_calls.model_status(self, model, version, timeout))

    def models(self, *, timeout: float | None = None) -> list[ModelStatus]:
        """Every model and version the server knows, each with its state and reason, in the
        server's order (by model name, then version).

        Returns modeld's repository index as it is, which modeld serves in every
        ``--model-control-mode``. With ``explicit`` it also lists the model folders that are
        not loaded (UNAVAILABLE, "unloaded"); a READY version whose changed files failed to
        reload carries that failure as its reason.

        Raises:
            ModeldError: code ``"UNIMPLEMENTED"`` over Redis and AMQP (their queues carry no
                list of models).
            Unavailable, DeadlineExceeded, Unauthenticated: as the other calls.
        """
        return self._run(_calls.models(self, timeout))

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
            ModelNotReady: the model failed to load (as :meth:`infer`).
        """
        return self._run(_calls.metadata(self, model, version, timeout))

    def model_config(
        self, model: str, version: int | str | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The model's configuration as modeld serves it (its config.pbtxt, with what modeld
        filled in), as a dict: KServe's ``ModelConfig`` RPC over gRPC, ``GET
        /v2/models/{m}[/versions/{v}]/config`` over HTTP. Field names as config.pbtxt spells
        them, every field present (defaults too), enums by name (``"TYPE_FP32"``), integers
        as numbers; ``max_batch_size`` (0: the model does not batch), say, which the metadata
        lacks.

        Raises:
            ModelNotFound: the model or version is not served.
            ModelNotReady: the model failed to load (as :meth:`infer`).
            ModeldError: code ``"UNIMPLEMENTED"`` over Redis and AMQP (their queues carry
                model metadata, not the config).
            Unavailable, DeadlineExceeded, Unauthenticated: as the other calls.
        """
        return self._run(_calls.model_config(self, model, version, timeout))

    def close(self) -> None:
        """Closes the connections; the client cannot be used afterwards."""
        self._closed = True
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
