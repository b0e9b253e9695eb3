"""Fixtures of the Python client tests: the real modeld binary, shared by the session.

Two servers run for the whole session: one on the example repository (examples/models) and
one on a repository of fake models (backend "fake": identity models for every datatype, a
slow model, a model with a small queue, a failing model). Both also consume a Redis queue on
one redis-server of the session (a free port, no persistence): the example server the stream
of database 0, the fake server that of database 1. The `transport` fixture runs a test once
over gRPC, once over HTTP and once through Redis. The AMQP tests (test_amqp.py) start a
RabbitMQ node of the session (`rabbitmq`) and a modeld of their own that consumes it.

Environment (as tests/integration): MODELD_BINARY, MODELD_EXAMPLE_MODELS.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from client_support import (  # noqa: E402
    FAKE_TYPES,
    QUEUE_SLEEP_MS,
    SLOW_MS,
    TRANSPORTS,
    start_modeld_on_redis,
    stop_server,
    write_fake_model,
)
from modeld_server import EXAMPLE_MODELS, ServerProcess  # noqa: E402
from redis_server import RedisServer  # noqa: E402

import modeld  # noqa: E402


@pytest.fixture(scope="session")
def example_repository() -> Path:
    repository = Path(os.environ.get("MODELD_EXAMPLE_MODELS", REPO_ROOT / "examples" / "models"))
    missing = [m for m in EXAMPLE_MODELS if not (repository / m / "config.pbtxt").is_file()]
    if missing:
        pytest.fail(f"{repository} lacks {missing}; run examples/generate_models.py")
    return repository


@pytest.fixture(scope="session")
def fake_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("fake_models")
    for datatype, data_type in FAKE_TYPES.items():
        write_fake_model(repository, f"id_{datatype.lower()}", data_type=data_type,
                         dims="[ -1, -1 ]")
    write_fake_model(repository, "slow", parameters={"behavior": "sleep",
                                                    "sleep_ms": str(SLOW_MS)})
    write_fake_model(repository, "small_queue", max_batch_size=1,
                     parameters={"behavior": "identity", "sleep_ms": str(QUEUE_SLEEP_MS)},
                     extra="dynamic_batching { default_queue_policy { max_queue_size: 2 } }")
    write_fake_model(repository, "failing", parameters={"behavior": "fail"})
    return repository


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """redis-server for the session (tests that stop Redis start their own)."""
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator:
    """A private RabbitMQ node for the session (tests/integration/rabbitmq_server.py, with its
    AMQPS listener; one per xdist worker), for the AMQP tests. Each test takes queue names of
    its own (rabbitmq_server.fresh_name()); a test that stops or kills a broker starts its own."""
    from rabbitmq_server import RabbitMQServer, installed

    if not installed():
        pytest.skip("rabbitmq-server is not installed (/usr/lib/rabbitmq/bin/rabbitmq-server, "
                    "epmd): scripts/setup installs it")
    server = RabbitMQServer(tls=True)
    yield server
    server.close()


@pytest.fixture(scope="session")
def server(example_repository: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    """modeld on the example repository, shared by the session."""
    process = start_modeld_on_redis(example_repository, f"{redis_server.url}/0")
    yield process
    stop_server(process)


@pytest.fixture(scope="session")
def fake_server(fake_repository: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    """modeld on the fake repository, shared by the session."""
    process = start_modeld_on_redis(fake_repository, f"{redis_server.url}/1")
    yield process
    stop_server(process)


def url_of(process: ServerProcess, transport: str) -> str:
    if transport == "redis":
        return process.redis_url
    address = process.address if transport == "grpc" else process.http_address
    return f"{transport}://{address}"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(server: ServerProcess, transport: str) -> str:
    return url_of(server, transport)


@pytest.fixture
def fake_url(fake_server: ServerProcess, transport: str) -> str:
    return url_of(fake_server, transport)


@pytest.fixture
def client(url: str) -> Iterator[modeld.Client]:
    with modeld.Client(url, timeout=20.0) as c:
        yield c


@pytest.fixture
def fake_client(fake_url: str) -> Iterator[modeld.Client]:
    with modeld.Client(fake_url, timeout=20.0) as c:
        yield c


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.timeout(120))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On failure, attach the tail of each session server's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("server", "fake_server", "amqp_server"):
            value = getattr(item, "funcargs", {}).get(name)
            if isinstance(value, ServerProcess):
                tail = "\n".join(value.log_lines()[-40:])
                report.sections.append((f"modeld log of '{name}' (last 40 lines)", tail))
