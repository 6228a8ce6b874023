"""The Socket.IO side of one Engine.IO session, as a state machine: which namespaces are connected.

Theory of operation
-------------------
One Engine.IO session carries any number of Socket.IO namespaces (``/``, ``/admin``...). Each goes
through the same small life, kept here as data with no I/O and no clock (the caller passes ``now``):

``CONNECTING``
    The client asked (a CONNECT packet; or, for an Engine.IO revision-3 client, the session opened: those
    clients are put in ``/`` without asking). :meth:`SocketIOConnection.receive` returns a
    :class:`ConnectRequest`, and the application decides: :meth:`accept` (then, once its connection
    handlers have run, :meth:`ready`) or :meth:`refuse` (or :meth:`no_such_namespace`). Packets for the
    namespace that arrive meanwhile wait here, in order, and :meth:`ready` hands them back; acks do not
    wait (a connection handler may await one).
``CONNECTED``
    Packets for the namespace are returned by :meth:`receive` for the application to handle.

A DISCONNECT from the client ends a connected namespace (returned to the caller, which forgets the
socket), a repeated CONNECT is ignored, a packet for a namespace never connected is a protocol error,
and a client may not send CONNECT_ERROR. A session that has connected no namespace within
``connect_timeout`` seconds is to be closed (:meth:`handle_timer` returns True).

Connection state recovery (Socket.IO 4.6+, revision 5 only, when the server turns it on): the CONNECT
answer carries a private session id, ``{"sid","pid"}``, a secret the client keeps; a client that comes
back sends ``{"pid","offset"}`` (merged with its auth) in its CONNECT, and the request carries them as
:attr:`ConnectRequest.recovery`, taken out of the auth. Whether the pid names a session the server still
has is the application's question, not the state machine's.

The two protocol revisions differ only in shapes, built here: the CONNECT answer (revision 4 of the
Socket.IO protocol, spoken by Engine.IO revision-3 clients, has no payload; revision 5 sends ``{"sid"}``),
the auth of a connect (the namespace's query string for revision 4, the CONNECT payload for 5), and a
refusal (revision 4 sends ``data``, or the message; revision 5 ``{"message", "data"}``). An unknown
namespace is ``{"message":"Invalid namespace"}`` for both, as socket.io sends it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from trisails._errors import SocketIOError

from . import socketio as sio

__all__ = ["OFFSET", "ConnectRequest", "NamespaceState", "SocketIOConnection"]

#: The shapes of the offsets a trisails server appends to broadcasts when it does recovery: one
#: process's ``<20 id characters>-<sequence>``, or over Redis ``<ms>-<sequence>-<process id>``. The
#: trisails clients recognise them by this shape (socket.io-client takes any trailing string), so that
#: an application's own last string argument is not taken for one (unless it has exactly this shape).
OFFSET = re.compile(r"[A-Za-z0-9_-]{20}-[0-9]{1,18}|[0-9]{1,15}-[0-9]{1,18}-[A-Za-z0-9_-]{20}")


class NamespaceState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """A client asks to connect ``namespace`` with ``auth``: accept it, refuse it, or say it does not exist."""

    namespace: str
    auth: dict[str, Any]
    recovery: tuple[str, str] | None = None
    """``(pid, offset)`` when a revision-5 client asks to recover its previous session (both strings;
    the server has recovery on). They are not part of :attr:`auth`."""


@dataclass(slots=True)
class _Namespace:
    state: NamespaceState
    waiting: list[sio.Packet] = field(default_factory=list)  # packets that came while CONNECTING


class SocketIOConnection:
    """The namespaces of one session (see the module docstring)."""

    __slots__ = ("revision", "recovery", "_decoder", "_namespaces", "_connect_due")

    def __init__(
        self,
        revision: int,
        *,
        now: float,
        connect_timeout: float,
        max_attachments: int = 10,
        max_payload: int | None = None,
        recovery: bool = False,
    ) -> None:
        """``max_attachments`` and ``max_payload`` bound what one binary packet may make the decoder
        hold (see :class:`~trisails.protocol.socketio.Decoder`). ``recovery``: the server does connection
        state recovery, so a revision-5 CONNECT's ``pid`` and ``offset`` are recovery data, not auth."""
        if revision not in (3, 4):
            raise ValueError(f"unknown Engine.IO revision {revision}")
        self.revision = revision
        """The Engine.IO revision: 3 speaks Socket.IO protocol 4, 4 speaks protocol 5."""
        self.recovery = recovery
        self._decoder = sio.Decoder(max_attachments=max_attachments, max_payload=max_payload)
        self._namespaces: dict[str, _Namespace] = {}
        self._connect_due: float | None = now + connect_timeout

    # ----------------------------------------------------------------------------------------- input
    def opened(self) -> ConnectRequest | None:
        """The session has opened: a revision-3 client is connecting ``/`` already."""
        if self.revision == 3:
            self._namespaces["/"] = _Namespace(NamespaceState.CONNECTING)
            return ConnectRequest("/", {})
        return None

    def receive(self, message: str | bytes) -> sio.Packet | ConnectRequest | None:
        """Handle one Engine.IO message: a packet for a connected namespace, a connect request, or None
        (a packet that waits for its namespace, an attachment still missing, a repeated CONNECT).

        Raises :class:`~trisails._errors.SocketIOError` for a packet the client may not send.
        """
        packet = self._decoder.receive(message)
        if packet is None:
            return None
        name = packet.namespace
        namespace = self._namespaces.get(name)
        kind = packet.type
        if kind is sio.PacketType.CONNECT:
            if namespace is not None:
                return None  # repeated: ignored, as socket.io does
            if self.revision == 3:
                auth: Any = dict(parse_qsl(packet.query, keep_blank_values=True))
            else:
                auth = packet.data if packet.data is not None else {}
            if not isinstance(auth, dict):
                raise SocketIOError("CONNECT payload must be an object")
            recovery = None
            if self.recovery and self.revision == 4 and ("pid" in auth or "offset" in auth):
                auth = dict(auth)
                pid, offset = auth.pop("pid", None), auth.pop("offset", None)
                if isinstance(pid, str) and isinstance(offset, str):
                    recovery = (pid, offset)
            self._namespaces[name] = _Namespace(NamespaceState.CONNECTING)
            return ConnectRequest(name, auth, recovery)
        if kind is sio.PacketType.CONNECT_ERROR:
            raise SocketIOError("a client may not send CONNECT_ERROR")
        if namespace is None:
            if kind is sio.PacketType.DISCONNECT:
                return None
            raise SocketIOError(f"packet for namespace {name!r}, which this client has not connected")
        if namespace.state is NamespaceState.CONNECTING and kind is not sio.PacketType.ACK:
            namespace.waiting.append(packet)
            return None
        if kind is sio.PacketType.DISCONNECT:
            del self._namespaces[name]
        return packet

    # ----------------------------------------------------------------------------------------- decisions
    def accept(self, namespace: str, sid: str, pid: str | None = None) -> sio.Packet:
        """The application admits ``namespace`` as socket ``sid``: the CONNECT answer to send, with the
        private session id ``pid`` for a revision-5 client when the server does recovery.

        The namespace stays ``CONNECTING`` (its packets keep waiting, acks pass) until :meth:`ready`,
        so that connection handlers can register the socket's event handlers before any event runs.
        """
        self._connect_due = None
        if self.revision == 3:
            payload: Any = None
        else:
            payload = {"sid": sid} if pid is None else {"sid": sid, "pid": pid}
        return sio.Packet(sio.PacketType.CONNECT, namespace, payload)

    def ready(self, namespace: str) -> list[sio.Packet]:
        """The socket's connection handlers have run: ``CONNECTED``, and here are the packets that waited."""
        state = self._namespaces.get(namespace)
        if state is None:
            return []
        state.state = NamespaceState.CONNECTED
        waiting, state.waiting = state.waiting, []
        return waiting

    def refuse(self, namespace: str, message: str, data: Any = None) -> sio.Packet:
        """Refuse ``namespace`` (middleware said no): the CONNECT_ERROR, in the revision's shape."""
        self._namespaces.pop(namespace, None)
        if self.revision == 3:
            payload: Any = data if data is not None else message
        else:
            payload = {"message": message} if data is None else {"message": message, "data": data}
        return sio.Packet(sio.PacketType.CONNECT_ERROR, namespace, payload)

    def no_such_namespace(self, namespace: str) -> sio.Packet:
        """Refuse a namespace the server does not have, as socket.io does for both revisions."""
        self._namespaces.pop(namespace, None)
        return sio.Packet(sio.PacketType.CONNECT_ERROR, namespace, {"message": "Invalid namespace"})

    def disconnect(self, namespace: str) -> sio.Packet | None:
        """The server ends ``namespace``: the DISCONNECT to send (None if it was not connected)."""
        state = self._namespaces.pop(namespace, None)
        if state is None:
            return None
        return sio.Packet(sio.PacketType.DISCONNECT, namespace)

    def state(self, namespace: str) -> NamespaceState | None:
        """Where ``namespace`` is (None: not connected, nor connecting)."""
        found = self._namespaces.get(namespace)
        return None if found is None else found.state

    # ----------------------------------------------------------------------------------------- time
    def next_deadline(self) -> float | None:
        """When a session that has connected no namespace is given up, until one connects."""
        return self._connect_due

    def handle_timer(self, now: float) -> bool:
        """True when the connect timeout has passed with no namespace connected or connecting: close."""
        due = self._connect_due
        if due is None or now < due:
            return False
        self._connect_due = None
        return not self._namespaces
