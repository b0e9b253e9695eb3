"""model_status() and models(): the state of each model version and the server's reason, over
gRPC and HTTP (sync and asyncio) and through Redis, against modeld with its default model
control and with --model-control-mode=explicit (modeld serves its repository index in both).
And ModelNotReady: a call on a model that failed to load raises it at once with the server's
reason, where a model that is still loading is Unavailable, retried.

The repository: linear (versions 1 and 2, ready), broken (an ONNX model whose model.onnx is not
one: it fails to load) and badcfg (a config.pbtxt that does not parse: no version is read).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from client_support import count_calls, start_modeld_on_redis, stop_server, write_fake_model
from modeld_server import ServerProcess, start_server
from redis_server import RedisServer

import modeld
import modeld.aio

APIS = ("sync", "aio")
ModelStatus = modeld.ModelStatus
#: A fake model that takes this long to load: it stays LOADING for as long as a test runs.
LOADING_MS = 300_000


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
    """modeld with its default --model-control-mode (none); it serves its repository index
    all the same."""
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


# --- ModelNotReady: a call on a model that failed to load -----------------------------------

#: The metadata of a one-input, one-output FP32 model, for a client that has it cached (so
#: that infer() and train() go straight to the transport).
SPEC = {"name": "broken", "versions": ["1"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]}


def seeded(client, model: str = "broken"):
    from modeld._codec import ModelSpec

    client._specs[(model, "")] = ModelSpec.from_dict({**SPEC, "name": model})
    return client


def attempt(url: str, api: str, call: Callable, *counted: str, seed: bool = False,
            retries: int = 3) -> tuple[modeld.ModeldError, dict[str, int]]:
    """The ModeldError that call(client) raises on a new sync or asyncio client of `url`
    (`retries` retries, 10 ms apart), and how many times it called each transport method of
    `counted`."""

    def prepare(client):
        if seed:
            seeded(client)
        return {method: count_calls(client, method) for method in counted}

    if api == "sync":
        with modeld.Client(url, timeout=20.0, retries=retries, backoff=0.01) as client:
            calls = prepare(client)
            with pytest.raises(modeld.ModeldError) as raised:
                call(client)
    else:
        async def run():
            async with modeld.aio.Client(url, timeout=20.0, retries=retries,
                                         backoff=0.01) as client:
                found = prepare(client)
                with pytest.raises(modeld.ModeldError) as info:
                    await call(client)
                return found, info

        calls, raised = asyncio.run(run())
    return raised.value, {method: len(times) for method, times in calls.items()}


def assert_model_not_ready(error: modeld.ModeldError, model: str = "broken",
                           version: str | None = "1") -> None:
    assert type(error) is modeld.ModelNotReady, repr(error)
    assert not isinstance(error, modeld.Unavailable)  # never "busy, try again"
    assert (error.model, error.version, error.state) == (model, version, "UNAVAILABLE")
    assert error.reason and error.reason in error.message  # the server's reason, in its words
    if model == "broken":
        assert "model.onnx" in error.reason
    else:
        assert "config.pbtxt" in error.reason


#: Each call on a model, and the transport method it sends (the one that meets the answer).
MODEL_CALLS = [
    ("predict", lambda c: c.predict("broken", [[1.0]]), "model_metadata", False),
    ("metadata", lambda c: c.metadata("broken"), "model_metadata", False),
    ("model_config", lambda c: c.model_config("broken"), "model_config", False),
    ("infer", lambda c: c.infer("broken", {"x": [[1.0]]}), "infer", True),
    ("train", lambda c: c.train("broken", {"x": [[1.0]]}, {"y": [[1.0]]}), "train", True),
]


@pytest.mark.parametrize("name,call,method,seed", MODEL_CALLS, ids=[c[0] for c in MODEL_CALLS])
def test_a_model_that_failed_to_load_is_model_not_ready_at_once(default_server, scheme, api,
                                                                name, call, method, seed):
    error, calls = attempt(url_of(default_server, scheme), api, call, method, "model_status",
                           seed=seed)
    assert_model_not_ready(error)
    assert error.code == ("UNAVAILABLE" if scheme == "grpc" else "503")
    # Not retried: one try, and one question about the model's status.
    assert calls == {method: 1, "model_status": 1}


def test_a_model_whose_config_failed_is_model_not_ready_without_a_version(default_server,
                                                                          scheme, api):
    error, calls = attempt(url_of(default_server, scheme), api,
                           lambda c: c.predict("badcfg", [[1.0]]), "model_metadata")
    assert_model_not_ready(error, "badcfg", None)
    assert calls == {"model_metadata": 1}


def test_model_not_ready_names_the_version_asked_for(default_server, scheme):
    error, _ = attempt(url_of(default_server, scheme), "sync",
                       lambda c: c.predict("broken", [[1.0]], version=1))
    assert_model_not_ready(error)


def test_model_not_ready_is_logged_once_as_the_calls_failure(default_server, scheme, caplog):
    with caplog.at_level(logging.DEBUG, logger="modeld"):
        attempt(url_of(default_server, scheme), "sync", lambda c: c.predict("broken", [[1.0]]))
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1, failures
    assert "metadata of model 'broken' failed" in failures[0] and "model.onnx" in failures[0]
    assert not re.search(r"retry \d+ in", caplog.text)  # no retry was logged


def test_model_not_ready_pickles_with_its_attributes():
    error = modeld.ModelNotReady("version 1 of model 'm' ...: bad file", "503", model="m",
                                 version="1", reason="bad file")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is modeld.ModelNotReady and isinstance(copy, modeld.ModeldError)
    assert (copy.message, copy.code, copy.model, copy.version, copy.state, copy.reason) == (
        error.message, "503", "m", "1", "UNAVAILABLE", "bad file")


def test_an_unreachable_server_is_unavailable_and_no_status_is_asked(closed_port, scheme):
    error, calls = attempt(f"{scheme}://127.0.0.1:{closed_port}", "sync",
                           lambda c: c.predict("broken", [[1.0]]), "model_metadata",
                           "model_status")
    assert type(error) is modeld.Unavailable
    assert calls == {"model_metadata": 4, "model_status": 0}  # a try and 3 retries


def test_model_not_ready_through_redis(redis_status_server, api):
    url = redis_status_server.redis_url
    for _, call, method, seed in MODEL_CALLS:
        if method == "model_config":
            continue  # not carried by the queue
        error, calls = attempt(url, api, call, method, "model_status", seed=seed)
        # The queue's answer names no version: modeld gives the model's reason.
        assert_model_not_ready(error, version=None)
        assert error.code == "UNAVAILABLE"
        assert calls == {method: 1, "model_status": 1}
    error, calls = attempt(url, api, lambda c: c.predict("badcfg", [[1.0]]), "model_metadata")
    assert_model_not_ready(error, "badcfg", None)


# --- a model that is loading: Unavailable, retried ------------------------------------------


@pytest.fixture(scope="module")
def loading_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """modeld while it loads model "slow" (LOADING_MS): listening, the model LOADING. Killed
    (modeld finishes loading before it obeys SIGTERM)."""
    repository = tmp_path_factory.mktemp("loading_models")
    write_fake_model(repository, "slow", max_batch_size=4,
                     parameters={"load_sleep_ms": str(LOADING_MS)})
    process = ServerProcess(repository)
    try:
        process.wait_until_listening()
        yield process
    finally:
        stop_server_now(process)


def stop_server_now(process: ServerProcess) -> None:
    try:
        process.stop(signal.SIGKILL)
    finally:
        if process.proc.stdout is not None:
            process.proc.stdout.close()


def test_a_model_that_is_loading_is_unavailable_after_the_retries(loading_server, scheme, api):
    url = url_of(loading_server, scheme)
    assert ask(url, api, "model_status", "slow") == ModelStatus("slow", "1", False, "LOADING")
    error, calls = attempt(url, api, lambda c: c.predict("slow", [[1.0]]), "model_metadata",
                           "model_status")
    assert type(error) is modeld.Unavailable, repr(error)
    assert "is loading" in error.message
    # Retried as before; the status is asked once, not at every retry.
    assert calls == {"model_metadata": 4, "model_status": 1}


def test_a_model_that_is_loading_through_a_queue():
    """Over Redis and AMQP the model status is read from modeld's answer to a metadata query.
    (No real modeld here: its queue workers start only once the first load is done, and a
    model added later is not listed until it has loaded.)"""
    from modeld._status import from_metadata_error

    loading = "model 'slow' is not ready: version 1 is loading"
    failed = "model 'slow' is not ready: cannot load /models/slow/1/model.onnx"

    class QueueLike:  # what RedisTransport and AmqpTransport answer
        def __init__(self, message):
            self.message = message

        def model_metadata(self, model, version, timeout):
            raise modeld.Unavailable(self.message)

        def model_status(self, model, version, timeout):
            return [from_metadata_error(model, version, modeld.Unavailable(self.message))]

        def close(self):
            pass

    for message, expected in ((loading, modeld.Unavailable), (failed, modeld.ModelNotReady)):
        client = modeld.Client("grpc://127.0.0.1:1", retries=3, backoff=0.001)
        client._transport = QueueLike(message)
        calls = {m: count_calls(client, m) for m in ("model_metadata", "model_status")}
        with pytest.raises(modeld.ModeldError) as raised:
            client.predict("slow", [[1.0]])
        assert type(raised.value) is expected, repr(raised.value)
        tries = 4 if expected is modeld.Unavailable else 1
        assert {m: len(c) for m, c in calls.items()} == {"model_metadata": tries,
                                                          "model_status": 1}
    assert raised.value.reason == "cannot load /models/slow/1/model.onnx"
    assert raised.value.version is None  # the answer names none


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


def test_modelds_not_ready_answers():
    from modeld._status import not_ready_answer

    def read(message, name="m"):
        return not_ready_answer(name, message)

    assert read("model 'm' is not ready: version 1: bad file; it says ; twice") == ModelStatus(
        "m", "1", False, "UNAVAILABLE", "bad file; it says ; twice")
    assert read("model 'm' is not ready: version 1 is loading") == ModelStatus(
        "m", "1", False, "LOADING", "version 1 is loading")
    assert read("model 'm' is not ready: version 1: bad; version 2 is loading").state == \
        "LOADING"
    assert read("model 'm' is not ready: version 1: bad; version 2: worse") == ModelStatus(
        "m", None, False, "UNAVAILABLE", "version 1: bad; version 2: worse")
    assert read("model 'm' is not ready: config.pbtxt: 1:1: garbage") == ModelStatus(
        "m", None, False, "UNAVAILABLE", "config.pbtxt: 1:1: garbage")
    assert read("version 3 of model 'm' is not ready: unloaded") == ModelStatus(
        "m", "3", False, "UNAVAILABLE", "unloaded")
    assert read("version 3 of model 'm' is not ready: ") == ModelStatus(
        "m", "3", False, "LOADING", None)
    for other in ("model 'other' is not ready: version 1: bad", "modeld is shutting down",
                  "cannot reach modeld at http://127.0.0.1:1: ConnectionRefusedError(111)"):
        assert read(other) is None


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
