"""train / atrain: one training step through the alias's client, override_model(train=...)
for tests without a server, and a real modeld training a model over gRPC and HTTP."""

import asyncio
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from django.test import SimpleTestCase, override_settings

import modeld
import modeld.django
from modeld.django import aclients, atrain, clients, predict, train
from modeld.django.testing import override_model
from support import REPO_ROOT, _close_helper_channels, _stop, start_server

sys.path.insert(0, str(REPO_ROOT / "python" / "tests" / "client"))

from train_support import TRAINING, line, line_batch, write_linear_models  # noqa: E402


def double(x):
    return x * 2


class OverrideTrainTests(SimpleTestCase):
    def test_train_goes_to_train_fn_and_numbers_the_steps(self):
        with override_model("scorer", double, train=lambda inputs, targets: 0.5) as fake:
            first = train("scorer", {"x": [[1.0]]}, {"y": [[2.0]]})
            second = clients["default"].train("scorer", {"x": [[3.0]]}, {"y": [[6.0]]},
                                              version=4, id="r")
            self.assertIsNone(clients["default"]._client)  # no client was created
        self.assertEqual(first, modeld.TrainResult("scorer", 1, 1, 0.5, 0))
        self.assertEqual(second, modeld.TrainResult("scorer", 4, 2, 0.5, 0))
        self.assertEqual(len(fake.train_calls), 2)
        inputs, targets = fake.train_calls[1]
        self.assertEqual(list(inputs), ["x"])
        self.assertIsInstance(targets["y"], np.ndarray)
        np.testing.assert_array_equal(targets["y"], [[6.0]])
        self.assertEqual(fake.calls, [])  # predict/infer calls are recorded apart

    def test_train_fn_may_answer_a_whole_result_or_raise(self):
        result = modeld.TrainResult("scorer", 2, 40, 0.125, 30)
        with override_model("scorer", double, train=lambda inputs, targets: result):
            self.assertIs(train("scorer", {"x": [[1.0]]}, {"y": [[2.0]]}), result)

        def busy(inputs, targets):
            raise modeld.ServerBusy("queue full")

        with override_model("scorer", double, train=busy), self.assertRaisesMessage(
                modeld.ServerBusy, "queue full"):
            train("scorer", {"x": [[1.0]]}, {"y": [[2.0]]})
        with override_model("scorer", double, train=lambda inputs, targets: "low"):
            with self.assertRaisesMessage(TypeError, "return the loss"):
                train("scorer", {"x": [[1.0]]}, {"y": [[2.0]]})

    def test_without_train_fn_a_step_is_a_type_error_and_never_reaches_the_server(self):
        with override_model("scorer", double):
            with self.assertRaisesMessage(TypeError, "train=fn"):
                train("scorer", {"x": [[1.0]]}, {"y": [[2.0]]})
            self.assertIsNone(clients["default"]._client)
        with self.assertRaises(TypeError):
            override_model("scorer", double, train="not callable")

    def test_predict_still_goes_to_fn(self):
        with override_model("scorer", double, train=lambda inputs, targets: 1.0):
            np.testing.assert_array_equal(predict("scorer", [2.0]), [4.0])

    def test_atrain_awaits_an_async_train_fn(self):
        async def step(inputs, targets):
            await asyncio.sleep(0)
            return float(np.mean((inputs["x"] - targets["y"]) ** 2))

        async def run():
            with override_model("scorer", double, train=step) as fake:
                first = await atrain("scorer", {"x": [[1.0]]}, {"y": [[3.0]]})
                second = await aclients["default"].train("scorer", {"x": [[1.0]]},
                                                         {"y": [[1.0]]})
            return first, second, len(fake.train_calls)

        first, second, count = asyncio.run(run())
        self.assertEqual((first.step, first.loss), (1, 4.0))
        self.assertEqual((second.step, second.loss), (2, 0.0))
        self.assertEqual(count, 2)

    def test_sync_train_of_an_async_fn_is_a_type_error(self):
        async def step(inputs, targets):
            return 0.0

        with override_model("scorer", double, train=step):
            with self.assertRaisesMessage(TypeError, "atrain"):
                train("scorer", {"x": [[1.0]]}, {"y": [[2.0]]})


