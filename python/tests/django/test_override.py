"""override_model: answers a model with a function, as context manager and decorator."""

import asyncio
import io
import unittest

import numpy as np
from django.test import SimpleTestCase, override_settings

import modeld
from modeld.django import aclients, ainfer, apredict, clients, infer, predict
from modeld.django.testing import override_model
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
