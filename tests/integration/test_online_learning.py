"""Online learning through the real binary: training steps over gRPC, HTTP and Redis, the
ordering of steps and inference, checkpoints (restore after kill -9, corrupt files skipped)
and publishing trained versions for serving replicas (docs/online-learning.md)."""

import threading
import uuid

import grpc
import numpy as np
import pytest

from redis_helpers import OK, STREAM, redis_server, wait_reply  # noqa: F401  (fixture)
from redis_helpers import rpb
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
    torch_modules,  # noqa: F401  (fixture)
    train_request,
    write_trainable,
)

@pytest.fixture
def regression_repo(tmp_path, torch_modules):  # noqa: F811
    write_trainable(tmp_path, "regression", torch_modules / "regression.pt")
    write_trainable(tmp_path, "regression_step", torch_modules / "regression_step.pt")
    write_trainable(tmp_path, "frozen", torch_modules / "regression.pt", training=False)
    return tmp_path


def test_regression_converges_over_grpc(launch, regression_repo):
    server = launch(regression_repo)
    channel = server.channel()
    np.testing.assert_allclose(predict(channel, "regression", PROBE), 0.5 * PROBE, atol=1e-6)

    converge(grpc_step(channel, "regression"), np.random.default_rng(1))
    # Inference follows: W = 3 and b = 2.
    np.testing.assert_allclose(predict(channel, "regression", PROBE), WANTED, atol=0.01)


def test_train_step_method_converges_over_http(launch, regression_repo):
    server = launch(regression_repo)

    converge(http_step(server, "regression_step"), np.random.default_rng(2))
    np.testing.assert_allclose(predict(server.channel(), "regression_step", PROBE), WANTED,
                               atol=0.01)


def test_regression_converges_over_redis(launch, regression_repo, redis_server):  # noqa: F811
    server = launch(regression_repo, [f"--redis-url={redis_server.url}"])
    server.wait_for_log(r"redis: consuming")
    client = redis_server.client()

    def step(x, y):
        request_id = uuid.uuid4().hex
        message = rpb.RequestEnvelope(request_id=request_id,
                                      reply_key=f"modeld:reply:{request_id}")
        message.train.CopyFrom(train_request("regression", {"x": x}, {"y": y}))
        client.xadd(STREAM, {"envelope": message.SerializeToString()})
        reply = wait_reply(client, message.reply_key)
        assert reply.code == OK, reply.message
        assert reply.request_id == request_id and reply.WhichOneof("payload") == "train"
        return reply.train.step, reply.train.loss

    converge(step, np.random.default_rng(3))
    np.testing.assert_allclose(predict(server.channel(), "regression", PROBE), WANTED, atol=0.01)


def test_cross_entropy_learns_a_classifier(launch, tmp_path, torch_modules):  # noqa: F811
    write_trainable(tmp_path, "classifier", torch_modules / "classifier.pt",
                    parameters={"training_loss": "cross_entropy", "training_optimizer": "adam",
                                "training_learning_rate": "0.05"},
                    inputs=(("x", 2),), outputs=(("scores", 3),))
    server = launch(tmp_path)
    rng = np.random.default_rng(4)
    # Three clusters around (2, 0), (-2, 0) and (0, 3); class indices as INT64 targets.
    centres = np.array([[2, 0], [-2, 0], [0, 3]], np.float32)
    stub_losses = []
    from train_helpers import tpb, tpb_grpc

    stub = tpb_grpc.TrainingStub(server.channel())
    for i in range(150):
        labels = rng.integers(0, 3, size=32)
        x = (centres[labels] + rng.normal(0, 0.3, size=(32, 2))).astype(np.float32)
        request = tpb.TrainRequest(model_name="classifier")
        request.inputs.add(name="x", datatype="FP32", shape=[32, 2])
        # Class indices as INT64, or as whole FP32 numbers (as clients that cast targets to
        # the output's datatype send them).
        dtype, datatype = (np.int64, "INT64") if i % 2 else (np.float32, "FP32")
        request.targets.add(name="scores", datatype=datatype, shape=[32])
        request.raw_input_contents.extend([x.tobytes(), labels.astype(dtype).tobytes()])
        stub_losses.append(stub.Train(request, timeout=60).loss)
    assert stub_losses[-1] < 0.1 < stub_losses[0]
    request.targets[0].datatype = "FP32"
    request.raw_input_contents[1] = np.full(32, 1.5, np.float32).tobytes()
    with pytest.raises(grpc.RpcError) as caught:
        stub.Train(request, timeout=60)
    assert "not a class index in [0, 3)" in caught.value.details()
    scores = predict(server.channel(), "classifier", centres)
    assert list(np.argmax(scores, axis=1)) == [0, 1, 2]


