"""modeld as a Celery worker (docs/design/celery.md), driven by real Celery 5 clients.

`app.send_task("modeld.infer", ..., queue="modeld")` + `AsyncResult.get()` against the real
modeld binary, over each broker / result-backend combination (celery_helpers.SETUPS): Redis
broker + Redis backend, RabbitMQ + Redis backend, RabbitMQ + rpc://, Redis + rpc://. Each
combination has one modeld shared by the module's tests (module-scoped); the tests that kill,
stop or reconfigure modeld start their own, on a queue of their own. Chains end in a real Python
Celery worker (celery_helpers.PythonWorker) consuming the queues `python` and `celery`.
"""

import base64
import datetime
import json
import re
import signal
import threading
import time
import uuid

import numpy as np
import pika
import pytest
from celery import chain, chord, group
from celery.exceptions import NotRegistered, TaskRevokedError, TimeLimitExceeded

from celery_helpers import (
    CORE_SETUPS,
    FAKE_MODELS,
    MODELD_QUEUE,
    PYTHON_QUEUE,
    REDIS_BACKEND_SETUPS,
    RESULT_EXPIRES_S,
    SETUPS,
    WAIT_S,
    PythonWorker,
    infer_echo,
    kombu_redis_wrapper,
    make_setup,
    metric_names,
    metric_sum,
    metrics,
    model_requests,
    task_headers,
    wait_serving,
    write_repository,
)
from modeld_server import REPO_ROOT, start_server
from rabbitmq_server import fresh_name
from redis_server import RedisServer, wait_until
from train_helpers import samples, torch_modules, write_trainable  # noqa: F401  (fixture)

# The metrics (docs/metrics.md, the Celery section).
TASKS_METRIC = "modeld_celery_tasks_total"  # labels task, state: SUCCESS, FAILURE, REVOKED
DEAD_LETTERS_METRIC = "modeld_celery_dead_letters_total"
DEAD_LETTERS_LIST = f"{MODELD_QUEUE}.dead-letters"

ADD_A = [0.25 * i for i in range(16)]
ADD_B = [10.0 - 1.5 * i for i in range(16)]


def linear(x, version=1):
    """examples/generate_models.py's linear: y = x @ [0.5, -1.25, 2.0] + 0.75 (version 2:
    doubled)."""
    y = 0.5 * x[0] - 1.25 * x[1] + 2.0 * x[2] + 0.75
    return y * version


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repository(tmp_path_factory, example_repository):
    return write_repository(tmp_path_factory.mktemp("celery_repo"), example_repository)


class Pool:
    """The module's set-ups, each started on first use: its broker, its modeld, a client app."""

    def __init__(self, request, repository):
        self.request = request
        self.repository = repository
        self.setups = {}
        self.redis_servers = []
        self.workers = {}

    def _redis(self):
        server = RedisServer()
        self.redis_servers.append(server)
        return server

    def get(self, name):
        if name not in self.setups:
            rabbitmq = (self.request.getfixturevalue("rabbitmq") if name.startswith("amqp")
                        else None)
            setup = make_setup(name, rabbitmq=rabbitmq, redis_factory=self._redis)
            self.setups[name] = setup
            setup.server = start_server(self.repository, setup.modeld_args(
                extra=[f"--celery-result-expires={RESULT_EXPIRES_S}"]))
            setup.client = setup.app()
            wait_serving(setup.client)
        return self.setups[name]

    def python_worker(self, name):
        if name not in self.workers:
            self.workers[name] = PythonWorker(self.get(name))
        return self.workers[name]

    def close(self):
        for name, worker in self.workers.items():
            began = time.monotonic()
            worker.stop()
            print(f"\n{name}: the Python worker stopped in {time.monotonic() - began:.1f}s")
        for setup in self.setups.values():
            setup.close()
            if setup.server is not None and setup.server.running():
                began = time.monotonic()
                try:
                    setup.server.stop()
                except AssertionError:
                    pass
                print(f"\n{setup.name}: modeld stopped in {time.monotonic() - began:.1f}s")
        for server in self.redis_servers:
            server.close()


@pytest.fixture(scope="module")
def pool(request, repository):
    pool = Pool(request, repository)
    yield pool
    pool.close()


@pytest.fixture
def setup(request, pool):
    """The set-up named by the test's parameter (indirect)."""
    return pool.get(request.param)


@pytest.fixture
def modeld(setup):
    """The set-up's shared modeld (a funcarg, so a failing test's report has its log)."""
    return setup.server


def params(*names):
    return pytest.mark.parametrize("setup", names, indirect=True)


def tasks_by_status(server, state):
    return metric_sum(server, TASKS_METRIC, state=state)


def expect_serving(setup, values=(5, 6, 7, 8)):
    """modeld still answers the next task."""
    values = list(values)
    assert infer_echo(setup.client, values).get(timeout=WAIT_S) == {"OUTPUT0": [values]}


# --- results -----------------------------------------------------------------------------------


@params(*SETUPS)
def test_infer_returns_the_models_answer(setup, modeld):
    result = setup.client.send_task("modeld.infer", args=["add_sub", {"INPUT0": ADD_A,
                                                                      "INPUT1": ADD_B}],
                                    queue=MODELD_QUEUE)
    answer = result.get(timeout=WAIT_S)
    assert answer == {"OUTPUT0": [a + b for a, b in zip(ADD_A, ADD_B)],
                      "OUTPUT1": [a - b for a, b in zip(ADD_A, ADD_B)]}
    assert list(answer) == ["OUTPUT0", "OUTPUT1"]  # config order
    assert result.state == "SUCCESS"


