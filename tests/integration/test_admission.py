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
from infer_helpers import pb as kserve_pb
from lifecycle_helpers import fake_config, wait_until

REJECTED = re.compile(
    r'^modeld_requests_rejected_total\{reason="max_inflight_requests"\} (\d+)$', re.M)


INFLIGHT_SLOW = re.compile(r'^modeld_inflight_requests\{model="slow",version="1"\} (\S+)$', re.M)


LIMIT = re.compile(r"^modeld_admission_limit (\d+)$", re.M)


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
    cap, clients, each = 4, 40, 10  # 40 clients at once: ten times the cap
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


def test_tfserving_predict_over_the_cap_is_refused_naming_the_flag(
        launch, example_repository, tmp_path):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    server = launch(slow_repository(tmp_path, example_repository), ["--max-inflight-requests=4"])
    slow = hold_four_slots(server, make_stub(server.channel()))
    predict = prediction_service_pb2_grpc.PredictionServiceStub(server.channel()).Predict
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "identity_fp32"
    tensor = request.inputs["INPUT0"]
    tensor.dtype = 1  # DT_FLOAT
    tensor.tensor_shape.dim.add().size = 1
    tensor.tensor_shape.dim.add().size = 2
    tensor.float_val.extend([5, 6])
    try:
        predict(request, timeout=30)
        raise AssertionError("a TensorFlow Serving Predict was admitted while four were at work")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert "--max-inflight-requests=4" in error.details(), error.details()
    for future in slow:
        future.result()
    reply = predict(request, timeout=30)
    assert list(reply.outputs["OUTPUT0"].float_val) == [5, 6]


def wide_config(name, instances, queue):
    """A fake model running batches of up to 64 on `instances` instances, `queue` waiting."""
    return fake_config(name, max_batch_size=64, dynamic_batching=False) + (
        f"instance_group {{ count: {instances} kind: KIND_CPU }}\n"
        f"dynamic_batching {{ default_queue_policy {{ max_queue_size: {queue} }} }}\n")


def test_by_default_the_cap_follows_the_served_models(launch, tmp_path):
    repository = tmp_path / "repo"
    for name, instances, queue in (("wide", 4, 100), ("wider", 2, 300)):
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "config.pbtxt").write_text(wide_config(name, instances, queue))
    server = launch(repository, ["--model-control-mode=explicit"])

    def limit():
        return int(LIMIT.search(metrics(server)).group(1))

    # Both served: 4 x 64 + 100, and 2 x 64 + 300.
    assert limit() == 356 + 428
    stub = make_stub(server.channel())
    stub.RepositoryModelUnload(kserve_pb.RepositoryModelUnloadRequest(model_name="wider"),
                               timeout=30)
    wait_until(lambda: limit() == 356, 10, what="the cap to drop with 'wider' unloaded")
    stub.RepositoryModelLoad(kserve_pb.RepositoryModelLoadRequest(model_name="wider"), timeout=30)
    wait_until(lambda: limit() == 784, 10, what="the cap to grow with 'wider' loaded again")
    assert "--max-inflight-requests=auto" in server.log
