"""docs/django.md run as written: sections 4 to 6 (the settings, views.py, urls.py, the async
view and tests.py) become the package ``tutorial`` at import, and then

* the tutorial's own tests run here, under its settings and URLs;
* every error the client documents gets the answer section 5's table promises, from the sync
  and the async view: raised by an ``override_model`` fn, and from a real modeld that is down
  or never answers.

The code is compiled with the lines of docs/django.md, so a failure points into the document.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import types
import unittest
from pathlib import Path
from unittest import mock

from django.test import SimpleTestCase, override_settings

import modeld
import modeld.errors
from modeld.django.checks import check_settings
from modeld.django.testing import override_model
from support import EXAMPLE_MODELS, DeadServerMixin, _close_helper_channels, _stop

# tests/integration, which support puts on sys.path
from modeld_server import start_server

DOC = Path(__file__).resolve().parents[3] / "docs" / "django.md"
PACKAGE = "tutorial"


# --- the tutorial, from the document -------------------------------------------------------


def python_blocks(text: str, sections: range) -> list[tuple[int, int, str]]:
    """(section, first line of the code, code) for each ```python block of those sections."""
    found, section, start, code = [], None, None, []
    for number, line in enumerate(text.splitlines(), start=1):
        heading = re.match(r"## (\d+)\. ", line)
        if heading:
            section = int(heading.group(1))
        elif start is None and line.strip() == "```python":
            start, code = number + 1, []
        elif start is not None and line.strip() == "```":
            if section in sections:
                found.append((section, start, "\n".join(code) + "\n"))
            start = None
        elif start is not None:
            code.append(line)
    return found


def run_block(module: types.ModuleType, line: int, code: str) -> None:
    """Runs the code in the module, compiled so that its lines are those of the document."""
    exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), module.__dict__)


def new_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = str(DOC)
    module.__package__ = PACKAGE
    sys.modules[name] = module
    setattr(sys.modules[PACKAGE], name.rpartition(".")[2], module)
    return module


def build_tutorial() -> tuple[dict, types.ModuleType, types.ModuleType]:
    """The settings namespace and the modules tutorial.views and tutorial.tests."""
    blocks = python_blocks(DOC.read_text(encoding="utf-8"), range(4, 7))
    for _, line, code in blocks:  # each block is valid Python, the ones not run here too
        compile("\n" * (line - 1) + code, str(DOC), "exec")
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    sys.modules[PACKAGE] = package
    settings = new_module(f"{PACKAGE}.settings")
    views, urls, tests = (new_module(f"{PACKAGE}.{name}") for name in ("views", "urls", "tests"))
    settings_blocks = [b for b in blocks if b[2].startswith("# settings.py")]
    assert len(settings_blocks) == 1, "section 4 has one '# settings.py' block"
    run_block(settings, *settings_blocks[0][1:])
    targets = {"# views.py": views, "# urls.py": urls, "# tests.py": tests}
    for section, line, code in blocks:
        first = code.split("\n", 1)[0]
        if section == 5:  # views.py, urls.py, and the async view added to views.py
            run_block(targets.get(first, views), line, code)
        elif section == 6:
            assert first == "# tests.py", f"docs/django.md:{line}: section 6 runs tests.py"
            run_block(tests, line, code)
    for name, module in (("views", views), ("urls", urls), ("tests", tests)):
        assert module.__dict__.keys() - {"__name__", "__doc__", "__package__", "__loader__",
                                         "__spec__", "__file__", "__builtins__"}, \
            f"docs/django.md has no {name}.py block"
    return vars(settings), views, tests


SETTINGS, VIEWS, TESTS = build_tutorial()
#: The tutorial's settings, as its tests run under them.
TUTORIAL = override_settings(ROOT_URLCONF=f"{PACKAGE}.urls", MODELD=SETTINGS["MODELD"])

# The tutorial's own tests, collected here with its settings and URLs.
TUTORIAL_TESTS = [value for value in vars(TESTS).values()
                  if isinstance(value, type) and issubclass(value, unittest.TestCase)
                  and value.__module__ == TESTS.__name__]
assert TUTORIAL_TESTS, "docs/django.md, section 6: tests.py has no TestCase"
globals().update({test.__name__: TUTORIAL(test) for test in TUTORIAL_TESTS})


