"""The trio shell of one Engine.IO session: it owns the session's I/O and its tasks, and nothing else.

Theory of operation
-------------------
The protocol lives in :class:`trisails.protocol.engine_session.EngineSession`, a state machine that
takes packets and the time and says what to send and when it next needs attention. A
:class:`Connection` wraps one of them and does what the state machine cannot: it reads and writes
sockets, wakes the task waiting on a long-poll, and owns the session's nursery.

Tasks, and who owns them:

* **The session's nursery** (:attr:`Connection.nursery`), opened by :meth:`Connection.run`, holds the
  Socket.IO layer's handler tasks and the on-demand writer below. Closing the session cancels it, so no
  task outlives its connection. A client that opened a websocket straight away runs the session in
  that websocket's own connection task; a long-polling session outlives its HTTP requests, so it runs in
  the endpoint's nursery.
* **The reader** of a websocket is the connection task itself (:meth:`Connection.serve_websocket`),
  not a task of its own: frames are decoded and handed upward without a task switch, so a plain handler
  runs and its ack is written at once. It reads the descriptor itself
  (:meth:`StreamWebSocket.receive_nowait`), under the session nursery's own cancel scope, and when the
  kernel has nothing it parks in the endpoint's :class:`~trisails.realtime.reading.SharedReader`, one
  task that waits for every idle websocket at once and serves what arrives in the connection's name
  (:meth:`Connection._serve_ready`), handing the connection back to its task for anything that needs
  awaiting.
* **The writer** exists only while something waits to be written. Writing has an explicit state
  (:class:`WriterState`): while ``IDLE``, a send on an uncompressed websocket goes straight to the
  kernel (one system call, no task switch); whatever the kernel does not take, and everything sent
  after it, waits for a writer task that flushes it all in one ``send_all`` per round and then ends.
* **Timers** are not tasks: every session's next deadline sits in one :class:`Deadlines` heap that a
  single task of the endpoint sleeps on (heartbeats, ping timeouts, upgrade and connect timeouts, and
  the end of a socket dispatcher's linger, which the receiver announces with
  :meth:`Connection.timers_changed`).
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from .._errors import ProtocolError
from ..protocol import engineio as eio
from ..protocol.engine_session import EngineSession, SessionState, Transport, UpgradeState
from ..protocol.engineio import Envelope
from ..protocol.websocket import encode_frame
from .reading import SharedReader
from .websocket import Pending, StreamWebSocket

__all__ = ["Connection", "ConnectionRegistry", "Deadlines", "Handshake", "MessageReceiver", "WriterState", "new_id"]

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


class MessageReceiver(Protocol):
    """The layer above the session (Socket.IO): it gets each message and hears when the session ends."""

    def on_open(self) -> None: ...

    def on_message(self, data: str | bytes) -> None: ...

    def on_close(self, reason: str) -> None: ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class WriterState(enum.Enum):
    """Who may write to the websocket now."""

    IDLE = "idle"  # nothing waits: a send may write straight to the kernel
    WRITING = "writing"  # a writer task holds queued data; sends queue behind it


class Deadlines:
    """Every session's next deadline in one heap, slept on by one task (:meth:`run`).

    A connection calls :meth:`schedule` whenever its deadline may have moved earlier; a moved-later
    deadline is found when the old one comes due (the connection simply reschedules), so the common
    heartbeat costs one heap entry per session, not one per packet.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Connection]] = []
        self._order = itertools.count()
        self._scope: trio.CancelScope | None = None
        self._stale = 0  # entries superseded or cancelled, still in the heap

    def cancel(self, connection: Connection) -> None:
        """Forget ``connection`` (it has ended): its entry no longer keeps it alive for long."""
        if connection._timer_at is not None:
            connection._timer_at = None
            self._superseded()

    def _superseded(self) -> None:
        self._stale += 1
        if self._stale > len(self._heap) // 2:  # at most half the heap is dead weight
            self._heap = [entry for entry in self._heap if entry[2]._timer_at == entry[0]]
            heapq.heapify(self._heap)
            self._stale = 0

    def schedule(self, connection: Connection) -> None:
        """Make sure ``connection`` is woken by its next deadline."""
        deadline = connection.next_deadline()
        if deadline is None:
            return
        registered = connection._timer_at
        if registered is not None:
            if registered <= deadline:
                return
            self._superseded()
        connection._timer_at = deadline
        heapq.heappush(self._heap, (deadline, next(self._order), connection))
        if self._scope is not None and deadline < self._scope.deadline:
            self._scope.deadline = deadline

    async def run(self) -> None:
        """Wake each connection when its deadline comes, for as long as the server serves."""
        while True:
            with trio.CancelScope(deadline=self._heap[0][0] if self._heap else float("inf")) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:  # (handlers may rebuild the heap: no alias)
                deadline, _, connection = heapq.heappop(self._heap)
                if connection._timer_at != deadline:
                    self._stale = max(0, self._stale - 1)
                    continue  # superseded by an earlier registration, or the connection ended
                connection._timer_at = None
                connection.handle_timer(now)
                self.schedule(connection)


