#!/usr/bin/env python3
"""One process of the load generator of bench/amqp_bench.py: closed-loop clients over AMQP
(pika) or over modeld's Redis stream, checking every answer.

Usage (amqp_bench.py starts several at once, with the venv's Python):
    .venv/bin/python bench/harness/amqp_clients.py --transport amqp \
        --url amqp://u:p@127.0.0.1:P/%2F --queue modeld.requests --cases cases.npz \
        --clients 16 --first-client 0 --warmup-seconds 1 --seconds 3

Each client has a connection of its own and ONE request outstanding (closed loop: the answer
sends the next request):

- amqp: a pika SelectConnection with its own channel and exclusive, server-named reply queue
  (consumed with auto-ack); each request is published to --queue on the default exchange with
  reply_to = that queue, a fresh correlation_id and --delivery-mode;
- redis: `XADD modeld:requests MAXLEN ~ 100000 * envelope <RequestEnvelope>` and
  `BLPOP modeld:reply:<request id> 30` written together (one round trip), as modeld's Python
  client and modeld-bench-redis send them, over a plain socket speaking RESP.

All the clients of a process share ONE event loop (pika's IOLoop; the Redis sockets are
registered on it too), so the process spends its CPU on messages rather than on threads
taking turns at the GIL: about 4 times less CPU per request than a thread per client with
pika's BlockingConnection, on the 2-core machine this was written on. Both transports go
through the same loop, the same request building and the same checks.

The body is the same in both: a modeld.redis.RequestEnvelope (fresh request_id, a deadline 30 s
ahead) holding a ModelInferRequest of ONE item, one of the --cases inputs in
raw_input_contents. Every answer is checked against ITS request: its correlation_id (amqp) and
its ReplyEnvelope.request_id must be the request's, and its output must equal the expected
output of the request's input (from --cases, computed by the harness with torch; rtol 1e-4,
atol 1e-5: batching may change the last bits). An answer failing any of these is WRONG and
never counted as a success; so is an answer arriving when the client has no request
outstanding. An answer to an earlier request of the same client that was given up after 30 s
is counted apart (LATE), not as wrong.

Start: each process connects all its clients, prints "ready", and reads the common start time
(CLOCK_MONOTONIC ns) from stdin, so the processes of a level measure the same window. At the
end it prints one JSON line: latencies (ns, send to answer) of the correct answers that arrived
inside the window, requests sent inside it, answers checked and wrong answers by kind (over the
whole level, warm-up included), errors by code (with an example message each), and this
process's CPU seconds over the window.
"""

import argparse
import json
import os
import random
import resource
import socket
import sys
import time
import uuid

import numpy as np
import pika
from pika.adapters.select_connection import IOLoop

from modeld._proto import grpc_service_pb2, redis_pb2

