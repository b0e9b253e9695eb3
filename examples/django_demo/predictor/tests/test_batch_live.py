"""The batch page end to end: a real redis-server as Celery's broker and result backend, and a
real modeld (build/bin/modeld on examples/models) consuming it with --celery-broker and
--celery-result-backend. No Python worker runs; the outputs must be what the modeld client
answers for the same rows (exactly for linear; to the last bit's rounding for mlp, whose sums
depend on how the rows are batched), and a chunk modeld refuses must show modeld's
message."""

import time

import numpy as np
from django.test import SimpleTestCase

import modeld
from predictor.batch import Job, generate_rows

from .celery_support import start_redis, use_celery
from .support import EXAMPLE_MODELS, start_server

WAIT_S = 60.0


class BatchLiveTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = start_redis(cls)
        broker = f"{cls.redis.url}/0"
        cls.celery_server = start_server(EXAMPLE_MODELS, extra_args=[
            f"--celery-broker={broker}", f"--celery-result-backend={broker}"])
        cls.addClassCleanup(cls._stop_celery_server)
        use_celery(cls, broker, broker)
        # the reference answers: the same modeld, over gRPC
        cls.modeld = modeld.Client(f"grpc://{cls.celery_server.address}")
        cls.addClassCleanup(cls.modeld.close)

    @classmethod
    def _stop_celery_server(cls):
        try:
            cls.celery_server.stop()
        finally:
            cls.celery_server.proc.stdout.close()

    def submit(self, data):
        response = self.client.post("/batch/", data)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        location = response["Location"]
        self.assertRegex(location, r"^/batch/[^/]+/$")
        return location.split("/")[2]

    def wait_until_finished(self, token):
        deadline = time.monotonic() + WAIT_S
        while True:
            response = self.client.get(f"/batch/{token}/progress")
            self.assertEqual(response.status_code, 200, response.content)
            progress = response.json()
            if progress["finished"]:
                return progress
            if time.monotonic() > deadline:
                self.fail(f"the batch did not finish within {WAIT_S:.0f}s: {progress}; "
                          f"modeld's log:\n{self.celery_server.log}")
            time.sleep(0.1)

    def test_generated_batches_score_as_the_client_does(self):
        for model, rows, chunk_size in (("linear", 50, 8), ("mlp", 20, 6)):
            with self.subTest(model=model):
                token = self.submit({"model": model, "source": "generate", "rows": rows,
                                     "seed": 5, "chunk_size": chunk_size})
                progress = self.wait_until_finished(token)
                chunks = -(-rows // chunk_size)
                self.assertEqual((progress["total"], progress["done"], progress["succeeded"]),
                                 (chunks, chunks, chunks))
                self.assertEqual(progress["failures"], [])
                self.assertEqual(progress["chunks"], ["SUCCESS"] * chunks)
                expected = self.modeld.predict(model, generate_rows(model, rows, 5))
                outputs = np.asarray(progress["outputs"], dtype=np.float32)
                self.assertEqual(outputs.shape, expected.shape)
                if model == "linear":
                    np.testing.assert_array_equal(outputs, expected)
                else:
                    # mlp's sums depend on how modeld's dynamic batcher groups the rows
                    # (chunks, concurrent chunks merged, or one batch of 20): the last bit may
                    # differ, as between any two batchings of the same rows
                    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
                # the page, rendered once finished, shows the same
                page = self.client.get(f"/batch/{token}/")
                self.assertContains(page, f"{chunks} of {chunks} chunks done.")
                self.assertContains(page, 'id="results">')
                self.assertNotContains(page, 'id="results" hidden')

    def test_pasted_rows_linear_version_2(self):
        token = self.submit({"model": "linear", "source": "paste", "chunk_size": 1,
                             "pasted": "0.5, -2, 4.25\n1, 2, 3\n"})
        progress = self.wait_until_finished(token)
        # version 2: y = 2 * (0.5 x0 - 1.25 x1 + 2 x2 + 0.75)
        self.assertEqual(progress["outputs"], [[24], [9.5]])

    def test_a_refused_chunk_shows_modelds_message(self):
        """150 rows in chunks of 100: the first chunk is larger than linear's max_batch_size
        (64) and fails with modeld's message; the second is scored."""
        token = self.submit({"model": "linear", "source": "generate", "rows": 150, "seed": 1,
                             "chunk_size": 100})
        progress = self.wait_until_finished(token)
        self.assertEqual((progress["done"], progress["succeeded"], progress["failed"]), (2, 1, 1))
        self.assertEqual(progress["chunks"], ["FAILURE", "SUCCESS"])
        [failure] = progress["failures"]
        self.assertEqual((failure["chunk"], failure["first_row"], failure["last_row"]), (0, 0, 99))
        self.assertEqual(failure["error"], "ValueError")  # modeld's INVALID_ARGUMENT
        self.assertIn("max_batch_size 64", failure["message"])
        outputs = progress["outputs"]
        self.assertEqual(outputs[:100], [None] * 100)
        expected = self.modeld.predict("linear", generate_rows("linear", 150, 1)[100:])
        np.testing.assert_array_equal(np.asarray(outputs[100:], dtype=np.float32), expected)
        page = self.client.get(f"/batch/{token}/")
        self.assertContains(page, "2 of 2 chunks done, 1 failed.")
        self.assertContains(page, "<code>ValueError</code>")
        self.assertContains(page, "max_batch_size 64")

    def test_results_are_modelds_documents(self):
        """What modeld stored for a chunk, read with Celery's own AsyncResult."""
        token = self.submit({"model": "linear", "source": "paste", "chunk_size": 5,
                             "pasted": "1, 2, 3"})
        self.wait_until_finished(token)
        job = Job.from_token(token)
        from demo_site.celery import app

        result = app.AsyncResult(job.task_id(0))
        self.assertEqual(result.get(timeout=10), [[9.5]])
        self.assertEqual(result.state, "SUCCESS")
        self.assertTrue(self.redis.client().exists(f"celery-task-meta-{job.task_id(0)}"))
