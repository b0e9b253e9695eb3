"""Helpers for the Celery transport's end-to-end tests (test_celery.py, docs/design/celery.md).

modeld consumes a Celery queue itself; the tests drive it with real Celery 5 clients
(`app.send_task(...)`, `AsyncResult.get()`), and a real Python Celery worker consumes the other
queues a chain's next step goes to. This module is also that worker's app: started as

    python -m celery -A celery_helpers worker --pool=solo -Q python,celery

with MODELD_CELERY_TEST_BROKER / MODELD_CELERY_TEST_BACKEND in its environment, it defines
`app` and the post-processing tasks (`post.*`) the chains end in.

Set-ups (`SETUPS`): the four broker / result-backend combinations. Each gets a modeld of its
own (module-scoped in the tests), on a redis-server of its own or a vhost of its own on the
session's RabbitMQ node, so queue names may stay the defaults (`modeld`, `celery`).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

HERE = Path(__file__).resolve().parent
WAIT_S = 30.0
MODELD_QUEUE = "modeld"
PYTHON_QUEUE = "python"
DEFAULT_QUEUE = "celery"
RESULT_EXPIRES_S = 3600  # --celery-result-expires of the shared modelds (not the default)

# --- the Python worker's app (only when started as that worker) ------------------------------

BROKER_ENV = "MODELD_CELERY_TEST_BROKER"
BACKEND_ENV = "MODELD_CELERY_TEST_BACKEND"


def _json_app(name, broker, backend, **extra):
    app = Celery(name, broker=broker, backend=backend or None, set_as_current=False)
    settings = dict(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        task_default_queue=DEFAULT_QUEUE,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        result_backend_always_retry=False,
    )
    settings.update(extra)
    app.conf.update(settings)
    return app


if os.environ.get(BROKER_ENV):
    app = _json_app("python-worker", os.environ[BROKER_ENV], os.environ.get(BACKEND_ENV))

    @app.task(name="post.total")
    def total(result, output="OUTPUT0"):
        """The sum of one output of a modeld.infer result (every value of its nested lists)."""
        return sum(_flatten(result[output]))

    @app.task(name="post.describe")
    def describe(result, label):
        """A dict naming the label and the keys of modeld's result."""
        return {"label": label, "keys": sorted(result)}

    @app.task(name="post.failed")
    def failed(task_id):
        """An errback in Celery's task style: called with the failed task's id."""
        return f"failed: {task_id}"


def _flatten(value):
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


# --- model repository ----------------------------------------------------------------------

EXAMPLES = ("add_sub", "linear", "int64_bool", "identity_fp32")

# Fake models (modeld's built-in fake backend): identity unless said otherwise.
FAKE_MODELS = {
    # Batches dynamically; 10 ms per batch, so concurrent tasks meet in batches.
    "echo": """\
name: "echo"
backend: "fake"
max_batch_size: 64
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { }
parameters { key: "sleep_ms" value { string_value: "10" } }
""",
    # One request at a time, 400 ms each: a queue that a timelimit cannot be met in.
    "slow": """\
name: "slow"
backend: "fake"
max_batch_size: 1
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { count: 1, kind: KIND_CPU } ]
parameters { key: "sleep_ms" value { string_value: "400" } }
""",
    # One request at a time, 30 ms each, no batching: tasks run (and finish) one after another,
    # in the order modeld took them (the priority test reads that order from date_done).
    "serial": """\
name: "serial"
backend: "fake"
max_batch_size: 1
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { count: 1, kind: KIND_CPU } ]
parameters { key: "sleep_ms" value { string_value: "30" } }
""",
    # BYTES in, the same BYTES out.
    "text": """\
name: "text"
backend: "fake"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_STRING dims: [ -1 ] } ]
""",
    # Only the ignore_result test sends to it, so its request count says what ran.
    "counted": """\
name: "counted"
backend: "fake"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
""",
    # Only the expiry tests send to it: it must never run.
    "never": """\
name: "never"
backend: "fake"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
""",
}


def write_repository(path, example_repository):
    """A repository under `path`: copies of EXAMPLES from `example_repository`, and the
    FAKE_MODELS. Returns it."""
    path = Path(path)
    for name in EXAMPLES:
        shutil.copytree(Path(example_repository) / name, path / name)
    for name, config in FAKE_MODELS.items():
        (path / name / "1").mkdir(parents=True, exist_ok=True)
        (path / name / "config.pbtxt").write_text(config)
    return path


# --- set-ups -----------------------------------------------------------------------------

SETUPS = ("redis-redis", "amqp-redis", "amqp-rpc", "redis-rpc")
CORE_SETUPS = ("redis-redis", "amqp-redis", "amqp-rpc")
REDIS_BACKEND_SETUPS = ("redis-redis", "amqp-redis")


