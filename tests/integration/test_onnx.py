"""ONNX models through the real binary (platform onnxruntime_onnx, backend onnxruntime):
scikit-learn (a linear model, a random forest, a TF-IDF text classifier with a string input),
XGBoost, LightGBM and PyTorch exports, onnx.helper graphs of every datatype and of fixed
shapes, served with no config.pbtxt (modeld completes the config from the session's inputs and
outputs) and under configs that state them, right or wrong.

The models come from onnx_models.py (cached by content under build/test-models/; a
subprocess with the venv's converters and onnxruntime writes them, this process imports
neither), and every answer is compared with onnxruntime's own (a Python InferenceSession on
the same file and the same input, computed when the models were written): float32 at
rtol 1e-5, atol 1e-6 (the same kernels; only another batch composition may reorder a sum),
integers, bools and BYTES exactly. As for every model, KServe shows a tensor whose items have
no dims of their own (scikit-learn's and XGBoost's `label`, [N] in ONNX) as dims [1] with
reshape [] in the config and [N, 1] in requests and answers (core::TensorSpec::IsScalarItem,
as for TensorFlow SavedModels in test_tensorflow.py).

One server (module scope, --model-control-mode=explicit so the repository index answers)
serves the good models next to refused ones: a ZipMap output (a sequence of maps, not a
tensor), configs that contradict model.onnx on a datatype, a shape and a name, and model.onnx
files onnxruntime cannot open (random bytes, half a model). Each refused one must be
unavailable with its reason (repository index, load answer, metadata, infer, log) while the
others serve.

The text model is made only when the pinned skl2onnx and onnxruntime can make and run it;
when they cannot, onnx_models.py records why, and every test of it fails (at setup) with that
reason.
"""

import concurrent.futures
import json
import re
import shutil
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest

import onnx_models
from http_helpers import HttpClient, batch_metrics, kserve_tensor
from infer_helpers import (
    CONTENTS_FIELD,
    NUMPY_DTYPE,
    RPC_TIMEOUT_S,
    expect_rpc_error,
    make_stub,
    mc,
    parse_bytes,
    pb,
    serialize_bytes,
)
from modeld_server import start_server

RTOL = 1e-5
ATOL = 1e-6

PLATFORM = onnx_models.PLATFORM
INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

# The models compared with onnxruntime's answers for batches of 1, 3 and 7 rows.
BATCH_MODELS = ("sklearn_logreg", "sklearn_forest", onnx_models.TEXT_MODEL, "xgboost",
                "lightgbm", "torch_mlp")
BATCH_CASES = tuple(onnx_models.BATCH_CASES)

# model -> what the reason it is refused with must hold (substrings or regexes), wherever the
# reason shows (repository index, load answer, metadata and infer errors, log).
REFUSED = {
    "sklearn_zipmap": ["output_probability", "is a sequence, not a tensor", "zipmap=False"],
    # "... but model.onnx has TYPE_FP32", or with ONNX's name of the type before it
    # ("has tensor(float) (TYPE_FP32)")
    "stated_bad_type": ["input 'x' is declared TYPE_FP64 but model.onnx has",
                        re.compile(r"but model\.onnx has [^:]*\bTYPE_FP32\b")],
    "stated_bad_dims": ["input 'x' has shape", "but model.onnx has",
                        re.compile(r"has shape \[[^\]]*\b5\]"),
                        re.compile(r"model\.onnx has \[[^\]]*\b4\]")],
    "stated_bad_name": ["input 'y' is not in model.onnx, whose inputs are: x"],
    # onnxruntime's own words after the file's path ("Load model from <path> failed:Protobuf
    # parsing failed.")
    "corrupt_random": [re.compile(r"cannot load \S*/corrupt_random/1/model\.onnx: "),
                       "Protobuf parsing failed"],
    "corrupt_truncated": [re.compile(r"cannot load \S*/corrupt_truncated/1/model\.onnx: "),
                          "Protobuf parsing failed"],
}
assert sorted(REFUSED) == sorted(onnx_models.REFUSED)


# --- BYTES-aware requests and answers (infer_helpers.make_request has no BYTES) ---------------


def datatype_of(array):
    if array.dtype == object:
        return "BYTES"
    for name, dtype in NUMPY_DTYPE.items():
        if array.dtype == dtype:
            return name
    raise ValueError(f"no KServe datatype for {array.dtype}")



