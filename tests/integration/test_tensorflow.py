"""TensorFlow SavedModels through the real binary (platform tensorflow_savedmodel).

The models are written at test time by tf_models.py with the venv's TensorFlow, once per
session, and every answer modeld gives is compared with TensorFlow in this Python process
(tf.saved_model.load and the same signature) on the same inputs.

One server (module scope) serves the generated models, configs that contradict their
signature and a corrupt SavedModel; the coexistence test starts its own server with both
TorchScript and TensorFlow models.
"""

import base64
import concurrent.futures
import re
import shutil
import struct
import threading

import grpc
import numpy as np
import pytest

import tf_models
from http_helpers import batch_metrics, HttpClient, binary_body, split_binary_reply
from infer_helpers import (
    CONTENTS_FIELD,
    NUMPY_DTYPE,
    RPC_TIMEOUT_S,
    linear_expected,
    make_stub,
    matches,
    mc,
    parse_bytes,
    pb,
    serialize_bytes,
)
from infer_helpers import expect_rpc_error as expect_error
from modeld_server import start_server

# Every test here serves TensorFlow SavedModels (conftest.py: MODELD_TENSORFLOW).
pytestmark = pytest.mark.tensorflow

# float32 results are compared with TensorFlow in Python at rtol 1e-5, atol 1e-6: the same
# kernels on the same machine, where only a different batch composition may change the
# order of a sum. Integer, bool, BYTES and reversed (copied) values must be exact.
RTOL = 1e-5
ATOL = 1e-6

PLATFORM = tf_models.PLATFORM
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

# Strings that must survive the trip unchanged: empty, non-ASCII UTF-8, embedded zero bytes,
# bytes that are not UTF-8, a long one.
STRINGS = [b"", "héllo wörld ✓ 日本".encode(), b"a\x00b\x00", b"\x00", b"\xff\xfe not utf-8",
           b"Mixed Case 123", b"x" * 3000]
UTF8_STRINGS = [s for s in STRINGS if s != b"\xff\xfe not utf-8"]

# The API dims of a signature tensor that is all batch ([-1], like `strings`' text, length and
# upper) once the config is completed: config.pbtxt cannot state an item of no dims, so modeld
# writes dims [1] with `reshape: []` (Triton's convention) and KServe clients send [N, 1].
# TensorFlow Serving's REST API takes and answers [N] (test_tfserving_predict_strings). Every strings
# test follows this one switch.
BATCH_ONLY_ITEM = (1,)


def batch_only(array):
    """A rank-1 batch of `strings` as the API takes it."""
    return np.asarray(array).reshape(-1, *BATCH_ONLY_ITEM)


def strings_expected(tf_reference, text):
    """TensorFlow's answer for `strings`, shaped as the API returns it."""
    return {k: batch_only(v) for k, v in tf_reference["strings"]({"text": text}).items()}


def rng(seed):
    return np.random.default_rng(seed)


# --- requests and answers with BYTES (infer_helpers.make_request has no BYTES) -------------


def bytes_array(values):
    array = np.empty(len(values), dtype=object)
    array[:] = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
    return array



def datatype_of(array):
    if array.dtype == object or array.dtype.kind in "SU":
        return "BYTES"
    for name, dtype in NUMPY_DTYPE.items():
        if array.dtype == dtype:
            return name
    raise ValueError(f"no KServe datatype for {array.dtype}")


def request_of(model, inputs, *, typed=False, outputs=None, version="", request_id=""):
    """A ModelInferRequest; inputs: {name: array} or [(name, array[, datatype])]."""
    items = inputs.items() if isinstance(inputs, dict) else inputs
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for item in items:
        name, array = item[0], np.asarray(item[1])
        datatype = item[2] if len(item) > 2 else datatype_of(array)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        if datatype == "BYTES":
            if typed:
                tensor.contents.bytes_contents.extend(list(array.ravel()))
            else:
                request.raw_input_contents.append(serialize_bytes(array))
        elif typed:
            if datatype in CONTENTS_FIELD:  # FP16 has no typed field: sent as no values at all
                getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.ravel().tolist())
        else:
            request.raw_input_contents.append(
                np.ascontiguousarray(array, dtype=NUMPY_DTYPE[datatype]).tobytes())
    for name in outputs or ():
        request.outputs.add(name=name)
    return request


