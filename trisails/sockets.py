"""``sails.sockets`` in Python names: rooms and messages for the main namespace.

Every method takes its sockets the way Sails does: a request (``req``), a :class:`~trisails.Socket`,
or a socket id, or a list of those. A plain HTTP request has no socket: it counts as "no socket", with a
warning where that makes the call do nothing (``join``, ``leave``), and is ignored as an omitted socket.

Two things are fixed on purpose (Sails' behaviour is documented in ``docs/differences-from-sails.md``):
a socket in several of the rooms a broadcast targets gets the message once, and every call form keeps
its omitted socket (``broadcast(rooms, data, req)`` and ``blast(data, req)`` omit ``req``'s socket).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._errors import RoomLimitReached, TrisailsError
from ._concurrency import on_loop
from .realtime.server import Namespace, RealtimeServer, Socket
from .web.request import Request

if TYPE_CHECKING:
    from ._app import App

__all__ = ["NoSuchSocket", "Sockets"]

log = logging.getLogger("trisails.sockets")

Target = Request | Socket | str
Targets = Target | Iterable[Target]
_MISSING: Any = object()


class NoSuchSocket(TrisailsError, LookupError):
    """No connected socket has that id (on this process)."""


class Sockets:
    """The ``sails.sockets`` API of one app: ``req.app.sockets`` or ``sails.sockets``."""

    DEFAULT_EVENT_NAME = "message"

    def __init__(self, app: App) -> None:
        self._app = app

    @property
    def io(self) -> RealtimeServer:
        """The raw realtime server (Sails' ``sails.io``)."""
        return self._app.io

    @property
    def _main(self) -> Namespace:
        return self._app.io.main

    # ----------------------------------------------------------------------------------------- ids
    def get_id(self, target: Request | Socket) -> str | None:
        """The socket id of a request or socket; ``None`` for a plain HTTP request."""
        socket = self._socket_of(target)
        return socket.id if socket is not None else None

    @on_loop
    def get(self, socket_id: str) -> Socket:
        """The connected socket with this id; :class:`NoSuchSocket` if there is none."""
        socket = self._main.sockets.get(socket_id)
        if socket is None:
            raise NoSuchSocket(f"no connected socket has the id {socket_id!r}")
        return socket

    # ----------------------------------------------------------------------------------------- membership
    @on_loop
    def join(self, targets: Targets, room: str) -> bool:
        """Put each target socket in ``room``; a socket id that is not connected here is looked up in
        the room adapter (the whole cluster, with the Redis adapter)."""
        self._for_each(targets, room, "join", Socket.join, self.add_room_members_to_rooms)
        return True

    @on_loop
    def leave(self, targets: Targets, room: str) -> bool:
        """Take each target socket out of ``room``."""
        self._for_each(targets, room, "leave", Socket.leave, self.remove_room_members_from_rooms)
        return True

    def _for_each(self, targets: Targets, room: str, verb: str, local: Any, by_room: Any) -> None:
        """Apply ``local(socket, room)`` to each target here, ``by_room(id, room)`` to ids that are not."""
        for target in self._each(targets):
            if isinstance(target, str) and target not in self._main.sockets:
                by_room(target, room)
                continue
            socket = self._socket_of(target)
            if socket is None:
                log.warning("sockets.%s(%r): not a socket request, nothing done", verb, target)
                continue
            local(socket, room)

    @on_loop
    def leave_all(self, source_room: str, *, include_socket_rooms: bool = False, include_source_room: bool = True) -> None:
        """Every socket in ``source_room`` leaves all its rooms (its own id room stays unless
        ``include_socket_rooms``; ``source_room`` itself goes unless ``include_source_room`` is False).
        With several processes, their sockets in ``source_room`` leave too."""
        args = {"source": source_room, "include_socket_rooms": include_socket_rooms, "include_source_room": include_source_room}
        self._apply("leave_all", args)
        self._main.adapter.forward("leave_all", args)

    @on_loop
    def add_room_members_to_rooms(self, source_room: str, dest_rooms: str | Iterable[str]) -> None:
        """Every socket in ``source_room`` (a socket id is a room) joins each of ``dest_rooms``, in
        every process."""
        args = {"source": source_room, "dest": self._rooms(dest_rooms)}
        self._apply("add_room_members_to_rooms", args)
        self._main.adapter.forward("add_room_members_to_rooms", args)

    @on_loop
    def remove_room_members_from_rooms(self, source_room: str, dest_rooms: str | Iterable[str]) -> None:
        """Every socket in ``source_room`` leaves each of ``dest_rooms``, in every process."""
        args = {"source": source_room, "dest": self._rooms(dest_rooms)}
        self._apply("remove_room_members_from_rooms", args)
        self._main.adapter.forward("remove_room_members_from_rooms", args)

    def _apply(self, operation: str, args: dict[str, Any]) -> None:
        """Do a room operation on this process's sockets (asked here, or by another process)."""
        adapter = self._main.adapter
        source = args["source"]
        if operation == "leave_all":
            for sid in adapter.sockets([source]):
                for room in adapter.socket_rooms(sid):
                    if room == sid and not args["include_socket_rooms"]:
                        continue
                    if room == source and not args["include_source_room"]:
                        continue
                    self._leave(sid, room)
        elif operation == "add_room_members_to_rooms":
            dest = frozenset(args["dest"])
            sockets = self._main.sockets
            for sid in adapter.sockets([source]):
                socket = sockets.get(sid)
                if socket is None:
                    adapter.add_all(sid, dest)
                    continue
                try:
                    socket._join(dest)
                except RoomLimitReached as error:  # one full socket must not stop the others (or the caller)
                    log.warning("add_room_members_to_rooms(%r): skipped a socket: %s", source, error)
        elif operation == "remove_room_members_from_rooms":
            for sid in adapter.sockets([source]):
                for room in args["dest"]:
                    self._leave(sid, room)
        else:
            log.warning("ignored an unknown room operation %r", operation)

    def _leave(self, sid: str, room: str) -> None:
        """Through the socket when it is here, so its request is marked as changing its rooms."""
        socket = self._main.sockets.get(sid)
        if socket is not None:
            socket.leave(room)
        else:
            self._main.adapter.delete(sid, room)

    async def count(self, room: str | Iterable[str]) -> int:
        """How many sockets are in ``room`` (or in any of several), counting every process when the
        app runs on several (a question through Redis; at most about a second)."""
        return await self._main.adapter.count(self._rooms(room))

    @on_loop
    def members(self, room: str) -> set[str]:
        """Ids of this process's sockets in ``room`` (Sails 1 removed this; people keep asking for it);
        :meth:`count` counts every process."""
        return self._main.adapter.sockets([room])

    @on_loop
    def rooms_of(self, target: Request | Socket | str) -> set[str]:
        """The rooms a socket is in, its own id room included."""
        sid = target if isinstance(target, str) else self.get_id(target)
        return self._main.adapter.socket_rooms(sid) if sid else set()

    # ----------------------------------------------------------------------------------------- messages
    @on_loop
    def broadcast(self, rooms: str | Iterable[str], *args: Any, omit: Target | None = None) -> int:
        """Send a message to every socket in ``rooms``, once each; return how many it was queued to.

        Call forms, as in Sails: ``broadcast(rooms, data)``, ``broadcast(rooms, event, data)``,
        ``broadcast(rooms, event, data, omit)`` and ``broadcast(rooms, data, omit)``; ``omit`` may also
        be a keyword. The event defaults to ``"message"``.
        """
        event, data, omitted = self._message_args("broadcast", args, omit)
        targets = self._rooms(rooms)
        if not targets:
            return 0
        operator = self._main.to(targets)
        if omitted is not None:
            operator = operator.except_(omitted)
        return operator.emit(event, data)

    @on_loop
    def blast(self, *args: Any, omit: Target | None = None) -> int:
        """Send a message to every connected socket: ``blast(data)``, ``blast(event, data)``,
        ``blast(event, data, omit)`` or ``blast(data, omit)``."""
        event, data, omitted = self._message_args("blast", args, omit)
        operator = self._main.except_(omitted) if omitted is not None else self._main.to(())
        return operator.emit(event, data)

    # ----------------------------------------------------------------------------------------- helpers
    def _message_args(self, name: str, args: tuple[Any, ...], omit: Target | None) -> tuple[str, Any, str | None]:
        if not args or len(args) > 3:
            raise TypeError(f"sockets.{name}() takes [event,] data [, omit]; got {len(args)} arguments")
        if len(args) == 1:
            event, data = self.DEFAULT_EVENT_NAME, args[0]
        elif len(args) == 2 and isinstance(args[0], str) and not isinstance(args[1], (Request, Socket)):
            event, data = args
        elif len(args) == 2:
            (data, omit), event = args, self.DEFAULT_EVENT_NAME
        else:
            event, data, omit = args
        if not isinstance(event, str):
            raise TypeError(f"sockets.{name}(): the event name must be a string, got {event!r}")
        omitted = None
        if omit is not None:
            omitted = omit if isinstance(omit, str) else self.get_id(omit)
        return event, data, omitted

    def _socket_of(self, target: Target) -> Socket | None:
        if isinstance(target, Request):
            return target.socket
        if isinstance(target, Socket):
            return target
        if isinstance(target, str):
            return self._main.sockets.get(target)
        raise TypeError(f"expected a request, a socket or a socket id, got {target!r}")

    @staticmethod
    def _each(targets: Targets) -> list[Target]:
        if isinstance(targets, (Request, Socket, str)):
            return [targets]
        return list(targets)

    @staticmethod
    def _rooms(rooms: str | Iterable[str]) -> list[str]:
        if isinstance(rooms, str):
            return [rooms]
        found = []
        for room in rooms:
            if not isinstance(room, str):
                log.warning("ignoring room name %r: room names are strings", room)
                continue
            found.append(room)
        return found
