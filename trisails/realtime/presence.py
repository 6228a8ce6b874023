"""Presence: who is in a room, by a key of the app's choosing (a user id), across every process.

A socket is *tracked* in a room under a key with some metadata (``{"name": "Ada", "tab": "board"}``).
Presence keeps, for each room, one entry per key with the metadata of every socket tracked under it: a
user with two tabs open is one entry with two metas. Each meta carries a ``ref``, a random id of that
one tracking, so clients can tell the metas of one key apart.

What the room's members hear (in the socket's namespace), in the spirit of Phoenix Presence:

* ``presence_state`` ``{"room", "state": {key: {"metas": [meta, ...]}}}``: the whole room, sent to a
  socket when it is tracked or subscribes, and to the room after the Redis link comes back;
* ``presence_diff`` ``{"room", "joins": {key: {"metas": [...]}}, "leaves": {key: {"metas": [...]}}}``:
  the metas that arrived and those that went, sent to the room's members on every change. A key in
  ``leaves`` is gone only once it has no metas left.

A socket is untracked when it leaves the room (``socket.leave``, ``sails.sockets.leave``, a room
operation from another process) and when it disconnects: the room adapter tells presence through its
``leave_listeners``, so no path is missed.

Across processes (``sockets.redis_url``), each process keeps its own entries in memory, writes them to
Redis (a hash per room, one field per tracking, named after the process), and refreshes a liveness key
with a lifetime of ``sockets.presence_ttl`` every third of it. :meth:`Presence.list` reads the room's
hash and keeps the entries of live processes only, so the entries of a process that died without saying
so (SIGKILL, a lost machine) drop out of every list within ``presence_ttl``; the first live process to
notice the dead one (within a third of ``presence_ttl`` more) removes its entries from Redis and sends
the leaves to the rooms, once. A process whose link to Redis broke writes its entries again, and sends
the room's state, once the link is back.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import trio

from .._errors import DisconnectedError, PresenceLimitReached

if TYPE_CHECKING:
    from .cluster import RedisBus
    from .rooms import Adapter
    from .server import RealtimeServer, Socket

__all__ = ["PRESENCE_DIFF", "PRESENCE_STATE", "Presence"]

log = logging.getLogger("trisails.presence")

#: The event a socket gets with the whole state of a room.
PRESENCE_STATE = "presence_state"
#: The event the members of a room get when metas join or leave it.
PRESENCE_DIFF = "presence_diff"
#: Seconds a Redis read or a batch of writes may take before it counts as failed.
TIMEOUT = 1.0
#: Writes waiting for Redis; past this, presence stops queueing and rewrites everything when it can.
QUEUE_SIZE = 10_000
#: How many times ``presence_ttl`` a room hash or a process's room list outlives its last refresh (for
#: the case where every process is gone and nobody is left to reap).
GARBAGE_TTLS = 20

State = dict[str, dict[str, list[dict[str, Any]]]]
Metas = list[tuple[str, dict[str, Any]]]  # (key, meta) pairs


@dataclass
class _Tracked:
    """One socket tracked in one room."""

    namespace: str
    room: str
    sid: str
    key: str
    meta: dict[str, Any]  # the application's metadata with its "ref"

    @property
    def ref(self) -> str:
        ref: str = self.meta["ref"]
        return ref


def _entries(tracked: list[_Tracked]) -> State:
    """Trackings as the wire shape: ``{key: {"metas": [...]}}``."""
    state: State = {}
    for entry in tracked:
        state.setdefault(entry.key, {"metas": []})["metas"].append(entry.meta)
    return state


class Presence:
    """Presence of one app (``app.presence``): track sockets in rooms under keys, list rooms.

    Every method takes the socket itself, so presence works in any namespace: the events go to the
    room in the socket's namespace, and :meth:`list` takes the namespace name (``"/"`` by default).
    """

    def __init__(self, io: RealtimeServer) -> None:
        self._io = io
        self._settings = io.settings
        self._rooms: dict[tuple[str, str], dict[str, _Tracked]] = {}
        """(namespace, room) → socket id → its tracking, for this process's sockets."""
        self._sockets: dict[tuple[str, str], dict[str, _Tracked]] = {}
        """(namespace, socket id) → room → its tracking."""
        self._watched: list[Adapter] = []
        self._bus: RedisBus | None = None
        self._writes_in, self._writes_out = trio.open_memory_channel[tuple[str, _Tracked]](QUEUE_SIZE)
        self._dirty = False
        self._registered = False
        self.reaped = 0
        """Processes this one found dead and whose entries it removed (for tests and curious people)."""

    # ----------------------------------------------------------------------------------------- tracking
    async def track(self, socket: Socket, room: str, key: str | int, meta: dict[str, Any] | None = None) -> str:
        """Track ``socket`` in ``room`` under ``key`` with ``meta``; return the tracking's ``ref``.

        The socket joins the room (so it hears the room's diffs), the room's other members get a
        ``presence_diff`` with the join, and the socket gets a ``presence_state`` of the whole room,
        every process included. Tracking a socket again in the same room replaces its key and
        metadata (a leave and a join in one diff).

        Raises:
            PresenceLimitReached: ``meta`` is larger than ``sockets.max_presence_meta_size`` bytes of
                JSON, or the socket is tracked in ``sockets.max_presences_per_socket`` rooms already.
            RoomLimitReached: the socket cannot join one more room.
            DisconnectedError: the socket is not connected.
            TypeError, ValueError: ``room``, ``key`` or ``meta`` is not of the accepted shape.
        """
        entry = self._check(socket, room, key, meta)
        namespace = socket.namespace.name
        mine = self._sockets.get((namespace, socket.id), {})
        previous = mine.get(room)
        limit = self._settings.max_presences_per_socket
        if previous is None and len(mine) >= limit:
            raise PresenceLimitReached(
                f"socket {socket.id} is tracked in {len(mine)} rooms already, the most sockets.max_presences_per_socket "
                f"({limit}) allows: untrack it somewhere first"
            )
        self._watch(socket.namespace.adapter, namespace)
        socket.join(room)
        if previous is not None:
            self._forget(previous)
        self._rooms.setdefault((namespace, room), {})[socket.id] = entry
        self._sockets.setdefault((namespace, socket.id), {})[room] = entry
        self._queue_write("set", entry)
        leaves = _entries([previous]) if previous is not None else {}
        socket.namespace.to(room).except_(socket.id).emit(
            PRESENCE_DIFF, {"room": room, "joins": _entries([entry]), "leaves": leaves}
        )
        await self._send_state(socket, room)
        return entry.ref

    def untrack(self, socket: Socket, room: str) -> bool:
        """Stop tracking ``socket`` in ``room`` (it stays in the room, hearing its diffs); the room's
        members get the leave. Returns whether it was tracked there."""
        entry = self._sockets.get((socket.namespace.name, socket.id), {}).get(room)
        if entry is None:
            return False
        self._untrack(entry)
        return True

    async def subscribe(self, socket: Socket, room: str) -> None:
        """Let ``socket`` watch ``room`` without being tracked in it: it joins the room and gets its
        ``presence_state``, then every ``presence_diff``."""
        if not isinstance(room, str):
            raise TypeError(f"a presence room is a string, got {room!r}")
        if not socket.connected:
            raise DisconnectedError(f"socket {socket.id} is not connected")
        socket.join(room)
        await self._send_state(socket, room)

    def tracked(self, socket: Socket) -> dict[str, str]:
        """The rooms ``socket`` is tracked in, each with its key."""
        return {room: entry.key for room, entry in self._sockets.get((socket.namespace.name, socket.id), {}).items()}

    async def list(self, room: str, namespace: str = "/") -> State:
        """Who is in ``room``, in every process: ``{key: {"metas": [meta, ...]}}``, one entry per key.

        With Redis this is one read (at most about a second; while Redis is unreachable, this
        process's own entries only); entries of a process that stopped refreshing them are left out.
        """
        local = list(self._rooms.get((namespace, room), {}).values())
        state = _entries(local)
        for key, meta in await self._remote(namespace, room):
            state.setdefault(key, {"metas": []})["metas"].append(meta)
        return state

    # ----------------------------------------------------------------------------------------- internals
    def _check(self, socket: Socket, room: str, key: str | int, meta: dict[str, Any] | None) -> _Tracked:
        """Validate a tracking and build it (with a fresh ``ref``)."""
        if not isinstance(room, str):
            raise TypeError(f"a presence room is a string, got {room!r}")
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"a presence key is a string or an integer (a user id), got {key!r}")
        key = str(key)
        if not key:
            raise ValueError("a presence key cannot be empty")
        meta = {} if meta is None else meta
        if not isinstance(meta, dict):
            raise TypeError(f"presence metadata is a dict of JSON values, got {type(meta).__name__}")
        if "ref" in meta:
            raise ValueError("presence metadata cannot have a 'ref': presence sets it to tell trackings apart")
        try:
            size = len(orjson.dumps(meta))
        except TypeError as error:
            raise TypeError(f"presence metadata must be JSON: {error}") from None
        limit = self._settings.max_presence_meta_size
        if size > limit:
            raise PresenceLimitReached(
                f"presence metadata of {size} bytes of JSON is larger than sockets.max_presence_meta_size ({limit}): "
                "keep the metadata small (an id, a name, a status) and the rest where the app keeps its data"
            )
        if not socket.connected:
            raise DisconnectedError(f"socket {socket.id} is not connected")
        return _Tracked(socket.namespace.name, room, socket.id, key, {**meta, "ref": secrets.token_urlsafe(9)})

    def _watch(self, adapter: Adapter, namespace: str) -> None:
        """Hear the leaves of ``adapter`` (once per adapter: a lift with Redis replaces them)."""
        if any(known is adapter for known in self._watched):
            return
        self._watched.append(adapter)

        def left(sid: str, room: str) -> None:
            entry = self._sockets.get((namespace, sid), {}).get(room)
            if entry is not None:
                self._untrack(entry)

        adapter.leave_listeners.append(left)

    def _forget(self, entry: _Tracked) -> None:
        """Drop a tracking from this process's maps (and queue its removal from Redis)."""
        room = self._rooms.get((entry.namespace, entry.room), {})
        room.pop(entry.sid, None)
        if not room:
            self._rooms.pop((entry.namespace, entry.room), None)
        mine = self._sockets.get((entry.namespace, entry.sid), {})
        mine.pop(entry.room, None)
        if not mine:
            self._sockets.pop((entry.namespace, entry.sid), None)
        self._queue_write("delete", entry)

    def _untrack(self, entry: _Tracked) -> None:
        self._forget(entry)
        self._io.of(entry.namespace).to(entry.room).emit(
            PRESENCE_DIFF, {"room": entry.room, "joins": {}, "leaves": _entries([entry])}
        )

    async def _send_state(self, socket: Socket, room: str) -> None:
        state = await self.list(room, socket.namespace.name)
        if socket.connected:
            socket.emit(PRESENCE_STATE, {"room": room, "state": state})

    # ----------------------------------------------------------------------------------------- Redis
    def _key(self, what: str, *parts: str) -> str:
        assert self._bus is not None
        return ":".join((self._bus.key, "presence", what, *parts))

    def _room_key(self, namespace: str, room: str) -> str:
        # the namespace's length keeps ("/a:b", "c") and ("/a", "b:c") apart
        return self._key("room", str(len(namespace)), namespace, room)

    def _field(self, entry: _Tracked) -> str:
        assert self._bus is not None
        return f"{self._bus.uid}:{entry.ref}"

    def _queue_write(self, kind: str, entry: _Tracked) -> None:
        if self._bus is None:
            return
        if self._bus.client is None:
            self._dirty = True  # written again in full once the link is back
            return
        try:
            self._writes_in.send_nowait((kind, entry))
        except trio.WouldBlock:
            self._dirty = True

    async def _remote(self, namespace: str, room: str) -> Metas:
        """The entries other live processes hold in ``room``, from Redis."""
        bus = self._bus
        client = bus.client if bus is not None else None
        if bus is None or client is None:
            return []
        try:
            with trio.fail_after(TIMEOUT):
                fields = await client.hgetall(self._room_key(namespace, room))
                others: dict[str, Metas] = {}
                for field, value in fields.items():
                    uid = _text(field).split(":", 1)[0]
                    if uid == bus.uid:
                        continue  # ours are in memory, and more recent
                    data = orjson.loads(value)
                    others.setdefault(uid, []).append((str(data["key"]), data["meta"]))
                if not others:
                    return []
                uids = list(others)
                alive = await client.mget([self._key("alive", uid) for uid in uids])
        except Exception as error:  # Redis went away, or timed out: this process's own view only
            log.debug("presence: cannot read room %r from Redis: %s", room, error)
            return []
        return [item for uid, up in zip(uids, alive) if up is not None for item in others[uid]]

    async def run(self, bus: RedisBus) -> None:
        """Keep this process's entries in Redis, refresh its liveness, reap dead processes; until
        cancelled (then this process's entries are removed, if Redis answers within a second)."""
        self._bus = bus
        self._registered = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                period = self._settings.presence_ttl / 3
                while True:
                    if bus.client is None:
                        self._dirty = True
                    else:
                        try:
                            with trio.fail_after(TIMEOUT * 3):
                                await self._beat(bus.client)
                        except Exception as error:
                            self._dirty = True
                            log.warning("presence: refreshing this process's entries in Redis failed: %s", error)
                    await trio.sleep(period)
        finally:
            with trio.move_on_after(TIMEOUT) as cleanup:
                cleanup.shield = True
                await self._say_goodbye(bus)
            self._bus = None

    async def _writer(self) -> None:
        """Send queued writes to Redis in pipelines, in order."""
        async for first in self._writes_out:
            batch = [first]
            while len(batch) < 512:
                try:
                    batch.append(self._writes_out.receive_nowait())
                except trio.WouldBlock:
                    break
            client = self._bus.client if self._bus is not None else None
            if client is None:
                self._dirty = True
                continue
            try:
                with trio.fail_after(TIMEOUT):
                    async with client.pipeline(transaction=False) as pipe:
                        for kind, entry in batch:
                            self._write(pipe, kind, entry)
            except Exception as error:
                self._dirty = True
                log.debug("presence: writing to Redis failed (written again on the next refresh): %s", error)

    def _write(self, pipe: Any, kind: str, entry: _Tracked) -> None:
        room_key = self._room_key(entry.namespace, entry.room)
        if kind == "set":
            value = orjson.dumps({"key": entry.key, "meta": entry.meta})
            pipe.hset(room_key, {self._field(entry): value})
            pipe.pexpire(room_key, self._garbage_ms())
            pipe.sadd(self._key("rooms", self._bus_uid()), [orjson.dumps([entry.namespace, entry.room])])
        else:
            pipe.hdel(room_key, [self._field(entry)])

    def _bus_uid(self) -> str:
        assert self._bus is not None
        return self._bus.uid

    def _garbage_ms(self) -> int:
        return int(self._settings.presence_ttl * GARBAGE_TTLS * 1000)

    async def _beat(self, client: Any) -> None:
        """One refresh: say this process is alive, write everything again if it may be missing from
        Redis (a broken link, or another process took this one for dead), and reap the dead."""
        uid = self._bus_uid()
        ttl_ms = int(self._settings.presence_ttl * 1000)
        rooms_key = self._key("rooms", uid)
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(self._key("alive", uid), b"1", px=ttl_ms)
            added = pipe.sadd(self._key("procs"), [uid])
            pipe.pexpire(rooms_key, self._garbage_ms())
        was_reaped = bool(await added) and self._registered
        self._registered = True
        if self._dirty or was_reaped:
            self._dirty = False
            await self._rewrite(client)
            for namespace, room in list(self._rooms):
                if was_reaped:  # the others were told these left: they are back
                    tracked = list(self._rooms.get((namespace, room), {}).values())
                    self._io.of(namespace).to(room).emit(
                        PRESENCE_DIFF, {"room": room, "joins": _entries(tracked), "leaves": {}}
                    )
                else:  # diffs may have been lost with the link: every member gets the room again
                    state = await self.list(room, namespace)
                    self._io.of(namespace).to(room).emit(PRESENCE_STATE, {"room": room, "state": state})
        else:
            async with client.pipeline(transaction=False) as pipe:
                for namespace, room in self._rooms:
                    pipe.pexpire(self._room_key(namespace, room), self._garbage_ms())
        await self._reap(client)

    async def _rewrite(self, client: Any) -> None:
        """Make Redis hold exactly this process's entries: remove stale fields, write every tracking."""
        uid = self._bus_uid()
        listed = {tuple(orjson.loads(item)) for item in await client.smembers(self._key("rooms", uid))}
        rooms = listed | set(self._rooms)
        for namespace, room in rooms:
            room_key = self._room_key(namespace, room)
            fields = [_text(f) for f in await client.hgetall(room_key)]
            keep = {self._field(e) for e in self._rooms.get((namespace, room), {}).values()}
            stale = [f for f in fields if f.startswith(uid + ":") and f not in keep]
            if stale:
                await client.hdel(room_key, stale)
        async with client.pipeline(transaction=False) as pipe:
            for tracked in self._rooms.values():
                for entry in tracked.values():
                    self._write(pipe, "set", entry)

    async def _reap(self, client: Any) -> None:
        """Find processes whose liveness key expired; remove the entries of each (one process does
        it: the one whose SREM took it out of the list) and send the leaves to their rooms."""
        uid = self._bus_uid()
        procs = [_text(p) for p in await client.smembers(self._key("procs"))]
        others = [p for p in procs if p != uid]
        if not others:
            return
        alive = await client.mget([self._key("alive", p) for p in others])
        for dead, up in zip(others, alive):
            if up is not None or not await client.srem(self._key("procs"), [dead]):
                continue
            self.reaped += 1
            rooms_key = self._key("rooms", dead)
            rooms = [tuple(orjson.loads(item)) for item in await client.smembers(rooms_key)]
            for namespace, room in rooms:
                room_key = self._room_key(namespace, room)
                fields = await client.hgetall(room_key)
                gone = {_text(f): orjson.loads(v) for f, v in fields.items() if _text(f).startswith(dead + ":")}
                if not gone:
                    continue
                await client.hdel(room_key, list(gone))
                leaves: State = {}
                for data in gone.values():
                    leaves.setdefault(str(data["key"]), {"metas": []})["metas"].append(data["meta"])
                self._io.of(namespace).to(room).emit(PRESENCE_DIFF, {"room": room, "joins": {}, "leaves": leaves})
            await client.delete([rooms_key])
            log.info("presence: process %s stopped refreshing its entries; removed them from %d rooms", dead, len(rooms))

    async def _say_goodbye(self, bus: RedisBus) -> None:
        """Take this process out of Redis as it stops (the sockets' leaves were sent as they closed)."""
        client = bus.client
        if client is None or not self._registered:
            return
        uid = bus.uid
        try:
            rooms_key = self._key("rooms", uid)
            rooms = [tuple(orjson.loads(item)) for item in await client.smembers(rooms_key)]
            for namespace, room in rooms:
                room_key = self._room_key(namespace, room)
                mine = [_text(f) for f in await client.hgetall(room_key) if _text(f).startswith(uid + ":")]
                if mine:
                    await client.hdel(room_key, mine)
            await client.srem(self._key("procs"), [uid])
            await client.delete([rooms_key, self._key("alive", uid)])
        except Exception as error:
            log.debug("presence: could not remove this process's entries from Redis: %s", error)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
