"""The ``MODELD`` setting: its defaults, its validation, and its parsed form.

``MODELD`` is shaped like ``DATABASES`` and ``CACHES``: a dict of aliases, each a dict of
upper-case keys::

    MODELD = {
        "default": {
            "URL": "grpc://127.0.0.1:8001",   # required, one of: grpc://host[:port],
                                              # http://host[:port][/prefix],
                                              # redis://[[user]:password@]host[:port][/db]
                                              #   [?stream=KEY | ?list=KEY][&maxlen=N],
                                              # amqp[s]://[user[:password]@]host[:port]
                                              #   [/vhost][?queue=NAME]
            "TIMEOUT": 2.0,                   # seconds per call (default 10.0)
            "RETRIES": 3,                     # retries of UNAVAILABLE calls (default 3)
            "BACKOFF": 0.05,                  # first retry delay in seconds (default 0.05)
            "MODELS": ["mlp", "linear"],      # models this site expects (default [])
            # gRPC and HTTP (docs/security.md), and the TLS files for amqps://; grpcs:// and
            # https:// turn TLS on too:
            "TLS_CA": "/etc/modeld/ca.crt",   # CAs of the server's certificate (TLS on)
            "TLS_CERT": "/etc/modeld/web.crt",  # client certificate and key, for mTLS
            "TLS_KEY": "/etc/modeld/web.key",
            "TOKEN": os.environ["MODELD_TOKEN"],  # bearer token (--auth-token-file)
            # modeld's Prometheus metrics, for the status page (modeld.django.views.status):
            # default <URL>/metrics for http(s):// URLs, none for grpc://, redis:// and amqp://;
            # None: none.
            "METRICS_URL": "http://127.0.0.1:8000/metrics",
        },
    }

Without a ``MODELD`` setting there is one alias, ``"default"``, at ``grpc://127.0.0.1:8001``.
The same validation backs the system checks (``modeld.E0xx``, see :mod:`modeld.django.checks`)
and :func:`load`, which raises :class:`~django.core.exceptions.ImproperlyConfigured`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .._amqp_url import parse_amqp_url
from .._redis_url import parse_redis_url, redact_url

DEFAULT_ALIAS = "default"
DEFAULT_URL = "grpc://127.0.0.1:8001"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.05
KNOWN_KEYS = ("URL", "TIMEOUT", "RETRIES", "BACKOFF", "MODELS", "TLS_CA", "TLS_CERT", "TLS_KEY",
              "TOKEN", "METRICS_URL")
SECURITY_KEYS = ("TLS_CA", "TLS_CERT", "TLS_KEY", "TOKEN")
REDIS_HINT = ("redis://[[user]:password@]host[:port][/db][?stream=KEY | ?list=KEY][&maxlen=N], "
              "naming the queue modeld reads (--redis-stream / --redis-list); docs/redis.md.")
AMQP_HINT = ("amqp://[user[:password]@]host[:port][/vhost][?queue=NAME] (amqps:// for TLS), "
             "the URL of modeld's --amqp-url and the queue of its --amqp-queue; docs/amqp.md.")
SCHEMES = ("grpc", "grpcs", "http", "https", "redis", "amqp", "amqps")
#: The schemes of modeld's message queues: the URL names a broker, which may answer while no
#: modeld does.
QUEUE_SCHEMES = ("redis", "amqp", "amqps")


@dataclass(frozen=True)
class AliasSettings:
    """One alias of ``MODELD``, validated and with its defaults filled in."""

    alias: str
    url: str
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    models: tuple[str, ...] = ()
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    token: str | None = field(default=None, repr=False)
    #: where modeld's /metrics is read for the status page; None: nowhere
    metrics_url: str | None = None

    def security_kwargs(self) -> dict[str, str]:
        """The client's tls_ca / tls_cert / tls_key / token arguments that are set."""
        values = {"tls_ca": self.tls_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key,
                  "token": self.token}
        return {name: value for name, value in values.items() if value is not None}


class Problem(NamedTuple):
    """One thing wrong with ``MODELD``; ``id`` is the system check id (``modeld.E001``)."""

    id: str
    msg: str
    hint: str | None = None


