"""Everything that touches hypercorn, in one place: the listener, and the ASGI app hypercorn serves.

One port, two paths. The accept loop reads each new connection's request head (bounded in size and
time). A websocket upgrade for the Engine.IO path (:func:`is_socket_path`, the one rule for matching
it) is served on the trio stream directly, by :mod:`trisails.realtime.connection`. Any other connection
is handed to hypercorn's own per-connection server with the bytes already read replayed in front of
the stream, so hypercorn sees exactly what the client sent; it serves plain HTTP and long-polling.

hypercorn never serves a websocket: its socket writes cannot be cancelled, so a client that stopped
reading would pin its connection past every timeout. A websocket upgrade that arrives as a later
request of a kept-alive HTTP connection (browsers and the socket.io clients open a fresh connection
for it) is refused with 400, and the client goes on polling. For the same reason permessage-deflate is
negotiated only by our own framing, never by hypercorn.

This relies on hypercorn internals (``TCPServer``, ``Lifespan``, ``WorkerContext``) of the pinned
hypercorn 0.18.0; ``tests/app/test_serving.py`` guards the contract.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext

from .._errors import WebSocketError
from ..protocol import websocket as rfc6455
from .endpoint import make_handshake
from .websocket import StreamWebSocket

if TYPE_CHECKING:
    from .endpoint import EngineIOEndpoint

__all__ = ["hypercorn_config", "is_socket_path", "serve"]

log = logging.getLogger("trisails.realtime")

MAX_HEAD = rfc6455.MAX_HEAD
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


def is_socket_path(request_path: str, socket_path: str) -> bool:
    """Whether ``request_path`` is the Engine.IO endpoint at ``socket_path`` (with or without its
    trailing slash, as engine.io matches it); the one rule, for websockets and polling alike."""
    return request_path.rstrip("/") == socket_path.rstrip("/")


def hypercorn_config(*, graceful_timeout: float, backlog: int, max_message_size: int) -> HypercornConfig:
    """hypercorn's settings for the HTTP side: no access log of its own, no Server header."""
    config = HypercornConfig()
    config.graceful_timeout = graceful_timeout
    config.backlog = backlog
    config.websocket_max_message_size = max_message_size
    config.include_server_header = False
    config.h11_max_incomplete_size = MAX_HEAD  # the documented head limit, on kept-alive requests too
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


class _NoWebSockets:
    """The ASGI app hypercorn serves: the app itself, minus websockets (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self._app(scope, receive, send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        log.info("refused a websocket upgrade on a kept-alive HTTP connection: clients must open a new one")
        body = b"open websockets on a new connection"
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})


class _Server:
    def __init__(self, app: Any, config: HypercornConfig, endpoint: EngineIOEndpoint, path: str, compression: bool):
        self._wrapped = ASGIWrapper(_NoWebSockets(app))  # type: ignore[arg-type]
        self._config = config
        self._endpoint = endpoint
        self._path = path
        self._compression = compression
        self._context = WorkerContext(None)
        self._state: dict[str, Any] = {}

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one connection: read its request head once, then keep it (a websocket for the socket
        path) or hand it to hypercorn."""
        try:
            data = await _read_head(stream, self._endpoint.handshake_timeout)
            try:
                request = rfc6455.parse_upgrade_request(data, max_head=MAX_HEAD)
            except WebSocketError as error:
                if error.status == 431:  # the documented limit holds for every request
                    log.info("refused a request head over %d bytes", MAX_HEAD)
                    await _send_and_close(stream, rfc6455.reject_response(431, b"Request Header Fields Too Large"))
                    return
                request = None  # not HTTP as we read it: hypercorn answers it as it answers bad HTTP
            else:
                if request is None:
                    # nothing, or a head that stopped short (a dead peer, or a slow-loris holding a slot)
                    await trio.aclose_forcefully(stream)
                    return
            if request is None or not request.wants_websocket or not is_socket_path(request.path, self._path):
                await TCPServer(self._wrapped, self._config, self._context, self._state, _ReplayStream(stream, data))  # type: ignore[arg-type]
                return
            held = [request]
            del request, data  # this task now serves the websocket for hours: it keeps no raw head
            await self._websocket(stream, held.pop())
        except Exception:
            log.exception("connection handler failed")
            await trio.aclose_forcefully(stream)

    async def _websocket(self, stream: trio.SocketStream, request: rfc6455.UpgradeRequest) -> None:
        websocket = StreamWebSocket(stream, request, max_message_size=self._endpoint.max_payload)
        if request.upgrade_error is not None:  # a malformed upgrade (no key, wrong version)
            error = request.upgrade_error
            log.info("refused a websocket upgrade: %s", error.reason)
            await websocket.refuse(400, b"Bad request")  # 400 for every malformed upgrade, as engine.io's ws
            return
        peer = stream.socket.getpeername()  # an in-memory stream (trisails.testing) has a stand-in socket
        query = request.query
        parsed_query = dict(parse_qsl(query, keep_blank_values=True))
        handshake = make_handshake(
            list(request.headers), parsed_query, request.path, query, peer[0] if isinstance(peer, tuple) else str(peer), False
        )
        del request  # the websocket holds it until it has answered the upgrade, then lets it go

        async def accept() -> StreamWebSocket:
            await websocket.accept(compression=self._compression)
            return websocket

        try:
            await self._endpoint.serve_websocket(query=parsed_query, handshake=handshake, accept=accept, refuse=websocket.refuse)
        finally:
            with trio.CancelScope(shield=True):
                await websocket.close(1000)  # does nothing if the session closed it with its own code


async def _send_and_close(stream: trio.SocketStream, data: bytes) -> None:
    with trio.move_on_after(1.0):
        try:
            await stream.send_all(data)
        except trio.BrokenResourceError:
            pass
    await trio.aclose_forcefully(stream)


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
    listeners: Sequence[trio.abc.Listener[Any]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown_trigger`` returns, then drain gracefully:
    ``requests_done(timeout)`` waits until the HTTP requests in flight are answered, and then idle
    keep-alive connections are closed at once instead of holding shutdown for ``graceful_timeout``.

    ``task_status.started`` receives the base URL (``http://127.0.0.1:PORT``); port 0 picks a free port.
    Given ``listeners`` (:mod:`trisails.testing`'s in-memory one), serve those instead of opening a port;
    the URL is then ``memory://``.
    """
    server = _Server(app, config, endpoint, path, compression)
    lifespan = Lifespan(server._wrapped, config, server._state)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        if listeners is None:
            tcp = await trio.open_tcp_listeners(port, host=host, backlog=config.backlog)
            bound = tcp[0].socket.getsockname()
            url = f"http://{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"http://[{bound[0]}]:{bound[1]}"
            listeners = tcp
        else:
            url = "memory://"
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(partial(trio.serve_listeners, server.handle, list(listeners), handler_nursery=connections))  # type: ignore[arg-type]
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
