"""ModelInfer on the example models, checked against values computed independently in numpy
(or against torch's own reference output for mlp and cnn)."""

from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from infer_helpers import (
    LINEAR_NEWEST_VERSION,
    assert_still_serving,
    expect_rpc_error,
    infer,
    linear_expected,
    make_request,
)

BATCH_SIZES = [1, 3, 64]


def rng(seed):
    return np.random.default_rng(seed)


# --- linear: two versions, y = x @ W + b -----------------------------------------------------


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("version", [1, 2])
def test_linear_each_version(stub, version, batch):
    x = rng(batch * 10 + version).uniform(-10, 10, size=(batch, 3)).astype(np.float32)
    request = make_request("linear", [("x", x)], version=str(version), request_id=f"v{version}")
    response, outputs = infer(stub, request)
    assert response.model_name == "linear"
    assert response.model_version == str(version)
    assert response.id == f"v{version}"
    assert list(outputs) == ["y"]
    assert outputs["y"].shape == (batch, 1)
    np.testing.assert_allclose(outputs["y"], linear_expected(x, version), rtol=1e-5, atol=1e-5)


def test_linear_versions_differ(stub):
    # Guards against a server that ignores model_version: the two versions must disagree.
    x = np.array([[1.0, 1.0, 1.0]], np.float32)
    _, v1 = infer(stub, make_request("linear", [("x", x)], version="1"))
    _, v2 = infer(stub, make_request("linear", [("x", x)], version="2"))
    np.testing.assert_allclose(v1["y"], [[2.0]], rtol=1e-6)  # 0.5 - 1.25 + 2.0 + 0.75
    np.testing.assert_allclose(v2["y"], [[4.0]], rtol=1e-6)  # 1.0 - 2.5 + 4.0 + 1.5


def test_linear_without_version_runs_newest(stub):
    x = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-4.0, 0.5, 0.25]], np.float32)
    response, outputs = infer(stub, make_request("linear", [("x", x)]))
    assert response.model_version == str(LINEAR_NEWEST_VERSION)
    np.testing.assert_allclose(outputs["y"], linear_expected(x, LINEAR_NEWEST_VERSION), rtol=1e-6)


def test_linear_typed_contents(stub):
    x = np.array([[1.5, -2.0, 0.125], [3.0, 4.0, -5.0]], np.float32)
    response, outputs = infer(stub, make_request("linear", [("x", x)], version="1", typed=True))
    assert response.model_version == "1"
    np.testing.assert_allclose(outputs["y"], linear_expected(x, 1), rtol=1e-6)


def test_response_describes_outputs(stub):
    x = np.ones((2, 3), np.float32)
    response, _ = infer(stub, make_request("linear", [("x", x)], request_id="abc-123"))
    assert response.id == "abc-123"
    described = [(o.name, o.datatype, list(o.shape)) for o in response.outputs]
    assert described == [("y", "FP32", [2, 1])]


def test_empty_id_is_echoed_empty(stub):
    response, _ = infer(stub, make_request("linear", [("x", np.ones((1, 3), np.float32))]))
    assert response.id == ""


# --- mlp and cnn: torch's own reference outputs ---------------------------------------------


def load_reference(repository, model):
    folder = repository / model / "reference"
    return np.load(folder / "input.npy"), np.load(folder / "output.npy")


