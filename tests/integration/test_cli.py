"""The command line: --help, unknown flags, and the listening line for port 0."""

import re
import socket
import subprocess

from modeld_server import BINARY, LISTEN_RE, require_build

FLAGS = [
    "--model-repository",
    "--grpc-address",
    "--grpc-max-message-bytes",
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
