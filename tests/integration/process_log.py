"""A child process's stdout and stderr, read on a thread into lines so the pipe never fills,
with a bounded wait for what a test expects to see in them."""

import re
import threading
import time


class ProcessLog:
    """Reads `proc.stdout` (stderr merged into it) until it ends; `name` names it in errors."""

    def __init__(self, proc, name):
        self.name = name
        self._lines = []
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(proc,), name=f"{name}-log",
                                        daemon=True)
        self._reader.start()

    def _read(self, proc):
        for raw in iter(proc.stdout.readline, b""):
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def join(self, timeout):
        """Waits (up to `timeout` seconds) until the output has ended."""
        self._reader.join(timeout=timeout)

    @property
    def text(self):
        """Everything written so far."""
        with self._cond:
            return "".join(self._lines)

    def wait_for(self, pattern, count=1, timeout=60.0):
        """Waits until `pattern` (a regex) has matched `count` times; returns the matches.
        Fails when the output ends (the process exited) or the timeout passes first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = list(regex.finditer("".join(self._lines)))
                if len(matches) >= count:
                    return matches
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    why = "exited" if self._eof else f"timed out after {timeout:.0f}s"
                    raise AssertionError(f"{self.name} {why} before {count} x {regex.pattern!r}; "
                                         f"its log:\n{''.join(self._lines)}")
                self._cond.wait(remaining)
