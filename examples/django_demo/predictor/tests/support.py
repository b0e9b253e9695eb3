"""A real modeld for the demo's tests: build/bin/modeld on examples/models, started per test
class by tests/integration/modeld_server.py (the same helper the end-to-end tests use)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from django.test import SimpleTestCase, override_settings

REPO_ROOT = Path(__file__).resolve().parents[4]
EXAMPLE_MODELS = REPO_ROOT / "examples" / "models"
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from modeld_server import start_server  # noqa: E402


def modeld_setting(url: str) -> dict:
    return {"default": {"URL": url, "TIMEOUT": 10.0, "MODELS": ["linear", "mlp", "digits"]}}


class ModeldServerTestCase(SimpleTestCase):
    """Points settings.MODELD at a modeld of its own; ``cls.url`` is its grpc:// URL."""

    @classmethod
    def setUpClass(cls) -> None:
        if not ((EXAMPLE_MODELS / "mlp" / "config.pbtxt").is_file()
                and (EXAMPLE_MODELS / "digits" / "1" / "model.onnx").is_file()):
            raise AssertionError(f"{EXAMPLE_MODELS} is missing or predates digits; generate "
                                 "the example models (make models)")
        cls.server = start_server(EXAMPLE_MODELS)
        cls.addClassCleanup(cls._stop_server)
        cls.url = f"grpc://{cls.server.address}"
        super().setUpClass()
        cls.enterClassContext(override_settings(MODELD=modeld_setting(cls.url)))

    @classmethod
    def _stop_server(cls) -> None:
        try:
            cls.server.stop()
        finally:
            cls.server.proc.stdout.close()


class DeadServerTestCase(SimpleTestCase):
    """Points settings.MODELD at a port on which nothing listens (connections are refused)."""

    @classmethod
    def setUpClass(cls) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # bound, never listening: no one else gets the port
        cls.addClassCleanup(sock.close)
        cls.url = f"grpc://127.0.0.1:{sock.getsockname()[1]}"
        super().setUpClass()
        setting = modeld_setting(cls.url)
        setting["default"].update(TIMEOUT=2.0, RETRIES=0)
        cls.enterClassContext(override_settings(MODELD=setting))
