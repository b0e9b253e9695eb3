"""The JSON API: POST /api/predict/<model> (sync) and /api/apredict/<model> (async).

Request: ``{"inputs": [1.0, 2.0, 3.0]}`` (one row) or ``{"inputs": [[...], [...]]}`` (a
batch). Answer: ``{"model": "linear", "outputs": [9.5], "pid": 1234}`` (outputs of the one
row, or one list per row of a batch; pid is the web worker that answered). Errors:
``{"error": "...", "code": "..."}`` with 400 (bad JSON or input), 404 (no such model),
405, 413, 503 (modeld unreachable or busy), 504 (modeld timed out), 502 (another modeld
error). Both are exempt from CSRF: they are for programs, not forms.
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

from .services import BadInput, as_batch, status_for


def _error(status: int, message: str, code: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message, "code": code}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _parse(request: HttpRequest) -> tuple[np.ndarray, bool] | JsonResponse:
    """The request's input batch and whether it was sent as a batch, or an error answer."""
    if request.method != "POST":
        return _error(405, "use POST with a JSON body", "METHOD_NOT_ALLOWED", Allow="POST")
    try:
        body: Any = json.loads(request.body)
    except RequestDataTooBig:
        return _error(413, "the request body is too large", "TOO_LARGE")
    except (ValueError, UnicodeDecodeError) as error:
        return _error(400, f"the body is not JSON: {error}", "BAD_JSON")
    if not isinstance(body, dict) or "inputs" not in body:
        return _error(400, 'the body must be a JSON object with "inputs"', "BAD_REQUEST")
    try:
        return as_batch(body["inputs"])
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
