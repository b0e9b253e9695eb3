"""modeld.aio.Client over gRPC, HTTP and Redis: the main paths, errors, concurrency and event
loops."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from client_support import SLOW_MS, count_calls

import modeld
import modeld.aio

W = np.array([[0.5], [-1.25], [2.0]], dtype=np.float32)
B = np.array([0.75], dtype=np.float32)


def linear(x, version=2):
    scale = 2 if version == 2 else 1
    return np.asarray(x, dtype=np.float32) @ (scale * W) + scale * B


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_lazy_attribute():
    assert modeld.aio.Client is not modeld.Client
    assert issubclass(modeld.aio.Client, object)


def test_main_paths(url, transport, example_repository):
    async def main():
        async with modeld.aio.Client(url, timeout=20) as client:
            assert client.url == url and client.timeout == 20
            assert await client.live() is True
            assert await client.ready() is True
            assert await client.model_ready("linear") is True
            assert await client.model_ready("linear", 3) is False
            assert await client.model_ready("no_such_model") is False
            if transport == "redis":  # the queue carries no server metadata, no config
                with pytest.raises(modeld.ModeldError, match="grpc://"):
                    await client.metadata()
                with pytest.raises(modeld.ModeldError, match="grpc://") as info:
                    await client.model_config("linear")
                assert info.value.code == "UNIMPLEMENTED"
            else:
                assert (await client.metadata())["name"] == "modeld"
                config = await client.model_config("linear", 1)
                assert (config["name"], config["max_batch_size"]) == ("linear", 64)
                assert config["input"][0]["dims"] == [3]
            metadata = await client.metadata("linear")
            assert metadata["versions"] == ["1", "2"]
            assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
            x = [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]
            np.testing.assert_allclose(await client.predict("linear", x), linear(x))
            np.testing.assert_allclose(await client.predict("linear", x, version=1), linear(x, 1))
            reference_in = np.load(example_repository / "mlp" / "reference" / "input.npy")
            reference_out = np.load(example_repository / "mlp" / "reference" / "output.npy")
            np.testing.assert_allclose(await client.predict("mlp", reference_in), reference_out,
                                       rtol=1e-4, atol=1e-5)
            outputs = await client.infer("int64_bool", {"ids": [[5, -5]], "mask": [[True, True]]},
                                         outputs=["positive"])
            assert list(outputs) == ["positive"]
            np.testing.assert_array_equal(outputs["positive"], [[True, False]])
            a = np.arange(16, dtype=np.float32)
            both = await client.infer("add_sub", {"INPUT0": a, "INPUT1": a})
            np.testing.assert_array_equal(both["OUTPUT0"], 2 * a)
            np.testing.assert_array_equal(both["OUTPUT1"], 0 * a)

    run(main())


def test_errors(url, transport):
    async def main():
        async with modeld.aio.Client(url) as client:
            with pytest.raises(modeld.ModelNotFound) as info:
                await client.predict("no_such_model", [[1.0]])
            assert info.value.code == ("404" if transport == "http" else "NOT_FOUND")
            with pytest.raises(modeld.InvalidInput, match=r"shape \[1, 2\]"):
                await client.predict("linear", [[1.0, 2.0]])
            with pytest.raises(modeld.InvalidInput, match="INPUT0, INPUT1"):
                await client.predict("add_sub", np.zeros(16))
            with pytest.raises(modeld.InvalidInput, match="datatype FP64"):
                await client.infer("int64_bool", {"ids": [[0.5]], "mask": [[True]]})
            assert await client.live()  # usable after errors

    run(main())


def test_deadline_and_server_busy(fake_url):
    async def main():
        async with modeld.aio.Client(fake_url, timeout=20) as client:
            await client.metadata("slow")
            started = time.monotonic()
            with pytest.raises(modeld.DeadlineExceeded, match="0.2s"):
                await client.predict("slow", [1.0], timeout=0.2)
            assert time.monotonic() - started < SLOW_MS / 1000 * 0.8
            await client.metadata("small_queue")
            results = await asyncio.gather(
                *[client.infer("small_queue", {"x": [[float(i)]]}) for i in range(6)],
                return_exceptions=True,
            )
            busy = [r for r in results if isinstance(r, modeld.ServerBusy)]
            done = [(i, r) for i, r in enumerate(results) if isinstance(r, dict)]
            assert len(busy) >= 3 and len(busy) + len(done) == 6, results
            for i, outputs in done:
                np.testing.assert_array_equal(outputs["y"], [[float(i)]])
            assert await client.live()

    run(main())


def test_bytes_round_trip(fake_url):
    async def main():
        async with modeld.aio.Client(fake_url) as client:
            x = np.array([[b"a", b""], [b"\x00\x01", "é".encode()]], dtype=object)
            assert (await client.predict("id_bytes", x)).tolist() == x.tolist()
            assert (await client.predict("id_bytes", [["x", "yz"]])).tolist() == [[b"x", b"yz"]]

    run(main())


def test_unavailable_with_retries(transport, closed_port):
    async def main():
        client = modeld.aio.Client(f"{transport}://127.0.0.1:{closed_port}", retries=2,
                                   backoff=0.02, timeout=10)
        calls = count_calls(client, "ready")
        started = time.monotonic()
        with pytest.raises(modeld.Unavailable):
            await client.ready()
        assert len(calls) == 3
        assert time.monotonic() - started < 2.0
        await client.close()

    run(main())


def test_many_concurrent_calls(url):
    async def main():
        async with modeld.aio.Client(url) as client:
            xs = [[[float(i), 1.0, 2.0]] for i in range(40)]
            ys = await asyncio.gather(*[client.predict("linear", x) for x in xs])
            for x, y in zip(xs, ys, strict=True):
                np.testing.assert_allclose(y, linear(x))

    run(main())


def test_one_client_in_event_loops_one_after_the_other(url):
    """As Django runs async views of a WSGI site: a fresh event loop for every request."""
    client = modeld.aio.Client(url)
    for i in range(3):
        x = [[float(i), 0.0, 0.0]]
        np.testing.assert_allclose(run(client.predict("linear", x)), linear(x))
        assert run(client.live())
    run(client.close())
    with pytest.raises(modeld.ModeldError, match="closed"):
        run(client.live())


def test_one_client_in_two_loops_at_once(url):
    client = modeld.aio.Client(url)
    barrier = threading.Barrier(2)
    results: dict[int, object] = {}

    def thread_main(index):
        async def work():
            barrier.wait(timeout=10)
            out = []
            for i in range(10):
                x = [[float(index * 100 + i), 1.0, 1.0]]
                out.append(((await client.predict("linear", x)).tolist(), linear(x).tolist()))
            return out

        try:
            results[index] = run(work())
        except BaseException as error:  # noqa: BLE001 - checked below
            results[index] = error

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    for index in range(2):
        assert isinstance(results[index], list), results[index]
        for got, want in results[index]:
            np.testing.assert_allclose(got, want)
    run(client.close())


def test_http_pool_reuses_connections(server):
    async def main():
        async with modeld.aio.Client(f"http://{server.http_address}") as client:
            await client.live()
            assert len(client._transport._idle) == 1
            first = client._transport._idle[0].sock
            await client.live()
            assert client._transport._idle[0].sock is first  # kept alive and reused
            await asyncio.gather(*[client.live() for _ in range(5)])
            assert 1 <= len(client._transport._idle) <= 8
            # a pooled connection closed while idle is replaced without using a retry
            for connection in client._transport._idle:
                connection.sock.shutdown(2)
            calls = count_calls(client, "live")
            client._policy.retries = 0
            assert await client.live()
            assert len(calls) == 1

    run(main())


FORK_SCRIPT = """
import asyncio, json, os, sys
import modeld, modeld.aio