def decode(response):
    """{output name: array} of a ModelInferResponse; BYTES as object arrays of bytes."""
    assert len(response.raw_output_contents) == len(response.outputs)
    result = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents):
        assert tensor.contents.ByteSize() == 0, f"output '{tensor.name}' also set typed contents"
        shape = tuple(tensor.shape)
        count = int(np.prod(shape, dtype=np.int64))
        if tensor.datatype == "BYTES":
            result[tensor.name] = parse_bytes(raw, count).reshape(shape)
        else:
            dtype = NUMPY_DTYPE[tensor.datatype]
            assert len(raw) == count * dtype.itemsize, (tensor.name, len(raw), shape)
            result[tensor.name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return result


def run(stub, model, inputs, **kwargs):
    response = stub.ModelInfer(request_of(model, inputs, **kwargs), timeout=RPC_TIMEOUT_S)
    return response, decode(response)


def assert_same(got, expected, context=""):
    """modeld's outputs against TensorFlow's: same names, dtypes, shapes and values."""
    assert sorted(got) == sorted(expected), f"{context}: {sorted(got)} vs {sorted(expected)}"
    for name, want in expected.items():
        value = got[name]
        assert value.shape == want.shape, f"{context} '{name}': shape {value.shape} vs {want.shape}"
        if want.dtype == object:
            assert value.dtype == object, f"{context} '{name}': {value.dtype}, expected BYTES"
            assert value.tolist() == want.tolist(), f"{context} '{name}'"
        elif want.dtype.kind == "f":
            assert value.dtype == want.dtype, f"{context} '{name}': {value.dtype} vs {want.dtype}"
            np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{context} {name}")
        else:
            assert value.dtype == want.dtype, f"{context} '{name}': {value.dtype} vs {want.dtype}"
            np.testing.assert_array_equal(value, want, err_msg=f"{context} {name}")


# --- inputs ----------------------------------------------------------------------------------


def linear_input(batch, seed=0):
    return rng(seed).uniform(-10, 10, (batch, 1)).astype(np.float32)


def mlp_input(batch, seed=0):
    return rng(seed).standard_normal((batch, 64)).astype(np.float32)


def dtypes_inputs(batch, seed=0):
    """{in_<dtype>: [batch, 3]} with each type's extremes in the first row."""
    r = rng(seed)
    inputs = {}
    for kserve in tf_models.DTYPES:
        name = f"in_{kserve.lower()}"
        if kserve == "BYTES":
            values = [STRINGS[(i + seed) % len(STRINGS)] for i in range(batch * 3)]
            inputs[name] = bytes_array(values).reshape(batch, 3)
        elif kserve == "BOOL":
            inputs[name] = r.integers(0, 2, (batch, 3)).astype(np.bool_)
        elif kserve.startswith("FP"):
            array = r.standard_normal((batch, 3)).astype(NUMPY_DTYPE[kserve]) * 100
            array[0, :] = [np.finfo(array.dtype).max, -0.0, np.finfo(array.dtype).tiny]
            inputs[name] = array
        else:
            dtype = NUMPY_DTYPE[kserve]
            info = np.iinfo(dtype)
            array = r.integers(info.min, info.max, (batch, 3), dtype=dtype, endpoint=True)
            array[0, :] = [info.min, info.max, 0]
            inputs[name] = array
    return inputs


# --- the repository and the server -----------------------------------------------------------


@pytest.fixture(scope="session")
def tf_repository(tmp_path_factory):
    """The models of tf_models.py, written once per session."""
    repository = tmp_path_factory.mktemp("tf_models")
    tf_models.generate(repository)
    return repository


@pytest.fixture(scope="session")
def tf_reference(tf_repository):
    """{model: callable} running each signature with TensorFlow in this process."""
    return tf_models.references(tf_repository)


def config_for(inputs, outputs, max_batch_size=8, extra=""):
    def entries(tensors):
        return ", ".join(f'{{ name: "{n}" data_type: {t} dims: [ {", ".join(map(str, d))} ] }}'
                         for n, t, d in tensors)

    return (f'platform: "{PLATFORM}"\nmax_batch_size: {max_batch_size}\n'
            f"input [ {entries(inputs)} ]\noutput [ {entries(outputs)} ]\n{extra}")


X_FP32 = ("x", "TYPE_FP32", [1])
Y_FP32 = ("y", "TYPE_FP32", [1])
WORD = {name: re.compile(rf"\b{name}\b") for name in ("x", "y", "z")}
SIGNATURE_FP32 = ("FP32", "DT_FLOAT", "float")

# Configs on linear's SavedModel (x FP32 [-1, 1] -> y FP32 [-1, 1]) that contradict its
# signature: name -> (config.pbtxt, fragments the load failure's reason must hold).
CONTRADICTIONS = {
    "wrong_input_dtype": (config_for([("x", "TYPE_FP64", [1])], [Y_FP32]),
                          [WORD["x"], "FP64", SIGNATURE_FP32]),
    "wrong_output_dtype": (config_for([X_FP32], [("y", "TYPE_INT64", [1])]),
                           [WORD["y"], "INT64", SIGNATURE_FP32]),
    "unknown_input": (config_for([("features", "TYPE_FP32", [1])], [Y_FP32]), ["features"]),
    "unknown_output": (config_for([X_FP32], [("z", "TYPE_FP32", [1])]), [WORD["z"]]),
    "wrong_shape": (config_for([("x", "TYPE_FP32", [3])], [Y_FP32]),
                    [WORD["x"], re.compile(r"\[(-1, ?)?3\]"), re.compile(r"\[(-1, ?)?1\]")]),
}
# The config parameters that size a session's thread pools (the contract's names).
INTRA_OP_THREADS = "intra_op_thread_count"
INTER_OP_THREADS = "inter_op_thread_count"

# A thread parameter that is not a positive integer is a load failure naming it: proof that
# the backend reads the parameters under these names.
# (The model names must not hold the parameter's name, which the reason must.)
for _model, _parameter in (("bad_intra_threads", INTRA_OP_THREADS),
                           ("bad_inter_threads", INTER_OP_THREADS)):
    CONTRADICTIONS[_model] = (
        config_for([X_FP32], [Y_FP32], extra=(
            f'parameters {{ key: "{_parameter}" value {{ string_value: "zero" }} }}\n')),
        [_parameter, "zero"])
# Models that must fail to load, with what their reason must hold ('corrupt' is generated).
BROKEN = {name: fragments for name, (_, fragments) in CONTRADICTIONS.items()}
BROKEN["corrupt"] = [("saved_model", "SavedModel", "savedmodel")]

# linear's SavedModel under a config that agrees with the signature, with the thread settings.
LINEAR_CONFIGURED = config_for(
    [X_FP32], [Y_FP32], max_batch_size=16,
    extra=f'parameters {{ key: "{INTRA_OP_THREADS}" value {{ string_value: "1" }} }}\n'
          f'parameters {{ key: "{INTER_OP_THREADS}" value {{ string_value: "1" }} }}\n'
          "dynamic_batching { }\n")

SERVING = tf_models.GOOD_MODELS + ("linear_configured",)


@pytest.fixture(scope="module")
def tf_server(tmp_path_factory, tf_repository):
    repository = tmp_path_factory.mktemp("tf_served")
    for model in tf_models.MODELS:
        shutil.copytree(tf_repository / model, repository / model)
    for name, (config, _) in CONTRADICTIONS.items():
        shutil.copytree(tf_repository / "linear" / "1", repository / name / "1")
        (repository / name / "config.pbtxt").write_text(config)
    shutil.copytree(tf_repository / "linear" / "1", repository / "linear_configured" / "1")
    (repository / "linear_configured" / "config.pbtxt").write_text(LINEAR_CONFIGURED)
    process = start_server(repository)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stub(tf_server):
    return make_stub(tf_server.channel())


@pytest.fixture
def http(tf_server):
    client = HttpClient(tf_server.http_address)
    yield client
    client.close()


def assert_tf_still_serving(stub):
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live is True
    x = np.array([[1.0], [-2.5], [0.0]], np.float32)
    _, outputs = run(stub, "linear", {"x": x}, request_id="still-serving")
    np.testing.assert_allclose(outputs["y"], x * tf_models.LINEAR_W + tf_models.LINEAR_B,
                               rtol=RTOL, atol=ATOL)


# --- readiness -------------------------------------------------------------------------------


def test_server_is_ready_with_failed_models(stub, tf_server):
    # Failed models do not hold readiness back (test_repository_errors.py): loading has ended.
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S).ready is True
    assert "modeld is ready" in tf_server.log


