"""Model lifecycle end to end, through the real binary: version swaps under load, poll-mode
rescans (timer and SIGHUP), Triton's repository API in explicit mode (tritonclient.grpc in a
child process, tritonclient.http here), the watchdog on stuck runs (unsupervised and
supervised), SIGTERM while loading and under load, and memory over load/unload cycles.

Most models are on modeld's fake backend (src/backend/fake/fake_backend.h), which loads and
runs in no time unless told to sleep; the memory test uses a TorchScript example model.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from infer_helpers import decode_response, make_request, make_stub, pb
from lifecycle_helpers import (
    add_version,
    fake_config,
    http_call,
    http_infer,
    http_status,
    repository_index,
    vm_rss_kib,
    wait_until,
    write_fake_model,
)

HELPER_SCRIPT = Path(__file__).with_name("lifecycle_helpers.py")
RPC_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 15.0


def grpc_answer(stub, model, version="", rows=1):
    """(model_version, OUTPUT0) of one ModelInfer, or the grpc.StatusCode it failed with."""
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) + 0.25
    try:
        response = stub.ModelInfer(make_request(model, [("INPUT0", x)], version=version),
                                   timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as error:
        return error.code()
    return response.model_version, decode_response(response)["OUTPUT0"]


def answered_version(stub, model, version=""):
    """The model_version that answered one ModelInfer; None when it failed."""
    answer = grpc_answer(stub, model, version)
    return answer[0] if isinstance(answer, tuple) else None


def model_ready(stub, model, version=""):
    return stub.ModelReady(pb.ModelReadyRequest(name=model, version=version),
                           timeout=RPC_TIMEOUT_S).ready


def write_atomically(path, text):
    """Replaces a file by renaming a sibling into place, so a rescan never reads half of it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def add_model_atomically(repository, name, **config):
    """A new model folder, built under a name modeld skips and renamed into place."""
    staging = write_fake_model(repository, f".{name}.partial", **config)
    (staging / "config.pbtxt").write_text(fake_config(name, **config))
    staging.rename(Path(repository) / name)