def request_of(model, inputs, *, typed=False, outputs=None, request_id=""):
    """A ModelInferRequest; inputs: {name: array} or [(name, array[, datatype])]."""
    items = inputs.items() if isinstance(inputs, dict) else inputs
    request = pb.ModelInferRequest(model_name=model, id=request_id)
    for item in items:
        name, array = item[0], np.asarray(item[1])
        datatype = item[2] if len(item) > 2 else datatype_of(array)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        if datatype == "BYTES":
            request.raw_input_contents.append(serialize_bytes(array))
        elif typed:
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
        assert tensor.name not in result, f"output '{tensor.name}' returned twice"
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


def scalar_item_outputs(model):
    """Outputs whose items have no dims (dims [1], reshape []): [N] in ONNX, [N, 1] in KServe."""
    reference = "sklearn_logreg" if model == "stated_ok" else model
    _, outputs = onnx_models.COMPLETED[reference]
    return {name for name, _, _, reshape in outputs if reshape == []}


def as_served(model, outputs):
    """onnxruntime's outputs shaped as modeld's KServe APIs answer them."""
    scalar = scalar_item_outputs(model)
    return {name: value.reshape(-1, 1) if name in scalar else value
            for name, value in outputs.items()}


def assert_same(got, expected, context=""):
    """modeld's outputs against onnxruntime's: same names, dtypes, shapes and values."""
    assert sorted(got) == sorted(expected), f"{context}: {sorted(got)} vs {sorted(expected)}"
    for name, want in expected.items():
        value = got[name]
        assert value.shape == want.shape, f"{context} '{name}': shape {value.shape} vs {want.shape}"
        assert value.dtype == want.dtype, f"{context} '{name}': {value.dtype} vs {want.dtype}"
        if want.dtype == object:
            assert value.tolist() == want.tolist(), f"{context} '{name}'"
        elif want.dtype.kind == "f":
            np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{context} {name}")
        else:
            np.testing.assert_array_equal(value, want, err_msg=f"{context} {name}")


# --- the repository and the server -----------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_folder():
    return onnx_models.ensure()


@pytest.fixture(scope="module")
def references(onnx_folder):
    return onnx_models.load_references(onnx_folder)


def fail_if_unavailable(onnx_folder, *models):
    """Fails with the generator's reason when one of `models` could not be made."""
    reasons = onnx_models.unavailable(onnx_folder)
    for model in models:
        if isinstance(model, str) and model in reasons:
            pytest.fail(reasons[model], pytrace=False)


@pytest.fixture(autouse=True)
def _unavailable_model_fails(request, onnx_folder):
    """A test parametrized with a model the generator could not make fails with its reason."""
    callspec = getattr(request.node, "callspec", None)
    fail_if_unavailable(onnx_folder, *(callspec.params.values() if callspec else ()))


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory, onnx_folder):
    repository = tmp_path_factory.mktemp("onnx") / "repo"
    shutil.copytree(onnx_folder / "repository", repository)
    process = start_server(repository, ["--model-control-mode=explicit"])
    yield process
    assert process.stop() == 0, process.log


@pytest.fixture(scope="module")
def stub(onnx_server):
    return make_stub(onnx_server.channel())


@pytest.fixture
def http(onnx_server):
    client = HttpClient(onnx_server.http_address)
    yield client
    client.close()


def assert_onnx_still_serving(stub, references):
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live is True
    inputs, outputs = references["sklearn_logreg"]["b3"]
    _, got = run(stub, "sklearn_logreg", inputs, request_id="still-serving")
    assert_same(got, as_served("sklearn_logreg", outputs), "still serving")


# --- readiness -------------------------------------------------------------------------------


def test_server_is_ready_with_refused_models(stub, onnx_server):
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S).ready is True
    assert "modeld is ready" in onnx_server.log


@pytest.mark.parametrize("model", onnx_models.SERVING)
def test_model_ready(stub, http, model):
    assert stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S).ready is True
    assert http.get(f"/v2/models/{model}/ready").status == 200


# --- config completion: ModelConfig and metadata ---------------------------------------------


def config_of(stub, model):
    return stub.ModelConfig(pb.ModelConfigRequest(name=model), timeout=RPC_TIMEOUT_S).config


