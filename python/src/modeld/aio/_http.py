"""The HTTP/REST transport of the asyncio client: a small HTTP/1.1 client on raw sockets.

Sockets are driven with the running loop's ``sock_*`` methods, so an idle keep-alive socket
belongs to no event loop: the pool serves every loop (Django runs each async view of a WSGI
site in a fresh loop) and any thread. Sockets opened before os.fork() are dropped in the child.
A request that must not run twice (a training step) is never sent again after a kept-alive
connection failed; the connection is checked before it goes out instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._codec import ModelSpec, Tensor
from .._common import Deadline, Endpoint, wrong_port_hint
from .._rest import Request, Response, RestApi, closed_by_peer
from .._status import ModelStatus
from .._training import TrainResult
from ..errors import Unavailable, client_timeout

__all__ = ["AioHttpTransport"]

_MAX_HEAD_BYTES = 64 * 1024
_RECV_BYTES = 256 * 1024


class _Stale(ConnectionError):
    """The server closed a kept-alive connection before answering (send the request again)."""


class _Malformed(Exception):
    """The server's answer is not HTTP/1.x as expected."""


class _Connection:
    """One socket and the bytes read past the last response."""

    __slots__ = ("sock", "pid", "buffer")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.buffer = bytearray()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class AioHttpTransport:
    """Calls modeld's KServe V2 REST API from coroutines; raises ModeldError subclasses."""

    def __init__(self, endpoint: Endpoint, pool_size: int = 8) -> None:
        if endpoint.security.tls:
            # The client reads and writes the socket with the loop's sock_* calls, which have
            # no TLS; HTTPS is offered by the sync client and by grpcs:// here.
            raise ValueError(
                "modeld.aio.Client does not speak HTTPS; use grpcs:// (or modeld.Client)"
            )
        self._api = RestApi(endpoint)
        self._endpoint = endpoint
        self._authorization = endpoint.security.authorization()
        self._url = f"http://{endpoint.target}{endpoint.prefix}"
        self._pool_size = pool_size
        self._idle: list[_Connection] = []  # list.append / list.pop are atomic under the GIL

    # --- connections ------------------------------------------------------------------------

    def _take(self) -> _Connection | None:
        pid = os.getpid()
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return None
            if connection.pid == pid:
                return connection
            connection.close()  # inherited across fork: closes only the child's copy

    def _give_back(self, connection: _Connection) -> None:
        if len(self._idle) < self._pool_size and not connection.buffer:
            self._idle.append(connection)
        else:
            connection.close()

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        infos = await loop.getaddrinfo(
            self._endpoint.host, self._endpoint.port, type=socket.SOCK_STREAM
        )
        error: OSError = OSError(f"no address for {self._endpoint.host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return _Connection(sock)
            except OSError as failure:
                sock.close()
                error = failure
            except BaseException:
                sock.close()
                raise
        raise error

    # --- one exchange -----------------------------------------------------------------------

    def _encode(self, request: Request) -> bytes:
        lines = [
            f"{request.method} {request.path} HTTP/1.1",
            f"Host: {self._api.host_header}",
            "User-Agent: modeld-python",
            "Accept: application/json, application/octet-stream",
            f"Content-Length: {len(request.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        if self._authorization is not None:
            lines.append(f"Authorization: {self._authorization}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + request.body

    async def _recv(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> bytes:
        return await loop.sock_recv(connection.sock, _RECV_BYTES)

    async def _exchange(self, loop: asyncio.AbstractEventLoop, connection: _Connection,
                        data: bytes) -> tuple[Response, bool]:
        """Sends one request and reads its response; returns it and whether to keep alive."""
        await loop.sock_sendall(connection.sock, data)
        buffer = connection.buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buffer) > _MAX_HEAD_BYTES:
                raise _Malformed("response headers larger than 64 KiB")
            chunk = await self._recv(loop, connection)
            if not chunk:
                if buffer:
                    raise _Malformed("connection closed in the middle of the response headers "
                                     f"(it began {bytes(buffer[:8])!r})")
                raise _Stale("connection closed before the response")
            buffer += chunk
        head = bytes(buffer[:end]).decode("latin-1")
        del buffer[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise _Malformed(f"bad status line {status_line!r}")
        version, status, reason = parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Malformed(f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body: bytes | bytearray = await self._read_chunked(loop, connection)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise _Malformed(f"bad Content-Length {headers['content-length']!r}") from None
            body = await self._read_exactly(loop, connection, length)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # the body runs to the end of the connection
            keep_alive = False
            while True:
                chunk = await self._recv(loop, connection)
                if not chunk:
                    break
                buffer += chunk
            body, connection.buffer = bytes(buffer), bytearray()
        return Response(status, reason, headers, body), keep_alive

    async def _read_exactly(self, loop: asyncio.AbstractEventLoop, connection: _Connection,
                            length: int) -> bytearray:
        buffer = connection.buffer
        body = bytearray(length)
        have = min(len(buffer), length)
        body[:have] = buffer[:have]
        del buffer[:have]
        view = memoryview(body)
        while have < length:
            count = await loop.sock_recv_into(connection.sock, view[have:])
            if not count:
                raise _Malformed(f"connection closed after {have} of {length} body bytes")
            have += count
        return body

    async def _read_line(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> bytes:
        buffer = connection.buffer
        while True:
            end = buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 2]
                return line
            if len(buffer) > _MAX_HEAD_BYTES:
                raise _Malformed("chunk header line too long")
            chunk = await self._recv(loop, connection)
            if not chunk:
                raise _Malformed("connection closed in a chunked body")
            buffer += chunk

    async def _read_chunked(self, loop: asyncio.AbstractEventLoop,
                            connection: _Connection) -> bytearray:
        body = bytearray()
        while True:
            line = await self._read_line(loop, connection)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Malformed(f"bad chunk size line {line!r}") from None
            if size == 0:
                while await self._read_line(loop, connection):  # trailers, then an empty line
                    pass
                return body
            body += await self._read_exactly(loop, connection, size)
            if await self._read_line(loop, connection):
                raise _Malformed("chunk not followed by CRLF")

    async def _send(self, request: Request, timeout: float | None) -> Response:
        loop = asyncio.get_running_loop()
        deadline = Deadline(timeout)
        data = self._encode(request)
        for attempt in range(2):
            # After a stale kept-alive connection, the others in the pool are likely stale too
            # (the server restarted, or closed them all as idle): the retry opens a new one.
            connection = self._take() if attempt == 0 else None
            while (connection is not None and not request.idempotent
                   and closed_by_peer(connection.sock)):
                connection.close()
                connection = self._take()
            reused = connection is not None
            try:
                if connection is None:
                    connection = await asyncio.wait_for(self._connect(loop), deadline.remaining())
                response, keep_alive = await asyncio.wait_for(
                    self._exchange(loop, connection, data), deadline.remaining()
                )
            except asyncio.TimeoutError:
                if connection is not None:
                    connection.close()
                raise client_timeout(f"{request.method} {request.path}: timed out") from None
            except (OSError, _Malformed) as error:
                if connection is not None:
                    connection.close()
                if (reused and attempt == 0 and request.idempotent
                        and isinstance(error, (_Stale, ConnectionError))):
                    self._flush()
                    continue  # the server closed the idle connection; use a new one
                raise Unavailable(f"cannot reach modeld at {self._url}: {error!r}"
                                  f"{wrong_port_hint(error)}") from None
            except BaseException:  # cancelled: the connection is mid-exchange, unusable
                if connection is not None:
                    connection.close()
                raise
            if keep_alive:
                self._give_back(connection)
            else:
                connection.close()
            return response
        raise AssertionError("unreachable")

    # --- API --------------------------------------------------------------------------------

    async def live(self, timeout: float | None) -> bool:
        return self._api.health(await self._send(self._api.live(), timeout), "live")

    async def ready(self, timeout: float | None) -> bool:
        return self._api.health(await self._send(self._api.ready(), timeout), "ready")

    async def model_ready(self, model: str, version: str, timeout: float | None) -> bool:
        response = await self._send(self._api.model_ready(model, version), timeout)
        return self._api.model_ready_result(response)

    async def server_metadata(self, timeout: float | None) -> dict[str, Any]:
        response = await self._send(self._api.server_metadata(), timeout)
        return self._api.server_metadata_result(response)

    async def model_metadata(self, model: str, version: str, timeout: float | None) -> ModelSpec:
        response = await self._send(self._api.model_metadata(model, version), timeout)
        return self._api.model_metadata_result(response)

    async def model_status(self, model: str, version: str,
                           timeout: float | None) -> list[ModelStatus]:
        response = await self._send(self._api.model_status(model, version), timeout)
        return self._api.model_status_result(response, model, version)

    async def repository_index(self, timeout: float | None) -> list[ModelStatus]:
        response = await self._send(self._api.repository_index(), timeout)
        return self._api.repository_index_result(response)

    async def model_config(self, model: str, version: str,
                           timeout: float | None) -> dict[str, Any]:
        response = await self._send(self._api.model_config(model, version), timeout)
        return self._api.model_config_result(response)

    async def infer(self, model: str, version: str, tensors: Sequence[Tensor],
                    outputs: Sequence[str] | None, timeout: float | None) -> dict[str, np.ndarray]:
        response = await self._send(self._api.infer(model, version, tensors, outputs), timeout)
        return self._api.infer_result(response)

    async def train(self, model: str, version: str, request_id: str, inputs: Sequence[Tensor],
                    targets: Sequence[Tensor], timeout: float | None) -> TrainResult:
        request = self._api.train(model, version, request_id, inputs, targets)
        return self._api.train_result(await self._send(request, timeout))

    def _flush(self) -> None:
        while True:
            connection = self._take()
            if connection is None:
                return
            connection.close()

    async def close(self) -> None:
        """Closes the idle connections (one in use is closed when its request ends)."""
        self._pool_size = 0
        self._flush()
