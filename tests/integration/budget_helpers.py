"""Helpers for test_memory_budget.py: fake models of a given size, the budget's metrics, the
repository index, one inference over HTTP or gRPC.

A fake model of N MiB (src/backend/fake/fake_backend.cc) holds N MiB of written memory while
loaded (parameter resident_mb), and its version folder holds a weights file of N MiB, so that
modeld's estimate before the first load (the files' sizes) and its measurement at the load (the
RSS growth) agree. The weights file is sparse: its size counts, not its blocks on disk.
"""

import re
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np

from infer_helpers import decode_response, make_request
from lifecycle_helpers import fake_config, http_call

MIB = 1024 * 1024
RPC_TIMEOUT_S = 20.0

# The index's reasons for an unloaded version (src/repository/model_manager.cc).
UNLOADED_REASON = "unloaded: it loads on its first request (--model-memory-budget)"
EVICTED_RE = re.compile(
    r"^evicted at (\d\d):(\d\d):(\d\d) UTC to make room in --model-memory-budget; "
    r"it loads on its next request$")


def write_weights(version_folder, mib):
    """A sparse weights.bin of `mib` MiB in `version_folder` (created)."""
    version_folder = Path(version_folder)
    version_folder.mkdir(parents=True, exist_ok=True)
    with open(version_folder / "weights.bin", "wb") as file:
        file.truncate(int(mib * MIB))


def write_sized_model(repository, name, mib, *, versions=(1,), weights_mib=None, **parameters):
    """A fake model holding `mib` MiB while loaded, with weights files of `weights_mib` MiB
    (default: `mib`) in each version folder; further keyword arguments are config parameters
    (eviction="never", sleep_ms=..., load_sleep_ms=..., load_error=...)."""
    folder = Path(repository) / name
    folder.mkdir(parents=True, exist_ok=True)
    for version in versions:
        write_weights(folder / str(version), mib if weights_mib is None else weights_mib)
    (folder / "config.pbtxt").write_text(fake_config(name, resident_mb=mib, **parameters))
    return folder


# --- metrics ------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """One scrape of /metrics: value(name, **labels) is the sample with exactly those labels
    (0 when absent), total(name, **labels) the sum of the samples that have those labels."""

    def __init__(self, http_address):
        text = urllib.request.urlopen(f"http://{http_address}/metrics", timeout=10).read()
        self.samples = []  # (name, {label: value}, float)
        for line in text.decode().splitlines():
            match = _SAMPLE.match(line)
            if match and not line.startswith("#"):
                labels = dict(_LABEL.findall(match.group(2) or ""))
                self.samples.append((match.group(1), labels, float(match.group(3))))

    def value(self, name, **labels):
        for sample_name, sample_labels, value in self.samples:
            if sample_name == name and sample_labels == labels:
                return value
        return 0.0

    def total(self, name, **labels):
        return sum(value for sample_name, sample_labels, value in self.samples
                   if sample_name == name
                   and all(sample_labels.get(k) == v for k, v in labels.items()))

    def names(self):
        return {name for name, _, _ in self.samples}

    def loads(self, model, cause):
        return self.value("modeld_model_loads_total", model=model, cause=cause)

    def evictions(self, model):
        return self.value("modeld_model_evictions_total", model=model)

    def waited(self, model, outcome):
        return self.value("modeld_requests_waited_for_load_total", model=model, outcome=outcome)

    @property
    def used(self):
        return self.value("modeld_memory_budget_used_bytes")

    @property
    def budget(self):
        return self.value("modeld_memory_budget_bytes")


# --- the index, inference -------------------------------------------------------------------------


def index(http_address):
    """{(name, version): (state, reason)} from POST /v2/repository/index."""
    status, reply = http_call(http_address, "POST", "/v2/repository/index", {})
    assert status == 200, (status, reply)
    return {(m["name"], m.get("version", "")): (m.get("state", ""), m.get("reason", ""))
            for m in reply}


def state(http_address, model, version="1"):
    return index(http_address).get((model, version), ("missing", ""))[0]


def loaded_models(http_address):
    """The names of the models with a READY version."""
    return {name for (name, _), (st, _) in index(http_address).items() if st == "READY"}


def row(seed):
    return np.array([[seed, seed + 0.5, -seed, 4.0]], np.float32)


def http_infer(http_address, model, seed=1.0, timeout=RPC_TIMEOUT_S):
    """(status, body) of a KServe JSON inference; on 200 the echo is checked."""
    x = row(seed)
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4],
                        "data": x.ravel().tolist()}]}
    status, reply = http_call(http_address, "POST", f"/v2/models/{model}/infer", body,
                              timeout=timeout)
    if status == 200:
        assert reply["outputs"][0]["data"] == x.ravel().tolist(), reply
    return status, reply


def grpc_infer(stub, model, seed=1.0, timeout=RPC_TIMEOUT_S):
    """The model_version that answered one ModelInfer (the echo checked), or the
    grpc.RpcError it failed with."""
    x = row(seed)
    try:
        reply = stub.ModelInfer(make_request(model, [("INPUT0", x)]), timeout=timeout)
    except grpc.RpcError as error:
        return error
    np.testing.assert_array_equal(decode_response(reply)["OUTPUT0"], x)
    return reply.model_version


def grpc_infer_future(stub, model, seed=1.0, timeout=RPC_TIMEOUT_S):
    return stub.ModelInfer.future(make_request(model, [("INPUT0", row(seed))]), timeout=timeout)


def timed(fn, *args, **kwargs):
    """(fn's result, seconds it took)."""
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def log_count(server, pattern):
    """How many lines of the server's log match `pattern` (a regex)."""
    regex = re.compile(pattern)
    return sum(1 for line in server.log_lines() if regex.search(line))