@pytest.mark.parametrize(
    "model,input_name", [("mlp", "x"), ("cnn", "image")], ids=["mlp", "cnn"]
)
def test_reference_batch(stub, example_repository, model, input_name):
    x, expected = load_reference(example_repository, model)
    assert x.dtype == np.float32 and x.shape[0] == 4
    _, outputs = infer(stub, make_request(model, [(input_name, x)]))
    assert outputs["logits"].shape == expected.shape
    np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "model,input_name", [("mlp", "x"), ("cnn", "image")], ids=["mlp", "cnn"]
)
def test_reference_rows_one_at_a_time(stub, example_repository, model, input_name):
    x, expected = load_reference(example_repository, model)
    for row in range(x.shape[0]):
        _, outputs = infer(stub, make_request(model, [(input_name, x[row : row + 1])]))
        np.testing.assert_allclose(outputs["logits"], expected[row : row + 1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "model,input_name", [("mlp", "x"), ("cnn", "image")], ids=["mlp", "cnn"]
)
def test_reference_full_batch_of_64(stub, example_repository, model, input_name):
    x, expected = load_reference(example_repository, model)
    tiled_x = np.concatenate([x] * 16)
    _, outputs = infer(stub, make_request(model, [(input_name, tiled_x)], typed=True))
    assert outputs["logits"].shape == (64, 10)
    np.testing.assert_allclose(
        outputs["logits"], np.concatenate([expected] * 16), rtol=1e-4, atol=1e-5
    )


# --- add_sub: no batch dimension, two outputs -----------------------------------------------


def add_sub_inputs(seed=0):
    r = rng(seed)
    return (
        r.uniform(-100, 100, 16).astype(np.float32),
        r.uniform(-100, 100, 16).astype(np.float32),
    )


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_add_sub(stub, typed):
    a, b = add_sub_inputs(1)
    request = make_request("add_sub", [("INPUT0", a), ("INPUT1", b)], typed=typed)
    response, outputs = infer(stub, request)
    assert [o.name for o in response.outputs] == ["OUTPUT0", "OUTPUT1"]
    assert [list(o.shape) for o in response.outputs] == [[16], [16]]
    np.testing.assert_allclose(outputs["OUTPUT0"], a + b, rtol=1e-6)
    np.testing.assert_allclose(outputs["OUTPUT1"], a - b, rtol=1e-6)


def test_add_sub_inputs_in_any_order(stub):
    a, b = add_sub_inputs(2)
    _, outputs = infer(stub, make_request("add_sub", [("INPUT1", b), ("INPUT0", a)]))
    np.testing.assert_allclose(outputs["OUTPUT1"], a - b, rtol=1e-6)


def test_requested_output_filters(stub):
    a, b = add_sub_inputs(3)
    request = make_request("add_sub", [("INPUT0", a), ("INPUT1", b)], outputs=["OUTPUT1"])
    response, outputs = infer(stub, request)
    assert [o.name for o in response.outputs] == ["OUTPUT1"]
    assert len(response.raw_output_contents) == 1
    np.testing.assert_allclose(outputs["OUTPUT1"], a - b, rtol=1e-6)


def test_requested_outputs_set_the_order(stub):
    a, b = add_sub_inputs(4)
    request = make_request(
        "add_sub", [("INPUT0", a), ("INPUT1", b)], outputs=["OUTPUT1", "OUTPUT0"]
    )
    response, outputs = infer(stub, request)
    assert [o.name for o in response.outputs] == ["OUTPUT1", "OUTPUT0"]
    np.testing.assert_allclose(outputs["OUTPUT1"], a - b, rtol=1e-6)
    np.testing.assert_allclose(outputs["OUTPUT0"], a + b, rtol=1e-6)


# --- identity_fp32: variable length ---------------------------------------------------------


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("length", [1, 7, 1000])
def test_identity(stub, batch, length):
    x = rng(batch * 1000 + length).standard_normal((batch, length)).astype(np.float32)
    response, outputs = infer(stub, make_request("identity_fp32", [("INPUT0", x)]))
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("OUTPUT0", "FP32", [batch, length])
    ]
    np.testing.assert_array_equal(outputs["OUTPUT0"], x)


def test_identity_special_values_survive(stub):
    x = np.array([[0.0, -0.0, np.inf, -np.inf, 1e-38, 3.4e38, -1.5]], np.float32)
    _, outputs = infer(stub, make_request("identity_fp32", [("INPUT0", x)], typed=True))
    np.testing.assert_array_equal(outputs["OUTPUT0"], x)
    assert np.signbit(outputs["OUTPUT0"][0, 1])


def test_message_above_grpc_default_limit(stub):
    # 8 MiB in and out: above gRPC's 4 MiB default, below modeld's 64 MiB default.
    x = rng(5).standard_normal((2, 1024 * 1024)).astype(np.float32)
    _, outputs = infer(stub, make_request("identity_fp32", [("INPUT0", x)]))
    np.testing.assert_array_equal(outputs["OUTPUT0"], x)


# --- int64_bool: INT64 and BOOL tensors -----------------------------------------------------


