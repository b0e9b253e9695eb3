"""TensorFlow Serving's gRPC API through the real binary, spoken by the real client.

The client is the `tensorflow-serving-api` package (predict_pb2, prediction_service_pb2_grpc,
model_service_pb2_grpc, ...) with tf.make_tensor_proto / tf.make_ndarray, exactly as a program
written against TensorFlow Serving uses them; nothing here is generated from modeld's protos.

One server (module scope) serves, side by side:
  TensorFlow SavedModels written by tf_models.py: tf_linear (y = 3x + 2, x FP32 [-1, 1]),
    strings (text [-1] -> length, upper), two_signatures, two_signatures_triple (config's
    signature_name 'triple'), dtypes (every dtype, each row reversed), corrupt (fails to load),
    contradicts (linear's SavedModel under a config that declares x FP64: fails to load);
  TorchScript models of the example repository: linear (two versions), mlp, int64_bool,
    identity_fp32, and torch_corrupt (linear's config over a garbage model.pt: its version
    fails to load).
It listens with TensorFlow Serving's services on the KServe port (--grpc-address) and alone
on --tfserving-grpc-address (port 0: the port is read from the log line). Most tests use the
dedicated port, as a TensorFlow Serving client pointed at port 8500 would; the port tests
check the KServe port answers the same.

TensorFlow answers are compared with TensorFlow in this process (tf_models.load_signature,
what tf_models.references does for every model) at rtol 1e-5, atol 1e-6 for float32; integer,
bool, BYTES and the reversed rows of `dtypes` must be exact.
"""

import concurrent.futures
import os
import re
import shutil
import threading
import types

import grpc
import numpy as np
import pytest

import tf_models
from infer_helpers import LINEAR_WEIGHTS, linear_expected, matches
from infer_helpers import expect_rpc_error as expect_error
from infer_helpers import make_stub as make_kserve_stub
from infer_helpers import pb as kserve_pb
from modeld_server import start_server

# The module's one server serves TensorFlow SavedModels beside TorchScript ones, and most
# answers are compared with TensorFlow (conftest.py: MODELD_TENSORFLOW).
pytestmark = pytest.mark.tensorflow

# TensorFlow and the tensorflow-serving-api modules, imported by the `_tensorflow` fixture
# when the first test of this file runs (importing TensorFlow takes seconds; collecting the
# other test files should not pay for it).
api = types.SimpleNamespace()

RPC_TIMEOUT_S = 30.0
RTOL = 1e-5
ATOL = 1e-6
# TorchScript mlp against the reference arrays of examples/generate_models.py (test_infer.py's
# tolerances: torch on this machine vs torch when the models were generated).
MLP_RTOL = 1e-4
MLP_ATOL = 1e-5

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED

TFS_LISTEN_RE = re.compile(r"TensorFlow Serving gRPC listening on 127\.0\.0\.1:(\d+)")
PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
# ModelVersionStatus.State and tensorflow.error.Code numbers, as TensorFlow Serving sends them
# (the states are checked against the client's enum by the _tensorflow fixture).
AVAILABLE = 30
END = 50
ERROR_OK = 0
ERROR_UNKNOWN = 2

# Strings that must survive the trip: empty, UTF-8, embedded zero bytes, not UTF-8, long.
STRINGS = [b"", "héllo wörld ✓ 日本".encode(), b"a\x00b\x00", b"\x00", b"\xff\xfe not utf-8",
           b"Mixed Case 123", b"x" * 3000]

# KServe datatype (tf_models.DTYPES' keys) -> (TensorFlow DataType name, numpy dtype, field).
DTYPES = {
    "FP16": ("DT_HALF", np.float16, "half_val"),
    "FP32": ("DT_FLOAT", np.float32, "float_val"),
    "FP64": ("DT_DOUBLE", np.float64, "double_val"),
    "INT8": ("DT_INT8", np.int8, "int_val"),
    "INT16": ("DT_INT16", np.int16, "int_val"),
    "INT32": ("DT_INT32", np.int32, "int_val"),
    "INT64": ("DT_INT64", np.int64, "int64_val"),
    "UINT8": ("DT_UINT8", np.uint8, "int_val"),
    "UINT16": ("DT_UINT16", np.uint16, "int_val"),
    "UINT32": ("DT_UINT32", np.uint32, "uint32_val"),
    "UINT64": ("DT_UINT64", np.uint64, "uint64_val"),
    "BOOL": ("DT_BOOL", np.bool_, "bool_val"),
    "BYTES": ("DT_STRING", object, "string_val"),
}
assert sorted(DTYPES) == sorted(tf_models.DTYPES)

# The SavedModels the TensorFlow reference runs: model -> (folder under the model, signature).
TF_REFERENCES = {
    "tf_linear": ("1", "serving_default"),
    "strings": ("1", "serving_default"),
    "two_signatures": ("1", "serving_default"),
    "two_signatures_triple": ("1/model.savedmodel", "triple"),
    "dtypes": ("1", "serving_default"),
}
TORCH_MODELS = ("linear", "mlp", "int64_bool", "identity_fp32")

# linear's SavedModel (x FP32 [-1, 1] -> y FP32 [-1, 1]) under a config that says x is FP64.
CONTRADICTS_CONFIG = f"""\
platform: "{tf_models.PLATFORM}"
max_batch_size: 8
input [ {{ name: "x" data_type: TYPE_FP64 dims: [ 1 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }} ]
"""


def rng(seed):
    return np.random.default_rng(seed)


