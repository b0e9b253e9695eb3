"""modeld._prometheus: the Prometheus text reader the client and the Django status page use
(no server), and a read of a real modeld's /metrics."""

from __future__ import annotations

import math
import urllib.request

import pytest

from modeld._prometheus import Sample, histogram_quantile, parse

TEXT = """\
# HELP modeld_requests_total Inference requests answered.
# TYPE modeld_requests_total counter
modeld_requests_total{model="linear",version="1",outcome="ok"} 12
modeld_requests_total{model="linear",version="1",outcome="invalid_argument"} 3
modeld_requests_total{model="",version="",outcome="not_found"} 1

# A comment that is neither HELP nor TYPE.
modeld_grpc_connections 2
modeld_request_duration_seconds_bucket{model="linear",version="1",le="0.001"} 5
modeld_request_duration_seconds_bucket{model="linear",version="1",le="+Inf"} 15
modeld_request_duration_seconds_sum{model="linear",version="1"} 0.25 1700000000000
"""


def test_samples_in_order_with_their_labels():
    samples = parse(TEXT)
    assert samples[0] == Sample("modeld_requests_total",
                                {"model": "linear", "version": "1", "outcome": "ok"}, 12.0)
    assert samples[2].labels == {"model": "", "version": "", "outcome": "not_found"}
    assert samples[3] == Sample("modeld_grpc_connections", {}, 2.0)
    assert samples[5].labels["le"] == "+Inf"
    assert samples[6].value == 0.25  # the timestamp is dropped
    assert len(samples) == 7


def test_escapes_spaces_and_a_trailing_comma():
    (sample,) = parse('m { a = "x\\"y\\\\z\\n" , b="}{,=" , }1.5e3\n')
    assert sample.labels == {"a": 'x"y\\z\n', "b": "}{,="}
    assert sample.value == 1500.0


@pytest.mark.parametrize("text, value", [("NaN", math.nan), ("+Inf", math.inf),
                                         ("-Inf", -math.inf), ("Inf", math.inf), ("-0", 0.0)])
def test_special_values(text, value):
    (sample,) = parse(f"m {text}")
    assert sample.value == value or (math.isnan(value) and math.isnan(sample.value))


@pytest.mark.parametrize("line, says", [
    ("m", "a value"),
    ("m 1 2 3", "a value"),
    ("m one", "could not convert"),
    ('m{a="1" 1', "',' or '}'"),
    ('m{a=1} 1', 'has no ="value"'),
    ('m{a="1} 1', "not closed"),
    ('m{a="\\t"} 1', "unknown escape"),
    ('m{a="1",a="2"} 1', "twice"),
    ('m{1a="x"} 1', "label name"),
    ("{a=\"1\"} 1", "metric name"),
    ("m-1 1", "a space"),
])
def test_a_malformed_line_is_an_error_naming_it(line, says):
    with pytest.raises(ValueError, match="line 2 of the metrics text") as raised:
        parse(f"ok 1\n{line}\n")
    assert says in str(raised.value)
    assert repr(line) in str(raised.value)


def test_histogram_quantile_interpolates_in_its_bucket():
    buckets = [(0.001, 5.0), (0.002, 10.0), (0.004, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.0015)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.0005)  # from 0 in the first
    assert histogram_quantile(1.0, buckets) == pytest.approx(0.002)
    assert histogram_quantile(0.5, reversed(buckets)) == pytest.approx(0.001)  # any order


def test_histogram_quantile_in_the_inf_bucket_is_the_highest_bound():
    assert histogram_quantile(0.99, [(0.001, 1.0), (math.inf, 100.0)]) == 0.001


def test_histogram_quantile_without_observations_is_none():
    assert histogram_quantile(0.5, [(0.001, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(1.5, [(1.0, 1.0)]) is None


def test_a_real_modelds_metrics_parse(server):
    with urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=20) as answer:
        samples = parse(answer.read().decode())
    names = {s.name for s in samples}
    assert {"modeld_model_state", "modeld_request_duration_seconds_bucket",
            "modeld_process_resident_memory_bytes"} <= names
    states = {(s.labels["model"], s.labels["state"]) for s in samples
              if s.name == "modeld_model_state" and s.value == 1}
    assert ("linear", "ready") in states
