"""Bad ModelInfer requests: each fails alone with the right gRPC code and a message that names
the problem, and afterwards the server still serves."""

import grpc
import numpy as np
import pytest

from infer_helpers import assert_still_serving, expect_rpc_error, make_request

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND

X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)  # linear: x FP32 [-1, 3]
A = np.arange(16, dtype=np.float32)  # add_sub: INPUT0 / INPUT1 FP32 [16]


def linear(**kwargs):
    return make_request("linear", [("x", X)], **kwargs)


def add_sub(**kwargs):
    return make_request("add_sub", [("INPUT0", A), ("INPUT1", A)], **kwargs)


def with_shape(request, index, shape):
    del request.inputs[index].shape[:]
    request.inputs[index].shape.extend(shape)
    return request


def with_datatype(request, index, datatype):
    request.inputs[index].datatype = datatype
    return request


def with_raw(request, index, data):
    request.raw_input_contents[index] = data
    return request


def raw_and_typed():
    request = add_sub()
    request.inputs[1].contents.fp32_contents.extend(A.tolist())
    return request


def raw_count_short():
    request = add_sub()
    del request.raw_input_contents[1]
    return request


def raw_count_long():
    request = linear()
    request.raw_input_contents.append(X.tobytes())
    return request


def typed_wrong_field():
    request = make_request("add_sub", [("INPUT0", A), ("INPUT1", A)], typed=True)
    request.inputs[1].contents.ClearField("fp32_contents")
    request.inputs[1].contents.int_contents.extend(range(16))
    return request


def typed_count_short():
    request = make_request("add_sub", [("INPUT0", A), ("INPUT1", A)], typed=True)
    del request.inputs[0].contents.fp32_contents[-1]
    return request


def no_data_at_all():
    request = add_sub()
    request.ClearField("raw_input_contents")
    return request


def duplicate_input():
    return make_request("add_sub", [("INPUT0", A), ("INPUT0", A), ("INPUT1", A)])


def extra_input():
    return make_request("add_sub", [("INPUT0", A), ("INPUT1", A), ("INPUT2", A)])


def int64_bool_batch_disagree():
    ids = np.ones((2, 4), np.int64)
    mask = np.ones((3, 4), np.bool_)
    return make_request("int64_bool", [("ids", ids), ("mask", mask)])


def int64_bool_lengths_disagree():
    """Each input passes the config ([-1]), but the model multiplies them element-wise."""
    ids = np.ones((1, 2), np.int64)
    mask = np.ones((1, 3), np.bool_)
    return make_request("int64_bool", [("ids", ids), ("mask", mask)])


def typed_count_long():
    request = make_request("linear", [("x", np.ones(7, np.float32))], typed=True)
    return with_shape(request, 0, [2, 3])