@params(*CORE_SETUPS)
def test_kwargs_version_and_outputs(setup, modeld):
    client = setup.client
    rows = [[1, 2, 3], [-2, 0.5, 4]]
    by_kwargs = client.send_task("modeld.infer", kwargs={"model": "linear",
                                                         "inputs": {"x": rows}},
                                 queue=MODELD_QUEUE)
    version_2 = client.send_task("modeld.infer", args=["linear", {"x": rows}],
                                 kwargs={"version": 2}, queue=MODELD_QUEUE)
    version_1_text = client.send_task("modeld.infer", args=["linear", {"x": rows}, "1"],
                                      queue=MODELD_QUEUE)
    subset = client.send_task("modeld.infer", args=["add_sub", {"INPUT0": ADD_A,
                                                                "INPUT1": ADD_B}],
                              kwargs={"outputs": ["OUTPUT1"]}, queue=MODELD_QUEUE)
    # No version: the newest ready one, 2 (linear serves both).
    assert by_kwargs.get(timeout=WAIT_S) == {"y": [[linear(row, 2)] for row in rows]}
    assert version_2.get(timeout=WAIT_S) == {"y": [[linear(row, 2)] for row in rows]}
    assert version_1_text.get(timeout=WAIT_S) == {"y": [[linear(row)] for row in rows]}
    assert subset.get(timeout=WAIT_S) == {"OUTPUT1": [a - b for a, b in zip(ADD_A, ADD_B)]}
    # An integral float output comes back in its shortest form: version 1 of x = [2.5, 0, 0]
    # is 0.5 * 2.5 + 0.75 = 2.
    whole = client.send_task("modeld.infer", args=["linear", {"x": [[2.5, 0, 0]]}, 1],
                             queue=MODELD_QUEUE).get(timeout=WAIT_S)
    assert whole == {"y": [[2]]}
    assert json.dumps(whole) == '{"y": [[2]]}'


@params(*CORE_SETUPS)
def test_predict(setup, modeld):
    rows = [[1, 2, 3], [0, 0, 1]]
    result = setup.client.send_task("modeld.predict", args=["linear", rows], queue=MODELD_QUEUE)
    assert result.get(timeout=WAIT_S) == [[linear(row, 2)] for row in rows]  # the newest
    by_kwargs = setup.client.send_task("modeld.predict", kwargs={"model": "linear",
                                                                 "data": rows, "version": 1},
                                       queue=MODELD_QUEUE)
    assert by_kwargs.get(timeout=WAIT_S) == [[linear(row, 1)] for row in rows]


@params(*CORE_SETUPS)
def test_int64_bool_and_bytes(setup, modeld):
    client = setup.client
    ids = [[3, -2, 2**62 + 1, 0, -(2**63)], [7, 8, -9, 10, 11]]
    mask = [[True, False, True, True, False], [False, True, True, True, True]]
    result = client.send_task("modeld.infer", args=["int64_bool", {"ids": ids, "mask": mask}],
                              queue=MODELD_QUEUE).get(timeout=WAIT_S)
    assert result == {
        "masked_ids": [[i if m else 0 for i, m in zip(r, mr)] for r, mr in zip(ids, mask)],
        "positive": [[i > 0 for i in r] for r in ids],
    }
    assert all(type(v) is bool for row in result["positive"] for v in row)
    assert all(type(v) is int for row in result["masked_ids"] for v in row)

    raw = b"\xff\x00\xfe binary"
    text = client.send_task("modeld.infer", args=["text", {"INPUT0": [
        ["héllo", "wörld ✓", {"b64": base64.b64encode(raw).decode()}]]}],
        queue=MODELD_QUEUE).get(timeout=WAIT_S)
    out = text["OUTPUT0"][0]
    assert out[:2] == ["héllo", "wörld ✓"]
    assert base64.b64decode(out[2]["b64"]) == raw

    # float identity with NaN / infinities (Python's json writes and reads them).
    values = [1.5, float("inf"), float("-inf"), -0.0]
    same = client.send_task("modeld.infer", args=["identity_fp32", {"INPUT0": [values]}],
                            queue=MODELD_QUEUE).get(timeout=WAIT_S)
    assert same == {"OUTPUT0": [values]}


@params(*CORE_SETUPS)
def test_64_concurrent_tasks_each_get_their_own_answer(setup, modeld):
    batches_before = metric_sum(modeld, "modeld_batch_size_count", model="echo")
    rows_before = metric_sum(modeld, "modeld_batch_size_sum", model="echo")
    success_before = tasks_by_status(modeld, "SUCCESS")
    per_thread = 4
    errors = []
    answers = {}
    barrier = threading.Barrier(64)

    def submit(index):
        try:
            barrier.wait(timeout=WAIT_S)
            for j in range(per_thread):
                values = [index, j, -index, index * 0.5]
                result = infer_echo(setup.client, values)
                answers[(index, j)] = (values, result.get(timeout=WAIT_S))
        except BaseException as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 2)
    assert not errors, errors[:3]
    assert len(answers) == 64 * per_thread
    for key, (values, answer) in answers.items():
        assert answer == {"OUTPUT0": [values]}, key
    batches = metric_sum(modeld, "modeld_batch_size_count", model="echo") - batches_before
    rows = metric_sum(modeld, "modeld_batch_size_sum", model="echo") - rows_before
    assert rows == 64 * per_thread
    print(f"{setup.name}: {rows:.0f} rows in {batches:.0f} batches")
    assert batches < rows, "no two Celery tasks were ever batched together"
    assert tasks_by_status(modeld, "SUCCESS") - success_before >= 64 * per_thread


# --- errors ------------------------------------------------------------------------------------


