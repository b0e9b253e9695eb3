"""The gRPC transport of the sync client: one channel per client and process.

The channel is created on first use with its own subchannel pool
(``grpc.use_local_subchannel_pool``): after os.fork() the child makes a fresh channel, which
then shares no connection with the parent's. The parent's channel is never closed in the child.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
import numpy as np
from google.protobuf import descriptor as _descriptor
from google.protobuf import json_format

from . import _codec, _status, _training
from ._codec import ModelSpec, Tensor
from ._common import Endpoint, ForkLocal, Security
from ._proto import grpc_service_pb2 as pb
from ._proto import tf_model_status_pb2, training_pb2
from ._status import ModelStatus
from ._training import TrainResult
from .errors import InvalidInput, ModeldError, ModelNotFound, client_timeout, error_for_grpc

__all__ = [
    "GrpcTransport",
    "CHANNEL_OPTIONS",
    "METHODS",
    "grpc_error",
    "channel_credentials",
    "call_metadata",
    "model_status_request",
    "model_status_entries",
    "index_entries",
    "model_config_dict",
]

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Reconnect soon after the server comes back (gRPC's default backoff grows to 2 minutes).
    # (Not grpc.min_reconnect_backoff_ms: gRPC core reads it as the minimum connect timeout.)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

_SERVICE = "/inference.GRPCInferenceService/"
#: method name -> (request class, response class)
METHODS: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    "ModelConfig": (pb.ModelConfigRequest, pb.ModelConfigResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
}
#: The path of Train, the method of modeld's own Training service (proto/modeld/training.proto).
TRAIN_METHOD = "/modeld.training.Training/Train"
#: TensorFlow Serving's model status, which modeld serves on its gRPC port in every mode.
MODEL_STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"


def stubs(channel: Any) -> dict[str, Callable[..., Any]]:
    """The unary-unary callables of every method on `channel` (sync or grpc.aio)."""
    rpcs = {
        name: channel.unary_unary(
            _SERVICE + name,
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )
        for name, (request, response) in METHODS.items()
    }
    rpcs["Train"] = channel.unary_unary(
        TRAIN_METHOD,
        request_serializer=training_pb2.TrainRequest.SerializeToString,
        response_deserializer=training_pb2.TrainResponse.FromString,
    )
    rpcs["GetModelStatus"] = channel.unary_unary(
        MODEL_STATUS_METHOD,
        request_serializer=tf_model_status_pb2.GetModelStatusRequest.SerializeToString,
        response_deserializer=tf_model_status_pb2.GetModelStatusResponse.FromString,
    )
    return rpcs


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


def channel_credentials(security: Security) -> grpc.ChannelCredentials:
    """TLS credentials: the CA file (None: gRPC's default roots) and the client certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(security.ca),
        private_key=_read(security.key),
        certificate_chain=_read(security.cert),
    )


def call_metadata(security: Security) -> tuple[tuple[str, str], ...] | None:
    """The metadata sent with every call: the bearer token, if any."""
    authorization = security.authorization()
    return None if authorization is None else (("authorization", authorization),)


def grpc_error(error: grpc.RpcError, timeout: float | None) -> ModeldError:
    """The ModeldError for a failed RPC."""
    code = error.code() if hasattr(error, "code") else None
    name = code.name if code is not None else "UNKNOWN"
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    if name == "DEADLINE_EXCEEDED" and details == "Deadline Exceeded":
        return client_timeout(details)  # gRPC's own deadline, not the server's queue timeout
    return error_for_grpc(name, details)


def server_metadata_dict(response: Any) -> dict[str, Any]:
    """A ``ServerMetadataResponse`` as the client returns it."""
    return {
        "name": response.name,
        "version": response.version,
        "extensions": list(response.extensions),
    }


def model_status_request(model: str, version: str) -> Any:
    """The GetModelStatusRequest of `model` (every version, or only `version`)."""
    request = tf_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version:
        request.model_spec.version.value = int(version)
    return request


def model_status_entries(model: str, response: Any) -> list[ModelStatus]:
    """The versions of a GetModelStatusResponse."""
    return [
        _status.tfserving_entry(
            model, item.version,
            _status.TFSERVING_STATE_NAMES.get(item.state, "UNKNOWN"),
            item.status.error_message,
        )
        for item in response.model_version_status
    ]


def index_entries(response: Any) -> list[ModelStatus]:
    """The entries of a RepositoryIndexResponse."""
    return _status.from_index([
        {"name": m.name, "version": m.version, "state": m.state, "reason": m.reason}
        for m in response.models
    ])


