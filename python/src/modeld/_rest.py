"""The KServe V2 REST API without I/O: the requests to send and how to read the answers.

Used by the sync HTTP transport (http.client) and the asyncio one (raw sockets).
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np

from . import _codec, _status, _training
from ._codec import ModelSpec, Tensor
from ._common import Endpoint
from ._status import ModelStatus
from ._training import TrainResult
from .errors import InvalidInput, ModeldError, ModelNotFound, error_for_http

__all__ = ["Request", "Response", "RestApi", "closed_by_peer"]


@dataclass
class Request:
    """One HTTP request: method, path (with the URL's prefix), headers and body.

    A request that is not `idempotent` (a training step) is sent at most once: never again on
    a new connection after a kept-alive one failed, since the server may have run it. Before
    it goes out on a kept-alive connection, the transports check that the server has not
    closed that connection (:func:`closed_by_peer`).
    """

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = True


@dataclass
class Response:
    """One HTTP response; header names are lower case."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes | bytearray


def closed_by_peer(sock: socket.socket | None) -> bool:
    """Whether an idle kept-alive socket is unfit for a request: readable while no answer is
    due means the server closed it (or reset it, or sent something unasked)."""
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class RestApi:
    """Builds requests for one server and interprets its responses."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        host = endpoint.target if endpoint.port != 80 else endpoint.host
        self.host_header = host
        self.prefix = endpoint.prefix

    # --- requests ---------------------------------------------------------------------------

    def _model_path(self, model: str, version: str) -> str:
        path = f"{self.prefix}/v2/models/{quote(model, safe='')}"
        if version:
            path += f"/versions/{quote(version, safe='')}"
        return path

    def live(self) -> Request:
        return Request("GET", f"{self.prefix}/v2/health/live")

    def ready(self) -> Request:
        return Request("GET", f"{self.prefix}/v2/health/ready")

    def model_ready(self, model: str, version: str) -> Request:
        return Request("GET", self._model_path(model, version) + "/ready")

    def server_metadata(self) -> Request:
        return Request("GET", f"{self.prefix}/v2")

    def model_metadata(self, model: str, version: str) -> Request:
        return Request("GET", self._model_path(model, version))

    def model_status(self, model: str, version: str) -> Request:
        """TensorFlow Serving's model status, which modeld serves in every mode."""
        path = f"{self.prefix}/v1/models/{quote(model, safe='')}"
        if version:
            path += f"/versions/{quote(version, safe='')}"
        return Request("GET", path)

    def repository_index(self) -> Request:
        return Request("POST", f"{self.prefix}/v2/repository/index", b"{}",
                       {"Content-Type": "application/json"})

    def model_config(self, model: str, version: str) -> Request:
        return Request("GET", self._model_path(model, version) + "/config")

    def infer(self, model: str, version: str, tensors: Sequence[Tensor],
              outputs: Sequence[str] | None) -> Request:
        body, header_length = _codec.http_infer_body(tensors, outputs)
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_length),
        }
        return Request("POST", self._model_path(model, version) + "/infer", body, headers)

    def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
              targets: Sequence[Tensor]) -> Request:
        body = _training.http_train_body(request_id, inputs, targets)
        headers = {"Content-Type": "application/json"}
        return Request("POST", self._model_path(model, version) + "/train", body, headers,
                       idempotent=False)

    # --- responses --------------------------------------------------------------------------

    @staticmethod
    def error(response: Response) -> ModeldError:
        """The exception for an error response."""
        message = _codec.http_error_message(bytes(response.body), response.reason)
        return error_for_http(response.status, message)

    @classmethod
    def _json(cls, response: Response) -> Any:
        if response.status != 200:
            raise cls.error(response)
        try:
            return json.loads(bytes(response.body))
        except ValueError as error:
            raise ModeldError(
                f"malformed JSON from the server: {error}", str(response.status)
            ) from None

    @classmethod
    def health(cls, response: Response, key: str) -> bool:
        """live/ready: 200 or 503 with {"<key>": bool}; any other answer is an error."""
        if response.status in (200, 503):
            try:
                data = json.loads(bytes(response.body))
            except ValueError:
                data = None
            if isinstance(data, dict) and isinstance(data.get(key), bool):
                return data[key]
        raise cls.error(response)

    @classmethod
    def model_ready_result(cls, response: Response) -> bool:
        try:
            return cls.health(response, "ready")
        except (ModelNotFound, InvalidInput):
            return False

    @classmethod
    def server_metadata_result(cls, response: Response) -> dict[str, Any]:
        data = cls._json(response)
        if not isinstance(data, dict):
            raise ModeldError("malformed server metadata from the server")
        return {
            "name": data.get("name", ""),
            "version": data.get("version", ""),
            "extensions": list(data.get("extensions", [])),
        }

    @classmethod
    def model_metadata_result(cls, response: Response) -> ModelSpec:
        data = cls._json(response)
        if not isinstance(data, dict):
            raise ModeldError("malformed model metadata from the server")
        return ModelSpec.from_dict(data)

    @classmethod
    def model_status_result(cls, response: Response, model: str,
                            version: str) -> list[ModelStatus]:
        if response.status != 200:
            error = cls.error(response)
            entry = _status.from_error(model, version, error)
            if entry is None:
                raise error
            return [entry]
        return _status.from_tfserving_json(model, cls._json(response))

    @classmethod
    def repository_index_result(cls, response: Response) -> list[ModelStatus]:
        return _status.from_index(cls._json(response))

    @classmethod
    def model_config_result(cls, response: Response) -> dict[str, Any]:
        data = cls._json(response)
        if not isinstance(data, dict):
            raise ModeldError("malformed model config from the server: not an object")
        return data

    @classmethod
    def infer_result(cls, response: Response) -> dict[str, np.ndarray]:
        if response.status != 200:
            raise cls.error(response)
        header_length = response.headers.get("inference-header-content-length")
        try:
            length = int(header_length) if header_length is not None else None
        except ValueError:
            raise ModeldError(
                f"malformed Inference-Header-Content-Length {header_length!r} from the server"
            ) from None
        return _codec.http_infer_outputs(response.body, length)

    @classmethod
    def train_result(cls, response: Response) -> TrainResult:
        return _training.http_train_result(cls._json(response))
