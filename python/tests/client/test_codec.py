"""The shared pieces without a server: URL parsing, the retry policy, the tensor codec."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modeld
from modeld import _codec
from modeld._common import Deadline, RetryPolicy, parse_url


def test_parse_url():
    assert parse_url("grpc://127.0.0.1:8001").target == "127.0.0.1:8001"
    assert parse_url("grpc://localhost").port == 8001
    assert parse_url("http://localhost").port == 8000
    assert parse_url("HTTP://example.com:9000/").scheme == "http"
    assert parse_url("http://example.com:9000/modeld/").prefix == "/modeld"
    assert parse_url("grpc://[::1]:8001").target == "[::1]:8001"
    for bad in ("grpc://host:8001/path", "grpc://host:99999", "http://user@host:1", "ftp://x"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_retry_policy_backs_off_exponentially_with_jitter():
    policy = RetryPolicy(retries=4, backoff=0.1, max_backoff=0.5)
    unlimited = Deadline(None)
    for retry, ceiling in enumerate([0.1, 0.2, 0.4, 0.5]):
        waits = {policy.delay(retry, unlimited) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (retry, waits)
        assert len(waits) > 1  # jitter
    assert policy.delay(4, unlimited) is None  # retries used up
    assert policy.delay(0, Deadline(0.01)) is None  # the wait would pass the deadline
    assert RetryPolicy(retries=0, backoff=0.1).delay(0, unlimited) is None


def test_deadline():
    assert Deadline(None).remaining() is None
    assert 0 < Deadline(5).remaining() <= 5
    with pytest.raises(modeld.DeadlineExceeded, match="infer: the timeout of 0s"):
        Deadline(0).check("infer")


def test_bytes_serialization():
    array = np.array([b"ab", "é", b"", 7], dtype=object)
    raw = _codec.serialize_bytes(array)
    assert raw == b"\x02\x00\x00\x00ab\x02\x00\x00\x00\xc3\xa9\x00\x00\x00\x00\x01\x00\x00\x007"
    assert _codec.deserialize_bytes(raw, 4).tolist() == [b"ab", "é".encode(), b"", b"7"]
    with pytest.raises(modeld.ModeldError, match="malformed"):
        _codec.deserialize_bytes(raw[:-1], 4)
    with pytest.raises(modeld.ModeldError, match="malformed"):
        _codec.deserialize_bytes(raw, 3)


def test_encode_uses_the_declared_datatype():
    spec = _codec.ModelSpec("m", ("1",), "", (_codec.TensorSpec("x", "FP32", (-1, 2)),), ())
    (tensor,) = _codec.encode_inputs({"x": [[1.0, 2.0]]}, spec)
    assert tensor.datatype == "FP32" and tensor.shape == (1, 2)
    assert np.frombuffer(tensor.data, "<f4").tolist() == [1.0, 2.0]
    # without metadata (an input the model does not declare) the value's own type is sent
    (tensor,) = _codec.encode_inputs({"z": [[1.0, 2.0]]}, spec)
    assert tensor.datatype == "FP64"
    with pytest.raises(TypeError):
        _codec.encode_inputs([("x", [1.0])], spec)


def test_big_endian_arrays_are_sent_little_endian():
    (tensor,) = _codec.encode_inputs({"x": np.array([1, 256], dtype=">i4")}, None)
    assert tensor.datatype == "INT32" and tensor.data == b"\x01\x00\x00\x00\x00\x01\x00\x00"


def test_http_body_and_response():
    tensors = _codec.encode_inputs({"a": np.array([[1, 2]], np.int64), "s": ["x"]}, None)
    body, length = _codec.http_infer_body(tensors, ["out"])
    header = json.loads(body[:length])
    assert header["inputs"][0] == {"name": "a", "datatype": "INT64", "shape": [1, 2],
                                   "parameters": {"binary_data_size": 16}}
    assert header["inputs"][1]["datatype"] == "BYTES"
    assert header["outputs"] == [{"name": "out", "parameters": {"binary_data": True}}]
    assert body[length:] == tensors[0].data + tensors[1].data
    # a response mixing binary and JSON outputs
    head = json.dumps({"outputs": [
        {"name": "b", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "j", "datatype": "INT32", "shape": [1, 2], "data": [3, 4]},
        {"name": "t", "datatype": "BYTES", "shape": [1], "data": ["hi"]},
    ]}).encode()
    outputs = _codec.http_infer_outputs(bytearray(head + np.array([1.5, 2.5], "<f4").tobytes()),
                                        len(head))
    assert outputs["b"].tolist() == [1.5, 2.5] and outputs["b"].dtype == np.float32
    assert outputs["j"].tolist() == [[3, 4]] and outputs["j"].dtype == np.int32
    assert outputs["t"].tolist() == [b"hi"]


def test_http_error_message():
    assert _codec.http_error_message(b'{"error": "unknown model"}', "Not Found") == "unknown model"
    assert _codec.http_error_message(b"plain text", "Bad") == "plain text"
    assert _codec.http_error_message(b"", "Bad Gateway") == "Bad Gateway"


def test_error_mapping():
    from modeld.errors import error_for_grpc, error_for_http

    assert type(error_for_grpc("NOT_FOUND", "m")) is modeld.ModelNotFound
    for code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"):
        assert type(error_for_grpc(code, "m")) is modeld.InvalidInput
    assert type(error_for_grpc("RESOURCE_EXHAUSTED", "m")) is modeld.ServerBusy
    assert type(error_for_grpc("DEADLINE_EXCEEDED", "m")) is modeld.DeadlineExceeded
    assert type(error_for_grpc("UNAVAILABLE", "m")) is modeld.Unavailable
    assert type(error_for_grpc("INTERNAL", "m")) is modeld.ModelFailed
    assert type(error_for_grpc("UNKNOWN", "m")) is modeld.ModeldError
    expected = {400: modeld.InvalidInput, 404: modeld.ModelNotFound, 429: modeld.ServerBusy,
                503: modeld.Unavailable, 504: modeld.DeadlineExceeded, 500: modeld.ModelFailed,
                501: modeld.ModeldError}
    for status, cls in expected.items():
        error = error_for_http(status, "m")
        assert type(error) is cls and error.code == str(status)
