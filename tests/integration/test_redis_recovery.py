"""The Redis transport when things go wrong: modeld killed with work queued and in flight,
two consumers sharing a stream with one stopped, Redis restarted (docs/redis.md)."""

import signal

from redis_helpers import (  # noqa: F401  (redis_server is a fixture)
    ABORTED,
    OK,
    STREAM,
    check_echo,
    collect_replies,
    envelope,
    infer_request,
    lpush,
    metric,
    ready,
    redis_server,
    start_modeld,
    wait_reply,
    wait_until,
    write_fake_repository,
    xadd,
)

QUEUED = 1000
LIST = "modeld:list"
# Short, so a killed consumer's entries are taken over quickly.
RECOVERY_FLAGS = ("--redis-visibility-timeout-ms=1000",)


def _requests(count):
    """{request_id: values} and their envelopes for the slow fake model (10 ms per batch)."""
    expected, envelopes = {}, []
    for i in range(count):
        values = [i, -i, i * 0.5, 7]
        message = envelope(infer_request("slow_echo", values), request_id=f"req-{i}")
        expected[message.request_id] = values
        envelopes.append(message)
    return expected, envelopes


def _check_all_answered(replies, expected):
    """Every request got its own answer; none was lost (errors would be explicit codes)."""
    assert set(replies) == set(expected)
    codes = {}
    for request_id, reply in replies.items():
        codes[reply.code] = codes.get(reply.code, 0) + 1
        if reply.code == OK:
            check_echo(reply, request_id, expected[request_id])
        else:
            assert reply.request_id == request_id and reply.message, reply
    # Deadlines are far and no entry died three times: everything ran.
    assert codes == {OK: len(expected)}, codes


def _kill_and_restart(launch, repository, redis_server, enqueue, *flags):
    client = redis_server.client()
    first = start_modeld(launch, repository, redis_server, *RECOVERY_FLAGS, *flags)
    expected, envelopes = _requests(QUEUED)
    enqueue(client, envelopes)
    # Answers are flowing; most of the work is still queued or in flight.
    wait_until(lambda: (metric(first, "modeld_redis_entries_acked_total") or 0) >= 50,
               what="the first answers")
    first.proc.kill()
    first.wait()
    second = start_modeld(launch, repository, redis_server, *RECOVERY_FLAGS, *flags)
    return second, client, expected


def test_kill_9_with_a_stream_full_of_work_loses_nothing(launch, tmp_path, redis_server):
    repository = write_fake_repository(tmp_path)
    second, client, expected = _kill_and_restart(
        launch, repository, redis_server, lambda client, envelopes: xadd(client, *envelopes))
    _check_all_answered(collect_replies(client, expected), expected)
    assert client.xlen(STREAM) == 0
    assert client.xpending(STREAM, "modeld")["pending"] == 0
    # What the killed process had taken was taken over by the new one.
    assert metric(second, "modeld_redis_entries_claimed_total") > 0


def test_kill_9_with_a_list_full_of_work_loses_nothing(launch, tmp_path, redis_server):
    repository = write_fake_repository(tmp_path)
    second, client, expected = _kill_and_restart(
        launch, repository, redis_server,
        lambda client, envelopes: lpush(client, LIST, *envelopes), f"--redis-list={LIST}")
    _check_all_answered(collect_replies(client, expected), expected)
    assert client.llen(LIST) == 0
    wait_until(lambda: metric(second, "modeld_redis_entries_requeued_total") > 0,
               what="the dead consumer's list moved back")
    processing = [key for key in client.scan_iter(f"{LIST}:processing:*")]
    assert all(client.llen(key) == 0 for key in processing)
    assert client.hlen(f"{LIST}:deliveries") == 0


def test_two_consumers_share_a_stream_and_stopping_one_loses_nothing(launch, tmp_path,
                                                                     redis_server):
    repository = write_fake_repository(tmp_path)
    first = start_modeld(launch, repository, redis_server, *RECOVERY_FLAGS)
    second = start_modeld(launch, repository, redis_server, *RECOVERY_FLAGS)
    client = redis_server.client()
    expected, envelopes = _requests(600)
    xadd(client, *envelopes)
    wait_until(lambda: (metric(first, "modeld_redis_entries_acked_total") or 0) > 0
               and (metric(second, "modeld_redis_entries_acked_total") or 0) > 0,
               what="both consumers answering")
    # Graceful: the first stops reading and finishes what it took.
    assert first.stop(signal.SIGTERM) == 0, first.log
    _check_all_answered(collect_replies(client, expected), expected)
    assert client.xlen(STREAM) == 0
    assert client.xpending(STREAM, "modeld")["pending"] == 0
    assert "left unfinished" not in first.log


