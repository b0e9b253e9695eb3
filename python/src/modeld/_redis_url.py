"""The ``redis://`` URL of the Redis transport: where Redis is, and which queue modeld reads.

    redis://[[user]:password@]host[:port][/db][?stream=KEY | ?list=KEY][&maxlen=N]

The part before ``?`` is what modeld's ``--redis-url`` takes (the user and the password may be
percent-encoded). The query names the queue, as modeld's ``--redis-stream`` / ``--redis-list``
do: a stream (the default, ``modeld:requests``) or a list; ``maxlen`` is the ``MAXLEN ~`` cap
the client gives ``XADD`` (0: none). Standard library only: the Django settings checks use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_MAXLEN",
    "DEFAULT_PORT",
    "REPLY_PREFIX",
    "QUERY_OPTIONS",
    "RedisTarget",
    "parse_redis_url",
    "redact_url",
]

#: The stream modeld reads when its --redis-stream is not given.
DEFAULT_STREAM = "modeld:requests"
#: ``XADD ... MAXLEN ~`` of each request: the stream holds only waiting and running work
#: (modeld deletes what it finished), so this caps a backlog, never trims answered work.
DEFAULT_MAXLEN = 100_000
DEFAULT_PORT = 6379
#: Each call waits on its own list ``<REPLY_PREFIX><request id>`` (docs/redis.md).
REPLY_PREFIX = "modeld:reply:"
QUERY_OPTIONS = ("stream", "list", "maxlen")


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``redis://`` URL: the connection and the queue requests go to."""

    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = None
    #: The queue key: a stream, or a list when ``is_list``.
    queue: str = DEFAULT_STREAM
    is_list: bool = False
    #: ``MAXLEN ~`` of XADD (streams only); 0: no cap.
    maxlen: int = DEFAULT_MAXLEN

    @property
    def address(self) -> str:
        """``host:port/db``, without credentials: for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.db}"

    def describe(self) -> str:
        """``stream modeld:requests at 127.0.0.1:6379/0``: for messages."""
        return f"{'list' if self.is_list else 'stream'} {self.queue} at Redis {self.address}"


def _fail(url: str, why: str) -> ValueError:
    return ValueError(f"cannot use {redact_url(url)!r}: {why}")


def parse_redis_url(url: str) -> RedisTarget:
    """Parses a ``redis://`` URL (module docstring); ValueError saying what is wrong."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "rediss":
        raise _fail(url, "TLS (rediss://) is not supported: modeld's Redis worker connects "
                         "without TLS; use redis://")
    if scheme != "redis":
        raise _fail(url, "a Redis URL starts with redis://")
    try:
        port = parts.port
    except ValueError as error:
        raise _fail(url, str(error)) from None
    if not parts.hostname:
        raise _fail(url, "it names no host")
    if port == 0:
        raise _fail(url, "port 0 is not a port Redis listens on")
    if parts.fragment:
        raise _fail(url, "a Redis URL has no #fragment")
    path = parts.path.strip("/")
    if not path:
        db = 0
    elif path.isdigit():
        db = int(path)
    else:
        raise _fail(url, f"the database {path!r} is not a number (redis://host:port/0)")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        raise _fail(url, "a user needs a password (redis://user:password@host)")

    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as error:
        raise _fail(url, f"malformed query: {error}") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in QUERY_OPTIONS:
            raise _fail(url, f"unknown option {key!r} (known: {', '.join(QUERY_OPTIONS)})")
        if key in options:
            raise _fail(url, f"option {key!r} is given twice")
        if not value:
            raise _fail(url, f"option {key!r} has no value")
        options[key] = value
    if "stream" in options and "list" in options:
        raise _fail(url, "give stream= or list=, not both (modeld reads one queue)")
    is_list = "list" in options
    maxlen = DEFAULT_MAXLEN
    if "maxlen" in options:
        if is_list:
            raise _fail(url, "maxlen= caps a stream; a list has no cap")
        if not options["maxlen"].isdigit():
            raise _fail(url, f"maxlen {options['maxlen']!r} is not a whole number (0: no cap)")
        maxlen = int(options["maxlen"])
    return RedisTarget(
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        db=db,
        username=username or None,
        password=password or None,
        queue=options.get("list") or options.get("stream") or DEFAULT_STREAM,
        is_list=is_list,
        maxlen=maxlen,
    )


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***`` (anything else unchanged): URLs end up in
    reprs, logs and check messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
