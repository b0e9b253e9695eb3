"""A bad deploy of one version never moves traffic to another (docs/operations.md, "Reloading").

The example `linear` serves versions 1 and 2 (different weights). Version 2's model file is
overwritten with random bytes, as a broken deploy would. In poll mode and in explicit mode,
with requests running throughout:
- every request that names no version is still answered by version 2, with version 2's result
  (the copy loaded before keeps serving it), and the failure is reported: the log, the
  repository index, /metrics, and an explicit load answers an error;
- a change to another version (deleting version 1) still goes through while version 2 fails;
- once version 2's file is good again, the next reload loads it and the report goes.
"""

import shutil
import threading

import numpy as np
import pytest

from lifecycle_helpers import http_call, repository_index, wait_until

X = [[1.0, 2.0, 3.0]]
TIMEOUT_S = 30.0


def infer(address, version=None):
    path = "/v2/models/linear" + (f"/versions/{version}" if version else "") + "/infer"
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                        "data": [v for row in X for v in row]}]}
    return http_call(address, "POST", path, body)


class Traffic:
    """Requests naming no version, sent one after another on a thread until stop(); every
    answer is kept."""

    def __init__(self, address):
        self.address = address
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.answers.append(infer(self.address))

    def answered_more(self, count=3):
        """Waits until `count` more answers have come: requests ran at this stage too."""
        target = len(self.answers) + count
        wait_until(lambda: len(self.answers) >= target, TIMEOUT_S, what=f"{count} more answers")

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=TIMEOUT_S)
        assert not self._thread.is_alive()
        return self.answers


def version_index(address):
    """The repository index's entries of `linear`, by version (explicit mode only)."""
    return {entry.get("version"): entry for entry in repository_index(address)
            if entry["name"] == "linear"}


def reload_failed_metric(address):
    status, text = http_call(address, "GET", "/metrics")
    assert status == 200
    text = text.decode() if isinstance(text, bytes) else str(text)
    return 'modeld_model_reload_failed{model="linear",version="2"} 1' in text


@pytest.mark.parametrize("mode", ["poll", "explicit"])
def test_a_bad_deploy_of_version_2_keeps_version_2_serving(launch, tmp_path, example_repository,
                                                            mode):
    repository = tmp_path / "models"
    shutil.copytree(example_repository / "linear", repository / "linear")
    args = ["--model-control-mode", mode]
    if mode == "poll":
        args += ["--repository-poll-secs", "1"]
    server = launch(repository, args)
    address = server.http_address

    status, good = infer(address)
    assert status == 200, good
    assert good["model_version"] == "2"
    expected = good["outputs"][0]["data"]
    status, one = infer(address, version=1)
    assert status == 200 and one["outputs"][0]["data"] != expected, one

    def reload():
        """Applies the repository as it is now: the next scan, or an explicit load."""
        if mode == "explicit":
            return http_call(address, "POST", "/v2/repository/models/linear/load", {})
        server.wait_for_log(r"model 'linear': loading changes", timeout=TIMEOUT_S)
        return None

    traffic = Traffic(address)
    try:
        model_file = repository / "linear" / "2" / "model.pt"
        good_bytes = model_file.read_bytes()
        model_file.write_bytes(np.random.default_rng(7).bytes(4096))
        answer = reload()
        if answer is not None:  # explicit: the load answers the failure
            assert answer[0] == 503, answer
            assert "version 2" in answer[1]["error"], answer
            assert "keep serving" in answer[1]["error"], answer
        server.wait_for_log(r"version 2 could not be reloaded; the copy loaded before keeps "
                            r"serving it", timeout=TIMEOUT_S)
        if mode == "explicit":  # the repository index is part of the explicit mode's API
            index = version_index(address)
            assert index["2"]["state"] == "READY", index
            assert "PytorchStreamReader" in index["2"]["reason"], index  # why it failed
        # The log line comes while the reload runs; the state is published when it ends.
        wait_until(lambda: reload_failed_metric(address), TIMEOUT_S,
                   what="modeld_model_reload_failed reporting version 2")
        assert http_call(address, "GET", "/v2/models/linear/versions/2/ready")[0] == 200
        traffic.answered_more()

        # Another version's change goes through while version 2 still fails.
        shutil.rmtree(repository / "linear" / "1")
        if mode == "explicit":
            answer = reload()
            assert answer[0] == 503, answer  # version 2 is retried and fails again
        wait_until(lambda: infer(address, version=1)[0] == 404, TIMEOUT_S,
                   what="version 1 being unloaded")
        traffic.answered_more()

        # Fixed: the next reload loads version 2 again, and the report goes.
        model_file.write_bytes(good_bytes)
        if mode == "explicit":
            answer = reload()
            assert answer[0] == 200, answer
        wait_until(lambda: not reload_failed_metric(address), TIMEOUT_S,
                   what="the reload failure clearing")
        if mode == "explicit":
            assert version_index(address)["2"]["reason"] == "", version_index(address)
        traffic.answered_more()
    finally:
        answers = traffic.stop()

    for status, body in answers:
        assert status == 200, body
        assert body["model_version"] == "2", body
        assert body["outputs"][0]["data"] == expected, body
