"""ONNX models (onnx_models.py) through modeld's transports other than KServe, through the real
binary: TensorFlow Serving's gRPC Predict (the tensorflow-serving-api client) and REST
:predict, the Redis transport (a real redis-server, redis_helpers.py), online learning's
refusal of a backend that does not train, and ONNX models served in one process beside a
TorchScript model and a TensorFlow SavedModel, under concurrent requests to all of them.

Every ONNX answer is compared with onnxruntime's own (the references onnx_models.py computed in
Python), with test_onnx.py's tolerances and helpers. TensorFlow Serving shows a tensor whose
items have no dims ([N] in ONNX, dims [1] with reshape [] in the config) as [N], as
onnxruntime does; KServe and Redis as [N, 1] (test_onnx.as_served).

Only the test with the SavedModel needs modeld's TensorFlow backend (marked `tensorflow`,
skipped where MODELD_TENSORFLOW=off, as under the sanitizers); the TensorFlow Serving tests
use TensorFlow in this process as a client only, and run on every build.
"""

import concurrent.futures
import os
import shutil
import threading
import types

import grpc
import numpy as np
import pytest

import onnx_models
import tf_models
from http_helpers import expect_error
from infer_helpers import RPC_TIMEOUT_S, linear_expected, make_stub, pb
from modeld_server import start_server
from redis_helpers import (  # noqa: F401  (redis_server is a fixture)
    OK,
    envelope,
    redis_server,
    start_modeld,
    wait_reply,
    xadd,
)
# Fixtures too: onnx_folder, references, _unavailable_model_fails, and stub and http, on this
# module's onnx_server.
from test_onnx import (  # noqa: F401
    _unavailable_model_fails,
    as_served,
    assert_same,
    decode,
    fail_if_unavailable,
    http,
    onnx_folder,
    references,
    request_of,
    run,
    stub,
)
from train_helpers import grpc_train, http_train, rpc_error, train_request

TEXT = onnx_models.TEXT_MODEL
# The ONNX models these tests serve (copied from onnx_models' repository).
ONNX_MODELS = ("sklearn_logreg", "sklearn_forest", TEXT, "torch_mlp")
# sklearn_logreg's model.onnx under a config that turns training on: it must fail to load.
TRAINING_MODEL = "onnx_training"
TRAINING_CONFIG = f"""\
platform: "{onnx_models.PLATFORM}"
parameters {{ key: "training" value {{ string_value: "true" }} }}
"""
# The refusals (src/backend/backend.h, src/service/inference_service.cc).
NO_TRAINING = ("its config.pbtxt turns training on, but its platform (onnxruntime_onnx) "
               "serves models without training them; online learning needs a TorchScript "
               "model or a TensorFlow SavedModel")
NOT_TRAINABLE = ("model 'sklearn_logreg' cannot train: its platform (onnxruntime_onnx) serves "
                 "models without training them")
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def copy_onnx_models(folder, repository, models=ONNX_MODELS):
    """Copies `models` of onnx_models' folder into `repository`; fails with the generator's
    reason for a model it could not make."""
    fail_if_unavailable(folder, *models)
    for model in models:
        shutil.copytree(folder / "repository" / model, repository / model)
    return repository


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory, onnx_folder):  # noqa: F811
    repository = copy_onnx_models(onnx_folder, tmp_path_factory.mktemp("onnx_transports"))
    (repository / TRAINING_MODEL / "1").mkdir(parents=True)
    shutil.copyfile(repository / "sklearn_logreg" / "1" / "model.onnx",
                    repository / TRAINING_MODEL / "1" / "model.onnx")
    (repository / TRAINING_MODEL / "config.pbtxt").write_text(TRAINING_CONFIG)
    process = start_server(repository, ["--model-control-mode=explicit"])
    yield process
    assert process.stop() == 0, process.log


# --- TensorFlow Serving gRPC: Predict --------------------------------------------------------


