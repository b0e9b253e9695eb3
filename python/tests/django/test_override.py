"""override_model: answers a model with a function, as context manager and decorator."""

import asyncio
import io
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
from django.test import SimpleTestCase, override_settings

import modeld
from modeld.django import aclients, ainfer, apredict, clients, infer, predict, train
from modeld.django.testing import override_model, recorded
from support import ModeldServerTestCase


def double(x):
    return x * 2


def halve(x):
    return x / 2


class ContextManagerTests(SimpleTestCase):
    def test_predict_goes_to_fn_with_an_array(self):
        with override_model("linear", double) as fake:
            y = predict("linear", [[1, 2, 3]])
        np.testing.assert_array_equal(y, [[2, 4, 6]])
        self.assertIsInstance(y, np.ndarray)
        self.assertEqual(len(fake.calls), 1)
        self.assertIsInstance(fake.calls[0], np.ndarray)
        np.testing.assert_array_equal(fake.calls[0], [[1, 2, 3]])

    def test_no_client_is_created_for_an_overridden_model(self):
        with override_model("linear", double):
            clients["default"].predict("linear", [[1.0]])
            self.assertIsNone(clients["default"]._client)

    def test_restores_on_exit_even_after_an_error(self):
        with self.assertRaisesMessage(ZeroDivisionError, "boom"):
            with override_model("linear", double):
                raise ZeroDivisionError("boom")
        # The server of the test settings is unreachable: the call now goes there.
        with self.assertRaises(modeld.Unavailable):
            predict("linear", [[1.0, 2.0, 3.0]], timeout=2.0)

    def test_nested_innermost_wins_and_outer_is_restored(self):
        with override_model("linear", double):
            with override_model("linear", halve):
                np.testing.assert_array_equal(predict("linear", [4.0]), [2.0])
            np.testing.assert_array_equal(predict("linear", [4.0]), [8.0])

    def test_other_models_are_not_overridden(self):
        with override_model("linear", double), self.assertRaises(modeld.Unavailable):
            predict("mlp", np.zeros((1, 256)), timeout=2.0)

    def test_fn_may_raise_modeld_errors(self):
        def busy(x):
            raise modeld.ServerBusy("queue full")

        with override_model("linear", busy), self.assertRaisesMessage(modeld.ServerBusy,
                                                                       "queue full"):
            predict("linear", [[1, 2, 3]])

    def test_predict_accepts_a_dict_with_one_output(self):
        with override_model("linear", lambda x: {"y": x.sum(axis=1, keepdims=True)}):
            np.testing.assert_array_equal(predict("linear", [[1, 2, 3]]), [[6]])
        with override_model("add_sub", lambda x: {"a": x, "b": x}):
            with self.assertRaisesMessage(TypeError, "exactly one"):
                predict("add_sub", [1])

    def test_sync_call_of_an_async_fn_is_a_type_error(self):
        async def fn(x):
            return x

        with override_model("linear", fn), self.assertRaisesMessage(TypeError, "asynchronous"):
            predict("linear", [[1, 2, 3]])

    def test_bad_arguments(self):
        with self.assertRaises(TypeError):
            override_model("linear", "not callable")
        with self.assertRaises(TypeError):
            override_model("", double)


