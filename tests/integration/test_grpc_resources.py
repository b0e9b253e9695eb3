"""gRPC's own resources, each exceeded once: --grpc-max-connections
(src/transport/grpc_listener.h), --grpc-max-concurrent-streams and --grpc-memory-quota-bytes.
The extra connection is closed at once and counted; a client that ignores the stream cap loses
its own connection; a flood of half-sent messages is held to the quota. What was admitted is
served on."""

import re
import time
import urllib.request

import grpc
import numpy as np
import pytest

from infer_helpers import decode_response, make_request, make_stub
from lifecycle_helpers import vm_rss_kib, wait_until
from raw_grpc import connect, pump

KIB = 1024
MIB = 1024 * KIB
REFUSED = re.compile(r'^modeld_connections_rejected_total\{transport="grpc"\} (\d+)$', re.M)
OPEN = re.compile(r"^modeld_grpc_connections (\d+)$", re.M)


def metric(server, pattern):
    text = urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=10).read()
    match = pattern.search(text.decode())
    return int(match.group(1)) if match else 0


def own_channel(server):
    """A channel with a connection of its own (gRPC shares them between equal channels)."""
    return grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])


def identity(channel, values):
    x = np.asarray([values], np.float32)
    reply = make_stub(channel).ModelInfer(make_request("identity_fp32", [("INPUT0", x)]),
                                          timeout=30)
    return decode_response(reply)["OUTPUT0"].tolist()


def test_a_connection_over_the_limit_is_closed_and_counted(launch, example_repository):
    server = launch(example_repository, ["--grpc-max-connections=3"])
    already = metric(server, OPEN)  # the launcher's own, if it keeps one
    channels = [own_channel(server) for _ in range(3 - already)]
    for i, channel in enumerate(channels):
        assert identity(channel, [i, 1]) == [[i, 1]]
    assert metric(server, OPEN) == 3

    extra = own_channel(server)
    try:
        identity(extra, [9, 9])
        raise AssertionError("a fourth connection was served with --grpc-max-connections=3")
    except grpc.RpcError as error:
        # Refused at once: the call fails UNAVAILABLE, it does not wait for its deadline.
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    extra.close()
    assert metric(server, REFUSED) >= 1
    # The refusal's log line, read by the launcher's reader thread: it may come just after.
    server.wait_for_log(r"--grpc-max-connections", timeout=10)
    for i, channel in enumerate(channels):  # the admitted ones are served on
        assert identity(channel, [i, 2]) == [[i, 2]]

    channels.pop().close()
    wait_until(lambda: metric(server, OPEN) == 2, 10, what="the closed connection counted gone")
    fresh = own_channel(server)
    assert identity(fresh, [5, 5]) == [[5, 5]]  # room for one again


def test_a_client_that_opens_calls_over_the_stream_cap_loses_its_connection_alone(
        launch, example_repository):
    """A gRPC client queues calls past the cap itself; one that ignores it breaks HTTP/2, and
    gRPC closes its connection: every call on it is answered UNAVAILABLE, nothing else is
    touched."""
    server = launch(example_repository, ["--grpc-max-concurrent-streams=4",
                                         "--grpc-receive-timeout-seconds=30"])
    bystander = own_channel(server)
    assert identity(bystander, [1, 2]) == [[1, 2]]
    before = metric(server, OPEN)
    connection = connect(server.port)
    assert connection.max_streams() == 4
    held = [connection.start_call(claimed=MIB, sent=KIB) for _ in range(4)]
    connection.ignore_stream_cap()
    connection.start_call(claimed=KIB, sent=KIB)
    pump([connection], lambda: connection.closed, 10)
    assert {connection.answers[stream]["grpc-status"] for stream in held} == {"14"}  # UNAVAILABLE
    wait_until(lambda: metric(server, OPEN) == before, 10,
               what="the broken connection counted gone")
    assert identity(bystander, [3, 4]) == [[3, 4]]  # served on, on its own connection
    connection.close()


@pytest.mark.measures_memory
def test_a_flood_of_half_sent_messages_is_held_to_the_memory_quota(launch, example_repository):
    """10 connections x 20 calls, each sending all but the last byte of an 8 MiB message: 1.6 GB
    for gRPC to buffer. Without a quota modeld's RSS passed 1.7 GiB; with 64 MiB, gRPC shrinks
    its windows and resets calls instead."""
    server = launch(example_repository, ["--grpc-memory-quota-bytes=67108864",
                                         "--grpc-receive-timeout-seconds=20"])
    pid = server.proc.pid
    bystander = own_channel(server)
    assert identity(bystander, [1, 2]) == [[1, 2]]
    started = vm_rss_kib(pid)
    connections = [connect(server.port) for _ in range(10)]
    for connection in connections:
        for _ in range(20):
            connection.start_call(claimed=8 * MIB, sent=8 * MIB - 1, tolerate_resets=True)
    peak = started
    until = time.monotonic() + 10
    while time.monotonic() < until:
        for connection in connections:
            connection.receive()
        peak = max(peak, vm_rss_kib(pid))
        time.sleep(0.05)
    assert sum(len(connection.resets) for connection in connections) > 0
    assert peak - started < 512 * 1024, f"RSS went from {started // 1024} to {peak // 1024} MiB"
    for connection in connections:
        connection.close()
    assert identity(own_channel(server), [3, 4]) == [[3, 4]]  # modeld serves on