def run_grpc_child(*args):
    """Runs lifecycle_helpers.py (tritonclient.grpc) in a child process.

    Returns the problems it reported (checks that found a difference but let the others run);
    fails at once when a check failed outright.
    """
    result = subprocess.run(
        [sys.executable, str(HELPER_SCRIPT), *map(str, args)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    match = re.search(r"^passed (\d+) checks$", result.stdout, re.MULTILINE)
    assert match, output
    assert len(re.findall(r"^ok: ", result.stdout, re.MULTILINE)) == int(match.group(1)), output
    problems = re.findall(r"^problem: (.*)$", result.stdout, re.MULTILINE)
    assert (result.returncode == 0) == (not problems), output
    return problems


class HttpRepositoryClient:
    """tritonclient.http's repository calls; an unload that modeld refuses because of the
    parameters tritonclient always sends ({"unload_dependents": false}) is recorded in
    `problems` and sent again without them, so that the other checks still run."""

    def __init__(self, client, address):
        self.client = client
        self.address = address
        self.problems = []

    def unload(self, name):
        try:
            self.client.unload_model(name)
            return
        except InferenceServerException as error:
            if error.status() != "400":
                raise
            self.problems.append(f"tritonclient.http unload_model({name!r}) refused: "
                                 f"{error.status()} {error.message()}")
        status, body = http_call(self.address, "POST", f"/v2/repository/models/{name}/unload",
                                 {})
        if status != 200:
            raise InferenceServerException(msg=body["error"], status=str(status))


# --- 1. version swaps under load ------------------------------------------------------------

SWAP_CLIENTS = 16
SWAP_CHANNELS = 4
LAST_VERSION = 11


def test_ten_version_swaps_under_load_lose_no_request(launch, tmp_path):
    repository = tmp_path / "repo"
    folder = write_fake_model(repository, "swap", versions=(1,), load_sleep_ms=200, sleep_ms=2)
    server = launch(repository, ["--model-control-mode=explicit"])
    stubs = [make_stub(server.channel()) for _ in range(SWAP_CHANNELS)]

    stop = threading.Event()
    answers = [[] for _ in range(SWAP_CLIENTS)]  # per client: (sent_at, version)
    failures = []

    def client(index):
        stub = stubs[index % SWAP_CHANNELS]
        sequence = 0
        while not stop.is_set():
            sequence += 1
            x = np.array([[index, sequence, -sequence, index * 1000 + sequence]], np.float32)
            sent_at = time.monotonic()
            try:
                response = stub.ModelInfer(
                    make_request("swap", [("INPUT0", x)], request_id=f"{index}-{sequence}"),
                    timeout=RPC_TIMEOUT_S,
                )
                output = decode_response(response)["OUTPUT0"]
            except grpc.RpcError as error:
                failures.append((index, sequence, error.code().name, error.details()))
                continue
            if response.id != f"{index}-{sequence}" or not np.array_equal(output, x):
                failures.append((index, sequence, "wrong answer", response.id, output.tolist()))
                continue
            answers[index].append((sent_at, int(response.model_version)))

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(SWAP_CLIENTS)]
    for thread in threads:
        thread.start()
    published = {}  # version -> when its load call returned (it takes traffic from then on)
    load_seconds = []
    try:
        wait_until(lambda: all(answers), 10, what="an answer for every client")
        for version in range(2, LAST_VERSION + 1):
            add_version(folder, version)
            asked_at = time.monotonic()
            status, body = http_call(server.http_address, "POST",
                                     "/v2/repository/models/swap/load", {})
            published[version] = time.monotonic()
            load_seconds.append(published[version] - asked_at)
            assert (status, body) == (200, {}), (version, status, body)
        time.sleep(0.3)  # the last version serves for a while
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=RPC_TIMEOUT_S + 5)
    assert not any(thread.is_alive() for thread in threads), "a client is still waiting"

    total = sum(len(a) for a in answers)
    print(f"\nswap: {total} answers from {SWAP_CLIENTS} clients over {LAST_VERSION - 1} swaps; "
          f"load calls took {min(load_seconds):.2f}-{max(load_seconds):.2f} s")
    assert not failures, f"{len(failures)} of {total + len(failures)} requests failed: " \
                         f"{failures[:10]}"
    # load_sleep_ms=200: the call returned after the new version had loaded, not before.
    assert min(load_seconds) >= 0.2, load_seconds
    seen = {version for client_answers in answers for _, version in client_answers}
    assert seen == set(range(1, LAST_VERSION + 1)), f"versions answering: {sorted(seen)}"
    for index, client_answers in enumerate(answers):
        for sent_at, version in client_answers:
            # Once a version is published, no request sent afterwards reaches an older one.
            newest = max([v for v, at in published.items() if at <= sent_at], default=1)
            assert version >= newest, (
                f"client {index}: a request sent after version {newest} was published was "
                f"answered by version {version}")
        assert client_answers[-1][1] == LAST_VERSION, (index, client_answers[-5:])
    # Newest only (the default version_policy): the old versions are gone.
    stub = stubs[0]
    assert answered_version(stub, "swap", str(LAST_VERSION)) == str(LAST_VERSION)
    assert grpc_answer(stub, "swap", version="1") == grpc.StatusCode.NOT_FOUND
    assert grpc_answer(stub, "swap", version=str(LAST_VERSION - 1)) == grpc.StatusCode.NOT_FOUND


# --- 2. poll mode ------------------------------------------------------------------------------

POLL_PERIODS_S = 3.5  # "within a few poll periods" of --repository-poll-secs=1


