"""One Engine.IO session as a state machine: packets and the time in, packets to send and a verdict out.

Theory of operation
-------------------
An Engine.IO session (engine.io calls it a "socket") has a ``sid``, outlives any single HTTP request,
and carries messages for exactly one client. Everything the protocol says about its life is here, as
data, with no I/O and no clock: the caller passes ``now`` (seconds, any monotonic origin) into every
call that may depend on time, asks :meth:`EngineSession.next_deadline` when it next needs attention,
and calls :meth:`EngineSession.handle_timer` at that moment. The trio shell in
:mod:`trisails.realtime.connection` only moves bytes and sleeps.

Rules, in the order engine.io applies them:

1. **Heartbeat.** Revision 3: the client pings and the server answers ``3``; a session that has not
   pinged for ``ping_interval + ping_timeout`` is closed ("ping timeout"). Revision 4: the server pings
   ``ping_interval`` after the session opened, and then ``ping_interval`` after each pong; a pong that
   has not come ``ping_timeout`` after its ping closes the session. A ping in the wrong direction is a
   protocol error.
2. **Outbound queue.** What the server sends waits in one bounded queue of :class:`Envelope` objects
   until a transport takes it: the websocket writer drains it whole, a long-poll GET answers with all of
   it as one payload. :meth:`send` never waits; a full queue meets the slow-consumer policy: close the
   session ("slow consumer", websocket code 1008) or drop the message for this session alone.
3. **Long-polling.** At most one GET may be pending; a second one is a client error that closes the
   session. A pending GET is answered as soon as something is queued. After the client POSTs a close
   packet, a pending GET is released with a lone NOOP and the session closes. After a server-side
   close, whatever was queued goes out to the next GET and a CLOSE packet to the one after, within
   ``CLOSE_TIMEOUT`` seconds of the close (then the session is gone anyway). A CLOSE never shares a
   payload with other packets: socket.io-client handles packets a tick late, so it would overtake them.
4. **Upgrade.** A polling session may move to a websocket: the client sends ``2probe`` on it, the
   server answers ``3probe`` there and releases the pending GET with a NOOP, then the client sends
   ``5`` and the websocket becomes the transport. Queued packets then go out on the websocket. The
   whole exchange must finish within ``upgrade_timeout``. After an upgrade, polling requests for the
   session are refused (400 "Bad request"), and so is a second upgrade (the shell accepts that
   websocket and closes it at once, as engine.io does).
5. **Close.** The first reason wins; after :attr:`SessionState.CLOSED` nothing is sent or received.

What the session hands upward is the data of each MESSAGE packet, returned by :meth:`receive`: the
common path (a message arrives) costs one call and no event object.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Literal

from trisails._errors import EngineIOError

from . import engineio as eio
from .engineio import Envelope

__all__ = ["EngineSession", "SessionState", "Transport", "UpgradeState"]

SlowConsumerPolicy = Literal["disconnect", "drop"]

#: Seconds a server-closed polling session waits for a GET to collect its last packets.
CLOSE_TIMEOUT = 1.0

_PING = Envelope.of(eio.Packet(eio.PacketType.PING))
_PONG = Envelope.of(eio.Packet(eio.PacketType.PONG))
_NOOP = eio.Packet(eio.PacketType.NOOP)
_CLOSE = eio.Packet(eio.PacketType.CLOSE)
_MESSAGE = eio.PacketType.MESSAGE


class Transport(enum.Enum):
    """How the session's packets travel now."""

    POLLING = "polling"
    WEBSOCKET = "websocket"


class SessionState(enum.Enum):
    """Where the session is in its life.

    ``CLOSING`` is a server-side close that still has packets to hand to the next poll (or to the
    websocket writer); ``CLOSED`` is the end: the shell releases everything it holds for the session.
    """

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class UpgradeState(enum.Enum):
    """The transport upgrade of a polling session (rule 4)."""

    NONE = "none"  # polling, no websocket offered (or the last upgrade failed)
    PROBING = "probing"  # a websocket is attached; waiting for its ``2probe``
    PROBED = "probed"  # ``3probe`` sent; waiting for ``5``
    UPGRADED = "upgraded"  # the websocket is the transport, for good


