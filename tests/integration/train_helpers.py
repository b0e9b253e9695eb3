"""Helpers of the online-learning tests: trainable model folders, and one training step over
gRPC (modeld.training.Training/Train), HTTP (POST .../train) and Redis (a `train` envelope).

The Python messages of proto/modeld/*.proto are generated into build/python/modeld/, a
folder named like the modeld Python package; they are loaded here by path and registered as
modeld.training_pb2, which is where the other generated modules import them from.
"""

import importlib.util
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import GENERATOR_PYTHON
from infer_helpers import pb  # noqa: F401  (registers kserve/grpc_service.proto first)
from modeld_server import REPO_ROOT, STUBS_DIR

TRAIN_MODELS = REPO_ROOT / "tests" / "integration" / "train_models.py"


def _load(module_name, path):
    if module_name in sys.modules:
        return sys.modules[module_name]
    if not path.is_file():
        pytest.fail(f"{path} is missing; run `make build` (it generates the Python stubs)")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    package = sys.modules.get("modeld")
    if package is not None:
        setattr(package, module_name.rsplit(".", 1)[-1], module)
    return module


def load_training_pb2():
    import modeld  # noqa: F401  (the package the generated imports name)

    return _load("modeld.training_pb2", STUBS_DIR / "modeld" / "training_pb2.py")


tpb = load_training_pb2()
tpb_grpc = _load("modeld.training_pb2_grpc", STUBS_DIR / "modeld" / "training_pb2_grpc.py")


@pytest.fixture(scope="session")
def torch_modules(tmp_path_factory):
    """The TorchScript files of train_models.py, written once per session."""
    out = tmp_path_factory.mktemp("train_modules")
    subprocess.run([GENERATOR_PYTHON, str(TRAIN_MODELS), str(out)], check=True, timeout=300)
    return out


def param(key, value):
    return f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}\n'


def write_trainable(repository, name, module_file, *, parameters=None, inputs=(("x", 1),),
                    outputs=(("y", 1),), max_batch_size=64, training=True, versions=(1,)):
    """A model folder serving `module_file` (one per version) with training on (sgd at 0.1 and
    no timed checkpoints, unless `parameters` says otherwise)."""
    settings = {"training_learning_rate": "0.1", "checkpoint_every_seconds": "0"}
    settings.update(parameters or {})
    if training:
        settings["training"] = "true"
    tensors = lambda specs: ", ".join(  # noqa: E731
        f'{{ name: "{n}" data_type: TYPE_FP32 dims: [ {d} ] }}' for n, d in specs)
    text = (f'platform: "pytorch_libtorch"\nmax_batch_size: {max_batch_size}\n'
            f"input [ {tensors(inputs)} ]\noutput [ {tensors(outputs)} ]\n"
            "dynamic_batching { }\n" + "".join(param(k, v) for k, v in settings.items()))
    folder = Path(repository) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text)
    for version in versions:
        (folder / str(version)).mkdir(exist_ok=True)
        (folder / str(version) / "model.pt").write_bytes(Path(module_file).read_bytes())
    return folder


def samples(rng, n=16):
    """n samples of y = 3x + 2, x uniform in [-1, 1], as [n, 1] float32 arrays."""
    x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    return x, (3 * x + 2).astype(np.float32)


def _tensor(message_list, name, array):
    array = np.ascontiguousarray(array, np.float32)
    message_list.add(name=name, datatype="FP32", shape=list(array.shape))
    return array.tobytes()


def train_request(model, inputs, targets, *, request_id="", version=""):
    """A modeld.training.TrainRequest with every tensor FP32 and sent raw."""
    request = tpb.TrainRequest(model_name=model, model_version=version, id=request_id)
    for name, array in inputs.items():
        request.raw_input_contents.append(_tensor(request.inputs, name, array))
    for name, array in targets.items():
        request.raw_input_contents.append(_tensor(request.targets, name, array))
    return request


def grpc_train(channel, model, inputs, targets, **kwargs):
    """One step over gRPC; returns the TrainResponse (raises grpc.RpcError)."""
    stub = tpb_grpc.TrainingStub(channel)
    return stub.Train(train_request(model, inputs, targets, **kwargs), timeout=60)


