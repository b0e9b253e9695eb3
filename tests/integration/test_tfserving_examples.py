"""TensorFlow Serving's Classify and Regress through the real binary, with the real
tensorflow-serving-api client: tf.Examples in, classes, scores and values out, for models
served with a classify or regress signature (tf_models.write_examples_model), and UNIMPLEMENTED
with a clear message for every other model."""

import concurrent.futures
import shutil

import grpc
import numpy as np
import pytest

import tf_models
from infer_helpers import RPC_TIMEOUT_S
from modeld_server import start_server

# Classify and Regress need a TensorFlow SavedModel (conftest.py: MODELD_TENSORFLOW).
pytestmark = pytest.mark.tensorflow

RTOL, ATOL = 1e-5, 1e-6  # float32 softmax and sums: TensorFlow here and in Python agree closely


@pytest.fixture(scope="module")
def apis():
    from tensorflow_serving.apis import (classification_pb2, predict_pb2,
                                         prediction_service_pb2_grpc, regression_pb2)
    return classification_pb2, regression_pb2, predict_pb2, prediction_service_pb2_grpc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("tfserving_examples")
    tf_models.write_examples_model(repository / "classify")  # no config: serving_default
    shutil.copytree(repository / "classify" / "1", repository / "regress" / "1")
    (repository / "regress" / "config.pbtxt").write_text(
        'platform: "tensorflow_savedmodel"\n'
        'parameters { key: "signature_name" value { string_value: "regress" } }\n')
    tf_models.write_linear(repository / "linear")
    process = start_server(repository)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stub(server, apis):
    return apis[3].PredictionServiceStub(server.channel())


XS = np.array([[0.5, -1.0], [2.0, 1.0], [-3.0, 0.25]], np.float32)


def example_list(request, xs):
    for x in xs:
        request.input.example_list.examples.add().ParseFromString(tf_models.example_bytes(x))


def test_classify_answers_every_example_with_its_classes_and_scores(stub, apis):
    classification_pb2 = apis[0]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "classify"
    example_list(request, XS)
    response = stub.Classify(request, timeout=RPC_TIMEOUT_S)
    labels, scores, _ = tf_models.expected_examples(XS)
    assert len(response.result.classifications) == len(XS)
    for row, classifications in enumerate(response.result.classifications):
        assert [c.label.encode() for c in classifications.classes] == labels[row]
        np.testing.assert_allclose([c.score for c in classifications.classes], scores[row],
                                   rtol=RTOL, atol=ATOL)
    assert response.model_spec.name == "classify"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_context_features_are_merged_into_each_example(stub, apis):
    classification_pb2 = apis[0]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "classify"
    with_context = request.input.example_list_with_context
    with_context.context.ParseFromString(tf_models.example_bytes([1.0, 1.0]))
    # The first example has no x of its own (the context's counts); the second has one (it wins).
    with_context.examples.add().ParseFromString(
        tf_models.example_bytes(None, extra={"other": [7.0]}))
    with_context.examples.add().ParseFromString(tf_models.example_bytes([4.0, 0.0]))
    response = stub.Classify(request, timeout=RPC_TIMEOUT_S)
    _, scores, _ = tf_models.expected_examples([[1.0, 1.0], [4.0, 0.0]])
    got = [[c.score for c in row.classes] for row in response.result.classifications]
    np.testing.assert_allclose(got, scores, rtol=RTOL, atol=ATOL)


def test_regress_answers_one_value_per_example(stub, apis):
    regression_pb2 = apis[1]
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "regress"
    request.model_spec.signature_name = "regress"
    example_list(request, XS)
    response = stub.Regress(request, timeout=RPC_TIMEOUT_S)
    _, _, values = tf_models.expected_examples(XS)
    np.testing.assert_allclose([r.value for r in response.result.regressions], values,
                               rtol=RTOL, atol=ATOL)
    assert response.model_spec.signature_name == "regress"