class InferRuleTests(SimpleTestCase):
    def test_one_input_calls_fn_with_the_array(self):
        with override_model("linear", double, output="y") as fake:
            result = infer("linear", {"x": [[1.0, 2.0, 3.0]]})
        self.assertEqual(list(result), ["y"])
        np.testing.assert_array_equal(result["y"], [[2, 4, 6]])
        self.assertIsInstance(fake.calls[0], np.ndarray)

    def test_one_fn_serves_predict_and_infer(self):
        with override_model("linear", double, output="y"):
            np.testing.assert_array_equal(predict("linear", [[1]]), [[2]])
            np.testing.assert_array_equal(infer("linear", {"x": [[1]]})["y"], [[2]])

    def test_several_inputs_call_fn_with_the_dict(self):
        def add_sub(inputs):
            return {"OUTPUT0": inputs["INPUT0"] + inputs["INPUT1"],
                    "OUTPUT1": inputs["INPUT0"] - inputs["INPUT1"]}

        with override_model("add_sub", add_sub) as fake:
            result = infer("add_sub", {"INPUT0": [3.0, 4.0], "INPUT1": [1.0, 1.0]})
        np.testing.assert_array_equal(result["OUTPUT0"], [4, 5])
        np.testing.assert_array_equal(result["OUTPUT1"], [2, 3])
        self.assertEqual(sorted(fake.calls[0]), ["INPUT0", "INPUT1"])
        self.assertIsInstance(fake.calls[0]["INPUT0"], np.ndarray)

    def test_dict_values_become_arrays(self):
        with override_model("linear", lambda x: {"y": [[1.5]]}):
            result = infer("linear", {"x": [[1, 2, 3]]})
        self.assertIsInstance(result["y"], np.ndarray)

    def test_array_result_without_output_name_is_a_type_error(self):
        with override_model("linear", double), self.assertRaisesMessage(TypeError, "output="):
            infer("linear", {"x": [[1, 2, 3]]})

    def test_outputs_selects_and_missing_output_is_invalid_input(self):
        def fn(inputs):
            return {"OUTPUT0": inputs["INPUT0"], "OUTPUT1": inputs["INPUT1"]}

        with override_model("add_sub", fn):
            result = infer("add_sub", {"INPUT0": [1], "INPUT1": [2]}, outputs=["OUTPUT1"])
            self.assertEqual(list(result), ["OUTPUT1"])
            with self.assertRaisesMessage(modeld.InvalidInput, "OUTPUT9"):
                infer("add_sub", {"INPUT0": [1], "INPUT1": [2]}, outputs=["OUTPUT9"])


@override_settings(MODELD={"default": {"URL": "grpc://127.0.0.1:9", "RETRIES": 0},
                           "fraud": {"URL": "grpc://127.0.0.1:9", "RETRIES": 0}})
class UsingTests(SimpleTestCase):
    def test_using_limits_the_override_to_one_alias(self):
        with override_model("scorer", double, using="fraud"):
            np.testing.assert_array_equal(predict("scorer", [1], using="fraud"), [2])
            with self.assertRaises(modeld.Unavailable):
                predict("scorer", [1], timeout=2.0)

    def test_none_overrides_every_alias(self):
        with override_model("scorer", double):
            np.testing.assert_array_equal(predict("scorer", [1], using="fraud"), [2])
            np.testing.assert_array_equal(clients["default"].predict("scorer", [1]), [2])

    def test_alias_specific_override_beats_an_outer_general_one(self):
        with override_model("scorer", double), override_model("scorer", halve, using="fraud"):
            np.testing.assert_array_equal(predict("scorer", [4], using="fraud"), [2])
            np.testing.assert_array_equal(predict("scorer", [4]), [8])


class AsyncTests(SimpleTestCase):
    def test_apredict_and_ainfer(self):
        async def run():
            with override_model("linear", double, output="y"):
                y = await apredict("linear", [[1.0, 2.0, 3.0]])
                result = await ainfer("linear", {"x": [[1.0]]})
                via_client = await aclients["default"].predict("linear", [[5.0]])
            return y, result, via_client

        y, result, via_client = asyncio.run(run())
        np.testing.assert_array_equal(y, [[2, 4, 6]])
        np.testing.assert_array_equal(result["y"], [[2]])
        np.testing.assert_array_equal(via_client, [[10]])

    def test_async_fn_is_awaited(self):
        async def fn(x):
            await asyncio.sleep(0)
            return x + 1

        async def run():
            with override_model("linear", fn):
                return await apredict("linear", [[1.0]])

        np.testing.assert_array_equal(asyncio.run(run()), [[2.0]])

    def test_async_restores_on_exit(self):
        async def run():
            with override_model("linear", double):
                pass
            return await apredict("linear", [[1.0, 2.0, 3.0]], timeout=2.0)

        with self.assertRaises(modeld.Unavailable):
            asyncio.run(run())


