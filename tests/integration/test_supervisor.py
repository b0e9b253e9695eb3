"""modeld-supervisor: runs modeld as a child and keeps it running (src/supervisor/supervise.h).

The real binaries: build/bin/modeld-supervisor (MODELD_SUPERVISOR_BINARY) running
build/bin/modeld (MODELD_BINARY) on the example repository. modeld is given fixed ports
(picked free by binding port 0 first), since every restart must come back on the same ones.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modeld_server import BINARY, REPO_ROOT
from lifecycle_helpers import http_call
from process_log import ProcessLog

SUPERVISOR = Path(
    os.environ.get(
        "MODELD_SUPERVISOR_BINARY", REPO_ROOT / "build" / "bin" / "modeld-supervisor"
    )
)
STARTUP_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0
STARTED_RE = re.compile(r"\[supervisor\] started child pid (\d+)")
DELAY_RE = re.compile(r"restarting in (\d+) ms")
LINEAR_REQUEST = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binaries():
    for binary in (SUPERVISOR, BINARY):
        if not binary.is_file():
            pytest.fail(f"{binary} not found; build it first (cmake --build build)")


def run_supervisor(*args, timeout=EXIT_TIMEOUT_S):
    require_binaries()
    return subprocess.run(
        [str(SUPERVISOR), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def http_request(port, method, path, body=None, timeout=5.0):
    """(status, parsed JSON or None); raises OSError when nothing listens."""
    status, data = http_call(f"127.0.0.1:{port}", method, path, body, timeout)
    return status, data if not isinstance(data, bytes) else None


def is_ready(port):
    try:
        return http_request(port, "GET", "/v2/health/ready", timeout=1.0)[0] == 200
    except OSError:
        return False


def assert_linear_infers(port):
    status, body = http_request(port, "POST", "/v2/models/linear/infer", LINEAR_REQUEST)
    assert status == 200, body
    (output,) = body["outputs"]
    # Version 2: y = 1*1 - 2.5*2 + 4*3 + 1.5.
    assert output["name"] == "y" and output["data"] == [9.5], body


def pid_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Supervisor:
    """One modeld-supervisor process; its stdout and stderr (and the child's) read on a thread."""

    def __init__(self, command, flags=()):
        require_binaries()
        self.args = [str(SUPERVISOR), *flags, "--", *command]
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.output = ProcessLog(self.proc, "modeld-supervisor")

    @property
    def log(self):
        return self.output.text

    def wait_for_log(self, pattern, count=1, timeout=STARTUP_TIMEOUT_S):
        """Waits until `pattern` has matched `count` times; returns the matches."""
        return self.output.wait_for(pattern, count, timeout)

    def child_pids(self):
        """The pids the log says were started, in order."""
        return [int(m.group(1)) for m in STARTED_RE.finditer(self.log)]

    def current_children(self):
        """The supervisor's live children, from /proc."""
        pids = []
        for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            pids += [int(pid) for pid in children.read_text().split()]
        return pids

    def wait(self, timeout=EXIT_TIMEOUT_S):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the supervisor did not exit within {timeout}s:\n{self.log}")
        self.output.join(timeout=EXIT_TIMEOUT_S)
        self.proc.stdout.close()
        return code

    def kill(self):
        """Leaves nothing running: the children first (PDEATHSIG would only send SIGTERM)."""
        for pid in self.current_children() if self.proc.poll() is None else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=EXIT_TIMEOUT_S)


@pytest.fixture
def supervise():
    """A factory: supervise(command, flags=()) -> Supervisor; all are killed at teardown."""
    started = []

    def _supervise(command, flags=()):
        supervisor = Supervisor(command, flags)
        started.append(supervisor)
        return supervisor

    yield _supervise
    for supervisor in started:
        if supervisor.proc.poll() is None:
            supervisor.kill()
        if supervisor.proc.stdout and not supervisor.proc.stdout.closed:
            supervisor.output.join(timeout=5)
            supervisor.proc.stdout.close()