def test_poll_mode_applies_repository_changes(launch, tmp_path):
    repository = tmp_path / "repo"
    p_folder = write_fake_model(repository, "p", versions=(1,))
    server = launch(repository, ["--model-control-mode=poll", "--repository-poll-secs=1"])
    stub = make_stub(server.channel())
    http = server.http_address
    assert answered_version(stub, "p") == "1"

    # Load and unload are off in poll mode; the index (read-only) is not.
    for path in ("/v2/repository/models/p/load", "/v2/repository/models/p/unload"):
        status, body = http_call(http, "POST", path, {})
        assert status == 503 and "model control is off" in body["error"], (path, status, body)
    status, body = http_call(http, "POST", "/v2/repository/index", {})
    assert status == 200 and {"name": "p", "version": "1", "state": "READY", "reason": ""} in body, body

    # A new model folder is loaded.
    add_model_atomically(repository, "q")
    _, waited = wait_until(lambda: grpc_answer(stub, "q") != grpc.StatusCode.NOT_FOUND
                           and model_ready(stub, "q"), POLL_PERIODS_S, what="model q served")
    version, output = grpc_answer(stub, "q")
    assert version == "1" and output.shape == (1, 4)
    print(f"\npoll: new model served after {waited:.2f} s")

    # A new version folder is loaded and, newest only, replaces version 1.
    add_version(p_folder, 2)
    wait_until(lambda: answered_version(stub, "p") == "2", POLL_PERIODS_S, what="p version 2")
    wait_until(lambda: grpc_answer(stub, "p", "1") == grpc.StatusCode.NOT_FOUND,
               POLL_PERIODS_S, what="p version 1 unloaded")
    assert model_ready(stub, "p", "2") and not model_ready(stub, "p", "1")

    # A removed version folder: that version is unloaded, the newest remaining one serves.
    # Meanwhile p keeps answering (version 2, then 1), never an error.
    shutil.rmtree(p_folder / "2")
    during = []

    def serving_version_1():
        during.append(answered_version(stub, "p"))
        return during[-1] == "1"

    wait_until(serving_version_1, POLL_PERIODS_S, interval=0.02, what="p version 1 serving")
    assert set(during) <= {"1", "2"}, f"p answered {during} while version 2 was removed"
    assert grpc_answer(stub, "p", "2") == grpc.StatusCode.NOT_FOUND
    assert model_ready(stub, "p") and model_ready(stub, "p", "1")
    assert not model_ready(stub, "p", "2")

    # A changed file in a version folder reloads that version.
    reloads = server.log.count("model 'p' version 1 is ready")
    (p_folder / "1" / "weights.bin").write_bytes(b"new weights")
    wait_until(lambda: server.log.count("model 'p' version 1 is ready") > reloads,
               POLL_PERIODS_S, what="p version 1 reloaded after a file changed")
    assert answered_version(stub, "p") == "1"

    # A changed config.pbtxt reloads the model: identity -> batch_size (INT64 [rows, 1]).
    write_atomically(p_folder / "config.pbtxt", fake_config("p", behavior="batch_size"))

    def batch_size_output():
        answer = grpc_answer(stub, "p", rows=3)
        return isinstance(answer, tuple) and answer[1].dtype == np.int64 \
            and answer[1].tolist() == [[3], [3], [3]]

    wait_until(batch_size_output, POLL_PERIODS_S, what="p reloaded with behavior batch_size")

    # A broken config.pbtxt: the serving version stays, the log says why.
    write_atomically(p_folder / "config.pbtxt",
                     fake_config("p", behavior="batch_size") + "not_a_field: 7\n")
    server.wait_for_log(r"model 'p' could not be reloaded.*not_a_field", timeout=POLL_PERIODS_S)
    assert model_ready(stub, "p")
    assert batch_size_output()
    assert http_status(http, "/v2/models/p/ready") == 200
    assert http_status(http, "/v2/health/ready") == 200

    # A removed model folder: the model is unloaded.
    shutil.rmtree(repository / "q")
    wait_until(lambda: grpc_answer(stub, "q") == grpc.StatusCode.NOT_FOUND, POLL_PERIODS_S,
               what="model q unloaded")
    assert not model_ready(stub, "q")
    status, _ = http_infer(http, "q", np.zeros((1, 4)))
    assert status == 404
    assert batch_size_output()  # p is untouched