@pytest.mark.parametrize("model", SERVING)
def test_model_ready(stub, model):
    assert stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S).ready is True


# --- answers against TensorFlow in Python, over gRPC ----------------------------------------


def test_linear_is_y_equals_3x_plus_2(stub):
    response, outputs = run(stub, "linear", {"x": np.array([[1.0], [2.0], [-1.0]], np.float32)})
    assert response.model_name == "linear" and response.model_version == "1"
    described = [(o.name, o.datatype, list(o.shape)) for o in response.outputs]
    assert described == [("y", "FP32", [3, 1])]
    np.testing.assert_array_equal(outputs["y"], [[5.0], [8.0], [-1.0]])


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
@pytest.mark.parametrize("batch", [1, 5, 256])
def test_linear_against_tensorflow(stub, tf_reference, batch, typed):
    x = linear_input(batch, seed=batch)
    _, outputs = run(stub, "linear", {"x": x}, typed=typed)
    assert_same(outputs, tf_reference["linear"]({"x": x}), "linear")


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_keras_mlp_against_tensorflow(stub, tf_reference, batch, typed):
    x = mlp_input(batch, seed=batch)
    response, outputs = run(stub, "keras_mlp", {"x": x}, typed=typed)
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("output_0", "FP32", [batch, 10])]
    assert_same(outputs, tf_reference["keras_mlp"]({"x": x}), "keras_mlp")


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_strings_bytes_in_and_out(stub, tf_reference, typed):
    text = bytes_array(STRINGS)
    response, outputs = run(stub, "strings", {"text": batch_only(text)}, typed=typed)
    shape = [len(STRINGS), *BATCH_ONLY_ITEM]
    described = {o.name: (o.datatype, list(o.shape)) for o in response.outputs}
    assert described == {"length": ("INT32", shape), "upper": ("BYTES", shape)}
    assert_same(outputs, strings_expected(tf_reference, text), "strings")
    # And independently of TensorFlow: byte lengths, ASCII letters upper-cased, rest kept.
    assert outputs["length"].ravel().tolist() == [len(s) for s in STRINGS]
    upper = outputs["upper"].ravel()
    assert upper[2] == b"A\x00B\x00"
    assert upper[1] == "HéLLO WöRLD ✓ 日本".encode()
    assert upper[0] == b""


def test_strings_one_empty_string(stub):
    _, outputs = run(stub, "strings", {"text": batch_only(bytes_array([b""]))})
    assert outputs["length"].ravel().tolist() == [0]
    assert outputs["upper"].ravel().tolist() == [b""]


def test_strings_requested_output_only(stub):
    response, outputs = run(stub, "strings", {"text": batch_only(bytes_array([b"ab", b"c"]))},
                            outputs=["upper"])
    assert [o.name for o in response.outputs] == ["upper"]
    assert outputs["upper"].ravel().tolist() == [b"AB", b"C"]


def test_two_signatures_default_doubles(stub, tf_reference):
    x = rng(3).standard_normal((3, 4)).astype(np.float32)
    response, outputs = run(stub, "two_signatures", {"x": x})
    assert [o.name for o in response.outputs] == ["doubled"]
    assert_same(outputs, tf_reference["two_signatures"]({"x": x}), "two_signatures")
    np.testing.assert_array_equal(outputs["doubled"], x * 2)


def test_two_signatures_triple_by_signature_name(stub, tf_reference):
    x = rng(4).standard_normal((5, 4)).astype(np.float32)
    response, outputs = run(stub, "two_signatures_triple", {"x": x})
    assert [o.name for o in response.outputs] == ["tripled"]
    assert_same(outputs, tf_reference["two_signatures_triple"]({"x": x}), "two_signatures_triple")
    np.testing.assert_allclose(outputs["tripled"], x * 3, rtol=RTOL, atol=ATOL)