@pytest.fixture(scope="module")
def tfs():
    """TensorFlow and the tensorflow-serving-api modules, imported when the first test that
    needs them runs (importing TensorFlow takes seconds)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    return types.SimpleNamespace(tf=tf, types_pb2=types_pb2, predict_pb2=predict_pb2,
                                 prediction_service=prediction_service_pb2_grpc)


@pytest.fixture(scope="module")
def predict_stub(tfs, onnx_server):
    """TensorFlow Serving's PredictionService, on the KServe port (modeld serves it there)."""
    return tfs.prediction_service.PredictionServiceStub(onnx_server.channel())


@pytest.mark.parametrize("model,case", [("sklearn_logreg", "b7"), ("sklearn_forest", "b3"),
                                        (TEXT, "b7"), ("torch_mlp", "b3")])
def test_tfserving_grpc_predict_matches_onnxruntime(tfs, predict_stub, references, model,
                                                    case):
    inputs, outputs = references[model][case]
    request = tfs.predict_pb2.PredictRequest()
    request.model_spec.name = model
    for name, array in inputs.items():  # BYTES as DT_STRING, float32 as DT_FLOAT
        request.inputs[name].CopyFrom(tfs.tf.make_tensor_proto(array))
    response = predict_stub.Predict(request, timeout=RPC_TIMEOUT_S)
    assert response.model_spec.name == model
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    dtypes = {name: tfs.types_pb2.DataType.Name(proto.dtype)
              for name, proto in response.outputs.items()}
    expected_dtypes = {name: {"int64": "DT_INT64", "float32": "DT_FLOAT"}[str(value.dtype)]
                       for name, value in outputs.items()}
    assert dtypes == expected_dtypes
    got = {name: tfs.tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    assert_same(got, outputs, f"TensorFlow Serving gRPC {model} {case}")


# --- TensorFlow Serving REST: :predict -------------------------------------------------------


def json_rows(array):
    """An input as TensorFlow Serving's JSON has it: BYTES as UTF-8 strings."""
    if array.dtype == object:
        return [[value.decode("utf-8") for value in row] for row in array]
    return array.tolist()


def as_arrays(columns, like):
    """{name: JSON values} as arrays of the dtypes of `like` (onnxruntime's outputs)."""
    return {name: np.array(values, dtype=like[name].dtype) for name, values in columns.items()}


@pytest.mark.parametrize("model,case", [("sklearn_logreg", "b3"), ("sklearn_forest", "b7"),
                                        (TEXT, "b7")])
def test_tfserving_rest_rows_match_onnxruntime(http, references, model, case):
    inputs, outputs = references[model][case]
    [array] = inputs.values()
    reply = http.post(f"/v1/models/{model}:predict", {"instances": json_rows(array)})
    assert reply.status == 200, reply.body
    predictions = reply.json()["predictions"]
    # One object per row, each output as onnxruntime shapes a row of it (label a scalar).
    assert len(predictions) == len(array)
    assert all(sorted(row) == sorted(outputs) for row in predictions), predictions
    got = as_arrays({key: [row[key] for row in predictions] for key in outputs}, outputs)
    assert_same(got, outputs, f"TensorFlow Serving REST rows {model} {case}")


@pytest.mark.parametrize("model,case", [("sklearn_logreg", "b7"), (TEXT, "b3"),
                                        ("torch_mlp", "b1")])
def test_tfserving_rest_columns_match_onnxruntime(http, references, model, case):
    inputs, outputs = references[model][case]
    reply = http.post(f"/v1/models/{model}:predict",
                      {"inputs": {name: json_rows(array) for name, array in inputs.items()}})
    assert reply.status == 200, reply.body
    columns = reply.json()["outputs"]
    if len(outputs) == 1:  # one output: its value alone, as TensorFlow Serving answers
        columns = {next(iter(outputs)): columns}
    assert_same(as_arrays(columns, outputs), outputs, f"TensorFlow Serving REST {model} {case}")


def test_tfserving_rest_metadata_of_an_onnx_model(http):
    metadata = http.get("/v1/models/sklearn_forest/metadata").json()
    assert metadata["model_spec"] == {"name": "sklearn_forest", "signature_name": "",
                                      "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]

    def described(tensors):
        return {name: (t["dtype"], [int(d["size"]) for d in t["tensor_shape"]["dim"]])
                for name, t in tensors.items()}

    assert described(signature["inputs"]) == {
        "x": ("DT_FLOAT", [-1, onnx_models.FOREST_FEATURES])}
    assert described(signature["outputs"]) == {
        "label": ("DT_INT64", [-1]),
        "probabilities": ("DT_FLOAT", [-1, onnx_models.FOREST_CLASSES])}


def test_tfserving_rest_wrong_shape_names_the_problem(http, references):
    inputs, _ = references[TEXT]["b3"]
    flat = [value.decode("utf-8") for value in inputs["text"][:, 0]]
    expect_error(http.post(f"/v1/models/{TEXT}:predict", {"instances": flat}), 400,
                 "input 'text' has shape [3]", f"model '{TEXT}' expects [-1, 1]")
    assert http.post(f"/v1/models/{TEXT}:predict",
                     {"instances": [[text] for text in flat]}).status == 200


# --- Redis -----------------------------------------------------------------------------------


def test_redis_envelopes_for_onnx_models(launch, tmp_path, onnx_folder, references,  # noqa: F811
                                         redis_server):  # noqa: F811
    """Inference envelopes for ONNX models, queued together, each answered with onnxruntime's
    answer for its own inputs; a training envelope for one is refused as over gRPC."""
    repository = copy_onnx_models(onnx_folder, tmp_path / "repository")
    start_modeld(launch, repository, redis_server)
    client = redis_server.client()
    jobs = [(model, case) for model in ONNX_MODELS for case in onnx_models.BATCH_CASES]
    messages = [envelope(request_of(model, references[model][case][0]),
                         request_id=f"{model}-{case}") for model, case in jobs]
    x = references["sklearn_logreg"]["b3"][0]["x"]
    train = envelope(request_id="train")
    train.train.CopyFrom(train_request("sklearn_logreg", {"x": x},
                                       {"label": np.zeros((3, 1), np.float32)}))
    xadd(client, *messages, train)
    for (model, case), message in zip(jobs, messages):
        reply = wait_reply(client, message.reply_key)
        assert reply.request_id == message.request_id
        assert reply.code == OK, f"{model} {case}: {reply.code} {reply.message}"
        assert reply.WhichOneof("payload") == "infer"
        assert reply.infer.model_name == model
        assert_same(decode(reply.infer), as_served(model, references[model][case][1]),
                    f"Redis {model} {case}")
    reply = wait_reply(client, train.reply_key)
    assert (reply.request_id, reply.code) == ("train", FAILED_PRECONDITION.value[0]), reply
    assert NOT_TRAINABLE in reply.message


# --- online learning: ONNX models do not train -----------------------------------------------


def test_training_an_onnx_model_is_refused(onnx_server, stub, references):
    """A Train call for an ONNX model served without training is refused (gRPC
    FAILED_PRECONDITION, HTTP 400), and the model goes on answering as before."""
    inputs, outputs = references["sklearn_logreg"]["b3"]
    x, y = inputs["x"], np.zeros((3, 1), np.float32)
    code, details = rpc_error(lambda: grpc_train(onnx_server.channel(), "sklearn_logreg",
                                                 {"x": x}, {"label": y}))
    assert code == FAILED_PRECONDITION and NOT_TRAINABLE in details, (code, details)
    status, answer = http_train(onnx_server, "sklearn_logreg", {"x": x}, {"label": y})
    assert status == 400 and NOT_TRAINABLE in answer["error"], (status, answer)
    _, got = run(stub, "sklearn_logreg", inputs)
    assert_same(got, as_served("sklearn_logreg", outputs), "after the refused steps")


def test_onnx_model_configured_to_train_fails_to_load(onnx_server, stub, http, references):
    """A config that turns training on for an ONNX model: the version fails to load, saying the
    backend does not train; the index shows why, Train and infer find no version to use, and
    the other models serve."""
    assert stub.ModelReady(pb.ModelReadyRequest(name=TRAINING_MODEL),
                           timeout=RPC_TIMEOUT_S).ready is False
    assert http.get(f"/v2/models/{TRAINING_MODEL}/ready").status == 503
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=RPC_TIMEOUT_S)
    mine = [(m.state, m.reason) for m in index.models if m.name == TRAINING_MODEL]
    assert mine and all(state == "UNAVAILABLE" and NO_TRAINING in reason
                        for state, reason in mine), mine
    assert f"model '{TRAINING_MODEL}' version 1 failed to load: {NO_TRAINING}" in onnx_server.log
    inputs, outputs = references["sklearn_logreg"]["b1"]
    code, details = rpc_error(lambda: grpc_train(onnx_server.channel(), TRAINING_MODEL,
                                                 inputs, {"label": np.zeros((1, 1), np.float32)}))
    assert code == grpc.StatusCode.UNAVAILABLE and NO_TRAINING in details, (code, details)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request_of(TRAINING_MODEL, inputs), timeout=RPC_TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert NO_TRAINING in caught.value.details()
    _, got = run(stub, "sklearn_logreg", inputs)
    assert_same(got, as_served("sklearn_logreg", outputs), "beside the refused one")


# --- TorchScript, TensorFlow and ONNX in one process -----------------------------------------


@pytest.mark.tensorflow
def test_torchscript_tensorflow_and_onnx_in_one_process(launch, tmp_path, example_repository,
                                                        onnx_folder, references):  # noqa: F811
    """linear (TorchScript, examples/models), tf_linear (a SavedModel, y = 3x + 2) and ONNX
    models, all ready in one modeld; threads send them interleaved requests of their own, and
    each answer is right (TorchScript against linear's weights, TensorFlow against 3x + 2,
    ONNX against onnxruntime)."""
    repository = copy_onnx_models(onnx_folder, tmp_path / "repository",
                                  onnx_models.CLIENT_MODELS)
    shutil.copytree(example_repository / "linear", repository / "linear")
    tf_models.write_linear(repository / "tf_linear")
    server = launch(repository)
    kserve = make_stub(server.channel())
    platforms = {"linear": "pytorch_libtorch", "tf_linear": tf_models.PLATFORM,
                 **{model: onnx_models.PLATFORM for model in onnx_models.CLIENT_MODELS}}
    for model, platform in platforms.items():
        assert kserve.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S).ready
        metadata = kserve.ModelMetadata(pb.ModelMetadataRequest(name=model),
                                        timeout=RPC_TIMEOUT_S)
        assert metadata.platform == platform, (model, metadata.platform)

    onnx = {model: (references[model][onnx_models.CLIENTS_CASE][0],
                    as_served(model, references[model][onnx_models.CLIENTS_CASE][1]))
            for model in onnx_models.CLIENT_MODELS}
    models = sorted(platforms)
    threads, requests = 8, 16
    assert threads * requests <= onnx_models.CLIENTS * onnx_models.CLIENT_REQUESTS

    def job(t, i):
        """(model, inputs, expected) of request i of thread t: each thread goes through the
        models in turn, and every request has inputs of its own."""
        model, n = models[(t + i) % len(models)], t * requests + i
        if model in onnx:
            inputs, outputs = onnx[model]
            rows = onnx_models.client_rows(*divmod(n, onnx_models.CLIENT_REQUESTS))
            return (model, {k: v[rows] for k, v in inputs.items()},
                    {k: v[rows] for k, v in outputs.items()})
        features = 3 if model == "linear" else 1
        x = np.random.default_rng(n).uniform(-5, 5, (1 + n % 4, features)).astype(np.float32)
        if model == "linear":
            return model, {"x": x}, {"y": linear_expected(x)}
        return model, {"x": x}, {"y": x * np.float32(tf_models.LINEAR_W)
                                 + np.float32(tf_models.LINEAR_B)}

    barrier = threading.Barrier(threads)

    def worker(t):
        barrier.wait(timeout=RPC_TIMEOUT_S)
        for i in range(requests):
            model, inputs, expected = job(t, i)
            response, got = run(kserve, model, inputs, request_id=f"{t}-{i}")
            assert (response.id, response.model_name) == (f"{t}-{i}", model)
            assert_same(got, expected, f"thread {t} request {i} ({model})")
        return t

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        assert sorted(pool.map(worker, range(threads))) == list(range(threads))
