"""Models that fail to load: they report UNAVAILABLE with the reason, the reason is logged, and
the rest of the repository still serves."""

import re
import shutil
import zipfile

import grpc
import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import pytest

from infer_helpers import (
    RPC_TIMEOUT_S,
    assert_still_serving,
    expect_rpc_error,
    make_request,
    make_stub,
    pb,
)
from modeld_server import start_server

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

LINEAR_LIKE_CONFIG = """\
name: "{name}"
platform: "{platform}"
max_batch_size: 64
input [
  {{
    name: "x"
    data_type: TYPE_FP32
    dims: [ 3 ]
  }}
]
output [
  {{
    name: "y"
    data_type: TYPE_FP32
    dims: [ 1 ]
  }}
]
"""

# The unknown field sits on line 4 of this file.
BROKEN_FIELD_CONFIG = """\
name: "broken_config"
platform: "pytorch_libtorch"
max_batch_size: 64
not_a_field: 1
input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
"""

# A syntax error (unclosed list) on line 3.
BROKEN_SYNTAX_CONFIG = """\
name: "broken_syntax"
platform: "pytorch_libtorch"
input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 }
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
"""

# model name -> what the reason (in the RPC message and in the log) must hold: substrings, or
# compiled regexes (for "line N:" positions, which must not match a log timestamp's "14:32").
BROKEN_MODELS = {
    "broken_config": ["not_a_field", "config.pbtxt", re.compile(r"(?<![\d:])4:\d+")],
    "broken_syntax": ["config.pbtxt", re.compile(r"(?<![\d:])3:\d+")],
    "corrupt_model": ["model.pt", "PytorchStreamReader"],  # torch's own message
    "empty_version": ["model.pt", "does not exist"],
    "unknown_platform": ["tensorrt_plan"],
    "no_version_folder": ["no version folder"],
    "name_mismatch": ["not_the_folder_name"],
    # Export mistakes, each recognised with its fix (src/repository/export_hints.h).
    "torch_save_pickle": ["constants.pkl", "hint: this file was saved with torch.save",
                          "torch.jit.save"],
    "keras_archive": ["hint: model.keras is a Keras archive, not a SavedModel",
                      'model.export("keras_archive/1")'],
    "frozen_graph": ["hint: frozen.pb looks like a TensorFlow 1 frozen graph"],
    "file_beside_config": ["no version folder",
                           "hint: model.pt is in file_beside_config/ itself",
                           "file_beside_config/1/model.pt"],
    "renamed_onnx": ["hint: modeld loads model.onnx, and this version folder holds "
                     "classifier.onnx: rename it"],
    "torch_save_without_config": ["a TorchScript model.pt needs a config.pbtxt",
                                  "hint: model.pt: this file was saved with torch.save"],
    "torch_checkpoint_pth": ["hint: model.pth: this file was saved with torch.save"],
    "sklearn_pickle": ["hint: model.joblib is a Python pickle", "skl2onnx",
                       "sklearn_pickle/1/model.onnx"],
    "onnx_weights_left_behind": ["model.onnx.data",
                                 "hint: this ONNX model keeps its weights in a separate file"],
}


def missing_from(text, fragments):
    """The fragments (substrings or regexes) that `text` does not hold."""
    return [
        f for f in fragments
        if (f.search(text) is None if isinstance(f, re.Pattern) else f not in text)
    ]


def expect_unavailable(rpc, request, model):
    details = expect_rpc_error(rpc, request, UNAVAILABLE, model)
    missing = missing_from(details, BROKEN_MODELS[model])
    assert not missing, f"UNAVAILABLE message {details!r} lacks {missing}"
    return details