def test_sighup_rescans_at_once_in_poll_mode(launch, tmp_path):
    repository = tmp_path / "repo"
    write_fake_model(repository, "p")
    server = launch(repository, ["--model-control-mode=poll", "--repository-poll-secs=3600"])
    stub = make_stub(server.channel())
    add_model_atomically(repository, "late")
    time.sleep(0.5)
    assert grpc_answer(stub, "late") == grpc.StatusCode.NOT_FOUND  # no rescan for an hour
    server.send_signal(signal.SIGHUP)
    _, waited = wait_until(lambda: isinstance(grpc_answer(stub, "late"), tuple), 2.0,
                           what="model 'late' served after SIGHUP")
    assert "received SIGHUP" in server.log
    assert model_ready(stub, "late") and server.running()
    print(f"\nSIGHUP: new model served after {waited:.2f} s")


# --- 3. explicit mode: the repository API through Triton's clients ----------------------------


def test_repository_api_in_explicit_mode(launch, tmp_path):
    repository = tmp_path / "repo"
    write_fake_model(repository, "gamma")
    write_fake_model(repository, "broken", load_error="no weights here")
    server = launch(repository, ["--model-control-mode=explicit"])
    http = server.http_address

    # The gRPC side, with tritonclient.grpc (a child process; see lifecycle_helpers.py).
    problems = run_grpc_child("explicit", server.address, repository)

    # The HTTP side, with tritonclient.http.
    client = httpclient.InferenceServerClient(http, network_timeout=30.0)
    repo_client = HttpRepositoryClient(client, http)
    try:
        index = {(m["name"], m["version"]): m for m in client.get_model_repository_index()}
        assert index[("gamma", "1")]["state"] == "READY", index
        assert index[("broken", "1")]["state"] == "UNAVAILABLE", index
        assert "no weights here" in index[("broken", "1")]["reason"], index
        # {"ready": true} lists only what serves.
        assert [(m["name"], m["version"], m["state"]) for m in repository_index(http, True)] \
            == [("gamma", "1", "READY")]

        def infer():
            x = np.array([[1, 2, 3, 4]], np.float32)
            tensor = httpclient.InferInput("INPUT0", [1, 4], "FP32")
            tensor.set_data_from_numpy(x)
            result = client.infer("gamma", [tensor])
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)

        def expect_error(call, status, *fragments):
            with pytest.raises(InferenceServerException) as info:
                call()
            message = info.value.message() or ""
            if status is not None:
                assert info.value.status() == status, (info.value.status(), message)
            for fragment in fragments:
                assert fragment in message, f"{message!r} does not mention {fragment!r}"
            return message

        infer()
        repo_client.unload("gamma")
        assert not client.is_model_ready("gamma")
        expect_error(infer, "404", "gamma")
        entries = [m for m in client.get_model_repository_index() if m["name"] == "gamma"]
        assert entries == [{"name": "gamma", "version": "", "state": "UNAVAILABLE",
                            "reason": "unloaded"}], entries
        expect_error(lambda: repo_client.unload("gamma"), "404", "gamma")
        client.load_model("gamma")
        assert client.is_model_ready("gamma")
        infer()
        expect_error(lambda: client.load_model("no_such_model"), "404", "no_such_model")
        # A config override (Triton's "parameters") is refused; so is any other parameter.
        expect_error(lambda: client.load_model("gamma", config='{"max_batch_size": 2}'),
                     "400", "parameter")
        status, body = http_call(http, "POST", "/v2/repository/models/gamma/load",
                                 {"parameters": {"config": "{}"}})
        assert status == 400 and "parameters" in body["error"], (status, body)
        assert client.is_model_ready("gamma")

        # A load whose config is broken fails with the reason; the loaded version serves on.
        config = repository / "gamma" / "config.pbtxt"
        good = config.read_text()
        config.write_text(good + "nonsense_field: 1\n")
        expect_error(lambda: client.load_model("gamma"), None, "nonsense_field")
        assert client.is_model_ready("gamma")
        infer()
        (entry,) = [m for m in client.get_model_repository_index() if m["name"] == "gamma"]
        assert entry["state"] == "READY" and "nonsense_field" in entry["reason"], entry
        assert "could not be reloaded" in server.log
        config.write_text(good)

        # A broken model that never served: the load fails with its reason, still not ready.
        expect_error(lambda: client.load_model("broken"), None, "no weights here")
        assert not client.is_model_ready("broken")

        # SIGHUP in explicit mode is logged and ignored: a new folder is not loaded by it.
        write_fake_model(repository, "delta")
        server.send_signal(signal.SIGHUP)
        server.wait_for_log(r"received SIGHUP", timeout=5)
        time.sleep(0.3)
        assert server.running()
        assert not client.is_model_ready("delta")
        (entry,) = [m for m in client.get_model_repository_index() if m["name"] == "delta"]
        assert (entry["version"], entry["state"], entry["reason"]) == ("", "UNAVAILABLE",
                                                                        "unloaded"), entry
        client.load_model("delta")  # the API loads a new model folder
        assert client.is_model_ready("delta")
        assert http_infer(http, "delta", np.ones((1, 4)))[0] == 200
        infer()
    finally:
        client.close()
    problems = list(dict.fromkeys(problems + repo_client.problems))  # each once
    assert not problems, "\n".join(problems)