def raw_setting() -> Any:
    """``settings.MODELD`` as written, or the default when the project has none."""
    return getattr(settings, "MODELD", {DEFAULT_ALIAS: {"URL": DEFAULT_URL}})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _url_problem(alias: str, url: Any) -> Problem | None:
    """The rules of the client's own URL parser, checked before any client is made."""
    where = f"MODELD[{alias!r}]['URL']"
    hint = ("Use grpc://host:port, http://host:port, redis://host:port/db or "
            "amqp://user:password@host:port/vhost (the port defaults to 8001 / 8000 / 6379 / "
            "5672).")
    if not isinstance(url, str) or not url.strip():
        return Problem("modeld.E004", f"{where} must be a non-empty string, not {url!r}.", hint)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss"):
        # The client's own parser: the same rules, the query options (stream=, list=, maxlen=)
        # included. Its message never shows the password.
        try:
            parse_redis_url(url)
        except ValueError as error:
            return Problem("modeld.E004", f"{where}: {error}.", REDIS_HINT)
        return None
    if scheme in ("amqp", "amqps"):
        # The client's own parser (the vhost, ?queue=); its message never shows the password.
        try:
            parse_amqp_url(url)
        except ValueError as error:
            return Problem("modeld.E004", f"{where}: {error}.", AMQP_HINT)
        return None
    url = redact_url(url)
    if scheme not in SCHEMES:
        return Problem("modeld.E004", f"{where} = {url!r} has an unsupported scheme "
                       f"{parts.scheme!r}.", hint)
    try:
        _ = parts.port  # raises for a port that is not a number in 0-65535
    except ValueError:
        return Problem("modeld.E004", f"{where} = {url!r} has an invalid port.", hint)
    if not parts.hostname:
        return Problem("modeld.E004", f"{where} = {url!r} names no host.", hint)
    if scheme in ("grpc", "grpcs") and parts.path.rstrip("/"):
        return Problem("modeld.E004", f"{where} = {url!r}: a grpc:// URL has no path.", hint)
    if parts.path.rstrip("/").endswith(("/v1", "/v2")):
        return Problem(
            "modeld.E004",
            f"{where} = {url!r} ends in {parts.path.rstrip('/').rsplit('/', 1)[1]!r}, which is "
            "part of modeld's API paths: the client adds /v2/... itself.",
            "Give the server's root (http://host:8000), or the prefix a proxy serves it under.")
    if parts.query or parts.fragment or parts.username or parts.password:
        return Problem("modeld.E004", f"{where} = {url!r}: query, fragment and user are not "
                       "supported.", hint)
    return None


def _security_problems(alias: str, options: dict[str, Any]) -> list[Problem]:
    """TLS_CA, TLS_CERT, TLS_KEY and TOKEN: strings, the files pairs, never with Redis; with
    AMQP, the TLS files only, and only with amqps://."""
    found: list[Problem] = []
    given = [key for key in SECURITY_KEYS if options.get(key) is not None]
    for key in given:
        if not isinstance(options[key], str) or not options[key].strip():
            found.append(Problem("modeld.E011", f"MODELD[{alias!r}][{key!r}] must be a "
                                 "non-empty string."))
    if ("TLS_CERT" in given) != ("TLS_KEY" in given):
        found.append(Problem("modeld.E011", f"MODELD[{alias!r}] needs both 'TLS_CERT' and "
                             "'TLS_KEY' (a client certificate and its key), or neither."))
    url = options.get("URL")
    scheme = urlsplit(url.strip()).scheme.lower() if isinstance(url, str) else ""
    if given and scheme in ("redis", "rediss"):
        found.append(Problem(
            "modeld.E011",
            f"MODELD[{alias!r}] sets {', '.join(given)} with a Redis URL.",
            "TLS and tokens are for gRPC and HTTP; a Redis URL carries its own credentials "
            "(redis://user:password@host).",
        ))
    if scheme in ("amqp", "amqps") and "TOKEN" in given:
        found.append(Problem(
            "modeld.E011",
            f"MODELD[{alias!r}] sets 'TOKEN' with an AMQP URL.",
            "Tokens are for gRPC and HTTP; an AMQP URL carries its own credentials "
            "(amqp://user:password@host/vhost).",
        ))
    tls_files = [key for key in given if key != "TOKEN"]
    if scheme == "amqp" and tls_files:
        found.append(Problem(
            "modeld.E011",
            f"MODELD[{alias!r}] sets {', '.join(tls_files)} with an amqp:// URL.",
            "TLS to the broker needs an amqps:// URL (its TLS port, 5671 by default).",
        ))
    return found


def default_metrics_url(url: str) -> str | None:
    """``<URL>/metrics`` for an http(s):// URL (modeld serves its metrics on its HTTP port);
    None for grpc://, redis:// and amqp://, whose port does not serve them."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        return None
    return f"{url.strip().rstrip('/')}/metrics"


def _metrics_url(options: dict[str, Any]) -> str | None:
    """An alias's METRICS_URL: as given (None: none), else the default for its URL."""
    if "METRICS_URL" not in options:
        return default_metrics_url(options["URL"])
    value = options["METRICS_URL"]
    return value.strip() if value is not None else None


def _metrics_url_problem(alias: str, value: Any) -> Problem | None:
    """METRICS_URL: None, or an http(s):// URL with a host and no user or password."""
    if value is None:
        return None
    where = f"MODELD[{alias!r}]['METRICS_URL']"
    hint = ("The URL of modeld's /metrics on its HTTP port, e.g. http://127.0.0.1:8000/metrics; "
            "None for none.")
    if not isinstance(value, str) or not value.strip():
        return Problem("modeld.E012", f"{where} must be a URL or None, not {value!r}.", hint)
    parts = urlsplit(value.strip())
    try:
        _ = parts.port
    except ValueError:
        return Problem("modeld.E012", f"{where} = {redact_url(value)!r} has an invalid port.",
                       hint)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return Problem("modeld.E012", f"{where} = {redact_url(value)!r} is not an http:// or "
                       "https:// URL with a host.", hint)
    if parts.username or parts.password:
        return Problem("modeld.E012", f"{where} = {redact_url(value)!r} carries a user or "
                       "password.", "modeld takes the alias's TOKEN, which is sent with it.")
    return None


