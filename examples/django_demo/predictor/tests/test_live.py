"""The page and the JSON API against a real modeld (examples/models): the demo shows what the
modeld client answers, exactly (float32 values survive the page's text and JSON)."""

import json
import re

import numpy as np

import modeld
from predictor.catalog import MODELS

from .support import ModeldServerTestCase

VALUES = re.compile(r'data-value="([^"]+)"')


class LiveTests(ModeldServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.modeld = modeld.Client(cls.url)
        cls.addClassCleanup(cls.modeld.close)
        rng = np.random.default_rng(11)
        cls.inputs = {
            "linear": np.array([0.5, -2.0, 4.25], dtype=np.float32),
            "mlp": rng.standard_normal(256).astype(np.float32),
        }

    def expected(self, name, x):
        return self.modeld.predict(name, np.asarray(x, dtype=np.float32)[None, :])[0]

    def test_page_shows_the_clients_answer(self):
        for name, x in self.inputs.items():
            with self.subTest(name):
                text = ", ".join(repr(float(v)) for v in x)
                response = self.client.post("/", {"model": name, "inputs": text})
                self.assertEqual(response.status_code, 200)
                shown = np.array(VALUES.findall(response.content.decode()), dtype=np.float32)
                expected = self.expected(name, x)
                self.assertEqual(shown.shape, expected.shape)
                np.testing.assert_array_equal(shown, expected)
        # linear's version 2: 2 * (0.5 * 0.5 - 1.25 * -2 + 2 * 4.25 + 0.75) = 24
        np.testing.assert_array_equal(self.expected("linear", self.inputs["linear"]), [24.0])

    def test_page_shows_mlps_class(self):
        x = self.inputs["mlp"]
        response = self.client.post("/", {"model": "mlp",
                                          "inputs": ", ".join(repr(float(v)) for v in x)})
        self.assertContains(response, f'id="argmax">{int(np.argmax(self.expected("mlp", x)))}<')

    def test_page_example_predicts(self):
        response = self.client.post("/", {"model": "mlp", "inputs": MODELS["mlp"].example_text})
        shown = np.array(VALUES.findall(response.content.decode()), dtype=np.float32)
        np.testing.assert_array_equal(shown, self.expected("mlp", MODELS["mlp"].example))

    def test_api_answers_the_clients_answer(self):
        for url in ("/api/predict/{}", "/api/apredict/{}"):
            for name, x in self.inputs.items():
                with self.subTest(url=url, model=name):
                    response = self.client.post(
                        url.format(name), json.dumps({"inputs": x.tolist()}),
                        content_type="application/json")
                    self.assertEqual(response.status_code, 200, response.content)
                    body = response.json()
                    self.assertEqual(body["model"], name)
                    outputs = np.array(body["outputs"], dtype=np.float32)
                    np.testing.assert_array_equal(outputs, self.expected(name, x))

    def test_api_batch(self):
        batch = np.stack([self.inputs["mlp"], -self.inputs["mlp"]])
        response = self.client.post("/api/predict/mlp", json.dumps({"inputs": batch.tolist()}),
                                    content_type="application/json")
        outputs = np.array(response.json()["outputs"], dtype=np.float32)
        np.testing.assert_array_equal(outputs, self.modeld.predict("mlp", batch))

    def test_api_errors_carry_the_servers_message(self):
        response = self.client.post("/api/predict/linear", {"inputs": [1, 2, 3, 4]},
                                    content_type="application/json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("[1, 4]", response.json()["error"])
        for url in ("/api/predict/nope", "/api/apredict/nope"):
            response = self.client.post(url, {"inputs": [1]}, content_type="application/json")
            self.assertEqual(response.status_code, 404, url)
            self.assertIn("nope", response.json()["error"])

    def test_healthz_is_200(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["models"],
                         {"default": {"linear": True, "mlp": True, "digits": True}})
