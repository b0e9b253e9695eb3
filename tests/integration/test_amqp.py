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

    def __init__(self, broker, queue, durable_replies=None):
        """`durable_replies`: the name of a durable reply queue (it outlives a broker restart),
        instead of an exclusive one of the broker's naming."""
        self.connection = broker.connection()
        self.channel = self.connection.channel()
        self.queue = queue
        if durable_replies is not None:
            self.reply_queue = self.channel.queue_declare(durable_replies, durable=True).method.queue
        else:
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


def test_queries_are_answered(launch, repository, broker):
    queue = fresh_name("requests")
    start_modeld(launch, repository, broker, queue)
    requester = Requester(broker, queue)
    try:
        server_ready = rpb.RequestEnvelope(request_id="s")
        server_ready.server_ready.SetInParent()
        model_ready = rpb.RequestEnvelope(request_id="m")
        model_ready.model_ready.name = "echo"
        metadata = rpb.RequestEnvelope(request_id="d")
        metadata.metadata.name = "echo"
        ids = [requester.send(message) for message in (server_ready, model_ready, metadata)]
        replies = requester.replies(3)
        assert replies[ids[0]].server_ready.ready
        assert replies[ids[1]].model_ready.ready
        assert [t.name for t in replies[ids[2]].metadata.inputs] == ["INPUT0"]
    finally:
        requester.close()


def test_64_concurrent_requesters_each_get_their_own_answers(launch, repository, broker):
    queue = fresh_name("requests")
    server = start_modeld(launch, repository, broker, queue)
    per_requester = 10
    failures = []

    def run(n):
        requester = Requester(broker, queue)
        try:
            sent = {}
            for i in range(per_requester):
                values = [n, i, n * i, -n]
                message = envelope(infer_request("echo", values))
                sent[requester.send(message)] = (message.request_id, values)
            replies = requester.replies(per_requester, timeout=60)
            for correlation_id, (request_id, values) in sent.items():
                check_echo(replies[correlation_id], request_id, values)
        except Exception as error:  # reported below, with the requester's number
            failures.append(f"requester {n}: {error!r}")
        finally:
            requester.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]
    assert metric(server, "modeld_amqp_replies_total") == 64 * per_requester


def test_priorities_decide_the_order_of_waiting_requests(launch, repository, broker):
    queue = fresh_name("requests")
    args = ["--amqp-max-priority=10", "--amqp-prefetch=1"]
    server = start_modeld(launch, repository, broker, queue, *args)  # declares the queue
    server.stop()
    requester = Requester(broker, queue)
    try:
        low = [requester.send(envelope(infer_request("slow_echo", [0, 0, 0, i])), priority=1)
               for i in range(12)]
        high = [requester.send(envelope(infer_request("slow_echo", [1, 1, 1, i])), priority=9)
                for i in range(4)]
        start_modeld(launch, repository, broker, queue, *args)
        order = []
        deadline = time.monotonic() + WAIT_S
        while len(order) < 16 and time.monotonic() < deadline:
            method, properties, _ = requester.channel.basic_get(requester.reply_queue,
                                                                auto_ack=True)
            if method is None:
                requester.connection.sleep(0.01)
            else:
                order.append(properties.correlation_id)
        assert sorted(order) == sorted(low + high)
        assert set(order[:4]) == set(high), "the high-priority requests were not answered first"
    finally:
        requester.close()


def test_sigterm_answers_what_was_taken_and_leaves_the_rest(launch, repository, broker):
    queue = fresh_name("requests")
    server = start_modeld(launch, repository, broker, queue, "--amqp-prefetch=4")
    requester = Requester(broker, queue)
    try:
        ids = [requester.send(envelope(infer_request("slow_echo", [i, i, i, i])))
               for i in range(200)]
        wait_until(lambda: metric(server, "modeld_amqp_replies_total") >= 8,
                   what="some requests answered")
        server.stop()
        assert server.proc.returncode == 0
        got = drain(requester)
        assert got, "no replies"
        assert set(got) <= set(ids) and max(got.values()) == 1
        # Nothing taken was left unanswered, nothing was answered twice, and the rest waits.
        assert queue_depth(broker, queue) == len(ids) - len(got)
    finally:
        requester.close()


def drain(requester, quiet_s=1.0):
    """Every reply waiting in the requester's queue: {correlation_id: count}."""
    got = {}
    last = time.monotonic()
    while time.monotonic() - last < quiet_s:
        method, properties, _ = requester.channel.basic_get(requester.reply_queue,
                                                            auto_ack=True)
        if method is None:
            requester.connection.sleep(0.05)
            continue
        got[properties.correlation_id] = got.get(properties.correlation_id, 0) + 1
        last = time.monotonic()
    return got


