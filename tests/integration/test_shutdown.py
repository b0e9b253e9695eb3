"""Graceful shutdown: SIGTERM / SIGINT stop intake, let in-flight requests finish, exit 0."""

import signal
import threading
import time

import grpc
import numpy as np
import pytest

from infer_helpers import RPC_TIMEOUT_S, infer, linear_expected, make_request, make_stub, pb

EXIT_TIMEOUT_S = 30.0

# A model on modeld's built-in fake backend whose Run() sleeps, so requests are reliably in
# flight when the signal arrives. Run() is never concurrent on one instance, so requests queue.
SLOW_CONFIG = """\
name: "slow"
backend: "fake"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
parameters { key: "behavior" value { string_value: "sleep" } }
parameters { key: "sleep_ms" value { string_value: "600" } }
"""


def assert_port_closed(address):
    channel = grpc.insecure_channel(address)
    try:
        with pytest.raises(grpc.RpcError) as info:
            make_stub(channel).ServerLive(pb.ServerLiveRequest(), timeout=5)
        assert info.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ), info.value
    finally:
        channel.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_after_serving_exits_zero(launch, example_repository, sig):
    server = launch(example_repository)
    stub = make_stub(server.channel())
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    _, outputs = infer(stub, make_request("linear", [("x", x)]))
    np.testing.assert_allclose(outputs["y"], linear_expected(x), rtol=1e-6)
    address = server.address
    started = time.monotonic()
    assert server.stop(sig, timeout=EXIT_TIMEOUT_S) == 0, server.log
    assert time.monotonic() - started < EXIT_TIMEOUT_S
    assert_port_closed(address)


def test_sigterm_during_load_exits_zero(launch, example_repository):
    server = launch(example_repository, wait=False)
    # The first log line comes from main() once it runs (after the signal mask is set up),
    # while the repository is still loading.
    server.wait_for_output()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=EXIT_TIMEOUT_S) == 0, server.log


def test_in_flight_requests_finish_on_sigterm(launch, tmp_path):
    repository = tmp_path / "repo"
    (repository / "slow" / "1").mkdir(parents=True)
    (repository / "slow" / "config.pbtxt").write_text(SLOW_CONFIG)
    server = launch(repository)
    stub = make_stub(server.channel())

    requests = [
        make_request("slow", [("INPUT0", np.full(4, float(i), np.float32))], request_id=str(i))
        for i in range(4)
    ]
    futures = [stub.ModelInfer.future(r, timeout=RPC_TIMEOUT_S) for r in requests]
    # The first answer, whichever request it is (concurrent RPCs reach the server in any
    # order), proves the server has been working through the queue; the other three were sent
    # with it and are queued or running behind it.
    first_answer = threading.Event()
    for future in futures:
        future.add_done_callback(lambda _: first_answer.set())
    assert first_answer.wait(RPC_TIMEOUT_S), "no answer"
    assert sum(future.done() for future in futures) == 1, "the answers came together"
    server.send_signal(signal.SIGTERM)
    server.wait_for_log(r"(?i)shutting down|draining", timeout=EXIT_TIMEOUT_S)

    # Intake is closed: a new request is refused, not queued.
    late = make_request("slow", [("INPUT0", np.full(4, 99.0, np.float32))])
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(late, timeout=RPC_TIMEOUT_S)
    late_code = info.value.code()

    # Every request accepted before the signal gets its own, complete answer.
    for i, future in enumerate(futures):
        response = future.result(timeout=RPC_TIMEOUT_S)
        assert response.id == str(i)
        (raw,) = response.raw_output_contents
        np.testing.assert_array_equal(np.frombuffer(raw, np.float32), np.full(4, float(i)))
    assert server.wait(timeout=EXIT_TIMEOUT_S) == 0, server.log
    # Refused while draining means UNAVAILABLE (design §5), which clients know to retry
    # elsewhere; CANCELLED would claim the client gave up.
    assert late_code == grpc.StatusCode.UNAVAILABLE, info.value
