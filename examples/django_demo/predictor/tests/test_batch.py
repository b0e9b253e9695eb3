"""The batch page without modeld: the form's checks, what it sends to a real Redis broker
(read back from the list modeld would consume), and its answers when the broker or the result
backend is unreachable. test_batch_live.py runs batches through a real modeld."""

import base64
import json
import time

import numpy as np
from django.core import signing
from django.test import SimpleTestCase

from predictor.batch import MAX_CHUNKS, SALT, Job, generate_rows

from .celery_support import dead_url, start_redis, use_celery


def generate(model="linear", rows=10, seed=0, chunk_size=4, **extra):
    return {"model": model, "source": "generate", "rows": rows, "seed": seed,
            "chunk_size": chunk_size, **extra}


def paste(text, model="linear", chunk_size=4):
    return {"model": model, "source": "paste", "pasted": text, "chunk_size": chunk_size}


class BatchFormTests(SimpleTestCase):
    """Refused before anything is sent (the app points at a port where nothing listens, so a
    form that got as far as sending would answer 503, not 400)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        url = dead_url(cls)
        use_celery(cls, url, url)

    def test_form_page(self):
        response = self.client.get("/batch/")
        self.assertEqual(response.status_code, 200)
        for field in ('name="model"', 'name="source"', 'name="rows"', 'name="seed"',
                      'name="pasted"', 'name="chunk_size"'):
            self.assertContains(response, field)
        self.assertContains(response, '<option value="linear" selected>')
        self.assertContains(response, "modeld.predict")
        self.assertContains(self.client.get("/"), 'href="/batch/" id="batch-link"')

    def assertRefused(self, data, message):
        response = self.client.post("/batch/", data)
        self.assertEqual(response.status_code, 400, response.content[:2000])
        self.assertContains(response, 'id="form-errors"', status_code=400)
        self.assertIn(message, response.content.decode())

    def test_pasted_rows_are_checked_line_by_line(self):
        self.assertRefused(paste("1, 2, 3\n4, 5\n"), "Line 2 has 2 numbers; linear takes 3.")
        self.assertRefused(paste("1, 2, 3\n\n1, x, 3"),
                           "Line 3: Number 2, &#x27;x&#x27;, is not a number.")
        self.assertRefused(paste("1, nan, 3"), "Line 1: Number 2, &#x27;nan&#x27;, is not finite.")
        self.assertRefused(paste(" \n \n"), "Paste at least one row")
        self.assertRefused(paste("1, 2, 3", model="mlp"), "Line 1 has 3 numbers; mlp takes 256.")

    def test_generated_rows_need_a_count_in_range(self):
        self.assertRefused(generate(rows=""), "Enter how many rows to generate.")
        self.assertRefused(generate(rows=0), "greater than or equal to 1")
        self.assertRefused(generate(rows=5001), "less than or equal to 5000")

    def test_chunks_are_bounded(self):
        self.assertRefused(generate(rows=MAX_CHUNKS + 1, chunk_size=1),
                           f"{MAX_CHUNKS + 1} rows in chunks of 1 make {MAX_CHUNKS + 1} tasks")
        self.assertRefused(generate(chunk_size=0), "greater than or equal to 1")
        self.assertRefused(generate(chunk_size=257), "less than or equal to 256")
        self.assertRefused(generate(model="nope"), "Select a valid choice")

    def test_generated_rows_are_reproducible(self):
        rows = generate_rows("mlp", 5, seed=7)
        self.assertEqual((rows.shape, rows.dtype), ((5, 256), np.float32))
        np.testing.assert_array_equal(rows, generate_rows("mlp", 5, seed=7))
        self.assertFalse(np.array_equal(rows, generate_rows("mlp", 5, seed=8)))


class UnreachableTests(SimpleTestCase):
    """Nothing listens at the broker's and the backend's port: a clear 503, quickly."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = dead_url(cls)
        use_celery(cls, cls.url, cls.url)

    def test_submit_explains_the_unreachable_queue(self):
        started = time.monotonic()
        response = self.client.post("/batch/", generate())
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(response.status_code, 503)
        text = response.content.decode()
        self.assertIn("Could not queue the batch", text)
        self.assertIn(f"at {self.url} is unreachable", text)
        self.assertIn("Connection refused", text)
        self.assertIn('id="error"', text)
        self.assertNotIn("Traceback", text)
        self.assertContains(response, 'name="chunk_size"', status_code=503)  # the form stays

    def test_progress_explains_the_unreachable_backend(self):
        token = Job("a" * 32, "linear", 10, 4).token
        response = self.client.get(f"/batch/{token}/progress")
        self.assertEqual(response.status_code, 503)
        body = response.json()
        self.assertEqual(body["code"], "RESULT_BACKEND_UNREACHABLE")
        self.assertIn(f"result backend at {self.url} is unreachable", body["error"])
        page = self.client.get(f"/batch/{token}/")
        self.assertEqual(page.status_code, 503)
        self.assertContains(page, "Progress unavailable", status_code=503)
        self.assertContains(page, f"result backend at {self.url} is unreachable",
                            status_code=503)

    def test_unknown_or_forged_jobs_are_404(self):
        forged = signing.dumps(["a" * 32, "linear", 10, 4], salt="another salt")
        expired_model = Job("a" * 32, "digits", 10, 4).token  # signed, but not a batch model
        for token in ("nope", forged, expired_model, Job("a" * 32, "linear", 10, 4).token + "x"):
            with self.subTest(token=token):
                response = self.client.get(f"/batch/{token}/progress")
                self.assertEqual(response.status_code, 404)
                self.assertEqual(response.json()["code"], "NO_SUCH_BATCH")
                page = self.client.get(f"/batch/{token}/")
                self.assertContains(page, "No such batch", status_code=404)


