"""Every exception the client raises for a real server's error, over gRPC, HTTP and Redis."""

from __future__ import annotations

import pickle
import socket
import threading
import time

import numpy as np
import pytest
from client_support import QUEUE_SLEEP_MS, SLOW_MS, count_calls

import modeld


def expected_code(transport, grpc_code, http_status):
    """The code of an error: a Redis reply carries the gRPC status code."""
    return str(http_status) if transport == "http" else grpc_code


def test_hierarchy():
    for cls in (modeld.ModelNotFound, modeld.InvalidInput, modeld.ServerBusy,
                modeld.DeadlineExceeded, modeld.Unavailable):
        assert issubclass(cls, modeld.ModeldError)
    assert issubclass(modeld.ModeldError, Exception)
    error = modeld.InvalidInput("input 'x' is bad", "400")
    assert str(error) == "input 'x' is bad" and error.message == "input 'x' is bad"
    assert error.code == "400"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is modeld.InvalidInput
    assert copy.code == "400" and copy.message == error.message


def test_unknown_model(client, transport):
    for call in (lambda: client.infer("no_such_model", {"x": [[1.0]]}),
                 lambda: client.predict("no_such_model", [[1.0]]),
                 lambda: client.metadata("no_such_model")):
        with pytest.raises(modeld.ModelNotFound) as info:
            call()
        assert "no_such_model" in info.value.message
        assert "no_such_model" in str(info.value)
        assert info.value.code == expected_code(transport, "NOT_FOUND", 404)


def test_unserved_version(client):
    with pytest.raises(modeld.ModelNotFound, match="version 7"):
        client.predict("linear", [[1.0, 2.0, 3.0]], version=7)


def test_bad_version_string(client):
    with pytest.raises(modeld.InvalidInput, match="version"):
        client.predict("linear", [[1.0, 2.0, 3.0]], version="latest")


def test_wrong_shape(client, transport):
    with pytest.raises(modeld.InvalidInput) as info:
        client.predict("linear", [[1.0, 2.0]])
    assert "shape" in info.value.message and "[1, 2]" in info.value.message
    assert info.value.code == expected_code(transport, "INVALID_ARGUMENT", 400)


def test_wrong_datatype_is_named_by_the_server(client):
    # floats are never cast to integers on the client: the server names the mismatch
    with pytest.raises(modeld.InvalidInput, match="datatype FP64 but model 'int64_bool' "
                                                  "expects INT64"):
        client.infer("int64_bool", {"ids": [[1.5, 2.0]], "mask": [[True, True]]})
    # and numbers are never cast to BOOL
    with pytest.raises(modeld.InvalidInput, match="'mask'.*INT64.*expects BOOL"):
        client.infer("int64_bool", {"ids": [[1, 2]], "mask": [[1, 0]]})


def test_missing_input(client):
    with pytest.raises(modeld.InvalidInput) as info:
        client.infer("add_sub", {"INPUT0": np.zeros(16, np.float32)})
    assert "INPUT1" in info.value.message


def test_unknown_input(client):
    with pytest.raises(modeld.InvalidInput, match="'z'"):
        client.infer("linear", {"z": [[1.0, 2.0, 3.0]]})


def test_unknown_output(client):
    with pytest.raises(modeld.InvalidInput, match="nope"):
        client.infer("linear", {"x": [[1.0, 2.0, 3.0]]}, outputs=["nope"])


def test_predict_needs_one_input_and_one_output(client):
    with pytest.raises(modeld.InvalidInput) as info:
        client.predict("add_sub", np.zeros(16, np.float32))
    for name in ("INPUT0", "INPUT1", "OUTPUT0", "OUTPUT1"):
        assert name in info.value.message


def test_dtype_the_protocol_cannot_carry(client):
    with pytest.raises(modeld.InvalidInput, match="complex"):
        client.infer("linear", {"x": np.ones((1, 3), np.complex64)})