def described_config(tensors):
    return sorted((t.name, mc.DataType.Name(t.data_type), list(t.dims),
                   list(t.reshape.shape) if t.HasField("reshape") else None) for t in tensors)


def full_shape(model, dims):
    """The API shape of a completed tensor (batch dimension included)."""
    return list(dims) if onnx_models.MAX_BATCH[model] == 0 else [-1, *dims]


@pytest.mark.parametrize("model", sorted(onnx_models.COMPLETED))
def test_config_is_completed_from_the_session(stub, model):
    inputs, outputs = onnx_models.COMPLETED[model]
    config = config_of(stub, model)
    assert config.name == model
    assert config.platform == PLATFORM, config
    assert config.max_batch_size == onnx_models.MAX_BATCH[model]
    # A leading dynamic dimension on every tensor turns dynamic batching on; fixed shapes not.
    assert config.HasField("dynamic_batching") == (onnx_models.MAX_BATCH[model] > 0), config
    assert described_config(config.input) == sorted(inputs)
    assert described_config(config.output) == sorted(outputs)


@pytest.mark.parametrize("model", sorted(onnx_models.COMPLETED))
def test_metadata_comes_from_the_session(stub, model):
    inputs, outputs = onnx_models.COMPLETED[model]
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=RPC_TIMEOUT_S)
    assert metadata.name == model
    assert metadata.platform == PLATFORM
    assert list(metadata.versions) == ["1"]
    kserve = {config: kserve for _, kserve, config in onnx_models.ALL_TYPES.values()}

    def expected(tensors):
        return sorted((name, kserve[config], full_shape(model, dims))
                      for name, config, dims, _ in tensors)

    assert sorted((t.name, t.datatype, list(t.shape)) for t in metadata.inputs) == expected(inputs)
    assert (sorted((t.name, t.datatype, list(t.shape)) for t in metadata.outputs)
            == expected(outputs))


def test_per_item_scalar_output_is_dims_1_reshape_empty(stub):
    """scikit-learn's label is [N] in ONNX: dims [1] with reshape [] (IsScalarItem), [-1, 1] in
    the metadata, as a TensorFlow signature's [-1] tensor is."""
    config = config_of(stub, "sklearn_logreg")
    [label] = [t for t in config.output if t.name == "label"]
    assert list(label.dims) == [1]
    assert label.HasField("reshape") and list(label.reshape.shape) == []
    [probabilities] = [t for t in config.output if t.name == "probabilities"]
    assert not probabilities.HasField("reshape")
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="sklearn_logreg"),
                                  timeout=RPC_TIMEOUT_S)
    assert [list(t.shape) for t in metadata.outputs if t.name == "label"] == [[-1, 1]]


def test_stated_config_is_kept(stub):
    config = config_of(stub, "stated_ok")
    assert config.platform == PLATFORM
    assert config.max_batch_size == onnx_models.STATED_MAX_BATCH
    assert described_config(config.input) == [("x", "TYPE_FP32", [4], None)]
    assert described_config(config.output) == [("label", "TYPE_INT64", [1], []),
                                               ("probabilities", "TYPE_FP32", [3], None)]


def test_completed_config_over_http(http):
    config = http.get("/v2/models/sklearn_logreg/config").json()
    assert config["platform"] == PLATFORM
    assert config["max_batch_size"] == onnx_models.COMPLETED_MAX_BATCH
    assert "dynamic_batching" in config
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [
        ("x", "TYPE_FP32", [4])]
    outputs = {o["name"]: o for o in config["output"]}
    assert sorted(outputs) == ["label", "probabilities"]
    assert (outputs["label"]["data_type"], outputs["label"]["dims"]) == ("TYPE_INT64", [1])
    assert outputs["label"]["reshape"].get("shape", []) == []
    assert (outputs["probabilities"]["data_type"], outputs["probabilities"]["dims"]) == (
        "TYPE_FP32", [3])
    fixed = http.get("/v2/models/fixed/config").json()
    assert fixed["max_batch_size"] == 0
    assert [(i["name"], i["dims"]) for i in fixed["input"]] == [("a", [3, 4])]
    metadata = http.get("/v2/models/sklearn_logreg").json()
    assert metadata["platform"] == PLATFORM
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert sorted((o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]) == [
        ("label", "INT64", [-1, 1]), ("probabilities", "FP32", [-1, 3])]


