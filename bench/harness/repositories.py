"""Copies of the model repository for the three server set-ups a run compares.

- batching: the models as generated (config.pbtxt with `dynamic_batching { }`).
- direct:   the same with the dynamic_batching block removed, so modeld uses its direct,
            one-request-at-a-time scheduler ("batching off").
- overload: mlp with a small queue and a short delay, for the open-loop overload run:
            dynamic_batching { max_queue_delay_microseconds: 500
                               default_queue_policy { max_queue_size: 128 } }
"""

import re
import shutil
from pathlib import Path

OVERLOAD_QUEUE_DELAY_US = 500
OVERLOAD_QUEUE_SIZE = 128
OVERLOAD_BLOCK = (f"dynamic_batching {{ max_queue_delay_microseconds: {OVERLOAD_QUEUE_DELAY_US} "
                  f"default_queue_policy {{ max_queue_size: {OVERLOAD_QUEUE_SIZE} }} }}\n")


def _block_span(text, keyword):
    """(start, end) of `keyword { ... }` with its nested braces, or None."""
    match = re.search(rf"\b{keyword}\s*:?\s*\{{", text)
    if not match:
        return None
    depth, index = 0, match.end() - 1
    while index < len(text):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        index += 1
        if depth == 0:
            end = index + 1 if text[index:index + 1] == "\n" else index
            return match.start(), end
    raise ValueError(f"unbalanced braces after {keyword}")


def without_batching(config_text):
    span = _block_span(config_text, "dynamic_batching")
    return config_text if span is None else config_text[:span[0]] + config_text[span[1]:]


def with_batching(config_text, block="dynamic_batching { }\n"):
    return without_batching(config_text).rstrip("\n") + "\n" + block


def has_batching(config_text):
    return _block_span(config_text, "dynamic_batching") is not None


def make_copies(source, models, destination):
    """Writes <destination>/{batching,direct,overload}/<model> for each model; returns paths
    and notes (e.g. a source config without dynamic_batching, which `batching` then gets)."""
    destination = Path(destination)
    notes = []
    paths = {}
    for variant in ("batching", "direct", "overload"):
        root = destination / variant
        paths[variant] = root
        for model in models:
            shutil.copytree(Path(source) / model, root / model,
                            ignore=shutil.ignore_patterns("reference"))
            config_path = root / model / "config.pbtxt"
            text = config_path.read_text()
            if variant == "batching" and not has_batching(text):
                notes.append(f"{source}/{model}/config.pbtxt has no dynamic_batching block; "
                             "the 'batching' copy adds `dynamic_batching { }`")
                text = with_batching(text)
            elif variant == "direct":
                text = without_batching(text)
            elif variant == "overload":
                text = with_batching(text, OVERLOAD_BLOCK)
            config_path.write_text(text)
    return paths, notes