class Connection:
    """The trio shell of one Engine.IO session (see the module docstring)."""

    __slots__ = (
        "session",
        "handshake",
        "receiver",
        "nursery",
        "_deadlines",
        "_on_end",
        "_websocket",
        "_direct",
        "_writer",
        "_leftover",
        "_poll_ready",
        "_ended",
        "_over",
        "_reader_scope",
        "_probe_scope",
        "_timer_at",
    )

    def __init__(self, session: EngineSession, handshake: Handshake, deadlines: Deadlines, on_end: Callable[[Connection], None]) -> None:
        self.session = session
        self.handshake = handshake
        self.receiver: MessageReceiver | None = None
        self.nursery: trio.Nursery | None = None
        self._deadlines = deadlines
        self._on_end = on_end
        self._websocket: StreamWebSocket | None = None
        self._direct = False  # frames may be written as they are (no permessage-deflate)
        self._writer = WriterState.IDLE
        self._leftover = b""  # what the kernel did not take of a direct write
        self._poll_ready: trio.Event | None = None  # set to wake the pending long-poll GET
        self._ended: trio.Event | None = None  # made by run(), where a polling session waits for its end
        self._over = False
        self._reader_scope: trio.CancelScope | None = None
        self._probe_scope: trio.CancelScope | None = None  # the probing websocket's read, during an upgrade
        self._timer_at: float | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.session!r}>"

    # -------------------------------------------------------------------------------------- the session
    @property
    def sid(self) -> str:
        return self.session.sid

    @property
    def revision(self) -> int:
        return self.session.revision

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``."""
        return self.session.transport.value

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def dropped(self) -> int:
        return self.session.dropped

    @property
    def writable(self) -> bool:
        """Whether a message sent now goes out at once, not behind others: the session is open, nothing
        waits for its writer, and on long-polling a GET is waiting to carry it (as Socket.IO judges a
        transport writable for a volatile emit)."""
        session = self.session
        if session.state is not SessionState.OPEN or session.queued or self._leftover:
            return False
        if session.transport is Transport.WEBSOCKET:
            return self._websocket is not None and self._writer is WriterState.IDLE
        return self._poll_ready is not None

    def send_volatile(self, envelope: Envelope) -> bool:
        """Send ``envelope`` if the client can take it now (:attr:`writable`); otherwise drop it
        (counted nowhere: losing it is what the sender asked for). True if it was sent."""
        return self.writable and self.send(envelope)

    @property
    def buffered(self) -> int:
        """Messages waiting for this client's transport."""
        return self.session.queued + (1 if self._leftover else 0)

    def next_deadline(self) -> float | None:
        deadline = self.session.next_deadline()
        if self.receiver is not None and self.session.state is SessionState.OPEN:
            other = self.receiver.next_deadline()
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        return deadline

    def timers_changed(self) -> None:
        """The receiver has a new deadline (see :meth:`MessageReceiver.next_deadline`): make sure the
        timer wakes this session for it."""
        self._deadlines.schedule(self)

    def handle_timer(self, now: float) -> None:
        self.session.handle_timer(now)
        if self.receiver is not None and self.session.state is SessionState.OPEN:
            self.receiver.handle_timer(now)
        self._react()

    # -------------------------------------------------------------------------------------- lifetime
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Live until the session is over, owning its nursery (a long-polling session runs here)."""
        ended = self._ended = trio.Event()
        if self._over:
            ended.set()
        async with _Lifetime(self):
            task_status.started()
            await ended.wait()

    def close(self, reason: str, *, flush: bool = True, final: tuple[eio.Packet, ...] = (), code: int = 1000) -> None:
        """End the session: queue ``final``, flush what is queued (unless ``flush`` is False), close.

        ``code`` is the websocket close code (1001 "going away" when the server shuts down). Safe to call
        from any task, any number of times; the first reason wins.
        """
        self.session.close(reason, now=trio.current_time(), flush=flush, final=final, code=code)
        self._react()

    def protocol_error(self, reason: str) -> None:
        """Close this one session because its client broke the protocol, and say why in the log."""
        log.warning("closing session %s (%s): %s", self.sid, self.handshake.address, reason)
        self.session.protocol_error(reason)
        self._react()

    def log_if_broken(self) -> None:
        """Say in the log why the session was just closed, when its client broke the protocol (1002)."""
        session = self.session
        if session.close_code == 1002 and session.state is SessionState.CLOSED:
            log.warning("closing session %s (%s): %s", self.sid, self.handshake.address, session.close_reason)

    def _react(self) -> None:
        """After anything that may have changed the session: do or wake whatever is due now."""
        session = self.session
        if session.state is SessionState.CLOSED:
            self._finish()
            return
        if session.transport is Transport.WEBSOCKET:
            if self._websocket is not None and self._writer is WriterState.IDLE:
                if session.queued and self._direct:
                    self._write_direct()
                if self._writer is WriterState.IDLE:
                    if session.queued:
                        self._start_writer()
                    elif session.state is SessionState.CLOSING and not self._leftover:
                        session.take()  # everything is out: the closing session is over
                        self._finish()
                        return
        else:
            if self._poll_ready is not None and session.poll_ready:
                self._poll_ready.set()
            if self._probe_scope is not None and session.upgrade is UpgradeState.NONE:
                self._probe_scope.cancel()  # the upgrade timed out: let go of the probing websocket
        self._deadlines.schedule(self)

    def _finish(self) -> None:
        """The session is over: wake the poll, stop the readers, and let :meth:`run` end."""
        if self._poll_ready is not None:
            self._poll_ready.set()
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        if self._probe_scope is not None:
            self._probe_scope.cancel()
        if not self._over:
            self._over = True
            if self.session.close_reason == "slow consumer":
                log.warning("closing session %s: slow consumer (its outbound_buffer is full)", self.sid)
            if self._ended is not None:
                self._ended.set()

    # -------------------------------------------------------------------------------------- sending
    def send(self, envelope: Envelope) -> bool:
        """Send ``envelope`` without waiting; False if it could not be (closed, or dropped as slow).

        On an uncompressed websocket with nothing waiting ahead, the frames go straight to the kernel:
        no task switch, one system call. What the kernel does not take waits for the writer task, and
        everything after it waits its turn, so order is kept.
        """
        session = self.session
        if self._direct and self._writer is WriterState.IDLE and not session.queued and session.state is SessionState.OPEN:
            self._write_now(envelope.wire(session.revision))
            return True
        sent = session.send(envelope)
        self._react()
        return sent

    def send_message(self, text: str) -> bool:
        """Send one text MESSAGE packet, as :meth:`send` sends ``Envelope.message(text)``: an ack, the most
        common packet, goes to the kernel as its one frame without an envelope made for it."""
        session = self.session
        if self._direct and self._writer is WriterState.IDLE and not session.queued and session.state is SessionState.OPEN:
            self._write_now(encode_frame("4" + text))
            return True
        return self.send(Envelope.message(text))

    def _write_direct(self) -> None:
        """Write everything queued straight to the kernel (the writer is idle)."""
        revision = self.session.revision
        self._write_now(b"".join([envelope.wire(revision) for envelope in self.session.take()]))

    def _write_now(self, data: bytes) -> None:
        websocket = self._websocket
        assert websocket is not None
        written = websocket.write_now(data)
        if written < len(data):
            self._leftover = data[written:]
            self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is WriterState.WRITING or self.nursery is None:
            return
        self._writer = WriterState.WRITING
        self.nursery.start_soon(self._write_queued)

    async def _write_queued(self) -> None:
        """The writer: flush what waits, in order, in one write per round, then end (back to IDLE).

        A closing session's writer sends the websocket close frame once everything queued is out.
        """
        session = self.session
        websocket = self._websocket
        assert websocket is not None
        revision = session.revision
        try:
            while True:
                envelopes = session.take()
                leftover, self._leftover = self._leftover, b""
                if not envelopes and not leftover:
                    break
                if self._direct:
                    data = leftover + b"".join([envelope.wire(revision) for envelope in envelopes])
                    await websocket.write(data)
                else:
                    await websocket.send_many([frame for envelope in envelopes for frame in envelope.frames(revision)])
        finally:
            self._writer = WriterState.IDLE
        if session.state is SessionState.CLOSED:
            self._finish()

    # -------------------------------------------------------------------------------------- websocket
    async def serve_websocket(self, websocket: StreamWebSocket, reader: SharedReader | None = None) -> None:
        """Be this session's transport from the start: read frames until the session ends, then close.

        With a running ``reader``, the waits for input are the shared reader's (see
        :mod:`trisails.realtime.reading`)."""
        self._attach(websocket)
        async with _Lifetime(self):
            await self._read(websocket, reader, own_scope=False)
        await websocket.close(self.session.close_code)

    async def upgrade(self, websocket: StreamWebSocket, reader: SharedReader | None = None) -> None:
        """Probe and take over a polling session on ``websocket`` (run in the websocket's own task)."""
        session = self.session
        if not session.start_upgrade(trio.current_time()):
            await websocket.close(1000)  # as engine.io: the upgrade is accepted, then closed at once
            return
        self._deadlines.schedule(self)
        try:
            while session.upgrade in (UpgradeState.PROBING, UpgradeState.PROBED) and not session.closed:
                frame: str | bytes | None = None
                with trio.CancelScope() as scope:
                    self._probe_scope = scope
                    frame = await websocket.receive()
                self._probe_scope = None
                if frame is None or not session.receive_probe(frame):
                    break
                answer = session.take_probe_answer()
                if answer is not None:
                    await websocket.send(answer)
                self._react()
        finally:
            self._probe_scope = None
        if session.upgrade is not UpgradeState.UPGRADED:
            session.abandon_upgrade()
            self._react()
            log.info("upgrade of session %s did not complete", self.sid)
            await websocket.close(1000)
            return
        self._attach(websocket)
        self._react()  # the pending poll is released with a NOOP; queued packets go to the websocket
        await self._read(websocket, reader)
        await websocket.close(self.session.close_code)

    def _attach(self, websocket: StreamWebSocket) -> None:
        self._websocket = websocket
        self._direct = websocket.direct

    async def _read(self, websocket: StreamWebSocket, reader: SharedReader | None, *, own_scope: bool = True) -> None:
        """Read frames and hand each message upward, until the peer or the session ends; then close.

        The end of the session cancels the read. Read in the session's nursery (``own_scope=False``),
        that is the nursery's own cancel scope, which ends the session's tasks at the same moment: an
        idle connection then holds one cancel scope rather than two. An upgraded websocket is read in
        its own task, outside the nursery, and gets a scope of its own. While ``reader`` runs, this
        task parks in it whenever the kernel has nothing to read, and the reader serves what arrives
        (:meth:`_serve_ready`) until something needs this task again.
        """
        session = self.session
        nursery = self.nursery
        scope = trio.CancelScope() if own_scope or nursery is None else None
        try:
            with scope if scope is not None else contextlib.nullcontext():
                self._reader_scope = scope if scope is not None else nursery.cancel_scope  # type: ignore[union-attr]
                if session.state is SessionState.CLOSED:
                    self._reader_scope.cancel()
                while True:
                    received = websocket.receive_nowait()
                    frame: str | bytes | None
                    if not isinstance(received, Pending):
                        frame = received
                    elif received is Pending.WAIT:
                        if reader is not None and reader.running:
                            await websocket.wait_shared(reader, self._serve_ready)
                            if session.state is SessionState.CLOSED:
                                break
                            continue
                        try:
                            await websocket.readable()
                        except trio.ClosedResourceError:  # closed under us (the server is stopping)
                            frame = None
                        else:
                            continue
                    else:
                        frame = await websocket.receive()
                    if not self._take(frame):
                        break
        finally:
            self._reader_scope = None
        session.close("transport close", flush=False)
        self._finish()

    def _serve_ready(self) -> bool:
        """The shared reader's call while this connection's task is parked in it: the descriptor is
        readable. Take every message the kernel has; True to stay parked, False when the task is
        needed (awaited work, or the end of the read)."""
        websocket = self._websocket
        assert websocket is not None
        websocket.mark_readable()
        while True:
            received = websocket.receive_nowait()
            if received is Pending.WAIT:
                return True
            if received is Pending.AWAIT or not self._take(received) or self._over:
                return False

    def _take(self, frame: str | bytes | None) -> bool:
        """Hand one websocket message to the session and the layer above; False once the read is over
        (``frame`` None: the peer closed or broke the connection)."""
        session = self.session
        if frame is None:
            session.close("transport close", flush=False)
            return False
        message = session.receive_frame(frame, trio.current_time())
        receiver = self.receiver
        if message is not None and receiver is not None:
            try:
                receiver.on_message(message)
            except ProtocolError as error:
                session.protocol_error(error.reason)
        if session.state is not SessionState.OPEN:
            self.log_if_broken()
            self._react()
            if session.state is SessionState.CLOSED:
                return False
        elif session.queued and self._writer is WriterState.IDLE:
            self._react()
        return True

    # -------------------------------------------------------------------------------------- polling
    async def poll(self) -> list[eio.Packet] | eio.HandshakeError:
        """Answer one long-poll GET: wait until there is something to say, then take it all."""
        session = self.session
        refusal = session.open_poll()
        if refusal is not None:
            self._react()
            return refusal
        try:
            if not session.poll_ready:
                self._poll_ready = trio.Event()
                await self._poll_ready.wait()
            packets = session.answer_poll()
        finally:
            self._poll_ready = None
            if session.poll_pending:
                session.abandon_poll()
        self._react()
        return packets

    def receive_payload(self, body: bytes, content_type: str | None) -> None:
        """Handle one polling POST body: each message goes upward, in order."""
        session = self.session
        messages = session.receive_payload(body, content_type, trio.current_time())
        receiver = self.receiver
        for message in messages:
            if receiver is not None and session.state is SessionState.OPEN:
                try:
                    receiver.on_message(message)
                except ProtocolError as error:
                    session.protocol_error(error.reason)
        self.log_if_broken()
        self._react()


class _Lifetime:
    """The session's nursery and the bookkeeping around it (a plain async context manager)."""

    __slots__ = ("_connection", "_nursery_manager")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._nursery_manager: Any = None

    async def __aenter__(self) -> None:
        connection = self._connection
        self._nursery_manager = trio.open_nursery()
        connection.nursery = await self._nursery_manager.__aenter__()
        connection._deadlines.schedule(connection)
        if connection.receiver is not None:
            connection.receiver.on_open()
            connection._react()

    async def __aexit__(self, *exc_info: Any) -> bool:
        connection = self._connection
        nursery = connection.nursery
        assert nursery is not None
        nursery.cancel_scope.cancel()
        try:
            suppress = await self._nursery_manager.__aexit__(*exc_info)
        except Exception:
            log.exception("session %s failed", connection.sid)
            suppress = True
        finally:
            session = connection.session
            if session.state is not SessionState.CLOSED:
                session.close(session.close_reason or "server error", flush=False)
            connection._finish()
            connection._deadlines.cancel(connection)
            connection._on_end(connection)
            receiver, connection.receiver = connection.receiver, None
            if receiver is not None:
                receiver.on_close(session.close_reason or "transport close")
        return bool(suppress)


class ConnectionRegistry:
    """The sessions one server holds, by sid: how a polling request or an upgrade finds its session."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._per_address: dict[str, int] = {}
        self._empty: trio.Event | None = None

    def add(self, connection: Connection) -> None:
        self._connections[connection.sid] = connection
        address = connection.handshake.address
        self._per_address[address] = self._per_address.get(address, 0) + 1

    def discard(self, connection: Connection) -> None:
        if self._connections.get(connection.sid) is connection:
            del self._connections[connection.sid]
            address = connection.handshake.address
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
            if not self._connections and self._empty is not None:
                self._empty.set()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no session is left, at most ``timeout`` seconds; False if some still are."""
        with trio.move_on_after(timeout):
            while self._connections:
                self._empty = trio.Event()
                await self._empty.wait()
            return True
        return False

    def count_from(self, address: str) -> int:
        """How many sessions clients at ``address`` hold."""
        return self._per_address.get(address, 0)

    def get(self, sid: str) -> Connection | None:
        return self._connections.get(sid)

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._connections.values()))