# --- answers against onnxruntime in Python, over gRPC ----------------------------------------


@pytest.mark.parametrize("case", BATCH_CASES)
@pytest.mark.parametrize("model", BATCH_MODELS)
def test_answers_match_onnxruntime(stub, references, model, case):
    inputs, outputs = references[model][case]
    response, got = run(stub, model, inputs, request_id=f"{model}-{case}")
    assert response.id == f"{model}-{case}"
    assert response.model_name == model and response.model_version == "1"
    assert_same(got, as_served(model, outputs), f"{model} {case}")


@pytest.mark.parametrize("case", BATCH_CASES)
def test_stated_config_answers_match_onnxruntime(stub, references, case):
    inputs, outputs = references["sklearn_logreg"][case]
    _, got = run(stub, "stated_ok", inputs)
    assert_same(got, as_served("stated_ok", outputs), f"stated_ok {case}")


def test_typed_contents_match_onnxruntime(stub, references):
    inputs, outputs = references["xgboost"]["b7"]
    _, got = run(stub, "xgboost", inputs, typed=True)
    assert_same(got, as_served("xgboost", outputs), "xgboost typed")


def test_requested_output_only(stub, references):
    inputs, outputs = references["sklearn_logreg"]["b3"]
    response, got = run(stub, "sklearn_logreg", inputs, outputs=["probabilities"])
    assert [o.name for o in response.outputs] == ["probabilities"]
    assert_same(got, {"probabilities": outputs["probabilities"]}, "probabilities only")


def test_label_is_answered_as_n_by_1(stub, references):
    inputs, outputs = references["sklearn_logreg"]["b7"]
    response, _ = run(stub, "sklearn_logreg", inputs)
    described = {o.name: (o.datatype, list(o.shape)) for o in response.outputs}
    assert described == {"label": ("INT64", [7, 1]), "probabilities": ("FP32", [7, 3])}


def test_fixed_shape_model(stub):
    a = np.random.default_rng(5).standard_normal(onnx_models.FIXED_SHAPE).astype(np.float32)
    response, got = run(stub, "fixed", {"a": a})
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("b", "FP32", list(onnx_models.FIXED_SHAPE))]
    np.testing.assert_array_equal(got["b"], np.maximum(a, 0))


def test_every_datatype_round_trips(stub, references):
    inputs, outputs = references["all_types"][onnx_models.ALL_TYPES_CASE]
    response, got = run(stub, "all_types", inputs)
    described = {o.name: (o.datatype, list(o.shape)) for o in response.outputs}
    assert described == {f"out_{t}": (kserve, [onnx_models.ALL_TYPES_ROWS, 2])
                         for t, (_, kserve, _) in onnx_models.ALL_TYPES.items()}
    assert_same(got, outputs, "all_types")
    for name, array in inputs.items():  # and independently of onnxruntime: bit for bit
        out = got["out_" + name.removeprefix("in_")]
        if array.dtype == object:
            assert out.tolist() == array.tolist(), name
        else:
            assert out.tobytes() == array.tobytes(), name


def test_every_datatype_one_row_at_a_time(stub, references):
    """Rows of every datatype (BYTES of different lengths) from concurrent one-row requests,
    which dynamic batching may join into one run, each come back as sent."""
    inputs, _ = references["all_types"][onnx_models.ALL_TYPES_CASE]
    rows = onnx_models.ALL_TYPES_ROWS

    def call(i):
        row = {name: array[i:i + 1] for name, array in inputs.items()}
        response, got = run(stub, "all_types", row, request_id=str(i))
        assert response.id == str(i)
        for name, array in row.items():
            out = got["out_" + name.removeprefix("in_")]
            assert out.shape == array.shape, (i, name, out.shape)
            if array.dtype == object:
                assert out.tolist() == array.tolist(), (i, name)
            else:
                assert out.tobytes() == array.tobytes(), (i, name)
        return i

    with concurrent.futures.ThreadPoolExecutor(max_workers=rows) as pool:
        assert sorted(pool.map(call, [i % rows for i in range(4 * rows)])) == sorted(
            i % rows for i in range(4 * rows))


