"""PyTorch 2 through the real binary: TorchScript saved by torch 2.15 (scripted and traced) and
by torch 1.13, and torch.export AOTInductor packages (model.pt2, platform torch_aoti) written
by modeld.torch_export.export_package.

The models come from pytorch_models.py (cached by content under build/test-models/; a
subprocess with the venv's torch writes them, this process never imports torch), and every
answer is compared with the eager PyTorch module's output on the same input, computed in
Python when the models were written.

Tolerances, on |modeld - eager PyTorch| <= atol + rtol * |eager|, and what was measured
(torch 2.15, this 2-core Xeon, largest |difference| over every reference input):
- TorchScript: rtol 1e-5, atol 1e-5. The transformers gave exactly eager's answers (0.0);
  mlp_gelu differed by up to 4.8e-7 (the server runs other batch sizes than the reference,
  and a GEMM's sum order follows the batch size).
- .pt2: rtol 1e-5, atol 1e-5 too. AOTInductor's own kernels sum in another order than ATen's:
  up to 3.6e-7 in Python and 6.0e-7 through modeld, so the bound leaves a factor of 15.

One server (module scope) serves the good models next to broken ones: a .pt2 of random bytes,
the first half of a valid .pt2, a config that contradicts its package, and TorchScript that
calls an op no LibTorch has. Each broken one must fail to load (not ready over gRPC and HTTP)
with a reason that names its file (or tensor), in the log and in the UNAVAILABLE answers,
while the others serve.
"""

import concurrent.futures
import io
import re
import shutil
import threading
import zipfile

import grpc
import numpy as np
import pytest

import pytorch_models
from http_helpers import batch_metrics, HttpClient, kserve_tensor
from infer_helpers import (
    RPC_TIMEOUT_S,
    decode_response,
    expect_rpc_error,
    infer,
    linear_expected,
    make_request,
    make_stub,
    pb,
)
from modeld_server import REPO_ROOT, start_server

RTOL = 1e-5
ATOL = 1e-5
RTOL_PT2 = 1e-5
ATOL_PT2 = 1e-5

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
TORCH113_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "torch113" / "linear_v1.pt"
PT2_MODELS = ("mlp_gelu_pt2", "mlp_gelu_pt2_stated")

# Linear's config in examples/generate_models.py (the model the 1.13 fixture was saved from),
# and that of unknown_op (y = 2 x).
TORCHSCRIPT_CONFIG = """\
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: 64
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 3 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ {output_dim} ] }} ]
"""

# model -> what its load failure (the index's reason, the log) must hold: substrings or regexes.
BROKEN_MODELS = {
    # random bytes, no config.pbtxt: the package cannot be opened to read its metadata
    "pt2_corrupt": ["model.pt2"],
    # the first half of a valid package (its zip directory is at the end), config stated
    "pt2_truncated": ["model.pt2"],
    # a config that says x is [128] where the package says [64]
    "pt2_wrong_dims": [re.compile(r"\bx\b"), "128"],
    # TorchScript calling modeld_test::scale, registered only in the Python that saved it
    "unknown_op": ["model.pt", "Unknown builtin op", "modeld_test::scale"],
    # a package whose code calls a LibTorch C function this LibTorch lacks: what a package
    # compiled by another torch release presents
    "pt2_other_torch": ["model.pt2", "undefined symbol", "aoti_torch_"],
}


def as_if_from_another_torch(package):
    """`package` with the first AOTInductor C-shim function its library imports renamed, as a
    package compiled against another torch release would import one this LibTorch lacks."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as zin, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".so"):
                name = re.search(rb"aoti_torch_[a-z0-9_]+\0", data).group(0)
                data = data.replace(name, name[:-2] + b"X\0")
            zout.writestr(info, data)
    return out.getvalue()


def tolerance(model):
    return (RTOL_PT2, ATOL_PT2) if model in PT2_MODELS else (RTOL, ATOL)


@pytest.fixture(scope="module")
def pytorch_folder():
    return pytorch_models.ensure()


@pytest.fixture(scope="module")
def references(pytorch_folder):
    return pytorch_models.load_references(pytorch_folder)


def build_repository(root, folder):
    """The good models of pytorch_models.py, the torch 1.13 fixture and the broken models."""
    shutil.copytree(folder / "repository", root)
    package = (root / "mlp_gelu_pt2" / "1" / "model.pt2").read_bytes()

    (root / "pt2_corrupt" / "1").mkdir(parents=True)
    (root / "pt2_corrupt" / "1" / "model.pt2").write_bytes(
        np.random.default_rng(20261207).bytes(len(package)))

    (root / "pt2_truncated" / "1").mkdir(parents=True)
    (root / "pt2_truncated" / "1" / "model.pt2").write_bytes(package[:len(package) // 2])
    (root / "pt2_truncated" / "config.pbtxt").write_text(
        pytorch_models.stated_pt2_config("pt2_truncated"))

    (root / "pt2_wrong_dims" / "1").mkdir(parents=True)
    (root / "pt2_wrong_dims" / "1" / "model.pt2").write_bytes(package)
    (root / "pt2_wrong_dims" / "config.pbtxt").write_text(
        pytorch_models.stated_pt2_config("pt2_wrong_dims", dims="[ 128 ]"))

    (root / "pt2_other_torch" / "1").mkdir(parents=True)
    (root / "pt2_other_torch" / "1" / "model.pt2").write_bytes(as_if_from_another_torch(package))
    (root / "pt2_other_torch" / "config.pbtxt").write_text(
        pytorch_models.stated_pt2_config("pt2_other_torch"))

    (root / "unknown_op" / "1").mkdir(parents=True)
    shutil.copyfile(folder / "extras" / "unknown_op" / "model.pt",
                    root / "unknown_op" / "1" / "model.pt")
    (root / "unknown_op" / "config.pbtxt").write_text(
        TORCHSCRIPT_CONFIG.format(name="unknown_op", output_dim=3))

    (root / "linear_torch113" / "1").mkdir(parents=True)
    shutil.copyfile(TORCH113_FIXTURE, root / "linear_torch113" / "1" / "model.pt")
    (root / "linear_torch113" / "config.pbtxt").write_text(
        TORCHSCRIPT_CONFIG.format(name="linear_torch113", output_dim=1))
    return root


@pytest.fixture(scope="module")
def server_tmpdir(tmp_path_factory):
    """The server's TMPDIR, where LibTorch unpacks .pt2 packages (aotinductor_XXXXXX)."""
    return tmp_path_factory.mktemp("server-tmpdir")


