"""Every KServe datatype through the server and back (fake identity models "id_<datatype>")."""

from __future__ import annotations

import numpy as np
import pytest
from client_support import FAKE_TYPES

import modeld

VALUES = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([[0, 255, 7]], dtype=np.uint8),
    "UINT16": np.array([[0, 65535, 7]], dtype=np.uint16),
    "UINT32": np.array([[0, 2**32 - 1, 7]], dtype=np.uint32),
    "UINT64": np.array([[0, 2**64 - 1, 7]], dtype=np.uint64),
    "INT8": np.array([[-128, 127, 0]], dtype=np.int8),
    "INT16": np.array([[-(2**15), 2**15 - 1, 0]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1, 0]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1, 0]], dtype=np.int64),
    "FP16": np.array([[0.5, -65504.0, np.inf]], dtype=np.float16),
    "FP32": np.array([[1.5, -3.25e38, np.nan]], dtype=np.float32),
    "FP64": np.array([[1e-300, -2.5, np.pi]], dtype=np.float64),
}


@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_numeric_round_trip(fake_client, datatype):
    x = VALUES[datatype]
    y = fake_client.predict(f"id_{datatype.lower()}", x)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


def test_every_fake_model_is_covered():
    assert set(VALUES) | {"BYTES"} == set(FAKE_TYPES)


def test_bytes_round_trip(fake_client):
    x = np.array([[b"hello", b"", b"\x00\xff binary"], [b"a" * 1000, b"\xe2\x82\xac", b"z"]],
                 dtype=object)
    y = fake_client.predict("id_bytes", x)
    assert y.dtype == object and y.shape == (2, 3)
    assert y.tolist() == x.tolist()
    assert all(isinstance(v, bytes) for v in y.flat)


def test_bytes_from_str_and_lists(fake_client):
    # str elements are sent as UTF-8; a nested list of str is BYTES for a BYTES input
    y = fake_client.predict("id_bytes", [["grüße", "€"], ["", "x"]])
    assert y.tolist() == [["grüße".encode(), "€".encode()], [b"", b"x"]]
    fixed = np.array([[b"ab", b"c"]])  # numpy fixed-width bytes ('S2')
    assert fake_client.predict("id_bytes", fixed).tolist() == [[b"ab", b"c"]]
    unicode = np.array([["ab", "ç"]])  # numpy fixed-width str ('U2')
    assert fake_client.predict("id_bytes", unicode).tolist() == [[b"ab", "ç".encode()]]


@pytest.mark.parametrize("datatype,values", [
    ("INT8", [[1, -2, 127]]),
    ("UINT16", [[0, 65535]]),
    ("INT32", [[True, False]]),
    ("FP16", [[1.5, 2]]),
    ("FP64", [[1, 2]]),
    ("FP32", np.array([[1, 2]], dtype=np.int64)),
    ("UINT8", np.array([[1, 200]], dtype=np.int64)),
])
def test_safe_casts_to_the_declared_datatype(fake_client, datatype, values):
    y = fake_client.predict(f"id_{datatype.lower()}", values)
    assert y.dtype == modeld._codec.DTYPES[datatype]
    np.testing.assert_array_equal(y, np.asarray(values).astype(y.dtype))


@pytest.mark.parametrize("datatype,values,sent", [
    ("INT8", [[1, 300]], "INT64"),  # does not fit: not cast, the server names the mismatch
    ("UINT32", [[-1, 2]], "INT64"),
    ("INT32", [[1.0, 2.0]], "FP64"),  # floats never become integers
    ("BOOL", [[0, 1]], "INT64"),  # numbers never become bool
    ("FP32", [["a", "b"]], "BYTES"),
])
def test_unsafe_casts_are_left_to_the_server(fake_client, datatype, values, sent):
    with pytest.raises(modeld.InvalidInput) as info:
        fake_client.predict(f"id_{datatype.lower()}", values)
    model = f"id_{datatype.lower()}"
    assert f"datatype {sent} but model '{model}' expects {datatype}" in str(info.value)


def test_large_tensor(fake_client):
    x = np.random.default_rng(1).standard_normal((64, 65536)).astype(np.float32)  # 16 MiB
    np.testing.assert_array_equal(fake_client.predict("id_fp32", x), x)
