"""System checks of ``settings.MODELD``.

Registered by the app config under the tag ``modeld``:

==============  =========================================================================
id              problem
==============  =========================================================================
modeld.E001     ``MODELD`` is not a dict
modeld.E002     an alias is not a non-empty string, or its value is not a dict
modeld.E003     an alias has no ``URL``
modeld.E004     ``URL`` is not a string, has a scheme other than grpc/http/redis/amqp, or no
                host (or, as the client refuses: a grpc:// path, a query, fragment or user
                in a grpc/http URL; a redis:// database that is not a number, an unknown
                or repeated query option, both stream= and list=; an amqp:// vhost with a
                '/', an unknown or repeated query option)
modeld.E005     ``TIMEOUT`` is not a positive number
modeld.E006     ``RETRIES`` is not a non-negative integer
modeld.E007     ``MODELS`` is not a list (or tuple) of non-empty strings
modeld.E008     an alias has an unknown key
modeld.E009     ``BACKOFF`` is not a non-negative number
modeld.E010     ``MODELD`` has no ``"default"`` alias
modeld.E011     ``TLS_CA`` / ``TLS_CERT`` / ``TLS_KEY`` / ``TOKEN`` malformed, half a certificate
                pair, or given with a Redis URL; ``TOKEN`` with an AMQP URL, or the TLS
                files with amqp:// (not amqps://)
modeld.E012     ``METRICS_URL`` is neither None nor an http(s):// URL with a host, or carries
                a user or password
modeld.W001     (``check --deploy``) an alias's server cannot be reached
modeld.W002     (``check --deploy``) an alias's server answers but is not ready (for a Redis
                or AMQP URL: the broker answers, modeld does not answer through the queue)
modeld.W003     (``check --deploy``) a model in an alias's ``MODELS`` is not ready: unknown to
                the server, or in its repository but not serving (the server's reason)
modeld.W004     (``check --deploy``) a ``TLS_CA`` / ``TLS_CERT`` / ``TLS_KEY`` file does not
                exist, cannot be read, or holds no PEM data
modeld.W005     (``check --deploy``) an ``https://`` alias, which the asyncio client (async
                views, ``apredict``) does not speak
==============  =========================================================================

The deploy checks ask each server with a short timeout (:data:`DEPLOY_CHECK_TIMEOUT`, no
retries), on a client of their own that they close again.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning

from . import conf
from .probe import UNKNOWN, probe

#: Seconds each deploy-check call may take (or the alias's TIMEOUT when that is shorter).
DEPLOY_CHECK_TIMEOUT = 2.0


def _unreachable_hint(url: str, error: str) -> str:
    """What to do about a server that could not be asked, from how it failed."""
    scheme = url.split(":", 1)[0].lower()
    # An HTTP client that reached a gRPC port reads HTTP/2's frames as a status line; a gRPC
    # client that reached an HTTP/1.1 port says so itself.
    if scheme.startswith("http") and ("\\x00\\x00" in error or "BadStatusLine" in error):
        return "This port speaks gRPC (HTTP/2): use a grpc:// URL for it, or modeld's HTTP port."
    if scheme.startswith("grpc") and "http1.x" in error:
        return "This port speaks HTTP/1.1: use an http:// URL for it, or modeld's gRPC port."
    return "Start modeld, or correct the URL."


def _tls_file_warnings(alias: str, config: Any) -> list[CheckMessage]:
    """W004 for each TLS file of the alias that is missing, unreadable or holds no PEM data."""
    found: list[CheckMessage] = []
    for key, path in (("TLS_CA", config.tls_ca), ("TLS_CERT", config.tls_cert),
                      ("TLS_KEY", config.tls_key)):
        if not path:
            continue
        try:
            with open(path, "rb") as file:
                pem = b"-----BEGIN " in file.read(1 << 20)
            problem = None if pem else "holds no PEM data (-----BEGIN ...)"
        except FileNotFoundError:
            problem = "does not exist"
        except OSError as error:
            problem = f"cannot be read ({error.strerror})"
        if problem:
            found.append(CheckWarning(
                f"MODELD[{alias!r}][{key!r}] = {path!r} {problem}.",
                hint="Give the path of the PEM file on this machine; the client would fail "
                     "at its first call.",
                obj=f"settings.MODELD[{alias!r}]", id="modeld.W004"))
    return found


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Errors for a malformed ``MODELD`` setting."""
    return [
        Error(problem.msg, hint=problem.hint, obj="settings.MODELD", id=problem.id)
        for problem in conf.problems()
    ]


def check_servers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warnings for servers that cannot be reached or are not ready (``check --deploy``)."""
    if conf.problems():
        return []  # check_settings reports them; there is nothing sound to connect to
    from .handler import create_client

    messages: list[CheckMessage] = []
    for alias, config in conf.load().items():
        if config.url.lower().startswith("https://"):
            messages.append(CheckWarning(
                f"MODELD[{alias!r}] is an https:// URL, which modeld.aio.Client does not speak: "
                "async views calling it (apredict, ainfer) fail at their first request",
                hint="Give async views a grpcs:// alias for the same server's gRPC port, or "
                     "call this alias from sync views only.",
                obj=f"settings.MODELD[{alias!r}]", id="modeld.W005"))
        tls_warnings = _tls_file_warnings(alias, config)
        if tls_warnings:
            messages += tls_warnings  # no client can be made with them
            continue
        client = create_client(config, timeout=min(config.timeout, DEPLOY_CHECK_TIMEOUT),
                               retries=0)
        try:
            status = probe(client, alias, config.url, config.models, log=False)
        finally:
            client.close()
        obj = f"settings.MODELD[{alias!r}]"
        url = status.url  # without its password
        if status.error and not status.live:
            messages.append(CheckWarning(
                f"modeld at {url} (alias {alias!r}) cannot be reached: {status.error}",
                hint=_unreachable_hint(config.url, status.error), obj=obj, id="modeld.W001"))
            continue
        if not status.ready:
            hint = "It is still loading models, or some failed to load; see its log."
            if status.error and config.url.split(":", 1)[0].lower() in conf.QUEUE_SCHEMES:
                # The broker answered (live) but modeld did not, through the queue.
                hint = ("No modeld answers through this queue: start modeld on it (its "
                        "--redis-stream / --redis-list / --amqp-queue), or correct the queue "
                        "the URL names.")
            why = f": {status.error}" if status.error else "."
            messages.append(CheckWarning(
                f"modeld at {url} (alias {alias!r}) is not ready{why}",
                hint=hint, obj=obj, id="modeld.W002"))
        for name, ready in status.models.items():
            if not ready:
                reason = status.model_errors.get(name, "the server says it is not ready")
                if status.model_problems.get(name) == UNKNOWN:
                    close = status.suggestions.get(name)
                    guess = f" (did you mean {close!r}?)" if close else ""
                    hint = (f"modeld has no such model{guess}: add it to the model repository, "
                            "or correct or remove its name in MODELS.")
                else:
                    hint = ("The model is in modeld's repository but does not serve: the reason "
                            "above says why (it failed to load, or is still loading). Fix the "
                            "model files, or see modeld's log.")
                messages.append(CheckWarning(
                    f"Model {name!r} in MODELD[{alias!r}]['MODELS'] is not ready at "
                    f"{url}: {reason}",
                    hint=hint, obj=obj, id="modeld.W003"))
    return messages
