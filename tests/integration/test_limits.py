"""Every request limit of docs/security.md, exceeded once: the error names the limit, and the
server keeps serving other requests. One modeld with small limits serves them all."""

import json
import socket
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from infer_helpers import (
    RPC_TIMEOUT_S,
    assert_still_serving,
    expect_rpc_error,
    make_request,
    make_stub,
)

LIMITS = [
    "--grpc-max-message-bytes=65536",
    "--http-max-body-bytes=4096",
    "--http-max-header-bytes=2048",
    "--http-max-json-depth=4",
    "--http-max-connections=3",
    "--max-request-elements=300",
]


@pytest.fixture(scope="module")
def limited(example_repository):
    from modeld_server import start_server

    server = start_server(example_repository, LIMITS)
    yield server
    server.stop()


@pytest.fixture
def stub(limited):
    return make_stub(limited.channel())


def post(server, path, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server.http_address}{path}", data=data,
                                     method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def infer_body(rows):
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    return {"inputs": [{"name": "x", "shape": [rows, 3], "datatype": "FP32",
                        "data": x.ravel().tolist()}]}


def assert_http_serves(server):
    status, reply = post(server, "/v2/models/linear/infer", infer_body(1))
    assert status == 200, reply


def test_grpc_message_size(limited, stub):
    x = np.zeros((64, 300), np.float32)  # 76,800 bytes of raw input: over 65,536
    request = make_request("identity_fp32", [("INPUT0", x)])
    expect_rpc_error(stub.ModelInfer, request, grpc.StatusCode.RESOURCE_EXHAUSTED,
                     "over the limit of 65536 bytes (--grpc-max-message-bytes)")
    assert_still_serving(stub)


def test_grpc_message_size_tfserving_predict(limited):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "identity_fp32"
    tensor = request.inputs["INPUT0"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add().size = 64
    tensor.tensor_shape.dim.add().size = 300
    tensor.tensor_content = bytes(64 * 300 * 4)
    predict = prediction_service_pb2_grpc.PredictionServiceStub(limited.channel()).Predict
    expect_rpc_error(predict, request, grpc.StatusCode.RESOURCE_EXHAUSTED,
                     "over the limit of 65536 bytes (--grpc-max-message-bytes)")


def test_grpc_message_far_over_the_size_is_stopped_by_grpc_itself(limited, stub):
    # Past twice the limit gRPC stops reading the message itself (transport/grpc_limits.h).
    x = np.zeros((64, 600), np.float32)  # 153,600 bytes: over 131,072
    expect_rpc_error(stub.ModelInfer, make_request("identity_fp32", [("INPUT0", x)]),
                     grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max", "131072")
    assert_still_serving(stub)


def test_tensor_elements_per_request(limited, stub):
    x = np.ones((101, 3), np.float32)  # 303 elements: over 300
    expect_rpc_error(stub.ModelInfer, make_request("linear", [("x", x)]),
                     grpc.StatusCode.INVALID_ARGUMENT, "more than 300 tensor elements",
                     "--max-request-elements=300")
    status, reply = post(limited, "/v2/models/linear/infer", infer_body(101))
    assert status == 400
    assert "--max-request-elements=300" in reply["error"]
    assert_still_serving(stub)
    assert_http_serves(limited)


def test_batch_size(limited, stub):
    x = np.ones((65, 3), np.float32)  # linear's max_batch_size is 64
    expect_rpc_error(stub.ModelInfer, make_request("linear", [("x", x)]),
                     grpc.StatusCode.INVALID_ARGUMENT, "max_batch_size 64")
    assert_still_serving(stub)


def test_http_body_size(limited):
    status, reply = post(limited, "/v2/models/linear/infer", b"[" + b" " * 5000 + b"]",
                         {"Content-Type": "application/json"})
    assert status == 413
    assert "limit of 4096 bytes (--http-max-body-bytes)" in reply["error"]
    assert_http_serves(limited)


def test_http_header_size(limited):
    status, reply = post(limited, "/v2/models/linear/infer", infer_body(1),
                         {"X-Padding": "p" * 3000})
    assert status == 431
    assert "limit of 2048 bytes (--http-max-header-bytes)" in reply["error"]
    assert_http_serves(limited)


def test_json_nesting_depth(limited):
    # Four levels are fine: the object, "inputs", the input, "data".
    assert_http_serves(limited)
    nested = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32",
                          "data": [[1, 2, 3]]}]}
    status, reply = post(limited, "/v2/models/linear/infer", nested)
    assert status == 400
    assert "JSON nested deeper than 4 levels" in reply["error"]
    assert "--http-max-json-depth=4" in reply["error"]
    status, reply = post(limited, "/v1/models/linear:predict", {"instances": [[[[[1]]]]]})
    assert status == 400 and "--http-max-json-depth=4" in reply["error"], reply
    assert_http_serves(limited)


def _request_on(sock, path="/v2/health/live"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while True:  # until the headers and Content-Length bytes of body are in, or EOF
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")]
            if length and len(body) >= length[0]:
                break
    return data.decode("latin-1")


def test_concurrent_http_connections(limited):
    host, port = limited.http_address.split(":")
    held = []
    try:
        for _ in range(3):  # the limit: each kept alive, each answered
            sock = socket.create_connection((host, int(port)), timeout=RPC_TIMEOUT_S)
            held.append(sock)
            assert " 200 " in _request_on(sock).splitlines()[0]
        extra = socket.create_connection((host, int(port)), timeout=RPC_TIMEOUT_S)
        held.append(extra)
        reply = _request_on(extra, "/v2/models/linear")
        assert reply.startswith("HTTP/1.1 503"), reply
        assert "at most 3 HTTP connections at once (--http-max-connections)" in reply
        # Probes still get through (deploy/kubernetes's liveness and readiness probes).
        for path in ("/v2/health/live", "/v2/health/ready"):
            with socket.create_connection((host, int(port)), timeout=RPC_TIMEOUT_S) as probe:
                reply = _request_on(probe, path)
            assert reply.startswith("HTTP/1.1 200"), reply
        # The held connections still serve; once one closes, a new connection is admitted.
        assert " 200 " in _request_on(held[0]).splitlines()[0]
        held.pop(0).close()
        deadline = time.monotonic() + 10
        while True:
            with socket.create_connection((host, int(port)), timeout=RPC_TIMEOUT_S) as again:
                reply = _request_on(again)
            if " 200 " in reply.splitlines()[0] or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # the closed connection is noticed by the server shortly
        assert " 200 " in reply.splitlines()[0], reply
    finally:
        for sock in held:
            sock.close()
