"""The Django app with a redis:// URL: modeld reached through its Redis queue."""

from __future__ import annotations

import io
import shutil
import uuid

import numpy as np
from django.core.management import call_command
from django.test import SimpleTestCase, override_settings

from modeld.django import clients
from modeld.django.checks import check_servers
from support import EXAMPLE_MODELS, _close_helper_channels, _stop, reserve_dead_port

# tests/integration, which support puts on sys.path
from modeld_server import start_server
from redis_server import RedisServer, wait_until

PASSWORD = "s3cret+/"


def ids(messages):
    return sorted(message.id for message in messages)


class RedisAliasTests(SimpleTestCase):
    """modeld on the example models, consuming a password-protected redis-server; the
    ``default`` alias reaches it only through Redis."""

    databases = {"default"}  # the status page's staff user

    @classmethod
    def setUpClass(cls) -> None:
        if shutil.which("redis-server") is None:
            raise AssertionError("redis-server is missing (Debian package redis-server)")
        cls.redis = RedisServer(["--requirepass", PASSWORD], password=PASSWORD)
        cls.addClassCleanup(cls.redis.close)
        quoted = PASSWORD.replace("+", "%2B").replace("/", "%2F")
        cls.url = f"redis://:{quoted}@127.0.0.1:{cls.redis.port}/3"
        cls.server = start_server(EXAMPLE_MODELS, [f"--redis-url={cls.url}"])
        cls.addClassCleanup(_stop, cls.server)
        _close_helper_channels(cls.server)
        cls.server.wait_for_log(r"redis: consuming")
        super().setUpClass()
        cls.enterClassContext(override_settings(MODELD={
            "default": {"URL": cls.url, "TIMEOUT": 10.0, "MODELS": ["linear", "mlp"]},
        }))
        # Ready once the worker's two connections are up: ask until it says so.
        wait_until(lambda: clients["default"].ready(), what="modeld ready through Redis")

    def test_shortcuts_go_through_redis(self):
        y = clients["default"].predict("linear", [[1.0, 2.0, 3.0]])
        np.testing.assert_allclose(y, [[9.5]])
        self.assertEqual(clients["default"].metadata("mlp")["outputs"][0]["name"], "logits")
        self.assertNotIn(PASSWORD, repr(clients["default"]))

    def test_health_view_asks_through_redis(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["models"], {"default": {"linear": True, "mlp": True}})

    def test_deploy_checks_pass(self):
        self.assertEqual(check_servers(), [])

    def test_a_queue_no_modeld_reads_is_not_ready(self):
        # Redis answers (live), but nobody answers the readiness query on this stream.
        url = f"{self.url}?stream=nobody-{uuid.uuid4().hex[:8]}"
        with override_settings(MODELD={"default": {"URL": url, "TIMEOUT": 0.5}}):
            messages = check_servers()
            response = self.client.get("/healthz")
        self.assertEqual(ids(messages), ["modeld.W002"])
        self.assertNotIn(PASSWORD, messages[0].msg)
        self.assertEqual(response.status_code, 503)

    def test_status_page_lists_the_models_of_MODELS(self):
        # The queue carries no list of models: the page asks each model of MODELS through it.
        from test_status_page import STATUS, user

        self.client.force_login(user("staff", staff=True))
        response = self.client.get(STATUS)
        self.assertEqual(response.status_code, 200)
        [alias] = response.context["aliases"]
        self.assertTrue(alias.live and alias.ready)
        self.assertEqual(alias.listing, "expected")
        self.assertEqual([(r.name, r.state, r.expected) for r in alias.rows],
                         [("linear", "READY", True), ("mlp", "READY", True)])
        self.assertContains(response, "No list of models from the server (modeld&#x27;s Redis "
                                      "and AMQP queues carry no list of models): listed are "
                                      "the models of <code>MODELS</code>")
        self.assertNotContains(response, PASSWORD)

    def test_status_command_hides_the_password(self):
        out = io.StringIO()
        call_command("modeld", "status", stdout=out)
        self.assertIn("default  redis://:***@127.0.0.1:", out.getvalue())
        self.assertNotIn(PASSWORD, out.getvalue())


class UnreachableRedisTests(SimpleTestCase):
    def test_unreachable_redis_is_w001_without_the_password(self):
        sock, port = reserve_dead_port()
        self.addCleanup(sock.close)
        url = f"redis://app:hunter2@127.0.0.1:{port}/0"
        with override_settings(MODELD={"default": {"URL": url, "RETRIES": 0}}):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W001"])
        self.assertIn("redis://app:***@127.0.0.1", messages[0].msg)
        self.assertNotIn("hunter2", messages[0].msg)
