"""Admission (--max-inflight-requests, src/service/admission.h): over the cap, a gRPC ModelInfer
is refused RESOURCE_EXHAUSTED at once, naming the flag, before its payload is parsed; admitted
calls complete; a burst far over the cap gets every call answered, each with its
own result or a refusal, and modeld stays live."""

import re
import shutil
import threading
import urllib.request

import grpc
import numpy as np

from http_helpers import HttpClient
from infer_helpers import decode_response, make_request, make_stub
from lifecycle_helpers import fake_config, wait_until

REJECTED = re.compile(
    r'^modeld_requests_rejected_total\{reason="max_inflight_requests"\} (\d+)$', re.M)


INFLIGHT_SLOW = re.compile(r'^modeld_inflight_requests\{model="slow",version="1"\} (\S+)$', re.M)


def metrics(server):
    return urllib.request.urlopen(f"http://{server.http_address}/metrics",
                                  timeout=10).read().decode()


def rejected(server):
    match = REJECTED.search(metrics(server))
    return int(match.group(1)) if match else 0


def hold_four_slots(server, stub):
    """Four calls at work on `slow` for 1.5 s, holding the four slots; returns their futures
    once modeld has them (nothing else is sent meanwhile, so none of them is refused)."""
    x = np.ones((1, 4), np.float32)
    slow = [stub.ModelInfer.future(make_request("slow", [("INPUT0", x)]), timeout=30)
            for _ in range(4)]

    def admitted():
        match = INFLIGHT_SLOW.search(metrics(server))
        return match is not None and float(match.group(1)) == 4
    wait_until(admitted, 10, interval=0.01, what="the four slow calls at work")
    return slow


def identity(stub, values):
    x = np.asarray([values], np.float32)
    reply = stub.ModelInfer(make_request("identity_fp32", [("INPUT0", x)]), timeout=30)
    return decode_response(reply)["OUTPUT0"]


def slow_repository(tmp_path, example_repository):
    """The examples plus `slow`: OUTPUT0 = INPUT0 (FP32 [4]) after 1.5 s, four instances and
    no batching, so four calls are at work at once for that long."""
    repository = tmp_path / "repo"
    shutil.copytree(example_repository, repository)
    (repository / "slow" / "1").mkdir(parents=True)
    (repository / "slow" / "config.pbtxt").write_text(fake_config(
        "slow", max_batch_size=1, dynamic_batching=False, sleep_ms="1500"
        ) + "instance_group { count: 4 kind: KIND_CPU }\n")
    return repository


def test_over_the_cap_a_call_is_refused_at_once_naming_the_flag(
        launch, example_repository, tmp_path):
    server = launch(slow_repository(tmp_path, example_repository), ["--max-inflight-requests=4"])
    stub = make_stub(server.channel())
    slow = hold_four_slots(server, stub)
    try:
        identity(stub, [1, 2])
        raise AssertionError("a fifth call was admitted while four were at work")
    except grpc.RpcError as error:
        refusal = error
    assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refusal
    assert "--max-inflight-requests=4" in refusal.details(), refusal.details()
    assert rejected(server) == 1
    # The admitted calls complete, with their answers.
    for future in slow:
        assert decode_response(future.result())["OUTPUT0"].tolist() == [[1, 1, 1, 1]]
    # Their slots come back: calls are served again.
    _, waited = wait_until(lambda: served(stub), 10, what="a call admitted after the slow ones")
    assert waited < 10


def served(stub):
    try:
        return identity(stub, [3, 4]).tolist() == [[3, 4]]
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        return False


def test_a_burst_far_over_the_cap_answers_every_call_with_its_own_result(
        launch, example_repository):
    cap, clients, each = 4, 16, 25
    server = launch(example_repository, [f"--max-inflight-requests={cap}"])
    outcomes = []
    lock = threading.Lock()

    def client(index):
        stub = make_stub(server.channel())
        for i in range(each):
            values = [index, i, index * 1000 + i]
            try:
                got = identity(stub, values).tolist()
                outcome = "served" if got == [values] else f"wrong answer {got} for {values}"
            except grpc.RpcError as error:
                outcome = ("refused" if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                           else f"{error.code()}: {error.details()}")
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == clients * each  # every call answered, once
    assert set(outcomes) <= {"served", "refused"}, sorted(set(outcomes))[:5]
    assert outcomes.count("served") > 0
    assert rejected(server) == outcomes.count("refused")
    assert identity(make_stub(server.channel()), [7, 8]).tolist() == [[7, 8]]  # still serving


def test_over_the_cap_an_http_inference_gets_429_with_retry_after(
        launch, example_repository, tmp_path):
    server = launch(slow_repository(tmp_path, example_repository), ["--max-inflight-requests=4"])
    stub = make_stub(server.channel())
    slow = hold_four_slots(server, stub)
    client = HttpClient(server.http_address)
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 2], "data": [5, 6]}]}
    reply = client.post("/v2/models/identity_fp32/infer", body)
    assert reply.status == 429, reply.body
    assert reply.headers.get("retry-after") == "1", reply.headers
    assert "--max-inflight-requests=4" in reply.json()["error"], reply.body
    # Health is no inference call: never refused.
    assert client.get("/v2/health/live").status == 200
    for future in slow:
        future.result()
    wait_until(lambda: client.post("/v2/models/identity_fp32/infer", body).status == 200, 10,
               what="an HTTP inference admitted after the slow calls")