def int64_bool_inputs(batch, length, seed):
    r = rng(seed)
    ids = r.integers(-(2**40), 2**40, size=(batch, length), dtype=np.int64)
    ids.flat[0] = 0
    if ids.size > 1:
        ids.flat[1] = 2**62 + 12345  # beyond float64's exact range: must stay exact
    mask = r.integers(0, 2, size=(batch, length)).astype(np.bool_)
    return ids, mask


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_int64_bool(stub, batch, typed):
    ids, mask = int64_bool_inputs(batch, 9, seed=batch)
    request = make_request("int64_bool", [("ids", ids), ("mask", mask)], typed=typed)
    response, outputs = infer(stub, request)
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("masked_ids", "INT64", [batch, 9]),
        ("positive", "BOOL", [batch, 9]),
    ]
    np.testing.assert_array_equal(outputs["masked_ids"], ids * mask)
    np.testing.assert_array_equal(outputs["positive"], ids > 0)


def test_int64_bool_model_failure_is_internal_and_server_survives(stub):
    ids = np.array([[1, 2, 3, 4]], np.int64)
    mask = np.array([[True, False, True, False, True]], np.bool_)
    request = make_request("int64_bool", [("ids", ids), ("mask", mask)])
    details = expect_rpc_error(stub.ModelInfer, request, grpc.StatusCode.INTERNAL)
    assert "must match" in details, f"torch's message is missing: {details!r}"
    assert_still_serving(stub)
    # The same model still answers a good request after failing.
    ids, mask = int64_bool_inputs(2, 5, seed=99)
    _, outputs = infer(stub, make_request("int64_bool", [("ids", ids), ("mask", mask)]))
    np.testing.assert_array_equal(outputs["masked_ids"], ids * mask)


# --- concurrency: every caller gets its own answer ------------------------------------------


def test_concurrent_identity_requests_get_their_own_answers(stub):
    def call(i):
        batch = 1 + i % 5
        length = 3 + i % 11
        x = np.arange(batch * length, dtype=np.float32).reshape(batch, length) + 1000.0 * i
        response, outputs = infer(
            stub, make_request("identity_fp32", [("INPUT0", x)], request_id=f"req-{i}")
        )
        assert response.id == f"req-{i}"
        np.testing.assert_array_equal(outputs["OUTPUT0"], x)
        return i

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = list(pool.map(call, range(96)))
    assert done == list(range(96))


def test_concurrent_linear_requests_on_both_versions(stub):
    def call(i):
        version = 1 + i % 2
        x = np.full((1 + i % 4, 3), float(i), np.float32) + np.array([0.0, 0.5, 0.25], np.float32)
        response, outputs = infer(
            stub, make_request("linear", [("x", x)], version=str(version), request_id=str(i))
        )
        assert response.id == str(i)
        assert response.model_version == str(version)
        np.testing.assert_allclose(outputs["y"], linear_expected(x, version), rtol=1e-5)
        return i

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = list(pool.map(call, range(64)))
    assert done == list(range(64))


def test_concurrent_mixed_models(stub, example_repository):
    mlp_x, mlp_expected = load_reference(example_repository, "mlp")

    def call(i):
        kind = i % 3
        if kind == 0:
            row = i % 4
            _, out = infer(stub, make_request("mlp", [("x", mlp_x[row : row + 1])]))
            np.testing.assert_allclose(
                out["logits"], mlp_expected[row : row + 1], rtol=1e-4, atol=1e-5
            )
        elif kind == 1:
            a, b = add_sub_inputs(i)
            _, out = infer(stub, make_request("add_sub", [("INPUT0", a), ("INPUT1", b)]))
            np.testing.assert_allclose(out["OUTPUT0"], a + b, rtol=1e-6)
        else:
            ids, mask = int64_bool_inputs(1 + i % 3, 4 + i % 5, seed=i)
            _, out = infer(stub, make_request("int64_bool", [("ids", ids), ("mask", mask)]))
            np.testing.assert_array_equal(out["masked_ids"], ids * mask)
        return i

    with ThreadPoolExecutor(max_workers=6) as pool:
        done = list(pool.map(call, range(48)))
    assert done == list(range(48))
