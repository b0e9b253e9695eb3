"""The ``amqp://`` URL of the AMQP transport: where the broker is, and which queue modeld reads.

    amqp://[user[:password]@]host[:port][/vhost][?queue=NAME]      (amqps:// for TLS)

The part before ``?`` is what modeld's ``--amqp-url`` takes, with RabbitMQ's defaults: user
``guest``, password ``guest``, port 5672 (5671 for amqps://), vhost ``/``; each part may be
percent-encoded (``/%2f`` is the vhost ``/``). The query names the queue, as modeld's
``--amqp-queue`` does (default ``modeld.requests``). TLS options are the client's own
arguments (tls_ca, tls_cert, tls_key), not part of the URL. Standard library only: the Django
settings checks use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ._redis_url import redact_url

__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "QUERY_OPTIONS",
    "AmqpTarget",
    "parse_amqp_url",
]

#: The queue modeld reads when its --amqp-queue is not given.
DEFAULT_QUEUE = "modeld.requests"
DEFAULT_PORT = 5672
DEFAULT_TLS_PORT = 5671
QUERY_OPTIONS = ("queue",)
#: AMQP 0-9-1 names (queues, vhosts) are short strings: at most 255 bytes.
_MAX_NAME_BYTES = 255
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class AmqpTarget:
    """A parsed ``amqp://`` URL: the broker, the login and the queue requests go to."""

    host: str
    port: int = DEFAULT_PORT
    vhost: str = "/"
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    #: The request queue (modeld's --amqp-queue).
    queue: str = DEFAULT_QUEUE
    #: amqps:// was given.
    tls: bool = False

    @property
    def address(self) -> str:
        """``host:port`` and the vhost, without credentials: for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port} vhost {self.vhost!r}"

    def describe(self) -> str:
        """``queue modeld.requests at RabbitMQ 127.0.0.1:5672 vhost '/'``: for messages."""
        return f"queue {self.queue} at the AMQP broker {self.address}"


def _fail(url: str, why: str) -> ValueError:
    return ValueError(f"cannot use {redact_url(url)!r}: {why}")


def _decode(url: str, text: str, what: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise _fail(url, f"the {what} has a '%' that is not followed by two hex digits")
    return unquote(text)


def parse_amqp_url(url: str) -> AmqpTarget:
    """Parses an ``amqp://`` or ``amqps://`` URL (module docstring); ValueError saying what is
    wrong (never showing the password)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise _fail(url, "an AMQP URL starts with amqp:// or amqps://")
    tls = scheme == "amqps"
    try:
        port = parts.port
    except ValueError as error:
        raise _fail(url, str(error)) from None
    if not parts.hostname:
        raise _fail(url, "it names no host")
    if port == 0:
        raise _fail(url, "port 0 is not a port a broker listens on")
    if parts.fragment:
        raise _fail(url, "an AMQP URL has no #fragment")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if "/" in path:
        raise _fail(url, "the vhost holds a '/' (write it as %2f: amqp://host/%2f is the "
                         "vhost '/')")
    vhost = _decode(url, path, "vhost") if path else "/"
    # urlsplit keeps the user and the password as written (percent-encoded).
    netloc_user = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
    username, password = "guest", "guest"
    if netloc_user is not None:
        user_text, colon, password_text = netloc_user.partition(":")
        username = _decode(url, user_text, "user")
        password = _decode(url, password_text, "password") if colon else ""
        if not username:
            raise _fail(url, "the user is empty (amqp://user:password@host)")

    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as error:
        raise _fail(url, f"malformed query: {error}") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in QUERY_OPTIONS:
            raise _fail(url, f"unknown option {key!r} (known: {', '.join(QUERY_OPTIONS)}; TLS "
                             "files are the client's tls_ca, tls_cert and tls_key)")
        if key in options:
            raise _fail(url, f"option {key!r} is given twice")
        if not value:
            raise _fail(url, f"option {key!r} has no value")
        options[key] = value
    queue = options.get("queue", DEFAULT_QUEUE)
    if queue.startswith("amq."):
        raise _fail(url, f"the queue {queue!r} starts with 'amq.', which the broker reserves")
    for what, name in (("queue", queue), ("vhost", vhost)):
        if len(name.encode()) > _MAX_NAME_BYTES:
            raise _fail(url, f"the {what} name is longer than {_MAX_NAME_BYTES} bytes")
    return AmqpTarget(
        host=parts.hostname,
        port=port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
        vhost=vhost,
        username=username,
        password=password,
        queue=queue,
        tls=tls,
    )