class BrokerDownBackendUpTests(SimpleTestCase):
    """The result backend answers but the broker does not: the message names the broker."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = start_redis(cls)
        cls.broker = dead_url(cls)
        use_celery(cls, cls.broker, f"{cls.redis.url}/0")

    def test_submit_names_the_broker(self):
        response = self.client.post("/batch/", generate())
        self.assertEqual(response.status_code, 503)
        self.assertContains(response, f"Celery&#x27;s broker at {self.broker} is unreachable",
                            status_code=503)


class SentMessageTests(SimpleTestCase):
    """A real Redis broker and backend, no modeld: the tasks wait in the "modeld" list, as
    kombu lays them out, and the job stays pending."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = start_redis(cls)
        use_celery(cls, f"{cls.redis.url}/0", f"{cls.redis.url}/0")

    def setUp(self):
        self.redis.client().flushall()

    def messages(self):
        """The queued messages, oldest first: (headers, [args, kwargs, embed])."""
        items = self.redis.client().lrange("modeld", 0, -1)[::-1]  # clients LPUSH
        messages = []
        for item in items:
            wrapper = json.loads(item)
            self.assertEqual(wrapper["content-type"], "application/json")
            self.assertEqual(wrapper["properties"]["body_encoding"], "base64")
            messages.append((wrapper["headers"], json.loads(base64.b64decode(wrapper["body"]))))
        return messages

    def test_a_generated_batch_is_sent_as_a_group_of_chunks(self):
        response = self.client.post("/batch/", generate(model="mlp", rows=10, seed=3,
                                                        chunk_size=4))
        self.assertEqual(response.status_code, 302)
        token = response["Location"].split("/")[2]
        job = Job.from_token(token)
        self.assertEqual((job.model, job.rows, job.chunk_size, job.chunks), ("mlp", 10, 4, 3))
        messages = self.messages()
        self.assertEqual([h["id"] for h, _ in messages], [job.task_id(i) for i in range(3)])
        self.assertEqual({h["task"] for h, _ in messages}, {"modeld.predict"})
        self.assertEqual({h["group"] for h, _ in messages}, {job.id})
        rows = generate_rows("mlp", 10, 3)
        for (_, (args, kwargs, _)), (start, stop) in zip(messages, [(0, 4), (4, 8), (8, 10)]):
            self.assertEqual(args[0], "mlp")
            np.testing.assert_array_equal(np.asarray(args[1], dtype=np.float32),
                                          rows[start:stop])
            self.assertEqual(kwargs, {})

        progress = self.client.get(f"/batch/{token}/progress").json()
        self.assertEqual(progress["total"], 3)
        self.assertEqual(progress["done"], 0)
        self.assertFalse(progress["finished"])
        self.assertEqual(progress["chunks"], ["PENDING"] * 3)
        self.assertIsNone(progress["outputs"])
        page = self.client.get(f"/batch/{token}/")
        self.assertContains(page, "10 rows for mlp, in 3 chunks of 4")
        self.assertContains(page, "0 of 3 chunks")
        self.assertContains(page, f'data-progress="/batch/{token}/progress"')

    def test_pasted_rows_are_sent_as_pasted(self):
        response = self.client.post("/batch/", paste("1, 2, 3\n\n4 5 6\n-1.5,0,2e3\n",
                                                     chunk_size=2))
        self.assertEqual(response.status_code, 302)
        self.assertEqual([body[0] for _, body in self.messages()],
                         [["linear", [[1, 2, 3], [4, 5, 6]]], ["linear", [[-1.5, 0, 2000]]]])
