"""The modeld package as its users install it: a wheel built from the checkout's python/ and
proto/ alone (python/setup.py generates the protobuf messages during the build, no `make
build` first), installed into a fresh venv with its declared dependencies only, calling a
real modeld over gRPC and HTTP.

The wheel is built from a copy of python/ and proto/ (without what `make build` generated in
src/modeld/_proto), so the checkout is never written to. `pip wheel` builds in an isolated
environment and `pip install` resolves the dependencies from PyPI (or pip's cache).

Needs build/bin/modeld (or MODELD_BINARY); skipped without it. Run with `make wheel-test`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from lifecycle_helpers import write_fake_model  # noqa: E402
from modeld_server import BINARY, STARTUP_TIMEOUT_S, ServerProcess  # noqa: E402

if not BINARY.is_file():
    pytest.skip(f"no modeld binary at {BINARY}; run `make build`", allow_module_level=True)

SYSTEM_PYTHON = Path("/usr/bin/python3")
# Building (the isolated environment downloads setuptools and grpcio-tools once) and
# installing (numpy, grpcio, protobuf) take seconds from pip's cache; a cold cache downloads.
PIP_TIMEOUT_S = 300
# Never in a web worker's venv: the package must not pull them in.
FORBIDDEN = ("torch", "tensorflow", "django")
MODEL = "echo"  # modeld's fake backend: OUTPUT0 = INPUT0, FP32 [4]


def _generator():
    spec = importlib.util.spec_from_file_location("_modeld_generate_protos",
                                                  REPO_ROOT / "python" / "generate_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    """The environment of pip and of the venv's Python: nothing of the checkout's on the path."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args, *, timeout, cwd=None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=_env(), timeout=timeout,
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited with {result.returncode}:\n"
                    f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


def _report(capsys, message: str) -> None:
    with capsys.disabled():
        print(f"\n[wheel-test] {message}", flush=True)


@pytest.fixture(scope="module")
def timings() -> dict[str, float]:
    return {}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, timings) -> Path:
    """The wheel `pip wheel --no-deps` builds from a copy of python/ and proto/."""
    checkout = tmp_path_factory.mktemp("checkout")
    shutil.copytree(REPO_ROOT / "proto", checkout / "proto")
    # What builds and `make build` leave in python/ is not part of a fresh checkout.
    shutil.copytree(REPO_ROOT / "python", checkout / "python",
                    ignore=shutil.ignore_patterns("_proto", "build", "dist", "*.egg-info",
                                                  "__pycache__", ".pytest_cache"))
    assert not (checkout / "python" / "src" / "modeld" / "_proto").exists()
    dist = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", checkout / "python", "-w", dist],
         timeout=PIP_TIMEOUT_S)
    timings["pip wheel"] = time.monotonic() - started
    wheels = sorted(dist.glob("modeld-*.whl"))
    assert len(wheels) == 1, f"expected one modeld wheel in {dist}, found {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel, timings) -> Path:
    """A fresh venv of the system's Python with the wheel and its declared dependencies."""
    if not SYSTEM_PYTHON.is_file():
        pytest.fail(f"{SYSTEM_PYTHON} is missing (Debian's python3 and python3-venv)")
    folder = tmp_path_factory.mktemp("venv")
    started = time.monotonic()
    _run([SYSTEM_PYTHON, "-m", "venv", folder], timeout=120)
    python = folder / "bin" / "python"
    _run([python, "-m", "pip", "install", wheel], timeout=PIP_TIMEOUT_S)
    timings["venv + pip install"] = time.monotonic() - started
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("models")
    write_fake_model(repository, MODEL)
    process = ServerProcess(repository)
    try:
        process.wait_until_listening(STARTUP_TIMEOUT_S)
        process.wait_until_ready(STARTUP_TIMEOUT_S)
        yield process
    finally:
        if process.running():
            process.stop()


