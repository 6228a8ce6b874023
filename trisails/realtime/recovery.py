"""Connection state recovery: what a socket that lost its connection gets back when it returns.

Socket.IO 4.6+ does this, and so do we, the same way on the wire (``sockets.recovery``, off by default):

* every socket gets a private session id, ``pid``, in its CONNECT answer (a secret, unlike its id);
* every broadcast (to everyone or to rooms; not volatile, not with acks, not ``socket.emit``) carries an
  *offset* as its last argument, and is kept here for a while; the client remembers the last offset it saw;
* when a socket goes away for a reason that is not deliberate (the transport closed or broke, a ping
  timeout, the server shutting down), its id, rooms and ``data`` are kept here, under its pid, for
  ``recovery_max_disconnection`` milliseconds;
* a client that comes back sends ``{"pid", "offset"}`` in its CONNECT: if that session is still kept
  (and the offset is one we still have), the socket gets its id, rooms and ``data`` back, then every
  broadcast it missed, in order, and ``socket.recovered`` is True. Otherwise it is a new socket.

A session is restored once: its pid is forgotten when it is asked for, whatever the answer. An unknown,
expired or forged pid or offset gets a fresh socket, never another socket's state (a pid is 120 random
bits; an offset only says where replay starts, and only broadcasts the kept rooms would have received are
replayed).

Two stores: :class:`MemoryRecovery` keeps each namespace's sessions and broadcasts in this process,
bounded by time and by ``recovery_max_packets``; :class:`RedisRecovery` (with ``sockets.redis_url``) keeps
them in Redis, so a client recovers whichever process it comes back to: a session is a key that expires
(``SET ... PX``, read with ``GETDEL``), broadcasts go to a stream per namespace trimmed by length and age
(``XADD ... MAXLEN ~``, ``XTRIM MINID ~``) and are replayed with ``XRANGE``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import trio

from ..protocol.engineio import Envelope
from .connection import new_id

if TYPE_CHECKING:
    from .cluster import RedisBus

__all__ = ["RECOVERABLE_REASONS", "MemoryRecovery", "RecoveryStore", "RedisRecovery", "Restored", "SavedSession"]

log = logging.getLogger("trisails.realtime")

#: Disconnect reasons after which a socket's state is kept for it to recover (Socket.IO's list): the
#: connection was lost, not ended on purpose by the client or by the app.
RECOVERABLE_REASONS = frozenset(
    {"transport error", "transport close", "forced close", "ping timeout", "server shutting down", "forced server close"}
)

#: Seconds a Redis read may take when a client recovers; past it, the client gets a fresh session.
REDIS_TIMEOUT = 2.0
#: Milliseconds of clock difference between processes tolerated when an offset is looked up in Redis.
CLOCK_SKEW_MS = 5_000


@dataclass(slots=True)
class SavedSession:
    """What a socket leaves behind when its connection is lost: enough to be the same socket again."""

    sid: str
    pid: str
    rooms: list[str]
    data: dict[str, Any]


@dataclass(slots=True)
class Restored:
    """A session found again, and the broadcasts its socket missed, in order, ready to send."""

    session: SavedSession
    missed: list[Envelope] = field(default_factory=list)


def should_replay(session_rooms: Iterable[str], rooms: Iterable[str], exclude: Iterable[str]) -> bool:
    """Whether a socket in ``session_rooms`` would have received a broadcast to ``rooms`` (everyone when
    empty) except ``exclude``."""
    mine = set(session_rooms)
    targets = set(rooms)
    return (not targets or not mine.isdisjoint(targets)) and mine.isdisjoint(exclude)


class RecoveryStore(Protocol):
    """Where one namespace's recoverable sessions and recent broadcasts are kept."""

    def new_offset(self) -> str:
        """The offset of the next broadcast (unique, never reused)."""

    def record(self, offset: str, envelope: Envelope, rooms: Iterable[str], exclude: Iterable[str]) -> None:
        """Keep a broadcast (already carrying ``offset``) for sockets that may miss it."""

    def persist(self, session: SavedSession) -> None:
        """Keep a disconnected socket's state under its pid."""

    async def restore(self, pid: str, offset: str) -> Restored | None:
        """The session kept under ``pid`` and what it missed after ``offset``, or None; forgets ``pid``."""


