"""Bad input over HTTP: every case gets a 4xx whose message names the problem, and then a
correct request still succeeds on the same keep-alive connection (or, where HTTP requires
closing it — an oversize or chunked body, a malformed request — on a new one)."""

import json
import socket

import numpy as np
import pytest

from http_helpers import (
    HttpClient,
    assert_linear_still_serves,
    binary_body,
    expect_error,
    kserve_tensor,
)

X = '{"name": "x", "shape": [1, 3], "datatype": "FP32", '

# (name, path, body, extra headers, status, fragments of the message)
KSERVE_CASES = [
    ("malformed json", "/v2/models/linear/infer", b'{"inputs": [', {}, 400,
     ["malformed JSON at byte 12"]),
    ("invalid utf-8", "/v2/models/linear/infer", b'{"id": "\xc3\x28", "inputs": []}', {}, 400,
     ["malformed JSON", "Invalid encoding"]),
    ("not an object", "/v2/models/linear/infer", b"[1, 2, 3]", {}, 400,
     ["must be a JSON object, got an array"]),
    ("inputs not a list", "/v2/models/linear/infer", b'{"inputs": {"x": 1}}', {}, 400,
     ['"inputs" must be an array, got an object']),
    ("data of the wrong type", "/v2/models/linear/infer",
     ('{"inputs": [' + X + '"data": [1, "2", 3]}]}').encode(), {}, 400,
     ["input 'x' element 1: expected a number for FP32, got a string"]),
    ("shape of the wrong type", "/v2/models/linear/infer",
     b'{"inputs": [{"name": "x", "shape": "1,3", "datatype": "FP32", "data": [1, 2, 3]}]}', {}, 400,
     ["input 'x' \"shape\" must be an array of integers, got a string"]),
    ("data length differs from the shape", "/v2/models/linear/infer",
     ('{"inputs": [' + X + '"data": [1, 2, 3, 4]}]}').encode(), {}, 400,
     ["input 'x' has 4 values in \"data\" but its shape [1, 3] needs 3"]),
    ("negative shape", "/v2/models/linear/infer",
     b'{"inputs": [{"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', {},
     400, ["input 'x' has a negative dimension -1"]),
    ("huge shape", "/v2/models/linear/infer",
     b'{"inputs": [{"name": "x", "shape": [9223372036854775807, 3], "datatype": "FP32", '
     b'"data": [1, 2, 3]}]}', {}, 400, ["input 'x' has shape", "too large"]),
    ("unknown datatype", "/v2/models/linear/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FLOAT32", "data": [1, 2, 3]}]}', {},
     400, ["input 'x' has unknown datatype 'FLOAT32'"]),
    ("wrong datatype for the model", "/v2/models/linear/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}', {},
     400, ["input 'x' has datatype FP64 but model 'linear' expects FP32"]),
    ("wrong shape for the model", "/v2/models/linear/infer",
     b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}', {},
     400, ["input 'x' has shape [1, 4] but model 'linear' expects [-1, 3]"]),
    ("unknown input", "/v2/models/linear/infer",
     b'{"inputs": [{"name": "z", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', {},
     400, ["unknown input 'z' for model 'linear'"]),
    ("binary header longer than the body", "/v2/models/linear/infer",
     b'{"inputs": []}', {"Inference-Header-Content-Length": "4096"}, 400,
     ["Inference-Header-Content-Length 4096 is larger than the body (14 bytes)"]),
    ("binary header not a number", "/v2/models/linear/infer",
     b'{"inputs": []}', {"Inference-Header-Content-Length": "ten"}, 400,
     ["Inference-Header-Content-Length 'ten' is not a byte count"]),
    ("unknown output", "/v2/models/linear/infer",
     ('{"inputs": [' + X + '"data": [1, 2, 3]}], "outputs": [{"name": "q"}]}').encode(), {}, 400,
     ["requested output 'q' is not an output of model 'linear'"]),
    ("bad priority", "/v2/models/linear/infer",
     ('{"inputs": [' + X + '"data": [1, 2, 3]}], "parameters": {"priority": -2}}').encode(), {},
     400, ["parameter 'priority' must be a non-negative integer"]),
    ("unknown model", "/v2/models/nope/infer",
     ('{"inputs": [' + X + '"data": [1, 2, 3]}]}').encode(), {}, 404, ["nope"]),
    ("unknown version", "/v2/models/linear/versions/9/infer",
     ('{"inputs": [' + X + '"data": [1, 2, 3]}]}').encode(), {}, 404, ["linear"]),
    ("version not a number", "/v2/models/linear/versions/latest/infer",
     ('{"inputs": [' + X + '"data": [1, 2, 3]}]}').encode(), {}, 400,
     ["model version 'latest' is not a version number"]),
    ("compressed body", "/v2/models/linear/infer", b"\x1f\x8b", {"Content-Encoding": "gzip"}, 415,
     ["Content-Encoding 'gzip' is not supported"]),
]