# --- every documented error, sync and async ------------------------------------------------

X = {"x": ["1", "2", "3"]}
VIEWS_BY_URL = ("/score", "/ascore")

#: Each ModeldError the client documents -> (status, Retry-After, logged at ERROR).
ANSWERS = [
    (modeld.InvalidInput("input 'x' has shape [1, 2] but model 'linear' expects [-1, 3]"),
     400, None, False),
    (modeld.Unavailable("modeld is restarting"), 503, "1", False),
    (modeld.ServerBusy("the queue of model 'linear' is full"), 503, "1", False),
    (modeld.DeadlineExceeded("infer on model 'linear': no answer within the timeout of 2s"),
     504, None, False),
    (modeld.ModelFailed("RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
     502, None, True),
    (modeld.ModelNotFound("unknown model 'linear'"), 500, None, True),
    (modeld.ModelNotReady("version 1 of model 'linear' is not ready and is not loading, so "
                          "retrying will not help: cannot load .../linear/1/model.pt",
                          "UNAVAILABLE", model="linear", version="1",
                          reason="cannot load .../linear/1/model.pt"), 500, None, True),
    (modeld.Unauthenticated("missing bearer token"), 500, None, True),
    (modeld.ModeldError("malformed infer response", "UNKNOWN"), 500, None, True),
]


def raising(error: Exception):
    def fn(x):
        raise error

    return fn


class SettingsTests(SimpleTestCase):
    def test_every_modeld_setting_of_section_4_passes_manage_py_check(self):
        blocks = [(line, code) for _, line, code in
                  python_blocks(DOC.read_text(encoding="utf-8"), range(4, 5))]
        self.assertGreaterEqual(len(blocks), 2)  # settings.py, and the one with TLS
        self.assertIn("modeld.django", SETTINGS["INSTALLED_APPS"])
        for line, code in blocks:
            with self.subTest(line=line), \
                    mock.patch.dict(os.environ, {"MODELD_TOKEN": "s3cret"}):
                namespace = {"os": os}  # the TLS block reads MODELD_TOKEN
                exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), namespace)
                with override_settings(MODELD=namespace["MODELD"]):
                    self.assertEqual(check_settings(), [])


@TUTORIAL
class ErrorAnswerTests(SimpleTestCase):
    """What the views answer for each error: the table of section 5."""

    def test_every_error_the_client_documents_is_mapped(self):
        documented = {getattr(modeld.errors, name) for name in modeld.errors.__all__}
        documented = {c for c in documented if isinstance(c, type) and
                      issubclass(c, modeld.ModeldError)}
        self.assertEqual({type(error) for error, *_ in ANSWERS}, documented)
        readme = (DOC.parents[1] / "python" / "README.md").read_text(encoding="utf-8")
        for cls in documented:
            with self.subTest(cls=cls.__name__):
                self.assertIn(f"`{cls.__name__}`", readme)
                self.assertIn(f"`{cls.__name__}`", DOC.read_text(encoding="utf-8"))

    def test_each_error_sync_and_async(self):
        for error, status, retry_after, logged in ANSWERS:
            for url in VIEWS_BY_URL:
                with self.subTest(error=type(error).__name__, url=url):
                    with override_model("linear", raising(error)), \
                            self.assertLogs(VIEWS.__name__, "DEBUG") as logs:
                        # One record at least (assertLogs wants one), then the view's own.
                        logging.getLogger(VIEWS.__name__).debug("calling %s", url)
                        response = self.client.get(url, X)
                    self.assertEqual(response.status_code, status)
                    self.assertEqual(response.get("Retry-After"), retry_after)
                    self.assertEqual(response["Content-Type"], "application/json")
                    body = response.json()
                    self.assertIsInstance(body["error"], str)
                    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
                    self.assertEqual(bool(errors), logged)
                    if logged:
                        self.assertIn(error.message, errors[0].getMessage())
                        self.assertNotIn(error.message, body["error"])  # never shown
                    if status == 400:
                        self.assertEqual(body["error"], error.message)  # the caller can fix it

    def test_an_x_that_is_no_number_is_400(self):
        with override_model("linear", lambda x: x) as fake:
            for url in VIEWS_BY_URL:
                with self.subTest(url=url):
                    response = self.client.get(url, {"x": ["1", "two", "3"]})
                    self.assertEqual(response.status_code, 400)
                    self.assertEqual(response.json(), {"error": "every x must be a number"})
        self.assertEqual(fake.calls, [])

    def test_the_model_answers_both_views_alike(self):
        with override_model("linear", lambda x: x.sum(axis=1, keepdims=True) * 2):
            for url in VIEWS_BY_URL:
                with self.subTest(url=url):
                    self.assertEqual(self.client.get(url, X).json(), {"y": [12.0]})

    def test_settings_mistakes_are_left_to_django(self):
        # No ModeldError: the views let it through, Django answers 500 and logs it.
        setting = {"default": {**SETTINGS["MODELD"]["default"], "TLS_CA": "/no/such/ca.pem"}}
        with override_settings(MODELD=setting):
            for url in VIEWS_BY_URL:
                with self.subTest(url=url), \
                        self.assertRaisesMessage(ValueError, "tls_ca: no file at"):
                    self.client.get(url, X)


