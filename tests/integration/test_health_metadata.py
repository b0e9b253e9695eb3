"""Health, server and model metadata, and ModelConfig over KServe V2 gRPC."""

import grpc
import pytest

from infer_helpers import RPC_TIMEOUT_S, expect_rpc_error, mc, pb
from modeld_server import EXAMPLE_MODELS

PLATFORM = "pytorch_libtorch"

# name -> (max_batch_size, inputs, outputs); each tensor is (name, datatype, dims).
EXAMPLE_SIGNATURES = {
    "linear": (64, [("x", "FP32", [3])], [("y", "FP32", [1])]),
    "mlp": (64, [("x", "FP32", [256])], [("logits", "FP32", [10])]),
    "cnn": (64, [("image", "FP32", [1, 28, 28])], [("logits", "FP32", [10])]),
    "add_sub": (
        0,
        [("INPUT0", "FP32", [16]), ("INPUT1", "FP32", [16])],
        [("OUTPUT0", "FP32", [16]), ("OUTPUT1", "FP32", [16])],
    ),
    "identity_fp32": (64, [("INPUT0", "FP32", [-1])], [("OUTPUT0", "FP32", [-1])]),
    "int64_bool": (
        64,
        [("ids", "INT64", [-1]), ("mask", "BOOL", [-1])],
        [("masked_ids", "INT64", [-1]), ("positive", "BOOL", [-1])],
    ),
}


def full_shape(max_batch_size, dims):
    return ([-1] if max_batch_size > 0 else []) + list(dims)


def test_server_live_and_ready(stub):
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live is True
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S).ready is True


def test_server_metadata(stub):
    metadata = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=RPC_TIMEOUT_S)
    assert metadata.name == "modeld"
    assert metadata.version.strip() != ""
    assert "model_configuration" in metadata.extensions


def test_log_names_every_loaded_model(server):
    log = server.log
    for name in EXAMPLE_MODELS:
        assert name in log, f"the server log never mentions model '{name}'"


@pytest.mark.parametrize("model", EXAMPLE_MODELS)
def test_model_ready(stub, model):
    response = stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S)
    assert response.ready is True


@pytest.mark.parametrize("version", ["1", "2"])
def test_linear_both_versions_ready(stub, version):
    request = pb.ModelReadyRequest(name="linear", version=version)
    assert stub.ModelReady(request, timeout=RPC_TIMEOUT_S).ready is True


def test_model_ready_false_for_unknown_version(stub):
    request = pb.ModelReadyRequest(name="linear", version="3")
    assert stub.ModelReady(request, timeout=RPC_TIMEOUT_S).ready is False


def test_model_ready_false_for_unknown_model(stub):
    # Health RPCs answer OK with ready=false, never an error (protocols.md §2; Triton's
    # InferenceServer::ModelIsReady does the same, and tritonclient's is_model_ready relies on it).
    request = pb.ModelReadyRequest(name="no_such_model")
    assert stub.ModelReady(request, timeout=RPC_TIMEOUT_S).ready is False


@pytest.mark.parametrize("model", EXAMPLE_MODELS)
def test_model_metadata(stub, model):
    max_batch_size, inputs, outputs = EXAMPLE_SIGNATURES[model]
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=RPC_TIMEOUT_S)
    assert metadata.name == model
    assert metadata.platform == PLATFORM
    assert len(metadata.versions) >= 1
    assert all(v.isdigit() for v in metadata.versions), list(metadata.versions)
    got_inputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs]
    got_outputs = [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs]
    assert got_inputs == [(n, d, full_shape(max_batch_size, dims)) for n, d, dims in inputs]
    assert got_outputs == [(n, d, full_shape(max_batch_size, dims)) for n, d, dims in outputs]


def test_linear_metadata_lists_both_versions(stub):
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="linear"), timeout=RPC_TIMEOUT_S)
    assert sorted(metadata.versions, key=int) == ["1", "2"]


def test_model_metadata_for_one_version(stub):
    request = pb.ModelMetadataRequest(name="linear", version="1")
    metadata = stub.ModelMetadata(request, timeout=RPC_TIMEOUT_S)
    assert metadata.name == "linear"
    assert [t.name for t in metadata.inputs] == ["x"]


def test_model_metadata_unknown_model(stub):
    request = pb.ModelMetadataRequest(name="no_such_model")
    expect_rpc_error(stub.ModelMetadata, request, grpc.StatusCode.NOT_FOUND, "no_such_model")


def test_model_metadata_unknown_version(stub):
    request = pb.ModelMetadataRequest(name="linear", version="17")
    expect_rpc_error(stub.ModelMetadata, request, grpc.StatusCode.NOT_FOUND, "17")


def test_model_metadata_non_numeric_version(stub):
    request = pb.ModelMetadataRequest(name="linear", version="newest")
    expect_rpc_error(stub.ModelMetadata, request, grpc.StatusCode.INVALID_ARGUMENT, "newest")


@pytest.mark.parametrize("model", EXAMPLE_MODELS)
def test_model_config(stub, model):
    max_batch_size, inputs, outputs = EXAMPLE_SIGNATURES[model]
    config = stub.ModelConfig(pb.ModelConfigRequest(name=model), timeout=RPC_TIMEOUT_S).config
    assert config.name == model
    assert config.platform == PLATFORM
    assert config.max_batch_size == max_batch_size
    got_inputs = [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.input]
    got_outputs = [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.output]
    assert got_inputs == [(n, "TYPE_" + d, dims) for n, d, dims in inputs]
    assert got_outputs == [(n, "TYPE_" + d, dims) for n, d, dims in outputs]


def test_model_config_keeps_version_policy(stub):
    config = stub.ModelConfig(pb.ModelConfigRequest(name="linear"), timeout=RPC_TIMEOUT_S).config
    assert config.version_policy.WhichOneof("policy_choice") == "all"


def test_model_config_unknown_model(stub):
    request = pb.ModelConfigRequest(name="no_such_model")
    expect_rpc_error(stub.ModelConfig, request, grpc.StatusCode.NOT_FOUND, "no_such_model")
