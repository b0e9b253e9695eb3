"""The AMQP transport (amqp://, docs/amqp.md) against the real modeld and a private RabbitMQ
node: the URL, every call sync and asyncio, modeld's errors, deadlines, replies that are late,
unknown or for another request, 32 threads on one client, os.fork(), the broker going away,
credentials and TLS, and pika being optional."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pika
import pytest
from client_support import SLOW_MS, count_calls, http_ready, stop_server, write_fake_model
from modeld_server import ServerProcess, start_server
from rabbitmq_server import RabbitMQServer, fresh_name, wait_until
from test_concurrency import _read_all, _reap
from train_support import TRAINING, line_batch, write_linear_models

import modeld
import modeld.aio
from modeld._amqp_url import DEFAULT_QUEUE, AmqpTarget, parse_amqp_url
from modeld._proto import redis_pb2

ModelStatus = modeld.ModelStatus


def _link(client):
    """The sync client's connection of this process (None before its first call)."""
    return client._transport._state.get().link


# --- the URL --------------------------------------------------------------------------------


@pytest.mark.parametrize("url,expected", [
    ("amqp://h", AmqpTarget("h")),
    ("amqp://h/", AmqpTarget("h")),
    ("AMQP://h:5673/%2f", AmqpTarget("h", 5673)),
    ("amqp://web:s%40cret@mq:1/prod", AmqpTarget("mq", 1, "prod", "web", "s@cret")),
    ("amqp://web@mq/prod", AmqpTarget("mq", vhost="prod", username="web", password="")),
    ("amqp://u:p@[::1]:5672/a%2Fb?queue=jobs", AmqpTarget("::1", 5672, "a/b", "u", "p", "jobs")),
    ("amqps://h", AmqpTarget("h", 5671, tls=True)),
    ("amqps://h:443/v?queue=q.1", AmqpTarget("h", 443, "v", queue="q.1", tls=True)),
])
def test_url(url, expected):
    assert parse_amqp_url(url) == expected
    assert modeld.Client(url).url == url


def test_url_defaults():
    target = parse_amqp_url("amqp://h")
    assert (target.port, target.vhost, target.username, target.password, target.queue) == (
        5672, "/", "guest", "guest", DEFAULT_QUEUE)
    assert DEFAULT_QUEUE == "modeld.requests"  # modeld's --amqp-queue default
    assert target.describe() == "queue modeld.requests at the AMQP broker h:5672 vhost '/'"
    assert "guest" not in repr(target).replace("username='guest'", "")  # no password


@pytest.mark.parametrize("url,message", [
    ("amqp://", "names no host"),
    ("amqp://h:0", "port 0"),
    ("amqp://h:99999", "out of range"),
    ("amqp://h/a/b", "write it as %2f"),
    ("amqp://h#x", "fragment"),
    ("amqp://u:p%4@h", "'%' that is not followed by two hex digits"),
    ("amqp://:p@h", "the user is empty"),
    ("amqp://h?stream=x", "unknown option 'stream'"),
    ("amqp://h?tls_ca=/etc/ca.pem", "tls_ca, tls_cert and tls_key"),
    ("amqp://h?queue=a&queue=b", "given twice"),
    ("amqp://h?queue=", "has no value"),
    ("amqp://h?queue", "malformed query"),
    ("amqp://h?queue=amq.gen-1", "reserves"),
    (f"amqp://h?queue={'q' * 256}", "longer than 255 bytes"),
])
def test_bad_url(url, message):
    with pytest.raises(ValueError, match=message):
        modeld.Client(url)
    with pytest.raises(ValueError, match=message):
        modeld.aio.Client(url)