class MemoryRecovery:
    """One namespace's sessions and broadcasts, in this process, bounded by time and by count.

    It reads no clock of its own: ``now`` (seconds, ``trio.current_time()`` by default) is passed in by
    :meth:`at`, so tests drive it with plain numbers or a MockClock.
    """

    def __init__(self, max_disconnection: float, max_packets: int, *, clock: Any = None) -> None:
        """``max_disconnection``: seconds a session and a broadcast are kept; ``max_packets``: broadcasts
        kept at most (the oldest go first)."""
        self.max_disconnection = max_disconnection
        self.max_packets = max_packets
        self._clock = clock if clock is not None else trio.current_time
        self._epoch = new_id()  # offsets of another store (another process, a restart) are unknown here
        self._sequence = itertools.count(1)
        self._last = 0
        # (sequence, recorded at, rooms, exclude, envelope), oldest first
        self._packets: deque[tuple[int, float, frozenset[str], frozenset[str], Envelope]] = deque()
        self._sessions: OrderedDict[str, tuple[float, SavedSession]] = OrderedDict()  # oldest disconnect first

    def new_offset(self) -> str:
        self._last = next(self._sequence)
        return f"{self._epoch}-{self._last}"

    def record(self, offset: str, envelope: Envelope, rooms: Iterable[str], exclude: Iterable[str]) -> None:
        now = self._clock()
        sequence = self._sequence_of(offset)
        if sequence is None:
            return
        self._packets.append((sequence, now, frozenset(rooms), frozenset(exclude), envelope))
        self._prune(now)

    def persist(self, session: SavedSession) -> None:
        now = self._clock()
        self._sessions[session.pid] = (now, session)
        self._sessions.move_to_end(session.pid)
        self._prune(now)

    async def restore(self, pid: str, offset: str) -> Restored | None:
        return self.restore_now(pid, offset)

    def restore_now(self, pid: str, offset: str) -> Restored | None:
        """:meth:`restore`, without awaiting."""
        now = self._clock()
        self._prune(now)
        kept = self._sessions.pop(pid, None)
        if kept is None:
            return None
        session = kept[1]
        sequence = self._sequence_of(offset)
        if sequence is None or sequence > self._last:
            return None  # not one of ours
        first = self._packets[0][0] if self._packets else self._last + 1
        if sequence < first - 1:
            return None  # broadcasts after it were dropped already: what was missed is unknown
        missed = [
            envelope
            for number, _, rooms, exclude, envelope in self._packets
            if number > sequence and should_replay(session.rooms, rooms, exclude)
        ]
        return Restored(session, missed)

    def statistics(self) -> dict[str, int]:
        """Sessions and broadcasts kept now."""
        return {"sessions": len(self._sessions), "packets": len(self._packets)}

    def _sequence_of(self, offset: str) -> int | None:
        epoch, _, number = offset.rpartition("-")
        if epoch != self._epoch or not number.isdigit() or len(number) > 18:
            return None
        return int(number)

    def _prune(self, now: float) -> None:
        threshold = now - self.max_disconnection
        packets = self._packets
        while packets and (packets[0][1] < threshold or len(packets) > self.max_packets):
            packets.popleft()
        sessions = self._sessions
        while sessions:
            pid, (at, _) = next(iter(sessions.items()))
            if at >= threshold:
                break
            del sessions[pid]


class RedisRecovery:
    """One namespace's sessions and broadcasts in Redis, shared by every process of the app.

    Writes go through the :class:`~trisails.realtime.cluster.RedisBus` queue, in the same pipelines as
    the broadcasts' own messages to the other processes, so they never wait and keep their order. Offsets
    are made here, ``<ms>-<sequence>-<process>``, unique across processes without asking Redis; the
    stream keeps them in the order Redis received them.
    """

    def __init__(self, bus: RedisBus, namespace: str, max_disconnection: float, max_packets: int) -> None:
        self.bus = bus
        self.namespace = namespace
        self.max_disconnection = max_disconnection
        self.max_packets = max_packets
        # the namespace's length keeps ("/a:b") and ("/a", "b") apart, as presence does
        prefix = f"{bus.key}:recovery:{len(namespace)}:{namespace}"
        self.stream = f"{prefix}:packets"
        self.session_prefix = f"{prefix}:session:"
        self._sequence = itertools.count(1)

    def new_offset(self) -> str:
        return f"{int(time.time() * 1000)}-{next(self._sequence)}-{self.bus.uid}"

    def record(self, offset: str, envelope: Envelope, rooms: Iterable[str], exclude: Iterable[str]) -> None:
        from .cluster import _parts

        body = orjson.dumps({"o": offset, "r": list(rooms), "x": list(exclude), "p": _parts(envelope)})
        oldest = int(time.time() * 1000 - self.max_disconnection * 1000)
        stream, maxlen = self.stream, self.max_packets

        def write(pipe: Any) -> None:
            from coredis.tokens import PureToken

            pipe.xadd(
                stream, {"d": body}, trim_strategy=PureToken.MAXLEN, threshold=maxlen, trim_operator=PureToken.APPROXIMATELY
            )
            pipe.xtrim(stream, trim_strategy=PureToken.MINID, threshold=oldest, trim_operator=PureToken.APPROXIMATELY)

        self.bus.store(write)

    def persist(self, session: SavedSession) -> None:
        try:
            value = orjson.dumps({"sid": session.sid, "rooms": session.rooms, "data": session.data})
        except TypeError as error:
            log.warning("socket %s cannot be recovered on another process: its data is not JSON (%s)", session.sid, error)
            return
        key, ttl = self.session_prefix + session.pid, max(1, int(self.max_disconnection * 1000))

        def write(pipe: Any) -> None:
            pipe.set(key, value, px=ttl)

        self.bus.store(write)

    async def restore(self, pid: str, offset: str) -> Restored | None:
        from .cluster import _envelope

        client = self.bus.client
        parts = offset.split("-", 2)
        if client is None or len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 15:
            return None
        try:
            with trio.fail_after(REDIS_TIMEOUT):
                raw = await client.getdel(self.session_prefix + pid)
                if raw is None:
                    return None
                saved = orjson.loads(raw)
                session = SavedSession(str(saved["sid"]), pid, [str(r) for r in saved["rooms"]], dict(saved["data"]))
                start = f"{max(0, int(parts[0]) - CLOCK_SKEW_MS)}-0"
                found = False
                missed: list[Envelope] = []
                while True:
                    entries = await client.xrange(self.stream, start, "+", count=500)
                    for entry in entries:
                        data = orjson.loads(entry.field_values[b"d"] if b"d" in entry.field_values else entry.field_values["d"])
                        if not found:
                            found = data["o"] == offset
                        elif should_replay(session.rooms, data["r"], data["x"]):
                            missed.append(_envelope(data["p"]))
                    if len(entries) < 500:
                        break
                    last = entries[-1].identifier
                    start = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        except Exception as error:  # Redis unreachable or slow, or an entry that is not ours: a fresh session
            log.warning("recovering a session from Redis failed: %s", error)
            return None
        return Restored(session, missed) if found else None
