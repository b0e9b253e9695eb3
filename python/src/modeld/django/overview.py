"""What the status page (:func:`modeld.django.views.status`) shows of each alias: its server,
every model and version the server knows with its state and reason, and what modeld's
``/metrics`` says about each version's requests since modeld started.

The models are those of modeld's repository index (``models()``), which modeld serves in every
``--model-control-mode``. An alias whose server gives no list (a ``redis://`` or ``amqp://``
alias: the queues carry none) shows the models of its ``MODELS``, each asked for its status.

Nothing here raises: whatever cannot be asked (a server that is down, metrics that cannot be
read) is recorded, with why, for the page to show.
"""

from __future__ import annotations

import logging
import math
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._prometheus import Sample, histogram_quantile, parse
from .._redis_url import redact_url
from .probe import _describe

logger = logging.getLogger("modeld.django")

#: How the server's models were listed (AliasOverview.listing).
SERVER = "server"  # models(): modeld's repository index
EXPECTED = "expected"  # only MODELS could be asked: the server gave no list
#: The most bytes of /metrics read.
MAX_METRICS_BYTES = 16 * 1024 * 1024


@dataclass
class Traffic:
    """What /metrics says of one model version, counted since modeld started."""

    #: inference requests answered, and those whose outcome was not ``ok``
    requests: float = 0.0
    errors: float = 0.0
    #: outcome -> count, for the outcomes that are not ``ok``
    error_outcomes: dict[str, float] = field(default_factory=dict)
    #: mean and estimated 50th / 99th percentile of the request duration, in seconds (None
    #: without requests)
    mean_s: float | None = None
    p50_s: float | None = None
    p99_s: float | None = None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    # For the template, which cannot multiply.
    @property
    def error_percent(self) -> float | None:
        ratio = self.error_ratio
        return None if ratio is None else 100.0 * ratio

    @property
    def mean_ms(self) -> float | None:
        return None if self.mean_s is None else 1000.0 * self.mean_s

    @property
    def p50_ms(self) -> float | None:
        return None if self.p50_s is None else 1000.0 * self.p50_s

    @property
    def p99_ms(self) -> float | None:
        return None if self.p99_s is None else 1000.0 * self.p99_s


@dataclass
class ModelRow:
    """One model version (or a model with none) on the page."""

    name: str
    version: str | None
    state: str
    ready: bool
    reason: str | None
    #: whether the model is among the alias's MODELS
    expected: bool
    traffic: Traffic | None = None


@dataclass
class AliasOverview:
    alias: str
    #: the alias's URL, its password (if any) replaced by ``***``
    url: str
    live: bool = False
    ready: bool = False
    #: why the server could not be asked (unreachable, timed out), else None
    error: str | None = None
    rows: list[ModelRow] = field(default_factory=list)
    #: SERVER or EXPECTED; and why the server's own list could not be had
    listing: str = SERVER
    listing_error: str | None = None
    #: the METRICS_URL (redacted), None when there is none; why it could not be read
    metrics_url: str | None = None
    metrics_error: str | None = None
    metrics_read: bool = False
    #: requests that named no servable model or version (model=""), since modeld started
    unresolved: Traffic | None = None
    #: modeld's resident memory in bytes, from /metrics
    resident_bytes: float | None = None

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]


# --- metrics --------------------------------------------------------------------------------


def read_metrics(config: Any) -> list[Sample]:
    """The samples of the alias's METRICS_URL, sent with the alias's token and TLS settings;
    raises OSError or ValueError."""
    import ssl

    headers = {"Accept": "text/plain"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token.strip()}"
    context = None
    if config.metrics_url.lower().startswith("https:"):
        context = ssl.create_default_context(cafile=config.tls_ca)
        if config.tls_cert:
            context.load_cert_chain(config.tls_cert, config.tls_key)
    request = urllib.request.Request(config.metrics_url, headers=headers)
    with urllib.request.urlopen(request, timeout=config.timeout, context=context) as answer:
        body = answer.read(MAX_METRICS_BYTES + 1)
    if len(body) > MAX_METRICS_BYTES:
        raise ValueError(f"more than {MAX_METRICS_BYTES} bytes of metrics")
    return parse(body.decode("utf-8", "replace"))


def _key(sample: Sample) -> tuple[str, str]:
    return sample.labels.get("model", ""), sample.labels.get("version", "")


