"""The form of the demo page: a model and its input numbers."""

from __future__ import annotations

import math
import re

from django import forms

from .catalog import MODELS

SEPARATORS = re.compile(r"[\s,]+")


def parse_numbers(text: str) -> list[float]:
    """Numbers separated by commas (and/or white space); ValidationError naming a bad one."""
    pieces = [piece for piece in SEPARATORS.split(text.strip()) if piece]
    if not pieces:
        raise forms.ValidationError("Enter the input numbers, separated by commas.",
                                    code="empty")
    numbers = []
    for position, piece in enumerate(pieces, start=1):
        try:
            value = float(piece)
        except ValueError:
            raise forms.ValidationError(
                "Number %(position)d, %(piece)s, is not a number.", code="not_a_number",
                params={"position": position, "piece": repr(piece[:40])}) from None
        if not math.isfinite(value):
            raise forms.ValidationError(
                "Number %(position)d, %(piece)s, is not finite.", code="not_finite",
                params={"position": position, "piece": repr(piece[:40])})
        numbers.append(value)
    return numbers


class PredictForm(forms.Form):
    model = forms.ChoiceField(
        choices=[(name, model.title) for name, model in MODELS.items()],
        widget=forms.Select(attrs={"id": "model"}),
    )
    inputs = forms.CharField(
        max_length=20_000,
        widget=forms.Textarea(attrs={"id": "inputs", "rows": 4, "spellcheck": "false"}),
        help_text="Comma-separated numbers.",
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        name, text = cleaned.get("model"), cleaned.get("inputs")
        if name is None or text is None:
            return cleaned
        try:
            numbers = parse_numbers(text)
        except forms.ValidationError as error:
            self.add_error("inputs", error)
            return cleaned
        expected = MODELS[name].size
        if len(numbers) != expected:
            self.add_error("inputs", forms.ValidationError(
                "%(model)s takes %(expected)d numbers; you entered %(count)d.",
                code="wrong_count",
                params={"model": name, "expected": expected, "count": len(numbers)}))
            return cleaned
        cleaned["numbers"] = numbers
        return cleaned
