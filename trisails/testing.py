"""Test an app in memory, on trio's mock clock: no ports, no sleeping, exact timing.

An app lifted with :func:`serve_in_memory` serves connections that live inside the test's own trio
run: each is a pair of in-memory streams, one end given to the app's listener exactly as a TCP
connection would be, the other kept by the test's client. The whole request path runs unchanged
(request heads, websockets, long-polling through hypercorn, the Engine.IO and Socket.IO state
machines, the router), but nothing waits on the kernel, so the test can run on
:class:`trio.testing.MockClock` with ``autojump_threshold=0``: whenever every task is blocked, time
jumps to the next deadline. A heartbeat of 25 seconds, a connect timeout, an upgrade that times out or
an ack that never comes then takes no real time, and happens at exactly the moment the settings say.

With pytest-trio, ask for its ``autojump_clock`` fixture::

    from trisails.testing import serve_in_memory

    async def test_a_silent_v4_client_is_dropped_after_interval_plus_timeout(autojump_clock):
        async with serve_in_memory(app) as server:
            ws = await server.websocket("/socket.io/?EIO=4&transport=websocket")
            await ws.receive()                  # the open packet
            await ws.send("40")
            start = trio.current_time()
            assert await ws.receive() == "2"    # the ping, ping_interval after the open
            assert await ws.wait_closed() == 1000 # no pong: closed ping_timeout later
            assert trio.current_time() - start == pytest.approx(0.5)

Real sockets stay the right tool for what the kernel does (slow consumers, half-open connections)
and for the real JavaScript clients.
"""

from __future__ import annotations

import itertools
import socket as _socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import h11
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

if TYPE_CHECKING:
    from ._app import App

__all__ = ["InMemoryServer", "MemoryListener", "MemoryResponse", "MemoryWebSocket", "WebSocketRefused", "serve_in_memory"]

_RECEIVE_SIZE = 65536


class _StandInSocket:
    """What the listener and hypercorn ask of a connection's socket: its family and its addresses."""

    family = _socket.AF_INET

    def __init__(self, peer: tuple[str, int]) -> None:
        self._peer = peer

    def getpeername(self) -> tuple[str, int]:
        return self._peer

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 1337)

    def fileno(self) -> int:
        return -1  # no file descriptor: nothing is written to it directly


class _ServerEnd(trio.abc.HalfCloseableStream):
    """The app's end of an in-memory connection, with a stand-in ``socket``."""

    def __init__(self, stream: trio.StapledStream[Any, Any], peer: tuple[str, int]) -> None:
        self._stream = stream
        self.socket = _StandInSocket(peer)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


class MemoryListener(trio.abc.Listener[trio.abc.HalfCloseableStream]):
    """A trio listener whose connections are in-memory stream pairs made by :meth:`connect`."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.HalfCloseableStream](float("inf"))
        self._ports = itertools.count(40000)

    async def connect(self, address: str = "127.0.0.1") -> trio.abc.HalfCloseableStream:
        """Open a connection to the app as a client at ``address``; returns the client's end."""
        client, server = trio.testing.memory_stream_pair()
        await self._send.send(_ServerEnd(server, (address, next(self._ports))))
        return client

    async def accept(self) -> trio.abc.HalfCloseableStream:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("the listener is closed") from None

    async def aclose(self) -> None:
        self._send.close()
        await trio.lowlevel.checkpoint()


