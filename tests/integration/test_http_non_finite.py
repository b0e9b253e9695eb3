"""NaN and the infinities in KServe V2 REST answers: strict JSON, read back by every client.

`linear` fed [3e38, 3e38, 3e38] overflows to -Infinity. The KServe answer writes it as the string
"-Infinity" (docs/operations.md "HTTP"), which a strict JSON parser (Python's with
parse_constant refusing the literals, as JavaScript's JSON.parse and Go do) reads, and which
tritonclient.http and modeld's own client turn back into -inf. TensorFlow Serving's REST API
keeps its documented literal.
"""

import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from lifecycle_helpers import http_call


def strict_json(data):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(data, parse_constant=refuse)


@pytest.fixture(scope="module")
def server(example_repository):
    from modeld_server import start_server

    process = start_server(example_repository)
    yield process
    process.stop()


X = [[3e38, 3e38, 3e38]]


def test_kserve_answers_non_finite_values_as_strict_json(server):
    host, port = server.http_address.split(":")
    import http.client
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                        "data": [v for row in X for v in row]}]}
    conn.request("POST", "/v2/models/linear/infer", json.dumps(body))
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    assert reply.status == 200, data
    answer = strict_json(data)
    assert answer["outputs"][0]["data"] == ["-Infinity"], answer


def test_tritonclient_reads_the_value_back(server):
    client = httpclient.InferenceServerClient(server.http_address)
    x = httpclient.InferInput("x", [1, 3], "FP32")
    x.set_data_from_numpy(np.array(X, np.float32), binary_data=False)
    y = httpclient.InferRequestedOutput("y", binary_data=False)
    result = client.infer("linear", [x], outputs=[y])
    values = result.as_numpy("y")
    assert values.dtype == np.float32
    assert np.isneginf(values).all(), values


def test_modeld_client_reads_the_value_back(server):
    import modeld

    client = modeld.Client(f"http://{server.http_address}")
    y = client.predict("linear", np.array(X, np.float32))
    assert np.isneginf(y).all(), y


def test_the_strings_are_taken_as_inputs_too(server):
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                        "data": ["Infinity", 1, 2]}]}
    status, answer = http_call(server.http_address, "POST", "/v2/models/linear/infer", body)
    assert status == 200, answer


def test_tfserving_rest_keeps_its_literals(server):
    status, data = http_call(server.http_address, "POST", "/v1/models/linear:predict",
                             {"instances": X})
    assert status == 200, data
    text = data.decode() if isinstance(data, bytes) else json.dumps(data)
    assert "-Infinity" in text and '"-Infinity"' not in text, text
