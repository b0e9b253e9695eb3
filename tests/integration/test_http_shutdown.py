"""Graceful drain over HTTP: on SIGTERM, ready turns 503 and new inference is refused while an
in-flight HTTP request still gets its answer; then the HTTP port closes and modeld exits 0."""

import signal
import socket
import threading
import time

import pytest

from http_helpers import HttpClient

SLOW_CONFIG = """\
backend: "fake"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 2 ] } ]
parameters { key: "behavior" value { string_value: "sleep" } }
parameters { key: "sleep_ms" value { string_value: "3000" } }
"""
WAIT_S = 20.0
INFER = {"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP32", "data": [1.5, -2.0]}]}


def wait_until(condition, what):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def test_sigterm_drains_http(launch, tmp_path):
    repository = tmp_path / "repo"
    (repository / "slow" / "1").mkdir(parents=True)
    (repository / "slow" / "config.pbtxt").write_text(SLOW_CONFIG)
    server = launch(repository)
    address = server.http_address

    answer = {}

    def in_flight():
        client = HttpClient(address)
        reply = client.post("/v2/models/slow/infer", INFER)
        answer["status"], answer["body"] = reply.status, reply.json()
        client.close()

    worker = threading.Thread(target=in_flight)
    worker.start()
    watcher = HttpClient(address)
    inflight_line = 'modeld_inflight_requests{model="slow",version="1"} 1'
    wait_until(lambda: inflight_line in watcher.get("/metrics").body.decode(),
               "the request to be in flight")

    server.send_signal(signal.SIGTERM)
    wait_until(lambda: watcher.get("/v2/health/ready").status == 503, "ready to turn 503")
    refused = watcher.post("/v2/models/slow/infer", INFER)
    assert refused.status == 503, refused.body
    assert "shutting down" in refused.error()
    assert watcher.get("/v2/health/live").status == 200

    worker.join(timeout=WAIT_S)
    assert not worker.is_alive()
    assert answer["status"] == 200, answer
    assert answer["body"]["outputs"][0]["data"] == [1.5, -2.0]
    assert server.wait(timeout=WAIT_S) == 0, server.log
    host, port = address.rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()
    watcher.close()