def test_a_killed_modeld_loses_nothing(launch, repository, broker):
    """kill -9 under load, then a new modeld: every request is answered; the answers sent
    twice (replied, but killed before the acknowledgement) are counted."""
    queue = fresh_name("requests")
    first = start_modeld(launch, repository, broker, queue, "--amqp-prefetch=16")
    requester = Requester(broker, queue)
    try:
        ids = [requester.send(envelope(infer_request("slow_echo", [i, i, i, i])))
               for i in range(300)]
        wait_until(lambda: metric(first, "modeld_amqp_replies_total") >= 30,
                   what="some requests answered")
        first.send_signal(9)
        first.wait()
        second = start_modeld(launch, repository, broker, queue, "--amqp-prefetch=16")
        got = {}
        deadline = time.monotonic() + 60
        while len(got) < len(ids) and time.monotonic() < deadline:
            for correlation_id, count in drain(requester, quiet_s=0.5).items():
                got[correlation_id] = got.get(correlation_id, 0) + count
        assert set(got) == set(ids), f"{len(set(ids) - set(got))} requests never answered"
        twice = sum(1 for count in got.values() if count > 1)
        print(f"AMQP kill -9 recovery: {len(ids)} requests, all answered, "
              f"{twice} answered twice, redelivered "
              f"{metric(second, 'modeld_amqp_messages_redelivered_total'):.0f}")
        assert twice <= 16, "more answered twice than the killed modeld could hold"
        wait_until(lambda: queue_depth(broker, queue) == 0, what="the queue emptied")
    finally:
        requester.close()


def test_two_modelds_share_one_queue(launch, repository, broker):
    queue = fresh_name("requests")
    servers = [start_modeld(launch, repository, broker, queue, "--amqp-prefetch=4")
               for _ in range(2)]
    requester = Requester(broker, queue)
    try:
        sent = {}
        for i in range(120):
            message = envelope(infer_request("slow_echo", [i, 1, 2, 3]))
            sent[requester.send(message)] = (message.request_id, [i, 1, 2, 3])
        replies = requester.replies(len(sent), timeout=60)
        for correlation_id, (request_id, values) in sent.items():
            check_echo(replies[correlation_id], request_id, values)
        shares = [metric(server, "modeld_amqp_replies_total") for server in servers]
        assert sum(shares) == 120 and min(shares) > 0, shares
    finally:
        requester.close()


def test_a_quorum_queue_counts_deliveries_itself(launch, repository, broker):
    queue = fresh_name("requests")
    args = ["--amqp-queue-type=quorum", "--amqp-max-deliveries=3"]
    server = start_modeld(launch, repository, broker, queue, *args)
    requester = Requester(broker, queue)
    try:
        message = envelope(infer_request("echo", [1, 2, 3, 4]))
        correlation_id = requester.send(message)
        check_echo(requester.replies(1)[correlation_id], message.request_id, [1, 2, 3, 4])
        server.stop()
        # Three consumers took this one and gave it back: x-delivery-count is 3, so modeld's
        # delivery is the fourth.
        poison = requester.send(envelope(infer_request("echo", [1, 2, 3, 4])))
        for _ in range(3):
            method = None
            deadline = time.monotonic() + WAIT_S
            while method is None and time.monotonic() < deadline:
                method, _, _ = requester.channel.basic_get(queue)
                requester.connection.sleep(0.01)
            assert method is not None, "the message never reached the queue"
            requester.channel.basic_nack(method.delivery_tag, requeue=True)
        start_modeld(launch, repository, broker, queue, *args)
        reply = requester.replies(1)[poison]
        assert reply.code == ABORTED and "delivered 4 times" in reply.message
        # Declaring it classic now is refused by the broker, named in the log.
        classic = launch(repository, [f"--amqp-url={broker.url()}", f"--amqp-queue={queue}"],
                         wait=False)
        classic.wait_until_listening()
        classic.wait_for_log(r"amqp: declaring the .*queue .*PRECONDITION_FAILED")
        assert not ready(classic)
    finally:
        requester.close()


def test_amqps_with_the_brokers_ca(launch, repository, broker):
    queue = fresh_name("requests")
    # By host name: rabbitmq-c matches the certificate's DNS names, not its IP addresses.
    url = broker.url(tls=True).replace("@127.0.0.1:", "@localhost:")
    server = launch(repository, [f"--amqp-url={url}", f"--amqp-tls-ca={broker.pki.ca}",
                                 f"--amqp-queue={queue}"])
    server.wait_for_log(r"amqp: consuming")
    requester = Requester(broker, queue)
    try:
        message = envelope(infer_request("echo", [4, 3, 2, 1]))
        correlation_id = requester.send(message)
        check_echo(requester.replies(1)[correlation_id], message.request_id, [4, 3, 2, 1])
    finally:
        requester.close()
    # Without the CA the broker's certificate is not trusted: not ready, and the log says so.
    untrusted = launch(repository, [f"--amqp-url={url}",
                                    f"--amqp-queue={fresh_name('requests')}"], wait=False)
    untrusted.wait_until_listening()
    untrusted.wait_for_log(r"amqp: cannot connect .*")
    assert not ready(untrusted)