# --- TensorFlow, the repository and the server ----------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _tensorflow():
    """Fills `api` with TensorFlow and the tensorflow-serving-api modules."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_management_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
        regression_pb2,
    )

    api.__dict__.update(
        tf=tf, tensor_pb2=tensor_pb2, types_pb2=types_pb2,
        classification_pb2=classification_pb2, get_model_metadata_pb2=get_model_metadata_pb2,
        get_model_status_pb2=get_model_status_pb2, model_management_pb2=model_management_pb2,
        model_service_pb2_grpc=model_service_pb2_grpc, predict_pb2=predict_pb2,
        prediction_service_pb2_grpc=prediction_service_pb2_grpc, regression_pb2=regression_pb2)
    states = api.get_model_status_pb2.ModelVersionStatus
    assert (states.AVAILABLE, states.END) == (AVAILABLE, END)


def data_type(name):
    """The tensorflow.DataType number of a name such as "DT_FLOAT"."""
    return api.types_pb2.DataType.Value(name)


@pytest.fixture(scope="module")
def tfs_repository(tmp_path_factory, example_repository):
    repository = tmp_path_factory.mktemp("tfserving_grpc")
    tf_models.write_linear(repository / "tf_linear")  # no config: any folder name serves
    tf_models.write_strings(repository / "strings")
    tf_models.write_two_signatures(repository / "two_signatures",
                                   repository / "two_signatures_triple")
    tf_models.write_dtypes(repository / "dtypes")
    tf_models.write_corrupt(repository / "corrupt")
    shutil.copytree(repository / "tf_linear" / "1", repository / "contradicts" / "1")
    (repository / "contradicts" / "config.pbtxt").write_text(CONTRADICTS_CONFIG)
    for model in TORCH_MODELS:
        shutil.copytree(example_repository / model, repository / model)
    # A TorchScript model whose config is fine and whose version 1 is not TorchScript.
    config = (example_repository / "linear" / "config.pbtxt").read_text()
    (repository / "torch_corrupt" / "1").mkdir(parents=True)
    (repository / "torch_corrupt" / "config.pbtxt").write_text(
        config.replace('name: "linear"', 'name: "torch_corrupt"'))
    (repository / "torch_corrupt" / "1" / "model.pt").write_bytes(b"not a TorchScript archive")
    return repository


@pytest.fixture(scope="module")
def tf_reference(tfs_repository):
    """{model: callable({key: array}) -> {key: array}}: TensorFlow in this process."""
    return {model: tf_models.load_signature(tfs_repository / model / sub, signature)
            for model, (sub, signature) in TF_REFERENCES.items()}


@pytest.fixture(scope="module")
def tfs_server(tfs_repository):
    process = start_server(tfs_repository, ["--tfserving-grpc-address=127.0.0.1:0"])
    try:
        match = process.wait_for_log(TFS_LISTEN_RE)
        process.tfs_port = int(match.group(1))
        assert 0 < process.tfs_port < 65536, match.group(0)
        process.tfs_address = f"127.0.0.1:{process.tfs_port}"
    except BaseException:
        process.stop()
        raise
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tfs_channel(tfs_server):
    channel = grpc.insecure_channel(tfs_server.tfs_address)
    grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def predict_stub(tfs_channel):
    return api.prediction_service_pb2_grpc.PredictionServiceStub(tfs_channel)


@pytest.fixture(scope="module")
def model_stub(tfs_channel):
    return api.model_service_pb2_grpc.ModelServiceStub(tfs_channel)


@pytest.fixture(scope="module")
def kserve_port_stubs(tfs_server):
    """(PredictionService, ModelService) on the KServe port (--grpc-address)."""
    channel = tfs_server.channel()
    return (api.prediction_service_pb2_grpc.PredictionServiceStub(channel),
            api.model_service_pb2_grpc.ModelServiceStub(channel))


# --- building requests, reading answers ------------------------------------------------------


def tensor(values, kserve=None):
    """tf.make_tensor_proto of `values` (numeric arrays travel in tensor_content)."""
    if kserve is None:
        return api.tf.make_tensor_proto(values)
    return api.tf.make_tensor_proto(values, dtype=api.tf.as_dtype(tf_models.DTYPES[kserve]))


def typed_tensor(array, kserve, shape=None):
    """A TensorProto built by hand with the values in the dtype's typed field."""
    dtype, numpy_dtype, field = DTYPES[kserve]
    array = np.asarray(array, dtype=numpy_dtype)
    proto = api.tensor_pb2.TensorProto(dtype=data_type(dtype))
    for dim in (array.shape if shape is None else shape):
        proto.tensor_shape.dim.add(size=dim)
    flat = array.ravel()
    if kserve == "FP16":
        values = flat.view(np.uint16).tolist()  # half_val holds the 16-bit patterns
    elif kserve == "BYTES":
        values = [bytes(v) for v in flat]
    else:
        values = flat.tolist()
    getattr(proto, field).extend(values)
    return proto


def bytes_array(values, shape=None):
    array = np.empty(len(values), dtype=object)
    array[:] = [bytes(v) for v in values]
    return array if shape is None else array.reshape(shape)


def predict_request(model, inputs, *, version=None, label=None, signature=None,
                    output_filter=()):
    """A PredictRequest; inputs: {name: TensorProto or array (tf.make_tensor_proto'd)}."""
    request = api.predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if signature is not None:
        request.model_spec.signature_name = signature
    for name, value in inputs.items():
        proto = value if isinstance(value, api.tensor_pb2.TensorProto) else tensor(value)
        request.inputs[name].CopyFrom(proto)
    request.output_filter.extend(output_filter)
    return request


