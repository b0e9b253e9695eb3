"""The AMQP transport against a private RabbitMQ node (rabbitmq_server.py), driven with pika as
any producer would: the request envelope as the body, correlation_id and reply_to as
properties, the answer read from an exclusive reply queue (docs/amqp.md)."""

import threading
import time
import uuid

import numpy as np
import pika
import pytest

from rabbitmq_server import fresh_name, wait_until
from redis_helpers import (  # the same envelope as the Redis transport's
    ABORTED,
    DEADLINE_EXCEEDED,
    INVALID_ARGUMENT,
    NOT_FOUND,
    OK,
    check_echo,
    envelope,
    infer_request,
    metric,
    output,
    ready,
    rpb,
    write_fake_repository,
)

WAIT_S = 30.0


@pytest.fixture
def broker(rabbitmq):
    return rabbitmq


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_fake_repository(tmp_path_factory.mktemp("amqp_repo"))


def start_modeld(launch, repository, broker, queue, *extra, url=None):
    server = launch(repository, [f"--amqp-url={url or broker.url()}", f"--amqp-queue={queue}",
                                 *extra])
    server.wait_for_log(r"amqp: consuming")
    return server


class Requester:
    """A producer with its own exclusive reply queue, as a web worker would have."""

    def __init__(self, broker, queue):
        self.connection = broker.connection()
        self.channel = self.connection.channel()
        self.queue = queue
        self.reply_queue = self.channel.queue_declare("", exclusive=True).method.queue

    def send(self, message, correlation_id=None, priority=None, headers=None, reply_to=True,
             body=None):
        correlation_id = correlation_id or uuid.uuid4().hex
        self.channel.basic_publish(
            exchange="", routing_key=self.queue,
            body=body if body is not None else message.SerializeToString(),
            properties=pika.BasicProperties(
                correlation_id=correlation_id, delivery_mode=2, priority=priority,
                headers=headers, reply_to=self.reply_queue if reply_to else None))
        return correlation_id

    def replies(self, count, timeout=WAIT_S):
        """`count` replies: {correlation_id: ReplyEnvelope}."""
        got = {}
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(self.reply_queue, auto_ack=True)
            if method is None:
                self.connection.sleep(0.01)
                continue
            reply = rpb.ReplyEnvelope()
            reply.ParseFromString(body)
            got[properties.correlation_id] = reply
        assert len(got) == count, f"{len(got)} of {count} replies within {timeout:.0f}s"
        return got

    def close(self):
        self.connection.close()


def queue_depth(broker, queue):
    with broker.connection() as connection:
        return connection.channel().queue_declare(queue, passive=True).method.message_count


def test_inference_round_trip(launch, repository, broker):
    queue = fresh_name("requests")
    server = start_modeld(launch, repository, broker, queue)
    requester = Requester(broker, queue)
    try:
        sent = {}
        for i in range(20):
            message = envelope(infer_request("echo", [i, i + 1, i + 2, i + 3]))
            sent[requester.send(message)] = (message.request_id, [i, i + 1, i + 2, i + 3])
        replies = requester.replies(len(sent))
        for correlation_id, (request_id, values) in sent.items():
            check_echo(replies[correlation_id], request_id, values)
        wait_until(lambda: queue_depth(broker, queue) == 0, what="every request acknowledged")
        assert metric(server, "modeld_amqp_replies_total") == 20
    finally:
        requester.close()