def test_inference_never_sees_a_half_updated_step(launch, tmp_path, torch_modules):  # noqa: F811
    """stamp's train_step fills 262,144 floats with one value (the step's number); an inference
    that ran in the middle of a fill would see two values in its row."""
    write_trainable(tmp_path, "stamp", torch_modules / "stamp.pt", outputs=(("y", 262144),),
                    max_batch_size=4)
    server = launch(tmp_path)
    channel = server.channel()
    stop = threading.Event()
    seen, failures = [], []

    def infer():
        while not stop.is_set():
            try:
                rows = predict(channel, "stamp", np.zeros((2, 1), np.float32))
            except grpc.RpcError as error:  # pragma: no cover - reported below
                failures.append(error)
                return
            for row in rows:
                values = np.unique(row)
                if len(values) != 1:
                    failures.append(f"a row holds {len(values)} values: {values[:4]}")
                    return
                seen.append(float(values[0]))

    threads = [threading.Thread(target=infer) for _ in range(4)]
    for thread in threads:
        thread.start()
    # At least 200 steps, and on until the inference threads have seen 100 rows: how many
    # inferences fit between steps depends on the build (a sanitized modeld copies slowly).
    step = 0
    try:
        while step < 200 or (len(seen) <= 100 and step < 5000):
            step += 1
            response = grpc_train(channel, "stamp", {"x": np.zeros((1, 1), np.float32)},
                                  {"t": np.full((1, 1), float(step), np.float32)})
            assert response.step == step
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures[:3]
    assert len(seen) > 100, f"only {len(seen)} rows were inferred while training ran"
    # Values only move forward: each inference saw the weights after some step.
    assert len(set(seen)) > 10
    assert float(predict(channel, "stamp", np.zeros((1, 1), np.float32))[0, 0]) == step


def test_a_step_that_damages_its_own_weights_stops_training(launch, tmp_path, torch_modules):  # noqa: F811,E501
    """stamp's train_step writes its target into the weights itself: a NaN target leaves NaN
    weights, so modeld refuses further steps and keeps the last good checkpoint."""
    write_trainable(tmp_path, "stamp", torch_modules / "stamp.pt", outputs=(("y", 262144),),
                    max_batch_size=4, parameters={"checkpoint_every_steps": "1"})
    server = launch(tmp_path)
    channel = server.channel()
    x = np.zeros((1, 1), np.float32)
    assert grpc_train(channel, "stamp", {"x": x}, {"t": np.full((1, 1), 7, np.float32)}).step == 1
    with pytest.raises(grpc.RpcError) as caught:
        grpc_train(channel, "stamp", {"x": x}, {"t": np.full((1, 1), np.nan, np.float32)})
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert "train_step has updated the weights itself" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        grpc_train(channel, "stamp", {"x": x}, {"t": np.full((1, 1), 8, np.float32)})
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "goes back to checkpoint step 1" in caught.value.details()
    server.stop()
    restarted = launch(tmp_path)
    assert float(predict(restarted.channel(), "stamp", x)[0, 0]) == 7.0


def test_bad_training_requests_are_named_and_change_nothing(launch, regression_repo):
    server = launch(regression_repo)
    channel = server.channel()
    x, y = samples(np.random.default_rng(5))

    code_of = rpc_error
    code, details = code_of(lambda: grpc_train(channel, "nope", {"x": x}, {"y": y}))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = code_of(lambda: grpc_train(channel, "frozen", {"x": x}, {"y": y}))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "not trainable" in details
    code, details = code_of(lambda: grpc_train(channel, "regression", {"x": x}, {"z": y}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown target 'z'" in details
    code, details = code_of(lambda: grpc_train(channel, "regression", {"x": x}, {}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no targets" in details
    code, details = code_of(lambda: grpc_train(channel, "regression", {"x": x}, {"y": y[:3]}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "batch size 16" in details
    code, details = code_of(
        lambda: grpc_train(channel, "regression", {"x": x}, {"y": np.full_like(y, np.nan)}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "the loss is nan" in details
    status, answer = http_train(server, "regression", {}, {}, body=b'{"inputs": [], "targets": 3}')
    assert status == 400 and "targets" in answer["error"]
    status, answer = http_train(server, "frozen", {"x": x}, {"y": y})
    assert status == 400 and "not trainable" in answer["error"]
    # None of them was a step: the weights are the initial ones and the next step is step 1.
    np.testing.assert_allclose(predict(channel, "regression", PROBE), 0.5 * PROBE, atol=1e-6)
    assert grpc_train(channel, "regression", {"x": x}, {"y": y}).step == 1


def test_kill_9_restores_the_last_checkpoint(launch, regression_repo):
    write_trainable(regression_repo, "regression", regression_repo / "regression" / "1" / "model.pt",
                    parameters={"checkpoint_every_steps": "50", "training_learning_rate": "0.02"})
    check_kill_9_restores_the_last_checkpoint(launch, regression_repo, np.random.default_rng(6))


def test_shutdown_checkpoints_and_a_corrupt_file_is_skipped(launch, regression_repo):
    write_trainable(regression_repo, "regression", regression_repo / "regression" / "1" / "model.pt",
                    parameters={"checkpoint_every_steps": "10"})
    check_shutdown_checkpoints_and_a_corrupt_file_is_skipped(launch, regression_repo,
                                                             np.random.default_rng(7))


def test_checkpoints_are_published_as_versions_for_replicas(launch, tmp_path, torch_modules):  # noqa: F811,E501
    trainer_repo, replica_repo = tmp_path / "trainer", tmp_path / "replica"
    write_trainable(trainer_repo, "regression", torch_modules / "regression.pt",
                    parameters={"checkpoint_every_steps": "100", "publish_versions": "true",
                                "publish_dir": str(replica_repo / "regression")})
    # The replica serves the same model without training, and reloads what appears.
    write_trainable(replica_repo, "regression", torch_modules / "regression.pt", training=False)
    published = check_replicas_load_published_versions(launch, trainer_repo, replica_repo,
                                                       np.random.default_rng(8))
    assert sorted(p.name for p in (published / "4").iterdir()) == ["model.pt"]