def test_wheel_holds_the_generated_messages(wheel, timings, capsys):
    expected = {str(path) for path in _generator().generated_files(Path(""))}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
    missing = sorted(expected - names)
    assert not missing, f"{wheel.name} lacks {missing}"
    assert all(name.startswith(("modeld/", "modeld-")) for name in names), sorted(names)
    # Dependencies without an extra: never a framework, nor Django.
    required = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert required, metadata
    for requirement in required:
        assert not requirement.lower().startswith(FORBIDDEN), required
    _report(capsys, f"{wheel.name}: {wheel.stat().st_size:,} bytes "
                    f"({wheel.stat().st_size / 1024:.0f} KiB), {len(names)} files, "
                    f"built in {timings['pip wheel']:.1f} s; requires {', '.join(required)}")


def test_venv_has_only_the_declared_dependencies(venv, timings, capsys):
    python = venv / "bin" / "python"
    probe = "import importlib.util, json, sys; print(json.dumps({n: importlib.util.find_spec(n) " \
            "is not None for n in sys.argv[1:]}))"
    found = json.loads(_run([python, "-I", "-c", probe, *FORBIDDEN], timeout=60,
                            cwd=venv).stdout)
    assert not any(found.values()), f"the fresh venv has {found}"
    packages = json.loads(_run([python, "-m", "pip", "list", "--format=json"], timeout=60).stdout)
    listed = ", ".join(f"{p['name']} {p['version']}" for p in packages)
    _report(capsys, f"fresh venv set up in {timings['venv + pip install']:.1f} s: {listed}")


CLIENT_SCRIPT = textwrap.dedent("""\
    import json
    import sys

    import numpy as np

    import modeld

    model, urls = sys.argv[1], sys.argv[2:]
    x = np.array([[1.5, -2.0, 3.25, 4.0], [0.0, 1.0, 2.0, 1e6]], dtype=np.float32)
    report = {"modeld": modeld.__file__, "calls": {}}
    for url in urls:
        with modeld.Client(url, timeout=10.0) as client:
            y = client.predict(model, x)
            out = client.infer(model, {"INPUT0": x[:1]})
            status = client.model_status(model)
            report["calls"][url] = {
                "ready": client.ready(),
                "predict": {"dtype": str(y.dtype), "values": y.tolist()},
                "infer": {name: value.tolist() for name, value in out.items()},
                "state": status.state,
            }
    report["messages"] = sorted(
        module.__file__ for name, module in sys.modules.items()
        if name.startswith("modeld._proto.")
    )
    print(json.dumps(report))
""")


def test_client_from_the_wheel_calls_modeld(venv, server, tmp_path, capsys):
    script = tmp_path / "call_modeld.py"
    script.write_text(CLIENT_SCRIPT)
    urls = [f"grpc://{server.address}", f"http://{server.http_address}"]
    started = time.monotonic()
    # -I: only the venv's site-packages, never the checkout's python/src.
    result = _run([venv / "bin" / "python", "-I", script, MODEL, *urls], timeout=120,
                  cwd=tmp_path)
    elapsed = time.monotonic() - started
    report = json.loads(result.stdout.strip().splitlines()[-1])
    def in_venv(path):
        return Path(path).resolve().is_relative_to(venv.resolve())

    assert in_venv(report["modeld"]), report["modeld"]
    assert report["messages"], "no generated message module was imported"
    assert all(in_venv(path) for path in report["messages"]), report["messages"]
    x = [[1.5, -2.0, 3.25, 4.0], [0.0, 1.0, 2.0, 1e6]]
    for url in urls:
        call = report["calls"][url]
        assert call["ready"] is True, (url, call)
        assert call["predict"] == {"dtype": "float32", "values": x}, (url, call)
        assert call["infer"] == {"OUTPUT0": x[:1]}, (url, call)
        assert call["state"] == "READY", (url, call)
    _report(capsys, f"the wheel's client called modeld over gRPC and HTTP in {elapsed:.1f} s")
