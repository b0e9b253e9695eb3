"""The private RabbitMQ node of the AMQP transport's tests (rabbitmq_server.py, the `rabbitmq`
fixture): what those tests rely on, checked with pika and aio-pika alone (no modeld)."""

import asyncio
import ssl
from pathlib import Path

import pika
import pika.exceptions
import pytest

from rabbitmq_server import (
    PASSWORD,
    SECOND_VHOST,
    USER,
    RabbitMQServer,
    fresh_name,
    installed,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    not installed(), reason="rabbitmq-server is not installed: scripts/setup installs it")


def publish_persistent(connection, queue, body):
    """Declares `queue` durable and publishes `body` to it persistent, confirmed by the broker
    (so it is on disk when this returns)."""
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    channel.basic_publish("", queue, body,
                          pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                          mandatory=True)
    channel.close()


def get_one(connection, queue):
    """The next message of `queue` (acknowledged), as (properties, body); (None, None) if it is
    empty."""
    channel = connection.channel()
    method, properties, body = channel.basic_get(queue, auto_ack=True)
    channel.close()
    return (properties, body) if method is not None else (None, None)


def queue_exists(connection, queue):
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 404, error
        return False
    channel.close()
    return True


def _processes():
    """{pid: (ppid, state, command line)} of every process."""
    processes = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        processes[int(entry.name)] = (int(fields[1]), fields[0], cmdline)
    return processes


def _descendants(pid):
    processes = _processes()
    found, frontier = set(), {pid}
    while frontier:
        found |= frontier
        frontier = {child for child, (parent, _, _) in processes.items()
                    if parent in frontier} - found
    return found


def _live(pids):
    """Those of `pids` still running (zombies that init has yet to reap do not count)."""
    processes = _processes()
    return [f"{pid} {processes[pid][2]}" for pid in pids
            if pid in processes and processes[pid][1] != "Z"]


def test_persistent_message_on_a_durable_queue(rabbitmq):
    queue = fresh_name("durable")
    with rabbitmq.connection() as connection:
        publish_persistent(connection, queue, b"hello")
        properties, body = get_one(connection, queue)
    assert body == b"hello"
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value


def test_urls_name_the_user_and_vhost(rabbitmq):
    assert rabbitmq.url() == (f"amqp://{USER}:{PASSWORD}@127.0.0.1:{rabbitmq.port}/%2F")
    queue = fresh_name("url")
    with pika.BlockingConnection(pika.URLParameters(rabbitmq.url(vhost=SECOND_VHOST))) as conn:
        publish_persistent(conn, queue, b"second")
    with rabbitmq.connection(vhost=SECOND_VHOST) as connection:
        assert get_one(connection, queue)[1] == b"second"
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(rabbitmq.url(password="wrong")))
    # No guest: the node has only the test user.
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(rabbitmq.url("guest", "guest")))


def test_vhosts_are_isolated(rabbitmq):
    vhost = rabbitmq.fresh_vhost()
    queue = fresh_name("isolated")
    with rabbitmq.connection(vhost=vhost) as connection:
        publish_persistent(connection, queue, b"only here")
    for other in ("/", SECOND_VHOST):
        with rabbitmq.connection(vhost=other) as connection:
            assert not queue_exists(connection, queue), other
    # The same name elsewhere is another queue.
    with rabbitmq.connection(vhost=SECOND_VHOST) as connection:
        publish_persistent(connection, queue, b"second's")
        assert get_one(connection, queue)[1] == b"second's"
        assert get_one(connection, queue) == (None, None)
    with rabbitmq.connection(vhost=vhost) as connection:
        assert get_one(connection, queue)[1] == b"only here"
    assert vhost in rabbitmq.rabbitmqctl("list_vhosts", "--quiet").split()