def test_errors_are_answered_and_bad_bodies_go_to_the_dead_letters(launch, repository, broker):
    queue = fresh_name("requests")
    start_modeld(launch, repository, broker, queue)
    requester = Requester(broker, queue)
    try:
        unknown = requester.send(envelope(infer_request("no_such_model", [1, 2, 3, 4])))
        wrong = requester.send(envelope(infer_request("echo", [1, 2, 3])))
        garbage = requester.send(None, body=b"\xff\x00 not an envelope")
        expired = requester.send(envelope(infer_request("echo", [1, 2, 3, 4]), deadline_s=-1))
        good = requester.send(envelope(infer_request("echo", [5, 6, 7, 8])))
        replies = requester.replies(5)
        assert replies[unknown].code == NOT_FOUND
        assert "no_such_model" in replies[unknown].message
        assert replies[wrong].code == INVALID_ARGUMENT
        assert replies[garbage].code == INVALID_ARGUMENT
        assert "RequestEnvelope" in replies[garbage].message
        assert replies[expired].code == DEADLINE_EXCEEDED
        assert output(replies[good]).tolist() == [[5, 6, 7, 8]]
        wait_until(lambda: queue_depth(broker, f"{queue}.dead-letters") == 1,
                   what="the unparsable message in the dead letters")
        with broker.connection() as connection:
            method, _, body = connection.channel().basic_get(f"{queue}.dead-letters",
                                                             auto_ack=True)
            assert body == b"\xff\x00 not an envelope"
    finally:
        requester.close()


def test_a_message_without_reply_to_is_acknowledged_and_counted(launch, repository, broker):
    queue = fresh_name("requests")
    server = start_modeld(launch, repository, broker, queue)
    requester = Requester(broker, queue)
    try:
        requester.send(envelope(infer_request("echo", [1, 2, 3, 4])), reply_to=False)
        wait_until(lambda: metric(server, "modeld_amqp_messages_without_reply_to_total") == 1,
                   what="the message counted")
        wait_until(lambda: queue_depth(broker, queue) == 0, what="the message acknowledged")
        assert "no reply_to" in server.log
    finally:
        requester.close()


def test_the_deadline_header_is_honoured(launch, repository, broker):
    queue = fresh_name("requests")
    start_modeld(launch, repository, broker, queue)
    requester = Requester(broker, queue)
    try:
        past = int((time.time() - 1) * 1000)
        late = requester.send(envelope(infer_request("echo", [1, 2, 3, 4]), deadline_s=None),
                              headers={"modeld-deadline-ms": past})
        replies = requester.replies(1)
        assert replies[late].code == DEADLINE_EXCEEDED
    finally:
        requester.close()


def test_redelivered_messages_are_counted_and_dead_lettered_past_the_limit(
        launch, repository, broker):
    queue = fresh_name("requests")
    start_modeld(launch, repository, broker, queue, "--amqp-max-deliveries=2")
    requester = Requester(broker, queue)
    try:
        # As a crashed consumer would leave it: redelivered, and already counted twice.
        first = requester.send(envelope(infer_request("echo", [1, 2, 3, 4])),
                               headers={"modeld-deliveries": 2})
        replies = requester.replies(1)
        assert replies[first].code == OK  # the header counts earlier deliveries: 2 <= 2
        over = requester.send(envelope(infer_request("echo", [1, 2, 3, 4])),
                              headers={"modeld-deliveries": 3})
        replies = requester.replies(1)
        assert replies[over].code == ABORTED
        assert "delivered 3 times" in replies[over].message
        wait_until(lambda: queue_depth(broker, f"{queue}.dead-letters") == 1,
                   what="the message in the dead letters")
    finally:
        requester.close()


def test_refused_credentials_keep_modeld_live_and_not_ready(launch, repository, broker):
    queue = fresh_name("requests")
    server = launch(repository, [f"--amqp-url={broker.url(password='not-the-password-42')}",
                                 f"--amqp-queue={queue}"], wait=False)
    server.wait_until_listening()
    server.wait_for_log(r"amqp: logging in as 'modeld' to vhost '/': .*ACCESS_REFUSED")
    assert "not-the-password-42" not in server.log
    assert server.running()
    wait_until(lambda: metric(server, "modeld_amqp_connected") == 0, what="metrics served")
    assert not ready(server)


def test_an_unknown_vhost_is_named(launch, repository, broker):
    server = launch(repository, [f"--amqp-url={broker.url(vhost='no-such-vhost')}",
                                 f"--amqp-queue={fresh_name('requests')}"], wait=False)
    server.wait_until_listening()
    server.wait_for_log(r"amqp: .*no-such-vhost.*(NOT_ALLOWED|not found)")
    assert not ready(server)