def outputs_of(response, dtypes=None):
    """{name: array} of a PredictResponse, via tf.make_ndarray.

    Every output must come in its typed field (tensor_content empty); `dtypes`: {name:
    DataType name, e.g. "DT_FLOAT"} each output must carry.
    """
    result = {}
    for name, proto in response.outputs.items():
        assert proto.tensor_content == b"", f"output '{name}' came in tensor_content"
        if dtypes is not None:
            got = api.types_pb2.DataType.Name(proto.dtype)
            assert got == dtypes[name], f"output '{name}': {got}, expected {dtypes[name]}"
        result[name] = api.tf.make_ndarray(proto)
    if dtypes is not None:
        assert sorted(result) == sorted(dtypes)
    return result


def predict(stub, model, inputs, **kwargs):
    response = stub.Predict(predict_request(model, inputs, **kwargs), timeout=RPC_TIMEOUT_S)
    return response, outputs_of(response)


def assert_spec(response, name, version, signature="serving_default"):
    spec = response.model_spec
    assert spec.name == name
    assert spec.HasField("version") and spec.version.value == version, spec
    assert spec.signature_name == signature


def assert_same(got, expected, context=""):
    """modeld's outputs against TensorFlow's: same names, dtypes, shapes, values."""
    assert sorted(got) == sorted(expected), f"{context}: {sorted(got)} vs {sorted(expected)}"
    for name, want in expected.items():
        value = got[name]
        assert value.shape == want.shape, f"{context} '{name}': {value.shape} vs {want.shape}"
        assert value.dtype == want.dtype, f"{context} '{name}': {value.dtype} vs {want.dtype}"
        if want.dtype == object:
            assert value.tolist() == want.tolist(), f"{context} '{name}'"
        elif want.dtype.kind == "f":
            np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{context} {name}")
        else:
            np.testing.assert_array_equal(value, want, err_msg=f"{context} {name}")


def word(name):
    return re.compile(rf"\b{re.escape(name)}\b")


def assert_still_serving(stub):
    x = np.array([[1.0], [-2.5], [0.0]], np.float32)
    response, outputs = predict(stub, "tf_linear", {"x": x})
    assert_spec(response, "tf_linear", 1)
    np.testing.assert_allclose(outputs["y"], x * tf_models.LINEAR_W + tf_models.LINEAR_B,
                               rtol=RTOL, atol=ATOL)


def dtypes_inputs(batch, seed=0):
    """{in_<dtype>: [batch, 3] array} with each type's extremes in the first row."""
    r = rng(seed)
    inputs = {}
    for kserve, (_, numpy_dtype, _) in DTYPES.items():
        name = f"in_{kserve.lower()}"
        if kserve == "BYTES":
            inputs[name] = bytes_array([STRINGS[(i + seed) % len(STRINGS)]
                                        for i in range(batch * 3)], (batch, 3))
        elif kserve == "BOOL":
            array = r.integers(0, 2, (batch, 3)).astype(np.bool_)
            array[0, :] = [True, False, True]
            inputs[name] = array
        elif kserve.startswith("FP"):
            array = (r.standard_normal((batch, 3)) * 100).astype(numpy_dtype)
            info = np.finfo(numpy_dtype)
            array[0, :] = [info.max, -0.0, info.tiny]
            inputs[name] = array
        else:
            info = np.iinfo(numpy_dtype)
            array = r.integers(info.min, info.max, (batch, 3), dtype=numpy_dtype, endpoint=True)
            array[0, :] = [info.min, info.max, 0]
            inputs[name] = array
    return inputs


DTYPES_OUTPUTS = {f"out_{k.lower()}": v[0] for k, v in DTYPES.items()}


def assert_dtypes_reversed(outputs, inputs, tf_reference):
    """Each output is its input with every row reversed, bit for bit, and TensorFlow agrees."""
    for name, array in inputs.items():
        out = outputs["out_" + name[3:]]
        want = array[:, ::-1]
        assert out.shape == want.shape, name
        if array.dtype == object:
            assert out.tolist() == want.tolist(), name
        else:
            assert out.dtype == array.dtype, (name, out.dtype)
            assert out.tobytes() == np.ascontiguousarray(want).tobytes(), name
    assert_same(outputs, tf_reference["dtypes"](inputs), "dtypes")


# --- the ports -------------------------------------------------------------------------------


def test_tfserving_port_is_logged_and_separate(tfs_server):
    assert tfs_server.tfs_port != tfs_server.port
    assert tfs_server.tfs_port != tfs_server.http_port
    assert f"TensorFlow Serving gRPC listening on 127.0.0.1:{tfs_server.tfs_port}" in (
        tfs_server.log)


def test_kserve_services_are_not_on_the_tfserving_port(tfs_channel, predict_stub):
    kserve = make_kserve_stub(tfs_channel)
    expect_error(kserve.ServerLive, kserve_pb.ServerLiveRequest(), UNIMPLEMENTED)
    expect_error(kserve.ModelMetadata, kserve_pb.ModelMetadataRequest(name="linear"),
                 UNIMPLEMENTED)
    assert_still_serving(predict_stub)