def test_aio_pika_connects(rabbitmq):
    import aio_pika

    queue = fresh_name("aio")

    async def roundtrip():
        connection = await aio_pika.connect(rabbitmq.url(vhost=SECOND_VHOST))
        async with connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, durable=True)
            await channel.default_exchange.publish(
                aio_pika.Message(b"async", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue)
            message = await declared.get(timeout=10)
            await message.ack()
            return message.body

    assert asyncio.run(roundtrip()) == b"async"


def _tls_parameters(rabbitmq, client=None):
    context = ssl.create_default_context(cafile=rabbitmq.pki.ca)
    if client is not None:
        context.load_cert_chain(rabbitmq.pki.path(f"{client}.crt"),
                                rabbitmq.pki.path(f"{client}.key"))
    parameters = pika.URLParameters(rabbitmq.url(vhost=SECOND_VHOST, tls=True))
    parameters.ssl_options = pika.SSLOptions(context, server_hostname="127.0.0.1")
    return parameters


def test_tls_url(rabbitmq):
    assert rabbitmq.url(tls=True).startswith(f"amqps://{USER}:")
    assert f":{rabbitmq.tls_port}/" in rabbitmq.url(tls=True)
    queue = fresh_name("tls")
    with pika.BlockingConnection(_tls_parameters(rabbitmq)) as connection:
        publish_persistent(connection, queue, b"over TLS")
    # A client certificate signed by the CA is accepted; one of another CA is not.
    with pika.BlockingConnection(_tls_parameters(rabbitmq, "client")) as connection:
        assert get_one(connection, queue)[1] == b"over TLS"
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(_tls_parameters(rabbitmq, "rogue"))
    # A client that does not trust the CA refuses the server.
    untrusting = pika.URLParameters(rabbitmq.url(tls=True))
    untrusting.ssl_options = pika.SSLOptions(ssl.create_default_context(), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        pika.BlockingConnection(untrusting)


def test_tls_url_with_aio_pika(rabbitmq):
    import aio_pika

    async def connect():
        context = ssl.create_default_context(cafile=rabbitmq.pki.ca)
        connection = await aio_pika.connect(rabbitmq.url(tls=True), ssl_context=context)
        async with connection:
            channel = await connection.channel()
            return (await channel.declare_queue(fresh_name("aio-tls"), auto_delete=True)).name

    assert asyncio.run(connect()).startswith("aio-tls-")


def test_messages_survive_kill_9_and_a_restart():
    """kill -9 and stop() / start(): same folder, node name and ports; durable queues keep
    their persistent (confirmed) messages, transient queues are gone."""
    broker = RabbitMQServer()
    try:
        url = broker.url()
        # The queue's own record lives in RabbitMQ's database, whose log a kill -9 right after
        # the declaration can cut short (seen on a loaded machine): a graceful restart first
        # writes it, so what follows tests the confirmed messages themselves.
        with broker.connection() as connection:
            connection.channel().queue_declare("kept", durable=True)
        broker.stop()
        broker.start()
        with broker.connection() as connection:
            publish_persistent(connection, "kept", b"one")
            publish_persistent(connection, "kept", b"two")
            connection.channel().queue_declare("transient", durable=False)
        broker.kill()
        assert not broker.running()
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            broker.connection()
        broker.start()
        assert broker.url() == url
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            properties, body = get_one(connection, "kept")
            assert body == b"one"
            assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
            assert not queue_exists(connection, "transient")
        # A graceful stop keeps the rest.
        broker.stop()
        broker.start()
        with broker.connection() as connection:
            assert get_one(connection, "kept")[1] == b"two"
            assert get_one(connection, "kept") == (None, None)
    finally:
        broker.close()


def test_close_leaves_no_process_and_no_folder():
    broker = RabbitMQServer()
    directory = broker.directory
    # The script, the VM, its helpers (erl_child_setup, inet_gethost) and the node's epmd.
    pids = _descendants(broker.proc.pid) | {broker._epmd.pid}
    assert len(pids) >= 4, _live(pids)
    broker.close()
    assert not directory.exists()
    wait_until(lambda: not _live(pids), 10, f"no process left of {_live(pids)}")