@params(*CORE_SETUPS)
def test_errors_raise_the_python_exceptions(setup, modeld):
    client = setup.client
    failures_before = tasks_by_status(modeld, "FAILURE")

    def send(*args, task="modeld.infer", **kwargs):
        return client.send_task(task, args=list(args), kwargs=kwargs, queue=MODELD_QUEUE)

    with pytest.raises(LookupError, match="no_such_model") as caught:
        send("no_such_model", {"INPUT0": [[1, 2, 3, 4]]}).get(timeout=WAIT_S)
    assert type(caught.value) is LookupError
    expect_serving(setup)

    with pytest.raises(ValueError) as caught:  # 15 values for dims [16]
        send("add_sub", {"INPUT0": ADD_A[:15], "INPUT1": ADD_B[:15]}).get(timeout=WAIT_S)
    assert type(caught.value) is ValueError
    assert "INPUT0" in str(caught.value) and "shape" in str(caught.value).lower(), caught.value
    expect_serving(setup)

    with pytest.raises(ValueError) as caught:  # strings for FP32
        send("add_sub", {"INPUT0": ["a"] * 16, "INPUT1": ADD_B}).get(timeout=WAIT_S)
    assert "INPUT0" in str(caught.value), caught.value
    expect_serving(setup)

    with pytest.raises(ValueError) as caught:  # not rectangular
        send("linear", {"x": [[1, 2, 3], [1, 2]]}).get(timeout=WAIT_S)
    assert "x" in str(caught.value), caught.value
    expect_serving(setup)

    with pytest.raises(ValueError) as caught:  # an input the model does not have
        send("linear", {"x": [[1, 2, 3]], "z": [[1]]}).get(timeout=WAIT_S)
    assert "z" in str(caught.value), caught.value

    with pytest.raises(LookupError, match="7"):  # no version 7
        send("linear", {"x": [[1, 2, 3]]}, version=7).get(timeout=WAIT_S)

    with pytest.raises(NotRegistered) as caught:
        send("add_sub", {}, task="modeld.no_such_task").get(timeout=WAIT_S)
    assert "modeld.no_such_task" in str(caught.value)
    expect_serving(setup)

    with pytest.raises(ValueError) as caught:
        send("add_sub", {"INPUT0": ADD_A, "INPUT1": ADD_B}, batch=3).get(timeout=WAIT_S)
    # Python's own message, which modeld may follow with the parameters it takes.
    assert str(caught.value).startswith(
        "modeld.infer() got an unexpected keyword argument 'batch'"), caught.value
    expect_serving(setup)

    with pytest.raises(ValueError) as caught:
        client.send_task("modeld.infer", args=[], queue=MODELD_QUEUE).get(timeout=WAIT_S)
    assert "missing" in str(caught.value) and "model" in str(caught.value), caught.value

    with pytest.raises(ValueError) as caught:
        send("linear", {"x": [[1, 2, 3]]}, model="linear").get(timeout=WAIT_S)
    assert "multiple values" in str(caught.value) and "model" in str(caught.value), caught.value

    with pytest.raises(ValueError) as caught:  # predict needs one input and one output
        client.send_task("modeld.predict", args=["add_sub", [ADD_A]],
                         queue=MODELD_QUEUE).get(timeout=WAIT_S)
    assert "add_sub" in str(caught.value) or "one input" in str(caught.value), caught.value
    expect_serving(setup)
    assert tasks_by_status(modeld, "FAILURE") - failures_before >= 11


@params(*CORE_SETUPS)
def test_a_pickled_task_is_refused_naming_its_content_type(setup, modeld):
    client = setup.app(accept_content=["json", "pickle"])
    result = client.send_task("modeld.infer", args=["echo", {"INPUT0": [[1, 2, 3, 4]]}],
                              queue=MODELD_QUEUE, serializer="pickle")
    with pytest.raises(ValueError) as caught:
        result.get(timeout=WAIT_S)
    message = str(caught.value)
    assert "application/x-python-serialize" in message, message
    assert "json" in message, message
    expect_serving(setup)


@params(*CORE_SETUPS)
def test_a_compressed_task_is_refused_naming_the_compression(setup, modeld):
    """kombu compresses the body and names it in the `compression` header
    (application/x-gzip); modeld reads uncompressed JSON only (docs/design/celery.md, 2)."""
    failures_before = tasks_by_status(modeld, "FAILURE")
    result = setup.client.send_task("modeld.infer", args=["echo", {"INPUT0": [[1, 2, 3, 4]]}],
                                    queue=MODELD_QUEUE, compression="gzip")
    with pytest.raises(ValueError) as caught:
        result.get(timeout=WAIT_S)
    assert type(caught.value) is ValueError
    message = str(caught.value)
    assert "compressed" in message and "gzip" in message, message
    assert result.state == "FAILURE"
    expect_serving(setup)
    assert tasks_by_status(modeld, "FAILURE") - failures_before >= 1


# --- headers: expires, eta, timelimit, ignore_result ------------------------------------------


@params("redis-redis", "redis-rpc")
def test_a_task_taken_after_its_expiry_is_revoked_and_never_runs(setup, modeld):
    """On Redis the message reaches modeld whatever its expiry (on RabbitMQ the client sets a
    per-message TTL of 0, and the broker may drop it: the next test covers RabbitMQ)."""
    ran_before = model_requests(modeld, "never")
    revoked_before = tasks_by_status(modeld, "REVOKED")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30)
    result = setup.client.send_task("modeld.infer", args=["never", {"INPUT0": [[1, 2, 3, 4]]}],
                                    queue=MODELD_QUEUE, expires=past)
    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=WAIT_S)
    assert result.state == "REVOKED"
    expect_serving(setup)
    assert model_requests(modeld, "never") == ran_before
    assert tasks_by_status(modeld, "REVOKED") == revoked_before + 1


@params(*CORE_SETUPS)
def test_a_countdown_past_the_expiry_is_revoked_and_never_runs(setup, modeld):
    ran_before = model_requests(modeld, "never")
    result = setup.client.send_task("modeld.infer", args=["never", {"INPUT0": [[1, 2, 3, 4]]}],
                                    queue=MODELD_QUEUE, countdown=1.5, expires=0.5)
    started = time.monotonic()
    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=WAIT_S)
    assert time.monotonic() - started >= 1.0, "revoked before its eta"
    expect_serving(setup)
    assert model_requests(modeld, "never") == ran_before


@params(*CORE_SETUPS)
def test_a_countdown_task_is_held_without_blocking_later_ones(setup, modeld):
    """One thread waits for both results: Celery's rpc:// result consumer is not safe to
    drain from two threads at once (one thread's result may sit unseen until the other's
    arrives, or never: the test was flaky on amqp-rpc so)."""
    client = setup.client
    sent = time.monotonic()
    later = client.send_task("modeld.infer", args=["linear", {"x": [[1, 1, 1]]}],
                             queue=MODELD_QUEUE, countdown=2)
    now = client.send_task("modeld.infer", args=["linear", {"x": [[2, 2, 2]]}],
                           queue=MODELD_QUEUE)
    assert now.get(timeout=WAIT_S) == {"y": [[linear([2, 2, 2], 2)]]}
    done_now = time.monotonic() - sent
    assert later.get(timeout=WAIT_S) == {"y": [[linear([1, 1, 1], 2)]]}
    done_later = time.monotonic() - sent
    assert done_now < 1.5, f"the task after a countdown task waited {done_now:.2f}s"
    assert done_later >= 1.95, f"the countdown task ran after {done_later:.2f}s"
    assert now.date_done < later.date_done, (now.date_done, later.date_done)