# Not over Redis: the queue has no message size limit of modeld's (Redis allows 512 MB).
@pytest.mark.parametrize("transport", ["grpc", "http"], indirect=True)
def test_oversize_request_is_invalid_input_not_server_busy(client, transport):
    # 65 MiB of FP32: over modeld's default message and body limits (64 MiB). Retrying later
    # cannot help, so it must not look like a full queue.
    x = np.zeros((1, 65 * 1024 * 1024 // 4), np.float32)
    with pytest.raises(modeld.InvalidInput) as info:
        client.infer("identity_fp32", {"INPUT0": x})
    assert info.value.code == expected_code(transport, "RESOURCE_EXHAUSTED", 413)
    assert client.predict("identity_fp32", [[1.0]]).tolist() == [[1.0]]


def test_model_failure_is_model_failed(fake_client, transport):
    with pytest.raises(modeld.ModelFailed) as info:
        fake_client.predict("failing", [1.0])
    assert isinstance(info.value, modeld.ModeldError)
    assert "fake model failure" in info.value.message
    assert info.value.code == expected_code(transport, "INTERNAL", 500)


def test_full_queue_is_server_busy(fake_client):
    """small_queue runs one request at a time and queues at most 2: of 6 sent together, at
    least 3 are refused at once."""
    fake_client.metadata("small_queue")  # cached, so every thread sends its request at once
    count = 6
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def send(i):
        barrier.wait(timeout=10)
        started = time.monotonic()
        try:
            results[i] = fake_client.infer("small_queue", {"x": [[float(i)]]})["y"]
        except modeld.ModeldError as error:
            results[i] = (error, time.monotonic() - started)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    refused = [r for r in results if isinstance(r, tuple)]
    admitted = [(i, r) for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    assert len(refused) >= 3 and len(admitted) <= 3, results
    assert len(refused) + len(admitted) == count, results
    for error, seconds in refused:
        assert isinstance(error, modeld.ServerBusy), error
        assert "max_queue_size 2" in error.message
        assert seconds < QUEUE_SLEEP_MS / 1000  # refused without waiting (nor retried)
    for i, y in admitted:
        np.testing.assert_array_equal(y, [[float(i)]])


def test_client_timeout_is_deadline_exceeded(fake_client):
    fake_client.metadata("slow")
    started = time.monotonic()
    with pytest.raises(modeld.DeadlineExceeded) as info:
        fake_client.predict("slow", [1.0], timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < SLOW_MS / 1000 * 0.8, elapsed
    assert "0.2" in info.value.message
    # the client is still usable (the HTTP connection that timed out was replaced)
    assert fake_client.live()


def test_default_timeout_of_the_client(fake_url):
    with modeld.Client(fake_url, timeout=0.2) as client:
        client.metadata("slow", timeout=10)
        started = time.monotonic()
        with pytest.raises(modeld.DeadlineExceeded):
            client.infer("slow", {"x": [1.0]})
        assert time.monotonic() - started < SLOW_MS / 1000 * 0.8


def test_closed_port_is_unavailable_after_the_retries(transport, closed_port):
    url = f"{transport}://127.0.0.1:{closed_port}"
    with modeld.Client(url, timeout=10, retries=3, backoff=0.05) as client:
        calls = count_calls(client, "live")
        started = time.monotonic()
        with pytest.raises(modeld.Unavailable) as info:
            client.live()
        elapsed = time.monotonic() - started
    assert len(calls) == 4  # the first try and 3 retries
    # waits of at least 0.025 + 0.05 + 0.1 s (jitter halves at most), at most 0.05 + 0.1 + 0.2
    gaps = np.diff(calls)
    assert all(g >= 0.025 * 2**i for i, g in enumerate(gaps)), gaps
    assert elapsed < 2.0, elapsed
    assert info.value.code == "UNAVAILABLE"
    assert str(closed_port) in info.value.message or "onnect" in info.value.message


def test_no_retries(transport, closed_port):
    with modeld.Client(f"{transport}://127.0.0.1:{closed_port}", retries=0) as client:
        calls = count_calls(client, "ready")
        with pytest.raises(modeld.Unavailable):
            client.ready()
    assert len(calls) == 1


def test_retries_stop_at_the_timeout(transport, closed_port):
    with modeld.Client(f"{transport}://127.0.0.1:{closed_port}", timeout=0.5, retries=1000,
                       backoff=0.05) as client:
        calls = count_calls(client, "model_ready")
        started = time.monotonic()
        with pytest.raises(modeld.Unavailable):
            client.model_ready("linear")
        elapsed = time.monotonic() - started
    # 1,000 retries 50 ms apart would take 50 s; the 0.5 s timeout ends them. The margin is for
    # a loaded machine, not a speed target.
    assert elapsed < 5.0, elapsed
    assert 2 <= len(calls) < 20, len(calls)


def test_other_errors_are_not_retried(client):
    calls = count_calls(client, "infer")
    client.metadata("linear")
    with pytest.raises(modeld.InvalidInput):
        client.predict("linear", [[1.0]])
    assert len(calls) == 1


def test_http_connection_closed_by_the_server_is_retried():
    """A server that accepts and hangs up: every try is a new connection, counted here."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with modeld.Client(f"http://127.0.0.1:{port}", retries=2, backoff=0.01) as client:
            with pytest.raises(modeld.Unavailable):
                client.live()
        assert len(accepted) == 3
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_bad_urls():
    for url in ("ftp://127.0.0.1:8000", "127.0.0.1:8001", "tcp://x:1", ""):
        with pytest.raises(ValueError) as info:
            modeld.Client(url)
        assert repr(url) in str(info.value)
        for scheme in ("grpc://", "http://", "redis://"):
            assert scheme in str(info.value)
    with pytest.raises(ValueError):
        modeld.Client("grpc://:8001")
    with pytest.raises(ValueError):
        modeld.Client("grpc://127.0.0.1:8001", timeout=0)


def test_an_http_url_on_the_grpc_port_says_to_use_grpc(server):
    with modeld.Client(f"http://{server.address}", timeout=5.0, retries=0) as client:
        with pytest.raises(modeld.Unavailable, match="use a grpc:// URL"):
            client.live()


def test_the_asyncio_client_too_says_to_use_grpc_on_the_grpc_port(server):
    import asyncio

    async def run():
        async with modeld.aio.Client(f"http://{server.address}", timeout=5.0,
                                     retries=0) as client:
            await client.live()

    with pytest.raises(modeld.Unavailable, match="use a grpc:// URL"):
        asyncio.run(run())