# (id, request factory, expected code, fragments the message must hold)
CASES = [
    ("unknown_model", lambda: make_request("no_such_model", [("x", X)]), NOT_FOUND,
     ["no_such_model"]),
    ("unknown_version", lambda: linear(version="42"), NOT_FOUND, ["42", "linear"]),
    ("non_numeric_version", lambda: linear(version="two"), INVALID, ["two"]),
    ("zero_version", lambda: linear(version="0"), INVALID, ["'0'"]),
    ("empty_model_name", lambda: make_request("", [("x", X)]), INVALID, ["model_name"]),
    ("missing_input", lambda: make_request("add_sub", [("INPUT0", A)]), INVALID,
     ["INPUT1", "missing"]),
    ("extra_input", extra_input, INVALID, ["INPUT2", "unknown"]),
    ("duplicate_input", duplicate_input, INVALID, ["INPUT0", "twice"]),
    ("no_inputs", lambda: make_request("add_sub", []), INVALID, ["no inputs", "INPUT0", "INPUT1"]),
    ("wrong_datatype", lambda: make_request("linear", [("x", X.astype(np.float64))]), INVALID,
     ["'x'", "FP64", "FP32"]),
    ("wrong_datatype_int", lambda: make_request("int64_bool", [
        ("ids", np.ones((1, 3), np.int32)), ("mask", np.ones((1, 3), np.bool_))]), INVALID,
     ["'ids'", "INT32", "INT64"]),
    ("fp16_raw_for_fp32", lambda: make_request("linear", [("x", X.astype(np.float16))]), INVALID,
     ["'x'", "FP16", "FP32"]),
    ("unknown_datatype", lambda: with_datatype(linear(), 0, "FLOAT32"), INVALID,
     ["'x'", "FLOAT32"]),
    ("lowercase_datatype", lambda: with_datatype(linear(), 0, "fp32"), INVALID, ["'x'", "fp32"]),
    ("rank_too_small", lambda: with_shape(linear(), 0, [6]), INVALID, ["'x'", "[6]", "[-1, 3]"]),
    ("rank_too_large", lambda: with_shape(linear(), 0, [1, 2, 3]), INVALID,
     ["'x'", "[1, 2, 3]", "[-1, 3]"]),
    ("fixed_dim_wrong", lambda: with_shape(linear(), 0, [3, 2]), INVALID,
     ["'x'", "[3, 2]", "[-1, 3]"]),
    ("no_batch_model_given_batch_dim", lambda: with_shape(add_sub(), 0, [1, 16]), INVALID,
     ["INPUT0", "[1, 16]", "[16]"]),
    ("no_batch_model_wrong_dim", lambda: make_request(
        "add_sub", [("INPUT0", A[:8]), ("INPUT1", A[:8])]), INVALID, ["INPUT0", "[8]", "[16]"]),
    ("batch_above_max", lambda: make_request("linear", [("x", np.ones((65, 3), np.float32))]),
     INVALID, ["'x'", "65", "64"]),
    ("batch_zero", lambda: make_request("linear", [("x", np.ones((0, 3), np.float32))]), INVALID,
     ["'x'", "batch size 0"]),
    ("negative_dim", lambda: with_shape(linear(), 0, [-1, 3]), INVALID, ["'x'", "[-1, 3]"]),
    ("batches_disagree", int64_bool_batch_disagree, INVALID, ["ids", "mask", "batch"]),
    ("lengths_disagree_inside_the_model", int64_bool_lengths_disagree,
     grpc.StatusCode.INTERNAL, ["the model rejected the input", "size of tensor"]),
    ("raw_too_short", lambda: with_raw(linear(), 0, X.tobytes()[:-4]), INVALID,
     ["'x'", "20 bytes", "24"]),
    ("raw_too_long", lambda: with_raw(linear(), 0, X.tobytes() + b"\0\0\0\0"), INVALID,
     ["'x'", "28 bytes", "24"]),
    ("raw_and_typed", raw_and_typed, INVALID, ["INPUT1", "contents", "raw_input_contents"]),
    ("raw_count_short", raw_count_short, INVALID, ["raw_input_contents", "1", "2"]),
    ("raw_count_long", raw_count_long, INVALID, ["raw_input_contents", "2", "1"]),
    ("typed_wrong_field", typed_wrong_field, INVALID, ["INPUT1", "fp32_contents", "int_contents"]),
    ("typed_count_short", typed_count_short, INVALID, ["INPUT0", "15", "16"]),
    ("typed_count_long", typed_count_long, INVALID, ["'x'", "7", "6"]),
    ("no_data_at_all", no_data_at_all, INVALID, ["INPUT0", "0", "16"]),
    ("fp16_typed", lambda: with_datatype(
        make_request("linear", [("x", X)], typed=True), 0, "FP16"), INVALID, ["'x'", "FP16"]),
    ("unknown_output", lambda: linear(outputs=["z"]), INVALID, ["'z'", "'y'"]),
    ("duplicate_output", lambda: add_sub(outputs=["OUTPUT0", "OUTPUT0"]), INVALID,
     ["OUTPUT0", "more than once"]),
]


@pytest.mark.parametrize(
    "factory,code,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_request_fails_alone(stub, factory, code, fragments):
    expect_rpc_error(stub.ModelInfer, factory(), code, *fragments)
    assert_still_serving(stub)


def test_int_value_out_of_range_for_type_is_refused(stub):
    # UINT8 travels in uint_contents (uint32 on the wire); 300 does not fit a byte, and the
    # decoder refuses it before the datatype is compared with the model's.
    request = make_request("linear", [("x", np.array([[300, 1, 2]], np.uint32))], typed=True)
    request.inputs[0].datatype = "UINT8"
    expect_rpc_error(stub.ModelInfer, request, INVALID, "'x'", "300")
    assert_still_serving(stub)


def test_many_bad_requests_in_a_row_do_not_degrade_the_server(stub):
    for factory in (extra_input, raw_count_short, typed_wrong_field, no_data_at_all) * 10:
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(factory(), timeout=30)
        assert info.value.code() == INVALID
    assert_still_serving(stub)


def test_oversize_message_is_resource_exhausted(stub):
    # 65 MiB of FP32: over modeld's default --grpc-max-message-bytes (64 MiB).
    x = np.zeros((1, 65 * 1024 * 1024 // 4), np.float32)
    request = make_request("identity_fp32", [("INPUT0", x)])
    expect_rpc_error(stub.ModelInfer, request, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert_still_serving(stub)


def test_max_message_flag_is_honoured(launch, example_repository, tmp_path):
    import shutil

    from infer_helpers import infer, make_stub

    repository = tmp_path / "repo"
    shutil.copytree(example_repository / "identity_fp32", repository / "identity_fp32")
    shutil.copytree(example_repository / "linear", repository / "linear")
    server = launch(repository, ["--grpc-max-message-bytes=1048576"])
    stub = make_stub(server.channel())
    small = np.arange(200 * 1024 // 4, dtype=np.float32).reshape(1, -1)  # 200 KiB: fits
    _, outputs = infer(stub, make_request("identity_fp32", [("INPUT0", small)]))
    np.testing.assert_array_equal(outputs["OUTPUT0"], small)
    big = np.zeros((1, 2 * 1024 * 1024 // 4), np.float32)  # 2 MiB: over the 1 MiB limit
    expect_rpc_error(
        stub.ModelInfer,
        make_request("identity_fp32", [("INPUT0", big)]),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert_still_serving(stub)