def modeld_command(repository, http_port):
    return [
        str(BINARY),
        f"--model-repository={repository}",
        f"--grpc-address=127.0.0.1:{free_port()}",
        f"--http-address=127.0.0.1:{http_port}",
    ]


def wait_until_ready(supervisor, port, timeout=STARTUP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not is_ready(port):
        if supervisor.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"modeld did not become ready on :{port}:\n{supervisor.log}")
        time.sleep(0.02)


@pytest.fixture
def serving(supervise, example_repository):
    """A supervised modeld, ready: (supervisor, http_port, seconds from start to ready)."""
    port = free_port()
    started = time.monotonic()
    supervisor = supervise(modeld_command(example_repository, port))
    wait_until_ready(supervisor, port)
    load_time = time.monotonic() - started
    assert len(supervisor.child_pids()) == 1, supervisor.log
    return supervisor, port, load_time


def test_killed_child_is_restarted_and_serves_again(serving):
    supervisor, port, load_time = serving
    (first,) = supervisor.child_pids()
    assert supervisor.current_children() == [first]
    killed_at = time.monotonic()
    os.kill(first, signal.SIGKILL)
    supervisor.wait_for_log(rf"child pid {first} killed by signal SIGKILL \(9\); restarting in")
    second = int(supervisor.wait_for_log(STARTED_RE.pattern, count=2)[1].group(1))
    assert second != first
    wait_until_ready(supervisor, port)
    restart_time = time.monotonic() - killed_at
    assert_linear_infers(port)
    assert supervisor.current_children() == [second]
    assert not pid_exists(first)
    # The default backoff is 0.5 s; the rest is modeld loading the repository again.
    assert restart_time <= 2.0 + load_time + 1.0, (restart_time, load_time, supervisor.log)


def test_a_stuck_model_run_gets_modeld_restarted(supervise, tmp_path):
    # The watchdog and the supervisor together: a run that never returns makes modeld exit 3
    # (MODELD_SUPERVISED=1), and the supervisor starts a fresh one that serves again.
    repository = tmp_path / "repo"
    (repository / "hang" / "1").mkdir(parents=True)
    (repository / "hang" / "config.pbtxt").write_text(
        'backend: "fake"\n'
        'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'parameters { key: "sleep_ms" value { string_value: "60000" } }\n')
    port = free_port()
    supervisor = supervise([*modeld_command(repository, port), "--watchdog-seconds=1"])
    wait_until_ready(supervisor, port)
    (first,) = supervisor.child_pids()
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1]}]}

    def hang():
        try:
            http_request(port, "POST", "/v2/models/hang/infer", body, timeout=30)
        except OSError:
            pass  # expected: modeld exits under this request

    threading.Thread(target=hang, daemon=True).start()
    supervisor.wait_for_log(rf"child pid {first} exited with status 3; restarting in", timeout=10)
    second = int(supervisor.wait_for_log(STARTED_RE.pattern, count=2)[1].group(1))
    assert second != first
    wait_until_ready(supervisor, port)
    assert "an instance has been inside one run" in supervisor.log


def test_sigterm_is_forwarded_and_nothing_restarts(serving):
    supervisor, port, _ = serving
    (child,) = supervisor.child_pids()
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.wait() == 0, supervisor.log
    log = supervisor.log
    assert f"received SIGTERM; forwarding it to child pid {child}" in log
    assert "received SIGTERM" in log.split("forwarding it to child")[1]  # modeld's own line
    assert "shutting down" in log
    assert f"child pid {child} exited with status 0" in log
    assert supervisor.child_pids() == [child], log
    assert not pid_exists(child)
    assert not is_ready(port)


def test_sighup_is_forwarded_and_the_child_keeps_serving(serving):
    supervisor, port, _ = serving
    (child,) = supervisor.child_pids()
    supervisor.proc.send_signal(signal.SIGHUP)
    supervisor.wait_for_log(rf"received SIGHUP; forwarding it to child pid {child}")
    time.sleep(1.0)  # a child killed by it would have been reaped and logged by now
    assert supervisor.proc.poll() is None
    assert supervisor.child_pids() == [child], supervisor.log
    assert supervisor.current_children() == [child], supervisor.log
    assert "killed by signal" not in supervisor.log
    assert is_ready(port)
    assert_linear_infers(port)


