"""Triton's own HTTP client (tritonclient[http], from PyPI) against modeld: health, metadata,
config, and inference with JSON and with binary tensors, checked against numpy.

tritonclient.http imports no protobuf, so it runs in this process next to the gRPC stubs.
"""

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from http_helpers import linear_expected


@pytest.fixture(scope="module")
def triton(server):
    client = httpclient.InferenceServerClient(server.http_address, network_timeout=30.0)
    yield client
    client.close()


def infer_input(name, array, binary):
    tensor = httpclient.InferInput(name, list(array.shape), {
        np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.bool_): "BOOL",
    }[array.dtype])
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_health_and_metadata(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("linear")
    assert triton.is_model_ready("linear", "1")
    assert not triton.is_model_ready("nope")
    assert not triton.is_model_ready("linear", "9")
    metadata = triton.get_server_metadata()
    assert metadata["name"] == "modeld"
    assert "binary_tensor_data" in metadata["extensions"]
    model = triton.get_model_metadata("linear")
    assert model["versions"] == ["1", "2"]
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    config = triton.get_model_config("add_sub")
    assert config["max_batch_size"] == 0
    assert [o["name"] for o in config["output"]] == ["OUTPUT0", "OUTPUT1"]
    with pytest.raises(InferenceServerException) as info:
        triton.get_model_metadata("nope")
    assert info.value.status() == "404"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_linear(triton, binary):
    x = np.array([[1.0, 2.0, 3.0], [-0.5, 0.25, 8.0]], np.float32)
    outputs = [httpclient.InferRequestedOutput("y", binary_data=binary)]
    result = triton.infer("linear", [infer_input("x", x, binary)], outputs=outputs,
                          request_id="tc-1")
    assert result.get_response()["id"] == "tc-1"
    assert result.get_response()["model_version"] == "2"
    np.testing.assert_allclose(result.as_numpy("y"), linear_expected(x), rtol=1e-6)
    v1 = triton.infer("linear", [infer_input("x", x, binary)], model_version="1")
    np.testing.assert_allclose(v1.as_numpy("y"), linear_expected(x, version=1), rtol=1e-6)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_add_sub_with_every_output_by_default(triton, binary):
    a = np.random.default_rng(1).standard_normal(16).astype(np.float32)
    b = np.random.default_rng(2).standard_normal(16).astype(np.float32)
    # No outputs named: the client asks for every output as binary (binary_data_output).
    result = triton.infer("add_sub", [infer_input("INPUT0", a, binary),
                                      infer_input("INPUT1", b, binary)])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_identity_fp32_is_bit_exact(triton, binary):
    bits = np.random.default_rng(3).integers(0, 2**32, size=(4, 500), dtype=np.uint64)
    x = bits.astype(np.uint32).view(np.float32)
    x[~np.isfinite(x)] = 0.1
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    result = triton.infer("identity_fp32", [infer_input("INPUT0", x, binary)], outputs=outputs)
    y = result.as_numpy("OUTPUT0")
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y.view(np.uint32), x.view(np.uint32))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_int64_bool(triton, binary):
    ids = np.array([[5, -3, 2**40, 0], [1, 2, 3, -4]], np.int64)
    mask = np.array([[True, True, False, True], [False, True, True, True]])
    outputs = [httpclient.InferRequestedOutput("masked_ids", binary_data=binary),
               httpclient.InferRequestedOutput("positive", binary_data=not binary)]
    result = triton.infer("int64_bool", [infer_input("ids", ids, binary),
                                         infer_input("mask", mask, not binary)], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("masked_ids"), ids * mask)
    np.testing.assert_array_equal(result.as_numpy("positive"), ids > 0)


def test_errors_come_back_as_exceptions_with_status(triton):
    x = np.ones((1, 4), np.float32)
    with pytest.raises(InferenceServerException) as info:
        triton.infer("linear", [infer_input("x", x, True)])
    assert info.value.status() == "400"
    assert "input 'x' has shape [1, 4] but model 'linear' expects [-1, 3]" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        triton.infer("nope", [infer_input("x", x, False)])
    assert info.value.status() == "404"
    # The same client (and its pooled connections) still works.
    y = triton.infer("linear", [infer_input("x", np.ones((1, 3), np.float32), True)])
    np.testing.assert_allclose(y.as_numpy("y"), [[4.0]])