class DecoratorTests(SimpleTestCase):
    def test_function_decorator(self):
        @override_model("linear", double)
        def call():
            return predict("linear", [3.0])

        np.testing.assert_array_equal(call(), [6.0])
        with self.assertRaises(modeld.Unavailable):  # inactive outside the call
            predict("linear", [[3.0, 1.0, 1.0]], timeout=2.0)

    def test_async_function_decorator(self):
        @override_model("linear", double)
        async def call():
            return await apredict("linear", [3.0])

        np.testing.assert_array_equal(asyncio.run(call()), [6.0])

    def test_decorator_can_pass_the_fake(self):
        @override_model("linear", double, kwarg_name="fake")
        def call(fake):
            predict("linear", [1.0])
            return fake

        self.assertEqual(len(call().calls), 1)

    @override_model("linear", halve)
    def test_method_decorator(self):
        np.testing.assert_array_equal(predict("linear", [3.0]), [1.5])

    @override_model("linear", halve)
    async def test_async_method_decorator(self):
        np.testing.assert_array_equal(await apredict("linear", [3.0]), [1.5])


@override_model("linear", double, attr_name="fake")
class ClassDecoratorTests(SimpleTestCase):
    def test_active_in_each_test(self):
        np.testing.assert_array_equal(predict("linear", [1.0]), [2.0])
        self.assertEqual(len(self.fake.calls), 1)

    def test_fresh_calls_per_test(self):
        self.assertEqual(self.fake.calls, [])
        predict("linear", [1.0])
        predict("linear", [1.0])
        self.assertEqual(len(self.fake.calls), 2)

    @override_model("linear", halve)
    def test_method_override_nests_inside_the_class_one(self):
        np.testing.assert_array_equal(predict("linear", [1.0]), [0.5])


class ClassDecoratorScopeTests(SimpleTestCase):
    def test_class_decorator_is_active_around_each_test_only(self):
        from modeld.django import _overrides

        seen = []

        @override_model("linear", double)
        class Inner(unittest.TestCase):
            def test_a(self):
                seen.append(len(_overrides.active()))

            def test_b(self):
                seen.append(len(_overrides.active()))

        suite = unittest.defaultTestLoader.loadTestsFromTestCase(Inner)
        result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
        self.assertTrue(result.wasSuccessful())
        self.assertEqual(seen, [1, 1])
        self.assertEqual(_overrides.active(), [])

    def test_only_test_case_classes(self):
        with self.assertRaises(TypeError):
            override_model("linear", double)(object)


class LiveServerTests(ModeldServerTestCase):
    """With a real server: the overridden model goes to fn, the others to modeld."""

    def test_other_models_still_reach_the_server(self):
        x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
        with modeld.Client(self.grpc_url) as client:
            expected = client.predict("linear", x)
            expected_mlp = client.predict("mlp", np.ones((1, 256), dtype=np.float32))
        np.testing.assert_allclose(expected, [[9.5]])  # version 2: 2 * (x @ W + b)
        with override_model("mlp", lambda x: np.zeros((len(x), 10))):
            np.testing.assert_array_equal(predict("linear", x), expected)
            np.testing.assert_array_equal(predict("mlp", np.ones((1, 256))), np.zeros((1, 10)))
        np.testing.assert_array_equal(predict("mlp", np.ones((1, 256))), expected_mlp)

    def test_async_other_models_still_reach_the_server(self):
        async def run():
            with override_model("mlp", lambda x: np.zeros((len(x), 10))):
                return (await apredict("linear", [[1.0, 2.0, 3.0]], using="rest"),
                        await apredict("mlp", np.ones((1, 256))))

        linear, mlp = asyncio.run(run())
        np.testing.assert_allclose(linear, [[9.5]])
        np.testing.assert_array_equal(mlp, np.zeros((1, 10)))


