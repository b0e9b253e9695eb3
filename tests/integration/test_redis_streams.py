"""The Redis transport in streams mode: answers routed to their own requests, bad entries,
dead letters and expired requests (docs/redis.md)."""

import threading
import uuid

import numpy as np

from infer_helpers import make_stub, pb
from modeld_server import EXAMPLE_MODELS
from redis_helpers import (  # noqa: F401  (redis_server is a fixture)
    ABORTED,
    DEADLINE_EXCEEDED,
    INVALID_ARGUMENT,
    NOT_FOUND,
    OK,
    STREAM,
    WAIT_S,
    check_echo,
    envelope,
    infer_request,
    lpush,
    metric,
    output,
    ready,
    redis_server,
    start_modeld,
    wait_reply,
    wait_until,
    write_fake_repository,
    xadd,
)

PRODUCERS = 32
REQUESTS_PER_PRODUCER = 200


def test_concurrent_producers_each_get_their_own_answer(launch, example_repository,
                                                        redis_server):
    server = start_modeld(launch, example_repository, redis_server)
    errors = []

    def produce(producer):
        client = redis_server.client()
        try:
            for i in range(REQUESTS_PER_PRODUCER):
                # Contents unique to this request, so a misrouted answer cannot pass.
                values = [producer, i, producer * 1000.0 + i, -i]
                request_id = f"p{producer}-r{i}-{uuid.uuid4().hex[:8]}"
                xadd(client, envelope(infer_request("identity_fp32", values), request_id))
                check_echo(wait_reply(client, f"modeld:reply:{request_id}"), request_id, values)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    total = PRODUCERS * REQUESTS_PER_PRODUCER
    client = redis_server.client()
    assert client.xlen(STREAM) == 0  # every entry answered, acknowledged and deleted
    assert metric(server, "modeld_redis_entries_acked_total") == total
    assert metric(server, "modeld_redis_entries_read_total") == total
    # Entries read together met in the dynamic batcher.
    batches = metric(server, 'modeld_batch_size_count{model="identity_fp32",version="1"}')
    assert batches < total


def test_entries_queued_before_modeld_started_are_served(launch, tmp_path, redis_server):
    client = redis_server.client()
    early = [envelope(infer_request("echo", [i, 0, 0, 1])) for i in range(5)]
    xadd(client, *early)  # the stream exists, the group does not yet
    start_modeld(launch, write_fake_repository(tmp_path), redis_server)
    for i, message in enumerate(early):
        check_echo(wait_reply(client, message.reply_key), message.request_id, [i, 0, 0, 1])


def test_bad_entries_are_answered_or_dead_lettered_and_the_server_goes_on(
        launch, example_repository, redis_server):
    server = start_modeld(launch, example_repository, redis_server)
    client = redis_server.client()
    identity = infer_request("identity_fp32", [1, 2, 3])

    client.xadd(STREAM, {"payload": b"no envelope field"})
    client.xadd(STREAM, {"envelope": b"\xff\xfe\xfd not a protobuf"})
    unknown = envelope(infer_request("no_such_model", [1, 2]))
    wrong_shape = envelope(infer_request("identity_fp32", [1, 2, 3]))
    wrong_shape.infer.inputs[0].ClearField("shape")
    wrong_shape.infer.inputs[0].shape.extend([3])  # identity_fp32 wants [batch, n]
    bad_datatype = envelope(identity)
    bad_datatype.infer.inputs[0].datatype = "FP99"
    no_request = envelope()
    expired = envelope(identity, deadline_s=-1)
    xadd(client, unknown, wrong_shape, bad_datatype, no_request, expired)
    good = envelope(identity)
    silent = envelope(identity, reply_key="")  # no reply wanted
    xadd(client, good, silent)

    reply = wait_reply(client, unknown.reply_key)
    assert (reply.request_id, reply.code) == (unknown.request_id, NOT_FOUND), reply
    assert "no_such_model" in reply.message
    for message in (wrong_shape, bad_datatype, no_request):
        reply = wait_reply(client, message.reply_key)
        assert (reply.request_id, reply.code) == (message.request_id, INVALID_ARGUMENT), reply
        assert reply.message
    reply = wait_reply(client, expired.reply_key)
    assert (reply.request_id, reply.code) == (expired.request_id, DEADLINE_EXCEEDED), reply
    check_echo(wait_reply(client, good.reply_key), good.request_id, [1, 2, 3])
    wait_until(lambda: client.xlen(STREAM) == 0, what="every entry removed")

    dead = client.xrange(f"{STREAM}:dead")
    reasons = sorted(fields[b"reason"].decode() for _, fields in dead)
    assert len(reasons) == 2, dead
    assert "no 'envelope' field" in reasons[0] + reasons[1]
    assert "not a modeld.redis.RequestEnvelope" in reasons[0] + reasons[1]
    assert metric(server, 'modeld_redis_bad_entries_total{reason="no_envelope"}') == 1
    assert metric(server, 'modeld_redis_bad_entries_total{reason="bad_envelope"}') == 1
    assert metric(server, 'modeld_redis_bad_entries_total{reason="bad_request"}') == 2
    assert metric(server, "modeld_redis_expired_total") == 1
    wait_until(lambda: metric(server, 'modeld_redis_dead_letters_total{reason="bad_envelope"}')
               == 2, what="dead letters counted")
    assert metric(server, 'modeld_requests_total{model="",version="",outcome="not_found"}') == 1
    assert server.running()


