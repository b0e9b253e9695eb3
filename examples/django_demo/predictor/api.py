"""The JSON API: POST /api/predict/<model> (sync) and /api/apredict/<model> (async), and
POST /api/digits (the page's draw-a-digit canvas).

Request: ``{"inputs": [1.0, 2.0, 3.0]}`` (one row) or ``{"inputs": [[...], [...]]}`` (a
batch). Answer: ``{"model": "linear", "outputs": [9.5], "pid": 1234}`` (outputs of the one
row, or one list per row of a batch; pid is the web worker that answered). Errors:
``{"error": "...", "code": "..."}`` with 400 (bad JSON or input), 404 (no such model),
405, 413, 503 (modeld unreachable or busy), 504 (modeld timed out), 502 (another modeld
error). All are exempt from CSRF: they only compute an answer, change nothing and read no
cookie (the canvas's script calls /api/digits as any program would).

/api/digits: ``{"pixels": [64 numbers from 0 to 16]}`` (an 8x8 image row by row, white ink
16 on black 0, as in scikit-learn's digits data set) -> ``{"model": "digits", "label": 3,
"probabilities": [10 numbers, for 0 to 9], "pid": 1234}``; the same errors.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import modeld
import modeld.django

from .catalog import DIGITS
from .services import BadInput, as_batch, as_pixels, status_for


def _error(status: int, message: str, code: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message, "code": code}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _body(request: HttpRequest, key: str) -> Any | JsonResponse:
    """``body[key]`` of the request's JSON object body, or an error answer."""
    if request.method != "POST":
        return _error(405, "use POST with a JSON body", "METHOD_NOT_ALLOWED", Allow="POST")
    try:
        body: Any = json.loads(request.body)
    except RequestDataTooBig:
        return _error(413, "the request body is too large", "TOO_LARGE")
    except (ValueError, UnicodeDecodeError) as error:
        return _error(400, f"the body is not JSON: {error}", "BAD_JSON")
    if not isinstance(body, dict) or key not in body:
        return _error(400, f'the body must be a JSON object with "{key}"', "BAD_REQUEST")
    return body[key]


def _parse(request: HttpRequest) -> tuple[np.ndarray, bool] | JsonResponse:
    """The request's input batch and whether it was sent as a batch, or an error answer."""
    inputs = _body(request, "inputs")
    if isinstance(inputs, JsonResponse):
        return inputs
    try:
        return as_batch(inputs)
    except BadInput as error:
        return _error(400, str(error), "BAD_INPUT")


def _answer(model: str, y: np.ndarray, batched: bool) -> JsonResponse:
    outputs = y if batched else y[0]
    return JsonResponse({"model": model, "outputs": outputs.tolist(), "pid": os.getpid()})


def _modeld_error(error: modeld.ModeldError) -> JsonResponse:
    status = status_for(error)
    headers = {"Retry-After": "1"} if status == 503 else {}
    return _error(status, error.message, error.code, **headers)


@csrf_exempt
def predict(request: HttpRequest, model: str) -> JsonResponse:
    parsed = _parse(request)
    if isinstance(parsed, JsonResponse):
        return parsed
    x, batched = parsed
    try:
        y = modeld.django.predict(model, x)
    except modeld.ModeldError as error:
        return _modeld_error(error)
    return _answer(model, y, batched)


@csrf_exempt
async def apredict(request: HttpRequest, model: str) -> JsonResponse:
    parsed = _parse(request)
    if isinstance(parsed, JsonResponse):
        return parsed
    x, batched = parsed
    try:
        y = await modeld.django.apredict(model, x)
    except modeld.ModeldError as error:
        return _modeld_error(error)
    return _answer(model, y, batched)


@csrf_exempt
def digits(request: HttpRequest) -> JsonResponse:
    """The canvas's drawing, downsampled to 8x8 by the page, classified by modeld's digits."""
    pixels = _body(request, "pixels")
    if isinstance(pixels, JsonResponse):
        return pixels
    try:
        x = as_pixels(pixels, DIGITS.size, DIGITS.maximum)
    except BadInput as error:
        return _error(400, str(error), "BAD_INPUT")
    try:
        outputs = modeld.django.infer(DIGITS.name, {DIGITS.input: x})
    except modeld.ModeldError as error:
        return _modeld_error(error)
    try:
        # modeld answers scikit-learn's label [N] as [N, 1] (docs/onnx.md): one number either way.
        (label,) = np.asarray(outputs[DIGITS.label]).reshape(-1).tolist()
        probabilities = np.asarray(outputs[DIGITS.probabilities], dtype=np.float32).reshape(-1)
    except (KeyError, ValueError, TypeError) as error:
        return _error(502, f"{DIGITS.name} answered unexpected outputs {sorted(outputs)}: "
                      f"{error!r}", "BAD_ANSWER")
    if probabilities.size != DIGITS.classes:
        return _error(502, f"{DIGITS.name} answered {probabilities.size} probabilities, not "
                      f"{DIGITS.classes}", "BAD_ANSWER")
    return JsonResponse({"model": DIGITS.name, "label": int(label),
                         "probabilities": probabilities.tolist(), "pid": os.getpid()})
