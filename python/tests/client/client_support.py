"""Constants and helpers shared by the client tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from modeld_server import ServerProcess, start_server
from redis_server import wait_until

TRANSPORTS = ("grpc", "http", "redis")

#: KServe datatype -> config data type; every one gets a fake identity model "id_<datatype>".
FAKE_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}
SLOW_MS = 1000  # the run time of model "slow"
QUEUE_SLEEP_MS = 500  # the run time of model "small_queue"


def write_fake_model(repository: Path, name: str, *, data_type: str = "TYPE_FP32",
                     dims: str = "[ 1 ]", max_batch_size: int = 0,
                     parameters: dict[str, str] | None = None, extra: str = "") -> None:
    """A fake-backend model with input "x" and output "y" of `data_type`."""
    folder = repository / name
    (folder / "1").mkdir(parents=True)
    params = "\n".join(
        f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}'
        for k, v in (parameters or {}).items()
    )
    (folder / "config.pbtxt").write_text(
        f'backend: "fake"\nmax_batch_size: {max_batch_size}\n'
        f'input [ {{ name: "x" data_type: {data_type} dims: {dims} }} ]\n'
        f'output [ {{ name: "y" data_type: {data_type} dims: {dims} }} ]\n'
        f"{params}\n{extra}\n"
    )


def count_calls(client, method):
    """Wraps the transport's `method` (sync or async); returns the list of the times of calls."""
    calls: list[float] = []
    original = getattr(client._transport, method)

    def counting(*args):
        calls.append(time.monotonic())
        return original(*args)

    setattr(client._transport, method, counting)
    return calls


def stop_server(process) -> None:
    """Stops a server started with modeld_server.start_server and closes its log pipe."""
    try:
        process.stop()
    finally:
        if process.proc.stdout is not None:
            process.proc.stdout.close()


def http_ready(process: ServerProcess) -> bool:
    """Whether modeld's /v2/health/ready answers 200 (with --redis-url: Redis linked too)."""
    try:
        url = f"http://{process.http_address}/v2/health/ready"
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:  # urllib's HTTPError and URLError are OSErrors
        return False


def start_modeld_on_redis(repository: Path, redis_url: str, extra_args: tuple[str, ...] = (),
                          client_url: str | None = None) -> ServerProcess:
    """modeld on `repository`, also consuming the queue at `redis_url` (`extra_args`: more
    flags, --redis-list=KEY say); returns once it is ready, its worker linked to Redis. Its
    `redis_url` attribute is the client's URL of that queue (`client_url`, else `redis_url`)."""
    process = start_server(repository, [f"--redis-url={redis_url}", *extra_args])
    try:
        process.wait_for_log(r"redis: consuming")
        wait_until(lambda: http_ready(process), what="modeld ready with its Redis worker")
    except BaseException:
        stop_server(process)
        raise
    process.redis_url = client_url or redis_url
    return process