class NotRetriedTests(SimpleTestCase):
    """No server (the test settings' port 9): a step fails once, whatever RETRIES says."""

    @override_settings(MODELD={"default": {"URL": "grpc://127.0.0.1:9", "RETRIES": 3,
                                           "BACKOFF": 0.01, "TIMEOUT": 5.0}})
    def test_train_is_not_retried(self):
        clients.reset()
        self.addCleanup(clients.reset)
        inner = clients["default"].client
        from modeld._codec import ModelSpec, TensorSpec

        inner._specs[("scorer", "")] = ModelSpec(
            "scorer", ("1",), "pytorch_libtorch", (TensorSpec("x", "FP32", (-1, 1)),),
            (TensorSpec("y", "FP32", (-1, 1)),))
        sent = []
        original = inner._transport.train

        def counting(*args):
            sent.append(args)
            return original(*args)

        inner._transport.train = counting
        with self.assertRaises(modeld.Unavailable):
            train("scorer", {"x": [[1.0]]}, {"y": [[2.0]]})
        self.assertEqual(len(sent), 1)


class LiveTrainTests(SimpleTestCase):
    """modeld on a repository of trainable linear models: ``default`` over gRPC, ``rest``
    over HTTP."""

    @classmethod
    def setUpClass(cls) -> None:
        repository = Path(cls.enterClassContext(tempfile.TemporaryDirectory()))
        write_linear_models(repository, {"grpc_line": TRAINING, "rest_line": TRAINING,
                                         "async_line": TRAINING, "frozen": None})
        cls.server = start_server(repository)
        cls.addClassCleanup(_stop, cls.server)
        _close_helper_channels(cls.server)
        super().setUpClass()
        cls.enterClassContext(override_settings(MODELD={
            "default": {"URL": f"grpc://{cls.server.address}", "TIMEOUT": 10.0},
            "rest": {"URL": f"http://{cls.server.http_address}", "TIMEOUT": 10.0},
        }))

    def learn(self, model, using):
        rng = np.random.default_rng(3)
        steps = []
        for _ in range(200):
            x, y = line_batch(rng)
            steps.append(train(model, {"x": x}, {"y": y}, using=using))
        return steps

    def test_train_over_grpc_and_http(self):
        probe = np.array([[-1.0], [0.0], [1.0]], dtype=np.float32)
        for model, using in (("grpc_line", "default"), ("rest_line", "rest")):
            steps = self.learn(model, using)
            self.assertEqual([s.step for s in steps], list(range(1, 201)))
            self.assertEqual({(s.model, s.version) for s in steps}, {(model, 1)})
            self.assertTrue(all(math.isfinite(s.loss) for s in steps))
            self.assertLess(steps[-1].loss, steps[0].loss / 1000)
            np.testing.assert_allclose(predict(model, probe, using=using), line(probe),
                                       atol=0.05)

    def test_atrain(self):
        rng = np.random.default_rng(4)

        async def run():
            results = []
            for _ in range(200):
                x, y = line_batch(rng)
                results.append(await atrain("async_line", {"x": x}, {"y": y}, using="rest"))
            return results

        results = asyncio.run(run())
        self.assertEqual([r.step for r in results], list(range(1, 201)))
        self.assertLess(results[-1].loss, results[0].loss / 1000)

    def test_a_model_that_is_not_trainable(self):
        for using in ("default", "rest"):
            with self.assertRaisesRegex(modeld.InvalidInput, "(?i)not trainable"):
                train("frozen", {"x": [[1.0]]}, {"y": [[2.0]]}, using=using)
