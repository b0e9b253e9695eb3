"""Helpers for test_lifecycle.py: fake-backend repositories, waits, HTTP probes, VmRSS.

Imports only the standard library and numpy at module level, so it is safe next to both
modeld's generated stubs (infer_helpers) and tritonclient.

Run as a script it is the tritonclient.grpc half of the repository-API test, in a child
process (tritonclient.grpc and modeld's stubs both register `inference.*` protobuf messages
and must not share a process):

    python lifecycle_helpers.py explicit HOST:PORT REPOSITORY   # repository API, explicit mode
    python lifecycle_helpers.py off HOST:PORT                   # model control off

It prints "ok: <check>" per passing check and "passed N checks" at the end; a failed check
raises, so the exit status is non-zero.
"""

import http.client
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HTTP_TIMEOUT_S = 30.0

# A model on modeld's fake backend: OUTPUT0 = INPUT0 (FP32 [4]) unless behavior says otherwise.
FAKE_CONFIG = """\
name: "{name}"
backend: "fake"
max_batch_size: {max_batch_size}
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
{extra}"""


def fake_config(name, *, max_batch_size=8, dynamic_batching=True, version_policy=None,
                **parameters):
    """config.pbtxt text of a fake model; keyword arguments become string parameters."""
    extra = []
    if version_policy:
        extra.append(f"version_policy: {version_policy}\n")
    if dynamic_batching:
        extra.append("dynamic_batching { }\n")
    for key, value in parameters.items():
        extra.append(f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}\n')
    return FAKE_CONFIG.format(name=name, max_batch_size=max_batch_size, extra="".join(extra))


def write_fake_model(repository, name, versions=(1,), **config):
    """Creates <repository>/<name>/config.pbtxt and the (empty) version folders."""
    folder = Path(repository) / name
    folder.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (folder / str(version)).mkdir(exist_ok=True)
    (folder / "config.pbtxt").write_text(fake_config(name, **config))
    return folder


def add_version(model_folder, version):
    """Adds a version folder the way docs/operations.md says: built aside, renamed in place."""
    partial = Path(model_folder) / f".{version}.partial"
    partial.mkdir()
    (partial / "weights.bin").write_bytes(os.urandom(64))
    partial.rename(Path(model_folder) / str(version))


def wait_until(predicate, timeout, interval=0.05, what="the condition"):
    """Polls predicate() until it returns a truthy value; returns (value, seconds waited)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.1f} s")
        time.sleep(interval)


# --- HTTP (one short-lived connection per call: probes must not share a keep-alive socket
# with a server that may stop answering) -----------------------------------------------------


def http_call(address, method, path, body=None, timeout=HTTP_TIMEOUT_S):
    """(status, parsed JSON or raw bytes); raises OSError when nothing answers."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        payload = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, path, body=payload)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data
    finally:
        conn.close()


def http_status(address, path, timeout=2.0):
    """The status of GET path; None when the connection fails."""
    try:
        return http_call(address, "GET", path, timeout=timeout)[0]
    except OSError:
        return None


def http_infer(address, model, array, version=None):
    """(status, body) of a KServe JSON inference with INPUT0 = array (FP32, [rows, 4])."""
    array = np.asarray(array, np.float32)
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": list(array.shape),
                        "data": array.ravel().tolist()}]}
    return http_call(address, "POST", path, body)


def repository_index(address, ready=None):
    body = {} if ready is None else {"ready": ready}
    status, reply = http_call(address, "POST", "/v2/repository/index", body)
    assert status == 200, (status, reply)
    return reply


# --- memory ------------------------------------------------------------------------------------