def test_model_control_is_off_and_sighup_ignored_in_none_mode(launch, tmp_path):
    repository = tmp_path / "repo"
    write_fake_model(repository, "gamma")
    server = launch(repository)  # --model-control-mode=none is the default
    problems = run_grpc_child("off", server.address)
    client = httpclient.InferenceServerClient(server.http_address, network_timeout=30.0)
    try:
        index = client.get_model_repository_index()
        if {"name": "gamma", "version": "1", "state": "READY", "reason": ""} not in index:
            problems.append(f"none mode, tritonclient.http index: {index}")
        for name, call in (("load", lambda: client.load_model("gamma")),
                           ("unload", lambda: client.unload_model("gamma"))):
            with pytest.raises(InferenceServerException) as info:
                call()
            if info.value.status() != "503" or "model control is off" not in info.value.message():
                problems.append(f"none mode, tritonclient.http {name}: "
                                f"{info.value.status()} {info.value.message()}")
        # The same calls without parameters.
        for path in ("/v2/repository/models/gamma/load", "/v2/repository/models/gamma/unload"):
            status, body = http_call(server.http_address, "POST", path, {})
            assert status == 503 and "model control is off" in body["error"], (path, body)
        write_fake_model(repository, "delta")
        server.send_signal(signal.SIGHUP)
        server.wait_for_log(r"received SIGHUP", timeout=5)
        time.sleep(0.3)
        assert server.running()
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("gamma") and not client.is_model_ready("delta")
    finally:
        client.close()
    problems = list(dict.fromkeys(problems))
    assert not problems, "\n".join(problems)


# --- 4. watchdog ---------------------------------------------------------------------------------


def stuck_repository(tmp_path):
    repository = tmp_path / "repo"
    write_fake_model(repository, "stuck", max_batch_size=0, dynamic_batching=False,
                     sleep_ms=30000)
    write_fake_model(repository, "fine")
    return repository


def stuck_request():
    return make_request("stuck", [("INPUT0", np.ones(4, np.float32))])


def test_watchdog_reports_a_stuck_run_not_live(launch, tmp_path):
    server = launch(stuck_repository(tmp_path), ["--watchdog-seconds=1"])
    http = server.http_address
    stub = make_stub(server.channel())
    assert http_status(http, "/v2/health/live") == 200
    future = stub.ModelInfer.future(stuck_request(), timeout=60)
    sent_at = time.monotonic()
    try:
        probes = []  # (seconds since the request was sent, live status)
        while True:
            status = http_status(http, "/v2/health/live")
            probes.append((time.monotonic() - sent_at, status))
            if status != 200 or probes[-1][0] > 5:
                break
            time.sleep(0.1)
        elapsed, status = probes[-1]
        print(f"\nwatchdog: live turned {status} {elapsed:.2f} s after the request was sent")
        assert status == 503, probes
        # Within about 1 s of crossing --watchdog-seconds=1, and not before it.
        assert 1.0 <= elapsed <= 2.3, probes
        assert http_status(http, "/v2/health/ready") == 503
        assert http_status(http, "/v2/models/stuck/ready") != 200
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live is False
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S).ready is False
        assert model_ready(stub, "stuck") is False
        print(f"watchdog: the other model's ModelReady is {model_ready(stub, 'fine')}")
        server.wait_for_log(r"an instance has been inside one run", timeout=2)
        assert server.running()  # unsupervised: reports, keeps running
    finally:
        future.cancel()
        # A stuck run cannot be drained: kill it, as the liveness probe's restart would.
        server.proc.kill()
        server.wait()


