"""Rooms: which sockets are in which named groups, and fan-out to them.

A room is a name; a socket is in any number of rooms and always in the one named after its own id.
Membership lives behind the :class:`Adapter` interface so that several processes can share rooms: the
Redis adapter (:mod:`trisails.realtime.cluster`) keeps this process's members here too, and tells the
other processes about broadcasts and room operations. One adapter serves one
namespace, as in Socket.IO.

Fan-out never waits: :meth:`Adapter.broadcast` hands one pre-encoded envelope to each member's
non-blocking ``deliver`` callback. A socket in several of the target rooms gets the message once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..protocol.engineio import Envelope

log = logging.getLogger("trisails.realtime")

__all__ = ["Adapter", "MemoryAdapter"]


class Adapter(Protocol):
    """Room membership and fan-out for one namespace."""

    leave_listeners: list[Callable[[str, str], None]]
    """Each is called with ``(sid, room)`` once a socket has left a room it was in, by leaving it or by
    going away (presence untracks it there)."""

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        """Put socket ``sid`` in each of ``rooms``."""

    def delete(self, sid: str, room: str) -> None:
        """Take socket ``sid`` out of ``room``."""

    def delete_all(self, sid: str) -> None:
        """Take socket ``sid`` out of every room (it is leaving)."""

    def socket_rooms(self, sid: str) -> set[str]:
        """The rooms socket ``sid`` is in."""

    def room_count(self, sid: str) -> int:
        """How many rooms socket ``sid`` is in (without copying them, as :meth:`socket_rooms` does)."""

    def sockets(self, rooms: Iterable[str] = ()) -> set[str]:
        """Ids of the sockets in any of ``rooms``; every socket when ``rooms`` is empty."""

    def rooms(self) -> dict[str, int]:
        """Each room and how many sockets it holds."""

    def broadcast(self, envelope: Envelope, rooms: Iterable[str] = (), exclude: Iterable[str] = ()) -> int:
        """Deliver ``envelope`` once to each socket in any of ``rooms`` (all sockets when empty) that is
        in none of the ``exclude`` rooms; return how many sockets it was handed to (in this process)."""

    def forward(self, operation: str, args: dict[str, Any]) -> None:
        """Have the other processes do a room operation this one has done on its own sockets."""

    async def count(self, rooms: Iterable[str]) -> int:
        """How many sockets are in any of ``rooms``, in every process."""

    # The Socket.IO server API across processes: the namespace says what to ask and what to do; the
    # adapter only carries it. In one process there is nobody to tell or ask.
    serve: Serve | None
    """Set by the namespace: ``serve(kind, message, reply)`` does what another process asked of this
    namespace's sockets here; ``reply`` answers the asker (None when it wants no answer)."""

    def publish(self, kind: str, body: dict[str, Any]) -> None:
        """Have every other process's namespace do ``kind`` (through its :attr:`serve`); never waits."""

    async def others(self) -> int:
        """How many other processes there are now."""

    def request(self, kind: str, body: dict[str, Any], on_answer: Callable[[dict[str, Any]], None]) -> str | None:
        """Ask every other process's namespace; every answer (any number per process) goes to
        ``on_answer`` until :meth:`end_request`. The question's id, or None if nobody can be asked."""

    def end_request(self, ask_id: str | None) -> None:
        """Forget a question asked with :meth:`request`: later answers are dropped."""

    async def ask(self, kind: str, body: dict[str, Any], timeout: float) -> tuple[list[dict[str, Any]], int]:
        """One answer from each other process (those that came within ``timeout`` seconds), and how
        many processes were asked."""


#: ``serve(kind, message, reply)``: what a namespace does when another process asks something of it.
Serve = Callable[[str, dict[str, Any], Callable[[dict[str, Any]], None] | None], None]


class MemoryAdapter:
    """The in-process adapter: two dictionaries kept in step (room → ids, in the order they joined;
    id → rooms)."""

    def __init__(self, deliver: Callable[[str, Envelope], object]) -> None:
        self._deliver = deliver
        self._rooms: dict[str, dict[str, None]] = {}  # an ordered set of member ids per room
        self._sids: dict[str, set[str]] = {}
        self.leave_listeners: list[Callable[[str, str], None]] = []
        self.serve: Serve | None = None

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        mine = self._sids.get(sid)
        if mine is None:
            mine = self._sids[sid] = set()
        every = self._rooms
        for room in rooms:
            mine.add(room)
            members = every.get(room)
            if members is None:
                every[room] = {sid: None}
            else:
                members[sid] = None

    def delete(self, sid: str, room: str) -> None:
        rooms = self._sids.get(sid, set())
        was_in = room in rooms
        rooms.discard(room)
        members = self._rooms.get(room)
        if members is not None:
            members.pop(sid, None)
            if not members:
                del self._rooms[room]
        if was_in:
            self._left(sid, room)

    def delete_all(self, sid: str) -> None:
        for room in self._sids.pop(sid, set()):
            members = self._rooms.get(room)
            if members is not None:
                members.pop(sid, None)
                if not members:
                    del self._rooms[room]
            self._left(sid, room)

    def _left(self, sid: str, room: str) -> None:
        for listener in self.leave_listeners:
            try:
                listener(sid, room)
            except Exception:  # a listener's bug must not leave the rooms half updated
                log.exception("a leave listener failed for socket %s in room %r", sid, room)

    def socket_rooms(self, sid: str) -> set[str]:
        return set(self._sids.get(sid, ()))

    def room_count(self, sid: str) -> int:
        return len(self._sids.get(sid, ()))

    def sockets(self, rooms: Iterable[str] = ()) -> set[str]:
        rooms = list(rooms)
        if not rooms:
            return set(self._sids)
        found: set[str] = set()
        for room in rooms:
            found.update(self._rooms.get(room, ()))
        return found

    def rooms(self) -> dict[str, int]:
        return {room: len(members) for room, members in self._rooms.items()}

    def forward(self, operation: str, args: dict[str, Any]) -> None:
        """One process: there is nobody else to tell."""

    async def count(self, rooms: Iterable[str]) -> int:
        return len(self.sockets(rooms))

    def publish(self, kind: str, body: dict[str, Any]) -> None:
        """One process: nobody else to tell."""

    async def others(self) -> int:
        return 0

    def request(self, kind: str, body: dict[str, Any], on_answer: Callable[[dict[str, Any]], None]) -> str | None:
        return None

    def end_request(self, ask_id: str | None) -> None:
        pass

    async def ask(self, kind: str, body: dict[str, Any], timeout: float) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    def broadcast(self, envelope: Envelope, rooms: Iterable[str] = (), exclude: Iterable[str] = ()) -> int:
        rooms = tuple(rooms)
        # Members in the order they joined, as socket.io delivers: the clients that joined together
        # (often one process's, in a test or a load balancer's batch) get their messages together, and
        # can start on them while the rest are still being written.
        if not rooms:
            targets: Iterable[str] = tuple(self._sids)
        elif len(rooms) == 1:
            targets = tuple(self._rooms.get(rooms[0], ()))
        else:
            targets = tuple(dict.fromkeys(sid for room in rooms for sid in self._rooms.get(room, ())))
        excluded = self.sockets(exclude) if exclude else ()
        count = 0
        for sid in targets:  # a snapshot: a delivery may close a slow socket, which leaves its rooms
            if sid not in excluded:
                self._deliver(sid, envelope)
                count += 1
        return count