def test_kserve_port_serves_tfserving_too(tfs_server, kserve_port_stubs, predict_stub,
                                          model_stub, tf_reference):
    # The same answers on both ports; KServe itself still serves on its port.
    predict_kserve, model_kserve = kserve_port_stubs
    x = rng(1).uniform(-10, 10, (5, 1)).astype(np.float32)
    expected = tf_reference["tf_linear"]({"x": x})
    for stub in (predict_kserve, predict_stub):
        response, outputs = predict(stub, "tf_linear", {"x": x})
        assert_spec(response, "tf_linear", 1)
        assert_same(outputs, expected, "tf_linear")
        torch_x = rng(2).uniform(-5, 5, (3, 3)).astype(np.float32)
        response, outputs = predict(stub, "linear", {"x": torch_x})
        assert_spec(response, "linear", 2)
        np.testing.assert_allclose(outputs["y"], linear_expected(torch_x), rtol=1e-5, atol=1e-5)
    answers = [signature_def_map(stub, "strings") for stub in (predict_kserve, predict_stub)]
    assert answers[0][0].model_spec == answers[1][0].model_spec
    assert answers[0][1] == answers[1][1]  # the unpacked SignatureDefMaps
    request = status_request("linear")
    assert (model_kserve.GetModelStatus(request, timeout=RPC_TIMEOUT_S)
            == model_stub.GetModelStatus(request, timeout=RPC_TIMEOUT_S))
    kserve = make_kserve_stub(tfs_server.channel())
    assert kserve.ServerLive(kserve_pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live


# --- Predict: TensorFlow models against TensorFlow in Python --------------------------------


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_tf_linear_tensor_content(predict_stub, tf_reference, batch):
    x = rng(batch).uniform(-10, 10, (batch, 1)).astype(np.float32)
    proto = tensor(x)
    # (One value goes in float_val; more in tensor_content.)
    assert bool(proto.tensor_content) == (batch > 1), proto
    response = predict_stub.Predict(predict_request("tf_linear", {"x": proto}),
                                    timeout=RPC_TIMEOUT_S)
    outputs = outputs_of(response, {"y": "DT_FLOAT"})
    assert [d.size for d in response.outputs["y"].tensor_shape.dim] == [batch, 1]
    assert len(response.outputs["y"].float_val) == batch
    assert_spec(response, "tf_linear", 1)
    assert_same(outputs, tf_reference["tf_linear"]({"x": x}), "tf_linear")


def test_tf_linear_typed_float_val(predict_stub, tf_reference):
    x = rng(3).uniform(-10, 10, (6, 1)).astype(np.float32)
    response, outputs = predict(predict_stub, "tf_linear", {"x": typed_tensor(x, "FP32")})
    assert_same(outputs, tf_reference["tf_linear"]({"x": x}), "tf_linear typed")


def test_one_typed_value_broadcasts_to_the_shape(predict_stub):
    _, outputs = predict(predict_stub, "tf_linear",
                         {"x": typed_tensor([2.5], "FP32", shape=[4, 1])})
    np.testing.assert_array_equal(outputs["y"], np.full((4, 1), 9.5, np.float32))
    _, outputs = predict(predict_stub, "strings",
                         {"text": typed_tensor(bytes_array([b"ab\x00c"]), "BYTES", shape=[3])})
    assert outputs["upper"].tolist() == [b"AB\x00C"] * 3
    assert outputs["length"].tolist() == [4] * 3
    _, outputs = predict(predict_stub, "int64_bool", {
        "ids": typed_tensor([-7], "INT64", shape=[2, 3]),
        "mask": typed_tensor([True], "BOOL", shape=[2, 3])})
    np.testing.assert_array_equal(outputs["masked_ids"], np.full((2, 3), -7, np.int64))
    np.testing.assert_array_equal(outputs["positive"], np.zeros((2, 3), np.bool_))


@pytest.mark.parametrize("typed", [False, True], ids=["make_tensor_proto", "string_val"])
def test_strings_batch_shape_in_and_out(predict_stub, tf_reference, typed):
    # The signature's text is [-1]: TensorFlow Serving takes and answers [N], not [N, 1].
    text = bytes_array(STRINGS)
    proto = typed_tensor(text, "BYTES") if typed else tensor(text)
    assert list(proto.string_val) == STRINGS
    response = predict_stub.Predict(predict_request("strings", {"text": proto}),
                                    timeout=RPC_TIMEOUT_S)
    outputs = outputs_of(response, {"length": "DT_INT32",
                                    "upper": "DT_STRING"})
    for name in ("length", "upper"):
        assert [d.size for d in response.outputs[name].tensor_shape.dim] == [len(STRINGS)], name
    assert_same(outputs, tf_reference["strings"]({"text": text}), "strings")
    assert outputs["length"].tolist() == [len(s) for s in STRINGS]
    assert outputs["upper"][2] == b"A\x00B\x00"
    assert outputs["upper"][4] == b"\xff\xfe NOT UTF-8"
    assert outputs["upper"][1] == "HéLLO WöRLD ✓ 日本".encode()


def test_output_filter_returns_only_the_named_outputs(predict_stub):
    response, outputs = predict(predict_stub, "strings",
                                {"text": bytes_array([b"ab", b"\x00c"])},
                                output_filter=["upper"])
    assert list(response.outputs) == ["upper"]
    assert outputs["upper"].tolist() == [b"AB", b"\x00C"]
    response, outputs = predict(predict_stub, "strings", {"text": bytes_array([b"abc"])},
                                output_filter=["length", "upper"])
    assert sorted(response.outputs) == ["length", "upper"]
    assert outputs["length"].tolist() == [3]


def test_signature_name_empty_or_served(predict_stub, tf_reference):
    x = rng(5).standard_normal((3, 4)).astype(np.float32)
    for signature in (None, "", "serving_default"):
        response, outputs = predict(predict_stub, "two_signatures", {"x": x},
                                    signature=signature)
        assert_spec(response, "two_signatures", 1, "serving_default")
        assert_same(outputs, tf_reference["two_signatures"]({"x": x}), "two_signatures")
        np.testing.assert_array_equal(outputs["doubled"], x * 2)
    for signature in (None, "", "triple"):
        response, outputs = predict(predict_stub, "two_signatures_triple", {"x": x},
                                    signature=signature)
        assert_spec(response, "two_signatures_triple", 1, "triple")
        assert_same(outputs, tf_reference["two_signatures_triple"]({"x": x}), "triple")
    response, _ = predict(predict_stub, "tf_linear", {"x": np.ones((1, 1), np.float32)},
                          signature="serving_default")
    assert_spec(response, "tf_linear", 1, "serving_default")


# --- Predict: every dtype --------------------------------------------------------------------


def test_every_dtype_in_typed_fields(predict_stub, tf_reference):
    # half_val (16-bit patterns) for FP16, int_val for INT8/INT16/INT32/UINT8/UINT16,
    # int64_val, uint32_val, uint64_val, bool_val, float_val, double_val, string_val.
    inputs = dtypes_inputs(4, seed=11)
    request = predict_request("dtypes", {
        name: typed_tensor(array, name[3:].upper()) for name, array in inputs.items()})
    for name, proto in request.inputs.items():
        assert not proto.tensor_content, name
    response = predict_stub.Predict(request, timeout=RPC_TIMEOUT_S)
    assert_spec(response, "dtypes", 1)
    outputs = outputs_of(response, DTYPES_OUTPUTS)
    for name, proto in response.outputs.items():
        field = DTYPES[name[4:].upper()][2]
        assert len(getattr(proto, field)) == 12, (name, field)
        assert [d.size for d in proto.tensor_shape.dim] == [4, 3], name
    assert_dtypes_reversed(outputs, inputs, tf_reference)


def test_every_dtype_with_make_tensor_proto(predict_stub, tf_reference):
    inputs = dtypes_inputs(3, seed=12)
    response, outputs = predict(predict_stub, "dtypes", {
        name: tensor(array, name[3:].upper()) for name, array in inputs.items()})
    outputs_of(response, DTYPES_OUTPUTS)
    assert_dtypes_reversed(outputs, inputs, tf_reference)


def test_fp16_half_val_bit_patterns(predict_stub):
    # Special values by bit pattern: +inf, -inf, a NaN, the smallest subnormal, -0, 1.
    patterns = np.array([[0x7C00, 0xFC00, 0x7E00], [0x0001, 0x8000, 0x3C00]], np.uint16)
    inputs = dtypes_inputs(2, seed=13)
    inputs["in_fp16"] = patterns.view(np.float16)
    _, outputs = predict(predict_stub, "dtypes", {
        name: typed_tensor(array, name[3:].upper()) for name, array in inputs.items()},
        output_filter=["out_fp16"])
    assert list(outputs) == ["out_fp16"]
    assert outputs["out_fp16"].dtype == np.float16
    np.testing.assert_array_equal(outputs["out_fp16"].view(np.uint16), patterns[:, ::-1])


# --- Predict: TorchScript models -------------------------------------------------------------


def test_torch_linear_versions(predict_stub):
    x = np.array([[1.0, 2.0, 3.0], [4.0, -5.5, 6.25]], np.float32)
    cases = [({}, 2), ({"version": 1}, 1), ({"version": 2}, 2), ({"label": "1"}, 1),
             ({"label": "2"}, 2)]
    for kwargs, version in cases:
        response = predict_stub.Predict(predict_request("linear", {"x": x}, **kwargs),
                                        timeout=RPC_TIMEOUT_S)
        outputs = outputs_of(response, {"y": "DT_FLOAT"})
        assert_spec(response, "linear", version, "serving_default")
        weights, bias = LINEAR_WEIGHTS[version]
        np.testing.assert_allclose(outputs["y"], x @ weights + bias, rtol=1e-5, atol=1e-5,
                                   err_msg=str(kwargs))
        assert outputs["y"].shape == (2, 1)


def test_torch_mlp_against_reference(predict_stub, example_repository):
    x = np.load(example_repository / "mlp" / "reference" / "input.npy")
    y = np.load(example_repository / "mlp" / "reference" / "output.npy")
    for proto in (tensor(x), typed_tensor(x, "FP32")):
        response = predict_stub.Predict(predict_request("mlp", {"x": proto}),
                                        timeout=RPC_TIMEOUT_S)
        outputs = outputs_of(response, {"logits": "DT_FLOAT"})
        assert_spec(response, "mlp", 1)
        assert outputs["logits"].shape == y.shape
        np.testing.assert_allclose(outputs["logits"], y, rtol=MLP_RTOL, atol=MLP_ATOL)


def test_torch_int64_bool(predict_stub):
    ids = np.array([[5, -3, 2, 2**40, 0], [0, 7, -1, -(2**62), 9]], np.int64)
    mask = np.array([[True, False, True, True, False], [True, True, True, True, False]])
    expected = {"masked_ids": ids * mask, "positive": ids > 0}
    for inputs in ({"ids": typed_tensor(ids, "INT64"), "mask": typed_tensor(mask, "BOOL")},
                   {"ids": tensor(ids), "mask": tensor(mask)}):
        response = predict_stub.Predict(predict_request("int64_bool", inputs),
                                        timeout=RPC_TIMEOUT_S)
        outputs = outputs_of(response, {"masked_ids": "DT_INT64",
                                        "positive": "DT_BOOL"})
        for name, want in expected.items():
            assert outputs[name].dtype == want.dtype, name
            np.testing.assert_array_equal(outputs[name], want, err_msg=name)


def test_torch_identity_fp32(predict_stub):
    x = rng(7).standard_normal((3, 7)).astype(np.float32)
    x[0, :3] = [np.inf, -0.0, np.finfo(np.float32).max]
    response, outputs = predict(predict_stub, "identity_fp32", {"INPUT0": x})
    assert_spec(response, "identity_fp32", 1)
    assert outputs["OUTPUT0"].dtype == np.float32
    assert outputs["OUTPUT0"].tobytes() == x.tobytes()


# --- Predict: errors, each alone -------------------------------------------------------------

X = np.array([[1.0], [2.0]], np.float32)


def proto_with(kserve_dtype, values=(1.0, 2.0), shape=(2, 1), raw=None):
    dtype = DTYPES[kserve_dtype][0] if kserve_dtype in DTYPES else kserve_dtype
    proto = api.tensor_pb2.TensorProto(dtype=data_type(dtype))
    for dim in shape:
        proto.tensor_shape.dim.add(size=dim)
    if raw is not None:
        proto.tensor_content = raw
    elif kserve_dtype in DTYPES:
        getattr(proto, DTYPES[kserve_dtype][2]).extend(values)
    return proto


def dtypes_with(name, proto):
    inputs = {k: tensor(v, k[3:].upper()) for k, v in dtypes_inputs(1).items()}
    inputs[name] = proto
    return predict_request("dtypes", inputs)


def missing_dtypes_input():
    inputs = dtypes_inputs(1)
    del inputs["in_int16"]
    return predict_request("dtypes", {k: tensor(v, k[3:].upper()) for k, v in inputs.items()})


ERROR_CASES = [
    ("unknown_model", lambda: predict_request("no_such_model", {"x": X}), NOT_FOUND,
     ["no_such_model"]),
    ("unknown_version", lambda: predict_request("tf_linear", {"x": X}, version=9), NOT_FOUND,
     ["tf_linear", "9"]),
    ("empty_model_name", lambda: predict_request("", {"x": X}), INVALID, ["name"]),
    ("non_numeric_version_label",
     lambda: predict_request("linear", {"x": np.ones((1, 3), np.float32)}, label="stable"),
     INVALID, ["version_label", "stable"]),
    ("other_signature", lambda: predict_request("tf_linear", {"x": X}, signature="predict"),
     INVALID, ["'predict'", "serving_default"]),
    ("default_signature_on_triple",
     lambda: predict_request("two_signatures_triple", {"x": np.ones((1, 4), np.float32)},
                             signature="serving_default"),
     INVALID, ["serving_default", "triple"]),
    ("other_signatures_name",
     lambda: predict_request("two_signatures", {"x": np.ones((1, 4), np.float32)},
                             signature="triple"),
     INVALID, ["triple", "serving_default"]),
    ("double_for_fp32", lambda: predict_request("tf_linear", {"x": X.astype(np.float64)}),
     INVALID, [word("x")]),
    ("double_typed_for_fp32", lambda: predict_request("tf_linear", {"x": proto_with("FP64")}),
     INVALID, [word("x")]),
    ("string_for_fp32",
     lambda: predict_request("tf_linear", {"x": proto_with("BYTES", [b"1", b"2"])}),
     INVALID, [word("x")]),
    ("bfloat16", lambda: predict_request("tf_linear", {"x": proto_with(
        "DT_BFLOAT16", raw=np.zeros(2, np.uint16).tobytes())}),
     INVALID, ["does not serve", word("x")]),
    ("wrong_shape", lambda: predict_request("tf_linear", {"x": np.ones((2, 3), np.float32)}),
     INVALID, [word("x")]),
    ("wrong_rank", lambda: predict_request("tf_linear", {"x": np.ones(2, np.float32)}),
     INVALID, [word("x")]),
    ("torch_wrong_shape", lambda: predict_request("linear", {"x": np.ones((2, 4), np.float32)}),
     INVALID, [word("x")]),
    ("values_do_not_fit_shape",
     lambda: predict_request("tf_linear", {"x": proto_with("FP32", [1.0, 2.0, 3.0])}),
     INVALID, [word("x"), "3"]),
    ("tensor_content_too_short",
     lambda: predict_request("tf_linear", {"x": proto_with("FP32", raw=b"\x00" * 4)}),
     INVALID, [word("x")]),
    ("int8_out_of_range", lambda: dtypes_with("in_int8", proto_with("INT8", [1, 200, 3],
                                                                    shape=(1, 3))),
     INVALID, ["in_int8", "200"]),
    ("uint8_negative", lambda: dtypes_with("in_uint8", proto_with("UINT8", [1, -1, 3],
                                                                  shape=(1, 3))),
     INVALID, ["in_uint8", "-1"]),
    ("one_value_fills_terabytes",
     lambda: predict_request("linear", {"x": proto_with("FP32", [1.0], shape=(10**9, 3))}),
     INVALID, [word("x"), "one value in float_val", "67108864 bytes"]),
    ("unknown_input", lambda: predict_request("tf_linear", {"z": X}), INVALID, [word("z")]),
    ("missing_input", missing_dtypes_input, INVALID, ["in_int16"]),
    ("unknown_output_filter",
     lambda: predict_request("tf_linear", {"x": X}, output_filter=["nope"]), INVALID,
     ["nope"]),
    ("failed_model", lambda: predict_request("corrupt", {"x": X}), UNAVAILABLE, ["corrupt"]),
]


@pytest.mark.parametrize("factory,code,fragments", [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_predict_error_fails_alone(predict_stub, factory, code, fragments):
    expect_error(predict_stub.Predict, factory(), code, *fragments)
    assert_still_serving(predict_stub)


# --- GetModelMetadata ------------------------------------------------------------------------


def metadata_request(model, fields=("signature_def",), version=None):
    request = api.get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    request.metadata_field.extend(fields)
    return request


def signature_def_map(stub, model, version=None):
    response = stub.GetModelMetadata(metadata_request(model, version=version),
                                     timeout=RPC_TIMEOUT_S)
    assert list(response.metadata) == ["signature_def"]
    packed = response.metadata["signature_def"]
    assert packed.type_url == SIGNATURE_DEF_MAP_URL
    signatures = api.get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    return response, signatures


def described(tensor_infos):
    """{key: (dtype name, [dims])}; every TensorInfo names its tensor."""
    result = {}
    for key, info in tensor_infos.items():
        assert info.name, f"TensorInfo '{key}' has no name"
        assert not info.tensor_shape.unknown_rank, key
        result[key] = (api.types_pb2.DataType.Name(info.dtype),
                       [d.size for d in info.tensor_shape.dim])
    return result


METADATA_CASES = {
    "tf_linear": ("serving_default", {"x": ("DT_FLOAT", [-1, 1])},
                  {"y": ("DT_FLOAT", [-1, 1])}),
    "strings": ("serving_default", {"text": ("DT_STRING", [-1])},
                {"length": ("DT_INT32", [-1]), "upper": ("DT_STRING", [-1])}),
    "two_signatures": ("serving_default", {"x": ("DT_FLOAT", [-1, 4])},
                       {"doubled": ("DT_FLOAT", [-1, 4])}),
    "two_signatures_triple": ("triple", {"x": ("DT_FLOAT", [-1, 4])},
                              {"tripled": ("DT_FLOAT", [-1, 4])}),
    "dtypes": ("serving_default",
               {f"in_{k.lower()}": (v[0], [-1, 3])
                for k, v in DTYPES.items()},
               {f"out_{k.lower()}": (v[0], [-1, 3])
                for k, v in DTYPES.items()}),
    "linear": ("serving_default", {"x": ("DT_FLOAT", [-1, 3])}, {"y": ("DT_FLOAT", [-1, 1])}),
    "mlp": ("serving_default", {"x": ("DT_FLOAT", [-1, 256])},
            {"logits": ("DT_FLOAT", [-1, 10])}),
    "int64_bool": ("serving_default",
                   {"ids": ("DT_INT64", [-1, -1]), "mask": ("DT_BOOL", [-1, -1])},
                   {"masked_ids": ("DT_INT64", [-1, -1]), "positive": ("DT_BOOL", [-1, -1])}),
    "identity_fp32": ("serving_default", {"INPUT0": ("DT_FLOAT", [-1, -1])},
                      {"OUTPUT0": ("DT_FLOAT", [-1, -1])}),
}
NEWEST_VERSION = {"linear": 2}


@pytest.mark.parametrize("model", sorted(METADATA_CASES))
def test_metadata_signature_def(predict_stub, model):
    signature, inputs, outputs = METADATA_CASES[model]
    response, signatures = signature_def_map(predict_stub, model)
    assert response.model_spec.name == model
    assert response.model_spec.version.value == NEWEST_VERSION.get(model, 1)
    assert list(signatures.signature_def) == [signature]
    definition = signatures.signature_def[signature]
    assert definition.method_name == PREDICT_METHOD
    assert described(definition.inputs) == inputs
    assert described(definition.outputs) == outputs


def test_metadata_of_a_version(predict_stub):
    response, signatures = signature_def_map(predict_stub, "linear", version=1)
    assert response.model_spec.name == "linear"
    assert response.model_spec.version.value == 1
    assert list(signatures.signature_def) == ["serving_default"]


METADATA_ERRORS = [
    ("no_field", lambda: metadata_request("tf_linear", fields=()), INVALID,
     ["metadata_field"]),
    ("unsupported_field", lambda: metadata_request("tf_linear", fields=("saved_model_config",)),
     INVALID, ["saved_model_config"]),
    ("one_unsupported_field",
     lambda: metadata_request("tf_linear", fields=("signature_def", "bogus")), INVALID,
     ["bogus"]),
    ("unknown_model", lambda: metadata_request("no_such_model"), NOT_FOUND, ["no_such_model"]),
    ("unknown_version", lambda: metadata_request("linear", version=7), NOT_FOUND, ["7"]),
    ("empty_name", lambda: metadata_request(""), INVALID, ["name"]),
]


@pytest.mark.parametrize("factory,code,fragments", [c[1:] for c in METADATA_ERRORS],
                         ids=[c[0] for c in METADATA_ERRORS])
def test_metadata_errors(predict_stub, factory, code, fragments):
    expect_error(predict_stub.GetModelMetadata, factory(), code, *fragments)
    assert_still_serving(predict_stub)


# --- GetModelStatus --------------------------------------------------------------------------


def status_request(model, version=None, label=None):
    request = api.get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def statuses(stub, model, **kwargs):
    response = stub.GetModelStatus(status_request(model, **kwargs), timeout=RPC_TIMEOUT_S)
    return [(s.version, s.state, s.status.error_code, s.status.error_message)
            for s in response.model_version_status]


def test_status_of_served_models(model_stub):
    assert statuses(model_stub, "linear") == [(1, AVAILABLE, ERROR_OK, ""),
                                              (2, AVAILABLE, ERROR_OK, "")]
    for model in ("tf_linear", "strings", "dtypes", "two_signatures_triple", "mlp"):
        assert statuses(model_stub, model) == [(1, AVAILABLE, ERROR_OK, "")], model


def test_status_of_one_version(model_stub):
    assert statuses(model_stub, "linear", version=1) == [(1, AVAILABLE, ERROR_OK, "")]
    assert statuses(model_stub, "linear", version=2) == [(2, AVAILABLE, ERROR_OK, "")]
    assert statuses(model_stub, "linear", label="1") == [(1, AVAILABLE, ERROR_OK, "")]


def test_status_errors(model_stub, predict_stub):
    expect_error(model_stub.GetModelStatus, status_request("linear", version=7), NOT_FOUND,
                 "7", "linear")
    expect_error(model_stub.GetModelStatus, status_request("no_such_model"), NOT_FOUND,
                 "no_such_model")
    expect_error(model_stub.GetModelStatus, status_request(""), INVALID, "name")
    assert_still_serving(predict_stub)


# model -> fragments the END version's error_message must hold (the load failure's reason).
FAILED_MODELS = {
    "torch_corrupt": [],
    "corrupt": [re.compile("saved_?model", re.I)],
    "contradicts": [word("x"), "FP64"],
}


@pytest.mark.parametrize("model", sorted(FAILED_MODELS))
def test_status_of_a_model_that_failed_to_load(model_stub, tfs_server, model):
    # TensorFlow Serving reports a version that failed to load as END with the error.
    try:
        with_reason = statuses(model_stub, model)
    except grpc.RpcError as error:
        with_reason = f"{error.code().name} {error.details()!r}"
    assert isinstance(with_reason, list), (
        f"GetModelStatus('{model}') answered {with_reason}; expected version 1 END with "
        "error_code UNKNOWN")
    assert [(v, state, code) for v, state, code, _ in with_reason] == [
        (1, END, ERROR_UNKNOWN)], with_reason
    message = with_reason[0][3]
    assert message, "no reason in error_message"
    missing = [f for f in FAILED_MODELS[model] if not matches(message, f)]
    assert not missing, f"error_message {message!r} lacks {missing}"


# --- Classify and Regress --------------------------------------------------------------------


def test_classify_and_regress_are_unimplemented(predict_stub, kserve_port_stubs):
    classify = api.classification_pb2.ClassificationRequest()
    classify.model_spec.name = "tf_linear"
    regress = api.regression_pb2.RegressionRequest()
    regress.model_spec.name = "tf_linear"
    for stub in (predict_stub, kserve_port_stubs[0]):
        expect_error(stub.Classify, classify, UNIMPLEMENTED, "Classify", "Predict")
        expect_error(stub.Regress, regress, UNIMPLEMENTED, "Regress", "Predict")
    assert_still_serving(predict_stub)


def test_reload_config_is_not_served(model_stub, predict_stub):
    # modeld loads its repository at start (docs/migrating-from-tf-serving.md, Not offered).
    request = api.model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="tf_linear", base_path="/nowhere")
    expect_error(model_stub.HandleReloadConfigRequest, request, UNIMPLEMENTED)
    assert_still_serving(predict_stub)


# --- concurrency -----------------------------------------------------------------------------


def test_sixteen_threads_of_mixed_predicts(predict_stub, tf_reference, example_repository):
    mlp_x = np.load(example_repository / "mlp" / "reference" / "input.npy")
    mlp_y = np.load(example_repository / "mlp" / "reference" / "output.npy")

    def close(rtol, atol):
        def check(outputs, want, context):
            assert sorted(outputs) == sorted(want), context
            for name, value in want.items():
                np.testing.assert_allclose(outputs[name], value, rtol=rtol, atol=atol,
                                           err_msg=f"{context} {name}")
        return check

    def same(outputs, want, context):
        assert_same(outputs, want, context)

    # (model, request kwargs, inputs, expected outputs, check), all computed here.
    jobs = []
    for i in range(112):
        kind = i % 7
        kwargs = {}
        if kind == 0:
            model = "tf_linear"
            inputs = {"x": rng(i).uniform(-10, 10, (1 + i % 4, 1)).astype(np.float32)}
            jobs.append((model, kwargs, inputs, tf_reference[model](inputs), same))
        elif kind == 1:
            model = "strings"
            text = bytes_array([STRINGS[(i + j) % len(STRINGS)] for j in range(1 + i % 3)])
            inputs = {"text": text}
            jobs.append((model, kwargs, inputs, tf_reference[model](inputs), same))
        elif kind == 2:
            model = "dtypes"
            inputs = dtypes_inputs(1 + i % 2, seed=i)
            want = tf_reference[model](inputs)
            inputs = {k: typed_tensor(v, k[3:].upper()) for k, v in inputs.items()}
            jobs.append((model, kwargs, inputs, want, same))
        elif kind == 3:
            model = "two_signatures_triple"
            inputs = {"x": rng(i).standard_normal((1 + i % 3, 4)).astype(np.float32)}
            jobs.append((model, kwargs, inputs, tf_reference[model](inputs), same))
        elif kind == 4:
            version = 1 + i % 2
            x = rng(i).uniform(-5, 5, (1 + i % 4, 3)).astype(np.float32)
            jobs.append(("linear", {"version": version}, {"x": x},
                         {"y": linear_expected(x, version)}, close(1e-5, 1e-5)))
        elif kind == 5:
            row = i % len(mlp_x)
            jobs.append(("mlp", kwargs, {"x": mlp_x[row:row + 1]},
                         {"logits": mlp_y[row:row + 1]}, close(MLP_RTOL, MLP_ATOL)))
        else:
            ids = rng(i).integers(-100, 100, (2, 1 + i % 5), dtype=np.int64)
            mask = rng(i + 1).integers(0, 2, ids.shape).astype(np.bool_)
            jobs.append(("int64_bool", kwargs, {"ids": ids, "mask": mask},
                         {"masked_ids": ids * mask, "positive": ids > 0}, same))
    requests = [predict_request(model, inputs, **kwargs)
                for model, kwargs, inputs, _, _ in jobs]
    clients = 16
    barrier = threading.Barrier(clients)

    def client(c):
        barrier.wait(timeout=RPC_TIMEOUT_S)
        for i in range(c, len(jobs), clients):
            model, kwargs, _, want, check = jobs[i]
            response = predict_stub.Predict(requests[i], timeout=RPC_TIMEOUT_S)
            assert response.model_spec.name == model, i
            if "version" in kwargs:
                assert response.model_spec.version.value == kwargs["version"], i
            check(outputs_of(response), want, f"{model} request {i}")
        return c

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        assert sorted(pool.map(client, range(clients))) == list(range(clients))