def test_a_message_redelivered_on_a_classic_queue_is_counted_and_answered(
        launch, repository, broker):
    queue = fresh_name("requests")
    server = start_modeld(launch, repository, broker, queue)
    server.stop()
    requester = Requester(broker, queue)
    try:
        message = envelope(infer_request("echo", [9, 8, 7, 6]))
        correlation_id = requester.send(message)
        # A consumer takes it and dies before acknowledging: the broker marks it redelivered.
        with broker.connection() as crashed:
            channel = crashed.channel()
            deadline = time.monotonic() + WAIT_S
            method = None
            while method is None and time.monotonic() < deadline:
                method, _, _ = channel.basic_get(queue)
                crashed.sleep(0.01)
            assert method is not None and not method.redelivered
        server = start_modeld(launch, repository, broker, queue)
        check_echo(requester.replies(1)[correlation_id], message.request_id, [9, 8, 7, 6])
        # modeld put it back with modeld-deliveries: 2 and answered the copy.
        assert metric(server, "modeld_amqp_messages_redelivered_total") == 1
        assert metric(server, "modeld_amqp_messages_delivered_total") == 2
        wait_until(lambda: queue_depth(broker, queue) == 0, what="both acknowledged")
    finally:
        requester.close()


def test_a_broker_restart_under_load_loses_nothing(launch, repository):
    """Persistent requests and a durable reply queue: RabbitMQ stopped and started while modeld
    works through them; every request is answered (some twice: answered, then redelivered
    because the broker went before the acknowledgement)."""
    from rabbitmq_server import RabbitMQServer

    own = RabbitMQServer()
    try:
        queue, replies = fresh_name("requests"), fresh_name("replies")
        server = start_modeld(launch, repository, own, queue, "--amqp-prefetch=8")
        requester = Requester(own, queue, durable_replies=replies)
        ids = [requester.send(envelope(infer_request("slow_echo", [i, i, i, i])))
               for i in range(200)]
        wait_until(lambda: metric(server, "modeld_amqp_replies_total") >= 20,
                   what="some requests answered")
        requester.connection.close()
        own.stop()
        wait_until(lambda: not ready(server), what="modeld not ready without its broker")
        own.start()
        server.wait_for_log(r"amqp: consuming", timeout=60)
        wait_until(lambda: ready(server), what="modeld ready again")
        requester = Requester(own, queue, durable_replies=replies)
        got = {}
        deadline = time.monotonic() + 120
        while len(got) < len(ids) and time.monotonic() < deadline:
            for correlation_id, count in drain(requester, quiet_s=0.5).items():
                got[correlation_id] = got.get(correlation_id, 0) + count
        assert set(got) == set(ids), f"{len(set(ids) - set(got))} requests never answered"
        twice = sum(1 for count in got.values() if count > 1)
        print(f"AMQP broker restart: {len(ids)} requests, all answered, {twice} answered twice")
        assert metric(server, "modeld_amqp_reconnects_total") >= 1
        wait_until(lambda: queue_depth(own, queue) == 0, what="the request queue emptied")
        requester.close()
    finally:
        own.close()


def test_direct_reply_to(launch, repository, broker):
    """RabbitMQ's direct reply-to (amq.rabbitmq.reply-to): no reply queue at all."""
    queue = fresh_name("requests")
    start_modeld(launch, repository, broker, queue)
    with broker.connection() as connection:
        channel = connection.channel()
        replies = {}

        def on_reply(_channel, _method, properties, body):
            reply = rpb.ReplyEnvelope()
            reply.ParseFromString(body)
            replies[properties.correlation_id] = reply

        channel.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
        sent = {}
        for i in range(10):
            message = envelope(infer_request("echo", [i, 0, 0, 1]))
            correlation_id = uuid.uuid4().hex
            channel.basic_publish("", queue, message.SerializeToString(), pika.BasicProperties(
                correlation_id=correlation_id, reply_to="amq.rabbitmq.reply-to"))
            sent[correlation_id] = (message.request_id, [i, 0, 0, 1])
        deadline = time.monotonic() + WAIT_S
        while len(replies) < len(sent) and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        assert set(replies) == set(sent)
        for correlation_id, (request_id, values) in sent.items():
            check_echo(replies[correlation_id], request_id, values)
