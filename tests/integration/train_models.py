"""Writes the TorchScript modules of the online-learning tests (run with the venv's python,
which has torch): train_models.py OUT_DIR.

  regression.pt       y = x @ W + b with W = 0.5, b = 0 (one input, one output), trained by
                      modeld's own step (no train_step)
  regression_step.pt  the same, with train_step(x, y) returning the mean squared error (modeld
                      back-propagates it and steps its optimizer)
  classifier.pt       scores = x @ W + b for 3 classes of 2 features (cross_entropy)
  stamp.pt            forward(x) -> a buffer of 262,144 floats, one row per item;
                      train_step(x, t) fills the buffer with mean(t) and returns the squared
                      distance before it (no grad: the step is its own). An inference that saw
                      a half-updated buffer would get a row of two values.
"""

import sys
from pathlib import Path

import torch
from torch import nn


class Regression(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[0.5]]))
        self.bias = nn.Parameter(torch.tensor([0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class RegressionStep(Regression):
    @torch.jit.export
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((self.forward(x) - y) ** 2).mean()


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 3)
        with torch.no_grad():
            self.layer.weight.zero_()
            self.layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class Stamp(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("values", torch.zeros(1 << 18))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.values.unsqueeze(0).expand(x.shape[0], -1).clone()

    @torch.jit.export
    def train_step(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        target = t.mean()
        loss = ((self.values - target) ** 2).mean()
        self.values.fill_(target)
        return loss


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, module in [("regression", Regression()), ("regression_step", RegressionStep()),
                         ("classifier", Classifier()), ("stamp", Stamp())]:
        torch.jit.save(torch.jit.script(module.eval()), str(out / f"{name}.pt"))


if __name__ == "__main__":
    main()
