"""clients / aclients: one client per alias and process (and event loop), lazily created."""

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

import modeld.django
from modeld.django import AliasDoesNotExist, aclients, clients, predict
from support import ModeldServerTestCase

TWO_ALIASES = {
    "default": {"URL": "grpc://127.0.0.1:9", "TIMEOUT": 1.5, "MODELS": ["linear"]},
    "fraud": {"URL": "http://127.0.0.1:9", "RETRIES": 0},
}


@override_settings(MODELD=TWO_ALIASES)
class ClientHandlerTests(SimpleTestCase):
    def test_same_object_per_alias(self):
        self.assertIs(clients["default"], clients["default"])
        self.assertIsNot(clients["default"], clients["fraud"])
        self.assertEqual(clients["default"].url, "grpc://127.0.0.1:9")
        self.assertEqual(clients["default"].timeout, 1.5)
        self.assertEqual(clients["default"].models, ("linear",))
        self.assertEqual(clients["fraud"].alias, "fraud")
        self.assertEqual(list(clients), ["default", "fraud"])
        self.assertIn("fraud", clients)
        self.assertNotIn("other", clients)
        self.assertEqual([c.alias for c in clients.all()], ["default", "fraud"])

    def test_wrapped_client_is_created_lazily_with_the_alias_settings(self):
        import modeld

        client = clients["fraud"]
        self.assertIsNone(client._client)
        inner = client.client
        self.assertIsInstance(inner, modeld.Client)
        self.assertIs(client.client, inner)
        self.assertEqual(inner.url, "http://127.0.0.1:9")

    def test_concurrent_first_use_creates_one_client(self):
        barrier = threading.Barrier(8)
        seen = []

        def worker():
            barrier.wait()
            seen.append(clients["default"])
            seen.append(clients["default"].client)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len(seen), 16)
        self.assertEqual(len({id(obj) for obj in seen[0::2]}), 1)
        self.assertEqual(len({id(obj) for obj in seen[1::2]}), 1)

    def test_unknown_alias_names_the_configured_ones(self):
        with self.assertRaises(AliasDoesNotExist) as raised:
            clients["fruad"]
        message = str(raised.exception)
        self.assertIn("'fruad'", message)
        self.assertIn("'default', 'fraud'", message)
        self.assertIsInstance(raised.exception, ImproperlyConfigured)
        self.assertIsInstance(raised.exception, KeyError)
        with self.assertRaisesMessage(AliasDoesNotExist, "'fruad'"):
            modeld.django.predict("linear", [[1, 2, 3]], using="fruad")

    def test_changed_setting_gives_new_clients(self):
        before = clients["default"]
        with override_settings(MODELD={"default": {"URL": "http://127.0.0.1:7"}}):
            during = clients["default"]
            self.assertIsNot(during, before)
            self.assertEqual(during.url, "http://127.0.0.1:7")
            self.assertNotIn("fraud", clients)
        self.assertEqual(clients["default"].url, "grpc://127.0.0.1:9")

    def test_close_drops_the_wrapped_client(self):
        client = clients["default"]
        first = client.client
        client.close()
        self.assertIsNone(client._client)
        self.assertIsNot(client.client, first)

    def test_malformed_setting_raises_on_use(self):
        with override_settings(MODELD={"default": {"URL": "nope"}}):
            with self.assertRaisesMessage(ImproperlyConfigured, "modeld.E004"):
                clients["default"]


