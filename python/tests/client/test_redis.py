"""What is particular to the Redis transport: the URL, the envelope each call sends, answers
routed to their own calls, replies refused, no consumer, list mode, Redis going away,
credentials, and redis-py being optional. The shared paths run in the other test files with
transport "redis"."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from client_support import start_modeld_on_redis, stop_server
from redis_server import RedisServer

import modeld
import modeld.aio
from modeld._proto import redis_pb2
from modeld._redis_url import (
    DEFAULT_MAXLEN,
    DEFAULT_STREAM,
    REPLY_PREFIX,
    RedisTarget,
    parse_redis_url,
    redact_url,
)

# --- the URL ------------------------------------------------------------------------------


@pytest.mark.parametrize("url,expected", [
    ("redis://127.0.0.1", RedisTarget("127.0.0.1")),
    ("redis://h:7000/3", RedisTarget("h", 7000, 3)),
    ("REDIS://h/", RedisTarget("h")),
    ("redis://:s%40cret@h", RedisTarget("h", password="s@cret")),
    ("redis://app:pw@[::1]:6380/2", RedisTarget("::1", 6380, 2, "app", "pw")),
    ("redis://h?stream=jobs", RedisTarget("h", queue="jobs")),
    ("redis://h/1?stream=a%3Ab&maxlen=0", RedisTarget("h", db=1, queue="a:b", maxlen=0)),
    ("redis://h?maxlen=500", RedisTarget("h", maxlen=500)),
    ("redis://h?list=modeld:list", RedisTarget("h", queue="modeld:list", is_list=True)),
])
def test_url(url, expected):
    assert parse_redis_url(url) == expected
    assert modeld.Client(url).url == url


def test_url_defaults():
    target = parse_redis_url("redis://h")
    assert (target.port, target.db, target.queue, target.is_list, target.maxlen) == (
        6379, 0, DEFAULT_STREAM, False, DEFAULT_MAXLEN)
    assert DEFAULT_STREAM == "modeld:requests"  # modeld's --redis-stream default
    assert target.describe() == "stream modeld:requests at Redis h:6379/0"


@pytest.mark.parametrize("url,message", [
    ("rediss://h", "TLS"),
    ("redis://", "names no host"),
    ("redis://h:0", "port 0"),
    ("redis://h:99999", "out of range"),
    ("redis://h/zero", "'zero' is not a number"),
    ("redis://h/1/2", "is not a number"),
    ("redis://h#x", "fragment"),
    ("redis://user@h", "needs a password"),
    ("redis://h?queue=x", "unknown option 'queue'"),
    ("redis://h?stream=a&stream=b", "given twice"),
    ("redis://h?stream=", "has no value"),
    ("redis://h?stream=a&list=b", "not both"),
    ("redis://h?list=a&maxlen=5", "a list has no cap"),
    ("redis://h?maxlen=-1", "not a whole number"),
    ("redis://h?maxlen", "malformed query"),
])
def test_bad_url(url, message):
    with pytest.raises(ValueError, match=message):
        modeld.Client(url)
    with pytest.raises(ValueError, match=message):
        modeld.aio.Client(url)


def test_passwords_are_never_shown():
    url = "redis://app:hunter2@127.0.0.1:1/0"
    assert redact_url(url) == "redis://app:***@127.0.0.1:1/0"
    assert redact_url("redis://:hunter2@h") == "redis://:***@h"
    assert redact_url("grpc://h:1") == "grpc://h:1"
    client = modeld.Client(url, retries=0, timeout=2)
    assert "hunter2" not in repr(client)
    with pytest.raises(modeld.Unavailable) as info:
        client.live()
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError) as bad:
        modeld.Client("redis://app:hunter2@h/x")
    assert "hunter2" not in str(bad.value)


# --- an impostor consumer: what the client sends, and replies it must refuse ---------------


class Impostor:
    """Consumes a stream in place of modeld: hands each envelope to `answer`, which returns
    the bytes to push onto its reply key (None: push nothing)."""

    def __init__(self, redis_server: RedisServer, stream: str, answer) -> None:
        self.stream = stream
        self.answer = answer
        self.seen: list[redis_pb2.RequestEnvelope] = []
        self._client = redis_server.client(db=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = "0-0"
        while not self._stop.is_set():
            entries = self._client.xread({self.stream: last}, block=100) or []
            for _, messages in entries:
                for entry_id, fields in messages:
                    last = entry_id
                    envelope = redis_pb2.RequestEnvelope.FromString(fields[b"envelope"])
                    self.seen.append(envelope)
                    reply = self.answer(envelope)
                    if reply is not None:
                        self._client.rpush(envelope.reply_key, reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def impostor(redis_server: RedisServer) -> Iterator:
    started = []

    def start(answer) -> tuple[Impostor, str]:
        stream = f"impostor:{uuid.uuid4().hex[:8]}"
        started.append(Impostor(redis_server, stream, answer))
        return started[-1], f"{redis_server.url}/5?stream={stream}"

    yield start
    for one in started:
        one.close()


def _ready_reply(envelope, request_id=None):
    reply = redis_pb2.ReplyEnvelope(request_id=envelope.request_id if request_id is None
                                    else request_id)
    reply.server_ready.ready = True
    return reply.SerializeToString()


def test_each_call_sends_a_fresh_envelope_with_its_deadline(impostor):
    consumer, url = impostor(_ready_reply)
    with modeld.Client(url, timeout=7) as client:
        sent_at = time.time()
        assert client.ready() is True
        assert client.ready(timeout=3) is True
    first, second = consumer.seen
    for envelope in (first, second):
        assert uuid.UUID(hex=envelope.request_id).version == 4
        assert envelope.reply_key == REPLY_PREFIX + envelope.request_id
        assert envelope.WhichOneof("payload") == "server_ready"
    assert first.request_id != second.request_id
    assert abs(first.deadline_unix_ms / 1000 - (sent_at + 7)) < 1.0
    assert abs(second.deadline_unix_ms / 1000 - (sent_at + 3)) < 1.0


def test_a_reply_for_another_request_is_refused(impostor, redis_server):
    consumer, url = impostor(lambda envelope: _ready_reply(envelope, "someone-else"))
    with modeld.Client(url, timeout=5, retries=3) as client:
        started = time.monotonic()
        with pytest.raises(modeld.ModeldError) as info:
            client.ready()
        assert time.monotonic() - started < 4  # refused at once, not waited out
    assert info.value.code == "MISROUTED"
    assert "'someone-else'" in info.value.message
    assert len(consumer.seen) == 1  # not retried: another try would not fix it
    # The other request's reply was popped, not left on the key.
    assert redis_server.client(db=5).exists(consumer.seen[0].reply_key) == 0


@pytest.mark.parametrize("garbage,message", [
    (b"\xff\xfe not protobuf", "not a ReplyEnvelope"),
    (None, "carries nothing, not server_ready"),  # a reply with no payload
])
def test_a_malformed_reply_is_an_error(impostor, garbage, message):
    def answer(envelope):
        if garbage is not None:
            return garbage
        return redis_pb2.ReplyEnvelope(request_id=envelope.request_id).SerializeToString()

    _, url = impostor(answer)
    with modeld.Client(url, timeout=5) as client:
        with pytest.raises(modeld.ModeldError, match=message):
            client.ready()


def test_a_reply_with_an_error_code_raises_its_exception(impostor):
    def answer(envelope):
        return redis_pb2.ReplyEnvelope(request_id=envelope.request_id, code=8,
                                       message="queue full").SerializeToString()

    _, url = impostor(answer)
    with modeld.Client(url, timeout=5) as client:
        with pytest.raises(modeld.ServerBusy, match="queue full") as info:
            client.model_ready("m")
    assert info.value.code == "RESOURCE_EXHAUSTED"


def test_aio_refuses_a_reply_for_another_request(impostor):
    _, url = impostor(lambda envelope: _ready_reply(envelope, "someone-else"))

    async def main():
        async with modeld.aio.Client(url, timeout=5) as client:
            await client.ready()

    with pytest.raises(modeld.ModeldError) as info:
        asyncio.run(main())
    assert info.value.code == "MISROUTED"


# --- no consumer --------------------------------------------------------------------------


def test_no_consumer_is_deadline_exceeded_within_the_timeout(redis_server):
    stream = f"nobody:{uuid.uuid4().hex[:8]}"
    with modeld.Client(f"{redis_server.url}/5?stream={stream}", timeout=0.3) as client:
        assert client.live() is True  # Redis answers; no modeld does
        started = time.monotonic()
        with pytest.raises(modeld.DeadlineExceeded) as info:
            client.predict("linear", [[1.0, 2.0, 3.0]])
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 0.3 + 0.5, elapsed
    assert "0.3s" in info.value.message
    # The request waits in the stream with its deadline: a modeld that takes it later answers
    # DEADLINE_EXCEEDED without running it.
    entries = redis_server.client(db=5).xrange(stream)
    assert len(entries) == 1
    envelope = redis_pb2.RequestEnvelope.FromString(entries[0][1][b"envelope"])
    assert envelope.WhichOneof("payload") == "metadata"  # predict() asks for it first
    assert envelope.deadline_unix_ms / 1000 < time.time()


def test_no_consumer_aio(redis_server):
    async def main():
        async with modeld.aio.Client(f"{redis_server.url}/5?list=nobody-{uuid.uuid4().hex}",
                                     timeout=0.3) as client:
            assert await client.live()
            started = time.monotonic()
            with pytest.raises(modeld.DeadlineExceeded):
                await client.ready()
            return time.monotonic() - started

    elapsed = asyncio.run(main())
    assert 0.25 <= elapsed < 0.8, elapsed


# --- many threads: every answer belongs to its request ------------------------------------

THREADS = 32
REQUESTS_PER_THREAD = 50


def test_32_threads_each_get_their_own_answers(server):
    """Every request carries values no other request has, so an answer that went to the wrong
    call could not pass."""
    errors: list[BaseException] = []
    wrong: list[tuple[int, int]] = []
    barrier = threading.Barrier(THREADS)
    with modeld.Client(server.redis_url, timeout=30) as client:
        client.metadata("identity_fp32")

        def work(thread: int) -> None:
            try:
                barrier.wait(timeout=10)
                for i in range(REQUESTS_PER_THREAD):
                    x = np.array([[thread, i, thread * 1000.0 + i, -i]], np.float32)
                    y = client.infer("identity_fp32", {"INPUT0": x})["OUTPUT0"]
                    if not np.array_equal(y, x):
                        wrong.append((thread, i))
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        assert not any(thread.is_alive() for thread in threads)
        # One connection per thread at most, each back in the pool.
        idle = client._transport._pool.get()._idle
        assert 1 <= len(idle) <= THREADS
    assert not errors, errors[0]
    assert wrong == []


def test_connections_are_reused(server):
    with modeld.Client(server.redis_url) as client:
        client.live()
        pool = client._transport._pool.get()
        (first,) = pool._idle
        assert client.ready()
        assert client.predict("linear", [[1, 2, 3]]).shape == (1, 1)
        assert pool._idle == [first]


# --- list mode ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def list_server(fake_repository: Path, redis_server: RedisServer) -> Iterator:
    queue = f"jobs:{uuid.uuid4().hex[:8]}"
    process = start_modeld_on_redis(fake_repository, f"{redis_server.url}/2",
                                    (f"--redis-list={queue}",),
                                    client_url=f"{redis_server.url}/2?list={queue}")
    process.queue = queue
    yield process
    stop_server(process)


def test_list_mode(list_server, redis_server):
    with modeld.Client(list_server.redis_url, timeout=20) as client:
        assert client.ready() and client.model_ready("id_int32")
        assert client.metadata("id_int32")["inputs"][0]["name"] == "x"
        np.testing.assert_array_equal(client.predict("id_int32", [[7, -7]]), [[7, -7]])
        with pytest.raises(modeld.ModelNotFound):
            client.predict("no_such_model", [[1]])
    connection = redis_server.client(db=2)
    assert connection.llen(list_server.queue) == 0  # every item taken and removed
    assert connection.exists(DEFAULT_STREAM) == 0  # nothing went to a stream


def test_list_mode_aio(list_server):
    async def main():
        async with modeld.aio.Client(list_server.redis_url, timeout=20) as client:
            xs = [[[i, -i]] for i in range(20)]
            ys = await asyncio.gather(*[client.predict("id_int32", x) for x in xs])
            return xs, [y.tolist() for y in ys]

    xs, ys = asyncio.run(main())
    assert ys == xs


# --- Redis going away ---------------------------------------------------------------------


def test_client_recovers_when_redis_restarts(fake_repository):
    """A pooled connection that a Redis restart closed is replaced at once (no retry needed);
    while Redis is down calls are Unavailable, retried within the timeout; modeld sets its
    queue up again on the restarted (empty) Redis, and requests queued meanwhile are served."""
    own = RedisServer()
    process = None
    try:
        process = start_modeld_on_redis(fake_repository, own.url)
        with modeld.Client(own.url, timeout=10, retries=0) as client:
            np.testing.assert_array_equal(client.predict("id_int32", [[1]]), [[1]])
            pooled = client._transport._pool.get()._idle[0]
            own.stop()
            own.start()
            np.testing.assert_array_equal(client.predict("id_int32", [[2]]), [[2]])
            assert client._transport._pool.get()._idle[0] is not pooled
            own.stop()
            with pytest.raises(modeld.Unavailable) as info:
                client.predict("id_int32", [[3]])
            assert str(own.port) in info.value.message
            # Down again, with retries: the call waits for Redis within its timeout.
            client._policy.retries = 100
            restarter = threading.Timer(0.5, own.start)
            restarter.start()
            try:
                np.testing.assert_array_equal(client.predict("id_int32", [[4]]), [[4]])
            finally:
                restarter.join()
        assert process.running()
    finally:
        if process is not None:
            stop_server(process)
        own.close()


# --- credentials --------------------------------------------------------------------------


def test_password_and_acl_user():
    own = RedisServer(["--requirepass", "s@cret"], password="s@cret")
    try:
        own.client().acl_setuser("app", enabled=True, passwords=["+apppw"], keys=["*"],
                                 commands=["+@all"])
        for url in (f"redis://:s%40cret@127.0.0.1:{own.port}",
                    f"redis://default:s%40cret@127.0.0.1:{own.port}/1",
                    f"redis://app:apppw@127.0.0.1:{own.port}"):
            with modeld.Client(url, timeout=5) as client:
                assert client.live() is True
        for url in (f"redis://:wrong@127.0.0.1:{own.port}",
                    f"redis://app:wrong@127.0.0.1:{own.port}"):
            with modeld.Client(url, timeout=5, retries=3) as client:
                calls = []
                original = client._transport.live
                client._transport.live = lambda t: calls.append(t) or original(t)
                with pytest.raises(modeld.ModeldError) as info:
                    client.live()
                assert info.value.code == "UNAUTHENTICATED", info.value
                assert len(calls) == 1  # not retried: waiting does not fix a password
        with modeld.Client(f"redis://127.0.0.1:{own.port}", timeout=5) as client:
            with pytest.raises(modeld.ModeldError) as info:
                client.live()
            assert info.value.code == "UNAUTHENTICATED", info.value  # NOAUTH
    finally:
        own.close()


def test_redis_refusing_the_request_is_an_error(redis_server):
    stream = f"not-a-stream:{uuid.uuid4().hex[:8]}"
    redis_server.client(db=5).set(stream, "a string, not a stream")
    with modeld.Client(f"{redis_server.url}/5?stream={stream}", timeout=5, retries=3) as client:
        started = time.monotonic()
        with pytest.raises(modeld.ModeldError) as info:
            client.ready()
        assert time.monotonic() - started < 2  # the waiting BLPOP was dropped at once
        assert info.value.code == "REDIS_ERROR"
        assert "WRONGTYPE" in info.value.message
        assert client._transport._pool.get()._idle == []  # that connection was not kept


# --- redis-py is optional -----------------------------------------------------------------


def test_without_redis_py_the_error_says_how_to_install_it():
    code = """
import sys
sys.modules["redis"] = None  # as if redis-py were not installed
import modeld
for make in (modeld.Client, __import__("modeld.aio").aio.Client):
    try:
        make("redis://127.0.0.1:6379")
    except ImportError as error:
        print(error)
    else:
        raise SystemExit("no ImportError")
with modeld.Client("http://127.0.0.1:1"):
    pass  # the other transports do not need it
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all('pip install "modeld[redis]"' in line for line in lines)


def test_redis_client_loads_no_grpc(server):
    code = f"""
import json, sys
import modeld
with modeld.Client("{server.redis_url}") as client:
    assert client.predict("linear", [[1, 2, 3]]).tolist() == [[9.5]]
print(json.dumps(sorted(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.strip().splitlines()[-1]
    assert '"grpc"' not in loaded and '"torch"' not in loaded
    assert '"redis"' in loaded
