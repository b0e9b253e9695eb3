"""Builds KServe V2 gRPC requests from numpy arrays and checks the answers.

Uses the stubs generated at build time (build/python/kserve, put on sys.path by conftest.py).
Never import this module in a process that also imports tritonclient: both register
`inference.*` messages in protobuf's default descriptor pool.
"""

import re
import struct

import grpc

import numpy as np
import pytest

from kserve import grpc_service_pb2 as pb  # noqa: E402  (path set by conftest.py)
from kserve import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
from kserve import model_config_pb2 as mc  # noqa: E402,F401  (re-exported for tests)

RPC_TIMEOUT_S = 30.0

NUMPY_DTYPE = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

# The InferTensorContents field that carries each datatype (none for FP16: it travels raw).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}

# The example models' weights (examples/generate_models.py): y = x @ W + b.
LINEAR_WEIGHTS = {
    1: (np.array([[0.5], [-1.25], [2.0]], np.float32), np.array([0.75], np.float32)),
    2: (np.array([[1.0], [-2.5], [4.0]], np.float32), np.array([1.5], np.float32)),
}
LINEAR_NEWEST_VERSION = 2


def make_stub(channel):
    return pb_grpc.GRPCInferenceServiceStub(channel)


def datatype_of(array):
    for name, dtype in NUMPY_DTYPE.items():
        if array.dtype == dtype:
            return name
    raise ValueError(f"no KServe datatype for numpy dtype {array.dtype}")


def make_request(model, inputs, *, version="", request_id="", outputs=None, typed=False):
    """A ModelInferRequest.

    inputs: a list of (name, array) or (name, array, datatype). With typed=False the data goes
    in raw_input_contents (one entry per input, in order); with typed=True in each input's
    `contents` field for its datatype. outputs: names to request, or None for all.
    """
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for item in inputs:
        name, array = item[0], np.asarray(item[1])
        datatype = item[2] if len(item) > 2 else datatype_of(array)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        if typed:
            field = getattr(tensor.contents, CONTENTS_FIELD[datatype])
            field.extend(array.ravel().tolist())
        else:
            request.raw_input_contents.append(
                np.ascontiguousarray(array, dtype=NUMPY_DTYPE[datatype]).tobytes()
            )
    for name in outputs or ():
        request.outputs.add(name=name)
    return request


def decode_response(response):
    """The response's outputs as {name: array}, in response order, after checking the framing.

    Outputs must come back raw: one raw_output_contents entry per output, sized to match the
    shape and datatype, and no typed `contents`.
    """
    assert len(response.raw_output_contents) == len(response.outputs), (
        f"{len(response.outputs)} outputs but {len(response.raw_output_contents)} "
        "raw_output_contents entries"
    )
    result = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents):
        assert tensor.contents.ByteSize() == 0, f"output '{tensor.name}' also set typed contents"
        assert tensor.datatype in NUMPY_DTYPE, f"output '{tensor.name}': datatype {tensor.datatype}"
        dtype = NUMPY_DTYPE[tensor.datatype]
        shape = tuple(tensor.shape)
        expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        assert len(raw) == expected_bytes, (
            f"output '{tensor.name}' {tensor.datatype} {list(shape)} has {len(raw)} raw bytes, "
            f"expected {expected_bytes}"
        )
        assert tensor.name not in result, f"output '{tensor.name}' returned twice"
        result[tensor.name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return result


def infer(stub, request):
    """Runs ModelInfer; returns (response, {name: array})."""
    response = stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)
    return response, decode_response(response)


def matches(text, fragment):
    """A fragment is a substring, a compiled regex, or a tuple of alternatives."""
    if isinstance(fragment, tuple):
        return any(matches(text, f) for f in fragment)
    if isinstance(fragment, re.Pattern):
        return fragment.search(text) is not None
    return fragment in text


def expect_rpc_error(rpc, request, code, *fragments):
    """Calls rpc(request); asserts it fails with `code` and a message matching every fragment
    (see matches()).

    Returns the error message.
    """
    with pytest.raises(grpc.RpcError) as info:
        rpc(request, timeout=RPC_TIMEOUT_S)
    error = info.value
    details = error.details() or ""
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {details!r}"
    missing = [f for f in fragments if not matches(details, f)]
    assert not missing, f"{code.name} message {details!r} does not mention {missing}"
    return details


def linear_expected(x, version=LINEAR_NEWEST_VERSION):
    weights, bias = LINEAR_WEIGHTS[version]
    return (x.astype(np.float32) @ weights + bias).astype(np.float32)


def assert_still_serving(stub):
    """After a bad request: the server is live and a correct ModelInfer still works."""
    live = stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S)
    assert live.live is True
    x = np.array([[1.0, 2.0, 3.0], [-0.5, 0.25, 8.0]], np.float32)
    response, outputs = infer(stub, make_request("linear", [("x", x)], request_id="still-serving"))
    assert response.id == "still-serving"
    assert response.model_version == str(LINEAR_NEWEST_VERSION)
    np.testing.assert_allclose(outputs["y"], linear_expected(x), rtol=1e-6, atol=1e-6)


def serialize_bytes(array):
    """A BYTES tensor's raw contents: each element length-prefixed (4 bytes, little-endian)."""
    return b"".join(struct.pack("<I", len(v)) + v for v in np.asarray(array, object).ravel())


def parse_bytes(raw, count):
    """`count` BYTES elements out of `raw`, as an object array; asserts the layout."""
    values, offset = [], 0
    for i in range(count):
        assert offset + 4 <= len(raw), f"BYTES element {i} of {count} is missing"
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        assert offset + length <= len(raw), f"BYTES element {i} runs past the end"
        values.append(bytes(raw[offset:offset + length]))
        offset += length
    assert offset == len(raw), f"{len(raw) - offset} bytes after {count} BYTES elements"
    array = np.empty(count, dtype=object)
    array[:] = values
    return array