_INT64_TYPES = frozenset({
    _descriptor.FieldDescriptor.TYPE_INT64, _descriptor.FieldDescriptor.TYPE_UINT64,
    _descriptor.FieldDescriptor.TYPE_SINT64, _descriptor.FieldDescriptor.TYPE_FIXED64,
    _descriptor.FieldDescriptor.TYPE_SFIXED64,
})


def _int64_numbers(value: Any, message: Any) -> Any:
    """`value` (a dict of message type `message`, as json_format gives it) with its 64-bit
    integers as numbers instead of strings, as modeld's HTTP API writes them."""
    if not isinstance(value, dict):
        return value
    for key, item in value.items():
        field = message.fields_by_name.get(key)
        if field is None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type.fields_by_name["value"]  # map keys stay strings in JSON
            value[key] = {k: _int64_field(v, entry) for k, v in item.items()}
        elif isinstance(item, list):
            value[key] = [_int64_field(v, field) for v in item]
        else:
            value[key] = _int64_field(item, field)
    return value


def _int64_field(item: Any, field: Any) -> Any:
    if field.message_type is not None:
        return _int64_numbers(item, field.message_type)
    if field.type in _INT64_TYPES and isinstance(item, str):
        return int(item)
    return item


def model_config_dict(response: Any) -> dict[str, Any]:
    """The ``config`` (inference.ModelConfig) of a ModelConfigResponse as a dict, shaped as
    modeld's HTTP API answers it: config.pbtxt's field names, every field (defaults too), enums
    by name, 64-bit integers as numbers."""
    data = json_format.MessageToDict(
        response.config, preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return _int64_numbers(data, response.config.DESCRIPTOR)


class GrpcTransport:
    """Calls modeld's KServe V2 gRPC API; every method raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._target = endpoint.target
        self._security = endpoint.security
        self._metadata = call_metadata(endpoint.security)
        self._inherited: list[Any] = []  # channels of parent processes: kept, never closed here
        self._channel = ForkLocal(self._open, self._inherited.append)

    def _open(self) -> tuple[Any, dict[str, Callable[..., Any]]]:
        if self._security.tls:
            channel = grpc.secure_channel(
                self._target, channel_credentials(self._security), options=CHANNEL_OPTIONS
            )
        else:
            channel = grpc.insecure_channel(self._target, options=CHANNEL_OPTIONS)
        return channel, stubs(channel)

    def _call(self, method: str, request: Any, timeout: float | None) -> Any:
        _, rpcs = self._channel.get()
        try:
            return rpcs[method](request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise grpc_error(error, timeout) from None
        except ValueError as error:  # "Cannot invoke RPC on closed channel!"
            raise ModeldError(str(error), "CANCELLED") from None

    def live(self, timeout: float | None) -> bool:
        return self._call("ServerLive", pb.ServerLiveRequest(), timeout).live

    def ready(self, timeout: float | None) -> bool:
        return self._call("ServerReady", pb.ServerReadyRequest(), timeout).ready

    def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        try:
            request = pb.ModelReadyRequest(name=model, version=version)
            return self._call("ModelReady", request, timeout).ready
        except (ModelNotFound, InvalidInput):
            return False

    def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        response = self._call("ServerMetadata", pb.ServerMetadataRequest(), timeout)
        return server_metadata_dict(response)

    def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        request = pb.ModelMetadataRequest(name=model, version=version)
        return ModelSpec.from_proto(self._call("ModelMetadata", request, timeout))

    def model_status(self, model: str, version: str, timeout: float | None) -> list[ModelStatus]:
        try:
            request = model_status_request(model, version)
            return model_status_entries(model, self._call("GetModelStatus", request, timeout))
        except ModeldError as error:
            entry = _status.from_error(model, version, error)
            if entry is None:
                raise
            return [entry]

    def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        return index_entries(self._call("RepositoryIndex", pb.RepositoryIndexRequest(), timeout))

    def model_config(self, model: str, version: str, timeout: float | None) -> dict[str, Any]:
        request = pb.ModelConfigRequest(name=model, version=version)
        return model_config_dict(self._call("ModelConfig", request, timeout))

    def infer(self, model: str, version: str, tensors: Sequence[Tensor],
              outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        response = self._call(
            "ModelInfer", _codec.grpc_infer_request(model, version, tensors, outputs), timeout
        )
        return _codec.grpc_infer_outputs(response)

    def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
              targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        request = _training.grpc_train_request(model, version, request_id, inputs, targets)
        return _training.grpc_train_result(self._call("Train", request, timeout))

    def close(self) -> None:
        value = self._channel.pop()
        if value is not None:
            value[0].close()