def test_every_dtype_round_trips(stub, tf_reference):
    inputs = dtypes_inputs(4, seed=11)
    response, outputs = run(stub, "dtypes", inputs)
    described = {o.name: o.datatype for o in response.outputs}
    assert described == {f"out_{k.lower()}": k for k in tf_models.DTYPES}
    expected = tf_reference["dtypes"](inputs)
    assert_same(outputs, expected, "dtypes")
    for key, array in inputs.items():  # and independently: each row reversed, bit for bit
        out = outputs["out_" + key[3:]]
        if array.dtype == object:
            assert out.tolist() == array[:, ::-1].tolist()
        else:
            assert out.tobytes() == np.ascontiguousarray(array[:, ::-1]).tobytes(), key


def test_fp16_cannot_travel_typed(stub):
    # FP16 has no typed contents field (it must travel raw); every other typed field decodes,
    # so the one error names in_fp16.
    request = request_of("dtypes", dtypes_inputs(1, seed=12), typed=True)
    expect_error(stub.ModelInfer, request, INVALID, "in_fp16", "raw_input_contents")
    assert_tf_still_serving(stub)


def test_no_batch_signature(stub, tf_reference):
    x = rng(5).standard_normal((2, 6)).astype(np.float32)
    response, outputs = run(stub, "no_batch", {"x": x})
    assert [(o.name, list(o.shape)) for o in response.outputs] == [("y", [2, 6])]
    assert_same(outputs, tf_reference["no_batch"]({"x": x}), "no_batch")
    x1 = rng(6).standard_normal((2, 1)).astype(np.float32)
    _, outputs = run(stub, "no_batch", {"x": x1})
    assert_same(outputs, tf_reference["no_batch"]({"x": x1}), "no_batch")


def test_config_with_thread_parameters_serves(stub, tf_reference):
    x = linear_input(16, seed=16)
    response, outputs = run(stub, "linear_configured", {"x": x})
    assert response.model_name == "linear_configured"
    assert_same(outputs, tf_reference["linear"]({"x": x}), "linear_configured")


def test_concurrent_requests_to_every_tf_model(stub, tf_reference):
    # Precomputed in the main thread; the clients only compare.
    jobs = []
    for i in range(48):
        kind = i % 4
        if kind == 0:
            model, inputs = "linear", {"x": linear_input(1 + i % 5, seed=i)}
        elif kind == 1:
            model, inputs = "keras_mlp", {"x": mlp_input(1 + i % 3, seed=i)}
        elif kind == 2:
            model = "two_signatures_triple"
            inputs = {"x": rng(i).standard_normal((1 + i % 3, 4)).astype(np.float32)}
        else:
            model, inputs = "dtypes", dtypes_inputs(1 + i % 2, seed=i)
        jobs.append((model, inputs, tf_reference[model](inputs)))

    def call(i):
        model, inputs, expected = jobs[i]
        response, outputs = run(stub, model, inputs, request_id=str(i))
        assert response.id == str(i)
        assert_same(outputs, expected, f"{model} request {i}")
        return i

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(call, range(len(jobs)))) == list(range(len(jobs)))


# --- config completion: metadata and ModelConfig --------------------------------------------


def metadata_of(stub, model):
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=RPC_TIMEOUT_S)
    return (metadata,
            sorted((t.name, t.datatype, list(t.shape)) for t in metadata.inputs),
            sorted((t.name, t.datatype, list(t.shape)) for t in metadata.outputs))


def config_of(stub, model):
    config = stub.ModelConfig(pb.ModelConfigRequest(name=model), timeout=RPC_TIMEOUT_S).config
    return (config,
            sorted((t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.input),
            sorted((t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.output))


def test_linear_metadata_comes_from_the_signature(stub):
    metadata, inputs, outputs = metadata_of(stub, "linear")
    assert metadata.name == "linear"
    assert metadata.platform == PLATFORM
    assert list(metadata.versions) == ["1"]
    assert inputs == [("x", "FP32", [-1, 1])]
    assert outputs == [("y", "FP32", [-1, 1])]


def test_linear_config_is_completed_with_batching(stub):
    config, inputs, outputs = config_of(stub, "linear")
    assert config.name == "linear"
    assert config.platform == PLATFORM or config.backend == "tensorflow", config
    assert config.max_batch_size == 256
    assert config.HasField("dynamic_batching"), config
    assert inputs == [("x", "TYPE_FP32", [1])]
    assert outputs == [("y", "TYPE_FP32", [1])]


def test_strings_config_is_completed_with_rank_one_tensors(stub):
    # Signature: text string [-1] -> length int32 [-1], upper string [-1]: the batch dimension
    # is all there is, so the dims after it are empty (BATCH_ONLY_ITEM).
    item = list(BATCH_ONLY_ITEM)
    _, inputs, outputs = metadata_of(stub, "strings")
    assert inputs == [("text", "BYTES", [-1, *item])]
    assert outputs == [("length", "INT32", [-1, *item]), ("upper", "BYTES", [-1, *item])]
    config, inputs, outputs = config_of(stub, "strings")
    assert config.max_batch_size == 256
    assert inputs == [("text", "TYPE_STRING", item)]
    assert list(config.input[0].reshape.shape) == [] and config.input[0].HasField("reshape")
    assert outputs == [("length", "TYPE_INT32", item), ("upper", "TYPE_STRING", item)]


def test_every_dtype_maps_as_the_contract_says(stub):
    _, inputs, outputs = metadata_of(stub, "dtypes")
    assert inputs == sorted((f"in_{k.lower()}", k, [-1, 3]) for k in tf_models.DTYPES)
    assert outputs == sorted((f"out_{k.lower()}", k, [-1, 3]) for k in tf_models.DTYPES)
    config, inputs, _ = config_of(stub, "dtypes")
    assert config.max_batch_size == 256
    expected = {"BYTES": "TYPE_STRING"}
    assert inputs == sorted((f"in_{k.lower()}", expected.get(k, "TYPE_" + k), [3])
                            for k in tf_models.DTYPES)


def test_signature_without_batch_dimension_is_not_batched(stub):
    _, inputs, outputs = metadata_of(stub, "no_batch")
    assert inputs == [("x", "FP32", [2, -1])]
    assert outputs == [("y", "FP32", [2, -1])]
    config, inputs, _ = config_of(stub, "no_batch")
    assert config.max_batch_size == 0
    assert inputs == [("x", "TYPE_FP32", [2, -1])]


def test_two_signatures_metadata_follows_the_chosen_signature(stub):
    _, inputs, outputs = metadata_of(stub, "two_signatures")
    assert (inputs, outputs) == ([("x", "FP32", [-1, 4])], [("doubled", "FP32", [-1, 4])])
    # two_signatures_triple's config names max_batch_size 8 and no tensors: they are filled
    # from the 'triple' signature, after its batch dimension.
    config, inputs, outputs = config_of(stub, "two_signatures_triple")
    assert config.max_batch_size == 8
    assert (inputs, outputs) == ([("x", "TYPE_FP32", [4])], [("tripled", "TYPE_FP32", [4])])
    assert config.parameters["signature_name"].string_value == "triple"
    _, inputs, outputs = metadata_of(stub, "two_signatures_triple")
    assert (inputs, outputs) == ([("x", "FP32", [-1, 4])], [("tripled", "FP32", [-1, 4])])


def test_keras_mlp_config_is_kept(stub):
    config, inputs, outputs = config_of(stub, "keras_mlp")
    assert config.max_batch_size == tf_models.KERAS_MLP_MAX_BATCH
    assert (inputs, outputs) == ([("x", "TYPE_FP32", [64])], [("output_0", "TYPE_FP32", [10])])


def test_completed_config_over_http(http):
    config = http.get("/v2/models/linear/config").json()
    assert config["max_batch_size"] == 256
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [
        ("x", "TYPE_FP32", [1])]
    assert "dynamic_batching" in config
    metadata = http.get("/v2/models/linear").json()
    assert metadata["platform"] == PLATFORM
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}]
    assert metadata["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]


# --- models that fail to load ----------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(BROKEN))
def test_broken_model_is_not_ready(stub, http, model):
    assert stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S).ready is False
    assert http.get(f"/v2/models/{model}/ready").status == 503


