"""A room's presence kept in sync on the client, from the server's ``presence_state`` and
``presence_diff`` events (see ``docs/howto/presence.md`` for their shapes).

The state is one entry per key (a user), each with the metas of every socket tracked under it, told
apart by their ``ref``. Applying is idempotent by ``ref``: a join of a meta already held, or a leave of
one already gone, changes nothing. Diffs that arrive before the first state (or after a disconnect,
before the state the server sends again) wait, and are applied on top of that state, so a diff that
raced the state it is part of is harmless.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Presence"]

log = logging.getLogger("trisails.client")

Metas = list[dict[str, Any]]
JoinHandler = Callable[[str, Metas, Metas], Any]
LeaveHandler = Callable[[str, Metas, Metas], Any]

Handlers = list[Callable[..., Any]]

PRESENCE_STATE, PRESENCE_DIFF = "presence_state", "presence_diff"
#: The events presence follows on a client.
EVENTS = frozenset({PRESENCE_STATE, PRESENCE_DIFF, "disconnect"})

#: Diffs kept while waiting for a state; past this the oldest are dropped (the state brings it all).
MAX_PENDING = 1000


class Presence:
    """The synced presence of one ``room``, fed by ``client``'s events: get it with
    ``client.presence(room)``, which the client keeps for every room the server sends presence for.

    ``on_join(key, current, joined)``: metas ``joined`` arrived under ``key``; ``current`` is what the
    key held before (empty when the key is new). ``on_leave(key, remaining, left)``: metas ``left`` went;
    ``remaining`` is what the key still holds (empty when the key is gone). ``on_sync()``: after every
    state or diff applied. Handlers may be sync or async; they run in the client's event order.
    """

    def __init__(self, client: Client, room: str) -> None:
        self.client = client
        self.room = room
        self.state: dict[str, Metas] = {}
        """Key → its metas, as last synced."""
        self.synced = False
        """Whether a ``presence_state`` has arrived since the last (re)connection."""
        self._pending: list[dict[str, Any]] = []
        self._on_join: list[JoinHandler] = []
        self._on_leave: list[LeaveHandler] = []
        self._on_sync: list[Callable[[], Any]] = []
        self._changed = trio.lowlevel.ParkingLot()

    def on_join(self, handler: JoinHandler) -> JoinHandler:
        """Call ``handler(key, current, joined)`` when metas join; a decorator too."""
        self._on_join.append(handler)
        return handler

    def on_leave(self, handler: LeaveHandler) -> LeaveHandler:
        """Call ``handler(key, remaining, left)`` when metas leave; a decorator too."""
        self._on_leave.append(handler)
        return handler

    def on_sync(self, handler: Callable[[], Any]) -> Callable[[], Any]:
        """Call ``handler()`` after each state or diff has been applied; a decorator too."""
        self._on_sync.append(handler)
        return handler

    def list(self) -> list[dict[str, Any]]:
        """Each key with its metas: ``[{"key": ..., "metas": [...]}, ...]``, in the order keys came."""
        return [{"key": key, "metas": list(metas)} for key, metas in self.state.items()]

    def close(self) -> None:
        """Stop following the room: the client forgets it (a later ``client.presence(room)`` starts over)."""
        self.client._presences.pop(self.room, None)

    async def wait_until(self, done: Callable[[dict[str, Metas]], bool]) -> dict[str, Metas]:
        """Wait until ``done(state)`` holds for the synced state; bound it with :func:`trio.fail_after`."""
        while not (self.synced and done(self.state)):
            await self._changed.park()
        return self.state

    # ----------------------------------------------------------------------------------------- events
    async def _state(self, payload: Any) -> None:
        if not isinstance(payload, dict) or payload.get("room") != self.room:
            return
        incoming = _metas_by_key(payload.get("state"))
        joins = {k: [m for m in ms if _ref(m) not in _refs(self.state.get(k, []))] for k, ms in incoming.items()}
        leaves = {k: [m for m in ms if _ref(m) not in _refs(incoming.get(k, []))] for k, ms in self.state.items()}
        before = {k: list(ms) for k, ms in self.state.items()}
        self.state = incoming
        self.synced = True
        for key, joined in joins.items():
            if joined:
                await self._call(self._on_join, key, before.get(key, []), joined)
        for key, left in leaves.items():
            if left:
                await self._call(self._on_leave, key, list(self.state.get(key, [])), left)
        pending, self._pending = self._pending, []
        for diff in pending:
            await self._apply(diff)
        await self._call(self._on_sync)
        self._changed.unpark_all()

    async def _diff(self, payload: Any) -> None:
        if not isinstance(payload, dict) or payload.get("room") != self.room:
            return
        if not self.synced:
            self._pending.append(payload)
            del self._pending[:-MAX_PENDING]
            return
        await self._apply(payload)
        await self._call(self._on_sync)
        self._changed.unpark_all()


    async def _apply(self, diff: dict[str, Any]) -> None:
        for key, metas in _metas_by_key(diff.get("joins")).items():
            current = self.state.get(key, [])
            joined = [m for m in metas if _ref(m) not in _refs(current)]
            if joined:
                self.state[key] = [*current, *joined]
                await self._call(self._on_join, key, list(current), joined)
        for key, metas in _metas_by_key(diff.get("leaves")).items():
            held = self.state.get(key)
            if held is None:
                continue
            going = _refs(metas)
            left = [m for m in held if _ref(m) in going]
            if not left:
                continue
            remaining = [m for m in held if _ref(m) not in going]
            if remaining:
                self.state[key] = remaining
            else:
                del self.state[key]
            await self._call(self._on_leave, key, list(remaining), left)

    async def _call(self, handlers: Handlers, *args: Any) -> None:
        for handler in list(handlers):
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("a presence handler for room %r failed", self.room)


def _ref(meta: dict[str, Any]) -> Any:
    return meta.get("ref")


def _refs(metas: Metas) -> set[Any]:
    return {meta.get("ref") for meta in metas}


def _metas_by_key(value: Any) -> dict[str, Metas]:
    """``{key: {"metas": [...]}}`` from the wire, with anything of another shape left out."""
    if not isinstance(value, dict):
        return {}
    found: dict[str, Metas] = {}
    for key, entry in value.items():
        metas = entry.get("metas") if isinstance(entry, dict) else None
        if isinstance(metas, list):
            found[str(key)] = [m for m in metas if isinstance(m, dict)]
    return found


async def feed(presences: dict[str, Presence], make: Callable[[str], Presence], event: str, args: list[Any]) -> None:
    """Hand a client's event to the presence of its room (made on the first event for a room), so a
    program may ask for a room's presence after the request that tracked it. After a disconnect, diffs
    wait for the state the server sends once the socket is tracked again."""
    if event == "disconnect":
        for presence in presences.values():
            presence.synced = False
        return
    payload = args[0] if len(args) == 1 else None
    if not isinstance(payload, dict) or not isinstance(payload.get("room"), str):
        return
    presence = presences.get(payload["room"]) or make(payload["room"])
    if event == PRESENCE_STATE:
        await presence._state(payload)
    else:
        await presence._diff(payload)
