"""POST /api/predict/<model> {"inputs": [...]} -> {"model", "outputs", "pid"}, in process."""

import json
import os
import threading

import torch
from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

_models: dict[str, torch.jit.ScriptModule] = {}
_lock = threading.Lock()


def _model(name: str) -> torch.jit.ScriptModule:
    """Loads the model once per worker process, as a Django app doing it itself would."""
    with _lock:
        if name not in _models:
            file = os.path.join(settings.MODEL_REPOSITORY, name, "1", "model.pt")
            _models[name] = torch.jit.load(file).eval()
        return _models[name]


@csrf_exempt
def predict(request, model: str):
    inputs = torch.tensor(json.loads(request.body)["inputs"], dtype=torch.float32)
    with torch.inference_mode():
        outputs = _model(model)(inputs.reshape(1, -1))
    return JsonResponse({"model": model, "outputs": outputs.reshape(-1).tolist(),
                         "pid": os.getpid()})


urlpatterns = [path("api/predict/<str:model>", predict)]
