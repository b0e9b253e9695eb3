"""Every method of modeld.Client against the real server, over gRPC, HTTP and Redis."""

from __future__ import annotations

import numpy as np
import pytest

import modeld

# examples/generate_models.py: linear v1 is y = x @ W + b; v2 doubles W and b.
W = np.array([[0.5], [-1.25], [2.0]], dtype=np.float32)
B = np.array([0.75], dtype=np.float32)


def linear(x, version=2):
    scale = 2 if version == 2 else 1
    return np.asarray(x, dtype=np.float32) @ (scale * W) + scale * B


def test_attributes(url):
    client = modeld.Client(url, timeout=3.5, retries=2, backoff=0.01)
    assert client.url == url
    assert client.timeout == 3.5
    assert url in repr(client)
    client.close()


def test_live_and_ready(client):
    assert client.live() is True
    assert client.ready() is True


def test_model_ready(client):
    assert client.model_ready("linear") is True
    assert client.model_ready("linear", 1) is True
    assert client.model_ready("linear", "2") is True
    assert client.model_ready("linear", 3) is False  # not a served version
    assert client.model_ready("linear", "latest") is False  # not a version number
    assert client.model_ready("no_such_model") is False


def test_server_metadata(client, transport):
    if transport == "redis":
        # The queue carries model metadata and readiness only (docs/redis.md).
        with pytest.raises(modeld.ModeldError) as info:
            client.metadata()
        assert info.value.code == "UNIMPLEMENTED" and "grpc://" in info.value.message
        return
    metadata = client.metadata()
    assert metadata["name"] == "modeld"
    assert isinstance(metadata["version"], str) and metadata["version"]
    assert "model_configuration" in metadata["extensions"]


def test_model_metadata(client):
    assert client.metadata("linear") == {
        "name": "linear",
        "versions": ["1", "2"],
        "platform": "pytorch_libtorch",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
    }
    add_sub = client.metadata("add_sub", version=1)
    assert [t["name"] for t in add_sub["inputs"]] == ["INPUT0", "INPUT1"]
    assert [t["shape"] for t in add_sub["outputs"]] == [[16], [16]]


def test_model_config(client, transport, server):
    if transport == "redis":
        # The queue carries model metadata, not the config (docs/redis.md).
        with pytest.raises(modeld.ModeldError) as info:
            client.model_config("linear")
        assert info.value.code == "UNIMPLEMENTED" and "grpc://" in info.value.message
        return
    config = client.model_config("linear")
    # examples/models/linear/config.pbtxt, as modeld serves it: every field, enums by name.
    assert (config["name"], config["platform"], config["max_batch_size"]) == (
        "linear", "pytorch_libtorch", 64)
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "format": "FORMAT_NONE",
                                "dims": [3]}]
    assert config["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": [1]}]
    assert client.model_config("linear", 1) == client.model_config("linear", "2") == config
    assert client.model_config("add_sub")["max_batch_size"] == 0  # it does not batch
    # The same dict over both protocols, 64-bit integers as numbers.
    other = "http" if transport == "grpc" else "grpc"
    address = server.http_address if other == "http" else server.address
    with modeld.Client(f"{other}://{address}") as same_server:
        for model in ("linear", "mlp", "add_sub", "digits"):
            assert client.model_config(model) == same_server.model_config(model), model
    mlp = client.model_config("mlp")
    assert mlp["dynamic_batching"]["max_queue_delay_microseconds"] == 0
    assert mlp["instance_group"][0]["count"] == 1
    with pytest.raises(modeld.ModelNotFound, match="no_such_model"):
        client.model_config("no_such_model")
    with pytest.raises(modeld.ModelNotFound, match="version 7"):
        client.model_config("linear", 7)


def test_predict_linear_from_lists_and_arrays(client):
    x = [[1.0, 2.0, 3.0], [-4.0, 0.5, 0.0]]
    y = client.predict("linear", x)
    assert y.dtype == np.float32 and y.shape == (2, 1)
    np.testing.assert_allclose(y, linear(x), rtol=1e-6)
    # ints, float64 arrays and float32 arrays are all cast to the model's FP32
    np.testing.assert_allclose(client.predict("linear", [[1, 2, 3]]), linear([[1, 2, 3]]))
    np.testing.assert_allclose(client.predict("linear", np.array(x)), linear(x), rtol=1e-6)
    np.testing.assert_allclose(client.predict("linear", np.array(x, np.float32)), linear(x),
                               rtol=1e-6)


