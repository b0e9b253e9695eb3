"""modeld.django.views.status: the staff-only status page, METRICS_URL (modeld.E012), and how
the page reads modeld's /metrics."""

from __future__ import annotations

import numpy as np
from django.contrib.auth import get_user_model
from django.test import SimpleTestCase, override_settings

import modeld
from modeld.django import clients, conf
from modeld.django.checks import check_settings
from modeld.django.overview import EXPECTED, SERVER, overview, traffic
from modeld._prometheus import parse
from support import BrokenModelServerTestCase, DeadServerMixin, reserve_dead_port

STATUS = "/modeld/status"


def user(name: str, *, staff: bool, active: bool = True):
    """A user of the in-memory database (kept for the whole run: made once)."""
    users = get_user_model()
    found = users.objects.filter(username=name).first()
    return found or users.objects.create_user(name, password="pw", is_staff=staff,
                                              is_active=active)


class AccessTests(DeadServerMixin, SimpleTestCase):
    databases = {"default"}

    def setUp(self):
        self.enterContext(override_settings(MODELD={
            "default": {"URL": self.dead_url, "RETRIES": 0, "TIMEOUT": 2.0}}))

    def test_anonymous_users_are_sent_to_log_in(self):
        response = self.client.get(STATUS)
        self.assertEqual(response.status_code, 302)
        # No admin in these settings: LOGIN_URL, coming back here afterwards.
        self.assertEqual(response["Location"], "/accounts/login/?next=/modeld/status")

    def test_users_who_are_not_staff_are_refused(self):
        self.client.force_login(user("visitor", staff=False))
        self.assertEqual(self.client.get(STATUS).status_code, 403)

    def test_staff_get_the_page_and_nothing_caches_it(self):
        self.client.force_login(user("staff", staff=True))
        response = self.client.get(STATUS)
        self.assertEqual(response.status_code, 200)
        self.assertTemplateUsed(response, "modeld/status.html")
        self.assertIn("no-cache", response["Cache-Control"])
        self.assertEqual(self.client.post(STATUS).status_code, 405)

    @override_settings(MIDDLEWARE=[])
    def test_without_authentication_middleware_everyone_is_refused(self):
        self.assertEqual(self.client.get(STATUS).status_code, 403)


class DeadServerTests(DeadServerMixin, SimpleTestCase):
    databases = {"default"}

    def setUp(self):
        self.client.force_login(user("staff", staff=True))

    def test_a_server_that_is_down_is_shown_unreachable(self):
        sock, port = reserve_dead_port()
        self.addCleanup(sock.close)
        setting = {
            "default": {"URL": self.dead_url, "RETRIES": 0, "MODELS": ["linear"]},
            "rest": {"URL": f"http://127.0.0.1:{port}", "RETRIES": 0},
        }
        with override_settings(MODELD=setting):
            response = self.client.get(STATUS)
        self.assertEqual(response.status_code, 200)
        default, rest = response.context["aliases"]
        self.assertFalse(default.live)
        self.assertIn("Unavailable", default.error)
        self.assertEqual([(r.name, r.state) for r in default.rows], [("linear", "NOT ASKED")])
        self.assertIsNone(default.metrics_url)  # grpc://: not derivable
        self.assertIn("Unavailable", rest.error)
        self.assertEqual(rest.metrics_url, f"http://127.0.0.1:{port}/metrics")
        self.assertIn("Connection refused", rest.metrics_error)
        self.assertContains(response, "Unreachable: Unavailable")
        self.assertContains(response, "Metrics not configured")
        self.assertContains(response, f"Metrics at http://127.0.0.1:{port}/metrics could not be read")