def test_crash_loop_gives_up_with_growing_backoff(supervise):
    supervisor = supervise(
        ["/bin/sh", "-c", "exit 1"],
        [
            "--backoff-initial-ms=50",
            "--backoff-max-ms=300",
            "--crash-loop-restarts=4",
            "--crash-loop-window-seconds=30",
        ],
    )
    started = time.monotonic()
    assert supervisor.wait() == 1, supervisor.log
    elapsed = time.monotonic() - started
    log = supervisor.log
    assert [int(d) for d in DELAY_RE.findall(log)] == [50, 100, 200, 300], log
    assert len(supervisor.child_pids()) == 5, log
    assert log.count("exited with status 1") == 5, log
    assert "crash loop: 4 restarts in 30 s; giving up" in log
    assert elapsed >= 0.65, elapsed  # the backoffs were waited, not just logged


def test_usage_error_is_not_restarted(supervise, example_repository):
    command = modeld_command(example_repository, free_port()) + ["--no-such-flag=1"]
    supervisor = supervise(command, ["--backoff-initial-ms=50"])
    assert supervisor.wait() == 2, supervisor.log
    log = supervisor.log
    assert "no-such-flag" in log  # modeld's own message
    assert "exited with status 2" in log
    assert len(supervisor.child_pids()) == 1, log
    assert "restarting in" not in log


def test_child_sees_modeld_supervised_and_clean_exit_stops(supervise):
    supervisor = supervise(["/bin/sh", "-c", 'echo "supervised=$MODELD_SUPERVISED"'])
    assert supervisor.wait() == 0, supervisor.log
    assert "supervised=1" in supervisor.log
    assert len(supervisor.child_pids()) == 1


def test_stop_during_backoff_exits_at_once(supervise):
    supervisor = supervise(["/bin/sh", "-c", "exit 3"], ["--backoff-initial-ms=60000", "--backoff-max-ms=60000"])
    supervisor.wait_for_log(r"exited with status 3; restarting in 60000 ms")
    stopped_at = time.monotonic()
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.wait() == 0, supervisor.log
    assert time.monotonic() - stopped_at < 5.0
    assert len(supervisor.child_pids()) == 1


def test_forwarded_stop_of_a_failing_child_exits_one(supervise):
    # A child that answers the forwarded stop with status 7: not restarted, supervisor exits 1.
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(7))\n"
        "print('armed', flush=True)\n"
        "time.sleep(30)\n"
    )
    supervisor = supervise([sys.executable, "-c", script])
    supervisor.wait_for_log(r"(?m)^armed$")  # not the command line in the start line
    supervisor.proc.send_signal(signal.SIGINT)
    assert supervisor.wait() == 1, supervisor.log
    assert "received SIGINT; forwarding it to child pid" in supervisor.log
    assert "exited with status 7; stopped on request" in supervisor.log
    assert len(supervisor.child_pids()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--no-such-flag=1", "--", "/bin/true"], "unknown flag --no-such-flag"),
        (["--backoff-initial-ms=50"], "no command to run"),
        ([], "no command to run"),
        (["--backoff-initial-ms=soon", "--", "/bin/true"], "--backoff-initial-ms"),
        (["--", "/no/such/program"], "cannot execute /no/such/program"),
    ],
)
def test_bad_command_lines_exit_two(args, message):
    result = run_supervisor(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_help_exits_zero():
    result = run_supervisor("--help")
    assert result.returncode == 0, result.stderr
    for flag in (
        "--backoff-initial-ms",
        "--backoff-max-ms",
        "--crash-loop-restarts",
        "--crash-loop-window-seconds",
    ):
        assert flag in result.stdout