def test_protobuf_complaints_about_an_entry_come_in_modeld_log_format(launch, tmp_path,
                                                                      redis_server):
    """protobuf logs when a string field holds invalid UTF-8; the line goes through modeld's
    log (its format and level), not straight to stderr as "[libprotobuf ERROR ...]"."""
    server = start_modeld(launch, write_fake_repository(tmp_path), redis_server)
    client = redis_server.client()
    # A RequestEnvelope whose request_id (field 1, a string) is the bytes ff fe.
    client.xadd(STREAM, {"envelope": b"\x0a\x02\xff\xfe"})
    wait_until(lambda: client.xlen(f"{STREAM}:dead") == 1, what="the entry dead-lettered")
    server.wait_for_log(r"\d \S+ warning protobuf: .*UTF-8")
    assert not [line for line in server.log_lines() if "libprotobuf" in line], server.log


def test_poison_entry_goes_to_the_dead_letters_with_an_error_reply(launch, tmp_path,
                                                                    redis_server):
    client = redis_server.client()
    # A consumer that took two entries and died; the first had been delivered three times
    # already (each consumer that took it died on it).
    client.xgroup_create(STREAM, "modeld", id="0", mkstream=True)
    poison = envelope(infer_request("echo", [6, 6, 6, 6]))
    orphan = envelope(infer_request("echo", [1, 2, 3, 4]))
    poison_id, orphan_id = xadd(client, poison, orphan)
    client.xreadgroup("modeld", "ghost", {STREAM: ">"}, count=2)
    client.xclaim(STREAM, "modeld", "ghost", 0, [poison_id], retrycount=3)

    server = start_modeld(launch, write_fake_repository(tmp_path), redis_server,
                          "--redis-visibility-timeout-ms=200", "--redis-max-deliveries=3")
    reply = wait_reply(client, poison.reply_key)
    assert (reply.request_id, reply.code) == (poison.request_id, ABORTED), reply
    assert "delivered 4 times" in reply.message
    check_echo(wait_reply(client, orphan.reply_key), orphan.request_id, [1, 2, 3, 4])

    dead = client.xrange(f"{STREAM}:dead")
    assert len(dead) == 1, dead
    fields = dead[0][1]
    assert fields[b"envelope"] == poison.SerializeToString()
    assert fields[b"source_id"] == poison_id
    assert fields[b"deliveries"] == b"4"
    assert b"more than the 3 allowed" in fields[b"reason"]
    assert client.xlen(STREAM) == 0
    assert client.xpending(STREAM, "modeld")["pending"] == 0
    assert metric(server, "modeld_redis_entries_claimed_total") == 2
    wait_until(lambda: metric(server, 'modeld_redis_dead_letters_total{reason="max_deliveries"}')
               == 1, what="dead letter counted")


def test_a_refused_reply_is_counted_and_the_entry_still_finished(launch, tmp_path,
                                                                  redis_server):
    server = start_modeld(launch, write_fake_repository(tmp_path), redis_server)
    client = redis_server.client()
    message = envelope(infer_request("echo", [1, 2, 3, 4]))
    client.set(message.reply_key, "the producer's own string")
    xadd(client, message)
    wait_until(lambda: metric(server, "modeld_redis_reply_failures_total") == 1,
               what="reply failure counted")
    assert client.xlen(STREAM) == 0
    good = envelope(infer_request("echo", [4, 3, 2, 1]))
    xadd(client, good)
    np.testing.assert_array_equal(output(wait_reply(client, good.reply_key)), [[4, 3, 2, 1]])
    assert "WRONGTYPE" in server.log


def test_stream_and_group_can_be_chosen(launch, tmp_path, redis_server):
    start_modeld(launch, write_fake_repository(tmp_path), redis_server,
                 "--redis-stream=jobs", "--redis-group=workers", "--redis-consumer=me")
    client = redis_server.client()
    message = envelope(infer_request("echo", [1, 1, 2, 2]))
    xadd(client, message, stream="jobs")
    check_echo(wait_reply(client, message.reply_key), message.request_id, [1, 1, 2, 2])
    groups = client.xinfo_groups("jobs")
    assert [g["name"] for g in groups] == [b"workers"]
    assert [c["name"] for c in client.xinfo_consumers("jobs", "workers")] == [b"me"]
    # A reply key left unread expires (--redis-reply-ttl-ms, 60 s by default).
    second = envelope(infer_request("echo", [0, 0, 0, 0]))
    xadd(client, second, stream="jobs")
    wait_until(lambda: client.exists(second.reply_key), what="reply pushed")
    assert 0 < client.pttl(second.reply_key) <= 60000


