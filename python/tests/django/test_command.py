"""manage.py modeld status / infer."""

import io
import json

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase, override_settings

import modeld
from modeld.django.testing import override_model
from support import DeadServerMixin, LoadingServerTestCase, ModeldServerTestCase


def run(*args, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command("modeld", *args, stdout=out, stderr=err, **options)
    return out.getvalue()


class DeadServerCommandTests(DeadServerMixin, SimpleTestCase):
    def test_status_of_an_unreachable_server_fails_with_exit_code_1(self):
        out = io.StringIO()
        with override_settings(MODELD={"default": {"URL": self.dead_url, "RETRIES": 0,
                                                   "MODELS": ["mlp"]}}):
            with self.assertRaises(CommandError) as raised:
                call_command("modeld", "status", stdout=out)
        self.assertEqual(raised.exception.returncode, 1)
        self.assertIn("default, default/mlp", str(raised.exception))
        self.assertIn(f"default  {self.dead_url}  live: no  ready: no", out.getvalue())
        self.assertIn("mlp: NOT READY", out.getvalue())

    def test_infer_on_an_unreachable_server_is_a_command_error(self):
        with override_settings(MODELD={"default": {"URL": self.dead_url, "RETRIES": 0}}):
            with self.assertRaisesMessage(CommandError, "linear: "):
                run("infer", "linear", "--json", "[[1, 2, 3]]")

    def test_unknown_alias_is_a_command_error_naming_the_aliases(self):
        with self.assertRaisesMessage(CommandError, "'nope' is not in settings.MODELD "
                                                    "(configured: 'default')"):
            run("status", "--using", "nope")
        with self.assertRaisesMessage(CommandError, "configured: 'default'"):
            run("infer", "linear", "--json", "[1]", "--using", "nope")

    def test_bad_json_is_a_command_error(self):
        with self.assertRaisesMessage(CommandError, "not valid JSON"):
            run("infer", "linear", "--json", "[1, 2")
        with self.assertRaisesMessage(CommandError, "JSON list"):
            run("infer", "linear", "--json", "3")

    def test_subcommand_is_required(self):
        with self.assertRaises(CommandError):
            run()

    def test_infer_goes_through_override_model(self):
        with override_model("linear", lambda x: x.sum(axis=1, keepdims=True)):
            out = run("infer", "linear", "--json", "[[1, 2, 3]]")
        self.assertEqual(json.loads(out), [[6]])


class LiveCommandTests(ModeldServerTestCase):
    def test_status_of_a_ready_server(self):
        out = run("status")
        self.assertIn(f"default  {self.grpc_url}  live: yes  ready: yes", out)
        self.assertIn(f"rest  {self.http_url}  live: yes  ready: yes", out)
        self.assertEqual(out.count("linear: ready"), 2)
        self.assertEqual(out.count("mlp: ready"), 2)

    def test_status_of_one_alias_with_a_missing_model(self):
        setting = {"default": {"URL": self.grpc_url, "MODELS": ["linear", "nope"]}}
        out = io.StringIO()
        with override_settings(MODELD=setting):
            with self.assertRaisesMessage(CommandError, "not ready: default/nope") as raised:
                call_command("modeld", "status", "--using", "default", stdout=out)
        self.assertEqual(raised.exception.returncode, 1)
        self.assertIn("live: yes  ready: yes", out.getvalue())
        self.assertIn("nope: NOT READY", out.getvalue())

    def test_infer_prints_the_prediction_as_json(self):
        with modeld.Client(self.grpc_url) as client:
            expected = client.predict("linear", [[1.0, 2.0, 3.0], [0.5, 0.25, -1.0]])
            expected_v1 = client.predict("linear", [[1.0, 2.0, 3.0]], version=1)
        out = run("infer", "linear", "--json", "[[1, 2, 3], [0.5, 0.25, -1]]")
        self.assertEqual(json.loads(out), expected.tolist())
        out = run("infer", "linear", "--json", "[[1, 2, 3]]", "--version", "1", "--using", "rest")
        self.assertEqual(json.loads(out), expected_v1.tolist())
        self.assertNotEqual(expected_v1.tolist(), expected[:1].tolist())

    def test_infer_with_named_inputs_prints_an_object(self):
        out = run("infer", "add_sub", "--json",
                  json.dumps({"INPUT0": list(range(16)), "INPUT1": [1] * 16}))
        result = json.loads(out)
        self.assertEqual(result["OUTPUT0"], [float(i + 1) for i in range(16)])
        self.assertEqual(result["OUTPUT1"], [float(i - 1) for i in range(16)])

    def test_infer_reads_stdin(self):
        out = run("infer", "linear", "--json", "-", stdin=io.StringIO("[[0, 0, 0]]"))
        self.assertEqual(json.loads(out), [[1.5]])

    def test_server_errors_are_command_errors_with_the_servers_message(self):
        with self.assertRaisesMessage(CommandError, "nope: ") as raised:
            run("infer", "nope", "--json", "[[1]]")
        self.assertIn("nope", str(raised.exception).split(": ", 1)[1])
        with self.assertRaisesMessage(CommandError, "linear: ") as raised:
            run("infer", "linear", "--json", "[[1, 2, 3, 4]]")
        self.assertIn("[1, 4]", str(raised.exception))


class LoadingServerCommandTests(LoadingServerTestCase):
    def test_status_of_a_loading_server(self):
        out = io.StringIO()
        with override_settings(MODELD={"default": {"URL": self.url, "MODELS": ["slow"]}}):
            with self.assertRaisesMessage(CommandError, "not ready: default, default/slow"):
                call_command("modeld", "status", stdout=out)
        self.assertIn("live: yes  ready: no", out.getvalue())
        self.assertIn("slow: NOT READY", out.getvalue())