def test_concurrent_single_rows_get_their_own_answers(stub, onnx_server, references):
    """64 one-row requests from 8 clients: dynamic batching joins them into runs, and each
    request gets its own row's answer back."""
    x, expected = references["sklearn_logreg"][onnx_models.ROWS_CASE]
    x = x["x"]
    expected = as_served("sklearn_logreg", expected)
    clients = 8
    per_client = len(x) // clients
    before = batch_metrics(onnx_server.http_address, "sklearn_logreg")
    barrier = threading.Barrier(clients)

    def client(c):
        barrier.wait(timeout=RPC_TIMEOUT_S)
        rows = range(c * per_client, (c + 1) * per_client)
        futures = [stub.ModelInfer.future(
            request_of("sklearn_logreg", {"x": x[i:i + 1]}, request_id=str(i)),
            timeout=RPC_TIMEOUT_S) for i in rows]
        for i, future in zip(rows, futures):
            response = future.result()
            assert response.id == str(i)
            assert_same(decode(response), {k: v[i:i + 1] for k, v in expected.items()},
                        f"request {i}")
        return c

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        assert sorted(pool.map(client, range(clients))) == list(range(clients))
    after = batch_metrics(onnx_server.http_address, "sklearn_logreg")
    one, runs, rows = (a - b for a, b in zip(after, before))
    assert rows == len(x), f"{rows} rows ran for {len(x)} one-row requests"
    print(f"\nsklearn_logreg: {rows:.0f} rows in {runs:.0f} runs, {one:.0f} of one row")
    # The completed config's dynamic_batching at work: some run held more than one request.
    assert runs < len(x), f"no run held more than one request: {runs} runs, {one} of one row"


