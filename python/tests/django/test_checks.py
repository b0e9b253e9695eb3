"""The MODELD setting: parsing, defaults and the system checks (modeld.E0xx, modeld.W0xx)."""

import tempfile
from io import StringIO
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings

from modeld.django import conf
from modeld.django.checks import check_servers, check_settings
from support import (
    BrokenModelServerTestCase,
    DeadServerMixin,
    LoadingServerTestCase,
    ModeldServerTestCase,
)


def ids(messages):
    return sorted(message.id for message in messages)


class LoadTests(SimpleTestCase):
    def test_defaults_fill_in(self):
        with override_settings(MODELD={"default": {"URL": "http://modeld.internal"}}):
            parsed = conf.load()
        self.assertEqual(list(parsed), ["default"])
        default = parsed["default"]
        self.assertEqual(default.url, "http://modeld.internal")
        self.assertEqual(default.timeout, conf.DEFAULT_TIMEOUT)
        self.assertEqual(default.retries, conf.DEFAULT_RETRIES)
        self.assertEqual(default.backoff, conf.DEFAULT_BACKOFF)
        self.assertEqual(default.models, ())

    def test_every_key(self):
        setting = {
            "default": {"URL": "grpc://10.0.0.1:8001", "TIMEOUT": 2, "RETRIES": 0,
                        "BACKOFF": 0.5, "MODELS": ["mlp", "linear"]},
            "fraud": {"URL": "grpc://10.0.0.2:9001", "MODELS": ("scorer",)},
        }
        with override_settings(MODELD=setting):
            parsed = conf.load()
        self.assertEqual(parsed["default"], conf.AliasSettings(
            "default", "grpc://10.0.0.1:8001", 2.0, 0, 0.5, ("mlp", "linear")))
        self.assertEqual(parsed["fraud"].models, ("scorer",))
        self.assertIsInstance(parsed["default"].timeout, float)

    def test_tls_and_token_keys_reach_the_client_arguments(self):
        setting = {"default": {"URL": "grpcs://10.0.0.1:8001", "TLS_CA": "/etc/ca.pem",
                               "TOKEN": "s3cret"}}
        with override_settings(MODELD=setting):
            parsed = conf.load()["default"]
        self.assertEqual(parsed.security_kwargs(), {"tls_ca": "/etc/ca.pem", "token": "s3cret"})
        self.assertNotIn("s3cret", repr(parsed))

    def test_no_setting_means_local_default(self):
        with override_settings():
            from django.conf import settings

            del settings.MODELD
            parsed = conf.load()
            self.assertEqual(check_settings(), [])
        self.assertEqual(parsed, {"default": conf.AliasSettings("default", conf.DEFAULT_URL)})
        self.assertEqual(conf.DEFAULT_URL, "grpc://127.0.0.1:8001")

    def test_malformed_setting_raises_improperly_configured(self):
        with override_settings(MODELD={"default": {"URL": "redis://x:1?queue=a", "TIMEOUT": -1}}):
            with self.assertRaisesMessage(ImproperlyConfigured, "modeld.E004"):
                conf.load()
            with self.assertRaisesMessage(ImproperlyConfigured, "modeld.E005"):
                conf.load()


