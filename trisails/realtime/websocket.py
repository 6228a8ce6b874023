"""A websocket on a trio stream we own, framed by :mod:`trisails.protocol.websocket`.

The framing rules are sans-I/O; this class only moves bytes between them and the stream. Owning the
stream (rather than going through ASGI) is what makes the connection core fast and safe: a ready-made
frame can be written straight to the kernel (:meth:`StreamWebSocket.write_now`, no task switch), a batch
goes out in one ``send_all``, and cancelling a write simply abandons a connection we are closing, so a
peer that stops reading can always be cut off. Reading is direct too: on a plain TCP socket the reader
reads the descriptor itself and waits for readiness only when the kernel has nothing
(:meth:`StreamWebSocket.receive_nowait`), rather than taking a trip through trio's scheduler for every
read; it waits in the endpoint's shared reader (:meth:`StreamWebSocket.wait_shared`) when there is one,
else for its own descriptor (:meth:`StreamWebSocket.readable`).
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Awaitable, Callable

import trio

from .._errors import WebSocketError
from ..protocol import websocket as rfc6455
from .reading import SharedReader

__all__ = ["Pending", "StreamWebSocket"]

log = logging.getLogger("trisails.realtime")


class Pending(enum.Enum):
    """Why :meth:`StreamWebSocket.receive_nowait` has no message now."""

    WAIT = "wait"
    """Nothing to read: wait for input (:meth:`StreamWebSocket.wait_shared`, or
    :meth:`StreamWebSocket.readable` without a shared reader), then ask again."""
    AWAIT = "await"
    """Awaited work is needed: call :meth:`StreamWebSocket.receive`."""


RECEIVE_SIZE = 65536
#: A reader that never has to wait still lets the other tasks run after this many reads in a row.
_YIELD_EVERY = 16
CLOSE_TIMEOUT = 1.0


class StreamWebSocket:
    """A server-side websocket over ``stream``, for the upgrade ``request`` read from it.

    ``direct_fd`` is the descriptor of the plain TCP socket under ``stream``, for :meth:`write_now`;
    None when ``stream`` is not that socket's own (TLS), so that every write takes the awaited path.
    """

    __slots__ = (
        "_stream", "_fd", "_ws", "_request", "_max_message_size", "_send_lock", "_drained", "_streak", "_held",
        "_unsent", "_shared", "direct", "closed",
    )

    def __init__(
        self, stream: trio.abc.Stream, request: rfc6455.UpgradeRequest, *, max_message_size: int, direct_fd: int | None
    ) -> None:
        self._stream = stream
        self._fd = direct_fd if direct_fd is not None and direct_fd >= 0 else None
        """The descriptor :meth:`write_now` writes to: None over TLS (a raw write would bypass the
        encryption) and for trisails.testing's in-memory streams (their stand-in socket has none)."""
        self._request: rfc6455.UpgradeRequest | None = request
        self._ws: rfc6455.ServerConnection | None = None
        self._max_message_size = max_message_size
        self._send_lock = trio.Lock()
        self._drained = False  # the last read took less than it could: the kernel had nothing more
        self._streak = 0  # reads in a row that did not have to wait (see _receive_chunk)
        self._held: rfc6455.Event | WebSocketError | None = None  # met by receive_nowait, for receive
        self._unsent = b""
        """The 101 response, until the first write carries it (see :meth:`accept`)."""
        self._shared: SharedReader | None = None  # while our reader is parked in it (see wait_shared)
        self.direct = True
        """Whether ready-made frames are written as they are (False once permessage-deflate is on, so
        that messages are compressed)."""
        self.closed = False

    async def accept(self, *, compression: bool) -> None:
        """Answer the upgrade with 101, negotiating permessage-deflate only when ``compression`` is on.

        The response goes out with the first write (the Engine.IO open packet, a moment later), or
        before the first wait for the client's frames, whichever comes first: one system call and no
        task switch instead of two writes, and the client, which sends nothing before the 101, never
        waits for it."""
        request = self._request
        assert request is not None
        self._request = None  # the handshake keeps what the app sees; an idle socket keeps no raw head
        deflate = rfc6455.negotiate_deflate(request.header(b"sec-websocket-extensions")) if compression else None
        self.direct = deflate is None
        self._ws = rfc6455.ServerConnection(max_message_size=self._max_message_size, deflate=deflate)
        assert request.key is not None
        self._unsent = rfc6455.accept_response(request.key, deflate=deflate)
        if request.trailing:  # frames the client sent right behind its request head
            self._feed(request.trailing)

    async def refuse(self, status: int, body: bytes) -> None:
        """Answer with a plain HTTP error instead of the upgrade, and hang up."""
        await self._write(rfc6455.reject_response(status, body, headers=[(b"content-type", b"text/html")]))
        await self._abort()

    # -------------------------------------------------------------------------------------- writing
    async def send(self, frame: str | bytes) -> None:
        await self.send_many([frame])

    async def send_many(self, frames: list[str | bytes]) -> None:
        """Write ``frames`` as consecutive websocket messages in a single write (compressed if agreed)."""
        ws = self._ws
        if self.closed or ws is None or ws.state is not rfc6455.ConnectionState.OPEN:
            return
        await self._write(b"".join([ws.send_message(frame) for frame in frames]))

    def write_now(self, data: bytes) -> int:
        """Write as much of ``data`` as the kernel takes without waiting, and return how much that was.

        The fast path for broadcasts and acks: no task switch, one system call. It writes nothing while
        another write is under way (order), nor over TLS (it returns 0: the caller's writer sends it),
        and leaves a broken connection to the next awaited write, which notices and closes it.
        """
        if self.closed or self._fd is None or self._send_lock.locked():
            return 0
        unsent = self._unsent
        if unsent:  # the 101 first, in the same system call
            try:
                written = os.write(self._fd, unsent + data)
            except OSError:
                return 0
            if written < len(unsent):
                self._unsent = unsent[written:]
                return 0
            self._unsent = b""
            return written - len(unsent)
        try:
            return os.write(self._fd, data)
        except OSError:  # would block, or broken: the awaited path deals with it
            return 0

    async def write(self, data: bytes) -> None:
        """Write ready-made frames (see :func:`trisails.protocol.websocket.encode_frame`)."""
        await self._write(data)

    # -------------------------------------------------------------------------------------- reading
    def receive_nowait(self) -> str | bytes | Pending:
        """The next whole message if it can be had without waiting; else what to do for it.

        :attr:`Pending.WAIT`: wait for input, then ask again. :attr:`Pending.AWAIT`: something needs
        awaited work (a control frame to answer, a broken or closing connection, TLS): call
        :meth:`receive`. Synchronous, so that the shared reader can call it for a parked connection
        (through its ``serve``), and the reader of a plain TCP websocket loops on it rather than on
        :meth:`receive`.
        """
        ws = self._ws
        fd = self._fd
        if fd is None or self._held is not None or ws is None:
            return Pending.AWAIT
        while True:
            try:
                event = ws.next_event()
            except WebSocketError as error:
                self._held = error
                return Pending.AWAIT
            if event is None:
                if self.closed:
                    return Pending.AWAIT
                if self._drained or self._streak >= _YIELD_EVERY:
                    # (the 101 still unsent: receive() writes it before it waits)
                    return Pending.AWAIT if self._unsent else Pending.WAIT
                try:
                    chunk = os.read(fd, RECEIVE_SIZE)
                except BlockingIOError:
                    self._drained = True
                    return Pending.AWAIT if self._unsent else Pending.WAIT
                except OSError:  # reset: receive() reads again and sees the end
                    return Pending.AWAIT
                if not chunk:
                    return Pending.AWAIT
                self._drained = len(chunk) < RECEIVE_SIZE
                self._streak += 1
                ws.receive_data(chunk)
                continue
            if type(event) is rfc6455.Message:
                return event.data
            self._held = event
            return Pending.AWAIT

    def readable(self) -> Awaitable[None]:
        """What to await when :meth:`receive_nowait` said :attr:`Pending.WAIT`: the descriptor's readiness
        (trio's own coroutine, returned rather than awaited here, for the reason given there), or just
        a checkpoint for a socket that always had more to read, so that it cannot starve the others.
        Raises :class:`trio.ClosedResourceError` if the stream is closed meanwhile."""
        assert self._fd is not None
        self._streak = 0
        if self._drained:
            self._drained = False
            return trio.lowlevel.wait_readable(self._fd)
        return trio.lowlevel.checkpoint()

    async def wait_shared(self, reader: SharedReader, serve: Callable[[], bool]) -> None:
        """What to await when :meth:`receive_nowait` said :attr:`Pending.WAIT`, when ``reader`` is running:
        park in it, which calls ``serve`` in its own task each time the descriptor is readable, until
        ``serve`` returns False (then call :meth:`receive_nowait` again) or raises (raised here).
        ``serve`` calls :meth:`mark_readable` first."""
        assert self._fd is not None
        self._shared = reader
        try:
            await reader.wait(self._fd, serve)
        finally:
            self._shared = None

    def mark_readable(self) -> None:
        """The descriptor was reported readable: the next :meth:`receive_nowait` reads it."""
        self._drained = False
        self._streak = 0

    async def receive(self) -> str | bytes | None:
        """The next whole message, or None once the peer has closed or broken the connection."""
        ws = self._ws
        assert ws is not None
        while True:
            try:
                held, self._held = self._held, None
                if isinstance(held, WebSocketError):
                    raise held
                event = held if held is not None else ws.next_event()
            except WebSocketError as error:
                log.info("closing websocket: %s", error.reason)
                await self._write(ws.data_to_send())
                await self._abort()
                return None
            if event is None:
                if self.closed:
                    return None
                if self._unsent:  # nothing was written since the upgrade: the 101 goes out now
                    await self._write(b"")
                chunk = await self._receive_chunk()
                if not chunk:
                    await self._abort()
                    return None
                self._feed(chunk)
                continue
            if type(event) is rfc6455.Message:
                return event.data
            pending = ws.data_to_send()  # the automatic pong
            if pending:
                await self._write(pending)
            if isinstance(event, rfc6455.Close):
                if ws.state is rfc6455.ConnectionState.REMOTE_CLOSING:
                    await self._write(ws.send_close())
                await self._abort()
                return None

    async def _receive_chunk(self) -> bytes | bytearray:
        """The next bytes from the peer; empty once it has closed or broken the connection.

        On a plain TCP socket this reads the descriptor itself rather than through trio's socket
        wrapper, which makes every successful read a full trip through the scheduler. That trip is most
        of what a small message costs to receive, so we take it only when there is nothing to read:
        after a short read (the kernel had nothing more) we wait for readiness first, and a socket that
        always has more to read still yields every ``_YIELD_EVERY`` reads so that it cannot starve the
        others. Closing the stream wakes a waiting reader (trio's ``notify_closing``), which then sees
        the end of input.
        """
        fd = self._fd
        if fd is None:
            try:
                return await self._stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
        try:
            if self._drained:
                self._streak = 0
                await trio.lowlevel.wait_readable(fd)
            while True:
                try:
                    chunk = os.read(fd, RECEIVE_SIZE)
                except BlockingIOError:
                    self._streak = 0
                    await trio.lowlevel.wait_readable(fd)
                    continue
                break
        except (OSError, trio.ClosedResourceError):  # reset, or closed under us: the end of input
            return b""
        self._drained = len(chunk) < RECEIVE_SIZE
        self._streak += 1
        if self._streak >= _YIELD_EVERY:
            self._streak = 0
            await trio.lowlevel.checkpoint()
        return chunk

    def _feed(self, data: bytes | bytearray) -> None:
        assert self._ws is not None
        self._ws.receive_data(data)

    # -------------------------------------------------------------------------------------- closing
    async def close(self, code: int | None) -> None:
        """Close with ``code`` (None: a close frame without one): send it, wait briefly for the
        peer's, then close the stream.

        Waiting for the peer matters: closing a TCP socket with unread input makes the kernel reset
        the connection, and the peer would then see 1006 instead of our code. A peer that does not read
        at all (a slow consumer) gets one second, then the stream is closed anyway. Call this only
        when no other task reads the websocket.
        """
        if self.closed:
            return
        ws = self._ws
        if ws is None:
            await self._abort()
            return
        with trio.move_on_after(CLOSE_TIMEOUT):
            if ws.state is rfc6455.ConnectionState.OPEN:
                await self._write(ws.send_close(code))
            while not self.closed and ws.state is not rfc6455.ConnectionState.CLOSED:
                try:
                    event = ws.next_event()
                except WebSocketError:
                    break
                if isinstance(event, rfc6455.Close):
                    break
                if event is not None:
                    continue
                try:
                    chunk = await self._stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not chunk:
                    break
                self._feed(chunk)
        await self._abort()

    # -------------------------------------------------------------------------------------- internals
    async def _write(self, data: bytes) -> None:
        if self._unsent:
            data, self._unsent = self._unsent + data, b""
        if not data or self.closed:
            return
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self._abort()

    async def _abort(self) -> None:
        self.closed = True
        if self._shared is not None:  # our reader is parked on the descriptor: it must see the end
            assert self._fd is not None
            self._shared.release(self._fd)
        await trio.aclose_forcefully(self._stream)