@pytest.fixture(scope="module")
def client(server):
    connection = HttpClient(server.http_address)
    yield connection
    connection.close()


@pytest.mark.parametrize("case", KSERVE_CASES, ids=[c[0] for c in KSERVE_CASES])
def test_kserve_bad_input_then_serves_on_the_same_connection(client, case):
    _, path, body, headers, status, fragments = case
    assert_linear_still_serves(client)
    port = client.local_port()
    expect_error(client.post(path, body, headers), status, *fragments)
    assert_linear_still_serves(client)
    assert client.local_port() == port, "the server closed the keep-alive connection"


def test_binary_sizes_that_do_not_add_up(client):
    x = np.ones((1, 3), np.float32)
    header = {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32",
                          "parameters": {"binary_data_size": 64}}]}
    body, headers = binary_body(header, [x.tobytes()])
    expect_error(client.post("/v2/models/linear/infer", body, headers), 400,
                 "input 'x' has binary_data_size 64 but only 12 bytes of binary data remain")
    header["inputs"][0]["shape"] = [1, 3]
    header["inputs"][0]["parameters"]["binary_data_size"] = 12
    body, headers = binary_body(header, [x.tobytes(), b"extra"])
    expect_error(client.post("/v2/models/linear/infer", body, headers), 400,
                 "the body has 17 bytes after the JSON header but the tensors' binary_data_size "
                 "parameters add up to 12")
    header["inputs"][0]["shape"] = [1, 4]
    body, headers = binary_body(header, [x.tobytes()])
    expect_error(client.post("/v2/models/linear/infer", body, headers), 400,
                 "input 'x' has binary_data_size 12 but shape [1, 4] of FP32 needs 16 bytes")
    # A shape whose byte size wraps around 64 bits is caught, not sent to the model.
    header = {"inputs": [{"name": "INPUT0", "shape": [1, 2**62], "datatype": "FP32",
                          "parameters": {"binary_data_size": 0}}]}
    body, headers = binary_body(header, [])
    expect_error(client.post("/v2/models/identity_fp32/infer", body, headers), 400,
                 "input 'INPUT0' has shape [1, 4611686018427387904], whose byte size is too large")
    assert_linear_still_serves(client)


def test_unknown_paths_and_wrong_methods(client):
    port = client.local_port()
    for path in ("/", "/v2/nope", "/v2/models/linear/explain", "/v3/models/linear"):
        reply = client.get(path)
        assert reply.status == 404, path
        assert reply.json() == {"error": "Not Found"}
    reply = client.get("/v2/models/linear/infer")
    expect_error(reply, 405, "GET /v2/models/linear/infer takes POST")
    assert reply.headers["allow"] == "POST"
    expect_error(client.post("/v2/health/ready", b""), 405, "takes GET")
    expect_error(client.request("DELETE", "/v1/models/linear"), 400,
                 "Malformed request: DELETE /v1/models/linear")
    assert_linear_still_serves(client)
    assert client.local_port() == port


def raw_exchange(address, data):
    """Sends `data` on a new connection; returns (status, body) and whether it was closed."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # so the server need not wait to see we are done
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_oversize_body_is_413_then_a_new_connection_serves(launch, example_repository, tmp_path):
    import shutil

    repository = tmp_path / "repo"
    for model in ("linear", "identity_fp32"):
        shutil.copytree(example_repository / model, repository / model)
    server = launch(repository, ["--http-max-body-bytes=1048576"])
    client = HttpClient(server.http_address)
    small = np.zeros((1, 200 * 1024 // 4), np.float32)
    fits = client.post("/v2/models/identity_fp32/infer", {"inputs": [kserve_tensor("INPUT0", small)]})
    assert fits.status == 200, fits.body[:200]
    big = np.zeros((1, 2 * 1024 * 1024 // 4), np.float32)
    header = {"inputs": [{"name": "INPUT0", "shape": list(big.shape), "datatype": "FP32",
                          "parameters": {"binary_data_size": big.nbytes}}]}
    body, headers = binary_body(header, [big.tobytes()])
    expect_error(client.post("/v2/models/identity_fp32/infer", body, headers), 413,
                 f"request body of {len(body)} bytes is larger than the limit of 1048576 bytes",
                 "--http-max-body-bytes")
    # The server closed that connection (the body was never read); a new one serves.
    assert client.local_port() is None
    assert_linear_still_serves(client)
    client.close()


def test_chunked_and_malformed_requests_are_refused_then_serves(server):
    status, body = raw_exchange(
        server.http_address,
        b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n")
    assert status == 411
    assert "chunked request bodies" in json.loads(body)["error"]
    status, body = raw_exchange(server.http_address, b"GARBAGE / NOT-HTTP\r\n\r\n")
    assert status == 400
    assert "malformed HTTP request" in json.loads(body)["error"]
    client = HttpClient(server.http_address)
    assert_linear_still_serves(client)
    client.close()
