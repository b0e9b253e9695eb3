"""What the page and the API share: turning numbers into a model input, and modeld's errors
into HTTP statuses."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import modeld

# modeld's exceptions -> HTTP status of the demo's answer (a ModeldError not listed: 502).
STATUS_FOR_ERROR: list[tuple[type[modeld.ModeldError], int]] = [
    (modeld.InvalidInput, 400),
    (modeld.ModelNotFound, 404),
    (modeld.ServerBusy, 503),
    (modeld.Unavailable, 503),
    (modeld.DeadlineExceeded, 504),
]


def status_for(error: modeld.ModeldError) -> int:
    for error_class, status in STATUS_FOR_ERROR:
        if isinstance(error, error_class):
            return status
    return 502


class BadInput(ValueError):
    """The request's numbers are not usable (the message says why)."""


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def as_batch(inputs: Any) -> tuple[np.ndarray, bool]:
    """``inputs`` (a list of numbers: one row; a list of such lists: a batch) as a float32
    batch, and whether it was a batch already."""
    if not isinstance(inputs, list) or not inputs:
        raise BadInput('"inputs" must be a non-empty list of numbers, or a list of such lists')
    if all(isinstance(row, list) for row in inputs):
        rows, batched = inputs, True
    elif not any(isinstance(row, list) for row in inputs):
        rows, batched = [inputs], False
    else:
        raise BadInput('"inputs" mixes numbers and lists')
    width = len(rows[0])
    for index, row in enumerate(rows):
        if len(row) != width or not row:
            raise BadInput(f"row {index} has {len(row)} numbers, row 0 has {width}")
        for value in row:
            if not _is_number(value):
                raise BadInput(f"{value!r} is not a finite number")
    return np.asarray(rows, dtype=np.float32), batched


def as_pixels(pixels: Any, size: int, maximum: float) -> np.ndarray:
    """``pixels`` (a list of ``size`` numbers, each from 0 to ``maximum``: an image row by
    row) as a float32 batch of one image."""
    if not isinstance(pixels, list):
        raise BadInput(f'"pixels" must be a list of {size} numbers from 0 to {maximum:g}, '
                       f"not {type(pixels).__name__}")
    if len(pixels) != size:
        raise BadInput(f'"pixels" must hold {size} numbers (an 8x8 image, row by row), '
                       f"not {len(pixels)}")
    for index, value in enumerate(pixels):
        if not _is_number(value):
            raise BadInput(f"pixel {index}, {value!r}, is not a finite number")
        if not 0 <= value <= maximum:
            raise BadInput(f"pixel {index}, {value!r}, is outside 0..{maximum:g}")
    return np.asarray([pixels], dtype=np.float32)


def format_number(value: float) -> str:
    """The shortest text that reads back as the same float32."""
    return np.format_float_positional(np.float32(value), trim="-")
