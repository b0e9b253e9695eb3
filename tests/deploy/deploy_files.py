"""What the deploy-file tests (test_deploy_files.py, test_deploy_units.py) share: where the
files are, and how the manifests, the systemd unit, modeld's flags and `modeld --help` are
read.

Environment: MODELD_BINARY (default build/bin/modeld).
"""

import configparser
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KSERVE = DEPLOY / "kserve"
UNIT = DEPLOY / "systemd" / "modeld.service"
BINARY = Path(os.environ.get("MODELD_BINARY", REPO_ROOT / "build" / "bin" / "modeld"))

READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"

HELP_FLAG_RE = re.compile(r"^  (--[a-z0-9][a-z0-9-]*)(?=[=\s]|$)", re.MULTILINE)
FLAG_RE = re.compile(r"^(--[a-z0-9][a-z0-9-]*)(?:=(.*))?$", re.DOTALL)


# ----------------------------------------------------------------------------- flags


def parse_flags(args):
    """['--a=1', '--b'] -> {'--a': '1', '--b': None}; anything else is refused, and so is a
    flag given twice."""
    flags = {}
    for arg in args:
        match = FLAG_RE.match(arg)
        assert match, f"not a --flag[=value] argument: {arg!r}"
        assert match.group(1) not in flags, f"{match.group(1)} is given twice"
        flags[match.group(1)] = match.group(2)
    return flags


def port_of(address):
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), f"not HOST:PORT: {address!r}"
    return host, int(port)


def help_flags(binary):
    """The --flags `binary --help` lists (lines '  --flag...')."""
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{binary} --help failed:\n{result.stdout}{result.stderr}"
    flags = set(HELP_FLAG_RE.findall(result.stdout + result.stderr))
    assert "--help" in flags, f"no '  --flag' lines in {binary} --help:\n{result.stdout}"
    return flags


def modeld_help_flags():
    """The flags `modeld --help` lists; skips when modeld is not built."""
    if not BINARY.is_file():
        pytest.skip(f"{BINARY} is not built (make build)")
    flags = help_flags(BINARY)
    assert {"--model-repository", "--http-address", "--grpc-address"} <= flags, flags
    assert len(flags) > 10, f"few flags parsed: {flags}"
    return flags


# ----------------------------------------------------------------------------- manifests


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def of_kind(documents, kinds):
    return [d for d in documents if isinstance(d, dict) and d.get("kind") in kinds]


def the_one(documents, kind, where):
    found = of_kind(documents, {kind})
    assert len(found) == 1, f"expected one {kind} in {where}, found {len(found)}"
    return found[0]


def modeld_container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    named = [c for c in containers if c.get("name") == "modeld"]
    assert len(named) == 1, f"the Deployment has no single container named modeld: {containers}"
    return named[0]


def container_ports(container):
    """{name and number: number} for every declared container port."""
    ports = {}
    for port in container.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def security_value(container, pod, key):
    """A securityContext field: the container's, else the pod's."""
    value = container.get("securityContext", {}).get(key)
    return value if value is not None else (pod or {}).get("securityContext", {}).get(key)


# ----------------------------------------------------------------------------- systemd


def read_unit():
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";"),
        inline_comment_prefixes=None, empty_lines_in_values=False,
    )
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser


def unit_command(value):
    """An Exec*= value (with systemd's backslash continuations) as argv."""
    return shlex.split(re.sub(r"\\\s*\n", " ", value))


def read_exec_start():
    """The unit's ExecStart as argv."""
    unit = read_unit()
    assert unit.has_section("Service") and "ExecStart" in unit["Service"], (
        f"{UNIT} has no ExecStart")
    return unit_command(unit["Service"]["ExecStart"])


def split_exec_start(argv):
    """ExecStart's argv -> (the supervisor's argv, modeld's argv), split at '--'."""
    assert "--" in argv, f"ExecStart has no '--' between the supervisor and modeld: {argv}"
    split = argv.index("--")
    return argv[:split], argv[split + 1:]
