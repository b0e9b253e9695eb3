"""Celery for the batch page's tests: a redis-server of the test class (tests/integration's
redis_server.py) and the site's Celery app pointed at it, or at a port where nothing listens.

The site's app (demo_site.celery.app) reads its settings once; a test class swaps in an app
made from its own settings (demo_site.celery.make_app) and puts the old one back after."""

from __future__ import annotations

import logging
import socket

from django.test import SimpleTestCase, override_settings

from demo_site import celery as demo_celery

from .support import REPO_ROOT  # noqa: F401  (puts tests/integration on sys.path)

from redis_server import RedisServer  # noqa: E402


def dead_url(test_case: type[SimpleTestCase]) -> str:
    """redis:// on a loopback port that is bound but never listens (connections are refused),
    held until the class's cleanup. Celery's result backend logs its failed reconnection as
    CRITICAL, on purpose here: its loggers are quiet until then."""
    backends = logging.getLogger("celery.backends")
    test_case.addClassCleanup(backends.setLevel, backends.level)
    backends.setLevel(logging.CRITICAL + 1)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    test_case.addClassCleanup(sock.close)
    return f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


def start_redis(test_case: type[SimpleTestCase]) -> RedisServer:
    """A redis-server for the class, closed by the class's cleanup."""
    server = RedisServer()
    test_case.addClassCleanup(server.close)
    return server


def use_celery(test_case: type[SimpleTestCase], broker: str, backend: str) -> None:
    """From now until the class's cleanup, the site sends through ``broker`` and reads
    results from ``backend``."""
    test_case.enterClassContext(override_settings(CELERY_BROKER_URL=broker,
                                                  CELERY_RESULT_BACKEND=backend))
    app = demo_celery.make_app()
    assert (app.conf.broker_url, app.conf.result_backend) == (broker, backend)
    previous, demo_celery.app = demo_celery.app, app

    def restore() -> None:
        demo_celery.app = previous
        app.close()

    test_case.addClassCleanup(restore)