def test_concurrent_requests_to_every_model(stub, onnx_folder, references):
    fail_if_unavailable(onnx_folder, *BATCH_MODELS)
    jobs = []
    for i in range(32):
        model = BATCH_MODELS[i % len(BATCH_MODELS)]
        case = BATCH_CASES[(i // len(BATCH_MODELS)) % len(BATCH_CASES)]
        inputs, outputs = references[model][case]
        jobs.append((model, inputs, as_served(model, outputs)))

    def call(i):
        model, inputs, expected = jobs[i]
        response, got = run(stub, model, inputs, request_id=str(i))
        assert response.id == str(i)
        assert_same(got, expected, f"{model} request {i}")
        return i

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(call, range(len(jobs)))) == list(range(len(jobs)))


def test_concurrent_clients_on_their_own_channels(onnx_server, references):
    """CLIENTS clients, each on a channel of its own (torch_mlp or sklearn_forest), send
    CLIENT_REQUESTS requests each, of 1 to CLIENT_ROWS rows no other request sends, and each
    checks its own answers against onnxruntime's for those rows."""
    barrier = threading.Barrier(onnx_models.CLIENTS)

    def client(c):
        model = onnx_models.CLIENT_MODELS[c % len(onnx_models.CLIENT_MODELS)]
        inputs, outputs = references[model][onnx_models.CLIENTS_CASE]
        expected = as_served(model, outputs)
        channel = onnx_server.channel()
        try:
            stub = make_stub(channel)
            barrier.wait(timeout=RPC_TIMEOUT_S)
            for r in range(onnx_models.CLIENT_REQUESTS):
                rows = onnx_models.client_rows(c, r)
                request_id = f"client {c} request {r}"
                response, got = run(stub, model, {k: v[rows] for k, v in inputs.items()},
                                    request_id=request_id)
                assert (response.id, response.model_name) == (request_id, model)
                assert_same(got, {k: v[rows] for k, v in expected.items()}, request_id)
        finally:
            channel.close()
        return c

    with concurrent.futures.ThreadPoolExecutor(max_workers=onnx_models.CLIENTS) as pool:
        assert sorted(pool.map(client, range(onnx_models.CLIENTS))) == list(
            range(onnx_models.CLIENTS))


def text_input(texts):
    """The text model's input: [len(texts), 1] BYTES, each text UTF-8 encoded (or bytes)."""
    array = np.empty((len(texts), 1), dtype=object)
    array[:, 0] = [t if isinstance(t, bytes) else t.encode() for t in texts]
    return array


# A batch whose run fails runs again request by request (batching::DynamicBatcher::RunBatch),
# so a request onnxruntime refuses at run time never takes the requests batched beside it down.
def test_text_that_is_not_utf8_fails_alone(stub, onnx_folder, references):
    """Bytes that are not UTF-8 reach onnxruntime's StringNormalizer, which refuses them: that
    request fails with onnxruntime's reason, and the requests sent with it, which dynamic
    batching joins it with, are answered. modeld answers INTERNAL (it hands BYTES to ONNX
    strings as they are and reports what the run says), where INVALID_ARGUMENT would name the
    client's mistake: either passes."""
    fail_if_unavailable(onnx_folder, onnx_models.TEXT_MODEL)
    inputs, outputs = references[onnx_models.TEXT_MODEL]["b1"]
    expected = as_served(onnx_models.TEXT_MODEL, outputs)
    bad = {b"caf\xc3": "Truncated UTF-8 sequence", b"\xff\xfe not utf-8": "Invalid UTF-8"}
    good = request_of(onnx_models.TEXT_MODEL, inputs)
    for _ in range(10):
        requests = [(None, good)] * 4 + [
            (text, request_of(onnx_models.TEXT_MODEL, {"text": text_input([text])}))
            for text in bad] + [(None, good)] * 4
        futures = [(text, stub.ModelInfer.future(request, timeout=RPC_TIMEOUT_S))
                   for text, request in requests]
        for text, future in futures:
            if text is None:
                try:
                    response = future.result()
                except grpc.RpcError as error:
                    raise AssertionError(f"a good request beside texts that are not UTF-8 "
                                         f"failed: {error.code().name}: {error.details()}")
                assert_same(decode(response), expected, "beside texts that are not UTF-8")
                continue
            with pytest.raises(grpc.RpcError) as caught:
                future.result()
            code, details = caught.value.code(), caught.value.details()
            assert code in (grpc.StatusCode.INTERNAL, INVALID), (text, code, details)
            assert bad[text] in details, (text, details)
    assert_onnx_still_serving(stub, references)


# --- HTTP (KServe JSON) ----------------------------------------------------------------------


def json_tensor(name, array):
    """A KServe JSON input; BYTES as JSON strings (UTF-8 text)."""
    if array.dtype != object:
        return kserve_tensor(name, array)
    return {"name": name, "shape": list(array.shape), "datatype": "BYTES",
            "data": [value.decode("utf-8") for value in array.ravel()]}


def http_infer(http, model, inputs):
    reply = http.post(f"/v2/models/{model}/infer",
                      {"inputs": [json_tensor(k, v) for k, v in inputs.items()]})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model_name"] == model
    return {o["name"]: np.array(o["data"], dtype=NUMPY_DTYPE[o["datatype"]]).reshape(o["shape"])
            for o in body["outputs"]}, body


@pytest.mark.parametrize("model,case", [("sklearn_logreg", "b3"), ("torch_mlp", "b7"),
                                        ("lightgbm", "b1"), ("sklearn_forest", "b3"),
                                        (onnx_models.TEXT_MODEL, "b7")])
def test_kserve_json_matches_onnxruntime(http, references, model, case):
    inputs, outputs = references[model][case]
    got, body = http_infer(http, model, inputs)
    assert_same(got, as_served(model, outputs), f"http {model} {case}")
    if model == "sklearn_logreg":
        described = {o["name"]: (o["datatype"], o["shape"]) for o in body["outputs"]}
        assert described == {"label": ("INT64", [3, 1]), "probabilities": ("FP32", [3, 3])}


def test_kserve_json_wrong_datatype_is_400(http, references):
    inputs, _ = references["sklearn_logreg"]["b3"]
    reply = http.post("/v2/models/sklearn_logreg/infer",
                      {"inputs": [kserve_tensor("x", inputs["x"].astype(np.float64))]})
    assert reply.status == 400, reply.body
    message = reply.error()
    assert "'x'" in message and "FP64" in message and "FP32" in message, message


# --- tritonclient.grpc, in a child process ---------------------------------------------------

# tritonclient registers its own `inference.*` protobuf messages, which collide with modeld's
# stubs (infer_helpers.py), so it runs in a child: it sends the inputs of an .npz file, writes
# the outputs to another and prints what it saw as JSON.
TRITONCLIENT_CHILD = r"""
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import np_to_triton_dtype

address, model, inputs_path, outputs_path = sys.argv[1:]
client = grpcclient.InferenceServerClient(url=address)
assert client.is_model_ready(model), model
with np.load(inputs_path, allow_pickle=True) as data:
    arrays = {name: data[name] for name in data.files}
tensors = []
for name, array in arrays.items():
    tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array)
    tensors.append(tensor)
result = client.infer(model, tensors, request_id="tritonclient")
response = result.get_response(as_json=True)
np.savez(outputs_path, **{o["name"]: result.as_numpy(o["name"]) for o in response["outputs"]})
metadata = client.get_model_metadata(model, as_json=True)
config = client.get_model_config(model, as_json=True)["config"]
print(json.dumps({
    "id": response.get("id"),
    "outputs": {o["name"]: [o["datatype"], [int(d) for d in o["shape"]]]
                for o in response["outputs"]},
    "platform": metadata.get("platform"),
    "max_batch_size": int(config.get("max_batch_size", 0)),
}))
"""


def tritonclient_infer(onnx_server, tmp_path, model, inputs):
    inputs_path, outputs_path = tmp_path / "inputs.npz", tmp_path / "outputs.npz"
    np.savez(inputs_path, **inputs)
    result = subprocess.run(
        [sys.executable, "-c", TRITONCLIENT_CHILD, onnx_server.address, model,
         str(inputs_path), str(outputs_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    with np.load(outputs_path, allow_pickle=True) as data:
        outputs = {name: data[name] for name in data.files}
    return outputs, seen


def test_tritonclient_grpc_xgboost(onnx_server, references, tmp_path):
    inputs, outputs = references["xgboost"]["b7"]
    got, seen = tritonclient_infer(onnx_server, tmp_path, "xgboost", inputs)
    assert seen["id"] == "tritonclient"
    assert seen["platform"] == PLATFORM
    assert seen["max_batch_size"] == onnx_models.COMPLETED_MAX_BATCH
    assert seen["outputs"] == {"label": ["INT64", [7, 1]], "probabilities": ["FP32", [7, 3]]}
    assert_same(got, as_served("xgboost", outputs), "tritonclient xgboost")


def test_tritonclient_grpc_every_datatype(onnx_server, references, tmp_path):
    inputs, outputs = references["all_types"][onnx_models.ALL_TYPES_CASE]
    got, seen = tritonclient_infer(onnx_server, tmp_path, "all_types", inputs)
    assert {name: datatype for name, (datatype, _) in seen["outputs"].items()} == {
        f"out_{t}": kserve for t, (_, kserve, _) in onnx_models.ALL_TYPES.items()}
    assert_same(got, outputs, "tritonclient all_types")


# --- refused models --------------------------------------------------------------------------


LOG_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.M)


def log_entries(server):
    """The server's log messages: a line with a timestamp and the lines that continue it."""
    text = server.log
    starts = [m.start() for m in LOG_ENTRY.finditer(text)] + [len(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:])]


def missing_from(text, fragments):
    return [f for f in fragments
            if (f.search(text) is None if isinstance(f, re.Pattern) else f not in text)]


def assert_unavailable_in_index(entries, model):
    """entries: (name, version, state, reason) of the repository index."""
    mine = [e for e in entries if e[0] == model]
    assert mine, f"'{model}' is not in the repository index: {entries}"
    assert not [e for e in mine if e[2] == "READY"], mine
    assert any(e[2] == "UNAVAILABLE" and not missing_from(e[3], REFUSED[model]) for e in mine), (
        f"no index entry of '{model}' is UNAVAILABLE with {REFUSED[model]}: {mine}")


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_refused_model_is_not_ready(stub, http, model):
    assert stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S).ready is False
    assert http.get(f"/v2/models/{model}/ready").status == 503


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_refused_model_reason_in_repository_index(stub, http, model):
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=RPC_TIMEOUT_S)
    assert_unavailable_in_index(
        [(m.name, m.version, m.state, m.reason) for m in index.models], model)
    reply = http.post("/v2/repository/index", {})
    assert reply.status == 200, reply.body
    assert_unavailable_in_index(
        [(m["name"], m.get("version", ""), m["state"], m.get("reason", ""))
         for m in reply.json()], model)