@params(*CORE_SETUPS)
def test_a_timelimit_that_a_queued_task_cannot_meet(setup, modeld):
    """`slow` runs one request at a time, 400 ms each: the task behind a running one waits
    longer than its hard time limit of 0.2 s and is answered TimeLimitExceeded, not run."""
    client = setup.client
    first = client.send_task("modeld.infer", args=["slow", {"INPUT0": [[1, 2, 3, 4]]}],
                             queue=MODELD_QUEUE)
    time.sleep(0.1)
    limited = client.send_task("modeld.infer", args=["slow", {"INPUT0": [[5, 6, 7, 8]]}],
                               queue=MODELD_QUEUE, time_limit=0.2)
    soft = client.send_task("modeld.infer", args=["slow", {"INPUT0": [[5, 6, 7, 8]]}],
                            queue=MODELD_QUEUE, soft_time_limit=0.2, time_limit=30)
    generous = client.send_task("modeld.infer", args=["slow", {"INPUT0": [[9, 9, 9, 9]]}],
                                queue=MODELD_QUEUE, time_limit=30)
    assert first.get(timeout=WAIT_S) == {"OUTPUT0": [[1, 2, 3, 4]]}
    with pytest.raises(TimeLimitExceeded):
        limited.get(timeout=WAIT_S)
    with pytest.raises(TimeLimitExceeded):  # the earlier of [soft, hard]
        soft.get(timeout=WAIT_S)
    assert generous.get(timeout=WAIT_S) == {"OUTPUT0": [[9, 9, 9, 9]]}
    assert metric_sum(modeld, "modeld_requests_total", model="slow",
                      outcome="deadline_exceeded") >= 2


@params(*REDIS_BACKEND_SETUPS)
def test_ignore_result_runs_the_task_and_stores_nothing(setup, modeld):
    backend = setup.redis.client(db=1)
    ran_before = model_requests(modeld, "counted")
    task_id = str(uuid.uuid4())
    result = setup.client.send_task("modeld.infer", args=["counted", {"INPUT0": [[1, 2, 3, 4]]}],
                                    queue=MODELD_QUEUE, ignore_result=True, task_id=task_id)
    assert result.id == task_id
    wait_until(lambda: model_requests(modeld, "counted") == ran_before + 1, WAIT_S,
               "the ignore_result task run")
    expect_serving(setup)
    time.sleep(0.3)
    assert backend.get(f"celery-task-meta-{task_id}") is None
    assert not backend.keys(f"*{task_id}*")


@params(*REDIS_BACKEND_SETUPS)
def test_the_result_document_and_its_expiry(setup, modeld):
    backend = setup.redis.client(db=1)
    result = infer_echo(setup.client, [1, 2, 3, 4])
    result.get(timeout=WAIT_S)
    key = f"celery-task-meta-{result.id}"
    ttl = backend.ttl(key)
    assert RESULT_EXPIRES_S - 30 <= ttl <= RESULT_EXPIRES_S, ttl
    document = json.loads(backend.get(key))
    assert document["status"] == "SUCCESS"
    assert document["result"] == {"OUTPUT0": [[1, 2, 3, 4]]}
    assert document["traceback"] is None
    assert document["children"] == []
    assert document["task_id"] == result.id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", document["date_done"]), \
        document["date_done"]
    done = datetime.datetime.fromisoformat(document["date_done"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - done).total_seconds()) < 30
    assert result.date_done is not None


def test_the_default_result_expiry_is_one_day(pool, launch, repository):
    setup = pool.get("redis-redis")
    queue = fresh_name("celery-expiry")
    launch(repository, setup.modeld_args(queue=queue))
    result = infer_echo(setup.client, [1, 2, 3, 4], queue=queue)
    result.get(timeout=WAIT_S)
    ttl = setup.redis.client(db=1).ttl(f"celery-task-meta-{result.id}")
    assert 86400 - 30 <= ttl <= 86400, ttl


@pytest.mark.parametrize("name", REDIS_BACKEND_SETUPS)
def test_track_started_stores_started_before_success(pool, launch, repository, name):
    setup = pool.get(name)
    queue = fresh_name("celery-started")
    server = launch(repository, setup.modeld_args(queue=queue, extra=["--celery-track-started=true"]))
    backend = setup.redis.client(db=1)
    task_id = str(uuid.uuid4())
    channel = f"celery-task-meta-{task_id}"
    pubsub = backend.pubsub()
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    result = setup.client.send_task("modeld.infer", args=["slow", {"INPUT0": [[1, 2, 3, 4]]}],
                                    queue=queue, task_id=task_id)
    documents = []
    states_seen = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not any(d["status"] == "SUCCESS" for d in documents):
        message = pubsub.get_message(timeout=1)
        if message and message["type"] == "message":
            documents.append(json.loads(message["data"]))
            if documents[-1]["status"] == "STARTED":
                states_seen.append(result.state)  # the model runs 400 ms: still STARTED
    pubsub.close()
    statuses = [d["status"] for d in documents]
    assert statuses == ["STARTED", "SUCCESS"], (statuses, server.log[-2000:])
    started = documents[0]
    assert started["task_id"] == task_id
    assert set(started["result"]) >= {"pid", "hostname"}, started
    assert started["result"]["pid"] == server.proc.pid
    assert states_seen == ["STARTED"]
    assert result.get(timeout=WAIT_S) == {"OUTPUT0": [[1, 2, 3, 4]]}


