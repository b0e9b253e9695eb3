"""modeld's image (Containerfile, make image), run with podman as users run it.

The repository is mounted from the host, read-only, and holds one model per backend: the
example TorchScript `linear` (y = x @ W + b, two versions), the example scikit-learn `digits`
in ONNX, and a TensorFlow SavedModel `tf_linear` (y = 3x + 2) written here. The modeld client
of the venv calls them over gRPC and HTTP. The container runs as the image's user with a
read-only root file system and a tmpfs at /tmp, as deploy/kubernetes runs it.
"""

import json
import re
import shutil
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import modeld
from podman import IMAGE, IMAGE_NO_TF, REPO_ROOT, Container, free_port, http_status, podman

sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))
import tf_models  # noqa: E402  (tests/integration: TensorFlow SavedModels written at test time)
from lifecycle_helpers import write_fake_model  # noqa: E402

EXAMPLES = REPO_ROOT / "examples" / "models"
LINEAR_V2_W = np.array([[1.0], [-2.5], [4.0]], dtype=np.float32)  # v1's doubled
LINEAR_V2_B = np.float32(1.5)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """linear and digits from examples/models, tf_linear and slow written now; readable by anyone
    (the container's user is not the files' owner)."""
    if not (EXAMPLES / "linear" / "config.pbtxt").is_file():
        pytest.fail("examples/models is missing: make image-test runs make models first")
    root = tmp_path_factory.mktemp("image_models")
    for name in ("linear", "digits"):
        shutil.copytree(EXAMPLES / name, root / name)
    tf_models.write_linear(root / "tf_linear")
    # The fake backend (built into modeld): echoes its input after 1.5 s.
    write_fake_model(root, "slow", behavior="sleep", sleep_ms=1500)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def run_modeld(repository=None, args=(), options=(), image=IMAGE):
    """modeld's image with the repository at /models (read-only), on free ports; returns the
    container and its HTTP and gRPC ports."""
    http_port, grpc_port = free_port(), free_port()
    mount = ["--volume", f"{repository}:/models:ro"] if repository is not None else []
    flags = ["--model-repository=/models", f"--http-address=127.0.0.1:{http_port}",
             f"--grpc-address=127.0.0.1:{grpc_port}", *args]
    container = Container(image, flags, ["--read-only", "--tmpfs", "/tmp", *mount,
                                         "--env", f"MODELD_HEALTHCHECK_PORT={http_port}",
                                         *options])
    return container, http_port, grpc_port


@pytest.fixture(scope="module")
def served(repository):
    container, http_port, grpc_port = run_modeld(repository)
    try:
        container.wait_for_http(f"http://127.0.0.1:{http_port}/v2/health/ready")
        yield container, http_port, grpc_port
    finally:
        container.close()


def test_the_image_is_configured_as_documented():
    image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert set(config["ExposedPorts"]) == {"8000/tcp", "8001/tcp"}
    assert set(config["Volumes"]) == {"/models"}
    assert config["Entrypoint"] == ["/opt/modeld/bin/modeld-supervisor", "--",
                                    "/opt/modeld/bin/modeld"]
    assert "--model-repository=/models" in config["Cmd"]
    # podman keeps the healthcheck beside Config (the image is in Docker's format: OCI's has none).
    assert "/v2/health/ready" in " ".join(image["Healthcheck"]["Test"])


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_every_backend_answers_through_the_client(served, scheme):
    _, http_port, grpc_port = served
    port = grpc_port if scheme == "grpc" else http_port
    with modeld.Client(f"{scheme}://127.0.0.1:{port}") as client:
        assert client.ready()
        x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], dtype=np.float32)
        np.testing.assert_allclose(client.predict("linear", x), x @ LINEAR_V2_W + LINEAR_V2_B,
                                   rtol=1e-6)
        tf_x = np.array([[1.0], [-2.0]], dtype=np.float32)
        np.testing.assert_allclose(client.predict("tf_linear", tf_x), tf_x * 3 + 2, rtol=1e-6)
        reference = EXAMPLES / "digits" / "reference"
        images = np.load(reference / "input.npy")
        outputs = client.infer("digits", {"pixels": images})
        np.testing.assert_array_equal(outputs["label"].reshape(-1), np.load(reference / "label.npy"))