def build_repository(root, example_repository):
    root.mkdir()
    shutil.copytree(example_repository / "linear", root / "linear")

    def model(name, config):
        folder = root / name
        folder.mkdir()
        (folder / "config.pbtxt").write_text(config)
        return folder

    model("broken_config", BROKEN_FIELD_CONFIG)
    (root / "broken_config" / "1").mkdir()
    shutil.copy(example_repository / "linear" / "1" / "model.pt", root / "broken_config" / "1")

    model("broken_syntax", BROKEN_SYNTAX_CONFIG)
    shutil.copytree(example_repository / "linear" / "1", root / "broken_syntax" / "1")

    corrupt = model("corrupt_model", LINEAR_LIKE_CONFIG.format(name="corrupt_model",
                                                              platform="pytorch_libtorch"))
    (corrupt / "1").mkdir()
    (corrupt / "1" / "model.pt").write_bytes(bytes(range(256)) * 64)

    empty = model("empty_version", LINEAR_LIKE_CONFIG.format(name="empty_version",
                                                            platform="pytorch_libtorch"))
    (empty / "1").mkdir()

    plan = model("unknown_platform", LINEAR_LIKE_CONFIG.format(name="unknown_platform",
                                                              platform="tensorrt_plan"))
    (plan / "1").mkdir()
    (plan / "1" / "model.plan").write_bytes(b"not really a TensorRT plan")

    model("no_version_folder", LINEAR_LIKE_CONFIG.format(name="no_version_folder",
                                                         platform="pytorch_libtorch"))

    mismatch = model("name_mismatch", LINEAR_LIKE_CONFIG.format(name="not_the_folder_name",
                                                               platform="pytorch_libtorch"))
    shutil.copytree(example_repository / "linear" / "1", mismatch / "1")

    # What torch.save writes: a zip of pickled Python objects (data.pkl), no TorchScript code.
    pickle = model("torch_save_pickle", LINEAR_LIKE_CONFIG.format(name="torch_save_pickle",
                                                                 platform="pytorch_libtorch"))
    (pickle / "1").mkdir()
    with zipfile.ZipFile(pickle / "1" / "model.pt", "w") as archive:
        archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("model/version", "3\n")
    for name, file in (("torch_save_without_config", "model.pt"),
                       ("torch_checkpoint_pth", "model.pth")):
        (root / name / "1").mkdir(parents=True)
        with zipfile.ZipFile(root / name / "1" / file, "w") as archive:
            archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
            archive.writestr("model/version", "3\n")
    (root / "keras_archive" / "1").mkdir(parents=True)
    (root / "keras_archive" / "1" / "model.keras").write_bytes(b"PK\x03\x04 a Keras zip")
    (root / "frozen_graph" / "1").mkdir(parents=True)
    (root / "frozen_graph" / "1" / "frozen.pb").write_bytes(b"\x0a\x00")
    beside = model("file_beside_config", LINEAR_LIKE_CONFIG.format(name="file_beside_config",
                                                                  platform="pytorch_libtorch"))
    shutil.copy(example_repository / "linear" / "1" / "model.pt", beside / "model.pt")
    (root / "renamed_onnx" / "1").mkdir(parents=True)
    shutil.copy(example_repository / "digits" / "1" / "model.onnx",
                root / "renamed_onnx" / "1" / "classifier.onnx")
    (root / "sklearn_pickle" / "1").mkdir(parents=True)
    (root / "sklearn_pickle" / "1" / "model.joblib").write_bytes(b"\x80\x04\x95 a joblib dump")
    # Weights saved apart (as torch.onnx.export does for large models), then not copied.
    left_behind = root / "onnx_weights_left_behind" / "1"
    left_behind.mkdir(parents=True)
    weights = onnx.numpy_helper.from_array(np.ones((3, 1), np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 1])],
        [weights])
    onnx.save_model(onnx.helper.make_model(graph), str(left_behind / "model.onnx"),
                    save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)
    (left_behind / "model.onnx.data").unlink()
    return root


@pytest.fixture(scope="module")
def broken_server(tmp_path_factory, example_repository):
    repository = build_repository(tmp_path_factory.mktemp("broken") / "repo", example_repository)
    process = start_server(repository)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def broken_stub(broken_server):
    return make_stub(broken_server.channel())


def test_server_is_live_and_good_model_serves(broken_stub):
    assert broken_stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live is True
    ready = broken_stub.ModelReady(pb.ModelReadyRequest(name="linear"), timeout=RPC_TIMEOUT_S)
    assert ready.ready is True
    assert_still_serving(broken_stub)


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_is_not_ready(broken_stub, model):
    response = broken_stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S)
    assert response.ready is False


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_metadata_is_unavailable_with_reason(broken_stub, model):
    expect_unavailable(broken_stub.ModelMetadata, pb.ModelMetadataRequest(name=model), model)


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_config_is_unavailable_with_reason(broken_stub, model):
    expect_unavailable(broken_stub.ModelConfig, pb.ModelConfigRequest(name=model), model)


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_infer_is_unavailable_with_reason(broken_stub, model):
    request = make_request(model, [("x", np.ones((1, 3), np.float32))])
    expect_unavailable(broken_stub.ModelInfer, request, model)
    assert_still_serving(broken_stub)


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_reason_is_logged(broken_server, model):
    lines = [line for line in broken_server.log_lines() if model in line]
    assert lines, f"no log line names model '{model}'"
    assert any(not missing_from(line, BROKEN_MODELS[model]) for line in lines), (
        f"no log line for '{model}' holds {BROKEN_MODELS[model]}; lines: {lines}"
    )


def test_server_with_only_broken_models_still_starts(tmp_path):
    repository = tmp_path / "repo"
    repository.mkdir()
    (repository / "empty_version").mkdir()
    (repository / "empty_version" / "config.pbtxt").write_text(
        LINEAR_LIKE_CONFIG.format(name="empty_version", platform="pytorch_libtorch")
    )
    (repository / "empty_version" / "1").mkdir()
    process = start_server(repository)
    try:
        stub = make_stub(process.channel())
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live is True
        ready = stub.ModelReady(pb.ModelReadyRequest(name="empty_version"), timeout=RPC_TIMEOUT_S)
        assert ready.ready is False
    finally:
        assert process.stop() == 0
