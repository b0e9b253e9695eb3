"""Running modeld's images with podman for the image tests (make image-test).

Every podman call on these machines needs the options in PODMAN and ULIMITS (README,
"Deploy"); containers share the host's network (bridge networking needs iptables), so each
one listens on ports of its own, from free_port().

Environment: MODELD_IMAGE, MODELD_IMAGE_NO_TF, MODELD_DEMO_IMAGE (default: the tags make image
and make image-no-tensorflow give).
"""

import os
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs", "--events-backend=file"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = os.environ.get("MODELD_IMAGE", "localhost/modeld:latest")
IMAGE_NO_TF = os.environ.get("MODELD_IMAGE_NO_TF", "localhost/modeld:latest-no-tensorflow")
DEMO_IMAGE = os.environ.get("MODELD_DEMO_IMAGE", "localhost/modeld-demo:latest")
START_TIMEOUT_S = 120


def podman(*args, check=True, timeout=120, **kwargs):
    """Runs `podman ARGS`; returns the CompletedProcess (text, output captured)."""
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout,
                            **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {shlex.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url, timeout=2.0):
    """The HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class Container:
    """One detached container (podman run -d), removed by close()."""

    def __init__(self, image, args=(), run_options=(), name=None):
        self.name = name or f"modeld-test-{os.getpid()}-{free_port()}"
        podman("rm", "--force", "--ignore", self.name, check=False)
        podman("run", "--detach", "--name", self.name, "--network=host", *ULIMITS,
               *run_options, image, *args)

    def logs(self):
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self):
        """podman's State of the container: Running, ExitCode, Health.Status, ..."""
        fmt = "{{.State.Running}} {{.State.ExitCode}}"
        running, code = podman("inspect", "--format", fmt, self.name).stdout.split()
        return running == "true", int(code)

    def exec(self, *command, check=False):
        return podman("exec", self.name, *command, check=check)

    def wait(self, timeout=60):
        """Waits for the container to exit; returns its exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running, code = self.state()
            if not running:
                return code
            time.sleep(0.2)
        raise AssertionError(f"{self.name} still runs after {timeout} s; its log:\n{self.logs()}")

    def wait_for_log(self, text, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = self.logs()
            if text in logs:
                return logs
            if not self.state()[0]:
                break
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not log {text!r}; its log:\n{self.logs()}")

    def wait_for_http(self, url, status=200, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http_status(url) == status:
                return
            if not self.state()[0]:
                break
            time.sleep(0.2)
        raise AssertionError(f"{url} did not answer {status}; {self.name}'s log:\n{self.logs()}")

    def close(self):
        podman("rm", "--force", "--time", "5", self.name, check=False)