def test_redis_restart_the_worker_reconnects_and_readiness_follows(launch, tmp_path,
                                                                   redis_server):
    server = start_modeld(launch, write_fake_repository(tmp_path), redis_server)
    client = redis_server.client()
    before = envelope(infer_request("echo", [1, 2, 3, 4]))
    xadd(client, before)
    check_echo(wait_reply(client, before.reply_key), before.request_id, [1, 2, 3, 4])
    assert ready(server)

    redis_server.stop()  # no persistence: the stream and its group are gone with it
    wait_until(lambda: not ready(server), what="not ready while Redis is away")
    assert metric(server, "modeld_redis_connected") == 0
    redis_server.start()
    wait_until(lambda: ready(server), what="ready again once Redis is back")

    client = redis_server.client()
    after = [envelope(infer_request("echo", [i, i, i, i])) for i in range(20)]
    xadd(client, *after)
    for i, message in enumerate(after):
        check_echo(wait_reply(client, message.reply_key), message.request_id, [i, i, i, i])
    assert metric(server, "modeld_redis_reconnects_total") >= 1
    assert server.running()


def _fnv1a64(data):
    """The field under which a list item's deliveries are counted (docs/redis.md)."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def test_a_dead_list_consumers_work_is_taken_over_and_a_poison_item_dead_lettered(
        launch, tmp_path, redis_server):
    client = redis_server.client()
    # A consumer "ghost" died holding two items (its heartbeat key is gone); the first had
    # already been delivered three times.
    poison = envelope(infer_request("echo", [6, 6, 6, 6]))
    orphan = envelope(infer_request("echo", [1, 2, 3, 4]))
    client.sadd(f"{LIST}:consumers", "ghost")
    client.lpush(f"{LIST}:processing:ghost", poison.SerializeToString(),
                 orphan.SerializeToString())
    client.hset(f"{LIST}:deliveries", _fnv1a64(poison.SerializeToString()), 3)

    server = start_modeld(launch, write_fake_repository(tmp_path), redis_server,
                          f"--redis-list={LIST}", "--redis-max-deliveries=3")
    reply = wait_reply(client, poison.reply_key)
    assert (reply.request_id, reply.code) == (poison.request_id, ABORTED), reply
    check_echo(wait_reply(client, orphan.reply_key), orphan.request_id, [1, 2, 3, 4])
    dead = client.xrange(f"{LIST}:dead")
    assert len(dead) == 1, dead
    assert dead[0][1][b"envelope"] == poison.SerializeToString()
    assert dead[0][1][b"deliveries"] == b"4"
    assert client.exists(f"{LIST}:processing:ghost") == 0
    assert client.sismember(f"{LIST}:consumers", "ghost") == 0
    assert client.hlen(f"{LIST}:deliveries") == 0
    assert metric(server, "modeld_redis_entries_requeued_total") == 2


# 100 ms per batch of at most 4: 40 requests keep modeld busy for about a second.
SLOWER_ECHO = """\
name: "slower_echo"
backend: "fake"
max_batch_size: 4
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { }
parameters { key: "sleep_ms" value { string_value: "100" } }
"""


def test_redis_restarted_with_work_in_flight_loses_nothing(launch, tmp_path):
    """Redis (with an append-only file, as a queue that must not lose work runs it) restarts
    while modeld holds running requests and more are queued: once it is back, every request
    gets exactly its own answer."""
    from redis_server import RedisServer

    data = tmp_path / "redis-data"
    data.mkdir()
    redis_server = RedisServer(["--appendonly", "yes", "--appendfsync", "always",
                                "--dir", str(data)])
    try:
        repository = write_fake_repository(tmp_path / "models")
        (repository / "slower_echo" / "1").mkdir(parents=True)
        (repository / "slower_echo" / "config.pbtxt").write_text(SLOWER_ECHO)
        server = start_modeld(launch, repository, redis_server)
        client = redis_server.client()
        expected, messages = {}, []
        for i in range(40):
            values = [i, -i, 2 * i, 5]
            message = envelope(infer_request("slower_echo", values), request_id=f"r{i}")
            expected[message.request_id] = values
            messages.append(message)
        xadd(client, *messages)
        first = wait_reply(client, messages[0].reply_key)  # modeld is working through them
        check_echo(first, "r0", expected["r0"])
        # Work is outstanding as Redis goes: the last request is not answered yet.
        assert client.exists(messages[-1].reply_key) == 0

        redis_server.stop()
        wait_until(lambda: not ready(server), what="not ready while Redis is away")
        redis_server.start()
        wait_until(lambda: ready(server), what="ready again once Redis is back")

        client = redis_server.client()
        for message in messages[1:]:
            check_echo(wait_reply(client, message.reply_key), message.request_id,
                       expected[message.request_id])
        for message in messages:  # exactly one answer each
            assert client.llen(message.reply_key) == 0
        assert client.xlen(f"{STREAM}:dead") == 0
        wait_until(lambda: client.xlen(STREAM) == 0, what="every entry acknowledged and deleted")
        assert metric(server, "modeld_redis_reconnects_total") >= 1
    finally:
        redis_server.close()
