"""Readiness of the configured servers and models, shared by the health view, the
``modeld status`` command and the deploy checks."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from typing import Any

from .._redis_url import redact_url

logger = logging.getLogger("modeld.django")


@dataclass
class AliasStatus:
    """What one alias's server said about itself and about the alias's ``MODELS``."""

    alias: str
    #: the alias's URL, its password (if any) replaced by ``***``
    url: str
    live: bool = False
    ready: bool = False
    #: model name -> ready, for every model in the alias's MODELS
    models: dict[str, bool] = field(default_factory=dict)
    #: why the server could not be asked (unreachable, timed out), else None
    error: str | None = None
    #: model name -> why it is not ready, as the server says it (the reason a model failed to
    #: load, say), or why it could not be asked
    model_errors: dict[str, str] = field(default_factory=dict)
    #: model name -> UNKNOWN (the server has no such model) or NOT_LOADED (it has the model, and
    #: model_errors says why it does not serve it), for each model that is not ready
    model_problems: dict[str, str] = field(default_factory=dict)
    #: model name -> the server's model of the closest name, for an UNKNOWN model whose name
    #: looks misspelt
    suggestions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The server is ready and so is every model in MODELS."""
        return self.ready and all(self.models.values())

    def not_ready(self) -> list[str]:
        """``alias`` when the server is not ready, ``alias/model`` for each model that is not."""
        names = [] if self.ready else [self.alias]
        return names + [f"{self.alias}/{m}" for m, ready in self.models.items() if not ready]


def _describe(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {message}"


def probe(
    client: Any, alias: str, url: str, models: tuple[str, ...] | list[str], *, log: bool = True
) -> AliasStatus:
    """Asks ``client`` (a sync modeld client) whether it and ``models`` are ready.

    Never raises: any error (unreachable server, timeout) is recorded in the status, and
    logged as a warning of logger ``modeld.django`` when ``log``.
    """
    status = AliasStatus(alias=alias, url=redact_url(url),
                         models={name: False for name in models})
    try:
        status.live = bool(client.live())
        status.ready = status.live and bool(client.ready())
    except Exception as error:  # a probe reports, it never raises
        status.error = _describe(error)
        if log:
            logger.warning("modeld alias %r (%s) is unreachable: %s", alias, status.url,
                           status.error)
        return status
    if not status.live:
        status.error = "the server says it is not live"
        return status
    for name in models:
        try:
            model = client.model_status(name)
        except Exception as error:
            status.model_errors[name] = _describe(error)
            continue
        status.models[name] = model.ready
        if not model.ready:
            status.model_problems[name] = UNKNOWN if model.state == model.UNKNOWN else NOT_LOADED
            status.model_errors[name] = reason(model)
    unknown = [name for name, problem in status.model_problems.items() if problem == UNKNOWN]
    if unknown:
        status.suggestions = _closest_names(client, unknown)
    return status


def _closest_names(client: Any, unknown: list[str]) -> dict[str, str]:
    """For each of `unknown`, the server's model of the closest name, if one is close; {} when
    the server gives no list (a queue)."""
    try:
        served = sorted({model.name for model in client.models()})
    except Exception:  # a hint only: no list, no hint
        return {}
    found = {}
    for name in unknown:
        close = difflib.get_close_matches(name, served, n=1, cutoff=0.6)
        if close:
            found[name] = close[0]
    return found


#: AliasStatus.model_problems values
UNKNOWN = "unknown"
NOT_LOADED = "not loaded"


def reason(model: Any) -> str:
    """Why a model (a :class:`modeld.ModelStatus`) is not ready: the server's reason (the load
    error, "unknown model 'x'"), or, where it gives none (a version that is loading), its
    state."""
    if model.reason:
        return model.reason
    which = f"version {model.version} of model" if model.version else "model"
    return f"{which} '{model.name}' is {model.state.lower()}"
