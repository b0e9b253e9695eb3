"""A small reader of the Prometheus text format (version 0.0.4), as modeld's ``/metrics``
answers it (docs/metrics.md): enough to read samples and estimate quantiles of histograms,
without a dependency.

    samples = parse(text)
    total = sum(s.value for s in samples if s.name == "modeld_requests_total")

Comments (``# HELP``, ``# TYPE`` and others) and blank lines are skipped; every other line must
be a sample, ``name{label="value",...} value [timestamp]``, or :func:`parse` raises ValueError
naming the line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Sample", "parse", "histogram_quantile"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass(frozen=True)
class Sample:
    """One line of the text: a metric name, its labels and its value (the timestamp, which
    modeld never writes, is dropped)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0


def _value(text: str) -> float:
    # Go's ParseFloat spellings, which Prometheus writes: NaN, +Inf, -Inf (and Inf).
    spelled = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}
    lowered = text.lower()
    if lowered in spelled:
        return spelled[lowered]
    return float(text)  # ValueError for anything else


def _labels(line: str, at: int) -> tuple[dict[str, str], int]:
    """The labels of the ``{...}`` that starts at line[at]; and where the text after it starts."""
    labels: dict[str, str] = {}
    at += 1
    while True:
        while at < len(line) and line[at] in " \t":
            at += 1
        if at < len(line) and line[at] == "}":
            return labels, at + 1
        match = _LABEL_NAME.match(line, at)
        if not match:
            raise ValueError("a label name was expected")
        name, at = match.group(), match.end()
        for expected in ("=", '"'):
            while at < len(line) and line[at] in " \t":
                at += 1
            if line[at:at + 1] != expected:
                raise ValueError(f'label {name!r} has no ="value"')
            at += 1
        value = []
        while True:
            if at >= len(line):
                raise ValueError(f"the value of label {name!r} is not closed")
            char = line[at]
            if char == "\\":
                escaped = _ESCAPES.get(line[at + 1:at + 2])
                if escaped is None:
                    raise ValueError(f"label {name!r}: unknown escape {line[at:at + 2]!r}")
                value.append(escaped)
                at += 2
            elif char == '"':
                at += 1
                break
            else:
                value.append(char)
                at += 1
        if name in labels:
            raise ValueError(f"label {name!r} appears twice")
        labels[name] = "".join(value)
        while at < len(line) and line[at] in " \t":
            at += 1
        if at < len(line) and line[at] == ",":
            at += 1
        elif at >= len(line) or line[at] != "}":
            raise ValueError("',' or '}' was expected after a label")


def parse(text: str) -> list[Sample]:
    """Every sample of `text`, in order; ValueError (naming the line) for a malformed line."""
    samples = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            match = _NAME.match(line)
            if not match:
                raise ValueError("a metric name was expected")
            name, at = match.group(), match.end()
            labels: dict[str, str] = {}
            rest = line[at:].lstrip(" \t")
            if rest.startswith("{"):
                labels, at = _labels(rest, 0)
                rest = rest[at:]
            elif rest == line[at:] and rest:
                raise ValueError("a space was expected after the name")
            values = rest.split()
            if not values or len(values) > 2:
                raise ValueError("a value (and at most a timestamp) was expected")
            samples.append(Sample(name, labels, _value(values[0])))
        except ValueError as error:
            raise ValueError(f"line {number} of the metrics text: {error}: {raw!r}") from None
    return samples


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The `q`-quantile (0..1) of a histogram given as (upper bound ``le``, cumulative count)
    pairs, estimated as Prometheus's histogram_quantile does: linearly within the bucket it
    falls in (from 0 for the first bucket). None without observations; the highest finite
    bound when it falls in the +Inf bucket."""
    ordered = sorted(buckets)
    if not ordered or not 0 <= q <= 1:
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
