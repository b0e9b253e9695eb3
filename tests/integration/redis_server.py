"""redis-server for the tests: a child process on a free loopback port, without persistence.

Used by the Redis transport's end-to-end tests (redis_helpers.py) and by the Python client's
tests (python/tests/client). Needs only redis-py, not the generated messages.
"""

import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

WAIT_S = 30.0


def wait_until(condition, timeout=WAIT_S, what="condition"):
    """Polls `condition` until it returns a true value, which is returned; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:.0f}s")
        time.sleep(0.02)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """redis-server on a loopback port, no persistence. stop() / start() keep the port;
    close() stops it for good and removes its log. `extra_args` go to redis-server
    (``["--requirepass", "secret"]``: then give `password` for the test's own client)."""

    def __init__(self, extra_args=(), password=None):
        self.port = _free_port()
        self.extra_args = list(extra_args)
        self.password = password
        self._log = tempfile.NamedTemporaryFile(prefix="redis-", suffix=".log", delete=False)
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--loglevel", "warning", *self.extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {Path(self._log.name).read_text()}")
            try:
                return self.client().ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, 20, "redis-server answering PING")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def client(self, db=0):
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password,
                           socket_timeout=WAIT_S + 5)
