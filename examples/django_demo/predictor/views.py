"""The demo page: choose a model, enter its input numbers, see modeld's prediction; or draw a
digit on the canvas (its script asks POST /api/digits, see api.py)."""

from __future__ import annotations

import os

import numpy as np
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

import modeld
import modeld.django

from .catalog import DEFAULT_MODEL, DIGITS, MODELS
from .forms import PredictForm
from .services import format_number, status_for


@require_http_methods(["GET", "HEAD", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """GET: the form (``?model=mlp`` preselects a model and its example). POST: predict."""
    context: dict = {}
    status = 200
    if request.method == "POST":
        form = PredictForm(request.POST)
        if form.is_valid():
            name = form.cleaned_data["model"]
            x = np.asarray([form.cleaned_data["numbers"]], dtype=np.float32)  # a batch of one
            try:
                y = modeld.django.predict(name, x)
            except modeld.ModeldError as error:
                context["error"] = f"modeld could not answer: {error.message}"
                status = status_for(error)
            else:
                context["result"] = _result(name, y[0])
    else:
        name = request.GET.get("model", DEFAULT_MODEL)
        if name not in MODELS:
            name = DEFAULT_MODEL
        form = PredictForm(initial={"model": name, "inputs": MODELS[name].example_text})
    context.update(
        form=form,
        models=MODELS.values(),
        examples={m.name: {"size": m.size, "example": m.example_text} for m in MODELS.values()},
        digits=DIGITS,
        modeld_url=settings.MODELD["default"]["URL"],
        pid=os.getpid(),
    )
    return render(request, "predictor/index.html", context, status=status)


def _result(name: str, row: np.ndarray) -> dict:
    values = [format_number(v) for v in row.reshape(-1)]
    result = {"model": name, "output": MODELS[name].output, "values": values}
    if len(values) > 1:
        result["argmax"] = int(np.argmax(row))
    return result
