"""TensorFlow Serving's REST API over the real binary: model status, metadata, and :predict in
row ("instances") and columnar ("inputs") form, with TF Serving's error shapes."""

import base64

import numpy as np
import pytest

from http_helpers import HttpClient, expect_error, linear_expected


@pytest.fixture
def client(server):
    connection = HttpClient(server.http_address)
    yield connection
    connection.close()


def test_model_status(client):
    status = client.get("/v1/models/linear").json()
    assert status == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    ]}
    one = client.get("/v1/models/linear/versions/1").json()["model_version_status"]
    assert [v["version"] for v in one] == ["1"]
    expect_error(client.get("/v1/models/linear/versions/7"), 404, "Could not find version 7")
    expect_error(client.get("/v1/models/nope"), 404, "nope")


def test_metadata_has_a_serving_default_signature(client):
    metadata = client.get("/v1/models/linear/metadata").json()
    assert metadata["model_spec"] == {"name": "linear", "signature_name": "", "version": "2"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["x"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}], "unknown_rank": False}
    assert signature["outputs"]["y"]["dtype"] == "DT_FLOAT"
    pinned = client.get("/v1/models/int64_bool/versions/1/metadata").json()
    inputs = pinned["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert inputs["ids"]["dtype"] == "DT_INT64" and inputs["mask"]["dtype"] == "DT_BOOL"
    assert pinned["model_spec"]["version"] == "1"


def test_predict_row_format(client):
    x = np.array([[1.0, 2.0, 3.0], [4.0, -5.5, 6.25], [0.0, 0.0, 1.0]], np.float32)
    reply = client.post("/v1/models/linear:predict", {"instances": x.tolist()})
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    predictions = np.array(reply.json()["predictions"], np.float32)
    np.testing.assert_allclose(predictions, linear_expected(x), rtol=1e-6)

    v1 = client.post("/v1/models/linear/versions/1:predict",
                     {"signature_name": "serving_default", "instances": x.tolist()})
    np.testing.assert_allclose(np.array(v1.json()["predictions"], np.float32),
                               linear_expected(x, version=1), rtol=1e-6)


def test_predict_rows_of_named_inputs_answer_per_row_objects(client):
    reply = client.post("/v1/models/int64_bool:predict", {"instances": [
        {"ids": [5, -3, 2], "mask": [True, False, True]},
        {"ids": [0, 7, -1], "mask": [True, True, True]},
    ]})
    assert reply.status == 200, reply.body
    assert reply.json() == {"predictions": [
        {"masked_ids": [5, 0, 2], "positive": [True, False, True]},
        {"masked_ids": [0, 7, -1], "positive": [False, True, False]},
    ]}


def test_predict_columnar_format(client):
    a = np.linspace(-2, 2, 16, dtype=np.float32)
    b = np.full(16, 0.5, np.float32)
    reply = client.post("/v1/models/add_sub:predict", {"inputs": {"INPUT0": a.tolist(),
                                                                  "INPUT1": b.tolist()}})
    assert reply.status == 200, reply.body
    outputs = reply.json()["outputs"]
    np.testing.assert_array_equal(np.array(outputs["OUTPUT0"], np.float32), a + b)
    np.testing.assert_array_equal(np.array(outputs["OUTPUT1"], np.float32), a - b)

    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    single = client.post("/v1/models/linear:predict", {"inputs": x.tolist()}).json()
    np.testing.assert_allclose(np.array(single["outputs"], np.float32), linear_expected(x))


def test_nan_and_infinity_are_accepted_and_returned(client):
    reply = client.post("/v1/models/identity_fp32:predict",
                        b'{"instances": [[NaN, Infinity, -Infinity, 1.5]]}')
    assert reply.status == 200, reply.body
    (row,) = reply.json()["predictions"]
    assert np.isnan(row[0]) and row[1] == float("inf") and row[2] == float("-inf")
    assert row[3] == 1.5


@pytest.mark.parametrize("body, fragments", [
    ({"signature_name": "predict_images", "instances": [[1, 2, 3]]},
     ["signature_name 'predict_images' not found"]),
    ({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}, ['both "instances" and "inputs"']),
    ({"examples": [[1, 2, 3]]}, ['neither "instances"']),
    ({"instances": [[1, 2, 3], [4, 5]]},
     ["instances disagree on the shape of input 'x': instance 0 has [3], instance 1 has [2]"]),
    ({"instances": [[1, "2", 3]]}, ["input 'x' of instance 0 element 1: expected a number"]),
    ({"instances": [[1, 2]]}, ["input 'x' has shape [1, 2] but model 'linear' expects [-1, 3]"]),
    ({"inputs": {"z": [[1, 2, 3]]}}, ["\"inputs\" names unknown input 'z'"]),
], ids=["signature", "both", "neither", "ragged rows", "wrong type", "wrong shape", "unknown"])
def test_predict_errors_name_the_problem(client, body, fragments):
    good = {"instances": [[1.0, 1.0, 1.0]]}
    assert client.post("/v1/models/linear:predict", good).status == 200
    port = client.local_port()
    expect_error(client.post("/v1/models/linear:predict", body), 400, *fragments)
    reply = client.post("/v1/models/linear:predict", good)
    assert reply.status == 200, reply.body
    assert reply.json()["predictions"] == [pytest.approx([4.0])]
    assert client.local_port() == port, "the server closed the keep-alive connection"


def test_predict_errors_on_models_and_paths(client):
    expect_error(client.post("/v1/models/add_sub:predict",
                             {"instances": [{"INPUT0": [0.0] * 16, "INPUT1": [0.0] * 16}]}),
                 400, "model 'add_sub' has no batch dimension", 'columnar "inputs"')
    port = client.local_port()
    expect_error(client.post("/v1/models/nope:predict", {"instances": [[1]]}), 404, "nope")
    expect_error(client.post("/v1/models/linear:regress", {"examples": []}), 501,
                 "regress (tf.Example input) is not offered")
    expect_error(client.get("/v1/models/linear:predict"), 400,
                 "Malformed request: GET /v1/models/linear:predict")
    expect_error(client.get("/v1/models/linear/labels/stable"), 400,
                 "Unrecognized servable version label: 'stable'")
    expect_error(client.post("/v1/models/linear:predict", b"{oops"), 400, "malformed JSON")
    assert client.post("/v1/models/linear:predict", {"instances": [[0, 0, 0]]}).status == 200
    assert client.local_port() == port, "the server closed the keep-alive connection"


def test_b64_bytes_in_and_out(launch, tmp_path):
    repository = tmp_path / "repo"
    (repository / "text" / "1").mkdir(parents=True)
    (repository / "text" / "config.pbtxt").write_text(
        'backend: "fake"\nmax_batch_size: 4\n'
        'input [ { name: "s" data_type: TYPE_STRING dims: [ 1 ] } ]\n'
        'output [ { name: "s_bytes" data_type: TYPE_STRING dims: [ 1 ] } ]\n')
    server = launch(repository)
    client = HttpClient(server.http_address)
    blob = bytes(range(256))
    reply = client.post("/v1/models/text:predict", {"instances": [
        [{"b64": base64.b64encode(blob).decode()}], ["plain text"]]})
    assert reply.status == 200, reply.body
    rows = reply.json()["predictions"]
    assert base64.b64decode(rows[0][0]["b64"]) == blob
    assert base64.b64decode(rows[1][0]["b64"]) == b"plain text"
    expect_error(client.post("/v1/models/text:predict", {"instances": [[{"b64": "***"}]]}), 400,
                 "\"b64\" is not valid base64")
    client.close()