def test_track_started_over_rpc(pool, launch, repository):
    """rpc://: modeld publishes a STARTED document to the task's reply queue when the task
    starts, then the SUCCESS one. Celery's rpc client hands each to get(on_message=) as it
    drains the reply queue. (Polling AsyncResult.state does not work with rpc:// in Celery
    5.7: once send_task has started the reply consumer, basic_get finds nothing and the state
    stays PENDING, with a Python Celery worker as with modeld.)"""
    setup = pool.get("amqp-rpc")
    queue = fresh_name("celery-started-rpc")
    server = launch(repository, setup.modeld_args(queue=queue,
                                                  extra=["--celery-track-started=true"]))
    arrived = []

    def on_message(document):
        arrived.append((time.monotonic(), document))

    result = setup.client.send_task("modeld.infer", args=["slow", {"INPUT0": [[1, 2, 3, 4]]}],
                                    queue=queue)
    assert result.get(timeout=WAIT_S, on_message=on_message) == {"OUTPUT0": [[1, 2, 3, 4]]}
    documents = [document for _, document in arrived]
    assert [d["status"] for d in documents] == ["STARTED", "SUCCESS"], (documents,
                                                                       server.log[-2000:])
    started, success = documents
    assert started["task_id"] == success["task_id"] == result.id
    assert started["date_done"] is None and success["date_done"] is not None, documents
    assert set(started["result"]) >= {"pid", "hostname"}, started
    assert started["result"]["pid"] == server.proc.pid
    # Sent when the task started, not with its result: `slow` runs 400 ms in between.
    assert arrived[1][0] - arrived[0][0] >= 0.2, [t for t, _ in arrived]
    assert result.state == "SUCCESS"


# --- canvas ------------------------------------------------------------------------------------


@params(*REDIS_BACKEND_SETUPS)
def test_a_chain_goes_on_in_a_python_worker(setup, modeld, pool):
    pool.python_worker(setup.name)
    client = setup.client
    inputs = {"INPUT0": ADD_A, "INPUT1": ADD_B}
    workflow = chain(
        client.signature("modeld.infer", args=["add_sub", inputs], queue=MODELD_QUEUE),
        client.signature("post.total", kwargs={"output": "OUTPUT1"}, queue=PYTHON_QUEUE))
    result = workflow.apply_async()
    assert result.get(timeout=WAIT_S) == sum(a - b for a, b in zip(ADD_A, ADD_B))
    assert result.parent.get(timeout=WAIT_S)["OUTPUT1"] == [a - b for a, b in zip(ADD_A, ADD_B)]
    # The next step carries the chain's root and modeld's task as its parent.
    meta = json.loads(setup.redis.client(db=1).get(f"celery-task-meta-{result.id}"))
    assert meta["status"] == "SUCCESS"

    # A step without a queue goes to --celery-default-queue (celery); then two modeld steps.
    workflow = chain(
        client.signature("modeld.infer", args=["linear", {"x": [[1, 2, 3]]}],
                         queue=MODELD_QUEUE),
        client.signature("post.describe", args=["default queue"]))
    assert workflow.apply_async().get(timeout=WAIT_S) == {"label": "default queue",
                                                          "keys": ["y"]}


@params(*REDIS_BACKEND_SETUPS)
def test_a_chain_of_modeld_steps_and_a_failing_first_step(setup, modeld, pool):
    client = setup.client
    # modeld.predict's result feeds identity_fp32 via an immutable signature (its own args).
    workflow = chain(
        client.signature("modeld.predict", args=["linear", [[1, 2, 3]]], queue=MODELD_QUEUE),
        client.signature("modeld.infer", args=["identity_fp32", {"INPUT0": [[7.5]]}],
                         queue=MODELD_QUEUE, immutable=True))
    assert workflow.apply_async().get(timeout=WAIT_S) == {"OUTPUT0": [[7.5]]}

    # A failure ends the chain: the first step's exception, the next step never sent.
    pool.python_worker(setup.name)
    workflow = chain(
        client.signature("modeld.infer", args=["no_such_model", {"x": [[1]]}],
                         queue=MODELD_QUEUE),
        client.signature("post.total", queue=PYTHON_QUEUE))
    result = workflow.apply_async()
    with pytest.raises(LookupError, match="no_such_model"):
        result.parent.get(timeout=WAIT_S)
    time.sleep(0.5)
    assert result.state == "PENDING"


@params(*REDIS_BACKEND_SETUPS)
def test_links_and_errbacks_are_published_for_the_python_worker(setup, modeld, pool):
    pool.python_worker(setup.name)
    client = setup.client
    link_id, errback_id = str(uuid.uuid4()), str(uuid.uuid4())
    result = client.send_task(
        "modeld.infer", args=["add_sub", {"INPUT0": ADD_A, "INPUT1": ADD_B}],
        queue=MODELD_QUEUE,
        link=client.signature("post.total", queue=PYTHON_QUEUE, task_id=link_id),
        link_error=client.signature("post.failed", queue=PYTHON_QUEUE, task_id=errback_id))
    assert result.get(timeout=WAIT_S)["OUTPUT0"] == [a + b for a, b in zip(ADD_A, ADD_B)]
    assert client.AsyncResult(link_id).get(timeout=WAIT_S) == sum(
        a + b for a, b in zip(ADD_A, ADD_B))

    link_id, errback_id = str(uuid.uuid4()), str(uuid.uuid4())
    failing = client.send_task(
        "modeld.infer", args=["no_such_model", {"x": [[1]]}], queue=MODELD_QUEUE,
        link=client.signature("post.total", queue=PYTHON_QUEUE, task_id=link_id),
        link_error=client.signature("post.failed", queue=PYTHON_QUEUE, task_id=errback_id))
    with pytest.raises(LookupError):
        failing.get(timeout=WAIT_S)
    assert client.AsyncResult(errback_id).get(timeout=WAIT_S) == f"failed: {failing.id}"
    time.sleep(0.3)
    assert client.AsyncResult(link_id).state == "PENDING"  # the link never ran


