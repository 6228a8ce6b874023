"""One Engine.IO session: heartbeat, transport upgrade, and the bounded outbound queue.

Theory of operation
-------------------
A session is what the Engine.IO protocol calls a "socket": it has a ``sid``, outlives any single HTTP
request, and carries messages for exactly one client. Its life is one trio task, :meth:`EngineSession.run`,
which opens the session's own nursery. Everything the session does lives in that nursery:

* the heartbeat task (the client pings in Engine.IO v3, the server pings in v4);
* while the transport is a websocket, that websocket's reader and writer tasks;
* the Socket.IO layer's event-handler tasks (``session.nursery``).

Closing the session cancels the nursery, so no task outlives its connection. Who owns ``run`` depends on
how the client arrived: a client that opens a websocket straight away runs its session inside that
websocket's ASGI handler; a long-polling session outlives its HTTP requests, so it runs in the server's
nursery, and a later upgrade to websocket attaches reader and writer tasks to it.

Outbound data goes through one bounded trio memory channel of :class:`Envelope` objects. Nothing that
sends to a session ever waits: :meth:`EngineSession.send` puts without blocking, and when the buffer is
full the slow-consumer policy decides (disconnect the session, or drop the message for it alone). The
websocket writer drains everything that is queued in one go; a long-poll GET answers with everything
that is queued as one payload. An :class:`Envelope` caches its websocket frames per protocol revision, so
a broadcast is encoded once however many sessions it reaches.
"""

from __future__ import annotations

import enum
import struct
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .._errors import ProtocolError
from ..protocol import engineio as eio

if TYPE_CHECKING:
    from .._config import SocketSettings

__all__ = ["EngineSession", "Envelope", "Handshake", "SessionState"]

log = logging.getLogger("trisails.realtime")


def new_id() -> str:
    """A 20-character url-safe random id, the shape Engine.IO uses for sids."""
    return secrets.token_urlsafe(15)


@dataclass(frozen=True)
class Handshake:
    """What the client told us when it connected: the first HTTP request of its session.

    ``headers`` has lower-case names (repeated headers joined with ", "); ``query`` keeps the last
    value of a repeated parameter.
    """

    headers: dict[str, str]
    query: dict[str, str]
    address: str
    url: str
    secure: bool
    time: float = field(default_factory=time.time)

    @property
    def issued(self) -> int:
        """When the handshake happened, in epoch milliseconds."""
        return int(self.time * 1000)

    @property
    def xdomain(self) -> bool:
        """Whether the client declared an ``Origin`` (a browser on a page), as Socket.IO reports it."""
        return "origin" in self.headers


class Envelope:
    """A group of Engine.IO packets that must go out together (a Socket.IO packet and its attachments).

    The websocket frames are computed at most once per protocol revision, however many sessions the
    envelope is queued to: that is what makes a broadcast "encode once, send many".
    """

    __slots__ = ("_frames", "_wire", "packets")

    def __init__(self, packets: Sequence[eio.Packet]) -> None:
        self.packets = tuple(packets)
        self._frames: dict[int, list[str | bytes]] = {}
        self._wire: dict[int, bytes] = {}

    @classmethod
    def of(cls, *packets: eio.Packet) -> Envelope:
        return cls(packets)

    def frames(self, revision: int) -> list[str | bytes]:
        frames = self._frames.get(revision)
        if frames is None:
            frames = self._frames[revision] = [eio.encode_frame(p, revision) for p in self.packets]
        return frames

    def wire(self, revision: int) -> bytes:
        """The envelope as uncompressed websocket frames, ready for the socket: built once per revision
        and shared by every member of a broadcast (server frames are not masked, so they are the same
        bytes for everyone)."""
        wire = self._wire.get(revision)
        if wire is None:
            wire = self._wire[revision] = b"".join([websocket_frame(f) for f in self.frames(revision)])
        return wire


