"""Client of modeld, the model server that keeps models resident out of the web worker.

    import modeld

    with modeld.Client("grpc://127.0.0.1:8001", timeout=2.0) as client:
        y = client.predict("linear", [[1.0, 2.0, 3.0]])
        outputs = client.infer("add_sub", {"INPUT0": a, "INPUT1": b})
        result = client.train("scorer", {"x": x}, {"y": y})   # one step of online learning

``modeld.Client`` talks gRPC (``grpc://``) or HTTP/REST (``http://``), the KServe V2 protocol
of modeld (and Triton), or goes through modeld's Redis queue (``redis://``, docs/redis.md;
needs ``pip install "modeld[redis]"``) or its RabbitMQ queue (``amqp://``, docs/amqp.md; needs
``pip install "modeld[amqp]"``); ``modeld.aio.Client`` is the same client for asyncio.
Errors are :class:`ModeldError` and its subclasses. Importing this package loads neither torch
nor TensorFlow (nor grpc, until a gRPC client is made, nor redis-py or pika, until a Redis or
AMQP one is).
"""

from __future__ import annotations

from typing import Any

from ._client import Client
from ._status import ModelStatus
from ._training import TrainResult
from .errors import (
    DeadlineExceeded,
    InvalidInput,
    ModeldError,
    ModelNotFound,
    ModelNotReady,
    ServerBusy,
    ModelFailed,
    Unauthenticated,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ModelStatus",
    "TrainResult",
    "ModeldError",
    "ModelNotFound",
    "InvalidInput",
    "ServerBusy",
    "ModelFailed",
    "DeadlineExceeded",
    "Unavailable",
    "ModelNotReady",
    "Unauthenticated",
    "aio",
]


def __getattr__(name: str) -> Any:
    # modeld.aio is imported on first use, so that `import modeld` does not load asyncio/grpc.aio.
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
