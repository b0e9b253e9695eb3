"""The draw-a-digit canvas: POST /api/digits and the page's card, with a fake digits model (no
server), with modeld down, and against a real modeld serving examples/models/digits."""

import json
import re

import numpy as np
from django.test import Client, SimpleTestCase

import modeld
from modeld.django.testing import override_model
from predictor.catalog import DIGITS

from .support import EXAMPLE_MODELS, DeadServerTestCase, ModeldServerTestCase

URL = "/api/digits"
# A "1" as the data set has it (load_digits().images[1]).
ONE = [0, 0, 0, 12, 13, 5, 0, 0, 0, 0, 0, 11, 16, 9, 0, 0, 0, 0, 3, 15, 16, 6, 0, 0,
       0, 7, 15, 16, 16, 2, 0, 0, 0, 0, 1, 16, 16, 3, 0, 0, 0, 0, 1, 16, 16, 6, 0, 0,
       0, 0, 1, 16, 16, 6, 0, 0, 0, 0, 0, 11, 16, 10, 0, 0]


def fake_digits(x):
    """What modeld answers for digits, made up: the class is the image's ink modulo 10 (a
    label [N, 1], as modeld answers scikit-learn's label [N]), with probability 0.55."""
    label = (x.sum(axis=1).astype(np.int64) % 10)[:, None]
    probabilities = np.full((len(x), 10), 0.05, dtype=np.float32)
    probabilities[np.arange(len(x)), label[:, 0]] = 0.55
    return {"label": label, "probabilities": probabilities}


def post(client, body):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data, content_type="application/json")


class DigitsApiTests(SimpleTestCase):
    def test_contract(self):
        with override_model("digits", fake_digits) as fake:
            response = post(self.client, {"pixels": ONE})
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual(set(body), {"model", "label", "probabilities", "pid"})
        self.assertEqual(body["model"], "digits")
        self.assertEqual(body["label"], sum(ONE) % 10)
        self.assertIsInstance(body["label"], int)
        self.assertEqual(len(body["probabilities"]), 10)
        self.assertEqual(body["probabilities"][body["label"]], np.float32(0.55))
        self.assertIsInstance(body["pid"], int)
        # The model gets one float32 image of 64 pixels, exactly as sent.
        (x,) = fake.calls
        self.assertEqual((x.shape, x.dtype), ((1, 64), np.float32))
        np.testing.assert_array_equal(x, [ONE])

    def test_fractions_and_the_bounds_are_accepted(self):
        pixels = [0.5] * 62 + [0, 16]
        with override_model("digits", fake_digits) as fake:
            response = post(self.client, {"pixels": pixels})
        self.assertEqual(response.status_code, 200, response.content)
        np.testing.assert_array_equal(fake.calls[0], [pixels])

    def test_bad_payloads_are_refused_with_a_clear_error(self):
        cases = [
            ("not json", "BAD_JSON", "not JSON"),
            ('["pixels"]', "BAD_REQUEST", '"pixels"'),
            ('{"inputs": [1]}', "BAD_REQUEST", '"pixels"'),
            ('{"pixels": 3}', "BAD_INPUT", "not int"),
            ('{"pixels": "0, 1, 2"}', "BAD_INPUT", "not str"),
            ('{"pixels": []}', "BAD_INPUT", "64 numbers (an 8x8 image, row by row), not 0"),
            (json.dumps({"pixels": ONE[:63]}), "BAD_INPUT", "64 numbers"),
            (json.dumps({"pixels": ONE + [0]}), "BAD_INPUT", "not 65"),
            (json.dumps({"pixels": [ONE]}), "BAD_INPUT", "row by row), not 1"),
            (json.dumps({"pixels": ["7"] + ONE[1:]}), "BAD_INPUT",
             "pixel 0, '7', is not a finite number"),
            (json.dumps({"pixels": ONE[:5] + [None] + ONE[6:]}), "BAD_INPUT",
             "pixel 5, None, is not a finite number"),
            (json.dumps({"pixels": ONE[:5] + [True] + ONE[6:]}), "BAD_INPUT",
             "pixel 5, True, is not a finite number"),
            (json.dumps({"pixels": ONE[:5] + [[1]] + ONE[6:]}), "BAD_INPUT",
             "pixel 5, [1], is not a finite number"),
            ('{"pixels": [NaN' + ", 0" * 63 + "]}", "BAD_INPUT", "pixel 0, nan"),
            ('{"pixels": [1e999' + ", 0" * 63 + "]}", "BAD_INPUT", "pixel 0, inf"),
            (json.dumps({"pixels": [0] * 63 + [17]}), "BAD_INPUT",
             "pixel 63, 17, is outside 0..16"),
            (json.dumps({"pixels": [-1] + [0] * 63}), "BAD_INPUT",
             "pixel 0, -1, is outside 0..16"),
        ]
        with override_model("digits", fake_digits) as fake:
            for body, code, message in cases:
                with self.subTest(body=body[:60]):
                    response = post(self.client, body)
                    self.assertEqual(response.status_code, 400)
                    self.assertEqual(response.json()["code"], code)
                    self.assertIn(message, response.json()["error"])
        self.assertEqual(fake.calls, [])

    def test_only_post(self):
        response = self.client.get(URL)
        self.assertEqual(response.status_code, 405)
        self.assertEqual(response["Allow"], "POST")
        self.assertEqual(response.json()["code"], "METHOD_NOT_ALLOWED")

    def test_needs_no_csrf_token(self):
        with override_model("digits", fake_digits):
            response = post(Client(enforce_csrf_checks=True), {"pixels": ONE})
        self.assertEqual(response.status_code, 200)

    def test_modeld_errors_map_to_statuses(self):
        cases = [
            (modeld.Unavailable("connection refused"), 503, "UNAVAILABLE"),
            (modeld.ServerBusy("queue full"), 503, "RESOURCE_EXHAUSTED"),
            (modeld.DeadlineExceeded("the timeout of 5s has passed"), 504, "DEADLINE_EXCEEDED"),
            (modeld.ModelNotFound("unknown model 'digits'"), 404, "NOT_FOUND"),
            (modeld.ModeldError("odd", "INTERNAL"), 502, "INTERNAL"),
        ]
        for error, status, code in cases:
            def fail(x, error=error):
                raise error

            with self.subTest(error), override_model("digits", fail):
                response = post(self.client, {"pixels": ONE})
                self.assertEqual(response.status_code, status)
                self.assertEqual(response.json(), {"error": error.message, "code": code})

    def test_an_unexpected_answer_is_502(self):
        cases = [
            lambda x: {"label": [[1]]},
            lambda x: {"label": [[1]], "probabilities": np.zeros((1, 9), np.float32)},
            lambda x: {"label": [[1], [2]], "probabilities": np.zeros((1, 10), np.float32)},
        ]
        for fn in cases:
            with self.subTest(fn), override_model("digits", fn):
                response = post(self.client, {"pixels": ONE})
                self.assertEqual(response.status_code, 502)
                self.assertEqual(response.json()["code"], "BAD_ANSWER")