def alias_problems(alias: Any, options: Any) -> list[Problem]:
    """What is wrong with one alias (an empty list when nothing is)."""
    if not isinstance(alias, str) or not alias:
        return [Problem("modeld.E002", f"MODELD aliases must be non-empty strings, not {alias!r}.")]
    if not isinstance(options, dict):
        return [Problem(
            "modeld.E002",
            f"MODELD[{alias!r}] must be a dict, not {type(options).__name__}.",
            'For example {"URL": "grpc://127.0.0.1:8001"}.',
        )]
    problems: list[Problem] = []
    for key in options:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(str(key).upper(), KNOWN_KEYS, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            problems.append(Problem(
                "modeld.E008",
                f"MODELD[{alias!r}] has an unknown key {key!r}.",
                f"{hint}Known keys: {', '.join(KNOWN_KEYS)}.",
            ))
    if "URL" not in options:
        problems.append(Problem("modeld.E003", f"MODELD[{alias!r}] has no 'URL'.",
                                'For example "URL": "grpc://127.0.0.1:8001".'))
    else:
        url_problem = _url_problem(alias, options["URL"])
        if url_problem:
            problems.append(url_problem)
    timeout = options.get("TIMEOUT", DEFAULT_TIMEOUT)
    if not _is_number(timeout) or not math.isfinite(timeout) or timeout <= 0:
        problems.append(Problem(
            "modeld.E005",
            f"MODELD[{alias!r}]['TIMEOUT'] must be a positive number of seconds, "
            f"not {timeout!r}."))
    retries = options.get("RETRIES", DEFAULT_RETRIES)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        problems.append(Problem(
            "modeld.E006",
            f"MODELD[{alias!r}]['RETRIES'] must be a non-negative integer, not {retries!r}."))
    models = options.get("MODELS", [])
    if not isinstance(models, (list, tuple)) or not all(
        isinstance(name, str) and name for name in models
    ):
        problems.append(Problem(
            "modeld.E007",
            f"MODELD[{alias!r}]['MODELS'] must be a list of model names, not {models!r}."))
    problems.extend(_security_problems(alias, options))
    backoff = options.get("BACKOFF", DEFAULT_BACKOFF)
    if not _is_number(backoff) or not math.isfinite(backoff) or backoff < 0:
        problems.append(Problem(
            "modeld.E009",
            f"MODELD[{alias!r}]['BACKOFF'] must be a non-negative number of seconds, "
            f"not {backoff!r}."))
    metrics_problem = _metrics_url_problem(alias, options.get("METRICS_URL"))
    if metrics_problem:
        problems.append(metrics_problem)
    return problems


def problems(raw: Any = None) -> list[Problem]:
    """Everything wrong with ``MODELD`` (``raw``, or the current setting when None)."""
    if raw is None:
        raw = raw_setting()
    if not isinstance(raw, dict):
        return [Problem(
            "modeld.E001",
            f"MODELD must be a dict of aliases, not {type(raw).__name__}.",
            'For example MODELD = {"default": {"URL": "grpc://127.0.0.1:8001"}}.',
        )]
    found: list[Problem] = []
    if DEFAULT_ALIAS not in raw:
        found.append(Problem(
            "modeld.E010",
            f"MODELD has no {DEFAULT_ALIAS!r} alias.",
            "The shortcuts (predict, infer, ...) use it unless given using=.",
        ))
    for alias, options in raw.items():
        found.extend(alias_problems(alias, options))
    return found


def load(raw: Any = None) -> dict[str, AliasSettings]:
    """The parsed ``MODELD`` setting; raises ImproperlyConfigured when it is malformed."""
    if raw is None:
        raw = raw_setting()
    found = problems(raw)
    if found:
        details = "; ".join(f"{p.msg} ({p.id})" for p in found)
        raise ImproperlyConfigured(f"settings.MODELD is invalid: {details}")
    return {
        alias: AliasSettings(
            alias=alias,
            url=options["URL"],
            timeout=float(options.get("TIMEOUT", DEFAULT_TIMEOUT)),
            retries=options.get("RETRIES", DEFAULT_RETRIES),
            backoff=float(options.get("BACKOFF", DEFAULT_BACKOFF)),
            models=tuple(options.get("MODELS", ())),
            tls_ca=options.get("TLS_CA"),
            tls_cert=options.get("TLS_CERT"),
            tls_key=options.get("TLS_KEY"),
            token=options.get("TOKEN"),
            metrics_url=_metrics_url(options),
        )
        for alias, options in raw.items()
    }