def test_version_selection(client):
    x = [[1.0, 2.0, 3.0]]
    v1 = client.predict("linear", x, version=1)
    v2 = client.predict("linear", x, version="2")
    latest = client.predict("linear", x)
    np.testing.assert_allclose(v1, linear(x, 1))
    np.testing.assert_allclose(v2, linear(x, 2))
    np.testing.assert_allclose(latest, v2)
    assert not np.allclose(v1, v2)
    np.testing.assert_allclose(client.infer("linear", {"x": x}, version=1)["y"], v1)


def test_predict_mlp_matches_the_reference(client, example_repository):
    reference_in = np.load(example_repository / "mlp" / "reference" / "input.npy")
    reference_out = np.load(example_repository / "mlp" / "reference" / "output.npy")
    logits = client.predict("mlp", reference_in)
    assert logits.shape == (4, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, reference_out, rtol=1e-4, atol=1e-5)
    # a nested list of Python floats (float64) is sent as FP32
    np.testing.assert_allclose(client.predict("mlp", reference_in[:1].tolist()),
                               reference_out[:1], rtol=1e-4, atol=1e-5)


def test_infer_several_inputs_and_outputs(client):
    a = np.arange(16, dtype=np.float32)
    b = np.full(16, 0.5, dtype=np.float32)
    outputs = client.infer("add_sub", {"INPUT0": a, "INPUT1": b})
    assert set(outputs) == {"OUTPUT0", "OUTPUT1"}
    np.testing.assert_array_equal(outputs["OUTPUT0"], a + b)
    np.testing.assert_array_equal(outputs["OUTPUT1"], a - b)


def test_outputs_filter(client):
    a = np.arange(16, dtype=np.float32)
    outputs = client.infer("add_sub", {"INPUT0": a, "INPUT1": a}, outputs=["OUTPUT1"])
    assert list(outputs) == ["OUTPUT1"]
    np.testing.assert_array_equal(outputs["OUTPUT1"], np.zeros(16, np.float32))
    ids = np.array([[3, -1, 7]], dtype=np.int64)
    mask = np.array([[True, True, False]])
    only = client.infer("int64_bool", {"ids": ids, "mask": mask}, outputs=["positive"])
    assert list(only) == ["positive"]


def test_int64_and_bool_round_trip(client):
    ids = np.array([[2**40, -5, 0, 9]], dtype=np.int64)
    mask = np.array([[True, False, True, True]])
    outputs = client.infer("int64_bool", {"ids": ids, "mask": mask})
    assert outputs["masked_ids"].dtype == np.int64
    assert outputs["positive"].dtype == np.bool_
    np.testing.assert_array_equal(outputs["masked_ids"], [[2**40, 0, 0, 9]])
    np.testing.assert_array_equal(outputs["positive"], [[True, False, False, True]])
    # nested lists: Python ints and bools are cast to INT64 and BOOL
    from_lists = client.infer("int64_bool", {"ids": [[1, 2]], "mask": [[False, True]]})
    np.testing.assert_array_equal(from_lists["masked_ids"], [[0, 2]])


def test_identity_keeps_shape_and_values(client):
    x = np.random.default_rng(7).standard_normal((5, 33)).astype(np.float32)
    y = client.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"]
    assert y.shape == (5, 33) and y.dtype == np.float32
    np.testing.assert_array_equal(y, x)
    y[0, 0] = 42.0  # outputs are writable arrays
    # a non-contiguous view is sent in row-major order
    view = x[:, ::2]
    np.testing.assert_array_equal(client.infer("identity_fp32", {"INPUT0": view})["OUTPUT0"],
                                  view)


def test_empty_batch(client):
    y = client.infer("identity_fp32", {"INPUT0": np.zeros((1, 0), np.float32)})["OUTPUT0"]
    assert y.shape == (1, 0)


def test_context_manager_closes(url):
    with modeld.Client(url) as client:
        assert client.live()
    with pytest.raises(modeld.ModeldError, match="closed"):
        client.live()


def test_metadata_version_without_model_is_refused(client):
    with pytest.raises(ValueError):
        client.metadata(version=1)
