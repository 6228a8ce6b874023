"""Resourceful pub-sub: the rooms of a model's records, and the messages its changes send.

Sails' conventions, to the byte: a record's room is ``sails_model_<identity>_<id>:<identity>``, the
model's class room (where ``created`` goes) is ``sails_model_create_<identity>``, and every message is
sent as the event ``<identity>``. Each write's :class:`~trisails.orm.binding.Change` becomes the
messages Sails' blueprints send (``created``, ``updated``, ``destroyed``, ``addedTo``, ``removedFrom``),
plus the notifications to the other side of every association that changed.

Where trisails differs on purpose: :meth:`PubSub.publish` to several records reaches a socket subscribed
to more than one of them once, not once per record; and a destroyed record's room is emptied, not just
left by the class-room members.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._errors import RoomLimitReached
from .binding import Change, Link, to_json

if TYPE_CHECKING:
    from ..sockets import Sockets
    from ..web.request import Request
    from .binding import ModelBinding

__all__ = ["PubSub"]

log = logging.getLogger("trisails.orm")


class PubSub:
    """The pub-sub side of one model in one app."""

    def __init__(self, binding: ModelBinding, sockets: Sockets) -> None:
        self.binding = binding
        self.identity = binding.identity
        self.sockets = sockets
        self.class_room = f"sails_model_create_{self.identity}"
        """The room whose members hear about every new record (``created``)."""

    def room(self, id: Any) -> str:
        """A record's room."""
        if id is None or id == "":
            raise ValueError(f"{self.identity}: a record room needs an id, got {id!r}")
        return f"sails_model_{self.identity}_{id}:{self.identity}"

    # ------------------------------------------------------------------------------- subscriptions
    def subscribe(self, req: Request | None, ids: Any) -> None:
        """Join ``req``'s socket to each record's room; an HTTP request has no socket to join."""
        if req is None or not req.is_socket:
            log.debug("%s.subscribe: not a socket request, nothing to subscribe", self.identity)
            return
        try:
            for id in _ids(ids, self.binding.pk):
                self.sockets.join(req, self.room(id))
        except RoomLimitReached as error:
            # a read or a write has happened; only the subscription is refused, and the log says why
            log.warning("%s.subscribe: %s", self.identity, error)

    def unsubscribe(self, req: Request | None, ids: Any) -> None:
        """Take ``req``'s socket out of each record's room."""
        if req is None or not req.is_socket:
            return
        for id in _ids(ids, self.binding.pk):
            self.sockets.leave(req, self.room(id))

    def watch(self, req: Request) -> None:
        """Join ``req``'s socket to the class room, to hear about new records."""
        if req.is_socket:
            try:
                self.sockets.join(req, self.class_room)
            except RoomLimitReached as error:
                log.warning("%s: not watching: %s", self.identity, error)

    def introduce(self, id: Any) -> None:
        """Subscribe every watcher of the model to a new record."""
        self.sockets.add_room_members_to_rooms(self.class_room, self.room(id))

    def retire(self, id: Any) -> None:
        """Empty a destroyed record's room: nobody can hear about it any more."""
        room = self.room(id)
        self.sockets.remove_room_members_from_rooms(room, room)

    # ------------------------------------------------------------------------------- messages
    def publish(self, ids: Any, data: Any, req: Request | None = None) -> int:
        """Send ``data`` to the rooms of ``ids``, each socket once, leaving out ``req``'s socket."""
        rooms = [self.room(id) for id in _ids(ids, self.binding.pk)]
        if not rooms:
            return 0
        return self._send(rooms, data, req)

    def _send(self, rooms: str | list[str], data: Any, omit: Request | None) -> int:
        return self.sockets.broadcast(rooms, self.identity, data, omit=omit if omit is not None and omit.is_socket else None)

    def created(self, change: Change, omit: Request | None) -> None:
        """The other sides of the new record's associations, then ``created`` to the class room (the
        order of Sails' ``_publishCreate``)."""
        self.notify_other_sides(change, omit)
        self._send(self.class_room, {"verb": "created", "data": change.after, "id": to_json(change.id)}, omit)

    def updated(self, change: Change, omit: Request | None) -> None:
        """The other sides of the associations that changed, then ``updated`` (with the values set and
        the record as it was) to the record's room (the order of Sails' ``_publishUpdate``)."""
        self.notify_other_sides(change, omit)
        message = {"verb": "updated", "data": change.values, "id": to_json(change.id), "previous": change.before}
        self._send(self.room(change.id), message, omit)

    def destroyed(self, change: Change, omit: Request | None) -> None:
        """``destroyed`` (with the record as it was) to the record's room, and the other sides."""
        self._send(self.room(change.id), {"verb": "destroyed", "id": to_json(change.id), "previous": change.before}, omit)
        self.notify_other_sides(change, omit)

    def collection_changed(self, change: Change, omit: Request | None) -> None:
        """``addedTo``/``removedFrom`` to the parent's room for each record added or removed."""
        id = to_json(change.id)
        room = self.room(change.id)
        for link in change.links:
            for child in link.added:
                self._send(room, {"id": id, "verb": "addedTo", "attribute": link.alias, "addedId": child}, omit)
            for child in link.removed:
                self._send(room, {"id": id, "verb": "removedFrom", "attribute": link.alias, "removedId": child}, omit)
        self.notify_other_sides(change, omit)

    def notify_other_sides(self, change: Change, omit: Request | None) -> None:
        """Tell each related record that its side of an association changed, as Sails' reverse
        notifications do: a collection hears ``addedTo``/``removedFrom``, a single reference ``updated``."""
        for link in change.links:
            self._notify_link(change.id, link, omit)

    def _notify_link(self, id: Any, link: Link, omit: Request | None) -> None:
        association = self.binding.associations[link.alias]
        if association.one_way:
            return  # the other model has no attribute for it: nothing to tell its records, as in Sails
        other = self.binding.models[association.target].pubsub
        me = to_json(id)
        # the records that lost this one first, then those that gained it, as Sails tells them
        for related in link.removed:
            if association.via_many:
                message = {"id": related, "verb": "removedFrom", "attribute": association.via, "removedId": me}
            else:
                message = {"verb": "updated", "data": {association.via: None}, "id": related}
            other._send(other.room(related), message, omit)
        for related in link.added:
            if association.via_many:
                message = {"id": related, "verb": "addedTo", "attribute": association.via, "addedId": me}
            else:
                message = {"verb": "updated", "data": {association.via: me}, "id": related}
            other._send(other.room(related), message, omit)
        for related, former in link.stolen_from.items():
            # the related record had another parent of this model before: that parent lost it
            if association.many:
                message = {"id": former, "verb": "removedFrom", "attribute": link.alias, "removedId": related}
            else:
                message = {"verb": "updated", "data": {link.alias: None}, "id": former}
            self._send(self.room(former), message, omit)


def _ids(ids: Any, pk: str) -> list[Any]:
    """Primary keys from one id, a list of ids, or records (dicts holding the primary key)."""
    if ids is None:
        return []
    if isinstance(ids, (str, int, float)) or isinstance(ids, dict):
        ids = [ids]
    found = []
    for item in ids if isinstance(ids, Iterable) else [ids]:
        value = item.get(pk) if isinstance(item, dict) else item
        if value is None or value == "":
            log.warning("ignoring %r: a record to subscribe or publish to needs a primary key", item)
            continue
        found.append(to_json(value))
    return found
