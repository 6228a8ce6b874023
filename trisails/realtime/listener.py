"""One port, two paths: websocket upgrades to the Engine.IO endpoint are served on the trio stream
directly; everything else goes to hypercorn, which serves the ASGI app (HTTP, long-polling, and any
websocket that arrives on a kept-alive HTTP connection).

The accept loop reads each new connection's request head (bounded in size and time), and only when it
is unmistakably a websocket upgrade to the Engine.IO path does it keep the connection. Any other
connection is handed to hypercorn's own per-connection server with the bytes already read replayed in
front of the stream, so hypercorn sees exactly what the client sent.

This relies on hypercorn internals (``TCPServer``, ``Lifespan``, ``WorkerContext``) of the pinned
hypercorn 0.18.0; ``tests/app/test_serving.py`` guards the contract.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import h11
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext

from .websocket import StreamWebSocket

if TYPE_CHECKING:
    from .transports import EngineIOEndpoint

__all__ = ["serve"]

log = logging.getLogger("trisails.realtime")

MAX_HEAD = 16384
HEAD_TIMEOUT = 10.0


class _ReplayStream(trio.abc.HalfCloseableStream):
    """``stream`` with ``head`` put back in front of it, for hypercorn to read from the start."""

    def __init__(self, stream: trio.SocketStream, head: bytes) -> None:
        self._stream = stream
        self._head = head
        self.socket = stream.socket
        # hypercorn 0.18 calls send_eof outside the lock it holds around send_all; a client hanging
        # up mid-response then made trio raise BusyResourceError (logged as an ASGI error)
        self._sending = trio.Lock()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._sending:
            await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        async with self._sending:
            await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _read_head(stream: trio.SocketStream, timeout: float = HEAD_TIMEOUT) -> bytes:
    """Read until the end of the request head, at most MAX_HEAD bytes (less if the peer stops or
    ``timeout`` seconds pass)."""
    data = b""
    with trio.move_on_after(timeout):
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
            chunk = await stream.receive_some(MAX_HEAD)
            if not chunk:
                break
            data += chunk
    return data


def _engine_websocket_target(head: bytes, path: str) -> tuple[str, str] | None:
    """``(path, query)`` when ``head`` is a websocket upgrade GET for the Engine.IO ``path``."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(head)
    try:
        event = connection.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(event, h11.Request) or event.method != b"GET":
        return None
    headers = {name.lower(): value.lower() for name, value in event.headers}
    if headers.get(b"upgrade") != b"websocket":
        return None
    target = event.target.decode("latin-1")
    request_path, _, query = target.partition("?")
    if request_path.rstrip("/") != path.rstrip("/"):
        return None
    return request_path, query


class _Server:
    def __init__(self, app: Any, config: HypercornConfig, endpoint: EngineIOEndpoint, path: str, compression: bool):
        self._wrapped = ASGIWrapper(app)
        self._config = config
        self._endpoint = endpoint
        self._path = path
        self._compression = compression
        self._context = WorkerContext(None)
        self._state: dict[str, Any] = {}

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            head = await _read_head(stream, self._endpoint.handshake_timeout)
            if not head or (b"\r\n\r\n" not in head and len(head) < MAX_HEAD):
                # nothing, or a head that stopped short (a dead peer, or a slow-loris holding a slot)
                await trio.aclose_forcefully(stream)
                return
            target = _engine_websocket_target(head, self._path)
            if target is None:
                await TCPServer(self._wrapped, self._config, self._context, self._state, _ReplayStream(stream, head))  # type: ignore[arg-type]
                return
            await self._websocket(stream, head, *target)
        except Exception:
            log.exception("connection handler failed")
            await trio.aclose_forcefully(stream)

    async def _websocket(self, stream: trio.SocketStream, head: bytes, path: str, query: str) -> None:
        websocket = StreamWebSocket(stream, max_message_size=self._endpoint.max_payload)
        try:
            request = await websocket.read_request(head)
        except Exception:  # wsproto refuses a malformed upgrade (no key, wrong version)
            await websocket.refuse(400, b"Bad request")
            return
        if request is None:
            await trio.aclose_forcefully(stream)
            return
        peer = stream.socket.getpeername()
        headers = [(k.lower(), v) for k, v in request.extra_headers]
        headers.append((b"host", request.host.encode("latin-1")))

        async def accept() -> StreamWebSocket:
            await websocket.accept(request, compression=self._compression)
            return websocket

        async def refuse(status: int, body: bytes) -> None:
            await websocket.refuse(status, body)

        await self._endpoint.serve_websocket(
            query=dict(parse_qsl(query, keep_blank_values=True)),
            path=path,
            raw_query=query,
            headers=headers,
            address=peer[0] if isinstance(peer, tuple) else str(peer),
            secure=False,
            accept=accept,
            refuse=refuse,
        )
        await websocket.close(1000)


async def serve(
    app: Any,
    config: HypercornConfig,
    endpoint: EngineIOEndpoint,
    *,
    host: str,
    port: int,
    path: str,
    compression: bool,
    shutdown_trigger: Callable[[], Awaitable[None]],
    requests_done: Callable[[float], Awaitable[bool]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown_trigger`` returns, then drain gracefully:
    ``requests_done(timeout)`` waits until the HTTP requests in flight are answered, and then idle
    keep-alive connections are closed at once instead of holding shutdown for ``graceful_timeout``.

    ``task_status.started`` receives the base URL (``http://127.0.0.1:PORT``); port 0 picks a free port.
    """
    server = _Server(app, config, endpoint, path, compression)
    lifespan = Lifespan(server._wrapped, config, server._state)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        listeners = await trio.open_tcp_listeners(port, host=host, backlog=config.backlog)
        bound = listeners[0].socket.getsockname()
        url = f"http://{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"http://[{bound[0]}]:{bound[1]}"
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(partial(trio.serve_listeners, server.handle, listeners, handler_nursery=connections))
                task_status.started(url)
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            await server._context.terminated.set()  # hypercorn stops reading new requests
            connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
            if requests_done is not None and await requests_done(config.graceful_timeout):
                # every request is answered: what is left are idle keep-alive connections (hypercorn's
                # idle timer does not survive quart-trio cancelling its request nursery)
                connections.cancel_scope.cancel()
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
