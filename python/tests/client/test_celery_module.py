"""modeld.celery without a server: the signatures it builds and the messages Celery makes of
them, read back from kombu's in-memory broker (memory://) as modeld would receive them.

The end-to-end tests (a real modeld consuming a real broker) are tests/integration's and the
demo site's (examples/django_demo/predictor/tests/test_batch_live.py).
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
from celery import Celery, Signature, chain, group

import modeld.celery as mc


def python(code):
    """Runs ``code`` in a fresh interpreter; its last line of output, as JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def app():
    """A Celery app on kombu's in-memory broker (no result backend: nothing is waited for)."""
    app = Celery(f"test-{uuid.uuid4().hex[:8]}", broker="memory://", set_as_current=False)
    app.conf.task_routes = mc.TASK_ROUTES
    app.conf.task_always_eager = False

    @app.task(name=f"{app.main}.postprocess")
    def postprocess(result, scale):  # never run here: only sent as a chain step
        return result

    app.postprocess = postprocess
    with app.connection_for_write() as connection:  # the memory transport's queues are global
        channel = connection.default_channel
        for queue in ("modeld", "models", "celery"):
            channel.queue_declare(queue)
            channel.queue_purge(queue)
    yield app
    app.close()


def sent(app, queue="modeld"):
    """The messages waiting in ``queue`` as (headers, properties, [args, kwargs, embed])."""
    messages = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            assert message.content_type == "application/json"
            assert message.content_encoding == "utf-8"
            messages.append((message.headers, message.properties, json.loads(message.body)))
    return messages


# --- the signatures ------------------------------------------------------------------------


def test_infer_signature():
    signature = mc.infer("add_sub", {"INPUT0": [[1, 2]], "INPUT1": [[3, 4]]})
    assert isinstance(signature, Signature)
    assert signature.task == "modeld.infer"
    assert signature.args == ("add_sub", {"INPUT0": [[1, 2]], "INPUT1": [[3, 4]]})
    assert signature.kwargs == {}  # version and outputs only when given
    assert signature.options == {"queue": "modeld"}
    assert signature.immutable is False


def test_infer_signature_with_version_outputs_and_queue():
    signature = mc.infer("add_sub", {"INPUT0": [[1]]}, version=2, outputs=("OUTPUT1",),
                         queue="models")
    assert signature.args == ("add_sub", {"INPUT0": [[1]]})
    assert signature.kwargs == {"version": 2, "outputs": ["OUTPUT1"]}
    assert signature.options == {"queue": "models"}
    assert mc.infer("m", {"x": [[1]]}, version="12").kwargs == {"version": "12"}


def test_predict_signature():
    signature = mc.predict("linear", [[1, 2, 3]])
    assert (signature.task, signature.args, signature.kwargs, signature.options) == (
        "modeld.predict", ("linear", [[1, 2, 3]]), {}, {"queue": "modeld"})
    assert mc.predict("linear", [[1, 2, 3]], version=1).kwargs == {"version": 1}


def test_train_signature():
    signature = mc.train("scorer", {"x": np.ones((2, 3), np.float32)},
                         {"y": np.zeros((2, 1), np.float32)}, version=1)
    assert signature.task == "modeld.train"
    assert signature.args == ("scorer", {"x": [[1.0] * 3] * 2}, {"y": [[0.0], [0.0]]})
    assert signature.kwargs == {"version": 1}
    assert signature.options == {"queue": "modeld"}


def test_numpy_arrays_become_nested_lists():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 3
    flags = np.array([[True], [False]])
    ids = np.array([[2**40], [-7]], dtype=np.int64)
    signature = mc.infer("m", {"x": x, "flags": flags, "ids": ids})
    inputs = signature.args[1]
    assert inputs["x"] == x.tolist() and type(inputs["x"][0][1]) is float
    np.testing.assert_array_equal(np.asarray(inputs["x"], dtype=np.float32), x)  # exact
    assert inputs["flags"] == [[True], [False]]
    assert inputs["ids"] == [[2**40], [-7]] and type(inputs["ids"][0][0]) is int
    # numpy scalars inside lists, tuples and FP16 arrays too
    data = mc.predict("m", [(np.float32(0.5), np.int32(3))]).args[1]
    assert data == [[0.5, 3]] and type(data[0][1]) is int
    assert mc.predict("m", np.array([[1.5]], np.float16)).args[1] == [[1.5]]