def http_train(server, model, inputs, targets, *, version=None, body=None):
    """One step over HTTP; returns (status, JSON answer)."""
    if body is None:
        def tensors(named):
            return [{"name": n, "datatype": "FP32", "shape": list(np.shape(a)),
                     "data": np.asarray(a, np.float32).ravel().tolist()} for n, a in named.items()]
        body = json.dumps({"inputs": tensors(inputs), "targets": tensors(targets)}).encode()
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/train"
    request = urllib.request.Request(f"http://{server.http_address}{path}", data=body,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def predict(channel, model, x):
    """The model's answer for the [n, 1] float32 array `x`, over gRPC."""
    from infer_helpers import decode_response, make_request, make_stub

    response = make_stub(channel).ModelInfer(make_request(model, [("x", x)]), timeout=60)
    return next(iter(decode_response(response).values()))


# --- scenarios both backends go through (test_online_learning.py, ..._tf.py) --------------

#: Where a trained "regression" model is probed, and what y = 3x + 2 answers there.
PROBE = np.array([[0.0], [1.0], [-0.5]], np.float32)
WANTED = 3 * PROBE + 2


def converge(step, rng, steps=300):
    """Runs `steps` steps of y = 3x + 2 through step(x, y) -> (step number, loss); checks the
    numbering and that the loss falls; returns the losses."""
    losses = []
    for i in range(steps):
        x, y = samples(rng)
        number, loss = step(x, y)
        losses.append(loss)
        assert number == i + 1, f"step {i + 1} was numbered {number}"
    assert losses[-1] < 1e-4 < losses[0], (losses[0], losses[-1])
    return losses


def http_step(server, model):
    """A step(x, y) -> (step number, loss) for converge(), over HTTP, checking the answer
    names the model and version 1."""
    def step(x, y):
        status, answer = http_train(server, model, {"x": x}, {"y": y})
        assert status == 200, answer
        assert answer["model_name"] == model and answer["model_version"] == "1"
        return answer["step"], answer["loss"]

    return step


def grpc_step(channel, model):
    """As http_step, over gRPC, checking the request id is echoed too."""
    def step(x, y):
        response = grpc_train(channel, model, {"x": x}, {"y": y}, request_id="r")
        assert (response.model_name, response.model_version, response.id) == (model, "1", "r")
        return response.step, response.loss

    return step


def steps_to(channel, model, rng, count):
    """`count` steps of y = 3x + 2 over gRPC; returns the last TrainResponse."""
    last = None
    for _ in range(count):
        x, y = samples(rng)
        last = grpc_train(channel, model, {"x": x}, {"y": y})
    return last


def rpc_error(call):
    """(code, details) of the grpc.RpcError that call() raises."""
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def wait_version_ready(channel, model, version, timeout=30):
    from infer_helpers import make_stub, pb

    deadline = time.monotonic() + timeout
    while not make_stub(channel).ModelReady(
            pb.ModelReadyRequest(name=model, version=str(version)), timeout=10).ready:
        assert time.monotonic() < deadline, f"{model} version {version} never became ready"
        time.sleep(0.2)


def check_kill_9_restores_the_last_checkpoint(launch, repository, rng):
    """`repository` holds "regression" with checkpoint_every_steps 50: 120 steps, kill -9, and
    the restart serves step 100's weights exactly and numbers the next step 101."""
    args = ["--checkpoint-dir", str(repository / "ckpt")]
    server = launch(repository, args)
    channel = server.channel()
    assert steps_to(channel, "regression", rng, 100).checkpoint_step == 100
    at_checkpoint = predict(channel, "regression", PROBE)
    last = steps_to(channel, "regression", rng, 20)
    assert (last.step, last.checkpoint_step) == (120, 100)
    assert not np.allclose(predict(channel, "regression", PROBE), at_checkpoint)
    server.stop(signal.SIGKILL)

    restarted = launch(repository, args)
    restarted.wait_for_log(r"model 'regression' version 1: restored checkpoint .*step-0+100\.ckpt "
                           r"\(step 100,")
    # Exactly the weights of step 100; the 20 steps after it are lost, and the numbering says so.
    np.testing.assert_array_equal(predict(restarted.channel(), "regression", PROBE), at_checkpoint)
    assert steps_to(restarted.channel(), "regression", rng, 1).step == 101


def check_shutdown_checkpoints_and_a_corrupt_file_is_skipped(launch, repository, rng):
    """`repository` holds "regression" with checkpoint_every_steps 10: SIGTERM after 15 steps
    saves step 15; once that file is corrupted, a restart skips it for step 10."""
    server = launch(repository)
    channel = server.channel()
    steps_to(channel, "regression", rng, 10)
    at_10 = predict(channel, "regression", PROBE)
    steps_to(channel, "regression", rng, 5)
    at_15 = predict(channel, "regression", PROBE)
    server.stop()  # SIGTERM: the last checkpoint, at step 15
    folder = repository / "regression" / "checkpoints"
    newest = folder / "step-00000000000000000015.ckpt"
    assert sorted(p.name for p in folder.iterdir()) == [
        "step-00000000000000000010.ckpt", newest.name]

    restarted = launch(repository)
    np.testing.assert_array_equal(predict(restarted.channel(), "regression", PROBE), at_15)
    restarted.stop()

    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    again = launch(repository)
    again.wait_for_log(r"skipping checkpoint .*step-0+15\.ckpt: the checksum does not match")
    again.wait_for_log(r"restored checkpoint .*step-0+10\.ckpt \(step 10,")
    np.testing.assert_array_equal(predict(again.channel(), "regression", PROBE), at_10)


def check_replicas_load_published_versions(launch, trainer_repo, replica_repo, rng):
    """The trainer's "regression" publishes every 100 steps into the replica's model folder
    (version 1 there already); after 300 steps the polling replica serves version 4 exactly as
    the trainer answers. Returns the replica's model folder."""
    trainer = launch(trainer_repo)
    replica = launch(replica_repo, ["--model-control-mode=poll", "--repository-poll-secs=1"])
    steps_to(trainer.channel(), "regression", rng, 300)
    trained = predict(trainer.channel(), "regression", PROBE)
    np.testing.assert_allclose(trained, WANTED, atol=0.01)
    trainer.wait_for_log(r"published step 300 as version 4")
    published = replica_repo / "regression"
    assert sorted(p.name for p in published.iterdir()) == ["1", "2", "3", "4", "config.pbtxt"]
    wait_version_ready(replica.channel(), "regression", 4)
    np.testing.assert_array_equal(predict(replica.channel(), "regression", PROBE), trained)
    assert re.search(r"model 'regression' version 4", replica.log)
    return published
