"""model_status() and models(): the state of each model version and the server's reason, over
gRPC and HTTP (sync and asyncio) and through Redis, against modeld with its default model
control (no repository index) and with --model-control-mode=explicit (the index).

The repository: linear (versions 1 and 2, ready), broken (an ONNX model whose model.onnx is not
one: it fails to load) and badcfg (a config.pbtxt that does not parse: no version is read).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_support import count_calls, start_modeld_on_redis, stop_server
from modeld_server import ServerProcess, start_server
from redis_server import RedisServer

import modeld
import modeld.aio

APIS = ("sync", "aio")
ModelStatus = modeld.ModelStatus


@pytest.fixture(scope="module")
def status_repository(example_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("status_models")
    shutil.copytree(example_repository / "linear", repository / "linear")
    (repository / "broken" / "1").mkdir(parents=True)
    (repository / "broken" / "1" / "model.onnx").write_bytes(b"not an ONNX model")
    (repository / "badcfg").mkdir()
    (repository / "badcfg" / "config.pbtxt").write_text("garbage {{\n")
    return repository


@pytest.fixture(scope="module")
def default_server(status_repository: Path) -> Iterator[ServerProcess]:
    """modeld with its default --model-control-mode (none): no repository index."""
    process = start_server(status_repository)
    yield process
    stop_server(process)


@pytest.fixture(scope="module")
def explicit_server(status_repository: Path) -> Iterator[ServerProcess]:
    process = start_server(status_repository, ["--model-control-mode=explicit"])
    yield process
    stop_server(process)


@pytest.fixture(scope="module")
def redis_status_server(status_repository: Path,
                        redis_server: RedisServer) -> Iterator[ServerProcess]:
    process = start_modeld_on_redis(status_repository, f"{redis_server.url}/6")
    yield process
    stop_server(process)


@pytest.fixture(params=("grpc", "http"))
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=APIS)
def api(request: pytest.FixtureRequest) -> str:
    return request.param


def url_of(process: ServerProcess, scheme: str) -> str:
    return f"{scheme}://{process.address if scheme == 'grpc' else process.http_address}"


def ask(url: str, api: str, method: str, *args, **kwargs):
    """client.<method>(*args, **kwargs) on a new sync or asyncio client of `url`."""
    if api == "sync":
        with modeld.Client(url, timeout=20.0) as client:
            return getattr(client, method)(*args, **kwargs)

    async def run():
        async with modeld.aio.Client(url, timeout=20.0) as client:
            return await getattr(client, method)(*args, **kwargs)

    return asyncio.run(run())


def assert_load_error(status: ModelStatus) -> None:
    assert status == ModelStatus("broken", "1", False, "UNAVAILABLE", status.reason), status
    assert "model.onnx" in status.reason  # the server's load error names the file


def assert_config_error(status: ModelStatus) -> None:
    assert status == ModelStatus("badcfg", None, False, "UNAVAILABLE", status.reason), status
    assert "config.pbtxt" in status.reason and "garbage" in status.reason
    assert not status.reason.startswith("model 'badcfg'")  # the reason alone, as the index


# --- model_status ---------------------------------------------------------------------------


def test_a_ready_model_is_its_newest_ready_version(default_server, scheme, api):
    url = url_of(default_server, scheme)
    assert ask(url, api, "model_status", "linear") == ModelStatus("linear", "2", True, "READY")
    assert ask(url, api, "model_status", "linear", 1) == ModelStatus("linear", "1", True, "READY")
    assert ask(url, api, "model_status", "linear", version="2").ready


def test_an_unknown_model_or_version_is_unknown_with_the_servers_words(default_server, scheme,
                                                                         api):
    url = url_of(default_server, scheme)
    assert ask(url, api, "model_status", "nope") == ModelStatus(
        "nope", None, False, "UNKNOWN", "unknown model 'nope'")
    status = ask(url, api, "model_status", "linear", 7)
    assert (status.name, status.version, status.ready, status.state) == (
        "linear", "7", False, "UNKNOWN")
    assert "version 7" in status.reason and "'linear'" in status.reason


def test_a_model_that_failed_to_load_says_why(default_server, scheme, api):
    url = url_of(default_server, scheme)
    assert_load_error(ask(url, api, "model_status", "broken"))
    assert_load_error(ask(url, api, "model_status", "broken", 1))
    assert_config_error(ask(url, api, "model_status", "badcfg"))


def test_the_same_answers_with_explicit_model_control(explicit_server, scheme):
    url = url_of(explicit_server, scheme)
    assert ask(url, "sync", "model_status", "linear").state == "READY"
    assert_load_error(ask(url, "sync", "model_status", "broken"))
    assert ask(url, "sync", "model_status", "nope").state == "UNKNOWN"


def test_an_answer_about_a_model_is_neither_retried_nor_logged_as_a_failure(default_server,
                                                                           scheme, caplog):
    with modeld.Client(url_of(default_server, scheme), timeout=20.0, retries=3) as client:
        calls = count_calls(client, "model_status")
        with caplog.at_level(logging.DEBUG, logger="modeld"):
            assert client.model_status("nope").state == "UNKNOWN"
            assert client.model_status("broken").state == "UNAVAILABLE"
    assert len(calls) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_version_that_is_not_a_number_is_invalid(default_server, scheme):
    with modeld.Client(url_of(default_server, scheme)) as client:
        with pytest.raises(modeld.InvalidInput, match="a model version is a number"):
            client.model_status("linear", "latest")


def test_an_unreachable_server_raises_unavailable(closed_port, scheme, api):
    with pytest.raises(modeld.Unavailable):
        if api == "sync":
            with modeld.Client(f"{scheme}://127.0.0.1:{closed_port}", timeout=5.0,
                               retries=0) as client:
                client.model_status("linear")
        else:
            async def run():
                async with modeld.aio.Client(f"{scheme}://127.0.0.1:{closed_port}",
                                             timeout=5.0, retries=0) as client:
                    await client.model_status("linear")

            asyncio.run(run())


# --- models ---------------------------------------------------------------------------------


def by_key(statuses: list[ModelStatus]) -> dict[tuple[str, str | None], ModelStatus]:
    keyed = {(s.name, s.version): s for s in statuses}
    assert len(keyed) == len(statuses), statuses
    return keyed


def assert_every_model(statuses: list[ModelStatus]) -> None:
    keyed = by_key(statuses)
    assert sorted(keyed) == [("badcfg", None), ("broken", "1"), ("linear", "1"),
                             ("linear", "2")], statuses
    assert keyed["linear", "1"] == ModelStatus("linear", "1", True, "READY")
    assert keyed["linear", "2"] == ModelStatus("linear", "2", True, "READY")
    assert_load_error(keyed["broken", "1"])
    assert_config_error(keyed["badcfg", None])


def test_models_reads_the_repository_index_with_explicit_model_control(explicit_server, scheme,
                                                                       api):
    statuses = ask(url_of(explicit_server, scheme), api, "models")
    assert_every_model(statuses)
    assert [s.name for s in statuses] == sorted(s.name for s in statuses)


def test_models_reads_the_repository_index_in_the_default_mode_too(default_server, scheme,
                                                                   api):
    # modeld serves its (read-only) index in every --model-control-mode.
    assert_every_model(ask(url_of(default_server, scheme), api, "models"))


def test_models_and_model_status_give_the_same_reasons(default_server, explicit_server):
    listed = by_key(ask(url_of(explicit_server, "http"), "sync", "models"))
    for name in ("broken", "badcfg"):
        alone = ask(url_of(default_server, "grpc"), "sync", "model_status", name)
        assert listed[name, alone.version].reason == alone.reason


# --- Redis ----------------------------------------------------------------------------------


def test_model_status_through_redis(redis_status_server, api):
    url = redis_status_server.redis_url
    assert ask(url, api, "model_status", "linear") == ModelStatus("linear", "2", True, "READY")
    assert ask(url, api, "model_status", "nope") == ModelStatus(
        "nope", None, False, "UNKNOWN", "unknown model 'nope'")
    # The queue carries metadata, not version states: not ready is UNAVAILABLE, with the
    # server's reason.
    broken = ask(url, api, "model_status", "broken")
    assert (broken.name, broken.ready, broken.state) == ("broken", False, "UNAVAILABLE")
    assert "model.onnx" in broken.reason


def test_models_through_redis_is_unimplemented(redis_status_server, api):
    with pytest.raises(modeld.ModeldError, match="grpc:// or http://") as raised:
        ask(redis_status_server.redis_url, api, "models")
    assert raised.value.code == "UNIMPLEMENTED"


# --- reading the answers (no server) --------------------------------------------------------


def test_summary_prefers_the_newest_ready_then_loading_version():
    from modeld._status import summarize

    def s(version, state):
        return ModelStatus("m", version, state == "READY", state, None)

    assert summarize([s("1", "READY"), s("3", "UNAVAILABLE"), s("2", "READY")]).version == "2"
    assert summarize([s("1", "UNAVAILABLE"), s("2", "LOADING"), s("3", "UNAVAILABLE")]) == s(
        "2", "LOADING")
    assert summarize([s("10", "UNAVAILABLE"), s("9", "UNAVAILABLE")]).version == "10"
    with pytest.raises(modeld.ModeldError):
        summarize([])


def test_tfserving_states_and_index_entries():
    from modeld._status import from_index, from_tfserving_json

    assert from_tfserving_json("m", {"model_version_status": [
        {"version": "1", "state": "END",
         "status": {"error_code": "UNKNOWN", "error_message": "bad file"}},
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK"}},
        {"version": "3", "state": "LOADING"},
    ]}) == [ModelStatus("m", "1", False, "UNAVAILABLE", "bad file"),
            ModelStatus("m", "2", True, "READY"), ModelStatus("m", "3", False, "LOADING")]
    assert from_index([{"name": "a", "version": "", "state": "UNAVAILABLE",
                        "reason": "unloaded"}]) == [
        ModelStatus("a", None, False, "UNAVAILABLE", "unloaded")]
    for malformed in ({}, [1], [{"version": "1"}]):
        with pytest.raises(modeld.ModeldError, match="malformed"):
            from_index(malformed)
    with pytest.raises(modeld.ModeldError, match="malformed"):
        from_tfserving_json("m", [])