def test_repository_index_shows_the_good_models_ready(stub, onnx_folder):
    fail_if_unavailable(onnx_folder, *onnx_models.SERVING)
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=RPC_TIMEOUT_S)
    assert sorted({m.name for m in index.models}) == sorted(onnx_models.SERVING)


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_refused_model_metadata_and_infer_are_unavailable(stub, references, model):
    expect_rpc_error(stub.ModelMetadata, pb.ModelMetadataRequest(name=model), UNAVAILABLE,
                     model, *REFUSED[model])
    inputs, _ = references["sklearn_logreg"]["b1"]
    expect_rpc_error(stub.ModelInfer, request_of(model, inputs), UNAVAILABLE, model,
                     *REFUSED[model])
    assert_onnx_still_serving(stub, references)


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_refused_model_reason_is_logged(onnx_server, model):
    entries = [entry for entry in log_entries(onnx_server) if f"'{model}'" in entry]
    assert entries, f"no log message names model '{model}'"
    assert any(not missing_from(entry, REFUSED[model]) for entry in entries), (
        f"no log message for '{model}' holds {REFUSED[model]}; messages: {entries}")


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_explicit_load_of_refused_model_fails_with_reason(stub, references, model):
    """Loading the same files again (explicit mode retries) fails the same way, and the load's
    answer carries the reason."""
    expect_rpc_error(stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name=model),
                     UNAVAILABLE, model, *REFUSED[model])
    assert stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S).ready is False
    assert_onnx_still_serving(stub, references)