def test_bytes_become_b64():
    raw = bytes(range(256))
    inputs = mc.infer("strings", {"text": [[b"hello", raw]], "s": [["plain"]]}).args[1]
    assert inputs["text"] == [[{"b64": base64.b64encode(b"hello").decode()},
                               {"b64": base64.b64encode(raw).decode()}]]
    assert base64.b64decode(inputs["text"][0][1]["b64"]) == raw
    assert inputs["s"] == [["plain"]]  # text stays text
    # a numpy BYTES array ('S' or object) the same way
    inputs = mc.infer("strings", {"t": np.array([[b"\xff\x00"]], dtype=object)}).args[1]
    assert inputs["t"] == [[{"b64": "/wA="}]]
    assert mc.predict("m", np.array([b"ab"], dtype="S2")).args[1] == [{"b64": "YWI="}]


@pytest.mark.parametrize("call, error, message", [
    (lambda: mc.infer("", {"x": [[1]]}), ValueError, "non-empty"),
    (lambda: mc.infer(3, {"x": [[1]]}), TypeError, "model must be a str"),
    (lambda: mc.infer("m", [[1]]), TypeError, "inputs must be a dict"),
    (lambda: mc.infer("m", {"x": 1.5}), TypeError, "inputs['x'] must be a numpy array"),
    (lambda: mc.infer("m", {1: [[1]]}), TypeError, "names must be non-empty strings"),
    (lambda: mc.infer("m", {"x": [[1]]}, version=0), ValueError, "version must be >= 1"),
    (lambda: mc.infer("m", {"x": [[1]]}, version="v2"), ValueError, "string of digits"),
    (lambda: mc.infer("m", {"x": [[1]]}, version=True), TypeError, "version must be"),
    (lambda: mc.infer("m", {"x": [[1]]}, outputs="y"), TypeError, "list of output names"),
    (lambda: mc.infer("m", {"x": [[1]]}, queue=""), ValueError, "queue must be"),
    (lambda: mc.predict("m", 3.0), TypeError, "data must be a numpy array"),
    (lambda: mc.predict("m", np.float32(3)), TypeError, "data must be a numpy array"),
    (lambda: mc.train("m", {"x": [[1]]}, [[1]]), TypeError, "targets must be a dict"),
    (lambda: mc.routes(""), ValueError, "queue must be"),
])
def test_cheap_validation(call, error, message):
    with pytest.raises(error, match=None) as raised:
        call()
    assert message in str(raised.value)


def test_routes():
    assert mc.TASK_ROUTES == {"modeld.*": {"queue": "modeld"}}
    assert mc.routes() == mc.TASK_ROUTES
    assert mc.routes("models") == {"modeld.*": {"queue": "models"}}


def test_signature_without_app_uses_current_app(app):
    signature = mc.predict("linear", [[1, 2, 3]])
    previous = __import__("celery")._state.get_current_app()
    assert signature._app is None
    app.set_current()
    try:
        result = signature.apply_async()
    finally:
        previous.set_current()
    [(headers, _, body)] = sent(app)
    assert headers["id"] == result.id and headers["task"] == "modeld.predict"
    assert body[0] == ["linear", [[1, 2, 3]]]


# --- the messages modeld receives ----------------------------------------------------------