def traffic(samples: Iterable[Sample]) -> dict[tuple[str, str], Traffic]:
    """(model, version) -> its Traffic, from modeld_requests_total and
    modeld_request_duration_seconds; ("", "") counts requests that named no servable model."""
    found: dict[tuple[str, str], Traffic] = defaultdict(Traffic)
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], float] = {}
    for sample in samples:
        key = _key(sample)
        if sample.name == "modeld_requests_total":
            entry = found[key]
            entry.requests += sample.value
            outcome = sample.labels.get("outcome", "")
            if outcome != "ok":
                entry.errors += sample.value
                entry.error_outcomes[outcome] = entry.error_outcomes.get(outcome, 0) + sample.value
        elif sample.name == "modeld_request_duration_seconds_bucket":
            try:
                bound = float(sample.labels.get("le", "").replace("+Inf", "inf"))
            except ValueError:
                continue
            buckets[key].append((bound, sample.value))
        elif sample.name == "modeld_request_duration_seconds_sum":
            sums[key] = sample.value
        elif sample.name == "modeld_request_duration_seconds_count":
            counts[key] = sample.value
    for key, count in counts.items():
        entry = found[key]  # a version no request reached yet: zero requests
        if count > 0 and key in sums and math.isfinite(sums[key]):
            entry.mean_s = sums[key] / count
    for key, pairs in buckets.items():
        found[key].p50_s = histogram_quantile(0.5, pairs)
        found[key].p99_s = histogram_quantile(0.99, pairs)
    return dict(found)


# --- one alias ------------------------------------------------------------------------------


def overview(alias_client: Any) -> AliasOverview:
    """Everything the page shows of one alias (an :class:`~modeld.django.AliasClient`)."""
    config = alias_client.config
    result = AliasOverview(alias=config.alias, url=redact_url(config.url))
    samples: list[Sample] | None = None
    if config.metrics_url:
        result.metrics_url = redact_url(config.metrics_url)
        try:
            samples = read_metrics(config)
            result.metrics_read = True
        except Exception as error:  # noqa: BLE001 (the page shows why)
            result.metrics_error = f"{type(error).__name__}: {error}"
    client = alias_client.client  # the modeld client (alias_client.models is MODELS)
    expected = list(config.models)
    try:
        result.live = bool(client.live())
        result.ready = result.live and bool(client.ready())
    except Exception as error:  # noqa: BLE001
        result.error = _describe(error)
        logger.warning("modeld alias %r (%s) is unreachable: %s", config.alias, result.url,
                       result.error)
    statuses: list[Any] = []
    if result.error is None:
        statuses = _list_models(client, result)
        listed = {status.name for status in statuses}
        for name in expected:
            if name not in listed:
                try:
                    statuses.append(client.model_status(name))
                except Exception as error:  # noqa: BLE001
                    statuses.append(_unasked(name, error))
    else:
        statuses = [_unasked(name, None) for name in expected]
    counted = traffic(samples) if samples is not None else None
    for status in statuses:
        row = ModelRow(name=status.name, version=status.version, state=status.state,
                       ready=status.ready, reason=status.reason,
                       expected=status.name in expected)
        if counted is not None and status.version:
            # A version no request reached yet has no modeld_requests_total: zero requests.
            row.traffic = counted.get((status.name, status.version), Traffic())
        result.rows.append(row)
    if samples is not None:
        result.unresolved = (counted or {}).get(("", ""), Traffic())
        for sample in samples:
            if sample.name == "modeld_process_resident_memory_bytes":
                result.resident_bytes = sample.value
    return result


#: The state of a model of MODELS that could not be asked about (the server is down).
NOT_ASKED = "NOT ASKED"


def _unasked(name: str, error: Exception | None) -> Any:
    from .._status import ModelStatus

    return ModelStatus(name, None, False, NOT_ASKED, _describe(error) if error else None)


#: ModeldError code of models() -> why the server gives no list, as the page says it.
_WHY_NO_LIST = {
    "UNIMPLEMENTED": "modeld's Redis and AMQP queues carry no list of models",
}


def _list_models(client: Any, result: AliasOverview) -> list[Any]:
    """The server's models: models(), modeld's repository index. Where the server gives no
    list (a Redis or AMQP queue carries none; an error), nothing, and why: the caller asks
    each model of MODELS."""
    try:
        return list(client.models())
    except Exception as error:  # noqa: BLE001 (the page shows why)
        result.listing = EXPECTED
        result.listing_error = _WHY_NO_LIST.get(getattr(error, "code", None)) or _describe(error)
        return []
