"""Starting and stopping the processes a benchmark run needs, and watching their memory."""

import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

LISTENING = re.compile(r"gRPC listening on (\S+):(\d+)")
HTTP_LISTENING = re.compile(r"HTTP listening on (\S+):(\d+)")
# modeld opens its ports first and logs this once every model has loaded or failed.
MODELD_READY = re.compile(r"modeld is ready")
BATCH_SIZE = re.compile(r"^modeld_batch_size_(sum|count)\{([^}]*)\}\s+(\S+)", re.M)


class Process:
    """A child process with its stderr and stdout in a log file; stop() ends it."""

    def __init__(self, name, argv, log_dir, env=None):
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern, timeout=120, stop_on_timeout=True):
        """Waits until the log matches `pattern` (a compiled regex); returns the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(self.log())
            if match:
                return match
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            time.sleep(0.05)
        if stop_on_timeout:
            self.stop()
        raise RuntimeError(f"{self.name} did not log {pattern.pattern!r} in {timeout} s")

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def start_grpc_server(name, argv, log_dir):
    """Starts a server that logs 'gRPC listening on HOST:PORT'; returns (process, address).

    For modeld, also waits until its models have loaded."""
    process = Process(name, argv, log_dir)
    match = process.wait_for(LISTENING)
    if argv[0].endswith("/modeld"):
        process.wait_for(MODELD_READY)
    return process, f"{match.group(1)}:{match.group(2)}"


def metrics_url(process):
    """modeld's /metrics URL from its log, or None when it logs no HTTP port."""
    try:
        match = process.wait_for(HTTP_LISTENING, timeout=5, stop_on_timeout=False)
    except RuntimeError:
        return None
    return f"http://{match.group(1)}:{match.group(2)}/metrics"


def batch_size_totals(url, model):
    """(sum, count) of modeld_batch_size for `model` from /metrics, or None."""
    if url is None:
        return None
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return None
    totals = {"sum": 0.0, "count": 0.0}
    for kind, labels, value in BATCH_SIZE.findall(text):
        if f'model="{model}"' in labels:
            totals[kind] += float(value)
    return totals["sum"], totals["count"]


def free_port():
    """A port free right now on 127.0.0.1 (for redis-server, whose port 0 means no TCP)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(log_dir):
    """redis-server on a free loopback port, no persistence; returns (process, port)."""
    port = free_port()
    process = Process("redis-server", [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"], log_dir)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            pass
        if process.popen.poll() is not None or time.monotonic() > deadline:
            process.stop()
            raise RuntimeError(f"redis-server did not start:\n{process.log()[-2000:]}")
        time.sleep(0.05)


def process_cpu_seconds(pid):
    """CPU seconds (user + system, all threads) `pid` has used, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces: split after its closing parenthesis.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """CPU seconds that processes use between two CLOCK_MONOTONIC times, sampled on a thread:
    ``CpuWindow({"modeld": [pid], ...}, start_ns, end_ns)``, then ``cores()``."""

    def __init__(self, pids, start_ns, end_ns):
        self._pids, self._start, self._end = dict(pids), start_ns, end_ns
        self._samples = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self):
        return {name: sum(process_cpu_seconds(pid) for pid in pids)
                for name, pids in self._pids.items()}

    def _run(self):
        for key, at in (("start", self._start), ("end", self._end)):
            time.sleep(max(0.0, (at - time.monotonic_ns()) / 1e9))
            self._samples[key] = self._sample()

    def cores(self):
        """{name: CPU cores used on average over the window}."""
        self._thread.join()
        seconds = (self._end - self._start) / 1e9
        return {name: (self._samples["end"][name] - self._samples["start"][name]) / seconds
                for name in self._pids}


def rss_bytes(pid):
    """Resident set size of `pid` from /proc/<pid>/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples a process's RSS every `interval` seconds on a thread, until stop()."""

    def __init__(self, pid, interval=0.1):
        self.samples = []  # (seconds since start, bytes)
        self._pid, self._interval = pid, interval
        self._stop = threading.Event()
        self.start_time = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self.start_time, rss_bytes(self._pid)))
            except OSError:
                return
            self._stop.wait(self._interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.samples


def run_checked(argv, log_dir, name, timeout):
    """Runs a command to completion; its output goes to <log_dir>/<name>.log and is returned."""
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=timeout)
    (Path(log_dir) / f"{name}.log").write_text(result.stdout)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return result.stdout


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def memory_gib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def nproc():
    return len(os.sched_getaffinity(0))


def cpu_seconds():
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its reaped
    children): their difference over a run is what other processes took."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = sum(values) - values[3] - values[4]  # all but idle and iowait
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system
    return busy / os.sysconf("SC_CLK_TCK"), ours


def commit_line(root, ignore_prefix):
    """`git log --oneline -1` of `root`, plus how many uncommitted changes lie outside
    `ignore_prefix` (a run's own results are written there)."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True).stdout
    commit = git("log", "--oneline", "-1").strip()
    dirty = [line for line in git("status", "--porcelain").splitlines()
             if not line[3:].startswith(ignore_prefix)]
    if dirty:
        commit += f" plus {len(dirty)} uncommitted change(s) outside {ignore_prefix}"
    return commit


def warn_if_loaded(name):
    """The 1-minute load average now; warns first when other work would skew the figures."""
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"{name}: warning: load average {load:.2f} before the run; other work on this "
              "machine skews every figure", flush=True)
    return load


def log(message):
    """A progress line with the time, flushed at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(sorted_values, quantile):
    """Nearest rank, as modeld-bench."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values), max(1, math.ceil(quantile * len(sorted_values))))
    return sorted_values[rank - 1]
