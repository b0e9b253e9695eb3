"""The in-process baseline of the demo's memory figure (bench/demo_memory.py).

The pattern modeld replaces: a Django site whose every Gunicorn worker loads the model itself
(torch.jit.load) and runs it inside the request. Same Django, same Gunicorn, same model and
the same JSON endpoint shape as the demo's /api/predict/<model>; only where the model lives
differs. Runs with the venv's Python and torch (bench/demo_memory.py starts it).
"""

import os

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "urls"
DATABASES: dict = {}
USE_TZ = True
MODEL_REPOSITORY = os.environ.get("MODEL_REPOSITORY", "examples/models")
