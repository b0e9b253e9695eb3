"""The HTTP/REST transport of the sync client: one keep-alive connection per thread.

Connections live in a threading.local together with the pid that opened them. A connection
inherited across os.fork() is dropped in the child (closing only the child's copy of the
socket; the parent keeps using it) and a new one is opened. A request on a kept-alive
connection that the server has closed meanwhile is sent again once on a new connection; one
that must not run twice (a training step) is never sent again, and its kept-alive connection
is checked before it goes out instead.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._codec import ModelSpec, Tensor
from ._common import Endpoint, wrong_port_hint
from ._rest import Request, Response, RestApi, closed_by_peer
from ._status import ModelStatus
from ._training import TrainResult
from .errors import Unavailable, client_timeout

__all__ = ["HttpTransport"]

# Errors that mean a kept-alive connection was closed by the server before this request.
_STALE = (ConnectionError, http.client.BadStatusLine)


class HttpTransport:
    """Calls modeld's KServe V2 REST API; every method raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._api = RestApi(endpoint)
        self._endpoint = endpoint
        security = endpoint.security
        self._ssl = security.ssl_context() if security.tls else None
        self._authorization = security.authorization()
        scheme = "https" if security.tls else "http"
        self._url = f"{scheme}://{endpoint.target}{endpoint.prefix}"
        self._local = threading.local()
        self._connections: set[http.client.HTTPConnection] = set()  # every thread's, for close()

    # --- connections ------------------------------------------------------------------------

    def _connection(self, timeout: float | None) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it is already open (kept alive)."""
        pid = os.getpid()
        state = getattr(self._local, "state", None)
        if state is not None:
            owner, connection = state
            if owner == pid:
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                    return connection, True
                return connection, False
            # Inherited across fork: close the child's copy of the socket (no shutdown, so the
            # parent's connection is untouched).
            self._discard(connection)
        if self._ssl is not None:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._endpoint.host, self._endpoint.port, timeout=timeout, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(
                self._endpoint.host, self._endpoint.port, timeout=timeout
            )
        self._local.state = (pid, connection)
        self._connections.add(connection)
        return connection, False

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        self._connections.discard(connection)
        state = getattr(self._local, "state", None)
        if state is not None and state[1] is connection:
            self._local.state = None
        try:
            connection.close()
        except OSError:
            pass

    def _send(self, request: Request, timeout: float | None) -> Response:
        headers = request.headers
        if self._authorization is not None:
            headers = {**headers, "Authorization": self._authorization}
        for attempt in range(2):
            connection, reused = self._connection(timeout)
            if reused and not request.idempotent and closed_by_peer(connection.sock):
                self._discard(connection)
                connection, reused = self._connection(timeout)
            try:
                connection.request(request.method, request.path, request.body, headers)
                response = connection.getresponse()
                body = _read_body(response)
                headers = {name.lower(): value for name, value in response.getheaders()}
                return Response(response.status, response.reason, headers, body)
            except TimeoutError:
                self._discard(connection)
                raise client_timeout(f"{request.method} {request.path}: socket timeout") from None
            except (OSError, http.client.HTTPException) as error:
                self._discard(connection)
                if reused and attempt == 0 and isinstance(error, _STALE) and request.idempotent:
                    continue  # the server closed the idle connection; use a new one
                raise Unavailable(f"cannot reach modeld at {self._url}: {error!r}"
                                  f"{wrong_port_hint(error)}") from None
        raise AssertionError("unreachable")

    # --- API --------------------------------------------------------------------------------

    def live(self, timeout: float | None) -> bool:
        return self._api.health(self._send(self._api.live(), timeout), "live")

    def ready(self, timeout: float | None) -> bool:
        return self._api.health(self._send(self._api.ready(), timeout), "ready")

    def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        response = self._send(self._api.model_ready(model, version), timeout)
        return self._api.model_ready_result(response)

    def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        return self._api.server_metadata_result(self._send(self._api.server_metadata(), timeout))

    def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        response = self._send(self._api.model_metadata(model, version), timeout)
        return self._api.model_metadata_result(response)

    def model_status(self, model: str, version: str, timeout: float | None) -> list[ModelStatus]:
        response = self._send(self._api.model_status(model, version), timeout)
        return self._api.model_status_result(response, model, version)

    def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        return self._api.repository_index_result(self._send(self._api.repository_index(), timeout))

    def model_config(self, model: str, version: str, timeout: float | None) -> dict[str, Any]:
        response = self._send(self._api.model_config(model, version), timeout)
        return self._api.model_config_result(response)

    def infer(self, model: str, version: str, tensors: Sequence[Tensor],
              outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        response = self._send(self._api.infer(model, version, tensors, outputs), timeout)
        return self._api.infer_result(response)

    def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
              targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        request = self._api.train(model, version, request_id, inputs, targets)
        return self._api.train_result(self._send(request, timeout))

    def close(self) -> None:
        """Closes every thread's connection (a later call opens a new one)."""
        for connection in list(self._connections):
            self._discard(connection)


def _read_body(response: http.client.HTTPResponse) -> bytes | bytearray:
    """The whole body; into a bytearray when its length is known (so outputs are writable)."""
    length = response.length
    if length is None:
        return response.read()
    buffer = bytearray(length)
    view = memoryview(buffer)
    filled = 0
    while filled < length:
        count = response.readinto(view[filled:])
        if not count:
            raise http.client.IncompleteRead(bytes(view[:filled]), length - filled)
        filled += count
    return buffer