def test_tls_arguments_need_amqps_and_tokens_are_refused(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="need an amqps:// URL"):
        modeld.Client("amqp://h", tls_ca=str(pem))
    with pytest.raises(ValueError, match="an AMQP URL carries its own credentials"):
        modeld.Client("amqps://h", token="t")
    with pytest.raises(ValueError, match="tls_ca: no file at"):
        modeld.Client("amqps://h", tls_ca=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        modeld.aio.Client("amqps://h", tls_cert=str(pem))


def test_passwords_are_never_shown(closed_port):
    url = f"amqp://app:hunter2@127.0.0.1:{closed_port}/prod"
    client = modeld.Client(url, retries=0, timeout=2)
    assert "hunter2" not in repr(client)
    with pytest.raises(modeld.Unavailable) as info:
        client.live()
    assert "hunter2" not in str(info.value)
    assert f"127.0.0.1:{closed_port} vhost 'prod'" in str(info.value)
    client.close()
    with pytest.raises(ValueError) as bad:
        modeld.Client("amqp://app:hunter2@h/a/b")
    assert "hunter2" not in str(bad.value)


# --- modeld on a queue of its own -----------------------------------------------------------


@pytest.fixture(scope="module")
def amqp_repository(example_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("amqp_models")
    shutil.copytree(example_repository / "linear", repository / "linear")
    write_fake_model(repository, "id_fp32", dims="[ -1, -1 ]")
    write_fake_model(repository, "slow", parameters={"behavior": "sleep",
                                                    "sleep_ms": str(SLOW_MS)})
    write_fake_model(repository, "failing", parameters={"behavior": "fail"})
    (repository / "broken" / "1").mkdir(parents=True)
    (repository / "broken" / "1" / "model.onnx").write_bytes(b"not an ONNX model")
    write_linear_models(repository, {"line": TRAINING, "aline": TRAINING})
    return repository


def start_modeld_on_amqp(repository: Path, broker: RabbitMQServer,
                         queue: str | None = None) -> ServerProcess:
    """modeld on `repository` consuming `queue` (a fresh one by default) of `broker`; returns
    once it consumes. Its `amqp_url` attribute is the client's URL of that queue."""
    queue = queue or fresh_name("modeld")
    process = start_server(repository, [f"--amqp-url={broker.url()}", f"--amqp-queue={queue}"])
    try:
        process.wait_for_log(r"amqp: consuming")
        wait_until(lambda: http_ready(process), what="modeld ready with its AMQP worker")
    except BaseException:
        stop_server(process)
        raise
    process.amqp_url = f"{broker.url()}?queue={queue}"
    process.queue = queue
    return process


@pytest.fixture(scope="module")
def amqp_server(amqp_repository: Path, rabbitmq: RabbitMQServer) -> Iterator[ServerProcess]:
    process = start_modeld_on_amqp(amqp_repository, rabbitmq)
    yield process
    stop_server(process)


@pytest.fixture
def amqp_client(amqp_server: ServerProcess) -> Iterator[modeld.Client]:
    with modeld.Client(amqp_server.amqp_url, timeout=20) as client:
        yield client


def test_every_call(amqp_client):
    client = amqp_client
    assert client.live() is True
    assert client.ready() is True
    assert client.model_ready("linear") is True
    assert client.model_ready("linear", 2) is True
    assert client.model_ready("nope") is False
    meta = client.metadata("linear")
    assert (meta["name"], meta["inputs"][0]["name"], meta["outputs"][0]["name"]) == (
        "linear", "x", "y")
    np.testing.assert_allclose(client.predict("linear", [[1.0, 2.0, 3.0]]), [[9.5]])
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    np.testing.assert_array_equal(client.infer("id_fp32", {"x": x})["y"], x)
    assert client.model_status("linear") == ModelStatus("linear", "2", True, "READY")
    assert client.model_status("nope") == ModelStatus("nope", None, False, "UNKNOWN",
                                                      "unknown model 'nope'")
    broken = client.model_status("broken")
    assert (broken.name, broken.ready, broken.state) == ("broken", False, "UNAVAILABLE")
    assert "model.onnx" in broken.reason
    for call in (client.metadata, client.models, lambda: client.model_config("linear")):
        with pytest.raises(modeld.ModeldError, match="modeld's AMQP queue") as info:
            call()
        assert info.value.code == "UNIMPLEMENTED"
    link = _link(client)
    assert link.reply_queue.startswith("amq.gen-") and link.dropped == 0


def test_errors_of_modeld(amqp_client):
    client = amqp_client
    with pytest.raises(modeld.ModelNotFound, match="nope") as info:
        client.infer("nope", {"x": [[1.0]]})
    assert info.value.code == "NOT_FOUND"
    with pytest.raises(modeld.ModelNotFound, match="version 7"):
        client.predict("linear", [[1.0, 2.0, 3.0]], version=7)
    with pytest.raises(modeld.InvalidInput) as info:
        client.predict("linear", [[1.0, 2.0]])  # modeld names the shape
    assert "shape" in info.value.message and "[1, 2]" in info.value.message
    assert info.value.code == "INVALID_ARGUMENT"
    with pytest.raises(modeld.ModelFailed) as failed:
        client.predict("failing", [1.0])
    assert failed.value.code == "INTERNAL"
    with pytest.raises(modeld.InvalidInput, match="not trainable"):
        client.train("linear", {"x": [[1.0, 2.0, 3.0]]}, {"y": [[1.0]]})
    assert client.predict("id_fp32", [[4.0]]).tolist() == [[4.0]]  # the link is unharmed


@pytest.mark.parametrize("api", ("sync", "aio"))
def test_a_model_that_failed_to_load_is_model_not_ready_at_once(amqp_server, api):
    """modeld answers UNAVAILABLE for broken, loading or failed; the client asks its status
    once through the queue, and raises ModelNotReady with modeld's reason, never retried."""
    counted = ("model_metadata", "model_status")

    if api == "sync":
        with modeld.Client(amqp_server.amqp_url, timeout=20, retries=3, backoff=0.01) as client:
            calls = {m: count_calls(client, m) for m in counted}
            with pytest.raises(modeld.ModeldError) as info:
                client.predict("broken", [[1.0]])
    else:
        async def main():
            async with modeld.aio.Client(amqp_server.amqp_url, timeout=20, retries=3,
                                         backoff=0.01) as client:
                found = {m: count_calls(client, m) for m in counted}
                with pytest.raises(modeld.ModeldError) as raised:
                    await client.predict("broken", [[1.0]])
                return found, raised

        calls, info = asyncio.run(asyncio.wait_for(main(), 60))
    error = info.value
    assert type(error) is modeld.ModelNotReady and not isinstance(error, modeld.Unavailable)
    assert (error.model, error.state, error.code) == ("broken", "UNAVAILABLE", "UNAVAILABLE")
    assert "model.onnx" in error.reason and error.reason in error.message
    assert {m: len(c) for m, c in calls.items()} == {"model_metadata": 1, "model_status": 1}


def test_train(amqp_client):
    rng = np.random.default_rng(7)
    losses = []
    for step in range(1, 6):
        x, y = line_batch(rng)
        result = amqp_client.train("line", {"x": x}, {"y": y}, id=f"amqp-{step}")
        assert result.step == step
        losses.append(result.loss)
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_deadline_exceeded_and_the_late_reply_is_dropped(amqp_client):
    client = amqp_client
    assert client.predict("id_fp32", [[1.0]]).tolist() == [[1.0]]
    link = _link(client)
    started = time.monotonic()
    with pytest.raises(modeld.DeadlineExceeded) as info:
        client.predict("slow", [1.0], timeout=0.3)
    assert time.monotonic() - started < SLOW_MS / 1000  # the client did not wait for modeld
    assert "0.3s" in info.value.message
    # modeld answers when the model is done: that reply has no call waiting for it any more.
    wait_until(lambda: link.dropped == 1, timeout=SLOW_MS / 1000 + 20, what="the late reply")
    assert client.predict("id_fp32", [[2.0]]).tolist() == [[2.0]]
    assert _link(client) is link and link.dropped == 1


# --- 32 threads, one connection -------------------------------------------------------------

THREADS = 32
REQUESTS_PER_THREAD = 40


def test_32_threads_each_get_their_own_answers(amqp_client):
    """Every request carries values no other request has, so an answer that went to the wrong
    call could not pass."""
    client = amqp_client
    client.metadata("id_fp32")
    link = _link(client)
    errors: list[BaseException] = []
    wrong: list[tuple[int, int]] = []
    barrier = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(REQUESTS_PER_THREAD):
                x = np.array([[thread, i, thread * 1000.0 + i, -i]], np.float32)[:, : 1 + i % 4]
                y = client.infer("id_fp32", {"x": x})["y"]
                if not np.array_equal(y, x):
                    wrong.append((thread, i))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors[0]
    assert wrong == []
    # All on the one connection, and no reply went unclaimed.
    assert _link(client) is link and link.error is None and link.dropped == 0


# --- os.fork() ------------------------------------------------------------------------------


def _hammer(client, offset, count=40):
    """`count` calls with distinct inputs; returns the mismatches."""
    wrong = []
    for i in range(count):
        x = [[float(offset + i), 2.0, -1.0]]
        y = client.predict("id_fp32", x)
        if y.tolist() != x:
            wrong.append((x, y.tolist()))
    return wrong


def test_client_survives_fork(amqp_server):
    """The parent uses the client, forks; child and parent then use the same client at the same
    time. The child opens its own connection (and reply queue); the parent's is untouched."""
    client = modeld.Client(amqp_server.amqp_url, timeout=20)
    try:
        assert not _hammer(client, 0, 5)
        parent_link = _link(client)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 0
            try:
                os.close(reader)
                wrong = _hammer(client, 10_000)
                report = {"wrong": wrong, "live": client.live(),
                          "name": client.metadata("linear")["name"],
                          "queue": _link(client).reply_queue}
                client.close()
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
        assert report["queue"] != parent_link.reply_queue
        assert {k: report[k] for k in ("wrong", "live", "name")} == {
            "wrong": [], "live": True, "name": "linear"}
        assert exit_code == 0
        assert wrong_in_parent == []
        # The child's close() touched nothing of the parent's.
        assert _link(client) is parent_link and parent_link.error is None
        assert client.live() and not _hammer(client, 30_000, 5)
    finally:
        client.close()


def test_client_made_before_fork_and_used_only_in_the_child(amqp_server):
    client = modeld.Client(amqp_server.amqp_url, timeout=20)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            os.write(writer, json.dumps(client.predict("id_fp32", [[5.0]]).tolist()).encode())
        finally:
            os._exit(0)
    os.close(writer)
    try:
        result = json.loads(_read_all(reader, 60) or b"null")
    finally:
        os.close(reader)
        _reap(pid)
    assert result == [[5.0]]
    assert client.predict("id_fp32", [[6.0]]).tolist() == [[6.0]]
    client.close()


# --- asyncio --------------------------------------------------------------------------------


# A loop that ends with its connection open (the first one below) leaves aio-pika's close
# callbacks to the garbage collector, which complains that their loop is closed: collected (and
# silenced) here, not in whichever test comes next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_aio_concurrent_tasks(amqp_server):
    async def main(client):
        xs = [[[float(i), -float(i)]] for i in range(60)]
        ys = await asyncio.gather(*[client.predict("id_fp32", x) for x in xs])
        assert [y.tolist() for y in ys] == xs
        assert await client.live() and await client.ready()
        assert await client.model_ready("linear") and not await client.model_ready("nope")
        assert (await client.metadata("linear"))["outputs"][0]["name"] == "y"
        assert (await client.model_status("nope")).state == "UNKNOWN"
        with pytest.raises(modeld.ModelNotFound):
            await client.infer("nope", {"x": [[1.0]]})
        with pytest.raises(modeld.InvalidInput, match="shape"):
            await client.predict("linear", [[1.0, 2.0]])
        x, y = line_batch(np.random.default_rng(3))
        first = await client.train("aline", {"x": x}, {"y": y})
        second = await client.train("aline", {"x": x}, {"y": y})
        assert (first.step, second.step) == (1, 2)
        # One connection for all of this loop's tasks; the reply to a call that timed out is
        # dropped when it comes.
        link = client._transport._state().link
        with pytest.raises(modeld.DeadlineExceeded):
            await client.predict("slow", [1.0], timeout=0.3)
        for _ in range(int(SLOW_MS / 1000 + 20) * 20):
            if link.dropped:
                break
            await asyncio.sleep(0.05)
        assert link.dropped == 1 and client._transport._state().link is link
        assert (await client.predict("id_fp32", [[7.0]])).tolist() == [[7.0]]
        return link

    client = modeld.aio.Client(amqp_server.amqp_url, timeout=20)
    first_link = asyncio.run(main(client))

    async def again():  # another loop: a connection of its own
        async with client:
            assert (await client.predict("id_fp32", [[7.0]])).tolist() == [[7.0]]
            assert client._transport._state().link is not first_link

    asyncio.run(again())
    del first_link
    gc.collect()


# --- an impostor consumer: what the client sends, and replies it must refuse ---------------


class Impostor:
    """Consumes a queue of its own in place of modeld: hands each request (its properties and
    envelope) to `answer`, which returns the replies to publish to its reply_to, as
    (correlation_id, bytes) pairs."""

    def __init__(self, broker: RabbitMQServer, answer) -> None:
        self.broker = broker
        self.queue = fresh_name("impostor")
        self.answer = answer
        self.seen: list[tuple[pika.BasicProperties, redis_pb2.RequestEnvelope]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the impostor did not start"

    @property
    def url(self) -> str:
        return f"{self.broker.url()}?queue={self.queue}"

    def _run(self) -> None:
        connection = self.broker.connection()
        channel = connection.channel()
        channel.queue_declare(self.queue, auto_delete=True)
        channel.basic_consume(self.queue, self._on_message, auto_ack=True)
        self._ready.set()
        while not self._stop.is_set():
            connection.process_data_events(time_limit=0.05)
        connection.close()

    def _on_message(self, channel, method, properties, body) -> None:
        envelope = redis_pb2.RequestEnvelope.FromString(body)
        self.seen.append((properties, envelope))
        for correlation_id, reply in self.answer(envelope, properties):
            channel.basic_publish("", properties.reply_to, reply,
                                  pika.BasicProperties(correlation_id=correlation_id))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def impostor(rabbitmq: RabbitMQServer) -> Iterator:
    started: list[Impostor] = []

    def start(answer) -> Impostor:
        started.append(Impostor(rabbitmq, answer))
        return started[-1]

    yield start
    for one in started:
        one.close()


def _ready_reply(envelope, request_id=None) -> bytes:
    reply = redis_pb2.ReplyEnvelope(request_id=envelope.request_id if request_id is None
                                    else request_id)
    reply.server_ready.ready = True
    return reply.SerializeToString()


def test_each_call_sends_a_persistent_envelope_with_its_deadline(impostor):
    consumer = impostor(lambda envelope, properties: [(properties.correlation_id,
                                                       _ready_reply(envelope))])
    with modeld.Client(consumer.url, timeout=7) as client:
        sent_at = time.time()
        assert client.ready() is True
        assert client.ready(timeout=3) is True
        reply_queues = [_link(client).reply_queue] * 2

    async def main():
        async with modeld.aio.Client(consumer.url, timeout=5) as client:
            assert await client.ready() is True
            return client._transport._state().link.reply_queue

    reply_queues.append(asyncio.run(main()))
    (_, first), (_, second), (_, third) = consumer.seen
    for (properties, envelope), reply_queue in zip(consumer.seen, reply_queues):
        assert uuid.UUID(hex=envelope.request_id).version == 4
        assert envelope.WhichOneof("payload") == "server_ready"
        assert envelope.reply_key == ""  # the reply goes to reply_to
        assert properties.correlation_id == envelope.request_id
        assert properties.reply_to == reply_queue
        assert properties.delivery_mode == 2
        assert properties.content_type == "application/x-protobuf"
        assert properties.type == "modeld.redis.RequestEnvelope"
        assert properties.headers["modeld-deadline-ms"] == envelope.deadline_unix_ms
    assert len({first.request_id, second.request_id, third.request_id}) == 3
    assert abs(first.deadline_unix_ms / 1000 - (sent_at + 7)) < 1.0
    assert abs(second.deadline_unix_ms / 1000 - (sent_at + 3)) < 1.0
    assert abs(third.deadline_unix_ms / 1000 - (sent_at + 5)) < 2.0


def test_without_a_timeout_no_deadline_is_sent(impostor):
    consumer = impostor(lambda envelope, properties: [(properties.correlation_id,
                                                       _ready_reply(envelope))])
    with modeld.Client(consumer.url, timeout=None) as client:
        assert client.ready()
    ((properties, envelope),) = consumer.seen
    assert envelope.deadline_unix_ms == 0 and not properties.headers


def test_unknown_and_late_replies_are_dropped(impostor):
    """Before each call's reply the impostor sends one that no call asked for: dropped, never
    taken for the answer of the call waiting, or of a later one."""
    def answer(envelope, properties):
        return [(uuid.uuid4().hex, _ready_reply(envelope, "nobody's")),
                (properties.correlation_id, _ready_reply(envelope))]

    consumer = impostor(answer)
    with modeld.Client(consumer.url, timeout=10) as client:
        for _ in range(3):
            assert client.ready() is True
        assert _link(client).dropped == 3
    assert len(consumer.seen) == 3


def test_a_reply_for_another_request_is_refused(impostor):
    consumer = impostor(lambda envelope, properties: [(properties.correlation_id,
                                                       _ready_reply(envelope, "someone-else"))])
    with modeld.Client(consumer.url, timeout=5, retries=3) as client:
        with pytest.raises(modeld.ModeldError) as info:
            client.ready()
    assert info.value.code == "MISROUTED"
    assert "'someone-else'" in info.value.message
    assert len(consumer.seen) == 1  # not retried: another try would not fix it


@pytest.mark.parametrize("reply,error,message", [
    (b"\xff\xfe not protobuf", modeld.ModeldError, "not a ReplyEnvelope"),
    (redis_pb2.ReplyEnvelope(code=8, message="queue full"), modeld.ServerBusy, "queue full"),
])
def test_malformed_and_error_replies(impostor, reply, error, message):
    def answer(envelope, properties):
        if isinstance(reply, bytes):
            return [(properties.correlation_id, reply)]
        copy = redis_pb2.ReplyEnvelope()
        copy.CopyFrom(reply)
        copy.request_id = envelope.request_id
        return [(properties.correlation_id, copy.SerializeToString())]

    consumer = impostor(answer)
    with modeld.Client(consumer.url, timeout=5) as client:
        with pytest.raises(error, match=message):
            client.model_ready("m")


def test_aio_drops_unknown_replies_and_refuses_misrouted_ones(impostor):
    good = impostor(lambda envelope, properties: [
        (uuid.uuid4().hex, _ready_reply(envelope)),
        (properties.correlation_id, _ready_reply(envelope))])
    bad = impostor(lambda envelope, properties: [(properties.correlation_id,
                                                  _ready_reply(envelope, "someone-else"))])

    async def main():
        async with modeld.aio.Client(good.url, timeout=10) as client:
            assert all(await asyncio.gather(*[client.ready() for _ in range(5)]))
            assert client._transport._state().link.dropped == 5
        async with modeld.aio.Client(bad.url, timeout=10) as client:
            await client.ready()

    with pytest.raises(modeld.ModeldError) as info:
        asyncio.run(main())
    assert info.value.code == "MISROUTED"


# --- no modeld: no queue, or a queue nobody consumes ----------------------------------------


def test_a_queue_that_does_not_exist_is_unavailable_at_once(rabbitmq):
    queue = fresh_name("nobody-declared")
    for make in (modeld.Client, modeld.aio.Client):
        client = make(f"{rabbitmq.url()}?queue={queue}", timeout=10, retries=2, backoff=0.01)
        calls = []
        original = client._transport.ready

        def counting(*args, original=original):
            calls.append(args)
            return original(*args)

        client._transport.ready = counting
        started = time.monotonic()
        with pytest.raises(modeld.Unavailable, match=f"no queue '{queue}'"):
            if make is modeld.Client:
                client.ready()
                client.close()
            else:
                async def main(client=client):
                    async with client:
                        await client.ready()

                asyncio.run(main())
        assert time.monotonic() - started < 10  # returned by the broker, not waited out
        assert len(calls) == 3  # retried: modeld may be about to declare it


def test_a_queue_nobody_consumes_is_deadline_exceeded(rabbitmq):
    queue = fresh_name("unconsumed")
    with rabbitmq.connection() as connection:
        connection.channel().queue_declare(queue, durable=True)
    with modeld.Client(f"{rabbitmq.url()}?queue={queue}", timeout=0.5) as client:
        assert client.live() is True  # the broker answers; no modeld does
        started = time.monotonic()
        with pytest.raises(modeld.DeadlineExceeded, match="0.5s"):
            client.predict("linear", [[1.0, 2.0, 3.0]])
        assert 0.45 <= time.monotonic() - started
    # The request waits in the queue with its deadline: a modeld that takes it later answers
    # DEADLINE_EXCEEDED without running it.
    with rabbitmq.connection() as connection:
        method, properties, body = connection.channel().basic_get(queue, auto_ack=True)
    envelope = redis_pb2.RequestEnvelope.FromString(body)
    assert envelope.WhichOneof("payload") == "metadata"  # predict() asks for it first
    assert properties.headers["modeld-deadline-ms"] == envelope.deadline_unix_ms
    assert envelope.deadline_unix_ms / 1000 < time.time()


# --- the broker going away ------------------------------------------------------------------


def test_no_broker_is_unavailable_after_the_retries(closed_port):
    url = f"amqp://u:p@127.0.0.1:{closed_port}/"
    with modeld.Client(url, timeout=10, retries=2, backoff=0.01) as client:
        calls = count(client, "live")
        with pytest.raises(modeld.Unavailable, match=f"cannot reach the AMQP broker at "
                                                     f"127.0.0.1:{closed_port}"):
            client.live()
        assert len(calls) == 3

    async def main():
        async with modeld.aio.Client(url, timeout=10, retries=1, backoff=0.01) as client:
            calls = count(client, "ready")
            try:
                await client.ready()
            finally:
                assert len(calls) == 2

    with pytest.raises(modeld.Unavailable, match="cannot reach the AMQP broker"):
        asyncio.run(main())


def test_calls_waiting_when_the_broker_dies_are_unavailable_at_once():
    """Sync and asyncio calls waiting for a reply (on a queue nobody consumes) fail with
    Unavailable as soon as the connection breaks, not at their timeout; once the broker is
    back, the same clients connect again."""
    own = RabbitMQServer()
    try:
        queue = fresh_name("unconsumed")
        with own.connection() as connection:
            connection.channel().queue_declare(queue, durable=True)
        url = f"{own.url()}?queue={queue}"
        sync_client = modeld.Client(url, timeout=120, retries=0)
        aio_client = modeld.aio.Client(url, timeout=120, retries=0)
        outcomes: dict[str, BaseException | None] = {}
        waiting = threading.Barrier(3)

        def sync_call() -> None:
            sync_client.live()
            waiting.wait(30)
            try:
                sync_client.ready()
                outcomes["sync"] = None
            except BaseException as error:  # noqa: BLE001 - checked below
                outcomes["sync"] = error

        async def aio_call() -> None:
            await aio_client.live()
            waiting.wait(30)
            try:
                await aio_client.ready()
                outcomes["aio"] = None
            except BaseException as error:  # noqa: BLE001 - checked below
                outcomes["aio"] = error

        threads = [threading.Thread(target=sync_call),
                   threading.Thread(target=asyncio.run, args=(aio_call(),))]
        for thread in threads:
            thread.start()
        waiting.wait(30)
        wait_until(lambda: own.rabbitmqctl("list_queues", "name", "messages").count(
            f"{queue}\t2") == 1, what="both requests in the queue")
        killed = time.monotonic()
        own.kill()
        for thread in threads:
            thread.join(timeout=30)
        assert time.monotonic() - killed < 30
        for api in ("sync", "aio"):
            assert isinstance(outcomes[api], modeld.Unavailable), (api, outcomes[api])
            assert "lost the connection to the AMQP broker" in outcomes[api].message
        own.start()
        assert sync_client.live()

        async def aio_live():
            async with aio_client:
                return await aio_client.live()

        assert asyncio.run(aio_live())
        sync_client.close()
    finally:
        own.close()


def test_client_recovers_when_the_broker_restarts(amqp_repository):
    """A call waiting when the broker dies fails at once with Unavailable; while the broker is
    down calls are Unavailable (retried within the timeout); once it is back, and modeld has
    reconnected, the client opens a new connection by itself."""
    own = RabbitMQServer()
    process = None
    try:
        process = start_modeld_on_amqp(amqp_repository, own)
        with modeld.Client(process.amqp_url, timeout=30, retries=0) as client:
            assert client.predict("id_fp32", [[1.0]]).tolist() == [[1.0]]
            first = _link(client)
            outcome: list[BaseException | None] = []

            def waiting_call() -> None:
                try:
                    client.predict("slow", [1.0])
                    outcome.append(None)
                except BaseException as error:  # noqa: BLE001 - checked below
                    outcome.append(error)

            caller = threading.Thread(target=waiting_call)
            caller.start()
            wait_until(lambda: any(w.sent for w in list(first._waiting.values())),
                       what="the call published")
            own.kill()
            caller.join(timeout=SLOW_MS / 1000 + 10)
            assert len(outcome) == 1 and isinstance(outcome[0], modeld.Unavailable), outcome
            assert "lost the connection to the AMQP broker" in outcome[0].message
            with pytest.raises(modeld.Unavailable, match="cannot reach the AMQP broker"):
                client.predict("id_fp32", [[2.0]])
            own.start()
            client._policy.retries = 200  # retried until modeld consumes again
            assert client.predict("id_fp32", [[3.0]]).tolist() == [[3.0]]
            assert _link(client) is not first and first.error is not None
        assert process.running()
    finally:
        if process is not None:
            stop_server(process)
        own.close()


def test_close_ends_the_connection_and_its_thread(amqp_server):
    client = modeld.Client(amqp_server.amqp_url, timeout=20)
    assert client.live()
    link = _link(client)
    client.close()
    assert not link._thread.is_alive() and link.connection.is_closed
    with pytest.raises(modeld.ModeldError) as info:
        client.live()
    assert info.value.code == "CLOSED"
    # A client dropped without close() is closed when it is collected.
    dropped = modeld.Client(amqp_server.amqp_url, timeout=20)
    assert dropped.live()
    link = _link(dropped)
    del dropped
    gc.collect()
    link._thread.join(timeout=10)
    assert not link._thread.is_alive() and link.connection.is_closed


# --- credentials and TLS --------------------------------------------------------------------


def test_refused_credentials_and_vhosts_are_not_retried(rabbitmq):
    cases = [(rabbitmq.url(password="wrong-password-42"), "UNAUTHENTICATED", "refused the login"),
             (rabbitmq.url(vhost="no-such-vhost"), "AMQP_ERROR", "no-such-vhost")]
    for url, code, message in cases:
        with modeld.Client(url, timeout=10, retries=3) as client:
            calls = count(client, "live")
            with pytest.raises(modeld.ModeldError, match=message) as info:
                client.live()
        assert info.value.code == code and len(calls) == 1
        assert "wrong-password-42" not in info.value.message

        async def main(url=url):
            async with modeld.aio.Client(url, timeout=10, retries=3) as client:
                await client.live()

        with pytest.raises(modeld.ModeldError, match=message) as info:
            asyncio.run(main())
        assert info.value.code == code


def count(client, method):
    calls: list[tuple] = []
    original = getattr(client._transport, method)
    setattr(client._transport, method, lambda *args: calls.append(args) or original(*args))
    return calls


def test_amqps(amqp_server, rabbitmq):
    queue = amqp_server.queue
    url = f"{rabbitmq.url(tls=True)}?queue={queue}"
    with modeld.Client(url, timeout=20, tls_ca=str(rabbitmq.pki.ca)) as client:
        assert client.predict("id_fp32", [[8.0]]).tolist() == [[8.0]]

    async def main():
        async with modeld.aio.Client(url, timeout=20, tls_ca=str(rabbitmq.pki.ca)) as client:
            return (await client.predict("id_fp32", [[9.0]])).tolist()

    assert asyncio.run(main()) == [[9.0]]
    # Without the CA, the broker's certificate is not trusted.
    with modeld.Client(url, timeout=5, retries=0) as client:
        with pytest.raises(modeld.Unavailable, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            client.live()


# --- the command line ----------------------------------------------------------------------


def test_command_line(amqp_server, rabbitmq):
    from test_cli import cli

    result = cli("status", "--model", "linear", "--model", "nope", url=amqp_server.amqp_url)
    assert result.returncode == 1, result.stderr  # nope is not ready
    status = json.loads(result.stdout)
    assert (status["live"], status["ready"], status["models"]) == (
        True, True, {"linear": True, "nope": False})
    assert rabbitmq_password() not in status["url"] and "***" in status["url"]
    result = cli("infer", "id_fp32", "--json", "[[1.5, -2]]", url=amqp_server.amqp_url)
    assert json.loads(result.stdout) == [[1.5, -2.0]], result.stderr
    result = cli("metadata", url=amqp_server.amqp_url)
    assert result.returncode == 1 and "grpc://" in result.stderr
    result = cli("status", url=f"{rabbitmq.url()}?queue=a&queue=b")
    assert result.returncode == 1 and "given twice" in result.stderr
    assert rabbitmq_password() not in result.stderr


def rabbitmq_password() -> str:
    from rabbitmq_server import PASSWORD

    return PASSWORD


# --- pika is optional -----------------------------------------------------------------------


def test_without_pika_the_error_says_how_to_install_it():
    code = """
import sys
sys.modules["pika"] = None  # as if pika and aio-pika were not installed
sys.modules["aio_pika"] = None
import modeld, modeld.aio
for make in (modeld.Client, modeld.aio.Client):
    try:
        make("amqp://127.0.0.1")
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
    assert all('pip install "modeld[amqp]"' in line for line in lines)


def test_amqp_client_loads_no_grpc(amqp_server):
    code = f"""
import json, sys
import modeld
with modeld.Client("{amqp_server.amqp_url}") as client:
    assert client.predict("linear", [[1, 2, 3]]).tolist() == [[9.5]]
print(json.dumps(sorted(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.strip().splitlines()[-1]
    assert '"grpc"' not in loaded and '"torch"' not in loaded and '"redis"' not in loaded
    assert '"pika"' in loaded and '"aio_pika"' not in loaded