@pytest.fixture(scope="module")
def torch_server(tmp_path_factory, pytorch_folder, server_tmpdir):
    repository = build_repository(tmp_path_factory.mktemp("pytorch2") / "repo", pytorch_folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(server_tmpdir))  # the server inherits it
        process = start_server(repository)
    yield process
    # Unloading LibTorch and AOTInductor models ends cleanly (no crash at exit), and the
    # unpacked packages go with them.
    assert process.stop() == 0, process.log
    assert not list(server_tmpdir.iterdir()), list(server_tmpdir.iterdir())


@pytest.fixture(scope="module")
def torch_stub(torch_server):
    return make_stub(torch_server.channel())


def model_infer(stub, model, name, x, request_id=""):
    """One ModelInfer with input `name` = x; returns ({output: array}, response)."""
    response, outputs = infer(stub, make_request(model, [(name, x)], request_id=request_id))
    return outputs, response


LOG_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.M)


def log_entries(server):
    """The server's log messages: a line with a timestamp and the lines that continue it
    (LibTorch's messages span lines)."""
    text = server.log
    starts = [m.start() for m in LOG_ENTRY.finditer(text)] + [len(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:])]


def missing_from(text, fragments):
    return [f for f in fragments
            if (f.search(text) is None if isinstance(f, re.Pattern) else f not in text)]


# --- TorchScript from torch 2.15 --------------------------------------------------------------


@pytest.mark.parametrize("model", ["transformer_script", "transformer_trace"])
@pytest.mark.parametrize("case", sorted(pytorch_models.TRANSFORMER_CASES))
def test_transformer_matches_pytorch(torch_stub, references, model, case):
    x, expected = references["transformer"][case]
    outputs, response = model_infer(torch_stub, model, "x", x, request_id=case)
    assert response.id == case and response.model_name == model
    assert outputs["y"].shape == x.shape
    np.testing.assert_allclose(outputs["y"], expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("model", ["mlp_gelu", *PT2_MODELS])
@pytest.mark.parametrize("case", ["b1", "b3", "b64"])
def test_mlp_gelu_matches_pytorch(torch_stub, references, model, case):
    """Batch 1 and max_batch_size included: the .pt2's batch dimension is dynamic from 1."""
    x, expected = references["mlp_gelu"][case]
    outputs, _ = model_infer(torch_stub, model, "x", x)
    assert outputs["logits"].shape == (x.shape[0], pytorch_models.MLP_OUT)
    rtol, atol = tolerance(model)
    np.testing.assert_allclose(outputs["logits"], expected, rtol=rtol, atol=atol)


def test_pt2_over_http_matches_pytorch(torch_server, references):
    x, expected = references["mlp_gelu"]["b3"]
    client = HttpClient(torch_server.http_address)
    try:
        reply = client.post("/v2/models/mlp_gelu_pt2/infer", {"inputs": [kserve_tensor("x", x)]})
    finally:
        client.close()
    assert reply.status == 200, reply.body
    [output] = reply.json()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("logits", "FP32", [3, 10])
    np.testing.assert_allclose(np.array(output["data"], np.float32).reshape(3, 10), expected,
                               rtol=RTOL_PT2, atol=ATOL_PT2)


def test_pt2_packages_are_unpacked_under_tmpdir(torch_server, server_tmpdir):
    """What the fixture's teardown checks is gone at shutdown is there while serving, so that
    check is not vacuous."""
    assert list(server_tmpdir.glob("aotinductor_*")), list(server_tmpdir.iterdir())


# --- .pt2 without config.pbtxt: the config comes from the package -----------------------------


def test_pt2_without_config_states_its_tensors(torch_stub):
    metadata = torch_stub.ModelMetadata(pb.ModelMetadataRequest(name="mlp_gelu_pt2"),
                                        timeout=RPC_TIMEOUT_S)
    assert metadata.platform == "torch_aoti"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("x", "FP32", [-1, pytorch_models.MLP_IN])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        ("logits", "FP32", [-1, pytorch_models.MLP_OUT])]
    config = torch_stub.ModelConfig(pb.ModelConfigRequest(name="mlp_gelu_pt2"),
                                    timeout=RPC_TIMEOUT_S).config
    assert config.max_batch_size == pytorch_models.MLP_MAX_BATCH
    # A batch dimension turns dynamic batching on, as for a config that states it.
    assert config.HasField("dynamic_batching")


