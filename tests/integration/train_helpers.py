"""Helpers of the online-learning tests: trainable model folders, and one training step over
gRPC (modeld.training.Training/Train), HTTP (POST .../train) and Redis (a `train` envelope).

The Python messages of proto/modeld/*.proto are generated into build/python/modeld/, a
folder named like the modeld Python package; they are loaded here by path and registered as
modeld.training_pb2, which is where the other generated modules import them from.
"""

import importlib.util
import json
import subprocess
import sys
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
