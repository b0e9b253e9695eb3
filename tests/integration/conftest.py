"""Fixtures for the end-to-end tests: the real modeld binary on the example repository.

Environment:
  MODELD_BINARY         the server binary (default build/bin/modeld)
  MODELD_GENERATOR_PYTHON  the interpreter that runs the torch model generators (default: the
                        one running pytest, the venv's)
  MODELD_PYTHON_STUBS   the folder holding kserve/grpc_service_pb2.py (default build/python)
  MODELD_EXAMPLE_MODELS the example repository (default examples/models; generated into a
                        temporary folder with examples/generate_models.py when missing)
  MODELD_TENSORFLOW     "off" when the binary is built without the TensorFlow backend (the
                        sanitized builds of make test-asan and test-tsan): the tests marked
                        `tensorflow` are then skipped, with that reason; default "on"
  MODELD_SANITIZER      the sanitizer the binary is built with (address, thread), if any: the
                        tests marked `measures_memory` are then skipped, with the reason
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modeld_server import (
    EXAMPLE_MODELS,
    REPO_ROOT,
    STUBS_DIR,
    ServerProcess,
    require_build,
    start_server,
)

# The generated stubs (kserve/grpc_service_pb2.py, ...) are imported as package `kserve`.
sys.path.insert(0, str(STUBS_DIR))
GENERATOR = REPO_ROOT / "examples" / "generate_models.py"
# The generators need torch: the venv's (make runs pytest with .venv/bin/python, so that is
# sys.executable), the release whose LibTorch modeld links.
GENERATOR_PYTHON = os.environ.get("MODELD_GENERATOR_PYTHON", sys.executable)


def _is_complete(repository):
    # digits has no config.pbtxt (modeld completes it from model.onnx).
    return (all((repository / name / "config.pbtxt").is_file() for name in EXAMPLE_MODELS)
            and (repository / "digits" / "1" / "model.onnx").is_file())


def pytest_collection_modifyitems(config, items):
    """Skips what the binary under test cannot do (MODELD_TENSORFLOW, MODELD_SANITIZER).

    Said by the caller rather than guessed from the binary, so a normal build that lost its
    TensorFlow backend fails the `tensorflow` tests instead of skipping them.
    """
    setting = os.environ.get("MODELD_TENSORFLOW", "on")
    if setting not in ("on", "off"):
        raise pytest.UsageError(f"MODELD_TENSORFLOW must be on or off, not {setting!r}")
    sanitizer = os.environ.get("MODELD_SANITIZER", "")
    skips = {}
    if setting == "off":
        skips["tensorflow"] = pytest.mark.skip(
            reason="MODELD_TENSORFLOW=off: this modeld has no TensorFlow backend (sanitizer "
            "runtimes refuse the RTLD_DEEPBIND it opens TensorFlow with)")
    if sanitizer:
        skips["measures_memory"] = pytest.mark.skip(
            reason=f"MODELD_SANITIZER={sanitizer}: the sanitizer's allocator keeps freed memory "
            "(quarantine, shadow), so the process's RSS says nothing about modeld's")
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def example_repository(tmp_path_factory):
    """The example model repository (see examples/generate_models.py)."""
    if "MODELD_EXAMPLE_MODELS" in os.environ:
        repository = Path(os.environ["MODELD_EXAMPLE_MODELS"])
    else:
        repository = REPO_ROOT / "examples" / "models"
        if not _is_complete(repository):
            if not GENERATOR.is_file():
                pytest.fail(f"{repository} is incomplete and {GENERATOR} does not exist")
            repository = tmp_path_factory.mktemp("example_models")
            subprocess.run(
                [GENERATOR_PYTHON, str(GENERATOR), "--out", str(repository)],
                check=True,
                timeout=300,
            )
    assert _is_complete(repository), f"{repository} lacks some of {EXAMPLE_MODELS}"
    return repository


@pytest.fixture(scope="session")
def server(example_repository):
    """modeld serving the example repository, shared by the whole session."""
    require_build()
    process = start_server(example_repository)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def stub(server):
    from infer_helpers import make_stub

    return make_stub(server.channel())


@pytest.fixture(scope="session")
def rabbitmq():
    """A private RabbitMQ node (rabbitmq_server.RabbitMQServer, with its AMQPS listener) shared
    by the whole session (by each xdist worker: one node per worker). Tests share it: each takes
    queue names of its own (rabbitmq_server.fresh_name()) or a vhost of its own
    (rabbitmq.fresh_vhost()); a test that stops, kills or reconfigures a broker starts its own
    RabbitMQServer."""
    from rabbitmq_server import RabbitMQServer, installed

    if not installed():
        pytest.skip("rabbitmq-server is not installed (/usr/lib/rabbitmq/bin/rabbitmq-server, "
                    "epmd): scripts/setup installs it")
    server = RabbitMQServer(tls=True)
    yield server
    server.close()


@pytest.fixture
def launch():
    """A factory: launch(repository, extra_args=(), wait=True, channel_credentials=None)
    -> ServerProcess.

    Every server it starts is stopped (SIGTERM, then SIGKILL after a bounded wait) at teardown.
    """
    require_build()
    started = []

    def _launch(repository, extra_args=(), wait=True, channel_credentials=None):
        if wait:
            process = start_server(repository, extra_args, channel_credentials=channel_credentials)
        else:
            process = ServerProcess(
                repository, extra_args, channel_credentials=channel_credentials
            )
        started.append(process)
        return process

    yield _launch
    for process in started:
        if process.running():
            try:
                process.stop()
            except AssertionError:
                pass  # stop() has killed it; the test itself asserts on shutdown behaviour


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the log of each server the test used to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, ServerProcess):
                tail = "\n".join(value.log_lines()[-60:])
                report.sections.append((f"modeld log of fixture '{name}' (last 60 lines)", tail))
