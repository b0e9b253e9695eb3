"""The gRPC transport of the asyncio client (grpc.aio).

A grpc.aio channel belongs to the event loop it was made in, so the transport keeps one
channel per running loop, made on first use in that loop; channels of loops that have been
closed are dropped. After os.fork() the child makes new channels (the parent's are kept
referenced, never closed, in the child).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio
import numpy as np

from .. import _codec, _status, _training
from .._codec import ModelSpec, Tensor
from .._common import Endpoint, on_fork
from .._grpc import (
    CHANNEL_OPTIONS,
    call_metadata,
    channel_credentials,
    grpc_error,
    index_entries,
    model_config_dict,
    model_status_entries,
    model_status_request,
    server_metadata_dict,
    stubs,
)
from .._proto import grpc_service_pb2 as pb
from .._status import ModelStatus
from .._training import TrainResult
from ..errors import InvalidInput, ModeldError, ModelNotFound

__all__ = ["AioGrpcTransport"]

# The process that first made a grpc.aio channel. gRPC's asyncio stack does not survive
# os.fork(): in a child of a process that used it, any gRPC call can abort the process. So
# the child gets a clear error instead. (The sync gRPC client and both HTTP transports are
# fork-safe; a sync gRPC client in such a child fails with Unavailable.)
_aio_used_in_pid: int | None = None


class AioGrpcTransport:
    """Calls modeld's KServe V2 gRPC API from coroutines; raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._target = endpoint.target
        self._security = endpoint.security
        self._metadata = call_metadata(endpoint.security)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # id(loop) -> (loop, channel, callables)
        self._channels: dict[int, tuple[asyncio.AbstractEventLoop, Any, dict[str, Any]]] = {}
        self._inherited: list[Any] = []
        on_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _rpcs(self) -> dict[str, Callable[..., Any]]:
        global _aio_used_in_pid
        loop = asyncio.get_running_loop()
        if _aio_used_in_pid is not None and _aio_used_in_pid != os.getpid():
            raise ModeldError(
                "gRPC cannot be used in a process forked from one that used grpc.aio (a gRPC "
                "limitation): make no grpc:// call with modeld.aio.Client before forking "
                "workers, or use an http:// URL",
                "UNSUPPORTED",
            )
        with self._lock:
            if self._pid != os.getpid():
                self._inherited.extend(entry[1] for entry in self._channels.values())
                self._channels = {}
                self._pid = os.getpid()
            entry = self._channels.get(id(loop))
            if entry is not None and entry[0] is loop:
                return entry[2]
            # Channels of finished loops cannot be used again; dropping them closes them.
            for key, (other, _, _) in list(self._channels.items()):
                if other.is_closed() or other is loop:
                    del self._channels[key]
            if self._security.tls:
                channel = grpc.aio.secure_channel(
                    self._target, channel_credentials(self._security), options=CHANNEL_OPTIONS
                )
            else:
                channel = grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS)
            _aio_used_in_pid = os.getpid()
            rpcs = stubs(channel)
            self._channels[id(loop)] = (loop, channel, rpcs)
            return rpcs

    async def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        rpcs = self._rpcs()
        try:
            return await rpcs[method](request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise grpc_error(error, timeout) from None
        except (ValueError, grpc.aio.UsageError) as error:
            raise ModeldError(str(error), "CANCELLED") from None

    async def live(self, timeout: float | None) -> bool:
        return (await self._call("ServerLive", pb.ServerLiveRequest(), timeout)).live

    async def ready(self, timeout: float | None) -> bool:
        return (await self._call("ServerReady", pb.ServerReadyRequest(), timeout)).ready

    async def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        try:
            request = pb.ModelReadyRequest(name=model, version=version)
            return (await self._call("ModelReady", request, timeout)).ready
        except (ModelNotFound, InvalidInput):
            return False

    async def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        response = await self._call("ServerMetadata", pb.ServerMetadataRequest(), timeout)
        return server_metadata_dict(response)

    async def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        request = pb.ModelMetadataRequest(name=model, version=version)
        return ModelSpec.from_proto(await self._call("ModelMetadata", request, timeout))

    async def model_status(self, model: str, version: str,
                           timeout: float | None) -> list[ModelStatus]:
        try:
            request = model_status_request(model, version)
            response = await self._call("GetModelStatus", request, timeout)
            return model_status_entries(model, response)
        except ModeldError as error:
            entry = _status.from_error(model, version, error)
            if entry is None:
                raise
            return [entry]

    async def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        return index_entries(await self._call("RepositoryIndex", pb.RepositoryIndexRequest(),
                                              timeout))

    async def model_config(self, model: str, version: str,
                           timeout: float | None) -> dict[str, Any]:
        request = pb.ModelConfigRequest(name=model, version=version)
        return model_config_dict(await self._call("ModelConfig", request, timeout))

    async def infer(self, model: str, version: str, tensors: Sequence[Tensor],
                    outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        request = _codec.grpc_infer_request(model, version, tensors, outputs)
        return _codec.grpc_infer_outputs(await self._call("ModelInfer", request, timeout))

    async def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
                    targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        request = _training.grpc_train_request(model, version, request_id, inputs, targets)
        return _training.grpc_train_result(await self._call("Train", request, timeout))

    async def close(self) -> None:
        """Closes this loop's channel; those of other loops are dropped."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            channels, self._channels = self._channels, {}
            same_process = self._pid == os.getpid()
        if not same_process:
            self._inherited.extend(entry[1] for entry in channels.values())
            return
        for other, channel, _ in channels.values():
            if other is loop:
                await channel.close()