class SettingsCheckTests(SimpleTestCase):
    """Each malformed setting is an Error with its own id; a sound one gives none."""

    CASES = [
        ("not a dict", ["grpc://127.0.0.1:8001"], ["modeld.E001"]),
        ("alias not a dict", {"default": "grpc://127.0.0.1:8001"}, ["modeld.E002"]),
        ("alias not a string", {"default": {"URL": "grpc://h:1"}, 3: {"URL": "grpc://h:1"}},
         ["modeld.E002"]),
        ("no URL", {"default": {"TIMEOUT": 1}}, ["modeld.E003"]),
        ("URL not a string", {"default": {"URL": 8001}}, ["modeld.E004"]),
        ("bad scheme", {"default": {"URL": "tcp://127.0.0.1:8001"}}, ["modeld.E004"]),
        ("redis: TLS", {"default": {"URL": "rediss://127.0.0.1:6379"}}, ["modeld.E004"]),
        ("redis: unknown option", {"default": {"URL": "redis://h?queue=jobs"}}, ["modeld.E004"]),
        ("redis: stream and list", {"default": {"URL": "redis://h?stream=a&list=b"}},
         ["modeld.E004"]),
        ("redis: db not a number", {"default": {"URL": "redis://h/jobs"}}, ["modeld.E004"]),
        ("redis: bad maxlen", {"default": {"URL": "redis://h?maxlen=lots"}}, ["modeld.E004"]),
        ("redis: no host", {"default": {"URL": "redis://:pw@:6379"}}, ["modeld.E004"]),
        ("amqp: no host", {"default": {"URL": "amqp://u:pw@:5672/"}}, ["modeld.E004"]),
        ("amqp: a '/' in the vhost", {"default": {"URL": "amqp://h/a/b"}}, ["modeld.E004"]),
        ("amqp: unknown option", {"default": {"URL": "amqp://h?stream=jobs"}}, ["modeld.E004"]),
        ("amqp: queue twice", {"default": {"URL": "amqp://h?queue=a&queue=b"}},
         ["modeld.E004"]),
        ("amqp: a reserved queue", {"default": {"URL": "amqps://h?queue=amq.x"}},
         ["modeld.E004"]),
        ("no scheme", {"default": {"URL": "127.0.0.1:8001"}}, ["modeld.E004"]),
        ("grpc with a path", {"default": {"URL": "grpc://127.0.0.1:1/v2"}}, ["modeld.E004"]),
        ("user in URL", {"default": {"URL": "http://me:pw@127.0.0.1:1"}}, ["modeld.E004"]),
        ("bad port", {"default": {"URL": "grpc://127.0.0.1:99999"}}, ["modeld.E004"]),
        ("no host", {"default": {"URL": "http://:8000"}}, ["modeld.E004"]),
        ("timeout zero", {"default": {"URL": "grpc://h:1", "TIMEOUT": 0}}, ["modeld.E005"]),
        ("timeout string", {"default": {"URL": "grpc://h:1", "TIMEOUT": "2"}}, ["modeld.E005"]),
        ("timeout bool", {"default": {"URL": "grpc://h:1", "TIMEOUT": True}}, ["modeld.E005"]),
        ("timeout inf", {"default": {"URL": "grpc://h:1", "TIMEOUT": float("inf")}},
         ["modeld.E005"]),
        ("timeout none", {"default": {"URL": "grpc://h:1", "TIMEOUT": None}}, ["modeld.E005"]),
        ("retries negative", {"default": {"URL": "grpc://h:1", "RETRIES": -1}}, ["modeld.E006"]),
        ("retries float", {"default": {"URL": "grpc://h:1", "RETRIES": 1.0}}, ["modeld.E006"]),
        ("models string", {"default": {"URL": "grpc://h:1", "MODELS": "mlp"}}, ["modeld.E007"]),
        ("models not strings", {"default": {"URL": "grpc://h:1", "MODELS": ["mlp", 3]}},
         ["modeld.E007"]),
        ("models empty name", {"default": {"URL": "grpc://h:1", "MODELS": [""]}},
         ["modeld.E007"]),
        ("unknown key", {"default": {"URL": "grpc://h:1", "TIMEOUTS": 1}}, ["modeld.E008"]),
        ("backoff negative", {"default": {"URL": "grpc://h:1", "BACKOFF": -0.1}},
         ["modeld.E009"]),
        ("no default alias", {"fraud": {"URL": "grpc://h:1"}}, ["modeld.E010"]),
        ("empty", {}, ["modeld.E010"]),
        ("several at once", {"default": {"URL": "ftp://h", "RETRIES": "3", "models": []}},
         ["modeld.E004", "modeld.E006", "modeld.E008"]),
        ("half a certificate pair", {"default": {"URL": "grpcs://h:1", "TLS_CERT": "c.pem"}},
         ["modeld.E011"]),
        ("empty token", {"default": {"URL": "grpc://h:1", "TOKEN": ""}}, ["modeld.E011"]),
        ("token with redis", {"default": {"URL": "redis://h:1/0", "TOKEN": "t"}},
         ["modeld.E011"]),
        ("token with amqp", {"default": {"URL": "amqps://h", "TOKEN": "t"}}, ["modeld.E011"]),
        ("TLS files with amqp:// rather than amqps://",
         {"default": {"URL": "amqp://h", "TLS_CA": "/etc/ca.pem"}}, ["modeld.E011"]),
        ("an API path in the URL", {"default": {"URL": "http://h:8000/v2"}}, ["modeld.E004"]),
        ("an API path after a prefix", {"default": {"URL": "https://h/modeld/v2/"}},
         ["modeld.E004"]),
    ]

    def test_each_malformed_setting_is_an_error(self):
        for name, setting, expected in self.CASES:
            with self.subTest(name), override_settings(MODELD=setting):
                messages = check_settings()
                self.assertEqual(ids(messages), expected, [m.msg for m in messages])
                self.assertTrue(all(m.is_serious() for m in messages))
                self.assertTrue(all(m.obj == "settings.MODELD" for m in messages))

    def test_sound_settings_pass(self):
        for setting in [
            {"default": {"URL": "grpc://127.0.0.1:8001"}},
            {"default": {"URL": "http://127.0.0.1:8000", "TIMEOUT": 0.5, "RETRIES": 0,
                         "BACKOFF": 0, "MODELS": []}},
            {"default": {"URL": "grpc://modeld.internal"}},
            {"default": {"URL": "http://modeld.internal/prefix/"},
             "fraud": {"URL": "grpc://[::1]:9001", "MODELS": ("a", "b")}},
            {"default": {"URL": "redis://127.0.0.1:6379/0"}},
            {"default": {"URL": "grpcs://modeld.internal:8001", "TLS_CA": "/etc/ca.pem",
                         "TLS_CERT": "/etc/web.pem", "TLS_KEY": "/etc/web.key", "TOKEN": "t"},
             "rest": {"URL": "https://modeld.internal", "TOKEN": "t"}},
            {"default": {"URL": "redis://:p%40ss@redis.internal/2?stream=jobs&maxlen=5000"},
             "batch": {"URL": "redis://app:pw@redis.internal?list=batch:jobs"}},
            {"default": {"URL": "amqp://web:s%40cret@rabbitmq:5672/ml?queue=modeld.requests"},
             "local": {"URL": "amqp://127.0.0.1"},
             "tls": {"URL": "amqps://web:pw@rabbitmq/%2f", "TLS_CA": "/etc/ca.pem",
                     "TLS_CERT": "/etc/web.pem", "TLS_KEY": "/etc/web.key"}},
        ]:
            with self.subTest(setting), override_settings(MODELD=setting):
                self.assertEqual(check_settings(), [])

    def test_a_redis_url_is_checked_by_the_clients_rules_and_hides_its_password(self):
        setting = {"default": {"URL": "redis://app:hunter2@h:6379/0?list=a&maxlen=9"}}
        with override_settings(MODELD=setting):
            (message,) = check_settings()
        self.assertEqual(message.id, "modeld.E004")
        self.assertIn("a list has no cap", message.msg)
        self.assertIn("redis://app:***@h:6379/0", message.msg)
        self.assertNotIn("hunter2", message.msg)
        self.assertIn("?stream=KEY | ?list=KEY", message.hint)

    def test_an_amqp_url_is_checked_by_the_clients_rules_and_hides_its_password(self):
        setting = {"default": {"URL": "amqp://app:hunter2@h:5672/prod?queue=a&tls_ca=x"}}
        with override_settings(MODELD=setting):
            (message,) = check_settings()
        self.assertEqual(message.id, "modeld.E004")
        self.assertIn("unknown option 'tls_ca'", message.msg)
        self.assertIn("amqp://app:***@h:5672/prod", message.msg)
        self.assertNotIn("hunter2", message.msg)
        self.assertIn("--amqp-queue", message.hint)
        with override_settings(MODELD={"default": {"URL": "amqp://app:hunter2@h",
                                                   "TLS_CA": "/etc/ca.pem"}}):
            (message,) = check_settings()
        self.assertEqual(message.id, "modeld.E011")
        self.assertIn("amqps://", message.hint)

    def test_amqp_urls_have_no_default_metrics_url(self):
        with override_settings(MODELD={"default": {"URL": "amqp://h?queue=q"}}):
            self.assertIsNone(conf.load()["default"].metrics_url)

    def test_unknown_key_hint_suggests_the_close_one(self):
        with override_settings(MODELD={"default": {"URL": "grpc://h:1", "TIMEOUTS": 1}}):
            (message,) = check_settings()
        self.assertIn("'TIMEOUT'", message.hint)
        self.assertIn("'TIMEOUTS'", message.msg)

    def test_manage_py_check_fails_on_a_malformed_setting(self):
        with override_settings(MODELD={"default": {"URL": "grpc://h:1", "RETRIES": -2}}):
            with self.assertRaisesMessage(SystemCheckError, "modeld.E006"):
                call_command("check", stdout=StringIO(), stderr=StringIO())

    def test_manage_py_check_passes_on_a_sound_setting(self):
        out = StringIO()
        call_command("check", stdout=out, stderr=StringIO())
        self.assertIn("no issues", out.getvalue())