@params(*CORE_SETUPS)
def test_a_group_of_modeld_tasks(setup, modeld):
    client = setup.client
    rows = [[i, 0.5 * i, 1] for i in range(8)]
    job = group(client.signature("modeld.infer", args=["linear", {"x": [row]}],
                                 queue=MODELD_QUEUE) for row in rows)
    result = job.apply_async()
    assert result.get(timeout=WAIT_S) == [{"y": [[linear(row, 2)]]} for row in rows]


@params(*REDIS_BACKEND_SETUPS)
def test_a_chord_is_refused_with_not_implemented(setup, modeld):
    client = setup.client
    header = [client.signature("modeld.infer", args=["linear", {"x": [[i, 0, 0]]}],
                               queue=MODELD_QUEUE) for i in range(3)]
    result = chord(header)(client.signature("post.total", kwargs={"output": "y"},
                                            queue=PYTHON_QUEUE))
    for member in result.parent.results:
        with pytest.raises(NotImplementedError, match="chord"):
            member.get(timeout=WAIT_S)
    expect_serving(setup)


@params(*REDIS_BACKEND_SETUPS)
def test_the_result_of_a_refused_chord_raises(setup, modeld):
    """The chord's own AsyncResult (its callback's) must not wait for ever: Celery's worker
    marks the callback failed when a header task fails (ChordError naming the dependency)."""
    from celery.exceptions import ChordError

    client = setup.client
    header = [client.signature("modeld.infer", args=["linear", {"x": [[i, 0, 0]]}],
                               queue=MODELD_QUEUE) for i in range(2)]
    result = chord(header)(client.signature("post.total", kwargs={"output": "y"},
                                            queue=PYTHON_QUEUE))
    with pytest.raises((NotImplementedError, ChordError), match="chord"):
        result.get(timeout=10)


# --- malformed messages ------------------------------------------------------------------------


@params("redis-redis")
def test_garbage_on_the_redis_list_is_dead_lettered(setup, modeld):
    broker = setup.redis_client()
    dead_before = broker.llen(DEAD_LETTERS_LIST)
    counted_before = metric_sum(modeld, DEAD_LETTERS_METRIC)
    body = json.dumps([["echo", {"INPUT0": [[1, 2, 3, 4]]}], {}, None]).encode()
    headers_without_id = task_headers()
    del headers_without_id["id"]
    garbage = [
        b"\x00\xff not JSON at all",
        json.dumps({"body": base64.b64encode(body).decode()}).encode(),  # no headers
        kombu_redis_wrapper(body, headers_without_id).encode(),  # a wrapper without id
        b'["a", "list"]',
    ]
    for item in garbage:
        broker.lpush(MODELD_QUEUE, item)
    expect_serving(setup)
    wait_until(lambda: broker.llen(DEAD_LETTERS_LIST) == dead_before + len(garbage), WAIT_S,
               f"{len(garbage)} items in {DEAD_LETTERS_LIST}")
    dead = broker.lrange(DEAD_LETTERS_LIST, 0, -1)
    # Items that are not JSON objects are kept byte for byte; a JSON object is kept with every
    # field, plus the reason modeld gives.
    reasons = {}
    for item in garbage:
        if item in dead:
            continue
        original = json.loads(item)
        annotated = [json.loads(d) for d in dead if d.startswith(b"{")]
        matches = [d for d in annotated
                   if {k: v for k, v in d.items() if k != "modeld-dead-letter-reason"} == original]
        assert len(matches) == 1, (item, dead)
        reasons[item] = matches[0].get("modeld-dead-letter-reason", "")
    assert "headers" in reasons[garbage[1]], reasons
    assert "id" in reasons[garbage[2]], reasons
    assert metric_sum(modeld, DEAD_LETTERS_METRIC) - counted_before == len(garbage)
    assert broker.llen(MODELD_QUEUE) == 0

    # A hand-made task message in kombu's layout runs like a client's (rpc-less: the Redis
    # backend); an unknown task name is answered NotRegistered and dead-lettered too.
    task_id = str(uuid.uuid4())
    broker.lpush(MODELD_QUEUE, kombu_redis_wrapper(body, task_headers(task_id=task_id)))
    assert setup.client.AsyncResult(task_id).get(timeout=WAIT_S) == {"OUTPUT0": [[1, 2, 3, 4]]}
    unknown = setup.client.send_task("modeld.nope", args=[], queue=MODELD_QUEUE)
    with pytest.raises(NotRegistered):
        unknown.get(timeout=WAIT_S)
    wait_until(lambda: broker.llen(DEAD_LETTERS_LIST) == dead_before + len(garbage) + 1, WAIT_S,
               "the unknown task dead-lettered")
    expect_serving(setup)


@params("amqp-redis")
def test_a_message_without_celery_headers_on_rabbitmq(setup, modeld):
    counted_before = metric_sum(modeld, DEAD_LETTERS_METRIC)
    body = json.dumps([["echo", {"INPUT0": [[1, 2, 3, 4]]}], {}, None]).encode()
    with setup.pika() as connection:
        channel = connection.channel()
        channel.basic_publish(exchange="", routing_key=MODELD_QUEUE, body=body,
                              properties=pika.BasicProperties(content_type="application/json",
                                                              delivery_mode=2))
        channel.basic_publish(exchange="", routing_key=MODELD_QUEUE, body=b"\xff garbage",
                              properties=pika.BasicProperties(
                                  content_type="application/octet-stream",
                                  headers={"task": "modeld.infer"}))
    expect_serving(setup)
    wait_until(lambda: metric_sum(modeld, DEAD_LETTERS_METRIC) - counted_before == 2, WAIT_S,
               "both messages counted")
    assert setup.queue_depth(MODELD_QUEUE) == 0
    expect_serving(setup)


# --- delivery guarantees -----------------------------------------------------------------------


def _held(setup, queue):
    """Whether the queue's only message has been taken (held by modeld, not acknowledged)."""
    if setup.broker == "redis":
        return setup.queue_depth(queue) == 0 and setup.redis_client().hlen("unacked") >= 1
    return setup.queue_depth(queue) == 0