class DigitsPageTests(SimpleTestCase):
    def test_the_page_has_the_canvas_and_its_script(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        for fragment in ['id="digit-card" data-url="/api/digits"', 'data-side="8"',
                         'data-maximum="16"', '<canvas id="digit-canvas"',
                         '<canvas id="digit-preview"', 'id="digit-predict"', 'id="digit-clear"',
                         'id="digit-error" role="alert" hidden', 'id="digit-result" hidden',
                         'id="digit-probabilities"', '"pointerdown"', '"touchstart"',
                         "JSON.stringify({pixels: pixels})"]:
            self.assertContains(response, fragment)
        # Nothing is fetched from elsewhere: no script, style sheet or image by URL.
        self.assertIsNone(re.search(r"<(script|img|link)[^>]*(src|href)=",
                                    response.content.decode()))
        self.assertEqual(DIGITS.size, 64)


class DigitsDeadServerTests(DeadServerTestCase):
    def test_unavailable_is_503_with_a_message(self):
        response = post(self.client, {"pixels": ONE})
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["code"], "UNAVAILABLE")
        self.assertTrue(response.json()["error"])
        self.assertEqual(response["Retry-After"], "1")


class DigitsLiveTests(ModeldServerTestCase):
    """Against modeld on examples/models: the answer is the client's, and it reads digits."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.modeld = modeld.Client(cls.url)
        cls.addClassCleanup(cls.modeld.close)

    def test_the_answer_is_the_clients(self):
        reference = EXAMPLE_MODELS / "digits" / "reference"
        images = np.load(reference / "input.npy")
        labels = np.load(reference / "label.npy")
        for image, label in zip(images, labels):
            with self.subTest(label=int(label)):
                response = post(self.client, {"pixels": image.tolist()})
                self.assertEqual(response.status_code, 200, response.content)
                body = response.json()
                expected = self.modeld.infer("digits", {"pixels": image[None, :]})
                self.assertEqual(body["label"], int(expected["label"].reshape(-1)[0]))
                self.assertEqual(body["label"], int(label))
                np.testing.assert_array_equal(np.array(body["probabilities"], np.float32),
                                              expected["probabilities"][0])
                self.assertAlmostEqual(sum(body["probabilities"]), 1.0, places=5)
                self.assertEqual(body["label"], int(np.argmax(body["probabilities"])))

    def test_a_one_is_a_one(self):
        response = post(self.client, {"pixels": ONE})
        self.assertEqual(response.json()["label"], 1)

    def test_healthz_counts_digits(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertIs(response.json()["models"]["default"]["digits"], True)
