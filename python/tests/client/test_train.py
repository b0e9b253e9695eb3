"""train() against the real server, over gRPC, HTTP and Redis, sync and asyncio: a linear
model learns y = 3x + 2 one SGD step at a time, and the errors of a step.

The models (train_support.py) are written for this module with Debian's torch, each trained by
one test only, so step numbers start at 1 and nothing else moves the weights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from client_support import TRANSPORTS, start_modeld_on_redis, stop_server
from modeld_server import ServerProcess
from redis_server import RedisServer
from train_support import (
    INITIAL_BIAS,
    INITIAL_WEIGHT,
    TRAINING,
    line,
    line_batch,
    write_linear_models,
)

import modeld
import modeld.aio
from modeld._codec import encode_inputs

STEPS = 300
AIO_STEPS = 200
#: How far from 3x + 2 the trained model may answer.
TOLERANCE = 0.05
PROBE_X = np.array([[-1.0], [-0.25], [0.0], [0.5], [1.0]], dtype=np.float32)


def models() -> dict[str, dict[str, str] | None]:
    trainable: dict[str, dict[str, str] | None] = {}
    for transport in TRANSPORTS:
        for kind in ("line", "aline", "probe"):
            trainable[f"{kind}_{transport}"] = TRAINING
    return {**trainable, "frozen": None}


@pytest.fixture(scope="module")
def train_server(tmp_path_factory: pytest.TempPathFactory,
                 redis_server: RedisServer) -> Iterator[ServerProcess]:
    """modeld on a repository of trainable linear models (and "frozen", one that is not),
    consuming the Redis queue of database 2."""
    repository: Path = tmp_path_factory.mktemp("trainable_models")
    write_linear_models(repository, models())
    process = start_modeld_on_redis(repository, f"{redis_server.url}/2")
    yield process
    stop_server(process)


@pytest.fixture
def train_url(train_server: ServerProcess, transport: str) -> str:
    if transport == "redis":
        return train_server.redis_url
    address = train_server.address if transport == "grpc" else train_server.http_address
    return f"{transport}://{address}"


@pytest.fixture
def train_client(train_url: str) -> Iterator[modeld.Client]:
    with modeld.Client(train_url, timeout=20.0) as client:
        yield client


def test_a_model_learns_the_line(train_client, transport):
    model = f"line_{transport}"
    before = train_client.predict(model, PROBE_X)
    np.testing.assert_allclose(before, INITIAL_WEIGHT * PROBE_X + INITIAL_BIAS, atol=1e-6)
    rng = np.random.default_rng(20261124)
    results = []
    for i in range(STEPS):
        x, y = line_batch(rng)
        results.append(train_client.train(model, {"x": x}, {"y": y}, id=f"step-{i}"))
    assert all(isinstance(r, modeld.TrainResult) for r in results)
    assert {(r.model, r.version) for r in results} == {(model, 1)}
    # one step per call, numbered from 1 for a model never trained before
    assert [r.step for r in results] == list(range(1, STEPS + 1))
    assert all(0 <= r.checkpoint_step <= r.step for r in results)
    assert [r.checkpoint_step for r in results] == sorted(r.checkpoint_step for r in results)
    losses = np.array([r.loss for r in results])
    assert np.all(np.isfinite(losses))
    assert losses[0] > 1.0, losses[:5]  # -x + 0.5 is far from 3x + 2
    assert losses[-10:].max() < losses[0] / 1000, (losses[0], losses[-10:])
    assert np.mean(losses[-50:]) < np.mean(losses[:50]) / 100
    # inference sees the trained weights, on every transport
    np.testing.assert_allclose(train_client.predict(model, PROBE_X), line(PROBE_X),
                               atol=TOLERANCE)
    y = train_client.infer(model, {"x": PROBE_X}, version=1)["y"]
    np.testing.assert_allclose(y, line(PROBE_X), atol=TOLERANCE)


def test_aio_a_model_learns_the_line_and_steps_run_one_at_a_time(train_url, transport):
    model = f"aline_{transport}"
    rng = np.random.default_rng(7)

    async def main():
        async with modeld.aio.Client(train_url, timeout=20.0) as client:
            results = []
            for _ in range(AIO_STEPS):
                x, y = line_batch(rng)
                results.append(await client.train(model, {"x": x}, {"y": y}))
            # Eight steps at once: each gets its own number, none is lost.
            batches = [line_batch(rng) for _ in range(8)]
            together = await asyncio.gather(
                *[client.train(model, {"x": x}, {"y": y}) for x, y in batches])
            return results, together, await client.predict(model, PROBE_X)

    results, together, after = asyncio.run(asyncio.wait_for(main(), 100))
    assert [r.step for r in results] == list(range(1, AIO_STEPS + 1))
    assert sorted(r.step for r in together) == list(range(AIO_STEPS + 1, AIO_STEPS + 9))
    assert results[-1].loss < results[0].loss / 1000, (results[0].loss, results[-1].loss)
    np.testing.assert_allclose(after, line(PROBE_X), atol=TOLERANCE)


def test_train_errors(train_client, transport):
    x, y = line_batch(np.random.default_rng(1), 4)
    model = f"probe_{transport}"
    http = transport == "http"
    # an unknown model (its metadata is asked for first)...
    with pytest.raises(modeld.ModelNotFound, match="no_such_model") as info:
        train_client.train("no_such_model", {"x": x}, {"y": y})
    assert info.value.code == ("404" if http else "NOT_FOUND")
    # ... and the server's own answer to a step for one
    inputs = encode_inputs({"x": x}, None)
    targets = encode_inputs({"y": y}, None, kind="target")
    with pytest.raises(modeld.ModelNotFound, match="no_such_model"):
        train_client._transport.train("no_such_model", "", "", inputs, targets, 10.0)
    # an unserved version
    with pytest.raises(modeld.ModelNotFound):
        train_client.train(model, {"x": x}, {"y": y}, version=7)
    # a model that is not trainable
    with pytest.raises(modeld.InvalidInput, match="(?i)not trainable") as info:
        train_client.train("frozen", {"x": x}, {"y": y})
    assert "frozen" in info.value.message
    assert info.value.code == ("400" if http else "FAILED_PRECONDITION")
    # a target that is not named after an output
    with pytest.raises(modeld.InvalidInput, match="'z'") as info:
        train_client.train(model, {"x": x}, {"z": y})
    assert info.value.code == ("400" if http else "INVALID_ARGUMENT")
    # a missing target, a missing input, a batch size the targets do not share
    with pytest.raises(modeld.InvalidInput):
        train_client.train(model, {"x": x}, {})
    with pytest.raises(modeld.InvalidInput, match="'x'"):
        train_client.train(model, {}, {"y": y})
    with pytest.raises(modeld.InvalidInput):
        train_client.train(model, {"x": x}, {"y": y[:2]})
    # none of them took a step: the first good one is step 1, with version 1 named
    result = train_client.train(model, {"x": x}, {"y": y}, version=1)
    assert (result.model, result.version, result.step) == (model, 1, 1)
    # and inference still answers from the (once) trained weights
    assert train_client.predict(model, PROBE_X).shape == (len(PROBE_X), 1)


def test_train_is_refused_for_inference_only_models_of_the_session(client):
    """The example models (served without the training parameter) are not trainable."""
    with pytest.raises(modeld.InvalidInput, match="(?i)not trainable"):
        client.train("linear", {"x": [[1.0, 2.0, 3.0]]}, {"y": [[1.0]]})