@pytest.mark.parametrize("name", ["amqp-redis", "redis-redis"])
def test_a_killed_modeld_loses_no_held_task(pool, launch, repository, name):
    """kill -9 while modeld holds a countdown task (taken, not acknowledged): a new modeld runs
    it. RabbitMQ redelivers at once; on Redis the message waits in kombu's `unacked` hash until
    a consumer restores it (kombu: after the visibility timeout)."""
    setup = pool.get(name)
    queue = fresh_name("celery-kill")
    first = launch(repository, setup.modeld_args(queue=queue))
    wait_serving(setup.client, queue=queue)
    sent = time.monotonic()
    result = setup.client.send_task("modeld.infer", args=["linear", {"x": [[1, 2, 3]]}],
                                    queue=queue, countdown=3)
    wait_until(lambda: _held(setup, queue), 10, "the countdown task taken by modeld")
    first.proc.kill()
    first.wait()
    if setup.broker == "redis":
        broker = setup.redis_client()
        tags = [tag for tag, value in broker.hgetall("unacked").items()
                if result.id.encode() in value]
        assert len(tags) == 1, "the held task is not in kombu's unacked hash"
        assert broker.zscore("unacked_index", tags[0]) is not None
        # kombu (and modeld) restore it after the visibility timeout, one hour: age the entry
        # as if that hour had passed.
        broker.zadd("unacked_index", {tags[0]: time.time() - 7200})
    second = launch(repository, setup.modeld_args(queue=queue))
    assert result.get(timeout=WAIT_S) == {"y": [[linear([1, 2, 3], 2)]]}, second.log[-3000:]
    assert time.monotonic() - sent >= 2.9


@pytest.mark.parametrize("name", ["amqp-redis", "redis-redis"])
def test_sigterm_with_tasks_in_flight_loses_none(pool, launch, repository, name):
    setup = pool.get(name)
    queue = fresh_name("celery-term")
    first = launch(repository, setup.modeld_args(queue=queue))
    wait_serving(setup.client, queue=queue)
    results = [setup.client.send_task("modeld.infer", args=["slow", {"INPUT0": [[i, 0, 0, 0]]}],
                                      queue=queue) for i in range(8)]
    held = setup.client.send_task("modeld.infer", args=["linear", {"x": [[1, 2, 3]]}],
                                  queue=queue, countdown=2)
    results[0].get(timeout=WAIT_S)
    first.stop(signal.SIGTERM)
    stopped = time.monotonic()
    done_by_first = sum(1 for r in results if r.ready())
    launch(repository, setup.modeld_args(queue=queue))
    for i, result in enumerate(results):
        assert result.get(timeout=WAIT_S) == {"OUTPUT0": [[i, 0, 0, 0]]}
    assert held.get(timeout=WAIT_S) == {"y": [[linear([1, 2, 3], 2)]]}
    print(f"{name}: {done_by_first} of 8 answered before the stop; the rest after "
          f"{time.monotonic() - stopped:.1f}s")


# --- modeld.train -------------------------------------------------------------------------------


@pytest.fixture
def train_repository(tmp_path, torch_modules):  # noqa: F811
    """regression (y = 0.5 x, trained by sgd at 0.1 towards train_helpers' y = 3x + 2), the
    same module with training off (frozen), and the fake backend's echo (no training)."""
    write_trainable(tmp_path, "regression", torch_modules / "regression.pt")
    write_trainable(tmp_path, "frozen", torch_modules / "regression.pt", training=False)
    (tmp_path / "echo" / "1").mkdir(parents=True)
    (tmp_path / "echo" / "config.pbtxt").write_text(FAKE_MODELS["echo"])
    return tmp_path


@pytest.mark.parametrize("name", ["redis-redis", "amqp-rpc"])
def test_train_steps_through_celery(pool, launch, train_repository, name):
    """modeld.train(model, inputs, targets): one step per task, numbered in order, the loss
    falling on y = 3x + 2; the next inference serves the trained weights."""
    setup = pool.get(name)
    queue = fresh_name("celery-train")
    server = launch(train_repository, setup.modeld_args(queue=queue))
    client = setup.client
    rng = np.random.default_rng(11)

    def train(x, y, model="regression"):
        return client.send_task("modeld.train", args=[model, {"x": x.tolist()},
                                                      {"y": y.tolist()}], queue=queue)

    losses = []
    for number in range(1, 21):
        answer = train(*samples(rng)).get(timeout=WAIT_S)
        assert set(answer) == {"loss", "step", "checkpoint_step"}, answer
        assert type(answer["loss"]) is float, answer
        assert type(answer["step"]) is int and type(answer["checkpoint_step"]) is int, answer
        assert answer["step"] == number, answer
        assert answer["checkpoint_step"] == 0, answer  # no checkpoint directory
        losses.append(answer["loss"])
    # From about 6 (W = 0.5, b = 0) to well under a tenth of it in 20 steps at 0.1.
    assert losses[0] > 3 and losses[-1] < losses[0] / 10, losses

    # Five at once, by keyword: five steps, each numbered once.
    x, y = samples(rng)
    concurrent = [client.send_task("modeld.train", kwargs={
        "model": "regression", "inputs": {"x": x.tolist()}, "targets": {"y": y.tolist()},
        "version": 1}, queue=queue) for _ in range(5)]
    steps = sorted(r.get(timeout=WAIT_S)["step"] for r in concurrent)
    assert steps == [21, 22, 23, 24, 25]

    # Inference serves the trained weights: nearer 3x + 2 than the initial 0.5x.
    probe = [[0.0], [1.0]]
    trained = client.send_task("modeld.predict", args=["regression", probe],
                               queue=queue).get(timeout=WAIT_S)
    assert abs(trained[0][0] - 2) < 1 and abs(trained[1][0] - 5) < 2, trained
    assert metric_sum(server, TASKS_METRIC, task="modeld.train", state="SUCCESS") == 25