@pytest.mark.parametrize("model", sorted(BROKEN))
def test_broken_model_is_unavailable_with_reason(stub, model):
    fragments = BROKEN[model]
    expect_error(stub.ModelMetadata, pb.ModelMetadataRequest(name=model), UNAVAILABLE, model,
                 *fragments)
    request = request_of(model, {"x": np.ones((1, 1), np.float32)})
    expect_error(stub.ModelInfer, request, UNAVAILABLE, model, *fragments)
    assert_tf_still_serving(stub)


@pytest.mark.parametrize("model", sorted(BROKEN))
def test_broken_model_reason_is_logged(tf_server, model):
    lines = [line for line in tf_server.log_lines() if model in line]
    assert any(all(matches(line, f) for f in BROKEN[model]) for line in lines), (
        f"no log line for '{model}' holds {BROKEN[model]}; lines: {lines}")


# --- bad input: each fails alone, the server keeps serving (as test_bad_input.py) -----------

X = np.array([[1.0], [2.0]], np.float32)
MLP_X = np.ones((2, 64), np.float32)


def with_shape(request, shape):
    del request.inputs[0].shape[:]
    request.inputs[0].shape.extend(shape)
    return request


def malformed_bytes():
    request = request_of("strings", {"text": batch_only(bytes_array([b"abc"]))})
    request.raw_input_contents[0] = struct.pack("<I", 10) + b"abc"  # says 10 bytes, has 3
    return request


def _raw_too_short():
    request = request_of("linear", {"x": X})
    request.raw_input_contents[0] = X.tobytes()[:-4]
    return request


def missing_dtype_input():
    inputs = dtypes_inputs(1)
    del inputs["in_int16"]
    return request_of("dtypes", inputs)


