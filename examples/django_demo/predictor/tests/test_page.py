"""The page and the JSON API with modeld.django.testing.override_model: no server needed."""

import asyncio
import json
import re

import numpy as np
from django.test import Client, SimpleTestCase
from django.utils.html import escape

import modeld
from modeld.django.testing import override_model
from predictor.catalog import MODELS

from .support import DeadServerTestCase

VALUES = re.compile(r'data-value="([^"]+)"')


def shown_values(response):
    return VALUES.findall(response.content.decode())


def linear_v2(x):
    """What modeld's linear (version 2) computes, for the fakes: 2 * (x @ W + b)."""
    return 2 * (x @ np.array([[0.5], [-1.25], [2.0]], dtype=np.float32) + 0.75)


def fake_mlp(x):
    return np.arange(10, dtype=np.float32)[None, :] * x.sum(axis=1, keepdims=True)


class PageFormTests(SimpleTestCase):
    def test_form_shows_both_models_their_counts_and_a_prefilled_example(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, '<option value="linear" selected>')
        self.assertContains(response, '<option value="mlp">')
        self.assertContains(response, 'takes <span class="count">3</span> numbers')
        self.assertContains(response, 'takes <span class="count">256</span> numbers')
        self.assertContains(response, ">\n1, 2, 3</textarea>")
        self.assertContains(response, "csrfmiddlewaretoken")
        self.assertNotContains(response, 'id="prediction"')

    def test_model_parameter_preselects_and_prefills(self):
        response = self.client.get("/?model=mlp")
        self.assertContains(response, '<option value="mlp" selected>')
        self.assertContains(response, MODELS["mlp"].example_text + "</textarea>")
        self.assertEqual(len(MODELS["mlp"].example), 256)
        response = self.client.get("/?model=nope")
        self.assertContains(response, '<option value="linear" selected>')

    def test_example_texts_are_valid_inputs(self):
        for model in MODELS.values():
            with self.subTest(model.name), override_model(model.name, lambda x: x[:, :1]):
                response = self.client.post("/", {"model": model.name,
                                                  "inputs": model.example_text})
                self.assertEqual(shown_values(response), [f"{model.example[0]:g}"])


