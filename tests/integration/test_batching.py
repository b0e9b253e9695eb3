"""Dynamic batching through the real server: many concurrent clients, each gets its own answer;
requests are combined; queue limits and timeouts answer with the right codes."""

import concurrent.futures
import threading

import grpc
import numpy as np
import pytest

from infer_helpers import RPC_TIMEOUT_S, decode_response, infer, make_request, make_stub, pb

CLIENTS = 64


def run_clients(count, work):
    """Runs work(client_index) on `count` threads started together; re-raises any failure."""
    barrier = threading.Barrier(count)

    def client(index):
        barrier.wait(timeout=RPC_TIMEOUT_S)
        return work(index)

    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        return [f.result(timeout=120) for f in [pool.submit(client, i) for i in range(count)]]


def test_64_clients_on_identity_each_get_their_own_answer(stub):
    def work(client):
        for round_ in range(10):
            rows = 1 + (client + round_) % 3
            value = client * 1000 + round_
            x = (np.arange(rows * 8, dtype=np.float32).reshape(rows, 8) + value).astype(np.float32)
            request = make_request("identity_fp32", [("INPUT0", x)], request_id=f"{client}-{round_}")
            response, outputs = infer(stub, request)
            assert response.id == f"{client}-{round_}"
            np.testing.assert_array_equal(outputs["OUTPUT0"], x)

    run_clients(CLIENTS, work)


def test_64_clients_on_mlp_each_get_their_own_answer(stub, example_repository):
    reference_in = np.load(example_repository / "mlp" / "reference" / "input.npy")
    reference_out = np.load(example_repository / "mlp" / "reference" / "output.npy")

    def work(client):
        row = client % len(reference_in)
        for round_ in range(5):
            x = reference_in[row : row + 1]
            _, outputs = infer(stub, make_request("mlp", [("x", x)], request_id=str(client)))
            np.testing.assert_allclose(outputs["logits"], reference_out[row : row + 1],
                                       rtol=1e-4, atol=1e-5)

    run_clients(CLIENTS, work)


def write_fake_model(repository, name, parameters, batching="dynamic_batching { }",
                     max_batch_size=16, output_type="TYPE_FP32"):
    folder = repository / name
    (folder / "1").mkdir(parents=True)
    params = "\n".join(
        f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}' for k, v in parameters.items()
    )
    (folder / "config.pbtxt").write_text(
        f'backend: "fake"\nmax_batch_size: {max_batch_size}\n'
        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        f'output [ {{ name: "y" data_type: {output_type} dims: [ 1 ] }} ]\n'
        f"{params}\n{batching}\n"
    )


@pytest.fixture
def fake_server(launch, tmp_path):
    repository = tmp_path / "repo"
    # Reports the rows of every run; slow enough that concurrent requests queue behind a run.
    write_fake_model(repository, "batch_size",
                     {"behavior": "batch_size", "sleep_ms": "500"}, output_type="TYPE_INT64")
    write_fake_model(repository, "small_queue", {"behavior": "identity", "sleep_ms": "1000"},
                     "dynamic_batching { default_queue_policy { max_queue_size: 2 } }",
                     max_batch_size=1)
    write_fake_model(repository, "timeouts", {"behavior": "identity", "sleep_ms": "1000"},
                     "dynamic_batching { default_queue_policy { allow_timeout_override: true } }",
                     max_batch_size=1)
    server = launch(repository)
    return server, make_stub(server.channel())


def send_together(stub, requests):
    """Sends every request at once; returns the futures."""
    return [stub.ModelInfer.future(r, timeout=RPC_TIMEOUT_S) for r in requests]


def test_queued_requests_are_combined_into_batches(fake_server):
    _, stub = fake_server
    requests = [make_request("batch_size", [("x", np.array([[float(i)]], np.float32))])
                for i in range(9)]
    sizes = []
    for future in send_together(stub, requests):
        outputs = decode_response(future.result())
        sizes.append(int(outputs["y"][0, 0]))
    # The first request runs alone for 500 ms; the others queue and run together after it.
    assert max(sizes) > 1, sizes
    assert sum(1 for s in sizes if s > 1) >= max(sizes), sizes


def test_a_full_queue_refuses_at_once_and_the_admitted_succeed(fake_server):
    server, stub = fake_server
    requests = [make_request("small_queue", [("x", np.array([[float(i)]], np.float32))],
                             request_id=str(i)) for i in range(6)]
    admitted, refused = 0, []
    for i, future in enumerate(send_together(stub, requests)):
        try:
            response = future.result()
            np.testing.assert_array_equal(decode_response(response)["y"], [[float(i)]])
            admitted += 1
        except grpc.RpcError as error:
            refused.append(error)
    # One runs, two wait (max_queue_size 2); the rest are refused without waiting.
    assert admitted <= 3 and len(refused) >= 3, (admitted, refused)
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert "max_queue_size 2" in error.details()
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live


def test_a_request_timeout_expires_in_the_queue_without_running(fake_server):
    _, stub = fake_server
    busy = make_request("timeouts", [("x", np.array([[1.0]], np.float32))])
    hurried = []
    for i in range(3):
        request = make_request("timeouts", [("x", np.array([[2.0 + i]], np.float32))])
        request.parameters["timeout"].uint64_param = 100_000  # 100 ms; a run takes 1 s
        hurried.append(request)
    busy_future, *hurried_futures = send_together(stub, [busy, *hurried])
    expired = []
    for future in hurried_futures:
        try:
            future.result()
        except grpc.RpcError as error:
            expired.append(error)
    # Whichever request runs first, at least two hurried ones wait behind a 1 s run.
    assert len(expired) >= 2, expired
    for error in expired:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error
        assert "queue of model 'timeouts'" in error.details()
    np.testing.assert_array_equal(decode_response(busy_future.result())["y"], [[1.0]])


def test_bad_priority_is_refused(stub):
    request = make_request("identity_fp32", [("INPUT0", np.ones((1, 4), np.float32))])
    request.parameters["priority"].string_param = "urgent"
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "parameter 'priority'" in info.value.details()