class DeployCheckDeadServerTests(DeadServerMixin, SimpleTestCase):
    def test_unreachable_server_is_w001(self):
        with override_settings(MODELD={"default": {"URL": self.dead_url, "TIMEOUT": 5.0,
                                                   "MODELS": ["mlp"]}}):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W001"])
        self.assertIn(self.dead_url, messages[0].msg)
        self.assertFalse(messages[0].is_serious())

    def test_deploy_checks_are_only_run_with_deploy(self):
        with override_settings(MODELD={"default": {"URL": self.dead_url}}):
            out = StringIO()
            call_command("check", stdout=out, stderr=StringIO())
            self.assertNotIn("W001", out.getvalue())
            out, err = StringIO(), StringIO()
            call_command("check", deploy=True, tags=["modeld"], stdout=out, stderr=err)
            self.assertIn("modeld.W001", err.getvalue() + out.getvalue())

    def test_malformed_setting_skips_the_deploy_checks(self):
        with override_settings(MODELD={"default": {"URL": "tcp://nowhere"}}):
            self.assertEqual(check_servers(), [])


class HttpsAliasTests(SimpleTestCase):
    def test_an_https_alias_is_w005_for_async_views(self):
        with override_settings(MODELD={"default": {"URL": "https://127.0.0.1:1",
                                                   "TIMEOUT": 0.5}}):
            messages = check_servers()
        self.assertIn("modeld.W005", ids(messages))
        w005 = next(m for m in messages if m.id == "modeld.W005")
        self.assertIn("modeld.aio.Client does not speak", w005.msg)
        self.assertIn("grpcs://", w005.hint)