CASES = [
    ("unknown_model", lambda: request_of("no_such_tf_model", {"x": X}), NOT_FOUND,
     ["no_such_tf_model"]),
    ("unknown_version", lambda: request_of("linear", {"x": X}, version="2"), NOT_FOUND,
     ["2", "linear"]),
    ("wrong_datatype", lambda: request_of("linear", {"x": X.astype(np.float64)}), INVALID,
     [WORD["x"], "FP64", "FP32"]),
    ("wrong_datatype_bytes",
     lambda: request_of("strings", {"text": batch_only(np.ones(2, np.float32))}),
     INVALID, ["text", "FP32", "BYTES"]),
    ("wrong_datatype_int", lambda: request_of("dtypes", {
        **dtypes_inputs(1), "in_int8": np.ones((1, 3), np.int16)}), INVALID,
     ["in_int8", "INT16", "INT8"]),
    ("rank_too_small", lambda: with_shape(request_of("linear", {"x": X}), [2]), INVALID,
     [WORD["x"], "[2]", "[-1, 1]"]),
    ("fixed_dim_wrong", lambda: request_of("keras_mlp", {"x": np.ones((2, 63), np.float32)}),
     INVALID, [WORD["x"], "[2, 63]", "[-1, 64]"]),
    ("no_batch_dim_wrong", lambda: request_of("no_batch", {"x": np.ones((3, 4), np.float32)}),
     INVALID, [WORD["x"], "[3, 4]", "[2, -1]"]),
    ("missing_input", missing_dtype_input, INVALID, ["in_int16", "missing"]),
    ("no_inputs", lambda: request_of("keras_mlp", {}), INVALID, ["no inputs", WORD["x"]]),
    ("graph_tensor_name", lambda: request_of("keras_mlp", {"serving_default_x:0": MLP_X}),
     INVALID, [("serving_default_x:0", "'x'")]),
    ("extra_input", lambda: request_of("keras_mlp", {"x": MLP_X, "serving_default_x": MLP_X}),
     INVALID, ["serving_default_x", "unknown"]),
    ("batch_above_completed_max",
     lambda: request_of("linear", {"x": np.ones((257, 1), np.float32)}),
     INVALID, [WORD["x"], "257", "256"]),
    ("batch_above_config_max",
     lambda: request_of("keras_mlp", {"x": np.ones((65, 64), np.float32)}),
     INVALID, [WORD["x"], "65", "64"]),
    ("raw_too_short", lambda: _raw_too_short(), INVALID, [WORD["x"], "4 bytes", "8"]),
    ("malformed_bytes", malformed_bytes, INVALID, ["text", "BYTES element 0"]),
    ("unknown_output", lambda: request_of("linear", {"x": X}, outputs=["z"]), INVALID,
     ["'z'", "'y'"]),
    ("graph_output_name", lambda: request_of("keras_mlp", {"x": MLP_X},
                                             outputs=["StatefulPartitionedCall:0"]),
     INVALID, ["StatefulPartitionedCall:0"]),
    ("other_signatures_output", lambda: request_of("two_signatures",
                                                   {"x": np.ones((1, 4), np.float32)},
                                                   outputs=["tripled"]),
     INVALID, ["tripled", "doubled"]),
]