# --- metadata= : the fake refuses what modeld would ---------------------------------------------

#: As modeld.Client.metadata() answers for examples/models (max_batch_size added by hand).
LINEAR = {"name": "linear", "versions": ["1", "2"], "platform": "pytorch_libtorch",
          "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
          "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]}
INT64_BOOL = {"inputs": [{"name": "ids", "datatype": "INT64", "shape": [-1, -1]},
                         {"name": "mask", "datatype": "BOOL", "shape": [-1, -1]}],
              "outputs": [{"name": "masked_ids", "datatype": "INT64", "shape": [-1, -1]},
                          {"name": "positive", "datatype": "BOOL", "shape": [-1, -1]}],
              "max_batch_size": 64}
ADD_SUB = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [16]},
                      {"name": "INPUT1", "datatype": "FP32", "shape": [16]}],
           "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [16]},
                       {"name": "OUTPUT1", "datatype": "FP32", "shape": [16]}]}


def total(x):
    return x.sum(axis=1, keepdims=True)


def int64_bool(inputs):
    return {"masked_ids": inputs["ids"] * inputs["mask"], "positive": inputs["ids"] > 0}


class MetadataInputTests(SimpleTestCase):
    """Each refusal is modeld's InvalidInput with modeld's message, and fn is not called."""

    def assert_refused(self, model, fn, metadata, call, message):
        with override_model(model, fn, metadata=metadata) as fake:
            with self.assertRaises(modeld.InvalidInput) as caught:
                call()
        self.assertEqual(caught.exception.message, message)
        self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
        self.assertEqual(fake.calls, [])

    def test_accepted_input_calls_fn_with_the_input_as_modeld_gets_it(self):
        with override_model("linear", total, metadata=LINEAR) as fake:
            y = predict("linear", [[1, 2, 3]])  # Python ints: the client casts them to FP32
            result = infer("linear", {"x": np.ones((2, 3))})
        np.testing.assert_array_equal(y, [[6.0]])
        self.assertEqual(y.dtype, np.float32)
        self.assertEqual([call.dtype for call in fake.calls], [np.float32, np.float32])
        np.testing.assert_array_equal(result["y"], [[3.0], [3.0]])

    def test_missing_input(self):
        self.assert_refused("int64_bool", int64_bool, INT64_BOOL,
                            lambda: infer("int64_bool", {"ids": [[1]]}),
                            "missing input 'mask' (BOOL [-1, -1]) for model 'int64_bool'")

    def test_unexpected_input(self):
        self.assert_refused("linear", total, LINEAR,
                            lambda: infer("linear", {"x": [[1, 2, 3]], "z": [[1.0]]}),
                            "unknown input 'z' for model 'linear'; its inputs are "
                            "'x' (FP32 [-1, 3])")

    def test_no_inputs(self):
        self.assert_refused("linear", total, LINEAR, lambda: infer("linear", {}),
                            "request for model 'linear' has no inputs; it expects "
                            "'x' (FP32 [-1, 3])")

    def test_wrong_rank(self):
        self.assert_refused("linear", total, LINEAR, lambda: predict("linear", [1.0, 2.0, 3.0]),
                            "input 'x' has shape [3] but model 'linear' expects [-1, 3]")

    def test_wrong_fixed_dimension(self):
        self.assert_refused("linear", total, LINEAR, lambda: predict("linear", [[1.0, 2.0]]),
                            "input 'x' has shape [1, 2] but model 'linear' expects [-1, 3]")

    def test_floats_never_become_integers(self):
        self.assert_refused("int64_bool", int64_bool, INT64_BOOL,
                            lambda: infer("int64_bool", {"ids": [[1.5]], "mask": [[True]]}),
                            "input 'ids' has datatype FP64 but model 'int64_bool' expects INT64")

    def test_numbers_never_become_bool(self):
        self.assert_refused("int64_bool", int64_bool, INT64_BOOL,
                            lambda: infer("int64_bool", {"ids": [[1]], "mask": [[1]]}),
                            "input 'mask' has datatype INT64 but model 'int64_bool' expects BOOL")

    def test_text_for_a_number(self):
        self.assert_refused("linear", total, LINEAR, lambda: predict("linear", [["a", "b", "c"]]),
                            "input 'x' has datatype BYTES but model 'linear' expects FP32")

    def test_what_the_client_refuses_itself(self):
        with override_model("linear", total, metadata=LINEAR):
            with self.assertRaisesMessage(modeld.InvalidInput, "is not a rectangular array"):
                predict("linear", [[1.0, 2.0, 3.0], [1.0]])
            with self.assertRaisesMessage(modeld.InvalidInput, "KServe cannot carry"):
                predict("linear", np.ones((1, 3), dtype=np.complex64))

    def test_batch_over_max_batch_size_when_the_metadata_gives_it(self):
        ids, mask = np.ones((65, 1), np.int64), np.ones((65, 1), bool)
        self.assert_refused("int64_bool", int64_bool, INT64_BOOL,
                            lambda: infer("int64_bool", {"ids": ids, "mask": mask}),
                            "input 'ids' has batch size 65 but model 'int64_bool' takes at most "
                            "max_batch_size 64")
        self.assert_refused("int64_bool", int64_bool, INT64_BOOL,
                            lambda: infer("int64_bool", {"ids": ids[:0], "mask": mask[:0]}),
                            "input 'ids' has batch size 0; it must be at least 1")
        self.assert_refused("int64_bool", int64_bool, INT64_BOOL,
                            lambda: infer("int64_bool", {"ids": ids[:2], "mask": mask[:1]}),
                            "inputs disagree on the batch size: 'ids' has 2, 'mask' has 1")
        self.assert_refused("int64_bool", int64_bool, INT64_BOOL,
                            lambda: infer("int64_bool", {"ids": [1], "mask": [True]}),
                            "input 'ids' has shape [1] but model 'int64_bool' expects [-1, -1] "
                            "(the first dimension is the batch size)")

    def test_without_max_batch_size_any_batch_is_accepted(self):
        with override_model("linear", total, metadata=LINEAR):
            self.assertEqual(predict("linear", np.ones((1000, 3))).shape, (1000, 1))

    def test_requested_outputs_the_model_does_not_have(self):
        self.assert_refused("linear", total, LINEAR,
                            lambda: infer("linear", {"x": [[1, 2, 3]]}, outputs=["z"]),
                            "requested output 'z' is not an output of model 'linear'; its "
                            "outputs are 'y' (FP32 [-1, 1])")
        self.assert_refused("linear", total, LINEAR,
                            lambda: infer("linear", {"x": [[1, 2, 3]]}, outputs=["y", "y"]),
                            "output 'y' is requested more than once")

    def test_predict_of_a_model_with_several_inputs(self):
        self.assert_refused("add_sub", lambda x: x, ADD_SUB,
                            lambda: predict("add_sub", np.zeros(16)),
                            "predict() needs a model with one input and one output, but model "
                            "'add_sub' has inputs (INPUT0, INPUT1) and outputs (OUTPUT0, "
                            "OUTPUT1); use infer()")

    def test_async_calls_are_checked_too(self):
        async def run():
            with override_model("linear", total, metadata=LINEAR) as fake:
                with self.assertRaisesMessage(modeld.InvalidInput, "expects [-1, 3]"):
                    await apredict("linear", [[1.0]])
                y = await aclients["default"].predict("linear", [[1, 2, 3]])
            return fake, y

        fake, y = asyncio.run(run())
        self.assertEqual(len(fake.calls), 1)
        np.testing.assert_array_equal(y, [[6.0]])

    def test_training_inputs_are_checked(self):
        with override_model("linear", total, train=lambda x, y: 0.5, metadata=LINEAR) as fake:
            with self.assertRaisesMessage(modeld.InvalidInput, "unknown input 'z'"):
                train("linear", {"z": [[1.0, 2.0, 3.0]]}, {"y": [[1.0]]})
            self.assertEqual(train("linear", {"x": [[1, 2, 3]]}, {"y": [[1.0]]}).loss, 0.5)
        self.assertEqual(fake.train_calls[0][0]["x"].dtype, np.float32)


