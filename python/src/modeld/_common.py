"""What the sync and asyncio clients share: URL parsing, deadlines, the retry policy, the
metadata cache and the checks of infer() / predict(), and the fork hook."""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from ._amqp_url import AmqpTarget, parse_amqp_url
from ._codec import ModelSpec, Tensor, encode_inputs, version_string
from ._redis_url import RedisTarget, parse_redis_url, redact_url
from .errors import DeadlineExceeded, InvalidInput

__all__ = [
    "Security",
    "Endpoint",
    "parse_url",
    "Deadline",
    "RetryPolicy",
    "ClientBase",
    "ForkLocal",
    "on_fork",
]

SCHEMES = ("grpc", "http", "redis", "amqp")
DEFAULT_PORTS = {"grpc": 8001, "http": 8000, "redis": 6379, "amqp": 5672}
# The TLS spellings of the schemes: grpcs:// is grpc:// over TLS, https:// is http:// over TLS.
TLS_SCHEMES = {"grpcs": "grpc", "https": "http"}


@dataclass(frozen=True)
class Security:
    """TLS and the bearer token of a gRPC or HTTP client (docs/security.md)."""

    tls: bool = False
    #: PEM file of the CAs that sign the server's certificate; None: the system's CAs.
    ca: str | None = None
    #: PEM files of the client's certificate and key, for servers that require one (mTLS).
    cert: str | None = None
    key: str | None = None
    #: Sent as ``authorization: Bearer <token>`` with every call.
    token: str | None = field(default=None, repr=False)

    def authorization(self) -> str | None:
        """The authorization header value, or None without a token."""
        return None if self.token is None else f"Bearer {self.token}"

    def ssl_context(self) -> Any:
        """An ssl.SSLContext that verifies the server (and presents the client certificate);
        ValueError when the PEM files do not load."""
        import ssl

        try:
            context = ssl.create_default_context(cafile=self.ca)
        except ssl.SSLError as error:
            raise ValueError(f"tls_ca: {self.ca!r} does not load: {error}") from None
        if self.cert is not None:
            try:
                context.load_cert_chain(self.cert, self.key)
            except ssl.SSLError as error:
                raise ValueError(f"tls_cert, tls_key: {self.cert!r} and {self.key!r} do not "
                                 f"load as a certificate and its key: {error}") from None
        return context


def make_security(
    endpoint_tls: bool,
    scheme: str,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    token: str | None,
) -> Security:
    """Checks the client's TLS and token arguments; ValueError naming what is wrong."""
    tls_given = any(value is not None for value in (tls_ca, tls_cert, tls_key))
    if scheme == "redis":
        if tls_given or token is not None:
            raise ValueError(
                "tls_ca, tls_cert, tls_key and token are for gRPC and HTTP; a Redis URL "
                "carries its own credentials (redis://user:password@host)"
            )
        return Security()
    if scheme == "amqp":
        if token is not None:
            raise ValueError("token is for gRPC and HTTP; an AMQP URL carries its own "
                             "credentials (amqp://user:password@host)")
        if tls_given and not endpoint_tls:
            # Not turned on here as for gRPC and HTTP: a broker's TLS port is another port.
            raise ValueError("tls_ca, tls_cert and tls_key need an amqps:// URL (the broker's "
                             "TLS port, 5671 by default)")
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together: give both or neither")
    for name, path in (("tls_ca", tls_ca), ("tls_cert", tls_cert), ("tls_key", tls_key)):
        if path is not None:
            _check_pem_file(name, path)
    if token is not None and (not isinstance(token, str) or not token.strip() or
                              any(c.isspace() for c in token.strip())):
        raise ValueError("token must be a non-empty string without spaces")
    return Security(
        tls=endpoint_tls or tls_given,
        ca=tls_ca,
        cert=tls_cert,
        key=tls_key,
        token=token.strip() if token is not None else None,
    )


def _check_pem_file(name: str, path: str) -> None:
    """ValueError unless `path` is a readable file of PEM data. Checked here, so that every
    transport refuses the same files the same way, before anything connects."""
    if not os.path.isfile(path):
        raise ValueError(f"{name}: no file at {path!r}")
    try:
        with open(path, "rb") as file:
            pem = b"-----BEGIN " in file.read(1 << 20)
    except OSError as error:
        raise ValueError(f"{name}: cannot read {path!r} ({error.strerror})") from None
    if not pem:
        raise ValueError(f"{name}: {path!r} holds no PEM data (-----BEGIN ...)")


