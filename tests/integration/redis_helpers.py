"""Helpers for the Redis transport's end-to-end tests: redis-server, envelopes, replies.

Each test gets its own redis-server on a free loopback port, without persistence (the
`redis_server` fixture; import it into the test module). Envelopes are the messages of
proto/modeld/redis.proto, generated into build/python/modeld/redis_pb2.py (`make build`); the
module is loaded from that file under a private name, so it never collides with the modeld
Python package. Every wait is on a condition with a bounded timeout.
"""

import importlib.util
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from modeld_server import STUBS_DIR
from redis_server import WAIT_S, RedisServer, wait_until  # noqa: F401  (re-exported)

# Importing the KServe messages first registers kserve/grpc_service.proto, which redis.proto
# imports; infer_helpers puts them in the same descriptor pool.
from infer_helpers import pb  # noqa: F401
# redis.proto imports modeld/training.proto, registered as modeld.training_pb2 there.
from train_helpers import tpb  # noqa: F401

REDIS_PB2 = STUBS_DIR / "modeld" / "redis_pb2.py"
STREAM = "modeld:requests"

# google.rpc.Code numbers in ReplyEnvelope.code.
OK, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ABORTED = 0, 3, 4, 5, 10


def _load_redis_pb2():
    if not REDIS_PB2.is_file():
        pytest.fail(f"{REDIS_PB2} is missing; run `make build` (it generates the Python stubs)")
    spec = importlib.util.spec_from_file_location("modeld_redis_envelope_pb2", REDIS_PB2)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rpb = _load_redis_pb2()

# Fake models (modeld's built-in fake backend) load at once; "slow_echo" takes 10 ms per batch
# of up to 16, so a thousand requests keep modeld busy for a good half second.
FAKE_MODELS = {
    "echo": """\
name: "echo"
backend: "fake"
max_batch_size: 64
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { }
""",
    "slow_echo": """\
name: "slow_echo"
backend: "fake"
max_batch_size: 16
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { }
parameters { key: "sleep_ms" value { string_value: "10" } }
""",
}


def write_fake_repository(path):
    """A model repository with the FAKE_MODELS under `path`; returns it."""
    path = Path(path)
    for name, config in FAKE_MODELS.items():
        (path / name / "1").mkdir(parents=True, exist_ok=True)
        (path / name / "config.pbtxt").write_text(config)
    return path


@pytest.fixture
def redis_server():
    server = RedisServer()
    yield server
    server.close()


def start_modeld(launch, repository, redis_server, *extra_args):
    """modeld on `repository` consuming `redis_server`; returns once its worker has connected.

    Both of the worker's connections: the reader logs "consuming" when its own is up, and the
    writer's may come a moment later (under the sanitizers, noticeably), while the server is
    not ready yet and a ServerReady query answers false."""
    server = launch(repository, [f"--redis-url={redis_server.url}", *extra_args])
    server.wait_for_log(r"redis: consuming")
    wait_until(lambda: ready(server), what="modeld ready with both Redis connections up")
    return server


# --- envelopes ---------------------------------------------------------------------------

def infer_request(model, values, name="INPUT0"):
    """A ModelInferRequest with one FP32 input of shape [1, len(values)], sent raw."""
    array = np.asarray(values, np.float32).reshape(1, -1)
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype="FP32", shape=list(array.shape))
    request.raw_input_contents.append(array.tobytes())
    return request


def envelope(request=None, request_id=None, reply_key=None, deadline_s=WAIT_S):
    """A RequestEnvelope (request_id and reply_key made up when not given; deadline_s seconds
    from now, None for none)."""
    request_id = request_id if request_id is not None else uuid.uuid4().hex
    message = rpb.RequestEnvelope(
        request_id=request_id,
        reply_key=reply_key if reply_key is not None else f"modeld:reply:{request_id}",
        deadline_unix_ms=int((time.time() + deadline_s) * 1000) if deadline_s is not None else 0)
    if request is not None:
        message.infer.CopyFrom(request)
    return message


def xadd(client, *envelopes, stream=STREAM):
    """XADDs each envelope (field `envelope`) in one pipeline; returns the entry ids."""
    pipe = client.pipeline(transaction=False)
    for message in envelopes:
        pipe.xadd(stream, {"envelope": message.SerializeToString()})
    return pipe.execute()


def lpush(client, key, *envelopes):
    pipe = client.pipeline(transaction=False)
    for message in envelopes:
        pipe.lpush(key, message.SerializeToString())
    pipe.execute()


def wait_reply(client, reply_key, timeout=WAIT_S):
    """BLPOPs the reply on `reply_key`; returns the ReplyEnvelope (fails on timeout)."""
    popped = client.blpop([reply_key], timeout=timeout)
    assert popped is not None, f"no reply on {reply_key} within {timeout:.0f}s"
    reply = rpb.ReplyEnvelope()
    reply.ParseFromString(popped[1])
    return reply


def output(reply):
    """The first output of a successful reply as a float32 array."""
    assert reply.code == OK, f"code {reply.code}: {reply.message}"
    shape = tuple(reply.infer.outputs[0].shape)
    return np.frombuffer(reply.infer.raw_output_contents[0], np.float32).reshape(shape)


def check_echo(reply, request_id, values):
    """The reply is the answer to `request_id`, which asked an echo model for `values`."""
    assert reply.request_id == request_id
    np.testing.assert_array_equal(output(reply), np.asarray(values, np.float32).reshape(1, -1))


# --- metrics and health ------------------------------------------------------------------

def metric(server, series):
    """The value of one series (`name` or `name{labels}`) from modeld's /metrics, or None."""
    text = urllib.request.urlopen(f"http://{server.http_address}/metrics", timeout=10).read()
    for line in text.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def ready(server):
    """Whether /v2/health/ready answers 200."""
    try:
        with urllib.request.urlopen(f"http://{server.http_address}/v2/health/ready", timeout=10):
            return True
    except urllib.error.HTTPError:
        return False


def collect_replies(client, expected, timeout=WAIT_S):
    """BLPOPs every reply of `expected` ({request_id: values}) from several threads; returns
    {request_id: ReplyEnvelope}. Each key must hold exactly one reply."""
    replies = {}
    lock = threading.Lock()
    ids = list(expected)
    errors = []

    def worker(chunk):
        connection = redis.Redis(connection_pool=client.connection_pool)
        try:
            for request_id in chunk:
                reply = wait_reply(connection, f"modeld:reply:{request_id}", timeout)
                with lock:
                    replies[request_id] = reply
        except BaseException as error:  # reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(ids[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    # Answered once: nothing left behind on any reply key.
    pipe = client.pipeline(transaction=False)
    for request_id in ids:
        pipe.llen(f"modeld:reply:{request_id}")
    assert sum(pipe.execute()) == 0, "some reply keys hold a second reply"
    return replies
