"""train() without modeld: the messages of each transport, the answers it reads, and that a
training step is never sent twice (no retry, kept-alive connections checked before use)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import socket
import threading
import time
import uuid

import numpy as np
import pytest
from client_support import TRANSPORTS, count_calls

import modeld
import modeld.aio
from modeld import _redis_wire, _training
from modeld._codec import ModelSpec, TensorSpec, encode_inputs
from modeld._common import ClientBase, parse_url
from modeld._proto import redis_pb2, training_pb2
from modeld._redis_url import parse_redis_url
from modeld._rest import Response, RestApi

#: A model as its metadata declares it: the targets of a step are named after its outputs.
SPEC = ModelSpec(
    "line", ("1",), "pytorch_libtorch",
    (TensorSpec("x", "FP32", (-1, 1)), TensorSpec("ids", "INT64", (-1, 2))),
    (TensorSpec("y", "FP32", (-1, 1)), TensorSpec("label", "BYTES", (-1, 1))),
)


def prepare(inputs, targets):
    return ClientBase._prepare_train(SPEC, inputs, targets)


def train_response(step=1, loss=0.5, model="line", version="1", checkpoint_step=0):
    return training_pb2.TrainResponse(model_name=model, model_version=version, id="",
                                      step=step, loss=loss, checkpoint_step=checkpoint_step)


# --- the result ---------------------------------------------------------------------------


def test_train_result_is_a_frozen_dataclass_exported_by_modeld():
    assert "TrainResult" in modeld.__all__
    result = modeld.TrainResult("line", 1, 12, 0.25, 10)
    assert (result.model, result.version, result.step, result.loss, result.checkpoint_step) == (
        "line", 1, 12, 0.25, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.step = 13  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(result)] == [
        "model", "version", "step", "loss", "checkpoint_step"]


# --- encoding: the inputs and targets -----------------------------------------------------


def test_targets_are_cast_to_the_datatype_of_their_output():
    inputs, targets = prepare({"x": [[0.5], [1.0]], "ids": [[1, 2], [3, 4]]},
                              {"y": [[2], [5]], "label": [["a"], ["bé"]]})
    assert [(t.name, t.datatype, t.shape) for t in inputs] == [
        ("x", "FP32", (2, 1)), ("ids", "INT64", (2, 2))]
    assert [(t.name, t.datatype, t.shape) for t in targets] == [
        ("y", "FP32", (2, 1)), ("label", "BYTES", (2, 1))]
    assert np.frombuffer(targets[0].data, "<f4").tolist() == [2.0, 5.0]  # ints to FP32
    assert targets[1].data == b"\x01\x00\x00\x00a\x03\x00\x00\x00b\xc3\xa9"


def test_undeclared_targets_keep_their_own_type_and_errors_name_the_target():
    (target,) = encode_inputs({"z": [[1.5]]}, SPEC, kind="target")
    assert target.datatype == "FP64"
    with pytest.raises(modeld.InvalidInput, match="target 'z' has numpy dtype complex64"):
        prepare({"x": [[1.0]]}, {"z": np.ones((1, 1), np.complex64)})
    with pytest.raises(modeld.InvalidInput, match="target 'y' is not a rectangular array"):
        prepare({"x": [[1.0]]}, {"y": [[1.0], [1.0, 2.0]]})
    with pytest.raises(TypeError, match="targets must be a mapping of target name"):
        prepare({"x": [[1.0]]}, [("y", [[1.0]])])
    with pytest.raises(TypeError, match="inputs must be a mapping of input name"):
        prepare([[1.0]], {"y": [[1.0]]})


def test_train_id():
    assert _training.train_id(None) == ""
    assert _training.train_id("req-7") == "req-7"
    with pytest.raises(TypeError):
        _training.train_id(7)  # type: ignore[arg-type]


# --- gRPC and Redis: TrainRequest ---------------------------------------------------------


def test_field_numbers_are_the_wire_contract():
    """proto/modeld/training.proto and redis.proto: numbers are the contract."""
    def numbers(message):
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert numbers(training_pb2.TrainRequest) == {
        "model_name": 1, "model_version": 2, "id": 3, "inputs": 4, "targets": 5,
        "raw_input_contents": 6}
    assert numbers(training_pb2.TrainResponse) == {
        "model_name": 1, "model_version": 2, "id": 3, "step": 4, "loss": 5,
        "checkpoint_step": 6}
    assert numbers(redis_pb2.RequestEnvelope)["train"] == 8
    assert numbers(redis_pb2.ReplyEnvelope)["train"] == 8
    inputs = training_pb2.TrainRequest.DESCRIPTOR.fields_by_name["inputs"].message_type
    assert inputs.name == "InferInputTensor"  # ModelInferRequest's, as for inference
    # A TrainRequest holds the same types as ModelInferRequest's inputs, so the gRPC path is
    # modeld's service name while the messages live in the package's own proto packages.
    from modeld._grpc import TRAIN_METHOD

    assert TRAIN_METHOD == "/modeld.training.Training/Train"


def test_grpc_train_request_carries_the_inputs_then_the_targets():
    inputs, targets = prepare({"x": [[0.5], [1.0]], "ids": [[1, 2], [3, 4]]},
                              {"y": [[2.0], [5.0]]})
    request = _training.grpc_train_request("line", "3", "req-1", inputs, targets)
    parsed = training_pb2.TrainRequest.FromString(request.SerializeToString())
    assert (parsed.model_name, parsed.model_version, parsed.id) == ("line", "3", "req-1")
    assert [(t.name, t.datatype, list(t.shape)) for t in parsed.inputs] == [
        ("x", "FP32", [2, 1]), ("ids", "INT64", [2, 2])]
    assert [(t.name, t.datatype, list(t.shape)) for t in parsed.targets] == [
        ("y", "FP32", [2, 1])]
    raw = list(parsed.raw_input_contents)
    assert len(raw) == 3
    assert np.frombuffer(raw[0], "<f4").tolist() == [0.5, 1.0]
    assert np.frombuffer(raw[1], "<i8").tolist() == [1, 2, 3, 4]
    assert np.frombuffer(raw[2], "<f4").tolist() == [2.0, 5.0]
    # no typed contents: the tensors travel as raw bytes only
    assert not any(t.HasField("contents") for t in [*parsed.inputs, *parsed.targets])


def test_grpc_train_result():
    result = _training.grpc_train_result(train_response(12, 0.25, checkpoint_step=10))
    assert result == modeld.TrainResult("line", 1, 12, 0.25, 10)
    with pytest.raises(modeld.ModeldError, match="model_version '' is not a number"):
        _training.grpc_train_result(train_response(version=""))


@pytest.mark.parametrize("url,push", [("redis://h/0", "XADD"), ("redis://h/0?list=q", "LPUSH")])
def test_redis_train_call_sends_a_train_envelope(url, push):
    inputs, targets = prepare({"x": [[1.0]]}, {"y": [[5.0]]})
    sent_at = time.time()
    call = _redis_wire.train_call(parse_redis_url(url), "line", "", "req-2", inputs, targets,
                                  4.0)
    assert call.kind == "train" and call.idempotent is False
    command, blpop = call.commands
    assert command[0] == push and blpop[0] == "BLPOP" and blpop[1] == call.reply_key
    envelope = redis_pb2.RequestEnvelope.FromString(command[-1])
    assert envelope.WhichOneof("payload") == "train"
    assert envelope.request_id == call.request_id
    assert abs(envelope.deadline_unix_ms / 1000 - (sent_at + 4.0)) < 1.0
    assert (envelope.train.model_name, envelope.train.id) == ("line", "req-2")
    assert [t.name for t in envelope.train.inputs] == ["x"]
    assert [t.name for t in envelope.train.targets] == ["y"]
    assert len(envelope.train.raw_input_contents) == 2
    # every other kind of call may be pushed again after a connection broke
    assert _redis_wire.server_ready_call(parse_redis_url(url), 1.0).idempotent is True


def test_redis_answer_of_a_train_call():
    inputs, targets = prepare({"x": [[1.0]]}, {"y": [[5.0]]})
    call = _redis_wire.train_call(parse_redis_url("redis://h"), "line", "", "", inputs,
                                  targets, 4.0)
    reply = redis_pb2.ReplyEnvelope(request_id=call.request_id)
    reply.train.CopyFrom(train_response(3, 0.125))
    response = _redis_wire.answer(call, [b"key", reply.SerializeToString()], "here")
    assert _training.grpc_train_result(response) == modeld.TrainResult("line", 1, 3, 0.125, 0)
    wrong = redis_pb2.ReplyEnvelope(request_id=call.request_id)
    wrong.infer.model_name = "line"
    with pytest.raises(modeld.ModeldError, match="carries infer, not train"):
        _redis_wire.answer(call, [b"key", wrong.SerializeToString()], "here")
    refused = redis_pb2.ReplyEnvelope(request_id=call.request_id, code=9,
                                      message="model 'line' is not trainable")
    with pytest.raises(modeld.InvalidInput, match="not trainable") as info:
        _redis_wire.answer(call, [b"key", refused.SerializeToString()], "here")
    assert info.value.code == "FAILED_PRECONDITION"


# --- HTTP: the JSON body and answer -------------------------------------------------------


def test_http_train_request():
    api = RestApi(parse_url("http://h:8000/serving"))
    inputs, targets = prepare({"x": np.array([[0.5], [1.0]]), "ids": [[1, -2], [3, 2**40]]},
                              {"y": [[2.0], [5.0]], "label": [["a"], ["bé"]]})
    request = api.train("my/model", "2", "req-3", inputs, targets)
    assert request.method == "POST"
    assert request.path == "/serving/v2/models/my%2Fmodel/versions/2/train"
    assert request.headers == {"Content-Type": "application/json"}
    assert request.idempotent is False
    assert json.loads(request.body) == {
        "id": "req-3",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 1], "data": [0.5, 1.0]},
            {"name": "ids", "datatype": "INT64", "shape": [2, 2], "data": [1, -2, 3, 2**40]},
        ],
        "targets": [
            {"name": "y", "datatype": "FP32", "shape": [2, 1], "data": [2.0, 5.0]},
            {"name": "label", "datatype": "BYTES", "shape": [2, 1], "data": ["a", "bé"]},
        ],
    }
    # the newest version, no id
    request = api.train("line", "", "", inputs[:1], targets[:1])
    assert request.path == "/serving/v2/models/line/train"
    assert "id" not in json.loads(request.body)
    # every other request may be sent again after a kept-alive connection broke
    assert api.infer("line", "", inputs, None).idempotent is True


def test_http_train_body_is_flat_row_major_json_of_the_values():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::-1]  # a non-contiguous view
    (tensor,) = encode_inputs({"x": x}, None)
    body = json.loads(_training.http_train_body("", [tensor], []))
    assert body == {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3],
                                "data": [2.0, 1.0, 0.0, 5.0, 4.0, 3.0]}], "targets": []}
    (flag,) = encode_inputs({"b": [[True, False]]}, None)
    (half,) = encode_inputs({"h": np.array([0.5], np.float16)}, None)
    body = json.loads(_training.http_train_body("", [flag, half], []))
    assert [t["data"] for t in body["inputs"]] == [[True, False], [0.5]]
    # FP32 values travel exactly: the server reads the double back as the same float
    (third,) = encode_inputs({"x": np.array([1 / 3], np.float32)}, None)
    sent = json.loads(_training.http_train_body("", [third], []))["inputs"][0]["data"][0]
    assert np.float32(sent) == np.float32(1 / 3)


def test_http_train_body_refuses_what_json_cannot_carry():
    (nan,) = encode_inputs({"x": [[math.nan]]}, None)
    with pytest.raises(modeld.InvalidInput, match="NaN or infinity.*grpc://"):
        _training.http_train_body("", [nan], [])
    (binary,) = encode_inputs({"label": np.array([b"\xff\xfe"], dtype=object)}, None)
    with pytest.raises(modeld.InvalidInput, match="target 'label' holds bytes that are not UTF-8"):
        _training.http_train_body("", [], [binary])


def response(status, body, reason="OK"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, reason, {"content-type": "application/json"}, data)


def test_http_train_answer():
    answer = {"model_name": "line", "model_version": "1", "id": "r", "step": 12, "loss": 0.25,
              "checkpoint_step": 10}
    assert RestApi.train_result(response(200, answer)) == modeld.TrainResult(
        "line", 1, 12, 0.25, 10)
    # protobuf's JSON form: 64-bit integers as strings, zero values left out
    assert RestApi.train_result(response(200, {
        "model_name": "line", "model_version": "2", "step": "7"})) == modeld.TrainResult(
        "line", 2, 7, 0.0, 0)
    # a loss that is not finite
    for loss in (None, "NaN"):
        result = RestApi.train_result(response(200, {**answer, "loss": loss}))
        assert math.isnan(result.loss)
    assert RestApi.train_result(response(200, {**answer, "loss": "Infinity"})).loss == math.inf
    for bad in ([1, 2], {"model_version": "1"}, {**answer, "step": "many"},
                {**answer, "model_version": "latest"}):
        with pytest.raises(modeld.ModeldError, match="malformed") as info:
            RestApi.train_result(response(200, bad))
        assert type(info.value) is modeld.ModeldError
    with pytest.raises(modeld.ModeldError, match="malformed JSON"):
        RestApi.train_result(response(200, b"{"))


@pytest.mark.parametrize("status,cls", [
    (400, modeld.InvalidInput), (404, modeld.ModelNotFound), (429, modeld.ServerBusy),
    (503, modeld.Unavailable), (504, modeld.DeadlineExceeded), (500, modeld.ModelFailed),
    (501, modeld.ModeldError),
])
def test_http_train_errors(status, cls):
    with pytest.raises(cls, match="the server's words") as info:
        RestApi.train_result(response(status, {"error": "the server's words"}, "Bad"))
    assert type(info.value) is cls and info.value.code == str(status)


# --- never sent twice ---------------------------------------------------------------------


def seeded(client):
    """The client with SPEC cached as the metadata of model "line": train() goes straight to
    the transport."""
    client._specs[("line", "")] = SPEC
    return client


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_train_is_never_retried(transport, closed_port):
    with seeded(modeld.Client(f"{transport}://127.0.0.1:{closed_port}", timeout=10,
                              retries=3, backoff=0.01)) as client:
        calls = count_calls(client, "train")
        with pytest.raises(modeld.Unavailable):
            client.train("line", {"x": [[1.0]]}, {"y": [[5.0]]})
        assert len(calls) == 1
        # inference, on the same client, is retried
        inferred = count_calls(client, "infer")
        with pytest.raises(modeld.Unavailable):
            client.infer("line", {"x": [[1.0]]})
        assert len(inferred) == 4


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_aio_train_is_never_retried(transport, closed_port):
    async def main():
        async with seeded(modeld.aio.Client(f"{transport}://127.0.0.1:{closed_port}",
                                            timeout=10, retries=3, backoff=0.01)) as client:
            calls = count_calls(client, "train")
            with pytest.raises(modeld.Unavailable):
                await client.train("line", {"x": [[1.0]]}, {"y": [[5.0]]})
            return len(calls)

    assert asyncio.run(asyncio.wait_for(main(), 30)) == 1


def test_train_checks_its_arguments_before_sending():
    with seeded(modeld.Client("http://127.0.0.1:9", retries=0)) as client:
        calls = count_calls(client, "train")
        with pytest.raises(TypeError, match="id must be a str"):
            client.train("line", {"x": [[1.0]]}, {"y": [[5.0]]}, id=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="targets must be a mapping"):
            client.train("line", {"x": [[1.0]]}, [[5.0]])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="model must be a non-empty string"):
            client.train("", {"x": [[1.0]]}, {"y": [[5.0]]})
        assert calls == []


class FakeTrainServer:
    """An HTTP/1.1 server on a thread that answers each request as `script(n)` says, n
    counting requests from 0: "answer" (200 with a train answer of step n + 1, kept alive),
    "answer-close" (the same, then it closes the connection as an idle timeout would) or
    "hang-up" (it closes the connection without answering)."""

    def __init__(self, script) -> None:
        self.script = script
        self.requests: list[tuple[str, dict]] = []
        self.connections = 0
        self.closed = threading.Event()  # set when the server closed a connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    buffer += connection.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                n = len(self.requests)
                self.requests.append((lines[0], json.loads(body) if body else {}))
                action = self.script(n)
                if action == "hang-up":
                    self.closed.set()
                    return
                answer = json.dumps({"model_name": "line", "model_version": "1",
                                     "step": n + 1, "loss": 0.5}).encode()
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode() + answer)
                if action == "answer-close":
                    time.sleep(0.05)  # the answer is read before the close
                    self.closed.set()
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


@pytest.fixture
def fake_train_server():
    servers: list[FakeTrainServer] = []

    def start(script) -> FakeTrainServer:
        servers.append(FakeTrainServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def train_twice(url: str, api: str, server_closed: threading.Event):
    """Two steps with a client of `api` ("sync" or "aio"), waiting between them until
    `server_closed` is set; the results (or errors) of both."""

    def wait_for_close() -> None:
        assert server_closed.wait(5)
        time.sleep(0.05)  # the FIN has arrived

    x1, y1, x2, y2 = {"x": [[1.0]]}, {"y": [[5.0]]}, {"x": [[2.0]]}, {"y": [[8.0]]}
    if api == "sync":
        with seeded(modeld.Client(url, timeout=5, retries=3, backoff=0.01)) as client:
            first = client.train("line", x1, y1)
            wait_for_close()
            try:
                second = client.train("line", x2, y2)
            except modeld.ModeldError as error:
                second = error
            return first, second

    async def main():
        async with seeded(modeld.aio.Client(url, timeout=5, retries=3, backoff=0.01)) as client:
            first = await client.train("line", x1, y1)
            await asyncio.get_running_loop().run_in_executor(None, wait_for_close)
            try:
                second = await client.train("line", x2, y2)
            except modeld.ModeldError as error:
                second = error
            return first, second

    return asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("api", ["sync", "aio"])
def test_http_train_checks_a_kept_alive_connection_first(fake_train_server, api):
    """The server closed the kept-alive connection while it was idle: the step goes out on a
    new connection instead of failing (or being sent twice)."""
    server = fake_train_server(lambda n: "answer-close")
    first, second = train_twice(f"http://127.0.0.1:{server.port}", api, server.closed)
    assert first == modeld.TrainResult("line", 1, 1, 0.5, 0)
    assert second == modeld.TrainResult("line", 1, 2, 0.5, 0)
    assert [line for line, _ in server.requests] == ["POST /v2/models/line/train HTTP/1.1"] * 2
    assert [body["inputs"][0]["data"] for _, body in server.requests] == [[1.0], [2.0]]
    assert server.connections == 2


@pytest.mark.parametrize("api", ["sync", "aio"])
def test_http_train_is_not_sent_again_when_the_connection_breaks(fake_train_server, api):
    """The server took the second step and closed the connection without answering: the
    client cannot tell whether the step ran, so it reports Unavailable, and never sends it
    again (an inference would be sent again on a new connection)."""
    server = fake_train_server(lambda n: "answer" if n == 0 else "hang-up")
    no_wait = threading.Event()
    no_wait.set()
    first, second = train_twice(f"http://127.0.0.1:{server.port}", api, no_wait)
    assert first.step == 1
    assert isinstance(second, modeld.Unavailable), second
    time.sleep(0.2)
    assert len(server.requests) == 2
    assert server.connections == 1


@pytest.mark.parametrize("api", ["sync", "aio"])
def test_redis_train_checks_a_pooled_connection_first(redis_server, api):
    """Redis closed the pooled connection while it was idle: the step goes out on a new one
    (without the check it could only fail: a train call is never pushed twice)."""
    from test_redis import Impostor

    def answer(envelope):
        reply = redis_pb2.ReplyEnvelope(request_id=envelope.request_id)
        assert envelope.WhichOneof("payload") == "train"
        reply.train.CopyFrom(train_response(step=len(consumer.seen)))
        return reply.SerializeToString()

    stream = f"train:{uuid.uuid4().hex[:8]}"
    consumer = Impostor(redis_server, stream, answer)
    url = f"{redis_server.url}/5?stream={stream}"
    admin = redis_server.client(db=5)
    x1, y1, x2, y2 = {"x": [[1.0]]}, {"y": [[5.0]]}, {"x": [[2.0]]}, {"y": [[8.0]]}
    try:
        if api == "sync":
            with seeded(modeld.Client(url, timeout=5, retries=3)) as client:
                first = client.train("line", x1, y1)
                (pooled,) = client._transport._pool.get()._idle
                pooled.send_command("CLIENT", "ID")
                assert admin.client_kill_filter(_id=pooled.read_response()) == 1
                time.sleep(0.05)
                second = client.train("line", x2, y2)
                assert client._transport._pool.get()._idle[0] is not pooled
        else:
            async def main():
                async with seeded(modeld.aio.Client(url, timeout=5, retries=3)) as client:
                    first = await client.train("line", x1, y1)
                    (pooled,) = client._transport._idle()
                    await pooled.send_command("CLIENT", "ID")
                    assert admin.client_kill_filter(_id=await pooled.read_response()) == 1
                    await asyncio.sleep(0.05)
                    second = await client.train("line", x2, y2)
                    assert client._transport._idle()[0] is not pooled
                    return first, second

            first, second = asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        consumer.close()
    assert (first.step, second.step) == (1, 2)
    assert len(consumer.seen) == 2