STREAM = b"modeld:requests"
REPLY_PREFIX = "modeld:reply:"
DEADLINE_S = 30
RTOL, ATOL = 1e-4, 1e-5
CODES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
         5: "NOT_FOUND", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED",
         13: "INTERNAL", 14: "UNAVAILABLE"}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Run:
    """What the clients of this process share: the loop, the cases, the window, the tallies."""

    def __init__(self, args, loop):
        self.args, self.loop = args, loop
        cases = np.load(args.cases)
        self.expected = cases["expected"].astype(np.float32).reshape(len(cases["expected"]), -1)
        self.expected_bytes = [row.tobytes() for row in self.expected]
        self.tolerance = ATOL + RTOL * np.abs(self.expected)  # np.allclose's, precomputed
        # The infer part of each case, serialized once: a request is its id fields followed by
        # it (concatenated protobuf messages merge, so this is one RequestEnvelope).
        self.infer_parts = []
        for x in cases["inputs"].astype(np.float32):
            request = grpc_service_pb2.ModelInferRequest(model_name=args.model)
            request.inputs.add(name=args.input_name, datatype="FP32", shape=[1, *x.shape])
            request.raw_input_contents.append(x.tobytes())
            self.infer_parts.append(redis_pb2.RequestEnvelope(infer=request).SerializeToString())
        self.nonce = uuid.uuid4().hex[:12]
        self.measure_start = self.measure_end = None
        self.latencies_ns, self.sent, self.checked = [], 0, 0
        self.wrong, self.errors, self.examples = {}, {}, {}
        self.clients, self.connected, self.finished = [], 0, 0
        self.cpu = {}

    def tally(self, table, key, example):
        table[key] = table.get(key, 0) + 1
        self.examples.setdefault(key, example)

    def client_connected(self):
        self.connected += 1
        if self.connected == len(self.clients):
            print("ready", flush=True)
            self.loop.add_handler(sys.stdin.fileno(), self.on_start_time, IOLoop.READ)

    def client_failed(self, client, message):
        """A connection that could not open or broke: counted; the process exits non-zero."""
        self.tally(self.errors, "CONNECTION", f"client {client.index}: {message}")
        if self.measure_start is None:
            sys.exit(f"client {client.index} could not connect: {message}")
        client.finish()

    def on_start_time(self, fd, _events):
        self.loop.remove_handler(fd)
        start_ns = int(os.read(fd, 64).decode().strip())
        self.measure_start = start_ns + int(self.args.warmup_seconds * 1e9)
        self.measure_end = self.measure_start + int(self.args.seconds * 1e9)
        for name, at in (("start", self.measure_start), ("end", self.measure_end)):
            self.loop.call_later(max(0.0, (at - time.monotonic_ns()) / 1e9),
                                 lambda name=name: self.cpu.__setitem__(name, cpu_seconds()))
        for client in self.clients:
            self.loop.call_later(max(0.0, (start_ns - time.monotonic_ns()) / 1e9), client.next)
        if self.args.transport == "amqp":
            self.loop.call_later(1.0, self.check_deadlines)

    def check_deadlines(self):
        """AMQP has no server-side timeout: a request unanswered for DEADLINE_S is given up."""
        now = time.monotonic_ns()
        for client in self.clients:
            if client.outstanding and now - client.outstanding[2] > DEADLINE_S * 1e9:
                client.give_up(now)
        if self.finished < len(self.clients):
            self.loop.call_later(1.0, self.check_deadlines)

    def client_finished(self):
        self.finished += 1
        if self.finished == len(self.clients):
            self.loop.call_later(0.2, self.loop.stop)  # lets the connections' closes go out

    def report(self):
        return {"latencies_ns": self.latencies_ns, "sent": self.sent, "checked": self.checked,
                "wrong": self.wrong,
                "errors": self.errors, "examples": self.examples,
                "cpu_seconds": self.cpu.get("end", cpu_seconds()) - self.cpu.get("start", 0)}