@dataclass(frozen=True)
class Endpoint:
    """Where a client connects: the scheme, host and port (and an HTTP path prefix, or the
    Redis or AMQP target: credentials and queue), and how (TLS, token)."""

    scheme: str
    host: str
    port: int
    prefix: str = ""
    redis: RedisTarget | None = None
    amqp: AmqpTarget | None = None
    #: grpcs://, https:// or amqps:// was given.
    tls: bool = False
    security: Security = field(default_factory=Security)

    @property
    def target(self) -> str:
        """host:port, as gRPC spells a target (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """Parses ``grpc[s]://host:port``, ``http[s]://host:port[/prefix]``, ``redis://...`` (see
    :mod:`modeld._redis_url`) or ``amqp[s]://...`` (:mod:`modeld._amqp_url`); ValueError
    otherwise."""
    if not isinstance(url, str):
        raise ValueError(f"the modeld URL must be a string, not {type(url).__name__}")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss"):
        target = parse_redis_url(url)
        return Endpoint("redis", target.host, target.port, redis=target)
    if scheme in ("amqp", "amqps"):
        amqp = parse_amqp_url(url)
        return Endpoint("amqp", amqp.host, amqp.port, amqp=amqp, tls=amqp.tls)
    tls = scheme in TLS_SCHEMES
    scheme = TLS_SCHEMES.get(scheme, scheme)
    if scheme not in SCHEMES:
        raise ValueError(
            f"cannot use {url!r}: the modeld URL must start with one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
            + " (for example grpc://127.0.0.1:8001, http://127.0.0.1:8000, "
            "redis://127.0.0.1:6379/0 or amqp://user:password@127.0.0.1:5672/vhost; grpcs://, "
            "https:// and amqps:// for TLS)"
        )
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"cannot use {url!r}: {error}") from None
    if not parts.hostname:
        raise ValueError(f"cannot use {url!r}: it names no host")
    path = parts.path.rstrip("/")
    if scheme == "grpc" and path:
        raise ValueError(f"cannot use {url!r}: a grpc:// URL has no path")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"cannot use {url!r}: query, fragment and user are not supported")
    return Endpoint(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], path, tls=tls)


class Deadline:
    """The moment a call must be done by; None: no limit."""

    __slots__ = ("timeout", "expires")

    def __init__(self, timeout: float | None) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
        self.timeout = timeout
        self.expires = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never below 0), or None without a limit."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - time.monotonic())

    def check(self, what: str) -> float | None:
        """The seconds left; DeadlineExceeded when none are."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded(f"{what}: the timeout of {self.timeout:g}s has passed")
        return remaining


class RetryPolicy:
    """Exponential backoff with jitter for retrying calls that met Unavailable.

    Attempt n (from 0) waits a random time in [backoff * 2**n / 2, backoff * 2**n], at most
    `max_backoff`; no retry is made when the wait would reach the deadline.
    """

    def __init__(self, retries: int, backoff: float, max_backoff: float = 1.0) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        if backoff < 0:
            raise ValueError(f"backoff must be >= 0, not {backoff}")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def delay(self, retry: int, deadline: Deadline) -> float | None:
        """How long to wait before retry number `retry` (from 0), or None to give up."""
        if retry >= self.retries:
            return None
        ceiling = min(self.max_backoff, self.backoff * (2**retry))
        wait = random.uniform(ceiling / 2, ceiling)
        remaining = deadline.remaining()
        if remaining is not None and remaining <= wait:
            return None
        return wait


# --- fork hook ------------------------------------------------------------------------------

_fork_listeners: weakref.WeakSet[Any] = weakref.WeakSet()


def on_fork(obj: Any) -> None:
    """Calls ``obj._after_fork_in_child()`` in the child after every os.fork() while obj lives.

    Used to replace locks that another thread of the parent may have held at the fork; the
    connections themselves are replaced lazily when a call sees that os.getpid() changed.
    """
    _fork_listeners.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_fork_listeners):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- shared client logic --------------------------------------------------------------------