class MetadataOutputTests(SimpleTestCase):
    """fn's outputs must be the model's: a mistake of the fake is an AssertionError."""

    def test_an_array_answers_infer_of_a_one_output_model(self):
        with override_model("linear", total, metadata=LINEAR):
            result = infer("linear", {"x": [[1, 2, 3]]})
        self.assertEqual(list(result), ["y"])
        np.testing.assert_array_equal(result["y"], [[6.0]])

    def test_outputs_are_cast_as_the_server_answers_them(self):
        with override_model("linear", lambda x: np.zeros((len(x), 1)), metadata=LINEAR):
            self.assertEqual(predict("linear", [[1, 2, 3]]).dtype, np.float32)

    def test_an_output_the_model_does_not_have(self):
        with override_model("linear", lambda x: {"z": x}, metadata=LINEAR):
            with self.assertRaisesMessage(AssertionError, "fn returned output 'z', which the "
                                          "model does not have; its metadata declares "
                                          "'y' (FP32 [-1, 1])"):
                predict("linear", [[1, 2, 3]])

    def test_a_missing_output(self):
        def only_sum(inputs):
            return {"OUTPUT0": inputs["INPUT0"] + inputs["INPUT1"]}

        inputs = {"INPUT0": np.zeros(16), "INPUT1": np.zeros(16)}
        with override_model("add_sub", only_sum, metadata=ADD_SUB):
            with self.assertRaisesMessage(AssertionError, "fn returned no output 'OUTPUT1'"):
                infer("add_sub", inputs)  # modeld answers every output
            self.assertEqual(list(infer("add_sub", inputs, outputs=["OUTPUT0"])), ["OUTPUT0"])

    def test_an_output_of_the_wrong_shape(self):
        with override_model("linear", lambda x: x.sum(axis=1), metadata=LINEAR):
            with self.assertRaisesMessage(AssertionError, "fn returned output 'y' with shape "
                                          "[1], but the model answers [-1, 1]"):
                predict("linear", [[1, 2, 3]])

    def test_an_output_of_the_wrong_datatype(self):
        def floats(inputs):
            return {"masked_ids": inputs["ids"] * 0.5, "positive": inputs["mask"]}

        with override_model("int64_bool", floats, metadata=INT64_BOOL):
            with self.assertRaisesMessage(AssertionError, "fn returned output 'masked_ids' as "
                                          "numpy float64, but the model answers INT64"):
                infer("int64_bool", {"ids": [[1]], "mask": [[True]]})

    def test_the_fakes_mistake_fails_the_test_not_the_request(self):
        self.assertFalse(issubclass(AssertionError, modeld.ModeldError))


