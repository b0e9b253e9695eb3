"""Triton's Python client (tritonclient.grpc) against modeld, in a child process.

tritonclient and modeld's generated stubs both define `inference.*` protobuf messages; loading
both into one process breaks the descriptor pool, so the checks run in tritonclient_check.py.
"""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("tritonclient_check.py")


def test_tritonclient_grpc(server):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), server.address],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    match = re.search(r"^passed (\d+) checks$", result.stdout, re.MULTILINE)
    assert match, output
    passed = int(match.group(1))
    assert passed >= 9, output
    assert len(re.findall(r"^ok: ", result.stdout, re.MULTILINE)) == passed, output