def test_a_malformed_redis_url_stops_modeld_at_start(launch, tmp_path):
    server = launch(write_fake_repository(tmp_path), ["--redis-url=redis://host:notaport"],
                    wait=False)
    assert server.wait() == 1
    assert "--redis-url: bad Redis URL (port 'notaport'" in server.log


def test_modeld_waits_for_redis_and_is_not_ready_meanwhile(launch, tmp_path, redis_server):
    redis_server.stop()
    server = launch(write_fake_repository(tmp_path), [f"--redis-url={redis_server.url}"])
    # modeld is up and its models are loaded; Redis is not.
    assert not ready(server)
    redis_server.start()
    server.wait_for_log(r"redis: consuming")
    wait_until(lambda: ready(server), what="ready once Redis is reachable")
    client = redis_server.client()
    message = envelope(infer_request("echo", [1, 2, 3, 4]))
    xadd(client, message)
    check_echo(wait_reply(client, message.reply_key), message.request_id, [1, 2, 3, 4])


def test_a_large_tensor_travels_whole(launch, example_repository, redis_server):
    start_modeld(launch, example_repository, redis_server)
    client = redis_server.client()
    values = np.arange(1 << 20, dtype=np.float32)  # 4 MiB each way
    message = envelope(infer_request("identity_fp32", values))
    xadd(client, message)
    np.testing.assert_array_equal(output(wait_reply(client, message.reply_key)),
                                  values.reshape(1, -1))


def _query(**payload):
    """An envelope carrying one query: metadata=..., model_ready=... or server_ready=...."""
    message = envelope()
    for field, request in payload.items():
        getattr(message, field).CopyFrom(request)
    return message


def test_metadata_and_readiness_through_the_queue_match_grpc(launch, example_repository,
                                                             redis_server):
    """A client that talks only to Redis learns what a gRPC client learns: model metadata
    (predict() takes the input and output names from it) and readiness."""
    server = start_modeld(launch, example_repository, redis_server)
    stub = make_stub(server.channel())
    client = redis_server.client()
    asked = {}
    for model in EXAMPLE_MODELS:
        asked[("metadata", model)] = _query(metadata=pb.ModelMetadataRequest(name=model))
    asked[("metadata", "linear", "1")] = _query(
        metadata=pb.ModelMetadataRequest(name="linear", version="1"))
    asked[("metadata", "no_such_model")] = _query(
        metadata=pb.ModelMetadataRequest(name="no_such_model"))
    asked[("ready", "linear", "2")] = _query(
        model_ready=pb.ModelReadyRequest(name="linear", version="2"))
    asked[("ready", "linear", "3")] = _query(
        model_ready=pb.ModelReadyRequest(name="linear", version="3"))
    asked[("ready", "no_such_model")] = _query(
        model_ready=pb.ModelReadyRequest(name="no_such_model"))
    asked[("server",)] = _query(server_ready=pb.ServerReadyRequest())
    xadd(client, *asked.values())
    replies = {key: wait_reply(client, message.reply_key) for key, message in asked.items()}
    for key, reply in replies.items():
        assert reply.request_id == asked[key].request_id

    for model in EXAMPLE_MODELS:
        reply = replies[("metadata", model)]
        assert reply.code == OK, reply.message
        assert reply.WhichOneof("payload") == "metadata"
        expected = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=WAIT_S)
        assert reply.metadata == expected
    assert list(replies[("metadata", "linear", "1")].metadata.versions) == ["1", "2"]
    unknown = replies[("metadata", "no_such_model")]
    assert unknown.code == NOT_FOUND and "no_such_model" in unknown.message
    assert unknown.WhichOneof("payload") is None
    assert replies[("ready", "linear", "2")].model_ready.ready is True
    assert replies[("ready", "linear", "3")].model_ready.ready is False
    assert replies[("ready", "no_such_model")].model_ready.ready is False
    assert replies[("server",)].server_ready.ready is True
    assert metric(server, "modeld_redis_queries_total") == len(asked)
    # None of them reached a model.
    assert metric(server, 'modeld_requests_total{model="linear",version="2",outcome="ok"}') is None


def test_queries_through_a_list(launch, tmp_path, redis_server):
    start_modeld(launch, write_fake_repository(tmp_path), redis_server, "--redis-list=jobs")
    client = redis_server.client()
    ready_query = _query(server_ready=pb.ServerReadyRequest())
    metadata_query = _query(metadata=pb.ModelMetadataRequest(name="echo"))
    lpush(client, "jobs", ready_query, metadata_query)
    assert wait_reply(client, ready_query.reply_key).server_ready.ready is True
    metadata = wait_reply(client, metadata_query.reply_key).metadata
    assert (metadata.name, [t.name for t in metadata.inputs]) == ("echo", ["INPUT0"])
    assert list(metadata.inputs[0].shape) == [-1, 4]
    assert client.llen("jobs") == 0