class PagePredictionTests(SimpleTestCase):
    @override_model("linear", linear_v2)
    def test_linear_prediction_is_shown(self):
        with override_model("linear", linear_v2) as fake:
            response = self.client.post("/", {"model": "linear", "inputs": "1, 2, 3"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'id="prediction" data-model="linear"')
        self.assertEqual(shown_values(response), ["9.5"])
        (x,) = fake.calls
        self.assertEqual(x.shape, (1, 3))
        self.assertEqual(x.dtype, np.float32)
        np.testing.assert_array_equal(x, [[1, 2, 3]])

    def test_separators_may_be_commas_and_white_space(self):
        with override_model("linear", linear_v2) as fake:
            self.client.post("/", {"model": "linear", "inputs": " 1,2\n3.5e0 "})
        np.testing.assert_array_equal(fake.calls[0], [[1, 2, 3.5]])

    def test_mlp_shows_ten_logits_and_the_class(self):
        with override_model("mlp", fake_mlp):
            response = self.client.post("/", {"model": "mlp", "inputs": ", ".join(["1"] * 256)})
        self.assertEqual(shown_values(response), [str(256 * i) for i in range(10)])
        self.assertContains(response, 'id="argmax">9</strong>')

    def test_bad_inputs_show_an_error_and_never_reach_the_model(self):
        cases = [
            ({"model": "linear", "inputs": "1, 2, 3, 4"}, "linear takes 3 numbers; you entered 4."),
            ({"model": "linear", "inputs": "1, 2"}, "linear takes 3 numbers; you entered 2."),
            ({"model": "mlp", "inputs": "1, 2, 3"}, "mlp takes 256 numbers; you entered 3."),
            ({"model": "linear", "inputs": "1, two, 3"},
             escape("Number 2, 'two', is not a number.")),
            ({"model": "linear", "inputs": "1, nan, 3"}, escape("Number 2, 'nan', is not finite.")),
            ({"model": "linear", "inputs": " , "}, "Enter the input numbers"),
            ({"model": "linear", "inputs": ""}, "This field is required."),
            ({"model": "cnn", "inputs": "1"}, "Select a valid choice."),
        ]
        with override_model("linear", linear_v2) as fake, override_model("mlp", fake_mlp):
            for data, message in cases:
                with self.subTest(data):
                    response = self.client.post("/", data)
                    self.assertEqual(response.status_code, 200)
                    self.assertContains(response, 'id="form-errors"')
                    self.assertContains(response, message)
                    self.assertNotContains(response, 'id="prediction"')
        self.assertEqual(fake.calls, [])

    def test_modeld_errors_are_shown_with_their_status_never_a_500(self):
        cases = [
            (modeld.Unavailable("connection refused"), 503),
            (modeld.ServerBusy("queue full"), 503),
            (modeld.DeadlineExceeded("took too long"), 504),
            (modeld.InvalidInput("wrong shape"), 400),
            (modeld.ModelNotFound("unknown model 'linear'"), 404),
            (modeld.ModeldError("strange", "INTERNAL"), 502),
        ]
        for error, status in cases:
            def fail(x, error=error):
                raise error

            with self.subTest(error), override_model("linear", fail):
                response = self.client.post("/", {"model": "linear", "inputs": "1, 2, 3"})
                self.assertEqual(response.status_code, status)
                self.assertContains(response, escape(f"modeld could not answer: {error.message}"),
                                    status_code=status)
                self.assertNotContains(response, 'id="prediction"', status_code=status)

    def test_csrf_is_enforced_on_the_form(self):
        client = Client(enforce_csrf_checks=True)
        response = client.post("/", {"model": "linear", "inputs": "1, 2, 3"})
        self.assertEqual(response.status_code, 403)

    def test_other_methods_are_405(self):
        self.assertEqual(self.client.put("/").status_code, 405)


class ApiTests(SimpleTestCase):
    """/api/predict and /api/apredict answer alike."""

    URLS = ["/api/predict/{}", "/api/apredict/{}"]

    def post(self, url, body):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(url, data, content_type="application/json")

    def test_one_row_and_a_batch(self):
        for url in self.URLS:
            with self.subTest(url), override_model("linear", linear_v2) as fake:
                response = self.post(url.format("linear"), {"inputs": [1, 2, 3]})
                self.assertEqual(response.status_code, 200)
                body = response.json()
                self.assertEqual(body["model"], "linear")
                self.assertEqual(body["outputs"], [9.5])
                self.assertIsInstance(body["pid"], int)
                response = self.post(url.format("linear"), {"inputs": [[1, 2, 3], [0, 0, 0]]})
                self.assertEqual(response.json()["outputs"], [[9.5], [1.5]])
                self.assertEqual([x.shape for x in fake.calls], [(1, 3), (2, 3)])
                self.assertEqual({x.dtype for x in fake.calls}, {np.dtype(np.float32)})

    def test_async_endpoint_awaits_an_async_fn(self):
        async def fn(x):
            await asyncio.sleep(0)
            return x * 10

        with override_model("mlp", fn):
            response = self.post("/api/apredict/mlp", {"inputs": [0.5, 1.5]})
        self.assertEqual(response.json()["outputs"], [5.0, 15.0])

    def test_bad_requests_are_json_400(self):
        cases = [
            ("not json", "BAD_JSON"),
            ('["inputs"]', "BAD_REQUEST"),
            ('{"input": [1]}', "BAD_REQUEST"),
            ('{"inputs": []}', "BAD_INPUT"),
            ('{"inputs": 3}', "BAD_INPUT"),
            ('{"inputs": ["1", 2, 3]}', "BAD_INPUT"),
            ('{"inputs": [true, 2, 3]}', "BAD_INPUT"),
            ('{"inputs": [[1, 2], [3]]}', "BAD_INPUT"),
            ('{"inputs": [[1, 2], 3]}', "BAD_INPUT"),
            ('{"inputs": [[]]}', "BAD_INPUT"),
            ('{"inputs": [1e999]}', "BAD_INPUT"),
            ('{"inputs": [NaN]}', "BAD_INPUT"),
        ]
        with override_model("linear", linear_v2) as fake:
            for url in self.URLS:
                for body, code in cases:
                    with self.subTest(url=url, body=body):
                        response = self.post(url.format("linear"), body)
                        self.assertEqual(response.status_code, 400)
                        self.assertEqual(response.json()["code"], code)
                        self.assertTrue(response.json()["error"])
        self.assertEqual(fake.calls, [])

    def test_modeld_errors_map_to_statuses(self):
        cases = [
            (modeld.InvalidInput("input 'x' has shape [1, 4]"), 400, "INVALID_ARGUMENT"),
            (modeld.ModelNotFound("unknown model 'linear'"), 404, "NOT_FOUND"),
            (modeld.ServerBusy("queue full"), 503, "RESOURCE_EXHAUSTED"),
            (modeld.Unavailable("connection refused"), 503, "UNAVAILABLE"),
            (modeld.DeadlineExceeded("the timeout of 5s has passed"), 504, "DEADLINE_EXCEEDED"),
            # Failed to load: no 503, which a load balancer would retry forever.
            (modeld.ModelNotReady("model 'linear' is not ready and is not loading, so "
                                  "retrying will not help: cannot load model.pt",
                                  "UNAVAILABLE"), 502, "UNAVAILABLE"),
            (modeld.ModeldError("odd", "INTERNAL"), 502, "INTERNAL"),
        ]
        for url in self.URLS:
            for error, status, code in cases:
                def fail(x, error=error):
                    raise error

                with self.subTest(url=url, error=error), override_model("linear", fail):
                    response = self.post(url.format("linear"), {"inputs": [1, 2, 3]})
                    self.assertEqual(response.status_code, status)
                    self.assertEqual(response.json(), {"error": error.message, "code": code})
                    self.assertEqual(response.get("Retry-After"), "1" if status == 503 else None)

    def test_only_post(self):
        for url in self.URLS:
            with self.subTest(url):
                response = self.client.get(url.format("linear"))
                self.assertEqual(response.status_code, 405)
                self.assertEqual(response["Allow"], "POST")
                self.assertEqual(response.json()["code"], "METHOD_NOT_ALLOWED")

    def test_api_needs_no_csrf_token(self):
        client = Client(enforce_csrf_checks=True)
        with override_model("linear", linear_v2):
            for url in self.URLS:
                response = client.post(url.format("linear"), {"inputs": [1, 2, 3]},
                                       content_type="application/json")
                self.assertEqual(response.status_code, 200, url)


class DeadServerTests(DeadServerTestCase):
    """With modeld down: the page and the API say so (503), and /healthz is 503."""

    def test_page_shows_unavailable(self):
        response = self.client.post("/", {"model": "linear", "inputs": "1, 2, 3"})
        self.assertEqual(response.status_code, 503)
        self.assertContains(response, "modeld could not answer", status_code=503)

    def test_api_is_503(self):
        for url in ("/api/predict/linear", "/api/apredict/linear"):
            with self.subTest(url):
                response = self.client.post(url, {"inputs": [1, 2, 3]},
                                            content_type="application/json")
                self.assertEqual(response.status_code, 503)
                self.assertEqual(response.json()["code"], "UNAVAILABLE")

    def test_healthz_is_503(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["not_ready"],
                         ["default", "default/linear", "default/mlp", "default/digits"])

    def test_an_overridden_model_still_answers(self):
        with override_model("linear", linear_v2):
            response = self.client.post("/api/predict/linear", {"inputs": [1, 2, 3]},
                                        content_type="application/json")
        self.assertEqual(response.json()["outputs"], [9.5])