class RealServerErrorTests(DeadServerMixin, SimpleTestCase):
    """The views against a modeld that is not there, with the tutorial's settings otherwise:
    the async view answers 503, not Django's 500, as the sync one does."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Listens, accepts into its backlog, never answers: a modeld stuck past TIMEOUT.
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        cls.addClassCleanup(silent.close)
        cls.silent_port = silent.getsockname()[1]

    def setting(self, url: str, **options) -> override_settings:
        default = {**SETTINGS["MODELD"]["default"], "URL": url, **options}
        return override_settings(ROOT_URLCONF=f"{PACKAGE}.urls",
                                 MODELD={**SETTINGS["MODELD"], "default": default})

    def test_modeld_down_is_503_with_retry_after(self):
        dead_port = self.dead_url.rpartition(":")[2]
        for scheme in ("grpc", "http"):
            with self.setting(f"{scheme}://127.0.0.1:{dead_port}"):
                for url in VIEWS_BY_URL:
                    with self.subTest(scheme=scheme, url=url):
                        response = self.client.get(url, X)
                        self.assertEqual(response.status_code, 503)
                        self.assertEqual(response["Retry-After"], "1")

    def test_modeld_that_never_answers_is_504(self):
        for scheme in ("grpc", "http"):
            with self.setting(f"{scheme}://127.0.0.1:{self.silent_port}", TIMEOUT=0.3):
                for url in VIEWS_BY_URL:
                    with self.subTest(scheme=scheme, url=url):
                        self.assertEqual(self.client.get(url, X).status_code, 504)


class BrokenModelTests(SimpleTestCase):
    """The views against a real modeld whose "linear" failed to load (its model.pt is not
    one): 500 at once, never 503, and the load error in the log, from both views and both
    protocols."""

    @classmethod
    def setUpClass(cls):
        repository = Path(cls.enterClassContext(tempfile.TemporaryDirectory()))
        shutil.copytree(EXAMPLE_MODELS / "linear", repository / "linear")
        for version in ("1", "2"):
            (repository / "linear" / version / "model.pt").write_bytes(b"not TorchScript")
        cls.server = start_server(repository)
        cls.addClassCleanup(_stop, cls.server)
        _close_helper_channels(cls.server)
        super().setUpClass()

    def test_a_model_that_failed_to_load_is_500_and_logged_with_modelds_reason(self):
        for url in (f"grpc://{self.server.address}", f"http://{self.server.http_address}"):
            default = {**SETTINGS["MODELD"]["default"], "URL": url, "RETRIES": 3}
            setting = override_settings(ROOT_URLCONF=f"{PACKAGE}.urls",
                                        MODELD={**SETTINGS["MODELD"], "default": default})
            for view in VIEWS_BY_URL:
                with self.subTest(url=url, view=view), setting, \
                        self.assertLogs(VIEWS.__name__, "ERROR") as logs:
                    response = self.client.get(view, X)
                    self.assertEqual(response.status_code, 500)
                    self.assertIsNone(response.get("Retry-After"))
                    self.assertEqual(response.json(), {"error": "server error"})
                    [record] = logs.records
                    self.assertIn("ModelNotReady", record.getMessage())
                    self.assertIn("model.pt", record.getMessage())  # modeld's load error
