"""Starts the real modeld binary for a test and stops it again.

The server is started with --grpc-address=127.0.0.1:0 and --http-address=127.0.0.1:0; the
kernel picks the ports and the server logs "gRPC listening on 127.0.0.1:<port>" and
"HTTP listening on 127.0.0.1:<port>", which are parsed here. Its stdout and stderr
are read on a thread into a buffer, so the pipe never fills, and the log is kept for tests
that assert on it. Every wait is on a condition with a bounded timeout.
"""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("MODELD_BINARY", REPO_ROOT / "build" / "bin" / "modeld"))
STUBS_DIR = Path(os.environ.get("MODELD_PYTHON_STUBS", REPO_ROOT / "build" / "python"))

EXAMPLE_MODELS = ("linear", "mlp", "cnn", "add_sub", "identity_fp32", "int64_bool")

LISTEN_RE = re.compile(r"gRPC listening on 127\.0\.0\.1:(\d+)")
HTTP_LISTEN_RE = re.compile(r"HTTP listening on 127\.0\.0\.1:(\d+)")
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# Large enough for the oversize-message tests to reach the server.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 512 * 1024 * 1024),
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
]


class ServerProcess:
    """One running modeld. Use start() / stop(), or the fixtures in conftest.py."""

    def __init__(
        self,
        repository,
        extra_args=(),
        binary=BINARY,
        address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        channel_credentials=None,
    ):
        self.args = [
            str(binary),
            f"--model-repository={repository}",
            f"--grpc-address={address}",
            f"--http-address={http_address}",
            "--log-level=info",
            *extra_args,
        ]
        self.repository = Path(repository)
        # grpc.ChannelCredentials for a server started with --grpc-tls-cert; None: plaintext.
        self.channel_credentials = channel_credentials
        self.port = None
        self.address = None
        self.http_port = None
        self.http_address = None  # "127.0.0.1:<port>" of the HTTP server
        self.returncode = None
        self._lines = []
        self._eof = False
        self._cond = threading.Condition()
        self._channels = []
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, name="modeld-log", daemon=True)
        self._reader.start()

    # --- log -------------------------------------------------------------------------------

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def log(self):
        """Everything the server wrote to stdout and stderr so far."""
        with self._cond:
            return "".join(self._lines)

    def log_lines(self):
        with self._cond:
            return [line.rstrip("\n") for line in self._lines]

    def wait_for_log(self, pattern, timeout=STARTUP_TIMEOUT_S):
        """Waits until the log matches `pattern` (a regex); returns the match.

        Fails when the server's output ends (it exited) or the timeout passes first.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = regex.search("".join(self._lines))
                if match:
                    return match
                if self._eof:
                    self.proc.wait(timeout=STOP_TIMEOUT_S)
                    raise AssertionError(
                        f"modeld exited with code {self.proc.returncode} before logging "
                        f"{regex.pattern!r}; its log:\n{''.join(self._lines)}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"modeld did not log {regex.pattern!r} within {timeout:.0f}s; "
                        f"its log:\n{''.join(self._lines)}"
                    )
                self._cond.wait(remaining)

    def wait_for_output(self, timeout=STARTUP_TIMEOUT_S):
        """Waits until the server has written at least one line."""
        return self.wait_for_log(r".", timeout)

    # --- lifecycle -------------------------------------------------------------------------

    def wait_until_listening(self, timeout=STARTUP_TIMEOUT_S):
        match = self.wait_for_log(LISTEN_RE, timeout)
        self.port = int(match.group(1))
        assert 0 < self.port < 65536, f"bad port in log line {match.group(0)!r}"
        self.address = f"127.0.0.1:{self.port}"
        http_match = self.wait_for_log(HTTP_LISTEN_RE, timeout)
        self.http_port = int(http_match.group(1))
        assert 0 < self.http_port < 65536, f"bad port in log line {http_match.group(0)!r}"
        self.http_address = f"127.0.0.1:{self.http_port}"
        # The port is open once the line is printed; confirm a channel connects.
        channel = self.channel()
        grpc.channel_ready_future(channel).result(timeout=timeout)
        return self

    def wait_until_ready(self, timeout=STARTUP_TIMEOUT_S):
        """Waits until every model has loaded or failed (modeld logs this once)."""
        self.wait_for_log(r"modeld is ready", timeout)
        return self

    def channel(self):
        assert self.address, "server is not listening yet"
        if self.channel_credentials is not None:
            channel = grpc.secure_channel(
                self.address, self.channel_credentials, options=CHANNEL_OPTIONS
            )
        else:
            channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._channels.append(channel)
        return channel

    def running(self):
        return self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT_S):
        """Waits for the process to exit; returns its exit code (negative: killed by signal)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            raise AssertionError(
                f"modeld did not exit within {timeout:.0f}s; killed it. Its log:\n{self.log}"
            )
        self._reader.join(timeout=STOP_TIMEOUT_S)
        if not self._reader.is_alive():
            self.proc.stdout.close()  # the reader has seen EOF; no ResourceWarning
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Sends `sig` (if still running) and waits; returns the exit code.

        Never leaves the process running: kills it after `timeout`.
        """
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)


def require_build():
    """Fails the test (never skips it) when the binary or the generated stubs are missing."""
    if not BINARY.is_file():
        pytest.fail(f"modeld binary not found at {BINARY}; build it first (or set MODELD_BINARY)")
    if not (STUBS_DIR / "kserve" / "grpc_service_pb2.py").is_file():
        pytest.fail(f"generated Python stubs not found under {STUBS_DIR}/kserve")


def start_server(repository, extra_args=(), timeout=STARTUP_TIMEOUT_S, channel_credentials=None):
    """Starts modeld on `repository` and waits until it listens; stops it if that fails."""
    require_build()
    server = ServerProcess(repository, extra_args, channel_credentials=channel_credentials)
    try:
        server.wait_until_listening(timeout)
        server.wait_until_ready(timeout)
    except BaseException:
        if server.running():
            server.proc.kill()
        server.proc.wait(timeout=STOP_TIMEOUT_S)
        raise
    return server