def vm_rss_kib(pid):
    """VmRSS of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


# --- the tritonclient.grpc child ------------------------------------------------------------

def _grpc_main(argv):
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import service_pb2
    from tritonclient.grpc._utils import raise_error_grpc
    from tritonclient.utils import InferenceServerException

    mode, address = argv[0], argv[1]
    client = grpcclient.InferenceServerClient(address)
    # Differences found on the way that do not stop the remaining checks; any makes the exit
    # status non-zero.
    problems = []

    def expect_error(call, status, *fragments):
        try:
            call()
        except InferenceServerException as error:
            message = error.message() or ""
            if status is not None:
                assert error.status() == f"StatusCode.{status}", (error.status(), message)
            for fragment in fragments:
                assert fragment in message, f"{message!r} does not mention {fragment!r}"
            return message
        raise AssertionError(f"expected InferenceServerException {status}, got no error")

    def unload(name):
        """tritonclient's unload_model (which always sends parameters {unload_dependents:
        false}); if modeld refuses that parameter, the refusal is recorded and the unload is
        sent again without it, so that the other checks still run."""
        try:
            client.unload_model(name)
            return
        except InferenceServerException as error:
            if error.status() != "StatusCode.INVALID_ARGUMENT":
                raise
            problems.append(f"tritonclient.grpc unload_model({name!r}) refused: {error}")
        try:
            client._client_stub.RepositoryModelUnload(
                service_pb2.RepositoryModelUnloadRequest(model_name=name), timeout=30)
        except grpc.RpcError as rpc_error:
            raise_error_grpc(rpc_error)

    def infer(model):
        x = np.arange(4, dtype=np.float32).reshape(1, 4) + 0.5
        tensor = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(model, [tensor], client_timeout=HTTP_TIMEOUT_S)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
        return result

    def index():
        return {(m.name, m.version): (m.state, m.reason)
                for m in client.get_model_repository_index().models}

    checks = []

    def check(fn):
        checks.append(fn)
        return fn

    if mode == "off":
        @check
        def load_unload_are_off_and_the_index_is_not():
            for call in (lambda: client.load_model("gamma"), lambda: unload("gamma")):
                expect_error(call, "UNAVAILABLE", "model control is off")
            index = client.get_model_repository_index(as_json=True)
            names = [(m["name"], m.get("state")) for m in index.get("models", [])]
            if ("gamma", "READY") not in names:
                problems.append(f"none mode, index: {names}")

        @check
        def tritonclient_unload_is_off_too():
            # The call as tritonclient sends it: "off" must win over any parameter check.
            try:
                expect_error(lambda: client.unload_model("gamma"), "UNAVAILABLE",
                             "model control is off")
            except AssertionError as error:
                problems.append(f"none mode, tritonclient.grpc unload_model: {error}")

    elif mode == "explicit":
        repository = Path(argv[2])

        @check
        def index_lists_models_and_states():
            models = index()
            assert models[("gamma", "1")] == ("READY", ""), models
            assert models[("broken", "1")][0] == "UNAVAILABLE", models
            assert "no weights here" in models[("broken", "1")][1], models

        @check
        def unload_then_not_found():
            assert client.is_model_ready("gamma")
            unload("gamma")
            assert not client.is_model_ready("gamma")
            expect_error(lambda: infer("gamma"), "NOT_FOUND", "gamma")
            models = index()
            assert models.get(("gamma", "")) == ("UNAVAILABLE", "unloaded"), models
            assert ("gamma", "1") not in models, models

        @check
        def load_serves_again():
            client.load_model("gamma")
            assert client.is_model_ready("gamma")
            assert infer("gamma").get_response().model_version == "1"
            assert index()[("gamma", "1")] == ("READY", "")

        @check
        def load_of_a_missing_folder_is_not_found():
            expect_error(lambda: client.load_model("no_such_model"), "NOT_FOUND",
                         "no_such_model")

        @check
        def unload_of_a_model_not_loaded_is_not_found():
            unload("gamma")
            expect_error(lambda: unload("gamma"), "NOT_FOUND", "gamma")
            client.load_model("gamma")
            assert client.is_model_ready("gamma")

        @check
        def parameters_are_invalid_argument():
            expect_error(lambda: client.load_model("gamma", config='{"max_batch_size": 4}'),
                         "INVALID_ARGUMENT", "parameter")
            assert client.is_model_ready("gamma")

        @check
        def broken_reload_keeps_serving():
            config = repository / "gamma" / "config.pbtxt"
            good = config.read_text()
            config.write_text(good + "no_such_field: 1\n")
            try:
                # The contract names no status for a failed load; the reason must be in it.
                message = expect_error(lambda: client.load_model("gamma"), None,
                                       "no_such_field")
                assert "could not be reloaded" in message, message
                assert client.is_model_ready("gamma")
                infer("gamma")
                state, reason = index()[("gamma", "1")]
                assert state == "READY" and "no_such_field" in reason, (state, reason)
            finally:
                config.write_text(good)
            client.load_model("gamma")
            infer("gamma")

    else:
        raise SystemExit(f"unknown mode {mode!r}")

    for fn in checks:
        fn()
        print(f"ok: {fn.__name__}", flush=True)
    print(f"passed {len(checks)} checks", flush=True)
    for problem in problems:
        print(f"problem: {problem}", flush=True)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    _grpc_main(sys.argv[1:])
