"""gRPC calls that never finish sending their request (docs/security.md, "Limits").

gRPC's typed API sees a call only once its whole message has arrived, so a client could open
calls, send part of a message each and stall: 20 connections x 1,000 such calls once took
modeld from 176 to 634 MiB, for good. Now each connection carries at most
--grpc-max-concurrent-streams calls, a ModelInfer message that has not arrived whole within
--grpc-receive-timeout-seconds is answered DEADLINE_EXCEEDED, which frees what gRPC held.
Stalled calls hold no --max-inflight-requests slot, so other clients are served meanwhile.

The client here speaks raw HTTP/2 (the h2 package): no gRPC client can send half a message.
"""

import time

import numpy as np
import pytest

from infer_helpers import decode_response, make_request, make_stub
from lifecycle_helpers import vm_rss_kib, wait_until
from raw_grpc import connect, pump

KIB = 1024
MIB = 1024 * KIB


def infer_once(server):
    """A whole ModelInfer on a fresh grpcio channel: modeld still serves."""
    x = np.array([[1, 2, 3, 4]], np.float32)
    reply = make_stub(server.channel()).ModelInfer(
        make_request("identity_fp32", [("INPUT0", x)]), timeout=30
    )
    assert np.array_equal(decode_response(reply)["OUTPUT0"], x)


def test_a_half_sent_call_is_answered_deadline_exceeded_naming_the_flag(launch, example_repository):
    server = launch(example_repository, ["--grpc-receive-timeout-seconds=2"])
    connection = connect(server.port)
    opened = time.monotonic()
    stream = connection.start_call(claimed=MIB, sent=16 * KIB)
    infer_once(server)  # the stalled call holds nothing up
    pump([connection], lambda: stream in connection.answers, 30)
    answer = connection.answers[stream]
    assert answer["grpc-status"] == "4", answer  # DEADLINE_EXCEEDED
    assert "grpc-receive-timeout-seconds" in answer.get("grpc-message", ""), answer
    # Not before the timeout (a timer cannot fire early; the bound is generous below it).
    assert connection.answered_at[stream] - opened >= 1.5
    connection.close()
    infer_once(server)


def test_a_call_whose_deadline_passed_is_answered_without_reading_it(launch, example_repository):
    server = launch(example_repository)
    connection = connect(server.port)
    # grpc-timeout of 1 ns: over before modeld sees the call; the message never comes.
    stream = connection.start_call(claimed=MIB, sent=0, extra_headers=[("grpc-timeout", "1n")])
    pump([connection], lambda: stream in connection.answers, 10)
    assert connection.answers[stream]["grpc-status"] == "4", connection.answers[stream]
    connection.close()


def test_bytes_that_are_no_request_are_invalid_argument(launch, example_repository):
    server = launch(example_repository)
    connection = connect(server.port)
    stream = connection.open_call()
    connection.send_message(stream, b"\xff\xff\xff not protobuf")
    pump([connection], lambda: stream in connection.answers, 10)
    answer = connection.answers[stream]
    assert answer["grpc-status"] == "3", answer  # INVALID_ARGUMENT
    assert "ModelInferRequest" in answer.get("grpc-message", ""), answer
    connection.close()


@pytest.mark.measures_memory
def test_twenty_connections_of_stalled_calls_are_bounded_and_freed(launch, example_repository):
    """The case from the adversarial pass: 20 connections x 1,000 ModelInfer calls, each
    sending 16 KiB of a message that claims 1 MiB, and never finishing."""
    timeout_s = 5
    server = launch(example_repository, [f"--grpc-receive-timeout-seconds={timeout_s}"])
    pid = server.proc.pid
    infer_once(server)  # warm
    time.sleep(2)
    started = vm_rss_kib(pid)

    connections = [connect(server.port) for _ in range(20)]
    opened = {}
    for connection in connections:
        # The server's SETTINGS cap the calls per connection; a client cannot open the 1,000.
        assert connection.max_streams() == 100, connection.max_streams()
        streams = [
            connection.start_call(claimed=MIB, sent=16 * KIB)
            for _ in range(min(1000, connection.max_streams()))
        ]
        opened[connection] = streams
    peak = vm_rss_kib(pid)
    infer_once(server)  # modeld serves other clients meanwhile

    def all_answered():
        nonlocal peak
        peak = max(peak, vm_rss_kib(pid))
        return all(set(streams) <= connection.answers.keys()
                   for connection, streams in opened.items())

    pump(connections, all_answered, timeout_s + 60)
    codes = [connection.answers[stream]["grpc-status"]
             for connection, streams in opened.items() for stream in streams]
    for connection in connections:
        connection.close()
    assert set(codes) == {"4"}, set(codes)  # DEADLINE_EXCEEDED, every one
    # 2,000 calls of 16 KiB: 31 MiB of payload; without the caps the same client held 458 MiB.
    assert peak - started < 128 * 1024, f"RSS went from {started // 1024} to {peak // 1024} MiB"
    wait_until(lambda: vm_rss_kib(pid) < started + 32 * 1024, 30,
               what=f"RSS back near {started // 1024} MiB (peak {peak // 1024} MiB)")
    infer_once(server)