class MetadataArgumentTests(SimpleTestCase):
    def test_metadata_of_the_alias_answers_the_given_metadata(self):
        with override_model("linear", total, metadata=LINEAR):
            self.assertEqual(clients["default"].metadata("linear"), LINEAR)
            self.assertIsNone(clients["default"]._client)  # no client, no server
            self.assertEqual(asyncio.run(self._ametadata()), LINEAR)
        with override_model("add_sub", double, metadata=ADD_SUB) as fake:
            self.assertEqual(clients["default"].metadata("add_sub")["name"], "add_sub")
            self.assertEqual(fake.metadata["inputs"], ADD_SUB["inputs"])

    async def _ametadata(self):
        return await aclients["default"].metadata("linear")

    def test_a_malformed_metadata_argument_is_refused_at_once(self):
        with self.assertRaisesMessage(TypeError, "must be a dict"):
            override_model("linear", total, metadata=[LINEAR])
        with self.assertRaisesMessage(ValueError, "is that of model 'mlp'"):
            override_model("linear", total, metadata={**LINEAR, "name": "mlp"})
        with self.assertRaisesMessage(ValueError, "needs 'outputs'"):
            override_model("linear", total, metadata={"inputs": LINEAR["inputs"]})
        bad_type = {**LINEAR, "inputs": [{"name": "x", "datatype": "FLOAT", "shape": [3]}]}
        with self.assertRaisesMessage(ValueError, "'x' has datatype 'FLOAT'"):
            override_model("linear", total, metadata=bad_type)
        bad_shape = {**LINEAR, "inputs": [{"name": "x", "datatype": "FP32", "shape": "3"}]}
        with self.assertRaisesMessage(ValueError, "'x' has shape '3'"):
            override_model("linear", total, metadata=bad_shape)
        with self.assertRaisesMessage(ValueError, "max_batch_size must be an int >= 0"):
            override_model("linear", total, metadata={**LINEAR, "max_batch_size": -1})


