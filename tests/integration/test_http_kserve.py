"""KServe V2 REST over the real binary: health, metadata, config and inference (JSON and the
binary tensor extension), on one keep-alive connection per test."""

import json
import struct

import numpy as np
import pytest

from http_helpers import (
    HttpClient,
    binary_body,
    expect_error,
    kserve_tensor,
    linear_expected,
    split_binary_reply,
)


@pytest.fixture
def client(server):
    connection = HttpClient(server.http_address)
    yield connection
    connection.close()


def test_health_answers_by_status_code(client):
    live = client.get("/v2/health/live")
    assert live.status == 200 and live.json() == {"live": True}
    assert client.get("/v2/health/ready").status == 200
    assert client.get("/v2/models/linear/ready").json() == {"name": "linear", "ready": True}
    assert client.get("/v2/models/linear/versions/1/ready").status == 200
    for path in ("/v2/models/nope/ready", "/v2/models/linear/versions/9/ready"):
        reply = client.get(path)
        assert reply.status == 503, path
        assert reply.json()["ready"] is False


def test_server_and_model_metadata(client):
    server = client.get("/v2").json()
    assert server["name"] == "modeld"
    assert "binary_tensor_data" in server["extensions"]
    assert "model_configuration" in server["extensions"]
    assert server["version"]

    linear = client.get("/v2/models/linear").json()
    assert linear == {
        "name": "linear",
        "versions": ["1", "2"],
        "platform": "pytorch_libtorch",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
    }
    assert client.get("/v2/models/add_sub/versions/1").json()["inputs"][1] == {
        "name": "INPUT1", "datatype": "FP32", "shape": [16]}
    expect_error(client.get("/v2/models/nope"), 404, "nope")


def test_model_config_is_protobuf_json_with_snake_case_names(client):
    config = client.get("/v2/models/add_sub/config").json()
    assert config["name"] == "add_sub"
    assert config["platform"] == "pytorch_libtorch"
    assert config["max_batch_size"] == 0
    assert [i["name"] for i in config["input"]] == ["INPUT0", "INPUT1"]
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert config["input"][0]["dims"] == [16]
    linear = client.get("/v2/models/linear/versions/1/config").json()
    assert linear["max_batch_size"] == 64
    assert "all" in linear["version_policy"]


def test_json_inference_nested_and_flat_on_one_connection(client):
    x = np.array([[1.0, 2.0, 3.0], [4.0, -5.5, 6.25]], np.float32)
    nested = {"id": "nested-1", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                                             "data": x.tolist()}]}
    reply = client.post("/v2/models/linear/infer", nested)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    port = client.local_port()
    body = reply.json()
    assert body["model_name"] == "linear"
    assert body["model_version"] == "2"
    assert body["id"] == "nested-1"
    (y,) = body["outputs"]
    assert (y["name"], y["datatype"], y["shape"]) == ("y", "FP32", [2, 1])
    np.testing.assert_allclose(np.array(y["data"], np.float32).reshape(2, 1), linear_expected(x),
                               rtol=1e-6)

    flat = client.post("/v2/models/linear/versions/1/infer",
                       {"inputs": [kserve_tensor("x", x)],
                        "parameters": {"priority": 1, "timeout": 5000000}})
    assert flat.status == 200, flat.body
    assert flat.json()["model_version"] == "1"
    np.testing.assert_allclose(np.array(flat.json()["outputs"][0]["data"], np.float32),
                               linear_expected(x, version=1).ravel(), rtol=1e-6)
    assert client.local_port() == port, "the server closed a keep-alive connection"


def test_two_inputs_two_outputs_and_output_filtering(client):
    a = np.linspace(-4, 4, 16, dtype=np.float32)
    b = np.arange(16, dtype=np.float32) / 3
    request = {"inputs": [kserve_tensor("INPUT0", a), kserve_tensor("INPUT1", b)]}
    outputs = {o["name"]: o for o in client.post("/v2/models/add_sub/infer", request).json()["outputs"]}
    np.testing.assert_array_equal(np.array(outputs["OUTPUT0"]["data"], np.float32), a + b)
    np.testing.assert_array_equal(np.array(outputs["OUTPUT1"]["data"], np.float32), a - b)

    request["outputs"] = [{"name": "OUTPUT1"}]
    only = client.post("/v2/models/add_sub/infer", request).json()["outputs"]
    assert [o["name"] for o in only] == ["OUTPUT1"]


def test_int64_and_bool_as_json(client):
    ids = np.array([[5, -3, 2**40, 0]], np.int64)
    mask = np.array([[True, True, False, True]])
    reply = client.post("/v2/models/int64_bool/infer",
                        {"inputs": [kserve_tensor("ids", ids), kserve_tensor("mask", mask)]})
    assert reply.status == 200, reply.body
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert outputs["masked_ids"]["datatype"] == "INT64"
    assert outputs["masked_ids"]["data"] == (ids * mask).ravel().tolist()
    assert outputs["positive"]["datatype"] == "BOOL"
    assert outputs["positive"]["data"] == [True, False, True, False]


