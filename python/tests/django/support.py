"""Helpers for the modeld.django tests: a real modeld per test class, and a dead address."""

from __future__ import annotations

import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from django.test import SimpleTestCase, override_settings

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_MODELS = REPO_ROOT / "examples" / "models"
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from modeld_server import ServerProcess, start_server  # noqa: E402

# A model of modeld's fake backend (no LibTorch) that takes a minute to load: while it
# loads the server is live but not ready.
SLOW_MODEL_CONFIG = """\
backend: "fake"
max_batch_size: 4
input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
parameters { key: "load_sleep_ms" value { string_value: "60000" } }
"""


def _close_helper_channels(server: ServerProcess) -> None:
    """Closes the gRPC channel start_server() waited on. Its connectivity watch keeps a thread
    inside gRPC, and gRPC skips its fork handlers when a thread is inside it at fork time (a
    forked child then crashes on its first gRPC call): ForkTests needs none left."""
    for channel in server._channels:
        channel.close()
    server._channels.clear()


def _stop(server: ServerProcess, sig: int = signal.SIGTERM) -> None:
    try:
        server.stop(sig)
    finally:
        server.proc.stdout.close()


def reserve_dead_port() -> tuple[socket.socket, int]:
    """A bound, never-listening socket and its port: connecting to it is refused.

    Keep the socket open while the port is in use so no one else takes it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


class DeadServerMixin:
    """Sets ``cls.dead_url``, a grpc:// URL on which nothing listens."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        sock, port = reserve_dead_port()
        cls.addClassCleanup(sock.close)
        cls.dead_url = f"grpc://127.0.0.1:{port}"


class ModeldServerTestCase(DeadServerMixin, SimpleTestCase):
    """Starts build/bin/modeld on examples/models for the class.

    ``cls.grpc_url`` / ``cls.http_url`` are its URLs; ``settings.MODELD`` points its
    ``default`` alias at gRPC and a ``rest`` alias at HTTP, both expecting linear and mlp,
    unless the class sets ``modeld_setting`` (a function of the class returning the setting).
    """

    @classmethod
    def modeld_setting(cls) -> dict:
        return {
            "default": {"URL": cls.grpc_url, "TIMEOUT": 10.0, "MODELS": ["linear", "mlp"]},
            "rest": {"URL": cls.http_url, "TIMEOUT": 10.0, "MODELS": ["linear", "mlp"]},
        }

    @classmethod
    def setUpClass(cls) -> None:
        if not (EXAMPLE_MODELS / "linear" / "config.pbtxt").is_file():
            raise AssertionError(f"{EXAMPLE_MODELS} is missing; generate the example models")
        cls.server = start_server(EXAMPLE_MODELS)
        cls.addClassCleanup(_stop, cls.server)
        _close_helper_channels(cls.server)
        cls.grpc_url = f"grpc://{cls.server.address}"
        cls.http_url = f"http://{cls.server.http_address}"
        super().setUpClass()
        cls.enterClassContext(override_settings(MODELD=cls.modeld_setting()))


class BrokenModelServerTestCase(DeadServerMixin, SimpleTestCase):
    """modeld on a repository of linear (from examples/models) and ``broken``, an ONNX model
    whose model.onnx is not one: it fails to load and the server, ready, says why. ``cls.url``
    is its gRPC URL."""

    @classmethod
    def setUpClass(cls) -> None:
        repository = Path(cls.enterClassContext(tempfile.TemporaryDirectory()))
        shutil.copytree(EXAMPLE_MODELS / "linear", repository / "linear")
        (repository / "broken" / "1").mkdir(parents=True)
        (repository / "broken" / "1" / "model.onnx").write_bytes(b"not an ONNX model")
        cls.server = start_server(repository)
        cls.addClassCleanup(_stop, cls.server)
        _close_helper_channels(cls.server)
        cls.url = f"grpc://{cls.server.address}"
        super().setUpClass()


class LoadingServerTestCase(DeadServerMixin, SimpleTestCase):
    """modeld while it loads model ``slow`` (a minute): live, not ready. ``cls.url`` is its
    gRPC URL. Stopped with SIGKILL (modeld finishes loading before it obeys SIGTERM)."""

    @classmethod
    def setUpClass(cls) -> None:
        repository = Path(cls.enterClassContext(tempfile.TemporaryDirectory()))
        (repository / "slow" / "1").mkdir(parents=True)
        (repository / "slow" / "config.pbtxt").write_text(SLOW_MODEL_CONFIG)
        cls.server = ServerProcess(repository)
        cls.addClassCleanup(_stop, cls.server, signal.SIGKILL)
        cls.server.wait_until_listening()
        cls.url = f"grpc://{cls.server.address}"
        super().setUpClass()