class DeployCheckLiveServerTests(ModeldServerTestCase):
    def test_ready_server_and_models_give_no_warning(self):
        self.assertEqual(check_servers(), [])

    def test_model_not_served_is_w003(self):
        setting = {"default": {"URL": self.grpc_url, "MODELS": ["linear", "no_such_model"]}}
        with override_settings(MODELD=setting):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W003"])
        self.assertIn("'no_such_model'", messages[0].msg)
        self.assertIn("unknown model 'no_such_model'", messages[0].msg)
        self.assertIn("modeld has no such model", messages[0].hint)
        self.assertNotIn("did you mean", messages[0].hint)  # nothing close to no_such_model

    def test_a_misspelt_model_gets_the_closest_name(self):
        for url in (self.grpc_url, self.http_url):
            with override_settings(MODELD={"default": {"URL": url, "MODELS": ["linaer"]}}):
                messages = check_servers()
            self.assertEqual(ids(messages), ["modeld.W003"])
            self.assertIn("did you mean 'linear'?", messages[0].hint)

    def test_each_alias_is_checked(self):
        setting = {"default": {"URL": self.grpc_url, "MODELS": ["mlp"]},
                   "down": {"URL": self.dead_url},
                   "rest": {"URL": self.http_url, "MODELS": ["missing"]}}
        with override_settings(MODELD=setting):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W001", "modeld.W003"])
        self.assertIn("'down'", messages[0].msg)
        self.assertIn("'rest'", messages[1].obj)


class DeployCheckSchemeAndFilesTests(ModeldServerTestCase):
    def test_http_url_on_the_grpc_port_says_to_use_grpc(self):
        setting = {"default": {"URL": self.grpc_url.replace("grpc://", "http://"),
                               "RETRIES": 0}}
        with override_settings(MODELD=setting):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W001"])
        self.assertIn("use a grpc:// URL", messages[0].hint)

    def test_grpc_url_on_the_http_port_says_to_use_http(self):
        setting = {"default": {"URL": self.http_url.replace("http://", "grpc://"),
                               "RETRIES": 0}}
        with override_settings(MODELD=setting):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W001"])
        self.assertIn("use an http:// URL", messages[0].hint)

    def test_tls_files_that_are_missing_or_no_pem_are_w004(self):
        with tempfile.TemporaryDirectory() as folder:
            not_pem = Path(folder) / "ca.crt"
            not_pem.write_text("not a certificate")
            setting = {"default": {"URL": self.grpc_url.replace("grpc://", "grpcs://"),
                                   "TLS_CA": str(not_pem),
                                   "TLS_CERT": str(Path(folder) / "missing.pem"),
                                   "TLS_KEY": str(not_pem)}}
            with override_settings(MODELD=setting):
                messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W004"] * 3)
        text = " ".join(m.msg for m in messages)
        self.assertIn("missing.pem' does not exist", text)
        self.assertIn("holds no PEM data", text)


class DeployCheckBrokenModelTests(BrokenModelServerTestCase):
    def test_a_model_that_failed_to_load_is_w003_with_the_servers_reason(self):
        setting = {"default": {"URL": self.url, "MODELS": ["linear", "broken"]}}
        with override_settings(MODELD=setting):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W003"])  # loading is over: the server is ready
        w003 = messages
        self.assertIn("'broken'", w003[0].msg)
        self.assertIn("model.onnx", w003[0].msg)  # the server's reason names the file
        self.assertIn("does not serve", w003[0].hint)
        self.assertNotIn("add it to the model repository", w003[0].hint)


class DeployCheckLoadingServerTests(LoadingServerTestCase):
    def test_server_not_ready_is_w002_and_its_loading_model_w003(self):
        with override_settings(MODELD={"default": {"URL": self.url, "MODELS": ["slow"]}}):
            messages = check_servers()
        self.assertEqual(ids(messages), ["modeld.W002", "modeld.W003"])
        self.assertIn("'slow'", messages[1].msg)