class Client:
    """One closed-loop client: next() sends a request, answered() checks its answer."""

    def __init__(self, run, index):
        self.run, self.index = run, index
        self.rng = random.Random(index)
        self.sequence = 0
        self.outstanding = None  # (request id, case, send time ns)
        self.given_up = set()
        self.done = False

    def next(self):
        run = self.run
        now = time.monotonic_ns()
        if self.done:
            return
        if now >= run.measure_end:
            self.finish()
            return
        self.sequence += 1
        case = self.rng.randrange(len(run.infer_parts))
        request_id = f"{run.nonce}-{self.index}-{self.sequence}"
        body = redis_pb2.RequestEnvelope(
            request_id=request_id, reply_key=REPLY_PREFIX + request_id,
            deadline_unix_ms=int((time.time() + DEADLINE_S) * 1000)).SerializeToString()
        run.sent += now >= run.measure_start
        self.outstanding = (request_id, case, now)
        self.send(request_id, body + run.infer_parts[case])

    def answered(self, correlation_id, payload):
        """An answer for this client (payload None: the server-side wait timed out)."""
        run, done = self.run, time.monotonic_ns()
        run.checked += 1
        if self.outstanding is None or correlation_id != self.outstanding[0]:
            if correlation_id in self.given_up:
                self.given_up.discard(correlation_id)
                run.tally(run.errors, "LATE", f"{correlation_id} after {DEADLINE_S} s")
            elif self.outstanding is None:
                run.tally(run.wrong, "extra answer", f"{correlation_id}, none outstanding")
            else:  # not its own: wrong, and the client keeps waiting for its own
                run.tally(run.wrong, "correlation_id",
                          f"{correlation_id} for {self.outstanding[0]}")
            return
        request_id, case, sent_ns = self.outstanding
        self.outstanding = None
        counted = run.measure_start <= done < run.measure_end
        if payload is None:
            if counted:
                run.tally(run.errors, "DEADLINE_EXCEEDED", f"no answer in {DEADLINE_S} s")
        else:
            reply = redis_pb2.ReplyEnvelope()
            reply.ParseFromString(payload)
            if reply.request_id != request_id:
                run.tally(run.wrong, "request_id", f"{reply.request_id} for {request_id}")
            elif reply.code != 0:
                if counted:
                    run.tally(run.errors, CODES.get(reply.code, str(reply.code)), reply.message)
            else:
                contents = reply.infer.raw_output_contents
                if not (contents and (contents[0] == run.expected_bytes[case] or (
                        len(contents[0]) == len(run.expected_bytes[case]) and bool((np.abs(
                            np.frombuffer(contents[0], dtype=np.float32) - run.expected[case])
                            <= run.tolerance[case]).all())))):
                    run.tally(run.wrong, "values", f"{request_id}: not its input's output")
                elif counted:
                    run.latencies_ns.append(done - sent_ns)
        self.next()

    def give_up(self, now):
        request_id = self.outstanding[0]
        self.given_up.add(request_id)
        self.outstanding = None
        if self.run.measure_start <= now < self.run.measure_end:
            self.run.tally(self.run.errors, "DEADLINE_EXCEEDED", f"no answer in {DEADLINE_S} s")
        self.next()

    def finish(self):
        if not self.done:
            self.done = True
            self.close()
            self.run.client_finished()


class OneWriteConnection(pika.SelectConnection):
    """pika's SelectConnection writing each message's frames (method, header, body) with one
    send() instead of one each: the same bytes on the wire, a third of the system calls and of
    the broker's wake-ups. Overrides a private method of pika 1.x (kept as it is if missing)."""

    def _output_marshaled_frames(self, marshaled_frames):
        if len(marshaled_frames) > 1:
            data = b"".join(marshaled_frames)
            self.bytes_sent += len(data)
            self.frames_sent += len(marshaled_frames)
            self._adapter_emit_data(data)
        else:
            super()._output_marshaled_frames(marshaled_frames)


class AmqpClient(Client):
    def __init__(self, run, index):
        super().__init__(run, index)
        self.connection = OneWriteConnection(
            pika.URLParameters(run.args.url), on_open_callback=self.on_open,
            on_open_error_callback=lambda _c, error: run.client_failed(self, repr(error)),
            on_close_callback=self.on_close, custom_ioloop=run.loop)

    def on_open(self, connection):
        connection.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel):
        self.channel = channel
        channel.queue_declare("", exclusive=True, callback=self.on_declared)

    def on_declared(self, frame):
        self.reply_queue = frame.method.queue
        self.channel.basic_consume(self.reply_queue, self.on_message, auto_ack=True,
                                   callback=lambda _frame: self.run.client_connected())

    def on_message(self, _channel, _method, properties, body):
        self.answered(properties.correlation_id, body)

    def on_close(self, _connection, reason):
        if not self.done:
            self.run.client_failed(self, repr(reason))

    def send(self, request_id, body):
        self.channel.basic_publish(
            "", self.run.args.queue, body,
            pika.BasicProperties(reply_to=self.reply_queue, correlation_id=request_id,
                                 delivery_mode=self.run.args.delivery_mode))

    def close(self):
        if self.connection.is_open:
            self.connection.close()


class RespError(Exception):
    pass