@dataclass
class Setup:
    """One broker / backend combination: the URLs modeld and the clients use."""

    name: str
    broker_url: str
    backend_url: str  # "" for none
    redis: object = None  # RedisServer: the broker (redis-*) and/or the backend (*-redis)
    rabbitmq: object = None  # RabbitMQServer (amqp-*)
    vhost: str = "/"
    server: object = None  # the ServerProcess of the shared modeld
    apps: list = field(default_factory=list)

    @property
    def broker(self):
        return self.name.split("-")[0]

    @property
    def backend(self):
        return self.name.split("-")[1]

    def modeld_args(self, queue=MODELD_QUEUE, extra=()):
        args = [f"--celery-broker={self.broker_url}", f"--celery-queue={queue}"]
        if self.backend_url:
            args.append(f"--celery-result-backend={self.backend_url}")
        return args + list(extra)

    def app(self, **extra):
        """A Celery client app on this set-up's broker and backend (closed at teardown)."""
        client = _json_app(f"client-{uuid.uuid4().hex[:6]}", self.broker_url, self.backend_url,
                           **extra)
        self.apps.append(client)
        return client

    def redis_client(self):
        assert self.redis is not None
        return self.redis.client()

    def pika(self):
        assert self.rabbitmq is not None
        return self.rabbitmq.connection(vhost=self.vhost)

    def queue_depth(self, queue):
        """Messages ready (not delivered) in `queue`: the list's length on Redis, the queue's
        message count on RabbitMQ (0 when it does not exist)."""
        if self.broker == "redis":
            return self.redis_client().llen(queue)
        import pika.exceptions
        try:
            with self.pika() as connection:
                return connection.channel().queue_declare(
                    queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0

    def close(self):
        for client in self.apps:
            try:
                client.close()
            except Exception:  # noqa: BLE001  (teardown)
                pass
        self.apps.clear()


def make_setup(name, rabbitmq=None, redis_factory=None):
    """The Setup `name`; a redis-server from `redis_factory()` when it needs Redis, a fresh
    vhost on `rabbitmq` when it needs RabbitMQ."""
    broker, backend = name.split("-")
    setup = Setup(name=name, broker_url="", backend_url="")
    if broker == "redis" or backend == "redis":
        setup.redis = redis_factory()
    if broker == "amqp":
        setup.rabbitmq = rabbitmq
        setup.vhost = rabbitmq.fresh_vhost("celery")
        setup.broker_url = rabbitmq.url(vhost=setup.vhost)
    else:
        setup.broker_url = f"{setup.redis.url}/0"
    setup.backend_url = f"{setup.redis.url}/1" if backend == "redis" else "rpc://"
    return setup


# --- modeld --------------------------------------------------------------------------------

def infer_echo(app, values, queue=MODELD_QUEUE, **options):
    return app.send_task("modeld.infer", args=["echo", {"INPUT0": [values]}], queue=queue,
                         **options)


def wait_serving(app, queue=MODELD_QUEUE, timeout=WAIT_S):
    """Waits until modeld answers a task on `queue` (its Celery consumer is up)."""
    result = infer_echo(app, [1, 2, 3, 4], queue=queue)
    assert result.get(timeout=timeout) == {"OUTPUT0": [[1, 2, 3, 4]]}


# --- metrics -------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(server):
    """Every sample of modeld's /metrics: [(name, {label: value}, value)]."""
    text = urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=10).read()
    samples = []
    for line in text.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def metric_sum(server, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    return sum(value for sample, sample_labels, value in metrics(server)
               if sample == name and all(sample_labels.get(k) == v for k, v in labels.items()))


def metric_names(server, prefix):
    return sorted({name for name, _, _ in metrics(server) if name.startswith(prefix)})


def model_requests(server, model):
    """modeld_requests_total of `model`, every outcome."""
    return metric_sum(server, "modeld_requests_total", model=model)


def ready(server):
    try:
        with urllib.request.urlopen(f"http://{server.http_address}/v2/health/ready", timeout=10):
            return True
    except (urllib.error.HTTPError, urllib.error.URLError):
        return False


# --- the Python worker -------------------------------------------------------------------

class PythonWorker:
    """`python -m celery -A celery_helpers worker --pool=solo -Q <queues>` on a set-up's broker
    and backend; its output is kept (log())."""

    def __init__(self, setup, queues=(PYTHON_QUEUE, DEFAULT_QUEUE)):
        env = dict(os.environ)
        env[BROKER_ENV] = setup.broker_url
        env[BACKEND_ENV] = setup.backend_url
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_helpers", "worker", "--pool=solo",
             "-Q", ",".join(queues), "-n", f"python-{uuid.uuid4().hex[:8]}@localhost",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel=INFO"],
            cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(r"ready\.")

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()

    def log(self):
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not re.search(pattern, "".join(self.lines)):
                if self.proc.poll() is not None:
                    raise AssertionError(f"the Python worker exited: {''.join(self.lines)}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the Python worker did not log {pattern!r}: "
                                         f"{''.join(self.lines)}")
                self._cond.wait(min(remaining, 0.5))

    def stop(self):
        if self.proc.poll() is None:
            # Celery's warm shutdown over AMQP can take ~10 s (closing its connections);
            # nothing of it matters to the tests: kill the group after 3 s.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(5)


# --- raw broker messages -----------------------------------------------------------------

def kombu_redis_wrapper(body, headers, content_type="application/json", queue=MODELD_QUEUE,
                        properties=None):
    """One item of kombu's Redis list layout (docs/design/celery.md, section 3)."""
    import base64
    props = {"correlation_id": headers.get("id", uuid.uuid4().hex), "delivery_mode": 2,
             "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
             "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}
    props.update(properties or {})
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": headers,
        "properties": props,
    })


def task_headers(task="modeld.infer", task_id=None, **extra):
    task_id = task_id or str(uuid.uuid4())
    headers = {"lang": "py", "task": task, "id": task_id, "root_id": task_id,
               "parent_id": None, "group": None, "eta": None, "expires": None,
               "retries": 0, "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "",
               "origin": "test"}
    headers.update(extra)
    return headers
