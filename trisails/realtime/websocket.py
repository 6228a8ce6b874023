"""A websocket on a trio stream we own, framed by wsproto: the direct transport's connection.

Going through ASGI, every frame costs a hypercorn round trip, and hypercorn shields its socket writes
from cancellation: a peer that stops reading would pin its connection's writer forever, and the
slow-consumer policy could never cut it off. Owning the stream fixes both. :meth:`send_many` writes
everything the session has queued in one ``send_all`` (the biggest lever on this stack, see
``docs/concepts/realtime.md``), and cancelling a write simply abandons a connection we are closing.
"""

from __future__ import annotations

import logging
import os

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

__all__ = ["StreamWebSocket"]

log = logging.getLogger("trisails.realtime")

RECEIVE_SIZE = 65536
CLOSE_TIMEOUT = 1.0
MESSAGE_TOO_BIG = 1009


class StreamWebSocket:
    """A server-side websocket over ``stream``, after its upgrade request was read (``data``)."""

    def __init__(self, stream: trio.SocketStream, *, max_message_size: int) -> None:
        self._stream = stream
        self._fd = stream.socket.fileno()
        self.direct = True
        """Whether ready-made frames may be written as they are (not with permessage-deflate on)."""
        self._ws = WSConnection(ConnectionType.SERVER)
        self._max_message_size = max_message_size
        self._send_lock = trio.Lock()
        self._parts: list[str | bytes] = []
        self._size = 0
        self.closed = False

    async def read_request(self, data: bytes) -> Request | None:
        """Feed the bytes read so far and return the upgrade request (None if the peer gave up)."""
        self._ws.receive_data(data)
        while True:
            for event in self._ws.events():
                if isinstance(event, Request):
                    return event
            chunk = await self._stream.receive_some(RECEIVE_SIZE)
            if not chunk:
                return None
            self._ws.receive_data(chunk)

    async def accept(self, request: Request, *, compression: bool) -> None:
        extensions: list[Extension] = [PerMessageDeflate()] if compression and request.extensions else []
        self.direct = not extensions  # compressed frames must go through wsproto's compressor
        await self._write(self._ws.send(AcceptConnection(extensions=extensions)))

    async def refuse(self, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        data = self._ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        data += self._ws.send(RejectData(data=body, body_finished=True))
        await self._write(data)
        await self._abort()

    # WebSocketIO ---------------------------------------------------------------------------------------
    async def send(self, frame: str | bytes) -> None:
        await self.send_many([frame])

    async def send_many(self, frames: list[str | bytes]) -> None:
        """Write ``frames`` as consecutive websocket messages in a single write."""
        if self.closed:
            return
        ws = self._ws
        try:
            data = b"".join(
                [ws.send(TextMessage(data=f) if isinstance(f, str) else BytesMessage(data=f)) for f in frames]
            )
        except LocalProtocolError:  # the peer has already started closing: nothing more goes out
            return
        await self._write(data)

    def write_now(self, data: bytes) -> int:
        """Write as much of ``data`` as the kernel takes without waiting, and return how much that was.

        The fast path for broadcasts and acks: no task switch, one system call. It writes nothing while
        another write is under way (order), and leaves a broken connection to the next awaited write,
        which notices and closes it.
        """
        if self.closed or self._send_lock.locked():
            return 0
        try:
            return os.write(self._fd, data)
        except OSError:  # would block, or broken: the awaited path deals with it
            return 0

    async def write(self, data: bytes) -> None:
        """Write ready-made frames (see :func:`~trisails.realtime.engine.websocket_frame`)."""
        await self._write(data)

    async def receive(self) -> str | bytes | None:
        """The next whole message, or None once the peer has closed or broken the connection."""
        while True:
            for event in self._ws.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    self._parts.append(bytes(event.data) if isinstance(event.data, bytearray) else event.data)
                    self._size += len(event.data)
                    if self._size > self._max_message_size:
                        log.info("closing websocket: message over %d bytes", self._max_message_size)
                        await self.close(MESSAGE_TOO_BIG)
                        return None
                    if event.message_finished:
                        parts, self._parts, self._size = self._parts, [], 0
                        return parts[0] if len(parts) == 1 else parts[0][:0].join(parts)  # type: ignore[arg-type]
                elif isinstance(event, Ping):
                    await self._write(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    try:
                        await self._write(self._ws.send(event.response()))
                    except LocalProtocolError:
                        pass
                    await self._abort()
                    return None
            if self.closed:
                return None
            try:
                chunk = await self._stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                chunk = b""
            if not chunk:
                await self._abort()
                return None
            try:
                self._ws.receive_data(chunk)
            except RemoteProtocolError as error:
                log.info("closing websocket: %s", error)
                await self._abort()
                return None

    async def close(self, code: int) -> None:
        """Close with ``code``: send the close frame, wait briefly for the peer's, then close the stream.

        Waiting for the peer matters: closing a TCP socket with unread input makes the kernel reset
        the connection, and the peer would then see 1006 instead of our code. A peer that does not read
        at all (a slow consumer) gets one second, then the stream is closed anyway. Call this only
        when no other task reads the websocket.
        """
        if self.closed:
            return
        with trio.move_on_after(CLOSE_TIMEOUT):
            try:
                await self._write(self._ws.send(CloseConnection(code=code)))
            except LocalProtocolError:
                pass
            while not self.closed:
                if any(isinstance(e, CloseConnection) for e in self._ws.events()):
                    break
                try:
                    chunk = await self._stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not chunk:
                    break
                try:
                    self._ws.receive_data(chunk)
                except RemoteProtocolError:
                    break
        await self._abort()

    # internals -----------------------------------------------------------------------------------------
    async def _write(self, data: bytes) -> None:
        if not data or self.closed:
            return
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self._abort()

    async def _abort(self) -> None:
        self.closed = True
        await trio.aclose_forcefully(self._stream)