def resp_command(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        part = part if isinstance(part, bytes) else str(part).encode()
        out += [b"$%d\r\n" % len(part), part, b"\r\n"]
    return b"".join(out)


def resp_parse(buffer, pos):
    """(value, next position) of the RESP2 reply at `pos`, or None while it is incomplete."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line = buffer[pos], bytes(buffer[pos + 1:end])
    if kind == ord("+"):
        return line, end + 2
    if kind == ord("-"):
        return RespError(line.decode(errors="replace")), end + 2
    if kind == ord(":"):
        return int(line), end + 2
    if kind == ord("$"):
        size = int(line)
        if size < 0:
            return None, end + 2
        if len(buffer) < end + 4 + size:
            return None
        return bytes(buffer[end + 2:end + 2 + size]), end + 4 + size
    if kind == ord("*"):
        count, items, at = int(line), [], end + 2
        if count < 0:
            return None, at
        for _ in range(count):
            parsed = resp_parse(buffer, at)
            if parsed is None:
                return None
            items.append(parsed[0])
            at = parsed[1]
        return items, at
    raise RespError(f"unexpected RESP type {chr(kind)!r}")


class RedisClient(Client):
    def __init__(self, run, index):
        super().__init__(run, index)
        url = run.args.url.split("://", 1)[1].split("/", 1)[0]
        host, port = url.rsplit(":", 1)
        self.socket = socket.create_connection((host, int(port)), timeout=10)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.settimeout(None)  # read only when the loop says readable
        self.buffer = bytearray()
        self.replies = []
        run.loop.add_handler(self.socket.fileno(), self.on_readable, IOLoop.READ)
        run.loop.add_callback_threadsafe(run.client_connected)

    def send(self, request_id, body):
        self.socket.sendall(
            resp_command(b"XADD", STREAM, b"MAXLEN", b"~", b"100000", b"*", b"envelope", body)
            + resp_command(b"BLPOP", REPLY_PREFIX + request_id, DEADLINE_S))

    def on_readable(self, _fd, _events):
        try:
            data = self.socket.recv(1 << 16)
        except OSError as error:
            data, failure = b"", repr(error)
        else:
            failure = "the connection was closed"
        if not data:
            self.run.loop.remove_handler(self.socket.fileno())
            if not self.done:
                self.run.client_failed(self, failure)
            return
        self.buffer += data
        at = 0
        while (parsed := resp_parse(self.buffer, at)) is not None:
            self.replies.append(parsed[0])
            at = parsed[1]
        del self.buffer[:at]
        while len(self.replies) >= 2:
            added, popped = self.replies.pop(0), self.replies.pop(0)
            request_id = self.outstanding[0] if self.outstanding else None
            if isinstance(added, RespError) or isinstance(popped, RespError):
                error = added if isinstance(added, RespError) else popped
                self.run.tally(self.run.errors, "REDIS_ERROR", str(error))
                self.outstanding = None
                self.next()
            elif popped is None:
                self.answered(request_id, None)
            else:
                self.answered(request_id, popped[1])

    def close(self):
        try:
            self.run.loop.remove_handler(self.socket.fileno())
        except (KeyError, ValueError):
            pass
        self.socket.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transport", choices=("amqp", "redis"), required=True)
    parser.add_argument("--url", required=True, help="amqp://…, or redis://host:port/db")
    parser.add_argument("--queue", default="modeld.requests", help="amqp: the request queue")
    parser.add_argument("--delivery-mode", type=int, default=1, choices=(1, 2),
                        help="amqp: 1 transient, 2 persistent")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--input-name", default="x")
    parser.add_argument("--cases", required=True, help=".npz with inputs [K,...], expected [K,...]")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--first-client", type=int, default=0, help="index of this process's first")
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.transport == "redis" and not args.url.endswith("/0"):
        sys.exit("redis: database 0 only (XADD and BLPOP go to the connection's database)")

    loop = IOLoop()
    run = Run(args, loop)
    kind = AmqpClient if args.transport == "amqp" else RedisClient
    run.clients = [kind(run, args.first_client + i) for i in range(args.clients)]
    loop.start()
    print(json.dumps(run.report()), flush=True)
    if run.errors.get("CONNECTION"):
        sys.exit(1)


if __name__ == "__main__":
    main()