def test_predict_runs_a_classify_signature_too(stub, apis):
    import tensorflow as tf

    predict_pb2 = apis[2]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "classify"
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(
        np.array([tf_models.example_bytes(x) for x in XS], dtype=object)))
    response = stub.Predict(request, timeout=RPC_TIMEOUT_S)
    _, scores, _ = tf_models.expected_examples(XS)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["scores"]), scores,
                               rtol=RTOL, atol=ATOL)
    assert tf.make_ndarray(response.outputs["classes"]).tolist() == [
        list(tf_models.EXAMPLE_LABELS)] * len(XS)


@pytest.mark.parametrize("rpc, model, fragments", [
    ("Classify", "linear", ["Classify needs a signature of method tensorflow/serving/classify",
                            "model 'linear'", "(method tensorflow/serving/predict)",
                            "call Predict"]),
    ("Classify", "regress", ["model 'regress' is served with signature 'regress'",
                             "(method tensorflow/serving/regress)"]),
    ("Regress", "classify", ["Regress needs a signature of method tensorflow/serving/regress",
                             "(method tensorflow/serving/classify)"]),
])
def test_other_signatures_answer_unimplemented(stub, apis, rpc, model, fragments):
    classification_pb2, regression_pb2 = apis[0], apis[1]
    request = (classification_pb2.ClassificationRequest() if rpc == "Classify"
               else regression_pb2.RegressionRequest())
    request.model_spec.name = model
    example_list(request, XS[:1])
    with pytest.raises(grpc.RpcError) as error:
        getattr(stub, rpc)(request, timeout=RPC_TIMEOUT_S)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    for fragment in fragments:
        assert fragment in error.value.details(), error.value.details()


def test_bad_requests_are_named_and_the_server_keeps_serving(stub, apis):
    classification_pb2 = apis[0]
    cases = []
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = "classify"
    cases.append((empty, grpc.StatusCode.INVALID_ARGUMENT, "holds no examples"))
    unknown = classification_pb2.ClassificationRequest()
    unknown.model_spec.name = "nope"
    example_list(unknown, XS[:1])
    cases.append((unknown, grpc.StatusCode.NOT_FOUND, "nope"))
    other_signature = classification_pb2.ClassificationRequest()
    other_signature.model_spec.name = "classify"
    other_signature.model_spec.signature_name = "regress"
    example_list(other_signature, XS[:1])
    cases.append((other_signature, grpc.StatusCode.INVALID_ARGUMENT,
                  "signature_name 'regress' not found"))
    # An example without the feature the graph parses: TensorFlow's own error, as INTERNAL.
    missing = classification_pb2.ClassificationRequest()
    missing.model_spec.name = "classify"
    missing.input.example_list.examples.add().ParseFromString(
        tf_models.example_bytes(None, extra={"other": [1.0]}))
    cases.append((missing, grpc.StatusCode.INTERNAL, "x"))
    for request, code, fragment in cases:
        with pytest.raises(grpc.RpcError) as error:
            stub.Classify(request, timeout=RPC_TIMEOUT_S)
        assert error.value.code() == code, error.value.details()
        assert fragment in error.value.details(), error.value.details()
        test_classify_answers_every_example_with_its_classes_and_scores(stub, apis)


def test_concurrent_classify_requests_are_batched_and_answered_alone(stub, apis):
    classification_pb2 = apis[0]
    rng = np.random.default_rng(3)

    def one(i):
        xs = rng.uniform(-2, 2, (1 + i % 3, 2)).astype(np.float32)
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "classify"
        example_list(request, xs)
        response = stub.Classify(request, timeout=RPC_TIMEOUT_S)
        _, scores, _ = tf_models.expected_examples(xs)
        got = [[c.score for c in row.classes] for row in response.result.classifications]
        np.testing.assert_allclose(got, scores, rtol=RTOL, atol=ATOL, err_msg=f"request {i}")
        return i

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(one, range(64))) == list(range(64))
