"""The models the demo page offers (see examples/generate_models.py for how they are made)."""

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