def test_supervised_modeld_exits_3_on_a_stuck_run(launch, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELD_SUPERVISED", "1")  # what modeld-supervisor sets
    server = launch(stuck_repository(tmp_path), ["--watchdog-seconds=1"])
    future = make_stub(server.channel()).ModelInfer.future(stuck_request(), timeout=60)
    sent_at = time.monotonic()
    try:
        wait_until(lambda: not server.running(), 5.0, interval=0.02,
                   what="the supervised modeld exiting")
        elapsed = time.monotonic() - sent_at
        print(f"\nwatchdog: supervised modeld exited {elapsed:.2f} s after the request was sent")
        assert server.wait() == 3, server.log
        assert 1.0 <= elapsed <= 2.5, elapsed
        assert "an instance has been inside one run" in server.log
    finally:
        future.cancel()


# --- 5. SIGTERM while loading ---------------------------------------------------------------


def test_sigterm_while_loading_exits_promptly(launch, tmp_path):
    repository = tmp_path / "repo"
    for i in range(5):
        write_fake_model(repository, f"slow_load_{i}", load_sleep_ms=1000)
    started = time.monotonic()
    server = launch(repository, wait=False)
    server.wait_for_output(timeout=10)  # main() runs, the stop handlers are installed
    time.sleep(max(0.0, started + 0.5 - time.monotonic()))
    signalled_at = time.monotonic()
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=EXIT_TIMEOUT_S)
    total = time.monotonic() - started
    print(f"\nSIGTERM at {signalled_at - started:.2f} s while loading: exited {code} "
          f"{total:.2f} s after start (all models would take 5 s)")
    assert code == 0, server.log
    # The version being loaded at the signal finishes (1 s at most), nothing more: about 2.5 s
    # from start, against 5 s for all models. Measured from the signal, so that a slow process
    # start on a busy machine does not count.
    assert total - (signalled_at - started) <= 2.0, (total, server.log)
    assert "shutting down" in server.log
    assert "modeld is ready" not in server.log
    loaded = len(re.findall(r"model 'slow_load_\d' version 1 is ready", server.log))
    assert loaded < 5, server.log


# --- 6. SIGTERM under load -------------------------------------------------------------------

DRAIN_CLIENTS = 16