@dataclass(frozen=True)
class MemoryResponse:
    """An HTTP response: its status, its headers (lower-case names) and its whole body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


class MemoryWebSocket:
    """A websocket client on an in-memory connection (what a browser's ``WebSocket`` does)."""

    def __init__(self, stream: trio.abc.HalfCloseableStream, connection: WSConnection) -> None:
        self._stream = stream
        self._ws = connection
        self._parts: list[str | bytes] = []
        self.close_code: int | None = None
        """The code of the server's close frame once it closed (1005 when it sent none, 1006 when the
        connection ended without one)."""

    async def send(self, message: str | bytes) -> None:
        """Send one text (``str``) or binary (``bytes``) message."""
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        await self._stream.send_all(self._ws.send(event))

    async def receive(self) -> str | bytes:
        """The next whole message; raises :class:`trio.ClosedResourceError` once the server closed."""
        while True:
            for event in self._ws.events():
                if isinstance(event, Message):
                    self._parts.append(event.data)
                    if event.message_finished:
                        parts, self._parts = self._parts, []
                        return parts[0] if len(parts) == 1 else parts[0][:0].join(parts)  # type: ignore[arg-type]
                elif isinstance(event, Ping):
                    await self._stream.send_all(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    try:
                        await self._stream.send_all(self._ws.send(event.response()))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    raise trio.ClosedResourceError(f"the server closed the websocket ({event.code})")
            if self.close_code is not None:
                raise trio.ClosedResourceError(f"the server closed the websocket ({self.close_code})")
            data = await self._stream.receive_some(_RECEIVE_SIZE)
            if not data:
                self.close_code = 1006
                raise trio.ClosedResourceError("the connection ended without a close frame")
            self._ws.receive_data(bytes(data))

    async def wait_closed(self) -> int:
        """Read (and drop) messages until the server closes; return its close code."""
        while True:
            try:
                await self.receive()
            except trio.ClosedResourceError:
                assert self.close_code is not None
                return self.close_code

    async def aclose(self) -> None:
        """Close from the client's side (code 1000) and hang up."""
        if self.close_code is None:
            try:
                await self._stream.send_all(self._ws.send(CloseConnection(code=1000)))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await self._stream.aclose()


class InMemoryServer:
    """A lifted app reached through memory: open websockets and send HTTP requests to it."""

    def __init__(self, app: App, listener: MemoryListener) -> None:
        self.app = app
        self.listener = listener

    async def websocket(
        self, target: str = "/socket.io/?EIO=4&transport=websocket", *, headers: Iterable[tuple[str, str]] = (), address: str = "127.0.0.1"
    ) -> MemoryWebSocket:
        """Open a websocket to ``target``; raises :class:`WebSocketRefused` when the app refuses it."""
        stream = await self.listener.connect(address)
        connection = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(
            connection.send(Request(host="127.0.0.1", target=target, extra_headers=[(k.encode(), v.encode()) for k, v in headers]))
        )
        while True:
            for event in connection.events():
                if isinstance(event, AcceptConnection):
                    return MemoryWebSocket(stream, connection)
                if isinstance(event, RejectConnection):
                    body = b""
                    if event.has_body:
                        body = await _read_reject_body(stream, connection)
                    await stream.aclose()
                    raise WebSocketRefused(event.status_code, body)
            data = await stream.receive_some(_RECEIVE_SIZE)
            if not data:
                raise WebSocketRefused(0, b"the connection ended before the upgrade was answered")
            connection.receive_data(bytes(data))

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        headers: Iterable[tuple[str, str]] = (),
        address: str = "127.0.0.1",
    ) -> MemoryResponse:
        """Send one HTTP/1.1 request on a new connection and return the whole response."""
        stream = await self.listener.connect(address)
        client = h11.Connection(h11.CLIENT)
        head = [("host", "127.0.0.1"), ("connection", "close"), ("content-length", str(len(body)))]
        data = client.send(h11.Request(method=method, target=target, headers=[*head, *headers]))
        data += client.send(h11.Data(data=body)) if body else b""
        data += client.send(h11.EndOfMessage())
        await stream.send_all(data)
        status, response_headers, chunks = 0, {}, []
        try:
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(bytes(await stream.receive_some(_RECEIVE_SIZE)))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    response_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
        finally:
            await stream.aclose()
        return MemoryResponse(status, response_headers, b"".join(chunks))


class WebSocketRefused(Exception):
    """The app answered a websocket upgrade with a plain HTTP error (``status``, ``body``)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"websocket refused with {status}: {body!r}")
        self.status = status
        self.body = body


async def _read_reject_body(stream: trio.abc.HalfCloseableStream, connection: WSConnection) -> bytes:
    body = b""
    while True:
        for event in connection.events():
            if isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    return body
        data = await stream.receive_some(_RECEIVE_SIZE)
        if not data:
            return body
        connection.receive_data(bytes(data))


@asynccontextmanager
async def serve_in_memory(app: App) -> AsyncIterator[InMemoryServer]:
    """Lift ``app`` on an in-memory listener for the ``with`` block (see the module docstring)."""
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(app.lift, listeners=[listener]))
        try:
            yield InMemoryServer(app, listener)
        finally:
            app.lower()

