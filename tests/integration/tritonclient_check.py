"""Talks to a running modeld through Triton's own Python client (tritonclient.grpc).

Run by test_tritonclient.py in a child process: tritonclient registers its own `inference.*`
protobuf messages in the default descriptor pool, which collide with modeld's generated stubs,
so the two must never share a process. Usage:

    python tritonclient_check.py HOST:PORT

Prints "ok: <check>" per passing check and, at the end, "passed N checks"; any failed check
raises, so the exit status is non-zero.
"""

import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

# Same weights as examples/generate_models.py (y = x @ W + b), restated here on purpose.
LINEAR = {
    "1": (np.array([[0.5], [-1.25], [2.0]], np.float32), np.array([0.75], np.float32)),
    "2": (np.array([[1.0], [-2.5], [4.0]], np.float32), np.array([1.5], np.float32)),
}

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def expect_error(call, status, *fragments):
    try:
        call()
    except InferenceServerException as error:
        message = error.message() or ""
        assert error.status() == f"StatusCode.{status}", (error.status(), message)
        for fragment in fragments:
            assert fragment in message, f"{message!r} does not mention {fragment!r}"
        return message
    raise AssertionError(f"expected InferenceServerException {status}, got no error")


@check
def health(client):
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    assert client.is_model_ready("linear") is True
    assert client.is_model_ready("linear", "1") is True
    assert client.is_model_ready("add_sub") is True


@check
def server_metadata(client):
    metadata = client.get_server_metadata()
    assert metadata.name == "modeld", metadata
    assert "model_configuration" in metadata.extensions, metadata


@check
def model_metadata(client):
    metadata = client.get_model_metadata("linear")
    assert metadata.name == "linear"
    assert metadata.platform == "pytorch_libtorch"
    assert sorted(metadata.versions, key=int) == ["1", "2"], metadata.versions
    described = [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs]
    assert described == [("x", "FP32", [-1, 3])]
    described = [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs]
    assert described == [("y", "FP32", [-1, 1])]
    as_json = client.get_model_metadata("add_sub", as_json=True)
    assert as_json["name"] == "add_sub"
    assert [i["name"] for i in as_json["inputs"]] == ["INPUT0", "INPUT1"]
    assert [int(d) for d in as_json["inputs"][0]["shape"]] == [16]


@check
def model_config(client):
    config = client.get_model_config("linear").config
    assert config.name == "linear"
    assert config.platform == "pytorch_libtorch"
    assert config.max_batch_size == 64
    assert [(i.name, list(i.dims)) for i in config.input] == [("x", [3])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("y", [1])]
    add_sub = client.get_model_config("add_sub", as_json=True)["config"]
    assert add_sub.get("max_batch_size", 0) == 0, add_sub
    assert [o["name"] for o in add_sub["output"]] == ["OUTPUT0", "OUTPUT1"]


@check
def infer_linear_each_version(client):
    x = np.array([[1.0, 2.0, 3.0], [-1.5, 0.5, 4.0], [0.0, 0.0, 0.0]], np.float32)
    for version, (weights, bias) in LINEAR.items():
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = client.infer(
            "linear",
            [inp],
            model_version=version,
            outputs=[grpcclient.InferRequestedOutput("y")],
            request_id=f"tc-{version}",
        )
        response = result.get_response()
        assert response.model_version == version, response.model_version
        assert response.id == f"tc-{version}"
        y = result.as_numpy("y")
        assert y.dtype == np.float32 and y.shape == (3, 1), (y.dtype, y.shape)
        np.testing.assert_allclose(y, x @ weights + bias, rtol=1e-6)


@check
def infer_linear_newest_by_default(client):
    x = np.ones((1, 3), np.float32)
    inp = grpcclient.InferInput("x", [1, 3], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("linear", [inp])
    assert result.get_response().model_version == "2"
    np.testing.assert_allclose(result.as_numpy("y"), [[4.0]], rtol=1e-6)


@check
def infer_add_sub(client):
    a = np.linspace(-8, 8, 16, dtype=np.float32)
    b = np.arange(16, dtype=np.float32) * 0.5
    inputs = [grpcclient.InferInput(n, [16], "FP32") for n in ("INPUT0", "INPUT1")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    outputs = [grpcclient.InferRequestedOutput(n) for n in ("OUTPUT0", "OUTPUT1")]
    result = client.infer("add_sub", inputs, outputs=outputs)
    np.testing.assert_allclose(result.as_numpy("OUTPUT0"), a + b, rtol=1e-6)
    np.testing.assert_allclose(result.as_numpy("OUTPUT1"), a - b, rtol=1e-6)
    # No outputs requested: both come back.
    result = client.infer("add_sub", inputs)
    np.testing.assert_allclose(result.as_numpy("OUTPUT1"), a - b, rtol=1e-6)
    # Only the one requested comes back.
    result = client.infer("add_sub", inputs, outputs=outputs[1:])
    assert result.as_numpy("OUTPUT0") is None
    np.testing.assert_allclose(result.as_numpy("OUTPUT1"), a - b, rtol=1e-6)


@check
def infer_int64_bool(client):
    ids = np.array([[-3, 0, 5, 2**40], [7, -1, 1, 9]], np.int64)
    mask = np.array([[True, True, False, True], [False, True, True, True]])
    inputs = [
        grpcclient.InferInput("ids", [2, 4], "INT64"),
        grpcclient.InferInput("mask", [2, 4], "BOOL"),
    ]
    inputs[0].set_data_from_numpy(ids)
    inputs[1].set_data_from_numpy(mask)
    result = client.infer("int64_bool", inputs)
    np.testing.assert_array_equal(result.as_numpy("masked_ids"), ids * mask)
    np.testing.assert_array_equal(result.as_numpy("positive"), ids > 0)


@check
def errors(client):
    inp = grpcclient.InferInput("x", [1, 3], "FP32")
    inp.set_data_from_numpy(np.ones((1, 3), np.float32))
    expect_error(lambda: client.infer("no_such_model", [inp]), "NOT_FOUND", "no_such_model")
    expect_error(lambda: client.get_model_metadata("no_such_model"), "NOT_FOUND", "no_such_model")
    expect_error(lambda: client.infer("linear", [inp], model_version="9"), "NOT_FOUND", "9")
    bad = grpcclient.InferInput("x", [1, 4], "FP32")
    bad.set_data_from_numpy(np.ones((1, 4), np.float32))
    expect_error(lambda: client.infer("linear", [bad]), "INVALID_ARGUMENT", "'x'", "[-1, 3]")
    # Still serving after the errors.
    assert client.is_server_live() is True
    result = client.infer("linear", [inp])
    np.testing.assert_allclose(result.as_numpy("y"), [[4.0]], rtol=1e-6)


def main():
    url = sys.argv[1]
    assert "kserve" not in sys.modules, "modeld's stubs must not be loaded next to tritonclient"
    client = grpcclient.InferenceServerClient(url=url)
    for fn in CHECKS:
        fn(client)
        print(f"ok: {fn.__name__}", flush=True)
    client.close()
    print(f"passed {len(CHECKS)} checks", flush=True)


if __name__ == "__main__":
    main()
