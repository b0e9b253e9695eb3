"""Bearer tokens (--auth-token-file) on every gRPC service and HTTP route, health left open
or not (--auth-health), the token file re-read on SIGHUP in every model-control mode, and the
start-up warnings about exposed ports."""

import json
import signal
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

import modeld
from infer_helpers import RPC_TIMEOUT_S, linear_expected, make_request, make_stub, pb
from modeld_server import ServerProcess

TOKEN = "web-tier-7f3a"


def write_tokens(path, *tokens):
    path.write_text("# modeld tokens\n" + "".join(f"{t}\n" for t in tokens))
    return path


def bearer(token):
    return [("authorization", f"Bearer {token}")]


def http(server, method, path, body=None, token=None):
    """(status, headers, parsed JSON or text) of one HTTP request."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server.http_address}{path}", data=data,
                                     method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_S) as reply:
            status, headers, text = reply.status, reply.headers, reply.read().decode()
    except urllib.error.HTTPError as error:
        status, headers, text = error.code, error.headers, error.read().decode()
    try:
        return status, headers, json.loads(text)
    except ValueError:
        return status, headers, text


def expect_unauthenticated(call, *fragments):
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value
    for fragment in fragments:
        assert fragment in info.value.details(), info.value.details()


INFER_BODY = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}


@pytest.fixture
def token_file(tmp_path):
    return write_tokens(tmp_path / "tokens", TOKEN, "second-token")


def test_grpc_calls_need_a_token_but_health(launch, example_repository, token_file):
    server = launch(example_repository,
                    [f"--auth-token-file={token_file}", "--model-control-mode=explicit"])
    assert "bearer tokens required (2 loaded" in server.log
    stub = make_stub(server.channel())
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    request = make_request("linear", [("x", x)])
    expect_unauthenticated(lambda: stub.ModelInfer(request, timeout=RPC_TIMEOUT_S),
                           "missing bearer token")
    expect_unauthenticated(
        lambda: stub.ModelInfer(request, timeout=RPC_TIMEOUT_S, metadata=bearer("nope")),
        "invalid bearer token")
    expect_unauthenticated(lambda: stub.ModelInfer(
        request, timeout=RPC_TIMEOUT_S, metadata=[("authorization", f"Basic {TOKEN}")]),
        "expected 'Bearer <token>'")
    # Metadata, config and the repository (control) API are behind the token too.
    expect_unauthenticated(lambda: stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10))
    expect_unauthenticated(
        lambda: stub.ModelConfig(pb.ModelConfigRequest(name="linear"), timeout=10))
    expect_unauthenticated(
        lambda: stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10))
    expect_unauthenticated(lambda: stub.RepositoryModelUnload(
        pb.RepositoryModelUnloadRequest(model_name="linear"), timeout=10))
    # So is modeld's training extension (a step changes the weights).
    from train_helpers import grpc_train

    expect_unauthenticated(lambda: grpc_train(server.channel(), "linear", {"x": x},
                                              {"y": np.ones((1, 1), np.float32)}))
    # Health is open by default.
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="linear"), timeout=10).ready
    # Either token of the file works; the model is still loaded (the unload was refused).
    for token in (TOKEN, "second-token"):
        response = stub.ModelInfer(request, timeout=RPC_TIMEOUT_S, metadata=bearer(token))
        y = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(1, 1)
        np.testing.assert_allclose(y, linear_expected(x), rtol=1e-6)
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10, metadata=bearer(TOKEN))
    assert any(m.name == "linear" for m in index.models)


def test_http_routes_need_a_token_but_health(launch, example_repository, token_file):
    server = launch(example_repository, [f"--auth-token-file={token_file}"])
    for method, path, body in [("POST", "/v2/models/linear/infer", INFER_BODY),
                               ("POST", "/v2/models/linear/train", INFER_BODY),
                               ("GET", "/v2", None), ("GET", "/v2/models/linear", None),
                               ("GET", "/v1/models/linear", None),
                               ("POST", "/v2/repository/index", {}),
                               ("GET", "/no/such/route", None)]:
        status, headers, reply = http(server, method, path, body)
        assert status == 401, (path, reply)
        assert headers["WWW-Authenticate"] == 'Bearer realm="modeld"'
        assert "missing bearer token" in reply["error"]
    status, headers, reply = http(server, "POST", "/v2/models/linear/infer", INFER_BODY, "bad")
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert reply == {"error": "invalid bearer token"}
    status, _, reply = http(server, "POST", "/v2/models/linear/infer", INFER_BODY, TOKEN)
    assert status == 200, reply
    assert reply["outputs"][0]["data"] == pytest.approx([1 - 5 + 12 + 1.5])
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/linear/ready",
                 "/v2/models/linear/versions/1/ready", "/metrics"):
        assert http(server, "GET", path)[0] == 200, path


def test_health_needs_a_token_when_asked(launch, example_repository, token_file):
    server = launch(example_repository,
                    [f"--auth-token-file={token_file}", "--auth-health=token"])
    stub = make_stub(server.channel())
    expect_unauthenticated(lambda: stub.ServerLive(pb.ServerLiveRequest(), timeout=10))
    expect_unauthenticated(lambda: stub.ModelReady(pb.ModelReadyRequest(name="linear"),
                                                   timeout=10))
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10, metadata=bearer(TOKEN)).ready
    assert http(server, "GET", "/v2/health/ready")[0] == 401
    assert http(server, "GET", "/metrics")[0] == 401
    assert http(server, "GET", "/metrics", token=TOKEN)[0] == 200


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_the_modeld_client_sends_its_token(launch, example_repository, token_file, scheme):
    server = launch(example_repository, [f"--auth-token-file={token_file}"])
    address = server.address if scheme == "grpc" else server.http_address
    x = np.array([[3.0, 2.0, 1.0]], np.float32)
    with modeld.Client(f"{scheme}://{address}", token=TOKEN, timeout=10) as client:
        np.testing.assert_allclose(client.predict("linear", x), linear_expected(x), rtol=1e-6)
    with modeld.Client(f"{scheme}://{address}", timeout=10) as client:
        assert client.live()  # health is open
        with pytest.raises(modeld.Unauthenticated, match="missing bearer token"):
            client.predict("linear", x)
    with modeld.Client(f"{scheme}://{address}", token="wrong", timeout=10) as client:
        with pytest.raises(modeld.Unauthenticated, match="invalid bearer token"):
            client.infer("linear", {"x": x})


def test_the_asyncio_client_sends_its_token(launch, example_repository, token_file):
    import asyncio

    import modeld.aio

    server = launch(example_repository, [f"--auth-token-file={token_file}"])
    x = np.array([[1.0, 1.0, 1.0]], np.float32)

    async def calls(url):
        async with modeld.aio.Client(url, token=TOKEN, timeout=10) as client:
            np.testing.assert_allclose(await client.predict("linear", x), linear_expected(x),
                                       rtol=1e-6)
        async with modeld.aio.Client(url, timeout=10) as client:
            with pytest.raises(modeld.Unauthenticated):
                await client.predict("linear", x)

    for url in (f"grpc://{server.address}", f"http://{server.http_address}"):
        asyncio.run(calls(url))


@pytest.mark.parametrize("mode", ["none", "poll", "explicit"])
def test_sighup_reloads_the_tokens_in_every_mode(launch, example_repository, tmp_path, mode):
    tokens = write_tokens(tmp_path / "tokens", "old-token")
    server = launch(example_repository,
                    [f"--auth-token-file={tokens}", f"--model-control-mode={mode}"])
    stub = make_stub(server.channel())
    meta = pb.ServerMetadataRequest()
    assert stub.ServerMetadata(meta, timeout=10, metadata=bearer("old-token")).name == "modeld"
    write_tokens(tokens, "new-token")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"reloaded 1 bearer token\(s\) from ")
    expect_unauthenticated(lambda: stub.ServerMetadata(meta, timeout=10,
                                                       metadata=bearer("old-token")))
    assert stub.ServerMetadata(meta, timeout=10, metadata=bearer("new-token")).name == "modeld"
    assert http(server, "GET", "/v2", token="new-token")[0] == 200
    assert http(server, "GET", "/v2", token="old-token")[0] == 401
    # A broken file is refused and the tokens in use stay.
    tokens.write_text("# emptied by mistake\n")
    server.send_signal(signal.SIGHUP)
    server.wait_for_log(r"kept the bearer tokens in use: .* holds no token")
    assert stub.ServerMetadata(meta, timeout=10, metadata=bearer("new-token")).name == "modeld"
    assert server.running()


def test_a_token_file_without_tokens_stops_the_start(launch, example_repository, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# nothing yet\n")
    server = launch(example_repository, [f"--auth-token-file={tokens}"], wait=False)
    assert server.wait() == 1
    assert "holds no token" in server.log


def test_exposed_ports_without_tls_or_tokens_are_warned_of(example_repository, tmp_path):
    process = ServerProcess(example_repository, ["--model-control-mode=explicit"],
                            address="0.0.0.0:0", http_address="0.0.0.0:0")
    try:
        process.wait_for_log(r"modeld is ready")
        log = process.log
    finally:
        process.stop()
    warnings = [line for line in log.splitlines() if " warning " in line]
    assert any("gRPC on 0.0.0.0:0 is reachable beyond this machine without TLS "
               "(--grpc-tls-cert)" in line for line in warnings), log
    assert any("HTTP on 0.0.0.0:0 is reachable beyond this machine without bearer tokens "
               "(--auth-token-file)" in line and "load and unload models" in line
               for line in warnings), log
    assert len([w for w in warnings if "reachable beyond this machine" in w]) == 4, warnings

    # With tokens, only the missing TLS is warned of; on loopback, nothing.
    tokens = write_tokens(tmp_path / "tokens", TOKEN)
    process = ServerProcess(example_repository, [f"--auth-token-file={tokens}"],
                            address="0.0.0.0:0", http_address="127.0.0.1:0")
    try:
        process.wait_for_log(r"modeld is ready")
        log = process.log
    finally:
        process.stop()
    exposed = [line for line in log.splitlines() if "reachable beyond this machine" in line]
    assert len(exposed) == 1 and "gRPC on 0.0.0.0:0" in exposed[0] and "TLS" in exposed[0], log


def test_loopback_defaults_warn_of_nothing(server):
    assert "reachable beyond this machine" not in server.log