def test_it_runs_as_the_unprivileged_user_on_a_read_only_root(served):
    container, _, _ = served
    # modeld-supervisor is PID 1; modeld is its child. Both as 10001.
    status = container.exec("cat", "/proc/1/status", check=True).stdout
    assert any(line.split()[1:3] == ["10001", "10001"] for line in status.splitlines()
               if line.startswith("Uid:")), status
    refused = container.exec("touch", "/opt/modeld/written")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert container.exec("touch", "/tmp/scratch").returncode == 0


def test_the_healthcheck_reports_healthy(served):
    container, _, _ = served
    result = podman("healthcheck", "run", container.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sigterm_drains_and_exits_0(repository):
    container, http_port, grpc_port = run_modeld(repository)
    try:
        container.wait_for_http(f"http://127.0.0.1:{http_port}/v2/health/ready")
        with modeld.Client(f"grpc://127.0.0.1:{grpc_port}") as client:
            # A request that takes 1.5 s is in flight when SIGTERM comes: it is answered.
            x = np.arange(4, dtype=np.float32).reshape(1, 4)
            with ThreadPoolExecutor(1) as pool:
                slow = pool.submit(client.predict, "slow", x, timeout=30)
                wait_in_flight(http_port, "slow")
                podman("kill", "--signal", "TERM", container.name)
                np.testing.assert_array_equal(slow.result(), x)
        assert container.wait(timeout=60) == 0, container.logs()
        logs = container.logs()
        assert "finishing in-flight requests" in logs, logs
        assert "exiting with status 0" in logs, logs
    finally:
        container.close()


def wait_in_flight(http_port, model, timeout=30):
    """Waits until modeld's metrics show a request of `model` running."""
    pattern = re.compile(rf'^modeld_inflight_requests{{model="{model}",[^}}]*}} ([1-9]\d*)', re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            if pattern.search(response.read().decode()):
                return
        time.sleep(0.05)
    raise AssertionError(f"no request of {model} in flight within {timeout} s")


def test_without_a_repository_mounted_it_says_so_and_stays_not_ready():
    container, http_port, _ = run_modeld()
    try:
        container.wait_for_log("holds no models", timeout=60)
        assert http_status(f"http://127.0.0.1:{http_port}/v2/health/live") == 200
        # Not ready, and staying so: no crash loop, no restart.
        for _ in range(5):
            assert http_status(f"http://127.0.0.1:{http_port}/v2/health/ready") == 503
            time.sleep(0.2)
        assert container.state()[0], container.logs()
        assert "is the repository mounted there?" in container.logs()
        assert "restarting" not in container.logs().lower()
    finally:
        container.close()


def test_a_wrong_flag_exits_non_zero_with_modelds_message(repository):
    container, _, _ = run_modeld(repository, ["--no-such-flag=1"])
    try:
        code = container.wait(timeout=60)
        logs = container.logs()
        assert code == 2, logs
        assert "no-such-flag" in logs, logs
    finally:
        container.close()


def test_the_variant_without_tensorflow_serves_the_others_and_says_what_it_lacks(repository):
    container, http_port, grpc_port = run_modeld(repository, image=IMAGE_NO_TF)
    try:
        container.wait_for_http(f"http://127.0.0.1:{http_port}/v2/health/ready")
        with modeld.Client(f"grpc://127.0.0.1:{grpc_port}") as client:
            x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
            np.testing.assert_allclose(client.predict("linear", x), x @ LINEAR_V2_W + LINEAR_V2_B,
                                       rtol=1e-6)
            status = client.model_status("tf_linear")
            assert status.state == "UNAVAILABLE", status
            assert "TensorFlow" in status.reason, status
        assert "/opt/modeld/lib/modeld/libtensorflow" not in container.exec(
            "ls", "/opt/modeld/lib/modeld", check=True).stdout
    finally:
        container.close()