def websocket_frame(message: str | bytes) -> bytes:
    """One unmasked, unfragmented websocket data frame (RFC 6455 §5.2), as a server sends it."""
    if isinstance(message, str):
        opcode, payload = 0x81, message.encode()
    else:
        opcode, payload = 0x82, bytes(message)
    length = len(payload)
    if length < 126:
        return bytes((opcode, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", opcode, 126, length) + payload
    return struct.pack("!BBQ", opcode, 127, length) + payload


class SessionState(enum.Enum):
    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSED = "closed"


class WebSocketIO(Protocol):
    """The little a session needs from a websocket: send one frame, receive one, close."""

    async def send(self, frame: str | bytes) -> None: ...

    async def send_many(self, frames: list[str | bytes]) -> None: ...  # in one write where it can

    async def receive(self) -> str | bytes | None: ...  # None: the peer went away

    async def close(self, code: int) -> None: ...


class DirectWebSocket(WebSocketIO, Protocol):
    """A websocket that also takes ready-made frames: written now if the kernel takes them, or awaited."""

    def write_now(self, data: bytes) -> int: ...  # bytes written without waiting (0 if none could be)

    async def write(self, data: bytes) -> None: ...


class MessageReceiver(Protocol):
    """The layer above the session (Socket.IO): it gets each message and hears when the session ends."""

    def on_open(self) -> None: ...

    def on_message(self, data: str | bytes) -> None: ...

    def on_close(self, reason: str) -> None: ...


class OverlappingPoll(Exception):
    """A second long-poll GET arrived while one was pending; Engine.IO treats that as a client error."""


_PONG = eio.Packet(eio.PacketType.PONG)
_PING = eio.Packet(eio.PacketType.PING)
_NOOP = eio.Packet(eio.PacketType.NOOP)
_CLOSE = eio.Packet(eio.PacketType.CLOSE)


class EngineSession:
    """One client's Engine.IO session, from handshake to close. See the module docstring."""

    def __init__(
        self,
        *,
        sid: str,
        revision: int,
        transport: str,
        handshake: Handshake,
        settings: SocketSettings,
        b64: bool = False,
    ) -> None:
        self.sid = sid
        self.revision = revision
        self.transport = transport
        self.handshake = handshake
        self.b64 = b64
        self.state = SessionState.OPEN
        self.close_reason: str | None = None
        self.receiver: MessageReceiver | None = None
        self.nursery: trio.Nursery | None = None
        self._settings = settings
        self._out_send, self._out_recv = trio.open_memory_channel[Envelope | bytes](settings.outbound_buffer)
        self._direct: Callable[[bytes], int] | None = None  # write_now of an uncompressed websocket
        self._queued = 0  # items in the outbound channel
        self._writing = False  # the writer task holds a batch it has not finished writing
        self._writer_running = False
        self._websocket: Any = None
        self._closed = trio.Event()
        self._ended = trio.Event()  # run() has finished: no task of this session is left
        self._flush_on_close = True
        self._close_code = 1000
        now = trio.current_time()
        self._last_ping = now  # Engine.IO v3: when the client last pinged
        self._next_ping = now + settings.ping_interval / 1000  # v4: when the server pings next
        self._pong_due: float | None = None  # v4: the deadline of the pong the server waits for
        self._poll_scope: trio.CancelScope | None = None
        self.dropped = 0  # messages dropped by the "drop" slow-consumer policy

    # ----------------------------------------------------------------------------------------- lifetime
    async def run(
        self,
        websocket: WebSocketIO | None = None,
        *,
        on_end: Callable[[EngineSession], None] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Live until the session closes; with ``websocket``, that socket is the transport from the start.

        This is the boundary of one connection: an unexpected error inside it is logged and ends this
        session only, never the server.
        """
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                if websocket is not None:
                    self._use_websocket(websocket)
                task_status.started()
                if self.receiver is not None:
                    self.receiver.on_open()
                await self._closed.wait()
                if self._flush_on_close and self.transport == "polling":
                    # Let a pending or imminent long-poll collect the last packets (and the close).
                    with trio.move_on_after(1.0):
                        await self._out_recv_drained()
                if not self._flush_on_close or self.transport == "polling":
                    nursery.cancel_scope.cancel()
                else:
                    # The websocket writer ends the session by itself once it has flushed what is queued.
                    self._wake_writer()
                    nursery.cancel_scope.deadline = trio.current_time() + 1.0
        except Exception:
            log.exception("session %s failed", self.sid)
            self.close_reason = self.close_reason or "server error"
            self._closed.set()
        finally:
            self.state = SessionState.CLOSED
            self._ended.set()
            if on_end is not None:
                on_end(self)
            if self.receiver is not None:
                self.receiver.on_close(self.close_reason or "transport close")

    @property
    def close_code(self) -> int:
        """The websocket close code for how the session ended (1000, 1001 going away, 1002 protocol error)."""
        return self._close_code

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(
        self, reason: str, *, flush: bool = True, final: Sequence[eio.Packet] = (), code: int = 1000
    ) -> None:
        """End the session: queue ``final`` packets, flush what is queued (unless ``flush`` is False), close.

        ``code`` is the websocket close code (1001 "going away" when the server shuts down). Safe to call
        from any task, any number of times; the first reason wins.
        """
        if self._closed.is_set():
            return
        self.close_reason = reason
        self._flush_on_close = flush
        self._close_code = code
        if final and flush:
            try:
                self._out_send.send_nowait(Envelope(final))
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass
        self._out_send.close()
        self._closed.set()
        if self._poll_scope is not None and not flush:
            self._poll_scope.cancel()

    # ----------------------------------------------------------------------------------------- sending
    def send(self, envelope: Envelope) -> bool:
        """Send ``envelope`` without waiting; False if it could not be (closed, or dropped as slow).

        On an uncompressed websocket with nothing queued ahead, the frames go straight to the socket
        when the kernel takes them: no task switch, one system call. Whatever the kernel does not take
        is queued for the writer task, and everything after it waits its turn, so order is kept.
        """
        direct = self._direct
        item: Envelope | bytes = envelope
        if direct is not None and not self._queued and not self._writing and not self._closed.is_set():
            data = envelope.wire(self.revision)
            written = direct(data)
            if written == len(data):
                return True
            if written:
                item = data[written:]
        try:
            self._out_send.send_nowait(item)
            self._queued += 1
            if direct is not None and not self._writer_running:
                self._wake_writer()
            return True
        except trio.WouldBlock:
            if self._settings.slow_consumer == "drop":
                self.dropped += 1
                return False
            log.warning(
                "closing session %s: slow consumer (%d messages waiting)", self.sid, self._settings.outbound_buffer
            )
            self.close("slow consumer", flush=False, code=1008)
            return False
        except trio.ClosedResourceError:
            return False

    def statistics(self) -> trio.MemoryChannelStatistics:
        """The outbound channel's statistics: ``current_buffer_used`` is how far behind this client is."""
        return self._out_send.statistics()

    async def _out_recv_drained(self) -> None:
        while self._out_recv.statistics().current_buffer_used:
            await trio.sleep(0.01)

    def _drain_nowait(self, first: Envelope | bytes) -> list[Envelope | bytes]:
        batch = [first]
        while True:
            try:
                batch.append(self._out_recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                self._queued = 0
                return batch

    # ----------------------------------------------------------------------------------------- receiving
    def receive_packet(self, packet: eio.Packet) -> None:
        """Handle one packet from the client, whatever transport carried it.

        A packet that breaks the protocol closes the session with the reason, logged; it never raises.
        """
        if self._closed.is_set():
            return
        kind = packet.type
        try:
            if kind is eio.PacketType.MESSAGE:
                if self.receiver is not None:
                    self.receiver.on_message(packet.data)
            elif kind is eio.PacketType.PING:
                if self.revision != 3:
                    raise ProtocolError("invalid heartbeat direction")
                self._last_ping = trio.current_time()
                self.send(Envelope.of(eio.Packet(eio.PacketType.PONG, packet.data)))
            elif kind is eio.PacketType.PONG:
                if self.revision == 3:
                    raise ProtocolError("invalid heartbeat direction")
                self._pong_due = None
            elif kind is eio.PacketType.CLOSE:
                self.close("transport close", flush=False)
            elif kind is eio.PacketType.NOOP:
                pass
            else:
                raise ProtocolError(f"unexpected {kind.name.lower()} packet from the client")
        except ProtocolError as error:
            self.protocol_error(error.reason)

    def receive_text_or_bytes(self, frame: str | bytes) -> None:
        """Decode one websocket frame and handle it."""
        try:
            packet = eio.decode_frame(frame, self.revision)
        except ProtocolError as error:
            self.protocol_error(error.reason)
            return
        self.receive_packet(packet)

    def protocol_error(self, reason: str) -> None:
        """Close this one session because its client broke the protocol, and say why in the log."""
        log.warning("closing session %s (%s): %s", self.sid, self.handshake.address, reason)
        self.close(f"parse error: {reason}", flush=False, code=1002)

    # ----------------------------------------------------------------------------------------- heartbeat
    def beat(self, now: float) -> None:
        """Keep the heartbeat (called by the endpoint's one heartbeat task for every session).

        Engine.IO v3: the client pings; a session silent for ``ping_interval + ping_timeout`` is closed.
        v4: the server pings every ``ping_interval`` and closes a session whose pong does not come
        within ``ping_timeout``.
        """
        if self._closed.is_set():
            return
        settings = self._settings
        if self.revision == 3:
            if now >= self._last_ping + (settings.ping_interval + settings.ping_timeout) / 1000:
                self.close("ping timeout", flush=False)
            return
        if self._pong_due is not None:
            if now >= self._pong_due:
                self.close("ping timeout", flush=False)
            return
        if now >= self._next_ping:
            self._next_ping = now + settings.ping_interval / 1000
            self._pong_due = now + settings.ping_timeout / 1000
            self.send(Envelope.of(_PING))

    # ----------------------------------------------------------------------------------------- websocket
    async def _websocket_reader(self, websocket: WebSocketIO) -> None:
        while True:
            frame = await websocket.receive()
            if frame is None:
                self.close("transport close", flush=False)
                return
            self.receive_text_or_bytes(frame)

    def _use_websocket(self, websocket: WebSocketIO) -> None:
        """Make ``websocket`` the transport: start its reader, and its writer unless frames can be written
        directly, in which case a writer task runs only while something waits to be written."""
        assert self.nursery is not None
        self._websocket = websocket
        self.nursery.start_soon(self._websocket_reader, websocket)
        if getattr(websocket, "direct", False) and getattr(websocket, "write_now", None) is not None:
            self._direct = websocket.write_now  # type: ignore[attr-defined]
            if self._queued:  # the open packet, or what waited for the next poll before an upgrade
                self._wake_writer()
        else:
            self._writer_running = True  # for good: compressed frames all go through it
            self.nursery.start_soon(self._websocket_writer, websocket)

    def _wake_writer(self) -> None:
        """Start the on-demand writer of a direct websocket, if it is not running."""
        if self._direct is not None and not self._writer_running and self.nursery is not None:
            self._writer_running = True
            self.nursery.start_soon(self._flush_queue, self._websocket)

    async def _flush_queue(self, websocket: Any) -> None:
        """Write what waits, in order, then end: the writer of a direct websocket, started when a send
        could not go straight out (an idle connection holds no writer task). Once the session is closed
        and everything is written, the session ends."""
        revision = self.revision
        try:
            while True:
                try:
                    first = self._out_recv.receive_nowait()
                except trio.WouldBlock:
                    return  # nothing waits: the next send writes directly again
                except trio.EndOfChannel:
                    break
                self._writing = True
                batch = self._drain_nowait(first)
                await websocket.write(b"".join([i if isinstance(i, bytes) else i.wire(revision) for i in batch]))
                self._writing = False
        finally:
            self._writer_running = False
            self._writing = False
        self._direct = None
        if self.nursery is not None:  # closed and flushed; the websocket's owner closes it
            self.nursery.cancel_scope.cancel()

    async def _websocket_writer(self, websocket: WebSocketIO) -> None:
        """The writer of a websocket whose frames go through its own framing (permessage-deflate)."""
        revision = self.revision
        try:
            while True:
                try:
                    first = await self._out_recv.receive()
                except trio.EndOfChannel:
                    break
                self._writing = True
                batch = self._drain_nowait(first)
                await websocket.send_many(
                    [frame for item in batch if isinstance(item, Envelope) for frame in item.frames(revision)]
                )
                self._writing = False
        finally:
            self._writing = False
        # Closed on our side and everything queued has been written: the session can end. The
        # websocket's owner closes it with close_code once no task of ours reads it any more.
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    async def upgrade(self, websocket: WebSocketIO) -> bool:
        """Move a polling session to ``websocket``: the probe, then the upgrade packet.

        Runs in the websocket's own handler task. On success the websocket's reader and writer join the
        session's nursery and this returns True once the session has ended (so the caller may close the
        websocket); on a failed probe it returns False and the session goes on polling.
        """
        if self.nursery is None or self.state is not SessionState.OPEN:
            return False
        self.state = SessionState.UPGRADING
        upgraded = False
        try:
            with trio.move_on_after(self._settings.upgrade_timeout / 1000):
                while True:
                    frame = await websocket.receive()
                    if frame is None:
                        return False
                    packet = eio.decode_frame(frame, self.revision)
                    if packet.type is eio.PacketType.PING and packet.data == "probe":
                        await websocket.send(eio.encode_frame(eio.Packet(eio.PacketType.PONG, "probe"), self.revision))
                        # Release the client's pending long-poll so it can pause polling.
                        if self._poll_scope is not None:
                            self._poll_scope.cancel()
                    elif packet.type is eio.PacketType.UPGRADE:
                        upgraded = True
                        break
                    elif packet.type is eio.PacketType.NOOP:
                        continue
                    else:
                        raise ProtocolError(f"unexpected {packet.type.name.lower()} packet during upgrade")
        except ProtocolError as error:
            log.warning("upgrade of session %s failed: %s", self.sid, error.reason)
            return False
        finally:
            if not upgraded and self.state is SessionState.UPGRADING:
                self.state = SessionState.OPEN
        if not upgraded or self._closed.is_set():
            return False
        self.transport = "websocket"
        self.state = SessionState.OPEN
        if self._poll_scope is not None:
            self._poll_scope.cancel()
        self._use_websocket(websocket)
        await self._ended.wait()
        return True

    # ----------------------------------------------------------------------------------------- polling
    async def poll(self) -> list[eio.Packet]:
        """Answer one long-poll GET: wait for queued packets and take them all.

        Returns a lone NOOP when an upgrade releases the poll, and a CLOSE once the session is over.
        """
        if self._poll_scope is not None:
            raise OverlappingPoll
        if self.transport != "polling":
            return [_NOOP]
        packets: list[eio.Packet] = [_NOOP]
        with trio.CancelScope() as scope:
            self._poll_scope = scope
            if self.state is SessionState.UPGRADING:
                scope.deadline = trio.current_time() + 0.1
            try:
                first = await self._out_recv.receive()
            except trio.EndOfChannel:
                packets = [_CLOSE]
            else:
                packets = [p for item in self._drain_nowait(first) if isinstance(item, Envelope) for p in item.packets]
        self._poll_scope = None
        return packets

    def receive_payload(self, body: bytes, content_type: str | None) -> None:
        """Handle one polling POST body; a malformed payload closes the session."""
        try:
            packets = eio.decode_payload(body, self.revision, content_type=content_type)
        except ProtocolError as error:
            self.protocol_error(error.reason)
            return
        for packet in packets:
            self.receive_packet(packet)


class SessionRegistry:
    """The sessions one server holds, by sid: how a polling request or an upgrade finds its session."""

    def __init__(self) -> None:
        self._sessions: dict[str, EngineSession] = {}
        self._per_address: dict[str, int] = {}

    def add(self, session: EngineSession) -> None:
        self._sessions[session.sid] = session
        address = session.handshake.address
        self._per_address[address] = self._per_address.get(address, 0) + 1

    def discard(self, session: EngineSession) -> None:
        if self._sessions.get(session.sid) is session:
            del self._sessions[session.sid]
            address = session.handshake.address
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]

    def count_from(self, address: str) -> int:
        """How many sessions clients at ``address`` hold."""
        return self._per_address.get(address, 0)

    def get(self, sid: str) -> EngineSession | None:
        return self._sessions.get(sid)

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._sessions.values()))