client = modeld.aio.Client(sys.argv[1], timeout=20)
report = {"parent": asyncio.run(client.predict("linear", [[1, 2, 3]])).tolist()}
reader, writer = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        child = asyncio.run(client.predict("linear", [[1, 1, 1]])).tolist()
    except modeld.ModeldError as error:
        child = {"error": type(error).__name__, "message": error.message}
    os.write(writer, json.dumps(child).encode())
    os._exit(0)
os.close(writer)
with os.fdopen(reader) as pipe:
    report["child"] = json.loads(pipe.read())
os.waitpid(pid, 0)
report["parent_again"] = asyncio.run(client.predict("linear", [[1, 2, 3]])).tolist()
print(json.dumps(report))
"""


def test_fork(url, transport):
    """Over HTTP and Redis the child reconnects; over gRPC (grpc.aio does not survive fork) the
    child gets a clear error instead of a crash. Run in a fresh interpreter: a crash stays
    there."""
    result = subprocess.run([sys.executable, "-c", FORK_SCRIPT, url], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["parent"] == report["parent_again"] == [[9.5]]
    if transport in ("http", "redis"):
        assert report["child"] == [[4.0]]  # 2 * (0.5 - 1.25 + 2.0) + 2 * 0.75
    else:
        assert report["child"]["error"] == "ModeldError"
        assert "fork" in report["child"]["message"]