class LiveStatusPageTests(BrokenModelServerTestCase):
    """modeld on linear (versions 1 and 2) and broken (fails to load), default model control
    (modeld serves its repository index in every mode)."""

    databases = {"default"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.http_url = f"http://{cls.server.http_address}"
        cls.metrics_url = f"{cls.http_url}/metrics"

    def setUp(self):
        self.client.force_login(user("staff", staff=True))

    def page(self, setting):
        with override_settings(MODELD=setting):
            response = self.client.get(STATUS)
        self.assertEqual(response.status_code, 200)
        return response, {a.alias: a for a in response.context["aliases"]}

    def rows(self, alias):
        return {(r.name, r.version): r for r in alias.rows}

    def test_staff_see_every_model_with_its_state_reason_and_traffic(self):
        with modeld.Client(self.url) as client:  # traffic for the metrics: 3 ok, 1 refused
            for _ in range(3):
                client.predict("linear", [[1.0, 2.0, 3.0]])
            with self.assertRaises(modeld.InvalidInput):
                client.infer("linear", {"x": np.zeros((1, 4), np.float32)})
        response, aliases = self.page({
            "default": {"URL": self.url, "METRICS_URL": self.metrics_url,
                        "MODELS": ["linear", "broken", "nope"]},
            "rest": {"URL": self.http_url, "MODELS": ["linear"]},
        })
        grpc, rest = aliases["default"], aliases["rest"]
        for alias in (grpc, rest):
            self.assertTrue(alias.live and alias.ready)
            self.assertIsNone(alias.error)
            self.assertTrue(alias.metrics_read, alias.metrics_error)
            # Both list the server's models from its repository index.
            self.assertEqual((alias.listing, alias.listing_error), (SERVER, None))
        self.assertNotContains(response, "No list of models")

        rows = self.rows(grpc)
        self.assertEqual(sorted(rows), [("broken", "1"), ("linear", "1"), ("linear", "2"),
                                        ("nope", None)])
        self.assertEqual((rows["linear", "2"].state, rows["linear", "2"].expected),
                         ("READY", True))
        broken = rows["broken", "1"]
        self.assertEqual((broken.state, broken.ready, broken.expected),
                         ("UNAVAILABLE", False, True))
        self.assertIn("model.onnx", broken.reason)
        self.assertEqual((rows["nope", None].state, rows["nope", None].reason),
                         ("UNKNOWN", "unknown model 'nope'"))
        self.assertEqual(sorted(self.rows(rest)), [("broken", "1"), ("linear", "1"),
                                                   ("linear", "2")])
        self.assertFalse(self.rows(rest)["broken", "1"].expected)

        # Totals since modeld started: the refused request is an error of version 2.
        latest = rows["linear", "2"].traffic
        self.assertEqual((latest.requests, latest.errors), (4, 1))
        self.assertEqual(latest.error_outcomes, {"invalid_argument": 1})
        self.assertEqual(latest.error_ratio, 0.25)
        self.assertGreater(latest.mean_s, 0)
        self.assertLessEqual(latest.p50_s, latest.p99_s)
        self.assertEqual(rows["linear", "1"].traffic.requests, 0)
        self.assertIsNotNone(rows["broken", "1"].traffic)
        self.assertIsNone(rows["nope", None].traffic)

        self.assertContains(response, 'data-model="broken" data-version="1" '
                                      'data-state="UNAVAILABLE" data-expected="true"')
        self.assertContains(response, "Protobuf parsing failed")  # the server's reason
        self.assertContains(response, "unknown model &#x27;nope&#x27;")
        self.assertContains(response, "totals since modeld started")
        self.assertNotContains(response, "Metrics not configured")

    def test_without_metrics_a_grpc_alias_still_lists_the_servers_models(self):
        _, aliases = self.page({"default": {"URL": self.url, "MODELS": ["broken", "linear"]}})
        alias = aliases["default"]
        self.assertEqual(alias.listing, SERVER)
        self.assertIsNone(alias.metrics_url)
        self.assertEqual([(r.name, r.version, r.state) for r in alias.rows],
                         [("broken", "1", "UNAVAILABLE"), ("linear", "1", "READY"),
                          ("linear", "2", "READY")])
        self.assertTrue(all(r.traffic is None for r in alias.rows))

    def test_metrics_url_none_turns_an_http_aliases_metrics_off(self):
        response, aliases = self.page({"default": {"URL": self.http_url, "METRICS_URL": None}})
        self.assertIsNone(aliases["default"].metrics_url)
        self.assertEqual(aliases["default"].listing, SERVER)
        self.assertEqual(len(aliases["default"].rows), 3)  # broken 1, linear 1 and 2
        self.assertContains(response, "Metrics not configured")

    def test_a_password_never_shows(self):
        sock, port = reserve_dead_port()
        self.addCleanup(sock.close)
        response, _ = self.page({
            "default": {"URL": self.url},
            "queue": {"URL": f"redis://:hunter2@127.0.0.1:{port}/0", "RETRIES": 0},
        })
        self.assertContains(response, "redis://:***@127.0.0.1")
        self.assertNotContains(response, "hunter2")


class MetricsUrlSettingTests(SimpleTestCase):
    def load(self, options):
        with override_settings(MODELD={"default": options}):
            return conf.load()["default"].metrics_url

    def test_default_is_the_http_urls_metrics_and_none_for_grpc_and_redis(self):
        self.assertEqual(self.load({"URL": "http://h:8000"}), "http://h:8000/metrics")
        self.assertEqual(self.load({"URL": "https://h/modeld/"}), "https://h/modeld/metrics")
        self.assertIsNone(self.load({"URL": "grpc://h:8001"}))
        self.assertIsNone(self.load({"URL": "redis://h:6379/0"}))

    def test_given_or_turned_off(self):
        self.assertEqual(self.load({"URL": "grpc://h:8001", "METRICS_URL": "http://h:8000/metrics"}),
                         "http://h:8000/metrics")
        self.assertIsNone(self.load({"URL": "http://h:8000", "METRICS_URL": None}))

    def test_a_malformed_metrics_url_is_e012(self):
        for value in ("", 8000, "h:8000/metrics", "ftp://h/metrics", "http:///metrics",
                      "http://h:99999/metrics", "http://user:secret@h:8000/metrics"):
            with self.subTest(value=value), override_settings(
                    MODELD={"default": {"URL": "grpc://h:8001", "METRICS_URL": value}}):
                messages = check_settings()
                self.assertEqual([m.id for m in messages], ["modeld.E012"])
                self.assertNotIn("secret", messages[0].msg)


class MetricsReadingTests(SimpleTestCase):
    TEXT = """\
modeld_requests_total{model="m",version="1",outcome="ok"} 6
modeld_requests_total{model="m",version="1",outcome="resource_exhausted"} 2
modeld_requests_total{model="",version="",outcome="not_found"} 5
modeld_request_duration_seconds_bucket{model="m",version="1",le="0.001"} 4
modeld_request_duration_seconds_bucket{model="m",version="1",le="0.002"} 8
modeld_request_duration_seconds_bucket{model="m",version="1",le="+Inf"} 8
modeld_request_duration_seconds_sum{model="m",version="1"} 0.01
modeld_request_duration_seconds_count{model="m",version="1"} 8
modeld_request_duration_seconds_count{model="m",version="2"} 0
modeld_model_state{model="m",version="10",state="ready"} 1
modeld_model_state{model="m",version="2",state="ready"} 1
modeld_model_state{model="bad",version="",state="failed"} 1
"""

    def test_traffic_per_version(self):
        counted = traffic(parse(self.TEXT))
        one = counted["m", "1"]
        self.assertEqual((one.requests, one.errors, one.error_ratio), (8, 2, 0.25))
        self.assertEqual(one.error_outcomes, {"resource_exhausted": 2})
        self.assertAlmostEqual(one.mean_s, 0.00125)
        self.assertAlmostEqual(one.p50_s, 0.001)
        self.assertAlmostEqual(one.p99_s, 0.00198)
        self.assertAlmostEqual(one.mean_ms, 1.25)
        self.assertEqual(one.error_percent, 25.0)
        two = counted["m", "2"]
        self.assertEqual((two.requests, two.mean_s, two.error_ratio), (0, None, None))
        self.assertEqual(counted["", ""].error_outcomes, {"not_found": 5})



class QueueAliasListingTests(SimpleTestCase):
    """An alias whose server gives no list of models (a redis:// or amqp:// alias: models()
    raises UNIMPLEMENTED) lists the models of its MODELS, each asked for its status, and says
    why. (test_redis.py shows the page of a real Redis alias.)"""

    class Queue:
        """The modeld client of a queue alias, as the page asks it."""

        def live(self):
            return True

        def ready(self):
            return True

        def models(self):
            raise modeld.ModeldError("the list of models is not carried by modeld's Redis "
                                     "queue", "UNIMPLEMENTED")

        def model_status(self, name):
            return modeld.ModelStatus(name, "1", True, "READY")

    def test_the_models_of_MODELS_are_listed(self):
        with override_settings(MODELD={"default": {"URL": "redis://127.0.0.1:1/0",
                                                   "MODELS": ["linear", "mlp"]}}):
            alias = clients["default"]
            alias._client = self.Queue()
            try:
                result = overview(alias)
            finally:
                alias._client = None
        self.assertEqual((result.listing, result.listing_error),
                         (EXPECTED, "modeld's Redis and AMQP queues carry no list of models"))
        self.assertEqual([(r.name, r.state, r.expected) for r in result.rows],
                         [("linear", "READY", True), ("mlp", "READY", True)])