def test_pt2_batches_concurrent_requests(torch_stub, torch_server, references):
    """256 one-row requests from 16 clients: each gets its own row, and runs hold several."""
    x, expected = references["mlp_gelu"]["rows256"]
    clients = 16
    per_client = len(x) // clients
    before = batch_metrics(torch_server.http_address, "mlp_gelu_pt2")
    barrier = threading.Barrier(clients)

    def client(c):
        barrier.wait(timeout=RPC_TIMEOUT_S)
        rows = range(c * per_client, (c + 1) * per_client)
        futures = [torch_stub.ModelInfer.future(
            make_request("mlp_gelu_pt2", [("x", x[i:i + 1])], request_id=str(i)),
            timeout=RPC_TIMEOUT_S) for i in rows]
        for i, future in zip(rows, futures):
            response = future.result()
            assert response.id == str(i)
            np.testing.assert_allclose(decode_response(response)["logits"], expected[i:i + 1],
                                       rtol=RTOL_PT2, atol=ATOL_PT2, err_msg=f"request {i}")
        return c

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        assert sorted(pool.map(client, range(clients))) == list(range(clients))
    after = batch_metrics(torch_server.http_address, "mlp_gelu_pt2")
    one, runs, rows = (a - b for a, b in zip(after, before))
    assert rows == len(x), f"{rows} rows ran for {len(x)} one-row requests"
    assert runs < len(x) and one < runs, (
        f"no run held more than one request: {runs} runs, {one} of them with one row")


# --- TorchScript saved by torch 1.13 ---------------------------------------------------------


def test_torch113_torchscript_gives_its_known_answer(torch_stub):
    x = np.array([[1.0, 2.0, 3.0], [-0.5, 0.25, 8.0]], np.float32)
    outputs, _ = model_infer(torch_stub, "linear_torch113", "x", x)
    # y = x @ [[0.5], [-1.25], [2.0]] + 0.75: [[4.75], [16.1875]]
    np.testing.assert_allclose(outputs["y"], linear_expected(x, version=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outputs["y"], [[4.75], [16.1875]], rtol=1e-6)


# --- models that fail to load ----------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_is_not_ready(torch_stub, torch_server, model):
    ready = torch_stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S)
    assert ready.ready is False
    client = HttpClient(torch_server.http_address)
    try:
        assert client.get(f"/v2/models/{model}/ready").status != 200
    finally:
        client.close()


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_reason_is_logged(torch_server, model):
    entries = [entry for entry in log_entries(torch_server) if f"'{model}'" in entry]
    assert entries, f"no log message names model '{model}'"
    assert any(not missing_from(entry, BROKEN_MODELS[model]) for entry in entries), (
        f"no log message for '{model}' holds {BROKEN_MODELS[model]}; messages: {entries}")


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_metadata_is_unavailable_with_reason(torch_stub, model):
    expect_rpc_error(torch_stub.ModelMetadata, pb.ModelMetadataRequest(name=model), UNAVAILABLE,
                     model, *BROKEN_MODELS[model])


@pytest.mark.parametrize("model", sorted(BROKEN_MODELS))
def test_broken_model_infer_is_unavailable_and_the_rest_serves(torch_stub, references, model):
    x = np.ones((1, 3 if model == "unknown_op" else pytorch_models.MLP_IN), np.float32)
    expect_rpc_error(torch_stub.ModelInfer, make_request(model, [("x", x)]), UNAVAILABLE,
                     model, *BROKEN_MODELS[model])
    x, expected = references["mlp_gelu"]["b3"]
    outputs, _ = model_infer(torch_stub, "mlp_gelu_pt2", "x", x)
    np.testing.assert_allclose(outputs["logits"], expected, rtol=RTOL_PT2, atol=ATOL_PT2)


def test_every_good_model_is_ready(torch_stub):
    for model in (*pytorch_models.MODELS, "linear_torch113"):
        ready = torch_stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=RPC_TIMEOUT_S)
        assert ready.ready is True, model
