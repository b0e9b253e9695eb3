"""One client shared by threads and across os.fork(); HTTP keep-alive reconnection."""

from __future__ import annotations

import concurrent.futures
import json
import os
import select
import signal
import socket
import threading
import time

import numpy as np
import pytest
from client_support import count_calls, stop_server
from modeld_server import ServerProcess, start_server

import modeld

W = np.array([[0.5], [-1.25], [2.0]], dtype=np.float32)
B = np.array([0.75], dtype=np.float32)


def linear_v2(x):
    return np.asarray(x, dtype=np.float32) @ (2 * W) + 2 * B


def test_many_threads_share_one_client(client):
    threads, rounds = 16, 15
    barrier = threading.Barrier(threads)

    def work(index):
        barrier.wait(timeout=10)
        for round_ in range(rounds):
            value = float(index * 100 + round_)
            rows = 1 + (index + round_) % 3
            x = np.full((rows, 7), value, dtype=np.float32)
            y = client.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"]
            np.testing.assert_array_equal(y, x)
            np.testing.assert_allclose(client.predict("linear", [[value, 1.0, 0.0]]),
                                       linear_v2([[value, 1.0, 0.0]]))
        return index

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(work, i) for i in range(threads)]
        assert sorted(f.result(timeout=60) for f in futures) == list(range(threads))


def _read_all(fd, timeout):
    """Reads `fd` to EOF, waiting at most `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the child did not finish in time")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _reap(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        select.select([], [], [], 0.01)  # a short bounded pause between polls
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the child did not exit")


def _hammer(client, offset, count=40):
    """`count` predictions with distinct inputs; returns the mismatches."""
    wrong = []
    for i in range(count):
        x = [[float(offset + i), 2.0, -1.0]]
        y = client.predict("linear", x)
        if not np.allclose(y, linear_v2(x)):
            wrong.append((x, y.tolist()))
    return wrong


def test_client_survives_fork(client):
    """The parent uses the client, forks; child and parent then use the same client object at
    the same time. The child must make its own connection (a gRPC channel inherited across
    fork fails with 'Bad file descriptor'; an inherited HTTP socket would mix the answers of
    both processes)."""
    assert not _hammer(client, 0, 5)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(reader)
            report = {"wrong": _hammer(client, 10_000), "live": client.live(),
                      "mlp": client.metadata("mlp")["name"]}
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            report = {"error": repr(error)}
            code = 1
        try:
            os.write(writer, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(writer)
    try:
        wrong_in_parent = _hammer(client, 20_000)
        report = json.loads(_read_all(reader, 60) or b"{}")
    finally:
        os.close(reader)
        exit_code = _reap(pid)
    assert "error" not in report, report
    assert report == {"wrong": [], "live": True, "mlp": "mlp"}
    assert exit_code == 0
    assert wrong_in_parent == []
    assert client.live()  # the parent's connection still works after the child exited
    assert not _hammer(client, 30_000, 5)


def test_client_made_before_fork_and_used_only_in_the_child(url):
    client = modeld.Client(url, timeout=20)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            os.write(writer, json.dumps(client.predict("linear", [[1, 1, 1]]).tolist()).encode())
        finally:
            os._exit(0)
    os.close(writer)
    try:
        result = json.loads(_read_all(reader, 60) or b"null")
    finally:
        os.close(reader)
        _reap(pid)
    np.testing.assert_allclose(result, linear_v2([[1, 1, 1]]))
    np.testing.assert_allclose(client.predict("linear", [[1, 1, 1]]), result)
    client.close()


def _this_threads_socket(client):
    state = client._transport._local.state
    assert state is not None and state[0] == os.getpid()
    return state[1].sock


def test_http_reconnects_when_the_kept_alive_connection_was_closed(server):
    with modeld.Client(f"http://{server.http_address}", retries=0) as client:
        assert client.live()
        first = _this_threads_socket(client)
        first.shutdown(socket.SHUT_RDWR)  # as if the connection had died while idle
        calls = count_calls(client, "live")
        assert client.live()  # no retry budget: the transport reconnects by itself
        assert len(calls) == 1
        assert _this_threads_socket(client) is not first


def test_http_reconnects_after_the_server_idle_timeout(fake_repository):
    process = start_server(fake_repository, ["--http-idle-timeout-seconds=1"])
    try:
        with modeld.Client(f"http://{process.http_address}", retries=0, timeout=10) as client:
            np.testing.assert_array_equal(client.predict("id_int32", [[1, 2]]), [[1, 2]])
            sock = _this_threads_socket(client)
            # wait (bounded) until the server has closed the idle connection: EOF is readable
            readable, _, _ = select.select([sock], [], [], 10)
            assert readable, "the server did not close the idle connection"
            assert sock.recv(1, socket.MSG_PEEK) == b""
            np.testing.assert_array_equal(client.predict("id_int32", [[3, 4]]), [[3, 4]])
            assert _this_threads_socket(client) is not sock
    finally:
        stop_server(process)


@pytest.mark.parametrize("transport", ["grpc"])
def test_one_grpc_channel_per_client(client):
    for _ in range(3):
        client.live()
    channel_state = client._transport._channel._state
    assert channel_state is not None
    threads = [threading.Thread(target=client.live) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert client._transport._channel._state is channel_state


# Not over Redis: there a stopped modeld leaves calls queued, not refused (test_redis.py
# restarts Redis instead).
@pytest.mark.parametrize("transport", ["grpc", "http"], indirect=True)
def test_client_recovers_when_the_server_restarts(fake_repository, transport):
    """Calls fail with Unavailable while the server is down and succeed (by retrying) once a
    new server listens on the same address: the client reconnects by itself."""
    first = start_server(fake_repository)
    address = first.address if transport == "grpc" else first.http_address
    client = modeld.Client(f"{transport}://{address}", retries=0, timeout=10)
    try:
        np.testing.assert_array_equal(client.predict("id_int32", [[1]]), [[1]])
    finally:
        stop_server(first)
    with pytest.raises(modeld.Unavailable):
        client.predict("id_int32", [[2]])
    second = ServerProcess(fake_repository, address=first.address,
                           http_address=first.http_address)
    try:
        second.wait_until_listening()
        second.wait_until_ready()
        client._policy.retries = 100  # retried until the channel (or connection) is back
        started = time.monotonic()
        np.testing.assert_array_equal(client.predict("id_int32", [[4]]), [[4]])
        assert time.monotonic() - started < 5.0  # gRPC's reconnect backoff is at most 1 s
    finally:
        client.close()
        stop_server(second)
