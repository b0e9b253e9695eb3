"""Online learning of TensorFlow SavedModels through the real binary: steps run the
SavedModel's `train` signature over gRPC and HTTP, checkpoints hold the variables as
TensorFlow's saver writes them (restored after kill -9, a corrupt one skipped), and trained
versions are published as SavedModels that serving replicas load (docs/online-learning.md).

The SavedModel (tf_models.write_trainable_regression: y = x W + b, W = 0.5 and b = 0, one SGD
step of rate 0.1 per call of train(x, y)) is written once per session by the venv's TensorFlow.
"""

import re
import shutil

import grpc
import numpy as np
import pytest

import tf_models
from infer_helpers import make_stub, pb
from train_helpers import (
    PROBE,
    WANTED,
    check_kill_9_restores_the_last_checkpoint,
    check_replicas_load_published_versions,
    check_shutdown_checkpoints_and_a_corrupt_file_is_skipped,
    converge,
    grpc_step,
    http_step,
    grpc_train,
    http_train,
    predict,
    rpc_error,
    samples,
    tpb,
    tpb_grpc,
)

pytestmark = pytest.mark.tensorflow

START = tf_models.REGRESSION_W * PROBE + tf_models.REGRESSION_B


@pytest.fixture(scope="session")
def savedmodels(tmp_path_factory):
    """{"regression": the trainable SavedModel, "linear": one without a train signature}."""
    out = tmp_path_factory.mktemp("tf_online_learning")
    tf_models.write_trainable_regression(out / "regression")
    tf_models.write_linear(out / "linear")  # writes linear/1
    return {"regression": out / "regression", "linear": out / "linear" / "1"}


def write_model(repository, name, savedmodel, *, parameters=None, training=True,
                triton_layout=False):
    """A model folder serving `savedmodel` as version 1 (TensorFlow Serving's layout, or
    Triton's model.savedmodel/) with trainable_regression_config."""
    folder = repository / name
    version = folder / "1"
    shutil.copytree(savedmodel, version / "model.savedmodel" if triton_layout else version)
    (folder / "config.pbtxt").write_text(
        tf_models.trainable_regression_config(parameters, training=training))
    return folder


@pytest.fixture
def repo(tmp_path, savedmodels):
    write_model(tmp_path, "regression", savedmodels["regression"])
    write_model(tmp_path, "regression_triton", savedmodels["regression"], triton_layout=True)
    write_model(tmp_path, "frozen", savedmodels["regression"], training=False)
    return tmp_path


def test_regression_converges_over_grpc(launch, repo):
    server = launch(repo)
    channel = server.channel()
    np.testing.assert_allclose(predict(channel, "regression", PROBE), START, atol=1e-6)

    losses = converge(grpc_step(channel, "regression"), np.random.default_rng(11))
    # The first loss is that of the starting weights: the signature returns it before its step.
    x, y = samples(np.random.default_rng(11))
    assert losses[0] == pytest.approx(float(np.mean((0.5 * x - y) ** 2)), rel=1e-5)
    np.testing.assert_allclose(predict(channel, "regression", PROBE), WANTED, atol=0.01)
    # The model that does not train is untouched.
    np.testing.assert_allclose(predict(channel, "frozen", PROBE), START, atol=1e-6)


def test_triton_layout_converges_over_http(launch, repo):
    server = launch(repo)

    converge(http_step(server, "regression_triton"), np.random.default_rng(12))
    np.testing.assert_allclose(predict(server.channel(), "regression_triton", PROBE), WANTED,
                               atol=0.01)


def test_kill_9_restores_the_last_checkpoint(launch, tmp_path, savedmodels):
    write_model(tmp_path, "regression", savedmodels["regression"],
                parameters={"checkpoint_every_steps": "50"})
    check_kill_9_restores_the_last_checkpoint(launch, tmp_path, np.random.default_rng(13))


def test_shutdown_checkpoints_and_a_corrupt_file_is_skipped(launch, tmp_path, savedmodels):
    write_model(tmp_path, "regression", savedmodels["regression"],
                parameters={"checkpoint_every_steps": "10"})
    check_shutdown_checkpoints_and_a_corrupt_file_is_skipped(launch, tmp_path,
                                                             np.random.default_rng(14))


def test_checkpoints_are_published_as_savedmodels_for_replicas(launch, tmp_path, savedmodels):
    trainer_repo, replica_repo = tmp_path / "trainer", tmp_path / "replica"
    write_model(trainer_repo, "regression", savedmodels["regression"],
                parameters={"checkpoint_every_steps": "100", "publish_versions": "true",
                            "publish_dir": str(replica_repo / "regression")})
    # The replica serves the same SavedModel without training, and loads what appears.
    write_model(replica_repo, "regression", savedmodels["regression"], training=False)
    published = check_replicas_load_published_versions(launch, trainer_repo, replica_repo,
                                                       np.random.default_rng(15))
    # A SavedModel in the layout it was loaded from, with the trained variables.
    assert sorted(p.name for p in (published / "4").iterdir()) == [
        "assets", "saved_model.pb", "variables"]
    assert sorted(p.name for p in (published / "4" / "variables").iterdir()) == [
        "variables.data-00000-of-00001", "variables.index"]


def test_bad_training_requests_are_named_and_change_nothing(launch, repo, savedmodels):
    # A SavedModel without a train signature, with training on: the version fails to load.
    write_model(repo, "untrainable", savedmodels["linear"])
    server = launch(repo)
    channel = server.channel()
    x, y = samples(np.random.default_rng(16))

    code_of = rpc_error
    code, details = code_of(lambda: grpc_train(channel, "frozen", {"x": x}, {"y": y}))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "not trainable" in details
    code, details = code_of(lambda: grpc_train(channel, "regression", {"x": x}, {"z": y}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert "unknown target 'z' for model 'regression'; it takes y" in details
    # A target of another datatype than the signature's.
    request = tpb.TrainRequest(model_name="regression")
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.targets.add(name="y", datatype="FP64", shape=list(y.shape))
    request.raw_input_contents.extend([x.tobytes(), y.astype(np.float64).tobytes()])
    code, details = code_of(lambda: tpb_grpc.TrainingStub(channel).Train(request, timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert "target 'y' is FP64 but signature 'train' takes FP32" in details
    status, answer = http_train(server, "frozen", {"x": x}, {"y": y})
    assert status == 400 and "not trainable" in answer["error"]

    ready = make_stub(channel).ModelReady(pb.ModelReadyRequest(name="untrainable"), timeout=10)
    assert not ready.ready
    assert re.search(r"model 'untrainable' cannot train: its training signature .*has no "
                     r"signature 'train'", server.log)
    # None of them was a step: the weights are the starting ones and the next step is step 1.
    np.testing.assert_allclose(predict(channel, "regression", PROBE), START, atol=1e-6)
    assert grpc_train(channel, "regression", {"x": x}, {"y": y}).step == 1
