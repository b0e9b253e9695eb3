"""python -m modeld, run as a subprocess against the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def cli(*args, url=None, env_url=None, timeout=60, stdin=None):
    env = {k: v for k, v in os.environ.items() if k != "MODELD_URL"}
    if env_url is not None:
        env["MODELD_URL"] = env_url
    command = [sys.executable, "-m", "modeld"]
    if url is not None:
        command += ["--url", url]
    return subprocess.run(command + list(args), capture_output=True, text=True, env=env,
                          timeout=timeout, input=stdin)


def test_status(url):
    result = cli("status", "--model", "linear", "--model", "mlp", url=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "url": url, "live": True, "ready": True, "models": {"linear": True, "mlp": True},
    }


def test_status_of_an_unknown_model_exits_1(url):
    result = cli("status", "--model", "no_such_model", url=url)
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["models"] == {"no_such_model": False}
    assert answer["reasons"] == {"no_such_model": "unknown model 'no_such_model'"}


def test_status_without_models_checks_every_model_the_server_has(url):
    result = cli("status", url=url)
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)["models"]
    if url.startswith(("redis://", "amqp://")):
        assert models == {}  # a queue carries no list of models
    else:
        assert {"linear", "mlp", "digits"} <= set(models) and all(models.values()), models


def test_url_from_the_environment(url):
    result = cli("status", env_url=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["url"] == url


def test_infer_with_json_uses_predict(url):
    result = cli("infer", "linear", "--json", "[[1, 2, 3]]", "--version", "1", url=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[4.75]]  # 0.5 - 2.5 + 6 + 0.75
    result = cli("infer", "linear", "--json", "[[1, 2, 3]]", url=url)
    assert json.loads(result.stdout) == [[9.5]]  # version 2 doubles W and b


def test_infer_with_several_inputs(url):
    result = cli("infer", "int64_bool", "--input", "ids=[[4, -1, 2]]",
                 "--input", "mask=[[true, true, false]]", url=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"masked_ids": [[4, -1, 0]],
                                         "positive": [[True, False, True]]}
    result = cli("infer", "int64_bool", "--input", "ids=[[4]]", "--input", "mask=[[true]]",
                 "--output", "positive", url=url)
    assert json.loads(result.stdout) == {"positive": [[True]]}


def test_infer_with_a_json_object_takes_inputs_by_name_as_manage_py_does(url):
    result = cli("infer", "int64_bool", "--json",
                 '{"ids": [[4, -1, 2]], "mask": [[true, true, false]]}', url=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"masked_ids": [[4, -1, 0]],
                                         "positive": [[True, False, True]]}
    result = cli("infer", "int64_bool", "--json", "-", "--output", "positive", url=url,
                 stdin='{"ids": [[4]], "mask": [[true]]}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"positive": [[True]]}


def test_metadata(url, transport):
    result = cli("metadata", url=url)
    if transport == "redis":  # the queue carries no server metadata
        assert result.returncode == 1 and "grpc://" in result.stderr, result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["name"] == "modeld"
    result = cli("metadata", "linear", "--version", "1", url=url)
    assert json.loads(result.stdout)["outputs"] == [{"name": "y", "datatype": "FP32",
                                                     "shape": [-1, 1]}]


@pytest.mark.parametrize("args,message", [
    (["infer", "no_such_model", "--json", "[1]"], "unknown model 'no_such_model'"),
    (["infer", "linear", "--json", "[[1, 2]]"], "shape [1, 2]"),
    (["infer", "linear", "--json", "[[1, 2"], "--json is not valid JSON"),
    (["infer", "add_sub", "--json", "[1]"], "INPUT0, INPUT1"),
    (["infer", "linear", "--input", "x"], "NAME=JSON"),
    (["metadata", "no_such_model"], "unknown model"),
])
def test_errors_print_the_message_and_exit_1(url, args, message):
    result = cli(*args, url=url)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("transport", ["grpc", "http", "redis"])
def test_unreachable_server(transport, closed_port):
    result = cli("--timeout", "2", "status", url=f"{transport}://127.0.0.1:{closed_port}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")


def test_bad_url():
    result = cli("status", url="redis://localhost:6379?queue=jobs")
    assert result.returncode == 1
    assert "unknown option 'queue'" in result.stderr
    result = cli("status", url="redis://:hunter2@localhost:6379/db")
    assert "is not a number" in result.stderr
    assert "hunter2" not in result.stderr  # passwords never printed


def test_default_url_without_environment():
    from modeld.__main__ import DEFAULT_URL, _parser

    env_url = os.environ.pop("MODELD_URL", None)
    try:
        assert _parser().parse_args(["status"]).url == DEFAULT_URL == "grpc://127.0.0.1:8001"
    finally:
        if env_url is not None:
            os.environ["MODELD_URL"] = env_url
