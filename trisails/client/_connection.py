"""One websocket to the server, from the TCP connect to the close: what the client reconnects.

A :class:`Connection` lives inside one nursery that :class:`~trisails.client.Client` opens per attempt.
Its tasks there:

* trio-websocket's own reader (started by ``wrap_client_stream``), which turns bytes into messages;
* :meth:`Connection.read`, which turns messages into Engine.IO and Socket.IO packets: it answers
  pings, resolves acks, and hands events to the client's dispatcher;
* :meth:`Connection.watch`, the heartbeat watchdog: Engine.IO v4 servers ping every ``pingInterval``,
  so ``pingInterval + pingTimeout`` without a single frame means the server (or the network) is gone;
* :meth:`Connection.write`, which drains the client's outbox once the connection is ready.

Every way a connection can end goes through :meth:`Connection.end`, which records the first reason
(``"transport close"``, ``"ping timeout"``, ``"io server disconnect"``, ...) and cancels the nursery.
Only the client leaving its ``async with`` block ends a connection *gracefully*: the session body then
says goodbye (``41`` and a websocket close) before cancelling the rest.

The wire work is all done by the sans-I/O codecs, :mod:`trisails.protocol.engineio` and
:mod:`trisails.protocol.socketio`; this module only moves what they produce.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode, urlsplit

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from .._concurrency import Waiter
from .._errors import ConnectionRefused, DisconnectedError, EngineIOError, ProtocolError
from ..protocol import engineio as eio
from ..protocol import socketio as sio

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["AckWaiter", "Connection", "Outgoing", "Target", "frames_of"]

AckWaiter = Waiter  # where the answer to one acked emit lands

log = logging.getLogger("trisails.client")

#: We speak Engine.IO v4 (and so Socket.IO v5): the server pings, we answer.
EIO_REVISION: Final = 4
#: What the client says it is, first in the handshake query as sails.io.js does. ``__trisails_client``
#: asks a trisails server to mark room-joining responses with ``x-trisails-rejoin: 1``.
SDK_QUERY: Final = (
    "__sails_io_sdk_version=1.2.1&__sails_io_sdk_platform=python&__sails_io_sdk_language=python&__trisails_client=1"
)
#: Largest message we accept, as Sails' own default ``maxHttpBufferSize`` (trio-websocket's is 1 MiB).
MAX_MESSAGE_SIZE: Final = 100_000_000
#: Seconds a goodbye (``41`` and the websocket close handshake) may take before we just drop the TCP.
CLOSE_TIMEOUT: Final = 1.0


def frames_of(packet: sio.Packet) -> list[str | bytes]:
    """The websocket frames that carry a Socket.IO packet: its text, then any binary attachments."""
    return [eio.encode_frame(eio.Packet(eio.PacketType.MESSAGE, part), EIO_REVISION) for part in sio.encode(packet)]


@dataclass(frozen=True)
class Target:
    """Where to connect: parsed once from the URL given to ``connect()``.

    ``http`` and ``ws`` mean a plain connection, ``https`` and ``wss`` TLS. The URL may not have a path:
    the engine path is ``path`` (``/socket.io``) and the namespace is ``namespace``, so neither can be
    confused with the other (socket.io-client reads a URL path as the namespace; sails.io.js does not).
    """

    host: str
    port: int
    host_header: str
    secure: bool
    resource: str

    @classmethod
    def parse(cls, url: str, *, path: str, query: str | Mapping[str, Any] | None) -> Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"the url must start with http://, https://, ws:// or wss://, not {url!r}")
        if parts.path not in ("", "/"):
            raise ValueError(
                f"the url must not have a path ({parts.path!r}); use path= for the engine path "
                "and namespace= for the namespace"
            )
        if not parts.hostname:
            raise ValueError(f"the url has no host: {url!r}")
        secure = scheme in ("https", "wss")
        extra = [part for part in (parts.query, _query_string(query)) if part]
        params = "&".join([SDK_QUERY, *extra, f"EIO={EIO_REVISION}", "transport=websocket"])
        return cls(
            host=parts.hostname,
            port=parts.port or (443 if secure else 80),
            host_header=parts.netloc.rpartition("@")[2],
            secure=secure,
            resource=f"/{path.strip('/')}/?{params}",
        )

    async def open_stream(self, ssl_context: ssl.SSLContext | None = None) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
        """A TCP stream to the server, in TLS for ``https``/``wss`` (with ``ssl_context``, or the
        system's trusted authorities when it is None)."""
        if self.secure:
            context = ssl_context if ssl_context is not None else ssl.create_default_context()
            return await trio.open_ssl_over_tcp_stream(self.host, self.port, ssl_context=context, https_compatible=True)
        return await trio.open_tcp_stream(self.host, self.port)


def _query_string(query: str | Mapping[str, Any] | None) -> str:
    if query is None:
        return ""
    if isinstance(query, str):
        return query.lstrip("?")
    return urlencode({key: str(value) for key, value in query.items()})


@dataclass(eq=False)
class Outgoing:
    """One emit waiting in the client's outbox: its frames, already encoded, and who waits for its ack.

    Encoding happens when the emit is made, so a value JSON cannot hold fails in the caller, and the ack
    id is taken then too: ids only need to be unique, and the outbox keeps them in order anyway.
    """

    frames: list[str | bytes]
    ack_id: int | None = None
    waiter: AckWaiter | None = None
    cancelled: bool = False
    """The caller stopped waiting before it was sent: the writer skips it."""
    connection: Connection | None = None
    """The connection it was sent on, whose ack table holds its waiter."""

    def abandon(self) -> None:
        """The caller was cancelled: do not send it if it is still queued, and forget its ack."""
        self.cancelled = True
        if self.connection is not None and self.ack_id is not None:
            self.connection.acks.pop(self.ack_id, None)


class Connection:
    """One websocket and the Engine.IO and Socket.IO sessions on it. See the module docstring."""

    def __init__(self, client: Client, *, namespace: str, connect_timeout: float) -> None:
        self._client = client
        self._namespace = namespace
        self.scope = trio.CancelScope()  # replaced by the nursery's scope in attach()
        self.body_scope = trio.CancelScope()
        """Wraps the session body; a graceful end cancels just this, so the goodbye can still be sent."""
        self.writer_scope = trio.CancelScope()
        self.stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
        self.ws: WebSocketConnection | None = None
        self.sid: str | None = None
        self.pid: str | None = None  # the private session id of recovery, when the server does it
        self.early: list[sio.Packet] = []  # events before the CONNECT answer (a recovery's missed broadcasts)
        self.opened = trio.Event()
        self.namespace_connected = trio.Event()
        self.acks: dict[int, AckWaiter] = {}
        """Acks we wait for on *this* connection; the server forgets its ids when the connection ends."""
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.silence_budget = connect_timeout
        """Seconds without a frame after which the server counts as gone (pingInterval + pingTimeout)."""
        self.last_seen = trio.current_time()
        self._decoder = sio.Decoder(max_attachments=100)
        self._send_lock = trio.Lock()  # the frames of one packet go out back to back
        self._leaving = False  # a graceful end is saying goodbye

    def attach(self, nursery: trio.Nursery) -> None:
        self.scope = nursery.cancel_scope

    @property
    def connected(self) -> bool:
        """The namespace is connected and the connection has not ended."""
        return self.namespace_connected.is_set() and self.reason is None

    def end(self, reason: str, error: BaseException | None = None, *, graceful: bool = False) -> None:
        """End the connection; the first reason is the one reported. Never waits, safe from any task.

        A graceful end only interrupts the session body, which then says goodbye and cancels the rest.
        A graceful end of a connection that is not connected yet has no one to say goodbye to. Once a
        goodbye is under way, later ends change nothing: closing the websocket makes our own reader see
        it closed, and cancelling the nursery then would stop trio-websocket's reader before the
        server's close frame arrives (the goodbye is bounded by :data:`CLOSE_TIMEOUT` anyway).
        """
        if self.reason is None:
            self.reason = reason
            self.error = error
        if self._leaving:
            return
        if graceful and self.namespace_connected.is_set():
            self._leaving = True
            self.body_scope.cancel()
        else:
            self.scope.cancel()

    # ----------------------------------------------------------------------------------------- sending
    async def send(self, frames: Sequence[str | bytes], *, goodbye: bool = False) -> bool:
        """Write ``frames`` back to back; False if the connection is over (and then it has ended).

        trio-websocket has no send timeout (a peer that stops reading blocks a send forever), so each
        write gets the same budget as silence from the server: a peer that takes neither is dead.
        """
        ws = self.ws
        if ws is None or (self.reason is not None and not goodbye):
            return False
        async with self._send_lock:
            with trio.move_on_after(self.silence_budget):
                try:
                    for frame in frames:
                        await ws.send_message(frame)
                except ConnectionClosed:
                    self.end("transport close")
                    return False
                return True
        log.info("no progress sending to the server for %.1f s; dropping the connection", self.silence_budget)
        self.end("transport error")
        return False

    def usable(self) -> bool:
        """Whether a send could start now; if not, nothing has been written and nothing is lost."""
        return self.ws is not None and self.ws.closed is None and self.reason is None

    async def say_goodbye(self) -> None:
        """Leave the namespace (``41``) and close the websocket politely, within :data:`CLOSE_TIMEOUT`.

        Runs while the reader still runs, because the websocket close handshake needs the server's
        answer. The writer is stopped first so nothing follows the ``41``. (A write it was in the middle
        of is cut short; on a connection we are abandoning that costs nothing.)
        """
        self.writer_scope.cancel()
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
            if self.namespace_connected.is_set():
                await self.send(frames_of(sio.Packet(sio.PacketType.DISCONNECT, self._namespace)), goodbye=True)
            if self.ws is not None:
                await self.ws.aclose(1000)

    async def close(self) -> None:
        """After the nursery: close the TCP stream and fail the acks still waiting on this connection."""
        if self.stream is not None:
            # trio-websocket leaves a client's stream open when the server closes first; we own it.
            await trio.aclose_forcefully(self.stream)
        reason = self.reason or "transport close"
        for waiter in self.acks.values():
            error = _disconnected(reason)
            error.__cause__ = self.error
            waiter.fail(error)
        self.acks.clear()

    # ----------------------------------------------------------------------------------------- tasks
    async def read(self) -> None:
        """Read frames until the websocket closes; every frame also proves the server is alive."""
        assert self.ws is not None
        while True:
            try:
                frame = await self.ws.get_message()
            except ConnectionClosed:
                self.end("transport close")
                return
            self.last_seen = trio.current_time()
            try:
                await self._receive_frame(frame)
            except ProtocolError as error:
                log.warning("closing the connection: the server broke the protocol: %s", error.reason)
                self.end("parse error", error)
                return

    async def watch(self) -> None:
        """The heartbeat watchdog: end the connection after ``silence_budget`` seconds without a frame."""
        while True:
            deadline = self.last_seen + self.silence_budget
            if trio.current_time() >= deadline:
                log.info("no frame from the server for %.1f s; the connection is dead", self.silence_budget)
                self.end("ping timeout")
                return
            await trio.sleep_until(deadline)

    async def write(self) -> None:
        """Send what the client queued, in order, for as long as this connection lives."""
        with self.writer_scope:
            client = self._client
            while True:
                item = client._carried or await client._outbox_out.receive()
                client._carried = None
                if item.cancelled:
                    continue
                if not self.usable():
                    client._carried = item  # nothing written: the next connection sends it first
                    return
                if item.waiter is not None and item.ack_id is not None:
                    self.acks[item.ack_id] = item.waiter
                    item.connection = self
                if not await self.send(item.frames):
                    return

    # ----------------------------------------------------------------------------------------- receiving
    async def _receive_frame(self, frame: str | bytes) -> None:
        packet = eio.decode_frame(frame, EIO_REVISION)
        kind = packet.type
        if kind is eio.PacketType.MESSAGE:
            decoded = self._decoder.receive(packet.data)
            if decoded is not None:
                await self._receive_packet(decoded)
        elif kind is eio.PacketType.PING:
            await self.send([eio.encode_frame(eio.Packet(eio.PacketType.PONG, packet.data), EIO_REVISION)])
        elif kind is eio.PacketType.OPEN and not self.opened.is_set():
            self._open(packet.data)
        elif kind is eio.PacketType.CLOSE:
            self.end("transport close")
        elif kind is not eio.PacketType.NOOP:
            raise EngineIOError(f"unexpected {kind.name.lower()} packet from the server")

    def _open(self, data: str | bytes) -> None:
        """Read the handshake: the timings of the server's heartbeat decide when we call it dead."""
        try:
            handshake = orjson.loads(data)
            interval, timeout = handshake["pingInterval"], handshake["pingTimeout"]
            if not (isinstance(interval, int) and isinstance(timeout, int) and interval > 0 and timeout > 0):
                raise ValueError
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            raise EngineIOError("the open packet is not a valid handshake") from None
        self.silence_budget = (interval + timeout) / 1000
        self.opened.set()

    async def _receive_packet(self, packet: sio.Packet) -> None:
        if packet.namespace != self._namespace:
            log.debug("ignoring a %s packet for namespace %s", packet.type.name, packet.namespace)
            return
        kind = packet.type
        if kind is sio.PacketType.CONNECT:
            if not self.namespace_connected.is_set():
                data = packet.data if isinstance(packet.data, dict) else {}
                self.sid = str(data.get("sid", "")) or None
                pid = data.get("pid")
                self.pid = pid if isinstance(pid, str) else None
                self.namespace_connected.set()
                await self._client._namespace_connected(self)
                early, self.early = self.early, []
                for packet in early:  # delivered after "connect", as socket.io-client does
                    event, *args = packet.data
                    await self._client._incoming(str(event), args, packet.id, self)
        elif kind is sio.PacketType.CONNECT_ERROR:
            data = packet.data
            if isinstance(data, dict):
                refusal = ConnectionRefused(str(data.get("message", "connection refused")), data.get("data"))
            else:
                refusal = ConnectionRefused(str(data))
            self.end("connect error", refusal)
        elif kind is sio.PacketType.DISCONNECT:
            self.end("io server disconnect")
        elif kind is sio.PacketType.EVENT:
            if not self.namespace_connected.is_set():
                if len(self.early) < 100_000:
                    self.early.append(packet)
                return
            event, *args = packet.data
            await self._client._incoming(str(event), args, packet.id, self)
        elif kind is sio.PacketType.ACK:
            waiter = self.acks.pop(packet.id, None) if packet.id is not None else None
            if waiter is None:
                log.debug("ignoring an ack for unknown id %s", packet.id)
            else:
                waiter.resolve(list(packet.data))


def _disconnected(reason: str) -> DisconnectedError:
    return DisconnectedError(f"The socket disconnected before the request completed ({reason}).")