# --- bad requests: each fails alone, the server keeps serving --------------------------------


def _with_shape(request, shape):
    del request.inputs[0].shape[:]
    request.inputs[0].shape.extend(shape)
    return request


def _all_types_with(references, name, array):
    inputs, _ = references["all_types"][onnx_models.ALL_TYPES_CASE]
    return request_of("all_types", [(k, array if k == name else v) for k, v in inputs.items()])


X2 = np.ones((2, onnx_models.LOGREG_FEATURES), np.float32)

CASES = [
    ("wrong_datatype", lambda r: request_of("sklearn_logreg", {"x": X2.astype(np.float64)}),
     ["'x'", "FP64", "FP32"]),
    ("wrong_feature_count",
     lambda r: request_of("sklearn_logreg", {"x": np.ones((2, 5), np.float32)}),
     ["'x'", "[2, 5]", "[-1, 4]"]),
    ("wrong_rank", lambda r: _with_shape(request_of("sklearn_logreg", {"x": X2}), [8]),
     ["'x'", "[8]", "[-1, 4]"]),
    ("batch_above_completed_max",
     lambda r: request_of("torch_mlp", {"x": np.ones((257, onnx_models.MLP_IN), np.float32)}),
     ["'x'", "257", "256"]),
    ("batch_above_stated_max",
     lambda r: request_of("stated_ok", {"x": np.ones((9, 4), np.float32)}), ["'x'", "9", "8"]),
    ("fixed_shape_wrong", lambda r: request_of("fixed", {"a": np.ones((2, 4), np.float32)}),
     ["'a'", "[2, 4]", "[3, 4]"]),
    ("fixed_shape_with_batch",
     lambda r: request_of("fixed", {"a": np.ones((1, 3, 4), np.float32)}),
     ["'a'", "[1, 3, 4]", "[3, 4]"]),
    ("all_types_wrong_int", lambda r: _all_types_with(r, "in_int8", np.ones((3, 2), np.int16)),
     ["in_int8", "INT16", "INT8"]),
    ("all_types_fp32_for_bytes",
     lambda r: _all_types_with(r, "in_string", np.ones((3, 2), np.float32)),
     ["in_string", "FP32", "BYTES"]),
    ("unknown_input", lambda r: request_of("torch_mlp", {
        "x": np.ones((1, onnx_models.MLP_IN), np.float32),
        "z": np.ones((1, onnx_models.MLP_IN), np.float32)}), ["'z'"]),
    ("missing_input", lambda r: request_of("all_types", {}), ["all_types"]),
    ("unknown_output", lambda r: request_of("sklearn_logreg", {"x": X2},
                                          outputs=["output_probability"]),
     ["output_probability"]),
]


@pytest.mark.parametrize("factory,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_fails_alone(stub, references, factory, fragments):
    expect_rpc_error(stub.ModelInfer, factory(references), INVALID, *fragments)
    assert_onnx_still_serving(stub, references)