@pytest.mark.parametrize("factory,code,fragments", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_request_fails_alone(stub, factory, code, fragments):
    expect_error(stub.ModelInfer, factory(), code, *fragments)
    assert_tf_still_serving(stub)


# --- HTTP: KServe V2 REST and TensorFlow Serving REST ---------------------------------------


def json_tensor(name, array):
    array = np.asarray(array)
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data = [v.decode("utf-8") for v in array.ravel()]
    else:
        data = array.ravel().tolist()
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def from_json_output(output):
    shape = tuple(output["shape"])
    if output["datatype"] == "BYTES":
        return bytes_array([s.encode("utf-8") for s in output["data"]]).reshape(shape)
    return np.array(output["data"], dtype=NUMPY_DTYPE[output["datatype"]]).reshape(shape)


def http_infer(http, model, inputs):
    reply = http.post(f"/v2/models/{model}/infer",
                      {"inputs": [json_tensor(k, v) for k, v in inputs.items()]})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model_name"] == model
    return {o["name"]: from_json_output(o) for o in body["outputs"]}


HTTP_CASES = {
    "linear": lambda: {"x": linear_input(9, seed=21)},
    "keras_mlp": lambda: {"x": mlp_input(5, seed=22)},
    "strings": lambda: {"text": batch_only(bytes_array(UTF8_STRINGS))},
    "two_signatures": lambda: {"x": rng(23).standard_normal((2, 4)).astype(np.float32)},
    "two_signatures_triple": lambda: {"x": rng(24).standard_normal((2, 4)).astype(np.float32)},
    "no_batch": lambda: {"x": rng(25).standard_normal((2, 3)).astype(np.float32)},
}


@pytest.mark.parametrize("model", sorted(HTTP_CASES))
def test_kserve_json_against_tensorflow(http, tf_reference, model):
    inputs = HTTP_CASES[model]()
    if model == "strings":
        expected = strings_expected(tf_reference, inputs["text"].ravel())
    else:
        expected = tf_reference[model](inputs)
    assert_same(http_infer(http, model, inputs), expected, f"http {model}")


def test_kserve_binary_every_dtype(http, tf_reference):
    inputs = dtypes_inputs(3, seed=31)
    raws, header_inputs = [], []
    for name, array in inputs.items():
        datatype = datatype_of(array)
        raw = (serialize_bytes(array) if datatype == "BYTES"
               else np.ascontiguousarray(array).tobytes())
        raws.append(raw)
        header_inputs.append({"name": name, "shape": list(array.shape), "datatype": datatype,
                              "parameters": {"binary_data_size": len(raw)}})
    body, headers = binary_body({"inputs": header_inputs,
                                 "parameters": {"binary_data_output": True}}, raws)
    reply = http.post("/v2/models/dtypes/infer", body, headers)
    assert reply.status == 200, reply.body[:500]
    header, raw_outputs = split_binary_reply(reply)
    outputs = {}
    for output in header["outputs"]:
        shape = tuple(output["shape"])
        count = int(np.prod(shape))
        raw = raw_outputs[output["name"]]
        if output["datatype"] == "BYTES":
            outputs[output["name"]] = parse_bytes(raw, count).reshape(shape)
        else:
            outputs[output["name"]] = np.frombuffer(
                raw, NUMPY_DTYPE[output["datatype"]]).reshape(shape)
    assert_same(outputs, tf_reference["dtypes"](inputs), "http binary dtypes")


def test_kserve_json_strings_with_binary_output(http, tf_reference):
    # Non-UTF-8 bytes cannot be JSON: send them binary and ask for 'upper' binary.
    text = bytes_array(STRINGS)
    raw = serialize_bytes(text)
    header = {"inputs": [{"name": "text", "shape": [len(STRINGS), *BATCH_ONLY_ITEM],
                          "datatype": "BYTES",
                          "parameters": {"binary_data_size": len(raw)}}],
              "outputs": [{"name": "length"},
                          {"name": "upper", "parameters": {"binary_data": True}}]}
    body, headers = binary_body(header, [raw])
    reply = http.post("/v2/models/strings/infer", body, headers)
    assert reply.status == 200, reply.body[:500]
    meta, raw_outputs = split_binary_reply(reply)
    expected = tf_reference["strings"]({"text": text})
    by_name = {o["name"]: o for o in meta["outputs"]}
    assert by_name["length"]["data"] == expected["length"].tolist()
    assert parse_bytes(raw_outputs["upper"], len(STRINGS)).tolist() == expected["upper"].tolist()


def test_tfserving_predict_instances(http, tf_reference):
    # What a TensorFlow Serving client sends to a model base path, unchanged.
    x = linear_input(4, seed=41)
    reply = http.post("/v1/models/linear:predict", {"instances": x.tolist()})
    assert reply.status == 200, reply.body
    predictions = np.array(reply.json()["predictions"], np.float32)
    np.testing.assert_allclose(predictions, tf_reference["linear"]({"x": x})["y"],
                               rtol=RTOL, atol=ATOL)
    x = mlp_input(3, seed=42)
    reply = http.post("/v1/models/keras_mlp:predict", {"instances": x.tolist()})
    assert reply.status == 200, reply.body
    np.testing.assert_allclose(np.array(reply.json()["predictions"], np.float32),
                               tf_reference["keras_mlp"]({"x": x})["output_0"],
                               rtol=RTOL, atol=ATOL)


def test_tfserving_predict_strings(http, tf_reference):
    words = ["héllo", "", "a\u0000b", "plain"]
    reply = http.post("/v1/models/strings:predict", {"instances": words})
    assert reply.status == 200, reply.body
    expected = tf_reference["strings"]({"text": bytes_array(words)})
    predictions = reply.json()["predictions"]
    assert [p["length"] for p in predictions] == expected["length"].tolist()
    assert [p["upper"].encode() for p in predictions] == expected["upper"].tolist()
    blob = "a\u0000é".encode()  # b64 in; 'upper' stays UTF-8, so it can come back as text
    reply = http.post("/v1/models/strings:predict",
                      {"inputs": {"text": [{"b64": base64.b64encode(blob).decode()}]}})
    assert reply.status == 200, reply.body
    assert reply.json()["outputs"] == {"length": [4], "upper": ["A\u0000é"]}


def test_tfserving_metadata_shows_the_signature(http):
    metadata = http.get("/v1/models/linear/metadata").json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signature["outputs"]["y"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["x"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""}, {"size": "1", "name": ""}]
    strings = http.get("/v1/models/strings/metadata").json()
    inputs = strings["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert inputs["text"]["dtype"] == "DT_STRING"
    # The signature's own [-1], as TensorFlow Serving shows it (KServe metadata says [-1, 1]).
    assert inputs["text"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_modeld_python_client_on_tf_models(tf_server, tf_reference, scheme):
    # What a Django view does: no TensorFlow in the web worker, the model in modeld.
    import modeld

    address = tf_server.address if scheme == "grpc" else tf_server.http_address
    with modeld.Client(f"{scheme}://{address}", timeout=10) as client:
        np.testing.assert_array_equal(client.predict("linear", [[1.0], [2.0]]), [[5.0], [8.0]])
        x = mlp_input(3, seed=51)
        np.testing.assert_allclose(client.predict("keras_mlp", x),
                                   tf_reference["keras_mlp"]({"x": x})["output_0"],
                                   rtol=RTOL, atol=ATOL)
        assert client.metadata("keras_mlp")["platform"] == PLATFORM


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_modeld_python_client_strings(tf_server, scheme):
    import modeld

    address = tf_server.address if scheme == "grpc" else tf_server.http_address
    with modeld.Client(f"{scheme}://{address}", timeout=10) as client:
        out = client.infer("strings", {"text": batch_only(["ab", "", "é"])})
        assert out["length"].ravel().tolist() == [2, 0, 2]
        assert out["upper"].ravel().tolist() == [b"AB", b"", "é".encode()]


# --- dynamic batching ------------------------------------------------------------------------

def test_keras_mlp_batches_16_concurrent_clients(stub, tf_server, tf_reference):
    clients, rounds, burst = 16, 6, 4
    x = mlp_input(clients * rounds * burst, seed=77)
    expected = tf_reference["keras_mlp"]({"x": x})["output_0"]
    before = batch_metrics(tf_server.http_address, "keras_mlp")
    barrier = threading.Barrier(clients)

    def client(c):
        barrier.wait(timeout=RPC_TIMEOUT_S)
        for r in range(rounds):
            rows = [(c * rounds + r) * burst + b for b in range(burst)]
            futures = [stub.ModelInfer.future(
                request_of("keras_mlp", {"x": x[i:i + 1]}, request_id=str(i)),
                timeout=RPC_TIMEOUT_S) for i in rows]
            for i, future in zip(rows, futures):
                response = future.result()
                assert response.id == str(i)
                np.testing.assert_allclose(decode(response)["output_0"], expected[i:i + 1],
                                           rtol=RTOL, atol=ATOL, err_msg=f"request {i}")
        return c

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        assert sorted(pool.map(client, range(clients))) == list(range(clients))
    after = batch_metrics(tf_server.http_address, "keras_mlp")
    one, runs, rows = (a - b for a, b in zip(after, before))
    requests = clients * rounds * burst
    assert rows == requests, f"{rows} rows ran for {requests} one-row requests"
    assert runs < requests and one < runs, (
        f"no run held more than one request: {runs} runs, {one} of them with one row")


# --- coexistence: TorchScript and TensorFlow in one server ----------------------------------


def test_torchscript_and_tensorflow_in_one_server(launch, tmp_path, example_repository,
                                                  tf_repository, tf_reference):
    repository = tmp_path / "repo"
    for model in ("linear", "mlp"):
        shutil.copytree(example_repository / model, repository / model)
    shutil.copytree(tf_repository / "linear", repository / "tf_linear")  # no config: any name
    for model in ("keras_mlp", "dtypes"):
        shutil.copytree(tf_repository / model, repository / model)
    server = launch(repository)
    stub = make_stub(server.channel())
    for model, platform in (("linear", "pytorch_libtorch"), ("mlp", "pytorch_libtorch"),
                            ("tf_linear", PLATFORM), ("keras_mlp", PLATFORM),
                            ("dtypes", PLATFORM)):
        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=RPC_TIMEOUT_S)
        assert metadata.platform == platform, model

    mlp_x = np.load(example_repository / "mlp" / "reference" / "input.npy")
    mlp_y = np.load(example_repository / "mlp" / "reference" / "output.npy")

    def torch_check(expected, rtol, atol):
        def check(outputs, context):
            assert sorted(outputs) == sorted(expected), context
            for name, want in expected.items():
                np.testing.assert_allclose(outputs[name], want, rtol=rtol, atol=atol,
                                           err_msg=context)
        return check

    def tf_check(expected):
        return lambda outputs, context: assert_same(outputs, expected, context)

    # (model, inputs, check): torch against numpy or torch's reference (test_infer.py's
    # tolerances), TensorFlow against TensorFlow in Python.
    jobs = []
    for i in range(100):
        kind = i % 5
        if kind == 0:
            x = rng(i).uniform(-5, 5, (1 + i % 4, 3)).astype(np.float32)
            jobs.append(("linear", {"x": x}, torch_check({"y": linear_expected(x)}, 1e-5, 1e-5)))
        elif kind == 1:
            row = i % len(mlp_x)
            jobs.append(("mlp", {"x": mlp_x[row:row + 1]},
                         torch_check({"logits": mlp_y[row:row + 1]}, 1e-4, 1e-5)))
        elif kind == 2:
            x = linear_input(1 + i % 3, seed=i)
            jobs.append(("tf_linear", {"x": x}, tf_check(tf_reference["linear"]({"x": x}))))
        elif kind == 3:
            x = mlp_input(1 + i % 2, seed=i)
            jobs.append(("keras_mlp", {"x": x}, tf_check(tf_reference["keras_mlp"]({"x": x}))))
        else:
            inputs = dtypes_inputs(1 + i % 3, seed=i)
            jobs.append(("dtypes", inputs, tf_check(tf_reference["dtypes"](inputs))))
    barrier = threading.Barrier(8)

    def client(worker):
        barrier.wait(timeout=RPC_TIMEOUT_S)
        for i in range(worker, len(jobs), 8):
            model, inputs, check = jobs[i]
            response, outputs = run(stub, model, inputs, request_id=str(i))
            assert response.id == str(i)
            check(outputs, f"{model} request {i}")
        return worker

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(client, range(8))) == list(range(8))


def test_without_the_tensorflow_library_only_tensorflow_models_fail(launch, tmp_path,
                                                                    example_repository,
                                                                    tf_repository):
    # --tensorflow-library names a file that is not there: the TensorFlow models report why,
    # the TorchScript model serves.
    repository = tmp_path / "repo"
    shutil.copytree(example_repository / "linear", repository / "linear")
    shutil.copytree(tf_repository / "linear", repository / "tf_linear")
    missing = tmp_path / "no" / "libtensorflow_cc.so.2"
    server = launch(repository, [f"--tensorflow-library={missing}"])
    stub = make_stub(server.channel())
    assert stub.ModelReady(pb.ModelReadyRequest(name="linear"), timeout=RPC_TIMEOUT_S).ready
    expect_error(stub.ModelMetadata, pb.ModelMetadataRequest(name="tf_linear"), UNAVAILABLE,
                 "tf_linear", "the TensorFlow library cannot be loaded", str(missing))
    x = np.ones((1, 3), np.float32)
    response = stub.ModelInfer(request_of("linear", {"x": x}), timeout=RPC_TIMEOUT_S)
    np.testing.assert_allclose(decode(response)["y"], linear_expected(x), rtol=1e-5, atol=1e-5)


# --- TensorFlow's own log lines --------------------------------------------------------------

MODELD_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (trace|debug|info|warning|error|critical) ")
# Abseil's ("I1207 09:49:56.963283 28845 file.cc:401] ...") and tsl's
# ("2026-12-07 09:49:56.963283: W tensorflow/...cc:1840] ...") formats.
FOREIGN_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )")


def test_tensorflow_log_lines_take_modelds_format(stub, tf_server):
    assert_tf_still_serving(stub)  # a session has run, and loaded its graph optimizers
    lines = [line for line in tf_server.log_lines() if line.strip()]
    assert not [line for line in lines if FOREIGN_LINE.match(line)]
    assert not [line for line in lines if "absl::InitializeLog" in line]
    assert not [line for line in lines if not MODELD_LINE.match(line)], lines


def test_tensorflow_info_lines_are_modelds_debug_lines(tmp_path, tf_repository):
    shutil.copytree(tf_repository / "linear", tmp_path / "linear")
    process = start_server(tmp_path, extra_args=["--log-level=debug"])
    try:
        assert_tf_still_serving(make_stub(process.channel()))
    finally:
        process.stop()
    # TensorFlow logs at INFO while it loads (its graph optimizers): "debug <file>:<line>: ...".
    routed = [line for line in process.log_lines()
              if re.search(r" debug [\w/.-]+\.cc:\d+: ", line)]
    assert routed, process.log
    assert all(MODELD_LINE.match(line) for line in routed)
