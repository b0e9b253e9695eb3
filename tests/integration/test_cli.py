"""The command line: --help, unknown flags, and the listening line for port 0."""

import re
import socket
import subprocess
from pathlib import Path

from modeld_server import BINARY, LISTEN_RE, require_build

FLAGS = [
    "--model-repository",
    "--grpc-address",
    "--grpc-max-message-bytes",
    "--grpc-receive-timeout-seconds",
    "--grpc-max-concurrent-streams",
    "--max-inflight-requests",
    "--drain-timeout-seconds",
    "--log-level",
    "--http-address",
    "--http-threads",
    "--http-max-body-bytes",
    "--http-header-timeout-seconds",
    "--http-idle-timeout-seconds",
]


def run(*args):
    require_build()
    return subprocess.run(
        [str(BINARY), *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_help_lists_flags_and_exits_zero():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    for flag in FLAGS + ["--help"]:
        assert flag in text, f"--help does not mention {flag}:\n{text}"


def test_unknown_flag_is_refused_by_name(tmp_path):
    result = run(f"--model-repository={tmp_path}", "--no-such-flag=1")
    assert result.returncode != 0
    assert "no-such-flag" in result.stdout + result.stderr


def test_missing_repository_flag_is_refused():
    result = run("--grpc-address=127.0.0.1:0")
    assert result.returncode != 0
    assert "model-repository" in result.stdout + result.stderr


def test_malformed_max_message_bytes_is_refused(tmp_path):
    result = run(f"--model-repository={tmp_path}", "--grpc-max-message-bytes=lots")
    assert result.returncode != 0
    assert "grpc-max-message-bytes" in result.stdout + result.stderr


def test_port_zero_logs_the_chosen_port(server):
    match = LISTEN_RE.search(server.log)
    assert match is not None
    assert int(match.group(1)) == server.port > 0
    # One listening line per server start.
    assert len(re.findall(LISTEN_RE, server.log)) == 1


def test_a_taken_grpc_port_fails_at_start(tmp_path):
    # The port is held by a listening socket; a second server must not share it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(f"--model-repository={tmp_path}", f"--grpc-address=127.0.0.1:{port}",
                     "--http-address=127.0.0.1:0")
    assert result.returncode != 0
    assert f"cannot serve gRPC on 127.0.0.1:{port}" in result.stdout + result.stderr


def _environment(pid):
    """The environment process `pid` was executed with."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in entries if b"=" in e)


def test_openmp_threads_spin_briefly_unless_the_environment_chooses(
        launch, example_repository, monkeypatch):
    """modeld re-executes itself with GOMP_SPINCOUNT=3000 (src/app/openmp_env.h): libgomp
    reads it at load time, before modeld's code runs. A setting of the user's is kept."""
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    server = launch(example_repository)
    assert _environment(server.proc.pid).get("GOMP_SPINCOUNT") == "3000"

    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    server = launch(example_repository)
    environment = _environment(server.proc.pid)
    assert environment.get("OMP_WAIT_POLICY") == "passive"
    assert "GOMP_SPINCOUNT" not in environment

    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "1000")
    server = launch(example_repository)
    assert _environment(server.proc.pid).get("GOMP_SPINCOUNT") == "1000"