def test_send_task_is_routed_by_task_routes(app):
    result = app.send_task("modeld.infer", args=["linear", {"x": [[1, 2, 3]]}])
    app.send_task("other.task", args=[])  # not ours: the default queue
    [(headers, properties, body)] = sent(app, "modeld")
    assert headers["id"] == result.id and headers["task"] == "modeld.infer"
    assert properties["delivery_info"]["routing_key"] == "modeld"
    assert [h["task"] for h, _, _ in sent(app, "celery")] == ["other.task"]


def test_send_infer_message(app):
    x = np.array([[1.25, float("nan"), -float("inf")]], dtype=np.float32)
    result = mc.send_infer(app, "linear", {"x": x}, version=2, outputs=["y"],
                           countdown=30, time_limit=5)
    [(headers, properties, body)] = sent(app)
    assert headers["task"] == "modeld.infer"
    assert headers["id"] == headers["root_id"] == properties["correlation_id"] == result.id
    assert headers["parent_id"] is None
    assert headers["eta"] is not None  # countdown arrives as an eta
    assert headers["timelimit"] == [5, None]  # Celery writes [hard, soft]
    args, kwargs, embed = body
    assert args[0] == "linear"
    assert args[1]["x"][0][0] == 1.25
    assert math.isnan(args[1]["x"][0][1]) and args[1]["x"][0][2] == -math.inf
    assert kwargs == {"version": 2, "outputs": ["y"]}
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def test_send_infer_to_another_queue(app):
    mc.send_infer(app, "linear", {"x": [[1, 2, 3]]}, queue="models")
    assert sent(app, "modeld") == []
    [(headers, properties, _)] = sent(app, "models")
    assert headers["task"] == "modeld.infer"
    assert properties["delivery_info"]["routing_key"] == "models"


def test_chain_after_infer(app):
    """modeld gets one message; the Python step rides in embed.chain for modeld to publish."""
    result = (mc.infer("linear", {"x": [[1, 2, 3]]}, app=app) | app.postprocess.s(2)).apply_async()
    [(headers, _, (args, kwargs, embed))] = sent(app)
    assert headers["task"] == "modeld.infer"
    assert result.parent.id == headers["id"] == headers["root_id"]
    assert (args, kwargs) == (["linear", {"x": [[1, 2, 3]]}], {})
    [step] = embed["chain"]
    assert step["task"] == app.postprocess.name
    assert step["args"] == [2]  # modeld prepends its result
    assert step["options"]["task_id"] == result.id
    assert sent(app, "celery") == []  # the step is not sent until modeld publishes it


def test_chain_of_two_modeld_tasks(app):
    """predict | predict: the second step is a modeld task too, routed back to modeld."""
    second = mc.predict("linear", app=app, data=[[0]]).set(immutable=True)
    result = chain(mc.predict("linear", [[1, 2, 3]], app=app), second).apply_async()
    [(headers, _, (_, _, embed))] = sent(app)
    [step] = embed["chain"]
    assert step["task"] == "modeld.predict" and step["immutable"] is True
    assert step["options"]["queue"] == "modeld"
    assert step["options"]["task_id"] == result.id != headers["id"]


def test_group_of_predicts(app):
    chunks = np.arange(12, dtype=np.float32).reshape(4, 3)
    result = group(mc.predict("linear", chunks[i:i + 2], app=app) for i in (0, 2)).apply_async()
    messages = sent(app)
    assert [h["id"] for h, _, _ in messages] == [r.id for r in result.results]
    assert {h["group"] for h, _, _ in messages} == {result.id}
    assert [body[0][1] for _, _, body in messages] == [chunks[:2].tolist(), chunks[2:].tolist()]


# --- importing -----------------------------------------------------------------------------


def test_import_modeld_does_not_load_celery():
    loaded = python("""
        import json, sys
        import modeld
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
    """)
    assert "celery" not in loaded and "kombu" not in loaded


def test_import_error_names_the_extra():
    answer = python("""
        import json, sys
        sys.modules["celery"] = None  # as if Celery were not installed
        try:
            import modeld.celery
        except ImportError as error:
            print(json.dumps(str(error)))
    """)
    assert 'pip install "modeld[celery]"' in answer