class RecordedWithoutServerTests(SimpleTestCase):
    """recorded(path) with the file present reads it; the test settings' server is dead."""

    def setUp(self):
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.folder = Path(folder.name)

    def test_a_recorded_file_is_read_and_no_server_is_asked(self):
        path = self.folder / "linear.json"
        path.write_text(json.dumps(LINEAR))
        with override_model("linear", total, metadata=recorded(path)) as fake:
            with self.assertRaisesMessage(modeld.InvalidInput, "expects [-1, 3]"):
                predict("linear", [[1.0]])
            np.testing.assert_array_equal(predict("linear", [[1, 2, 3]]), [[6.0]])
        self.assertEqual(fake.metadata, LINEAR)

    def test_no_file_and_no_server_says_how_to_record_it(self):
        path = self.folder / "modeld" / "linear.json"
        override = override_model("linear", total, metadata=recorded(path))
        with self.assertRaisesMessage(RuntimeError, f"{path} does not exist, and the server of "
                                      "alias 'default' could not give the metadata"):
            with override:
                pass
        self.assertFalse(path.exists())

    def test_a_file_that_is_not_json(self):
        path = self.folder / "linear.json"
        path.write_text("{")
        with self.assertRaisesMessage(ValueError, "is not JSON"):
            with override_model("linear", total, metadata=recorded(path)):
                pass