def test_fp32_json_round_trips_bit_exactly(client):
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=4000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    special = np.array([0.1, 1 / 3, 7.038531e-26, 3.4028235e38, -1.17549435e-38, 1e-45, -0.0,
                        16777217.0, 123.456], np.float32)
    values = np.concatenate([special, values]).reshape(1, -1)
    # Python writes each float32's exact float64 value; modeld must give back the same bits.
    request = {"inputs": [{"name": "INPUT0", "shape": list(values.shape), "datatype": "FP32",
                           "data": [float(v) for v in values.ravel()]}]}
    reply = client.post("/v2/models/identity_fp32/infer", request)
    assert reply.status == 200, reply.body[:300]
    back = np.array(reply.json()["outputs"][0]["data"], np.float64).astype(np.float32)
    np.testing.assert_array_equal(back.view(np.uint32), values.ravel().view(np.uint32))

    # The shortest float32 text ("0.1") parses to the same float32 too.
    text = '{"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", ' \
           '"data": [0.1, 3.4028235e38, 1e-45]}]}'
    data = client.post("/v2/models/identity_fp32/infer", text).json()["outputs"][0]["data"]
    expected = np.array([0.1, 3.4028235e38, 1e-45], np.float32)
    np.testing.assert_array_equal(np.array(data, np.float64).astype(np.float32).view(np.uint32),
                                  expected.view(np.uint32))


def test_nan_and_infinity_travel_as_strict_json(client):
    request = '{"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", ' \
              '"data": [NaN, Infinity, -Infinity]}]}'
    reply = client.post("/v2/models/identity_fp32/infer", request)
    assert reply.status == 200, reply.body
    # Answered as strict JSON: the strings a float() or numpy reads back as the values.
    assert b'["NaN","Infinity","-Infinity"]' in reply.body
    data = np.array(reply.json()["outputs"][0]["data"], np.float32)
    assert np.isnan(data[0]) and data[1] == np.inf and data[2] == -np.inf


def test_binary_tensor_data_in_and_out(client):
    x = np.array([[1.0, 2.0, 3.0], [0.5, 0.25, -8.0]], np.float32)
    header = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                          "parameters": {"binary_data_size": x.nbytes}}],
              "parameters": {"binary_data_output": True}}
    body, headers = binary_body(header, [x.tobytes()])
    reply = client.post("/v2/models/linear/infer", body, headers)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/octet-stream"
    meta, raw = split_binary_reply(reply)
    (y,) = meta["outputs"]
    assert y["parameters"] == {"binary_data_size": 8}
    assert "data" not in y
    np.testing.assert_allclose(np.frombuffer(raw["y"], np.float32).reshape(2, 1),
                               linear_expected(x), rtol=1e-6)


def test_binary_and_json_mixed_per_tensor(client):
    ids = np.array([[7, -1, 3]], np.int64)
    mask = np.array([[True, False, True]])
    header = {"inputs": [{"name": "ids", "shape": [1, 3], "datatype": "INT64",
                          "parameters": {"binary_data_size": ids.nbytes}},
                         kserve_tensor("mask", mask)],
              "outputs": [{"name": "positive", "parameters": {"binary_data": True}},
                          {"name": "masked_ids", "parameters": {"binary_data": False}}]}
    body, headers = binary_body(header, [ids.tobytes()])
    reply = client.post("/v2/models/int64_bool/infer", body, headers)
    assert reply.status == 200, reply.body
    meta, raw = split_binary_reply(reply)
    assert [o["name"] for o in meta["outputs"]] == ["positive", "masked_ids"]
    assert np.frombuffer(raw["positive"], np.bool_).tolist() == [True, False, True]
    assert meta["outputs"][1]["data"] == [7, 0, 3]


def test_pure_json_with_the_header_triton_clients_always_send(client):
    request = json.dumps({"inputs": [kserve_tensor("x", np.ones((1, 3), np.float32))]}).encode()
    reply = client.post("/v2/models/linear/infer", request,
                        {"Inference-Header-Content-Length": str(len(request))})
    assert reply.status == 200, reply.body
    assert reply.json()["outputs"][0]["data"] == pytest.approx([4.0])


def test_bytes_tensors_as_strings_and_binary(launch, tmp_path):
    repository = tmp_path / "repo"
    (repository / "text" / "1").mkdir(parents=True)
    (repository / "text" / "config.pbtxt").write_text(
        'backend: "fake"\nmax_batch_size: 4\n'
        'input [ { name: "s" data_type: TYPE_STRING dims: [ 2 ] } ]\n'
        'output [ { name: "t" data_type: TYPE_STRING dims: [ 2 ] } ]\n')
    server = launch(repository)
    client = HttpClient(server.http_address)
    reply = client.post("/v2/models/text/infer", {"inputs": [
        {"name": "s", "shape": [1, 2], "datatype": "BYTES", "data": ["héllo", ""]}]})
    assert reply.status == 200, reply.body
    assert reply.json()["outputs"][0]["data"] == ["héllo", ""]

    raw = b"".join(struct.pack("<I", len(v)) + v for v in (b"\xff\x00", b"ok"))
    header = {"inputs": [{"name": "s", "shape": [1, 2], "datatype": "BYTES",
                          "parameters": {"binary_data_size": len(raw)}}]}
    body, headers = binary_body(header, [raw])
    # Not UTF-8: refused as a JSON output, with a message that says how to ask for it.
    expect_error(client.post("/v2/models/text/infer", body, headers), 400,
                 "output 't' element 0 is not valid UTF-8", "binary_data")
    header["outputs"] = [{"name": "t", "parameters": {"binary_data": True}}]
    body, headers = binary_body(header, [raw])
    meta, outputs = split_binary_reply(client.post("/v2/models/text/infer", body, headers))
    assert outputs["t"] == raw
    client.close()
