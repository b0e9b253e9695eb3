"""modeld.django.views.health: 200 when everything is ready, 503 with what is not."""

from django.test import SimpleTestCase, override_settings

from support import DeadServerMixin, LoadingServerTestCase, ModeldServerTestCase


class DeadServerHealthTests(DeadServerMixin, SimpleTestCase):
    def test_unreachable_server_is_503_with_what_is_not_ready(self):
        with override_settings(MODELD={"default": {"URL": self.dead_url, "RETRIES": 0,
                                                   "MODELS": ["linear", "mlp"]}}):
            response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        body = response.json()
        reasons = body.pop("reasons")
        self.assertEqual(body, {
            "ready": False,
            "servers": {"default": False},
            "models": {"default": {"linear": False, "mlp": False}},
            "not_ready": ["default", "default/linear", "default/mlp"],
        })
        # Why the server could not be asked; nothing about its models, which it was not.
        self.assertEqual(list(reasons), ["default"])
        self.assertTrue(reasons["default"].startswith("Unavailable: "), reasons)
        self.assertIn(self.dead_url.rpartition(":")[2], reasons["default"])  # the port
        self.assertIn("no-cache", response["Cache-Control"])

    def test_only_get_and_head(self):
        with override_settings(MODELD={"default": {"URL": self.dead_url, "RETRIES": 0}}):
            self.assertEqual(self.client.head("/healthz").status_code, 503)
            for method in ("post", "put", "delete", "patch"):
                with self.subTest(method):
                    response = getattr(self.client, method)("/healthz")
                    self.assertEqual(response.status_code, 405)
                    self.assertEqual(sorted(response["Allow"].split(", ")), ["GET", "HEAD"])


class LiveHealthTests(ModeldServerTestCase):
    def test_ready_server_and_models_are_200(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json(), {
            "ready": True,
            "servers": {"default": True, "rest": True},
            "models": {"default": {"linear": True, "mlp": True},
                       "rest": {"linear": True, "mlp": True}},
            "not_ready": [],
            "reasons": {},
        })
        self.assertEqual(self.client.head("/healthz").status_code, 200)

    def test_a_missing_model_is_503(self):
        setting = {"default": {"URL": self.grpc_url, "MODELS": ["linear", "nope"]}}
        with override_settings(MODELD=setting):
            response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        body = response.json()
        self.assertEqual(body["servers"], {"default": True})
        self.assertEqual(body["models"], {"default": {"linear": True, "nope": False}})
        self.assertEqual(body["not_ready"], ["default/nope"])
        self.assertEqual(body["reasons"], {"default/nope": "unknown model 'nope'"})

    def test_one_dead_alias_is_503(self):
        setting = {"default": {"URL": self.grpc_url, "MODELS": ["linear"]},
                   "other": {"URL": self.dead_url, "RETRIES": 0}}
        with override_settings(MODELD=setting):
            response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["not_ready"], ["other"])
        self.assertEqual(response.json()["servers"], {"default": True, "other": False})
        reasons = response.json()["reasons"]
        self.assertEqual(list(reasons), ["other"])  # the live alias has no reason to give
        self.assertIn("Unavailable", reasons["other"])


class LoadingServerHealthTests(LoadingServerTestCase):
    def test_live_but_not_ready_server_is_503(self):
        with override_settings(MODELD={"default": {"URL": self.url, "MODELS": ["slow"]}}):
            response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        body = response.json()
        reasons = body.pop("reasons")
        self.assertEqual(body, {
            "ready": False,
            "servers": {"default": False},
            "models": {"default": {"slow": False}},
            "not_ready": ["default", "default/slow"],
        })
        self.assertEqual(list(reasons), ["default/slow"])
        self.assertIn("'slow'", reasons["default/slow"])  # modeld's own words