class EngineSession:
    """The state of one Engine.IO session (see the module docstring for the rules).

    ``now`` is the caller's clock in seconds; every deadline this object reports is on that clock.
    Methods raise nothing for a client's mistakes: they close the session and say why in
    :attr:`close_reason` (a websocket close code in :attr:`close_code`).
    """

    __slots__ = (
        "sid",
        "revision",
        "transport",
        "b64",
        "state",
        "upgrade",
        "close_reason",
        "close_code",
        "dropped",
        "poll_pending",
        "_queue",
        "_max_queue",
        "_slow_consumer",
        "_ping_interval",
        "_ping_timeout",
        "_upgrade_timeout",
        "_ping_at",
        "_pong_due",
        "_silent_at",
        "_upgrade_due",
        "_close_due",
        "_release_poll",
        "_probe_answer",
    )

    def __init__(
        self,
        sid: str,
        *,
        revision: int,
        transport: Transport,
        now: float,
        ping_interval: float,
        ping_timeout: float,
        upgrade_timeout: float,
        max_queue: int,
        slow_consumer: SlowConsumerPolicy = "disconnect",
        b64: bool = False,
    ) -> None:
        if revision not in (3, 4):
            raise ValueError(f"unknown Engine.IO revision {revision}")
        self.sid = sid
        self.revision = revision
        self.transport = transport
        self.b64 = b64
        """Whether a revision-3 polling client asked for base64 binary (``b64=1``)."""
        self.state = SessionState.OPEN
        self.upgrade = UpgradeState.NONE if transport is Transport.POLLING else UpgradeState.UPGRADED
        self.close_reason: str | None = None
        self.close_code = 1000
        self.dropped = 0
        """Messages the ``"drop"`` slow-consumer policy threw away for this session."""
        self.poll_pending = False
        """Whether a long-poll GET is waiting for packets."""
        self._queue: list[Envelope] = []  # taken whole, never one by one: a list is enough (and small)
        self._max_queue = max_queue
        self._slow_consumer = slow_consumer
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._upgrade_timeout = upgrade_timeout
        # Revision 4: when the server pings next, and the deadline of the pong it waits for.
        self._ping_at: float | None = now + ping_interval if revision == 4 else None
        self._pong_due: float | None = None
        # Revision 3: when a client that does not ping again is given up.
        self._silent_at: float | None = now + ping_interval + ping_timeout if revision == 3 else None
        self._upgrade_due: float | None = None
        self._close_due: float | None = None
        self._release_poll = False  # the pending GET gets a lone NOOP (upgrade, or the client's close)
        self._probe_answer = False  # a ``3probe`` waits to be written on the probing websocket

    def __repr__(self) -> str:
        return f"<EngineSession {self.sid} EIO={self.revision} {self.transport.value} {self.state.value}>"

    # ----------------------------------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        """The earliest moment :meth:`handle_timer` has something to do, or None."""
        if self.state is SessionState.CLOSED:
            return None
        if self.state is SessionState.CLOSING:
            return self._close_due
        deadline = self._pong_due if self._pong_due is not None else self._ping_at
        if self._silent_at is not None:
            deadline = self._silent_at
        if self._upgrade_due is not None and (deadline is None or self._upgrade_due < deadline):
            deadline = self._upgrade_due
        return deadline

    def handle_timer(self, now: float) -> None:
        """Act on every deadline that has passed by ``now``: pings, ping timeouts, a stalled upgrade,
        a close that no poll came to collect."""
        if self.state is SessionState.CLOSED:
            return
        if self.state is SessionState.CLOSING:
            if self._close_due is not None and now >= self._close_due:
                self._end()
            return
        if self._upgrade_due is not None and now >= self._upgrade_due:
            self.abandon_upgrade()
        if self._silent_at is not None and now >= self._silent_at:
            self.close("ping timeout", flush=False)
            return
        if self._pong_due is not None:
            if now >= self._pong_due:
                self.close("ping timeout", flush=False)
            return
        if self._ping_at is not None and now >= self._ping_at:
            self._ping_at = None
            self._pong_due = now + self._ping_timeout
            self._send_heartbeat(_PING)

    # ----------------------------------------------------------------------------------------- receiving
    def receive(self, packet: eio.Packet, now: float) -> str | bytes | None:
        """Handle one packet from the client, on whichever transport carried it.

        Returns the data of a MESSAGE packet, for the layer above; None for anything else. A packet that
        breaks the protocol closes the session (``close_reason`` says why).
        """
        if self.state is not SessionState.OPEN:
            return None
        kind = packet.type
        if kind is _MESSAGE:
            return packet.data
        if kind is eio.PacketType.PING:
            if self.revision != 3:
                self.protocol_error("invalid heartbeat direction")
                return None
            self._silent_at = now + self._ping_interval + self._ping_timeout
            self._send_heartbeat(_PONG)  # a bare "3", as engine.io answers
        elif kind is eio.PacketType.PONG:
            if self.revision == 3:
                self.protocol_error("invalid heartbeat direction")
                return None
            if self._pong_due is not None:
                self._pong_due = None
                self._ping_at = now + self._ping_interval
        elif kind is eio.PacketType.CLOSE:
            if self.poll_pending:
                self._release_poll = True
            self.close("transport close", flush=False)
        elif kind is not eio.PacketType.NOOP:
            self.protocol_error(f"unexpected {kind.name.lower()} packet from the client")
        return None

    def receive_frame(self, frame: str | bytes, now: float) -> str | bytes | None:
        """Decode one websocket frame of the session's transport and handle it (see :meth:`receive`)."""
        if type(frame) is str and frame[:1] == "4":  # a text MESSAGE, by far the most common frame
            return frame[1:] if self.state is SessionState.OPEN else None
        try:
            packet = eio.decode_frame(frame, self.revision)
        except EngineIOError as error:
            self.protocol_error(error.reason)
            return None
        return self.receive(packet, now)

    def receive_payload(self, body: bytes, content_type: str | None, now: float) -> list[str | bytes]:
        """Handle one polling POST body; returns the messages in it, in order."""
        if self.transport is not Transport.POLLING:
            self.protocol_error("a polling request for an upgraded session")
            return []
        try:
            packets = eio.decode_payload(body, self.revision, content_type=content_type)
        except EngineIOError as error:
            self.protocol_error(error.reason)
            return []
        messages = []
        for packet in packets:
            message = self.receive(packet, now)
            if message is not None:
                messages.append(message)
        return messages

    def protocol_error(self, reason: str) -> None:
        """Close the session because its client broke the protocol (websocket code 1002)."""
        self.close(f"parse error: {reason}", flush=False, code=1002)

    # ----------------------------------------------------------------------------------------- sending
    def send(self, envelope: Envelope) -> bool:
        """Queue ``envelope`` for the client; False if it was not (closed, or refused as slow).

        Never waits. A full queue meets the slow-consumer policy: ``"drop"`` counts the message in
        :attr:`dropped`; ``"disconnect"`` closes the session ("slow consumer", code 1008).
        """
        if self.state is not SessionState.OPEN:
            return False
        if len(self._queue) >= self._max_queue:
            if self._slow_consumer == "drop":
                self.dropped += 1
            else:
                self.close("slow consumer", flush=False, code=1008)
            return False
        self._queue.append(envelope)
        return True

    def _send_heartbeat(self, envelope: Envelope) -> None:
        """Queue a ping or pong: it may take one slot past the bound, since dropping it (or closing for
        it) would turn a slow client into a dead one; past that the client is not reading anyway."""
        if len(self._queue) <= self._max_queue:
            self._queue.append(envelope)

    @property
    def queued(self) -> int:
        """How many envelopes wait for a transport: how far behind this client is."""
        return len(self._queue)

    def take(self) -> list[Envelope]:
        """Everything queued, in order, for the websocket writer; the queue is then empty.

        Once a closing session's queue is empty, the session is closed (the writer then sends the
        websocket close frame).
        """
        queue = self._queue
        if not queue:
            if self.state is SessionState.CLOSING:
                self._end()
            return []
        self._queue = []
        return queue

    # ----------------------------------------------------------------------------------------- polling
    def open_poll(self) -> eio.HandshakeError | None:
        """A long-poll GET arrived: None if it may wait for packets, else the error to answer with.

        A second concurrent GET closes the session (engine.io treats it as a client error); a GET for a
        session that is now on a websocket is a bad request.
        """
        if self.transport is not Transport.POLLING:
            return eio.HandshakeError.BAD_REQUEST
        if self.poll_pending:
            self.protocol_error("overlapping long-poll requests")
            return eio.HandshakeError.BAD_REQUEST
        if self.state is SessionState.CLOSED:
            return eio.HandshakeError.UNKNOWN_SID
        self.poll_pending = True
        return None

    @property
    def poll_ready(self) -> bool:
        """Whether the pending GET can be answered now."""
        return bool(self._queue) or self._release_poll or self.state is not SessionState.OPEN or self.upgrade is UpgradeState.PROBED

    def answer_poll(self) -> list[eio.Packet]:
        """The packets that answer the pending GET, once :attr:`poll_ready`; ends the poll.

        A released poll (an upgrade, the client's own close) gets a lone NOOP; a closing session's polls
        get what was queued, then a lone CLOSE, and the session is then over.
        """
        self.poll_pending = False
        if self._release_poll or (self.upgrade is UpgradeState.PROBED and not self._queue):
            self._release_poll = False
            return [_NOOP]
        if self._queue:
            # a closing session's CLOSE waits for the next poll (see rule 3)
            packets = [packet for envelope in self._queue for packet in envelope.packets]
            self._queue = []
            return packets
        if self.state is SessionState.CLOSING:
            self._end()
        return [_CLOSE] if self.state is SessionState.CLOSED else []

    def abandon_poll(self) -> None:
        """The pending GET went away without an answer (its client hung up)."""
        self.poll_pending = False

    # ----------------------------------------------------------------------------------------- upgrade
    def start_upgrade(self, now: float) -> bool:
        """A websocket arrived for this polling session: True if it may probe, False if it must be
        closed at once (already upgrading or upgraded, or the session is over)."""
        if self.state is not SessionState.OPEN or self.upgrade is not UpgradeState.NONE:
            return False
        self.upgrade = UpgradeState.PROBING
        self._upgrade_due = now + self._upgrade_timeout
        return True

    def receive_probe(self, frame: str | bytes) -> bool:
        """Handle one frame of the probing websocket; False if the upgrade failed (close that websocket).

        After ``2probe``, :meth:`take_probe_answer` gives the ``3probe`` to write on it; after ``5`` the
        websocket is the transport (:attr:`upgrade` is ``UPGRADED``).
        """
        if self.upgrade not in (UpgradeState.PROBING, UpgradeState.PROBED) or self.state is not SessionState.OPEN:
            return False
        try:
            packet = eio.decode_frame(frame, self.revision)
        except EngineIOError:
            self.abandon_upgrade()
            return False
        if packet.type is eio.PacketType.PING and packet.data == "probe" and self.upgrade is UpgradeState.PROBING:
            self.upgrade = UpgradeState.PROBED
            self._probe_answer = True
            if self.poll_pending:
                self._release_poll = True
            return True
        if packet.type is eio.PacketType.UPGRADE and self.upgrade is UpgradeState.PROBED:
            self.upgrade = UpgradeState.UPGRADED
            self.transport = Transport.WEBSOCKET
            self._upgrade_due = None
            if self.poll_pending:
                self._release_poll = True
            return True
        if packet.type is eio.PacketType.NOOP:
            return True
        self.abandon_upgrade()
        return False

    def take_probe_answer(self) -> str | bytes | None:
        """The ``3probe`` frame owed to the probing websocket, once."""
        if not self._probe_answer:
            return None
        self._probe_answer = False
        return eio.encode_frame(eio.Packet(eio.PacketType.PONG, "probe"), self.revision)

    def abandon_upgrade(self) -> None:
        """The probing websocket failed or went away: the session goes on polling."""
        if self.upgrade in (UpgradeState.PROBING, UpgradeState.PROBED):
            self.upgrade = UpgradeState.NONE
            self._upgrade_due = None
            self._probe_answer = False

    # ----------------------------------------------------------------------------------------- closing
    def close(self, reason: str, *, now: float = 0.0, flush: bool = True, final: Sequence[eio.Packet] = (), code: int = 1000) -> None:
        """End the session; the first reason wins.

        With ``flush`` (a deliberate server-side close), ``final`` packets are queued and the session is
        ``CLOSING`` until a transport has taken what is queued (a poll has ``CLOSE_TIMEOUT`` seconds
        from ``now`` to come for it). Without it the session is ``CLOSED`` at once.
        """
        if self.state is not SessionState.OPEN:
            return
        self.close_reason = reason
        self.close_code = code
        self._ping_at = self._pong_due = self._silent_at = self._upgrade_due = None
        # a closing session cannot finish an upgrade: drop the probe, so the next poll gets the CLOSE
        # rather than a NOOP and no 3probe is owed to a session that is over
        self.abandon_upgrade()
        self._probe_answer = False
        if flush:
            if final:
                self._queue.append(Envelope(final))
            self.state = SessionState.CLOSING
            self._close_due = now + CLOSE_TIMEOUT
        else:
            self._end()

    @property
    def closed(self) -> bool:
        """Whether the session is over (closed, or closing with only its last packets left to send)."""
        return self.state is not SessionState.OPEN

    def _end(self) -> None:
        self.state = SessionState.CLOSED
        self._close_due = None
        self._queue = []
