"""A folder of test models written by a generator script, cached by content under
build/test-models/<prefix><key>, shared by pytorch_models.py and onnx_models.py.

The generator runs in a subprocess (`<script> --write <folder>`, with MODELD_GENERATOR_PYTHON,
default this interpreter), so a test process never imports the libraries that write the models.
"""

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

CACHE_ROOT = Path(__file__).resolve().parents[2] / "build" / "test-models"


def content_key(parts):
    """A short key over `parts` (bytes each) and the machine type."""
    digest = hashlib.sha256()
    for part in [*parts, platform.machine().encode()]:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def ensure(script, prefix, key, what, cache_root=CACHE_ROOT, python=None):
    """<cache_root>/<prefix><key>, written by `script` when it is missing; earlier folders of
    the same prefix are removed. `what` names the models in an error."""
    folder = Path(cache_root) / f"{prefix}{key}"
    if (folder / ".complete").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".partial-{folder.name}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    python = python or os.environ.get("MODELD_GENERATOR_PYTHON", sys.executable)
    result = subprocess.run([python, str(script), "--write", str(partial)],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"writing the {what} failed:\n{result.stdout}\n{result.stderr}")
    (partial / ".complete").write_text(result.stdout)
    try:
        partial.rename(folder)
    except OSError:  # another session wrote it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    for stale in folder.parent.glob(f"{prefix}*"):  # earlier contents
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return folder