def test_sigterm_under_load_answers_every_request(launch, tmp_path):
    repository = tmp_path / "repo"
    write_fake_model(repository, "slow", sleep_ms=50)  # max_batch_size 8, dynamic batching
    server = launch(repository)
    stubs = [make_stub(server.channel()) for _ in range(4)]
    records = []  # (client, sent_at, done_at, outcome, details)
    lock = threading.Lock()
    signalled = threading.Event()
    signalled_at = []

    def client(index):
        stub = stubs[index % len(stubs)]
        sequence = 0
        while True:
            sequence += 1
            x = np.array([[index, sequence, 0.5, -1]], np.float32)
            sent_at = time.monotonic()
            try:
                response = stub.ModelInfer(make_request("slow", [("INPUT0", x)]),
                                           timeout=RPC_TIMEOUT_S)
                output = decode_response(response)["OUTPUT0"]
                outcome = "ok" if np.array_equal(output, x) else "wrong answer"
                details = ""
            except grpc.RpcError as error:
                outcome, details = error.code().name, error.details() or ""
            with lock:
                records.append((index, sent_at, time.monotonic(), outcome, details))
            if outcome != "ok":
                return  # refused: a real client would go elsewhere now

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(DRAIN_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(0.8)
    signalled_at.append(time.monotonic())
    signalled.set()
    server.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=RPC_TIMEOUT_S + 5)
    assert not any(thread.is_alive() for thread in threads), "an RPC never returned"
    code = server.wait(timeout=EXIT_TIMEOUT_S)
    sig = signalled_at[0]

    before = [r for r in records if r[1] < sig]
    in_flight = [r for r in before if r[2] >= sig]
    after = [r for r in records if r[1] >= sig]
    outcomes = {}
    for r in records:
        key = r[3] if r[3] == "ok" else f"{r[3]}: {r[4]}"
        outcomes[key] = outcomes.get(key, 0) + 1
    print(f"\nSIGTERM under load: {len(records)} requests, {len(in_flight)} in flight at the "
          f"signal, outcomes {outcomes}")
    last_ok = max(r[2] for r in records if r[3] == "ok")
    print(f"  the last result came {last_ok - sig:+.3f} s after SIGTERM")
    for r in sorted(records, key=lambda r: r[1]):
        if r[3] != "ok":
            print(f"  client {r[0]:2d} sent {r[1] - sig:+.3f} s: {r[3]} {r[4][:70]}")
    assert code == 0, server.log
    assert not [r for r in records if r[3] == "wrong answer"]
    # Every answer modeld gave is a correct result or UNAVAILABLE "shutting down". A request
    # sent after the signal may also never reach modeld: the port is closed (refused), or gRPC
    # cancels a call that was still arriving as its server shut down (CANCELLED). Neither was
    # accepted, so neither was lost.
    refused = [r for r in after
               if (r[3] == "UNAVAILABLE" and "Connection refused" in r[4]) or r[3] == "CANCELLED"]
    bad = [r for r in records
           if r[3] != "ok" and r not in refused
           and not (r[3] == "UNAVAILABLE" and "shutting down" in r[4])]
    assert not bad, "answered neither with a result nor UNAVAILABLE 'shutting down': " + \
        "; ".join(f"client {r[0]} sent {r[1] - sig:+.3f} s after SIGTERM: {r[3]} {r[4]!r}"
                  for r in bad)
    # Accepted before the signal (sent at least 0.1 s before it): answered with the result.
    accepted = [r for r in before if r[1] < sig - 0.1]
    assert accepted and all(r[3] == "ok" for r in accepted), \
        [r for r in accepted if r[3] != "ok"]
    assert len([r for r in in_flight if r[3] == "ok"]) >= 8, in_flight
    assert "shutting down" in server.log


# --- 7. memory over load/unload cycles -------------------------------------------------------

MEMORY_CYCLES = 20


@pytest.mark.measures_memory
def test_unloaded_memory_goes_back_over_20_cycles(launch, tmp_path, example_repository):
    repository = tmp_path / "repo"
    shutil.copytree(example_repository / "mlp", repository / "mlp")
    config = repository / "mlp" / "config.pbtxt"
    config.write_text(config.read_text().replace("count: 1", "count: 2"))
    assert "count: 2" in config.read_text()
    server = launch(repository, ["--model-control-mode=explicit"])
    http = server.http_address
    pid = server.proc.pid
    x = np.linspace(-1, 1, 4 * 256, dtype=np.float32).reshape(4, 256)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4, 256],
                        "data": x.ravel().tolist()}]}

    def call(action):
        status, reply = http_call(http, "POST", f"/v2/repository/models/mlp/{action}", {})
        assert (status, reply) == (200, {}), (action, status, reply)

    call("unload")
    rss = {}
    for cycle in range(1, MEMORY_CYCLES + 1):
        call("load")
        for _ in range(3):
            status, reply = http_call(http, "POST", "/v2/models/mlp/infer", body)
            assert status == 200, reply
            assert reply["outputs"][0]["shape"] == [4, 10], reply
        if cycle == 1:
            rss["loaded"] = vm_rss_kib(pid)
        call("unload")
        if cycle in (1, MEMORY_CYCLES):
            time.sleep(0.3)  # the unloaded versions drain and are freed
            rss[cycle] = vm_rss_kib(pid)
    assert http_status(http, "/v2/models/mlp/ready") != 200
    growth = (rss[MEMORY_CYCLES] - rss[1]) / rss[1]
    print(f"\nmemory: VmRSS loaded (cycle 1) {rss['loaded']} KiB, after the 1st unload "
          f"{rss[1]} KiB, after the {MEMORY_CYCLES}th {rss[MEMORY_CYCLES]} KiB "
          f"({growth:+.1%})")
    assert growth < 0.10, rss
