"""The Django app with amqp:// and amqps:// URLs: modeld reached through its RabbitMQ queue."""

from __future__ import annotations

import asyncio
import io
import unittest

import numpy as np
from django.core.management import call_command
from django.test import SimpleTestCase, override_settings

from modeld.django import apredict, clients
from modeld.django.checks import check_servers, check_settings
from support import EXAMPLE_MODELS, _close_helper_channels, _stop, reserve_dead_port

# tests/integration, which support puts on sys.path
from modeld_server import start_server
from rabbitmq_server import PASSWORD, SECOND_VHOST, fresh_name, installed, wait_until


def ids(messages):
    return sorted(message.id for message in messages)


class AmqpAliasTests(SimpleTestCase):
    """modeld on the example models, consuming a queue of a private RabbitMQ node (on its
    second vhost); the ``default`` alias reaches it over amqp://, ``tls`` over amqps:// with
    the broker's CA."""

    @classmethod
    def setUpClass(cls) -> None:
        if not installed():
            raise unittest.SkipTest("rabbitmq-server is not installed (scripts/setup installs it)")
        from rabbitmq_server import RabbitMQServer

        cls.broker = RabbitMQServer(tls=True)
        cls.addClassCleanup(cls.broker.close)
        cls.queue = fresh_name("django")
        server_url = cls.broker.url(vhost=SECOND_VHOST)
        cls.server = start_server(EXAMPLE_MODELS, [f"--amqp-url={server_url}",
                                                   f"--amqp-queue={cls.queue}"])
        cls.addClassCleanup(_stop, cls.server)
        _close_helper_channels(cls.server)
        cls.server.wait_for_log(r"amqp: consuming")
        super().setUpClass()
        cls.url = f"{server_url}?queue={cls.queue}"
        cls.tls_url = f"{cls.broker.url(vhost=SECOND_VHOST, tls=True)}?queue={cls.queue}"
        cls.enterClassContext(override_settings(MODELD={
            "default": {"URL": cls.url, "TIMEOUT": 10.0, "MODELS": ["linear", "mlp"]},
            "tls": {"URL": cls.tls_url, "TIMEOUT": 10.0, "MODELS": ["linear"],
                    "TLS_CA": str(cls.broker.pki.ca)},
        }))
        wait_until(lambda: clients["default"].ready(), what="modeld ready through AMQP")

    def test_settings_pass_the_checks(self):
        self.assertEqual(check_settings(), [])

    def test_shortcuts_go_through_the_queue(self):
        for alias in ("default", "tls"):
            y = clients[alias].predict("linear", [[1.0, 2.0, 3.0]])
            np.testing.assert_allclose(y, [[9.5]])
        self.assertEqual(clients["default"].metadata("mlp")["outputs"][0]["name"], "logits")
        self.assertEqual(clients["default"].model_status("nope").state, "UNKNOWN")
        self.assertNotIn(PASSWORD, repr(clients["default"]))

    def test_async_shortcut(self):
        async def main():
            return await apredict("linear", [[1.0, 2.0, 3.0]], using="tls")

        np.testing.assert_allclose(asyncio.run(main()), [[9.5]])

    def test_health_view_asks_through_the_queue(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["models"], {"default": {"linear": True, "mlp": True},
                                                     "tls": {"linear": True}})

    def test_deploy_checks_pass(self):
        self.assertEqual(check_servers(), [])

    def test_a_model_modeld_lacks_is_w003(self):
        with override_settings(MODELD={"default": {"URL": self.url, "MODELS": ["nope"]}}):
            messages = check_servers()
            response = self.client.get("/healthz")
        self.assertEqual(ids(messages), ["modeld.W003"])
        self.assertIn("unknown model 'nope'", messages[0].msg)
        self.assertEqual(response.status_code, 503)

    def test_a_queue_no_modeld_declared_is_not_ready(self):
        # The broker answers (live), and returns the readiness query: no such queue.
        url = self.broker.url(vhost=SECOND_VHOST) + f"?queue={fresh_name('nobody')}"
        with override_settings(MODELD={"default": {"URL": url, "TIMEOUT": 2.0}}):
            messages = check_servers()
            response = self.client.get("/healthz")
        self.assertEqual(ids(messages), ["modeld.W002"])
        self.assertIn("has no queue", messages[0].msg)
        self.assertIn("--amqp-queue", messages[0].hint)
        self.assertNotIn(PASSWORD, messages[0].msg)
        self.assertEqual(response.status_code, 503)

    def test_a_queue_nobody_consumes_is_not_ready(self):
        queue = fresh_name("unconsumed")
        with self.broker.connection(vhost=SECOND_VHOST) as connection:
            connection.channel().queue_declare(queue, durable=True)
        url = self.broker.url(vhost=SECOND_VHOST) + f"?queue={queue}"
        with override_settings(MODELD={"default": {"URL": url, "TIMEOUT": 0.5}}):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W002"])
        self.assertIn("DeadlineExceeded", messages[0].msg)

    def test_status_command_hides_the_password(self):
        out = io.StringIO()
        call_command("modeld", "status", stdout=out)
        self.assertIn("default  amqp://modeld:***@127.0.0.1:", out.getvalue())
        self.assertNotIn(PASSWORD, out.getvalue())


class UnreachableBrokerTests(SimpleTestCase):
    def test_unreachable_broker_is_w001_without_the_password(self):
        sock, port = reserve_dead_port()
        self.addCleanup(sock.close)
        url = f"amqp://app:hunter2@127.0.0.1:{port}/prod?queue=jobs"
        with override_settings(MODELD={"default": {"URL": url, "RETRIES": 0}}):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W001"])
        self.assertIn("amqp://app:***@127.0.0.1", messages[0].msg)
        self.assertIn("cannot reach the AMQP broker", messages[0].msg)
        self.assertNotIn("hunter2", messages[0].msg)