@override_settings(MODELD=TWO_ALIASES)
class AsyncClientHandlerTests(SimpleTestCase):
    def test_same_object_within_a_loop(self):
        async def get():
            first = aclients["default"]
            await asyncio.sleep(0)
            self.assertIs(aclients["default"], first)
            self.assertIsNot(aclients["fraud"], first)
            return first

        client = asyncio.run(get())
        self.assertEqual(client.url, "grpc://127.0.0.1:9")

    def test_one_client_per_loop(self):
        async def get():
            return aclients["default"]

        first = asyncio.run(get())
        second = asyncio.run(get())
        self.assertIsNot(first, second)

    def test_concurrent_loops_on_threads_get_their_own(self):
        barrier = threading.Barrier(4)
        seen = []

        async def get():
            barrier.wait()
            client = aclients["default"]
            seen.append(client)
            await asyncio.sleep(0)
            self.assertIs(aclients["default"], client)

        threads = [threading.Thread(target=asyncio.run, args=(get(),)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len({id(client) for client in seen}), 4)

    def test_clients_of_closed_loops_are_dropped(self):
        async def get():
            aclients["default"]
            return aclients.loop_count()

        for _ in range(5):
            self.assertEqual(asyncio.run(get()), 1)

    def test_wrapped_client_is_a_modeld_aio_client(self):
        import modeld.aio

        async def get():
            return aclients["fraud"].client

        self.assertIsInstance(asyncio.run(get()), modeld.aio.Client)

    def test_outside_a_loop_is_a_clear_error(self):
        with self.assertRaisesMessage(RuntimeError, "modeld.django.clients"):
            aclients["default"]

    def test_unknown_alias(self):
        async def get():
            return aclients["nope"]

        with self.assertRaisesMessage(AliasDoesNotExist, "'nope'"):
            asyncio.run(get())

    def test_changed_setting_gives_new_clients(self):
        async def get():
            before = aclients["default"]
            with override_settings(MODELD={"default": {"URL": "http://127.0.0.1:7"}}):
                during = aclients["default"]
            return before, during

        before, during = asyncio.run(get())
        self.assertIsNot(before, during)
        self.assertEqual(during.url, "http://127.0.0.1:7")


class AsyncClientClosedWithItsLoopTests(SimpleTestCase):
    """Under WSGI each async view runs in its own asyncio.run(); its clients close with it."""

    def test_wrapped_client_is_closed_when_asyncio_run_ends(self):
        closed = []

        async def use():
            client = aclients["default"]
            try:
                await client.live(timeout=1.0)  # the server is unreachable; that is fine
            except Exception:
                pass
            inner = client._client
            original = inner.close

            async def close():
                closed.append(inner)
                await original()

            inner.close = close
            return client

        client = asyncio.run(use())
        self.assertEqual(len(closed), 1)
        self.assertIsNone(client._client)


class ImportTests(SimpleTestCase):
    def test_the_app_imports_neither_torch_nor_tensorflow(self):
        code = (
            "import sys, django; django.setup()\n"
            "import modeld.django, modeld.django.views, modeld.django.testing\n"
            "import modeld.django.checks, modeld.django.management.commands.modeld\n"
            "from modeld.django import clients; clients['default'].client\n"
            "heavy = [m for m in ('torch', 'tensorflow') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert 'modeld.django' in sys.modules\n"
        )
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="settings",
                   PYTHONPATH=str(Path(__file__).resolve().parent))
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)


class ForkTests(ModeldServerTestCase):
    """Gunicorn forks its workers: a client made in the parent keeps working in the child."""

    def test_clients_work_in_a_forked_child(self):
        x = [[1.0, 2.0, 3.0]]
        parent = predict("linear", x).tolist()  # the parent's client is connected now
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: answer through the pipe, never return into the test runner
            code = 1
            try:
                answer = {"y": predict("linear", x).tolist(),
                          "rest": predict("linear", x, using="rest").tolist()}
                os.write(write, json.dumps(answer).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        try:
            ready, _, _ = select.select([read], [], [], 60)
            self.assertTrue(ready, "the child did not answer within 60 s")
            data = b""
            while chunk := os.read(read, 65536):
                data += chunk
        finally:
            os.close(read)
            if not ready:
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(json.loads(data), {"y": parent, "rest": parent})
        self.assertEqual(predict("linear", x).tolist(), parent)  # and still in the parent
