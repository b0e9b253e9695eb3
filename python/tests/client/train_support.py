"""Trainable models for the tests of train(), written at test time with the venv's torch.

Every model is the TorchScript of an ``nn.Linear(1, 1)``: input "x" and output "y", FP32 of
dims [1], batches up to 64, starting from the weight INITIAL_WEIGHT and the bias
INITIAL_BIAS. modeld trains one when its config.pbtxt has the parameter "training" (SGD on the
mean squared error here, TRAINING); :func:`line_batch` draws samples of y = 3x + 2 for it to
learn. Used by the client tests (test_train.py) and the Django tests (test_train.py there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

# The generator needs torch: the venv's (make runs pytest with .venv/bin/python, so that is
# sys.executable). MODELD_GENERATOR_PYTHON names another interpreter.
GENERATOR_PYTHON = os.environ.get("MODELD_GENERATOR_PYTHON", sys.executable)

SLOPE = 3.0
INTERCEPT = 2.0
INITIAL_WEIGHT = -1.0
INITIAL_BIAS = 0.5
#: config.pbtxt parameters of a trainable model: one SGD step on the MSE per call.
TRAINING = {
    "training": "true",
    "training_optimizer": "sgd",
    "training_learning_rate": "0.1",
    "training_loss": "mse",
}

_GENERATOR = """
import sys
import torch
from torch import nn

model = nn.Linear(1, 1)
with torch.no_grad():
    model.weight.fill_(float(sys.argv[2]))
    model.bias.fill_(float(sys.argv[3]))
torch.jit.save(torch.jit.script(model), sys.argv[1])
"""


def linear_config(name: str, parameters: Mapping[str, str] | None) -> str:
    params = "".join(
        f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}\n'
        for key, value in (parameters or {}).items()
    )
    return (
        f'name: "{name}"\nplatform: "pytorch_libtorch"\nmax_batch_size: 64\n'
        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        f"{params}"
    )


def write_linear_models(repository: Path, models: Mapping[str, Mapping[str, str] | None]) -> None:
    """Writes one model folder (version 1) per name of `models`, each with the parameters it
    maps to in its config (None: none, so not trainable). torch runs once for all of them."""
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "model.pt"
        result = subprocess.run(
            [GENERATOR_PYTHON, "-c", _GENERATOR, str(weights), str(INITIAL_WEIGHT),
             str(INITIAL_BIAS)],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"writing the TorchScript model failed:\n{result.stderr}"
        for name, parameters in models.items():
            (repository / name / "1").mkdir(parents=True)
            shutil.copyfile(weights, repository / name / "1" / "model.pt")
            (repository / name / "config.pbtxt").write_text(linear_config(name, parameters))


def line_batch(rng: np.random.Generator, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A batch of `size` samples of y = 3x + 2, x uniform in [-1, 1]: (x, y), both (size, 1)
    FP32."""
    x = rng.uniform(-1.0, 1.0, size=(size, 1)).astype(np.float32)
    return x, (SLOPE * x + INTERCEPT).astype(np.float32)


def line(x: np.ndarray) -> np.ndarray:
    """What a model that learnt the line answers for `x`."""
    return (SLOPE * np.asarray(x, np.float32) + INTERCEPT).astype(np.float32)