@pytest.mark.parametrize("name", ["redis-redis", "amqp-rpc"])
def test_train_refusals_through_celery(pool, launch, train_repository, name):
    """A model that cannot train, and wrong targets: FAILUREs whose exception follows
    docs/celery.md's table and whose message names the problem; none is a step."""
    setup = pool.get(name)
    queue = fresh_name("celery-train-bad")
    server = launch(train_repository, setup.modeld_args(queue=queue))
    client = setup.client
    x, y = samples(np.random.default_rng(12))

    def train(model, inputs, targets):
        return client.send_task("modeld.train", args=[model, inputs, targets],
                                queue=queue).get(timeout=WAIT_S)

    xs = {"x": x.tolist()}
    # Training off, and a fake-backend model: FAILED_PRECONDITION, which the table maps to
    # RuntimeError, the message starting with the code.
    for model, inputs, targets in [("frozen", xs, {"y": y.tolist()}),
                                   ("echo", {"INPUT0": [[1, 2, 3, 4]]},
                                    {"OUTPUT0": [[1, 2, 3, 4]]})]:
        with pytest.raises(RuntimeError) as caught:
            train(model, inputs, targets)
        assert type(caught.value) is RuntimeError
        message = str(caught.value)
        assert message.startswith(f"FAILED_PRECONDITION: model '{model}' is not trainable"), \
            message

    with pytest.raises(LookupError, match="nope"):
        train("nope", xs, {"y": y.tolist()})

    # A target the model has no output for.
    with pytest.raises(ValueError) as caught:
        train("regression", xs, {"z": y.tolist()})
    assert type(caught.value) is ValueError
    assert "unknown target 'z'" in str(caught.value), caught.value

    # A target whose batch size is not the inputs'.
    with pytest.raises(ValueError) as caught:
        train("regression", xs, {"y": y[:3].tolist()})
    assert "target 'y'" in str(caught.value) and "batch size 16" in str(caught.value), \
        caught.value

    # A target whose rows are not the output's shape ([16, 2] for dims [1]).
    with pytest.raises(ValueError) as caught:
        train("regression", xs, {"y": np.hstack([y, y]).tolist()})
    assert "target 'y' has shape [16, 2]" in str(caught.value), caught.value

    # A ragged target, and no target at all.
    with pytest.raises(ValueError) as caught:
        train("regression", xs, {"y": [[1.0], [2.0, 3.0]] + y[2:].tolist()})
    assert "target 'y'" in str(caught.value), caught.value
    with pytest.raises(ValueError, match="target"):
        train("regression", xs, {})

    # None of them was a step: the next one is step 1.
    assert train("regression", xs, {"y": y.tolist()})["step"] == 1
    assert metric_sum(server, TASKS_METRIC, task="modeld.train", state="FAILURE") == 8


def test_an_integral_train_loss_is_still_a_float(pool, launch, train_repository):
    """W = 0.5, b = 0: x = 2 answers 1, and the target 3 makes the mean squared error exactly
    4. docs/celery.md: the result is {"loss": float, ...}."""
    setup = pool.get("redis-redis")
    queue = fresh_name("celery-train-loss")
    launch(train_repository, setup.modeld_args(queue=queue))
    answer = setup.client.send_task("modeld.train", args=["regression", {"x": [[2.0]]},
                                                          {"y": [[3.0]]}],
                                    queue=queue).get(timeout=WAIT_S)
    assert answer["step"] == 1 and answer["loss"] == 4, answer
    assert type(answer["loss"]) is float, answer


# --- priority (Redis) ------------------------------------------------------------------------------


def test_redis_priority_steps_are_taken_in_order(pool, launch, repository):
    """kombu's Redis transport files a task of priority p under the list of its priority step
    (0, 3, 6, 9; step 0 is the queue itself, the others `<queue>\\x06\\x16<step>`) and its
    worker takes step 0 first (BRPOP lists the keys in that order): on Redis a lower number is
    a higher priority. Queued before modeld starts, the tasks run on `serial` (one at a time)
    in step order, first in first out within a step."""
    setup = pool.get("redis-redis")
    queue = fresh_name("celery-priority")
    client = setup.client
    broker = setup.redis_client()
    priorities = [9, 5, None, 9, 3, 0, 6, 1]
    results = []
    for index, priority in enumerate(priorities):
        options = {} if priority is None else {"priority": priority}
        results.append(client.send_task("modeld.infer", args=[
            "serial", {"INPUT0": [[index, 0, 0, 0]]}], queue=queue, **options))
    step = {None: 0, 0: 0, 1: 0, 3: 3, 5: 3, 6: 6, 9: 9}
    lengths = {key: broker.llen(key) for key in
               [queue] + [f"{queue}\x06\x16{s}" for s in (3, 6, 9)]}
    assert list(lengths.values()) == [3, 2, 1, 2], lengths  # the client's layout, as assumed

    launch(repository, setup.modeld_args(queue=queue))
    for index, result in enumerate(results):
        assert result.get(timeout=WAIT_S) == {"OUTPUT0": [[index, 0, 0, 0]]}
    done = sorted(range(len(results)), key=lambda i: results[i].date_done)
    # Step 0 (None, 0, 1), step 3 (5, 3), step 6, step 9 (9, 9): each in the order sent.
    assert [step[priorities[i]] for i in done] == [0, 0, 0, 3, 3, 6, 9, 9], \
        [priorities[i] for i in done]
    assert done == [2, 5, 7, 1, 4, 6, 0, 3], [priorities[i] for i in done]
    assert all(broker.llen(key) == 0 for key in lengths)


# --- metrics documentation ---------------------------------------------------------------------


@params("redis-redis")
def test_the_celery_metrics_are_documented(setup, modeld):
    expect_serving(setup)
    names = metric_names(modeld, "modeld_celery_")
    assert TASKS_METRIC in names, names
    # docs/metrics.md sends the reader to docs/celery.md's table of the modeld_celery_* series.
    assert "docs/celery.md" in (REPO_ROOT / "docs" / "metrics.md").read_text()
    documented = (REPO_ROOT / "docs" / "celery.md").read_text()
    for name in names:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"| `{family}` |" in documented, f"{family} is not in docs/celery.md's table"
    assert tasks_by_status(modeld, "SUCCESS") >= 1
    assert any(labels.get("state") == "SUCCESS" and labels.get("task") == "modeld.infer"
               for name, labels, _ in metrics(modeld) if name == TASKS_METRIC)
