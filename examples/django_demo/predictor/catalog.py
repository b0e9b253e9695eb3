"""The models the demo page offers (see examples/generate_models.py for how they are made):
the form's (MODELS, one input and one output of numbers each) and the canvas's (DIGITS)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DemoModel:
    name: str
    title: str
    description: str
    size: int  # numbers per input row
    output: str  # what the outputs are
    example: tuple[float, ...]

    @property
    def example_text(self) -> str:
        return ", ".join(f"{value:g}" for value in self.example)


MODELS: dict[str, DemoModel] = {
    model.name: model
    for model in [
        DemoModel(
            name="linear",
            title="linear: y = xW + b",
            description="A linear regression; modeld serves its newest version, 2, with "
            "W = [1, -2.5, 4] and b = 1.5 (version 1 has half of each).",
            size=3,
            output="y",
            example=(1.0, 2.0, 3.0),
        ),
        DemoModel(
            name="mlp",
            title="mlp: a 256-512-512-10 perceptron",
            description="A multilayer perceptron with seeded random weights; it answers 10 "
            "logits, and the largest names the class.",
            size=256,
            output="logits",
            example=tuple(round(math.sin(i / 8.0), 2) for i in range(256)),
        ),
    ]
}
DEFAULT_MODEL = "linear"


@dataclass(frozen=True)
class DigitsModel:
    """The draw-a-digit canvas's classifier: an 8x8 image in, a class and its probabilities
    out. A scikit-learn pipeline trained on ``sklearn.datasets.load_digits()``, served as ONNX
    without a config.pbtxt (modeld completes it)."""

    name: str = "digits"
    input: str = "pixels"  # FP32 [N, 64]: the image row by row, white (16) on black (0)
    label: str = "label"  # INT64 [N] (answered as [N, 1]): the most probable class
    probabilities: str = "probabilities"  # FP32 [N, 10]: one per digit, 0 to 9
    side: int = 8  # pixels per row and column
    maximum: int = 16  # the data set's darkest ink: 16 of a 4x4 block's pixels set
    classes: int = 10

    @property
    def size(self) -> int:
        return self.side * self.side


DIGITS = DigitsModel()