class ClientBase:
    """Constructor, metadata cache and request preparation of the sync and asyncio clients.

    A subclass gives `_make_transport(endpoint)`, the transport of its kind for the URL."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float | None = 10.0,
        retries: int = 3,
        backoff: float = 0.05,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        token: str | None = None,
    ) -> None:
        endpoint = parse_url(url)
        security = make_security(
            endpoint.tls, endpoint.scheme, tls_ca, tls_cert, tls_key, token
        )
        self._endpoint = replace(endpoint, security=security)
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 or None, not {timeout}")
        #: The URL the client was created with.
        self.url: str = url
        #: The default timeout of a call in seconds (None: no limit), retries included.
        self.timeout: float | None = timeout
        self._policy = RetryPolicy(retries, backoff)
        # (model, version) -> ModelSpec. Plain dict operations are atomic under the GIL, so no
        # lock: a race at worst fetches the same metadata twice.
        self._specs: dict[tuple[str, str], ModelSpec] = {}
        self._closed = False
        self._transport: Any = self._make_transport(self._endpoint)

    @staticmethod
    def _make_transport(endpoint: Endpoint) -> Any:
        raise NotImplementedError

    @property
    def retries(self) -> int:
        """How many times a call that met Unavailable is tried again."""
        return self._policy.retries

    @property
    def backoff(self) -> float:
        """The first wait before a retry, in seconds (it doubles with each retry)."""
        return self._policy.backoff

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r}, timeout={self.timeout!r})"

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout if timeout is None else timeout)

    @staticmethod
    def _timed_out(what: str, error: DeadlineExceeded, deadline: Deadline) -> DeadlineExceeded:
        """The error to raise for `error`: one naming the call and its timeout when the client
        itself gave up (the server's own deadline errors keep the server's message)."""
        if getattr(error, "client_side", False) and deadline.timeout is not None:
            return DeadlineExceeded(
                f"{what}: no answer within the timeout of {deadline.timeout:g}s"
            )
        return error

    @staticmethod
    def _key(model: str, version: int | str | None) -> tuple[str, str]:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, not {model!r}")
        return model, version_string(version)

    def _forget(self, key: tuple[str, str]) -> None:
        """Drops cached metadata (the server refused a request: the model may have changed)."""
        self._specs.pop(key, None)

    @staticmethod
    def _prepare(
        spec: ModelSpec, inputs: Mapping[str, Any], outputs: Sequence[str] | None
    ) -> tuple[list[Tensor], list[str] | None]:
        if isinstance(outputs, str):
            raise TypeError("outputs must be a sequence of output names, not a string")
        return encode_inputs(inputs, spec), (list(outputs) if outputs is not None else None)

    @staticmethod
    def _prepare_train(
        spec: ModelSpec, inputs: Mapping[str, Any], targets: Mapping[str, Any]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """A training step's inputs and targets as raw tensors: the inputs cast as the model
        declares its inputs, the targets as it declares the outputs they are named after."""
        return encode_inputs(inputs, spec), encode_inputs(targets, spec, kind="target")

    @staticmethod
    def _single(spec: ModelSpec) -> tuple[str, str]:
        """The names of the only input and output of a model; InvalidInput otherwise."""
        if len(spec.inputs) != 1 or len(spec.outputs) != 1:
            ins = ", ".join(t.name for t in spec.inputs) or "none"
            outs = ", ".join(t.name for t in spec.outputs) or "none"
            raise InvalidInput(
                f"predict() needs a model with one input and one output, but model "
                f"'{spec.name}' has inputs ({ins}) and outputs ({outs}); use infer()"
            )
        return spec.inputs[0].name, spec.outputs[0].name


class ForkLocal:
    """A value created on first use in each process: recreated when os.getpid() changes.

    `make()` builds the value; values inherited from the parent are passed to `abandon`
    (never closed: they share sockets with the parent).
    """

    def __init__(self, make: Any, abandon: Any = None) -> None:
        self._make = make
        self._abandon = abandon
        self._state: tuple[int, Any] | None = None
        self._lock = threading.Lock()
        on_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def get(self) -> Any:
        state = self._state
        pid = os.getpid()
        if state is not None and state[0] == pid:
            return state[1]
        with self._lock:
            state = self._state
            if state is not None and state[0] == pid:
                return state[1]
            if state is not None and self._abandon is not None:
                self._abandon(state[1])
            value = self._make()
            self._state = (pid, value)
            return value

    def pop(self) -> Any:
        """Takes the value of this process out (None when there is none)."""
        with self._lock:
            state, self._state = self._state, None
        if state is not None and state[0] == os.getpid():
            return state[1]
        if state is not None and self._abandon is not None:
            self._abandon(state[1])
        return None


def wrong_port_hint(error: BaseException) -> str:
    """" (this port speaks gRPC ...)" when an HTTP client's failure shows it reached modeld's
    gRPC port (HTTP/2's frames read as a status line), else ""."""
    text = str(error)  # the frame's bytes as they are, or as the error quotes them
    if "\x00\x00" in text or "\\x00\\x00" in text:
        return (" (this port speaks gRPC, HTTP/2: use a grpc:// URL for it, or modeld's HTTP "
                "port)")
    return ""