class RecordedLiveTests(ModeldServerTestCase):
    """recorded(path) asks a real modeld once, writes the file, and later runs need no server.
    The fake's refusals are the server's own, message for message."""

    def setUp(self):
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.folder = Path(folder.name)

    def test_records_once_then_reads_without_a_server(self):
        path = self.folder / "tests" / "modeld" / "linear.json"
        with override_model("linear", total, metadata=recorded(path)):
            np.testing.assert_array_equal(predict("linear", [[1, 2, 3]]), [[6.0]])
        with modeld.Client(self.grpc_url) as client:
            # The metadata, and the max_batch_size of the model's config.
            self.assertEqual(json.loads(path.read_text()),
                             {**client.metadata("linear"), "max_batch_size": 64})
            self.assertEqual(client.model_config("linear")["max_batch_size"], 64)
        self.assertEqual(list(self.folder.rglob(".*")), [])  # no temporary file left
        with override_settings(MODELD={"default": {"URL": self.dead_url, "RETRIES": 0}}):
            with override_model("linear", total, metadata=recorded(path)):
                with self.assertRaisesMessage(modeld.InvalidInput, "expects [-1, 3]"):
                    predict("linear", [[1.0, 2.0]])

    def test_a_recorded_fake_refuses_the_batches_the_server_refuses(self):
        path = self.folder / "linear.json"
        batch = np.zeros((100, 3), np.float32)  # linear's max_batch_size is 64
        with modeld.Client(self.grpc_url) as client:
            with self.assertRaises(modeld.InvalidInput) as server:
                client.predict("linear", batch)
        with override_model("linear", total, metadata=recorded(path)) as fake:
            with self.assertRaises(modeld.InvalidInput) as faked:
                predict("linear", batch)
            self.assertEqual(predict("linear", batch[:64]).shape, (64, 1))
        self.assertEqual(faked.exception.message, server.exception.message)
        self.assertEqual(faked.exception.message, "input 'x' has batch size 100 but model "
                         "'linear' takes at most max_batch_size 64")
        self.assertEqual(len(fake.calls), 1)  # the refused batch never reached fn
        self.assertEqual(fake.metadata["max_batch_size"], 64)  # metadata() answers it too

    def test_a_model_that_does_not_batch_records_max_batch_size_0(self):
        path = self.folder / "add_sub.json"
        with override_model("add_sub", double, metadata=recorded(path)):
            pass
        self.assertEqual(json.loads(path.read_text())["max_batch_size"], 0)

    def test_using_records_from_that_alias(self):
        path = self.folder / "mlp.json"
        with override_settings(MODELD={"default": {"URL": self.dead_url, "RETRIES": 0},
                                       "rest": {"URL": self.http_url}}):
            with override_model("mlp", double, using="rest", metadata=recorded(path)):
                pass
        self.assertIn('"logits"', path.read_text())

    def test_the_fakes_refusals_are_the_servers(self):
        cases = [
            ("linear", {"x": [[1.0, 2.0]]}, None),
            ("linear", {"x": [1.0, 2.0, 3.0]}, None),
            ("linear", {"z": [[1.0, 2.0, 3.0]]}, None),
            ("linear", {"x": [[1.0, 2.0, 3.0]], "z": [[1.0]]}, None),
            ("linear", {}, None),
            ("linear", {"x": [["a", "b", "c"]]}, None),
            ("linear", {"x": np.zeros((65, 3), np.float32)}, None),
            ("linear", {"x": np.zeros((0, 3), np.float32)}, None),
            ("linear", {"x": [[1.0, 2.0, 3.0]]}, ["z"]),
            ("linear", {"x": [[1.0, 2.0, 3.0]]}, ["y", "y"]),
            ("int64_bool", {"ids": [[1.5]], "mask": [[True]]}, None),
            ("int64_bool", {"ids": [[1]], "mask": [[1]]}, None),
            ("int64_bool", {"ids": [[1]]}, None),
            ("int64_bool", {"ids": [[1], [2]], "mask": [[True]]}, None),
            ("add_sub", {"INPUT0": np.zeros(16), "INPUT1": np.zeros(15)}, None),
            ("add_sub", {"INPUT0": np.zeros((1, 16)), "INPUT1": np.zeros(16)}, None),
        ]
        batch_sizes = {"linear": 64, "int64_bool": 64, "add_sub": 0}  # their config.pbtxt
        metadata = {}
        for model, size in batch_sizes.items():
            path = self.folder / f"{model}.json"
            with override_model(model, double, metadata=recorded(path)):
                pass
            # Recorded as it is: the metadata and the config's max_batch_size.
            metadata[model] = json.loads(path.read_text())
            self.assertEqual(metadata[model]["max_batch_size"], size)
        with modeld.Client(self.grpc_url) as client:
            for model, inputs, outputs in cases:
                with self.subTest(model=model, inputs=inputs, outputs=outputs):
                    with self.assertRaises(modeld.InvalidInput) as server:
                        client.infer(model, inputs, outputs=outputs)
                    with override_model(model, double, metadata=metadata[model]):
                        with self.assertRaises(modeld.InvalidInput) as fake:
                            infer(model, inputs, outputs=outputs)
                    self.assertEqual(fake.exception.message, server.exception.message)
            with self.assertRaises(modeld.InvalidInput) as server:
                client.predict("add_sub", np.zeros(16))
        with override_model("add_sub", double, metadata=metadata["add_sub"]):
            with self.assertRaises(modeld.InvalidInput) as fake:
                predict("add_sub", np.zeros(16))
        self.assertEqual(fake.exception.message, server.exception.message)
