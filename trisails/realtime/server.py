"""The Socket.IO layer: namespaces, sockets, event handlers, acknowledgements and broadcasts.

This is the raw realtime API, what Sails exposes as ``sails.io``::

    @app.io.on("connection")
    async def greet(socket):
        socket.emit("welcome", {"id": socket.id})
        socket.join("lobby")

        @socket.on("chat")
        async def chat(text):
            app.io.to("lobby").except_(socket.id).emit("chat", text)
            return "delivered"            # the client's ack receives "delivered"

Data flows one way: the session's trio shell (:class:`~trisails.realtime.connection.Connection`) hands
each message to the session's :class:`_Connection`, which feeds the namespace state machine
(:mod:`trisails.protocol.socketio_connection`: which namespaces are connecting or connected, and the
packet shapes of each revision) and routes what comes out to the :class:`Socket` of its namespace. A socket handles its events one at a time, in arrival order, as
Socket.IO does. A plain-function handler with nothing waiting before it runs at once, in the reader;
anything else waits in a bounded inbox for the socket's dispatcher task, started in the session's
nursery when an event has to wait, which lingers ``DISPATCHER_LINGER`` seconds for more before it ends.
Acks bypass the inbox, so a handler may wait for the client's ack. When the connection closes, its
nursery is cancelled, and with it the dispatcher and whatever the socket started with
:meth:`Socket.start_soon`; a namespace disconnect alone forgets the socket (rooms, pending acks,
disconnect handlers) but cancels no task.

The two protocol revisions differ here only in the socket id (Engine.IO v3 clients' socket id in ``/``
is the session id; v4 clients get a fresh one); the rest of their differences are the state machine's.
The Sails layer takes over the virtual-request events through :meth:`Socket.on_events`, a public hook
any layer above Socket.IO may use; nothing here knows of it.
"""

from __future__ import annotations

import base64
import functools
import inspect
from collections import deque
import logging
import math
import types
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._concurrency import Waiter, call, is_async, is_awaitable, on_loop
from .._errors import AckTimeout, ConnectionRefused, DisconnectedError, ProtocolError, RoomLimitReached
from ..protocol import engineio as eio
from ..protocol import socketio as sio
from ..protocol.socketio_connection import ConnectRequest, SocketIOConnection
from ..protocol.engineio import Envelope
from .connection import Connection, new_id
from .recovery import RECOVERABLE_REASONS, MemoryRecovery, RecoveryStore, Restored, SavedSession
from .rooms import Adapter, MemoryAdapter

if TYPE_CHECKING:
    from .._config import SocketSettings

__all__ = [
    "Ack",
    "BroadcastOperator",
    "BroadcastReply",
    "Namespace",
    "RealtimeServer",
    "RemoteSocket",
    "ServerSideReply",
    "Socket",
    "SocketHandshake",
]

log = logging.getLogger("trisails.realtime")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)
RoomSpec = str | Iterable[str]
EventsHandler = Callable[[str, list[Any], "Ack | None"], Awaitable[None] | None]

#: Seconds ``fetch_sockets`` and ``server_side_call`` wait for the other processes by default
#: (socket.io's 5000 ms).
REQUEST_TIMEOUT = 5.0

#: Seconds a socket's dispatcher waits for another event before it ends.
DISPATCHER_LINGER = 5.0

#: The inbox entry of a plain handler's coroutine result, awaited in turn by the dispatcher.
_AWAIT = "\x00await"

#: Event names a client may not trigger: they are the server's own lifecycle callbacks.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"})


def _room_set(rooms: RoomSpec) -> frozenset[str]:
    return frozenset((rooms,) if isinstance(rooms, str) else rooms)


def _envelope(packet: sio.Packet, *, volatile: bool = False) -> Envelope:
    """Encode a Socket.IO packet once, as the Engine.IO messages that carry it."""
    parts = sio.encode(packet)
    header = parts[0]
    if len(parts) == 1 and type(header) is str:  # no binary: one text message
        return Envelope.message(header, volatile=volatile)
    return Envelope([eio.Packet(eio.PacketType.MESSAGE, part) for part in parts], volatile=volatile)


def _pack(values: list[Any]) -> list[Any]:
    """Values as JSON another process can take through Redis: the Engine.IO messages of a Socket.IO
    ACK packet holding them (so dates, decimals and the rest are written as for a client), with each
    binary attachment as ``{"b": base64}``."""
    return [
        part if isinstance(part, str) else {"b": base64.b64encode(part).decode()}
        for part in sio.encode(sio.Packet(sio.PacketType.ACK, "/", values, id=0))
    ]


def _unpack(parts: list[Any]) -> list[Any]:
    """The values :func:`_pack` packed."""
    decoder = sio.Decoder(max_attachments=len(parts))
    packet = None
    for part in parts:
        packet = decoder.receive(base64.b64decode(part["b"]) if isinstance(part, dict) else part)
    if packet is None or not isinstance(packet.data, list):
        raise ValueError("not packed values")
    return list(packet.data)


def _ack_args(result: Any) -> list[Any]:
    """A handler's return value as ack arguments: None → none, a tuple → several, anything else → one."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def _mark(names: set[str] | None, name: str, marked: bool) -> set[str] | None:
    """``names`` with ``name`` in it if ``marked``, else without (the set made only when first needed:
    most sockets never mark anything)."""
    if marked:
        if names is None:
            names = set()
        names.add(name)
    elif names is not None:
        names.discard(name)
    return names


def _takes_ack(handler: Handler) -> bool:
    """Whether ``handler`` has a keyword-only ``ack`` parameter: it answers the client itself."""
    code = getattr(handler, "__code__", None)
    if type(handler) is types.FunctionType and code is not None:
        # Read the code object rather than inspect.signature: the signature is slow, and it makes
        # the function materialise its annotations dict, which a per-connection closure then keeps.
        first_keyword = code.co_argcount
        return "ack" in code.co_varnames[first_keyword : first_keyword + code.co_kwonlyargcount]
    try:
        parameter = inspect.signature(handler).parameters.get("ack")
    except (TypeError, ValueError):  # a callable without a signature: an ordinary handler
        return False
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


class Ack:
    """The acknowledgement a client asked for with one event: call it once to answer.

    Handlers registered with :meth:`Socket.on_events` get one (or None when the client asked for no
    ack) and answer when they choose: ``ack(answer)`` sends one argument, ``ack()`` none, ``ack(a, b)``
    several, ``ack(None)`` a single ``null``. Later calls are ignored. Arguments JSON cannot hold raise
    ``TypeError`` and send nothing, so the caller can answer something else instead.
    """

    __slots__ = ("_socket", "_id", "answered")

    def __init__(self, socket: Socket, ack_id: int) -> None:
        self._socket = socket
        self._id = ack_id
        self.answered = False

    def __call__(self, *args: Any) -> None:
        socket = self._socket
        if self.answered or not socket.connected:
            return
        socket._send_ack(self._id, list(args))  # (arguments JSON cannot hold raise here, unanswered)
        self.answered = True

    def __repr__(self) -> str:
        return f"<Ack {self._id} of socket {self._socket.id}{' answered' if self.answered else ''}>"


@dataclass(frozen=True)
class SocketHandshake:
    """How a socket connected, as Socket.IO's ``socket.handshake`` reports it.

    It is plain data: ``socket.emit("you", socket.handshake)`` sends it as a JSON object of its fields,
    and :meth:`to_dict` (or ``dict(handshake)``) gives a copy to store or log. ``time`` is the
    connection's Unix time in seconds, ``issued`` the same in milliseconds.
    """

    headers: dict[str, str]
    query: dict[str, str]
    auth: dict[str, Any]
    address: str
    url: str
    secure: bool
    time: float
    issued: int
    xdomain: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields as a new dict (``headers``, ``query`` and ``auth`` copied, so it can be changed)."""
        return {
            name: dict(value) if isinstance(value, dict) else value
            for name, value in ((field.name, getattr(self, field.name)) for field in fields(self))
        }

    def keys(self) -> list[str]:
        """The field names, so that ``dict(handshake)`` works as it does for a mapping."""
        return [field.name for field in fields(self)]

    def __getitem__(self, name: str) -> Any:
        """``handshake["query"]``, as JavaScript code reads ``socket.handshake.query``."""
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)


class Socket:
    """One client's connection to one namespace.

    Everything here is safe to call from any task. :meth:`emit` never waits: the message is queued for
    this socket's writer, and a socket that falls too far behind meets the slow-consumer policy.
    """

    __slots__ = (
        "id",
        "namespace",
        "handshake",
        "data",
        "connected",
        "recovered",
        "pid",
        "room_changes",
        "_connection",
        "_events",
        "_async_events",
        "_ack_takers",
        "_hook_events",
        "_hook",
        "_any",
        "_on_disconnect",
        "_acks",
        "_inbox",
        "_dispatching",
        "_parked",
        "_linger_until",
    )

    def __init__(self, namespace: Namespace, connection: _Connection, sid: str, handshake: SocketHandshake) -> None:
        self.id = sid
        self.namespace = namespace
        self.handshake = handshake
        self.data: dict[str, Any] = {}
        """Free for the application: anything it wants to remember about this socket."""
        self.connected = False
        self.recovered = False
        """Whether this socket came back from a lost connection with its id, rooms and ``data`` (and got
        the broadcasts it missed): see the ``sockets.recovery`` setting."""
        self.pid: str | None = None  # the private session id of recovery (None: no recovery)
        self._connection = connection
        self._events: dict[str, Handler] = {}
        self._async_events: set[str] | None = None  # events whose handler is async (never run inline)
        self._ack_takers: set[str] | None = None  # events whose handler answers through its ``ack`` keyword
        # the one handler of :meth:`on_events` and its event names (a pair, not a dict entry per name:
        # every socket of a Sails app has one, so an idle socket holds as little as possible)
        self._hook_events: frozenset[str] = frozenset()
        self._hook: EventsHandler | None = None
        self._any: list[Handler] = []
        self.room_changes = 0
        """How many times :meth:`join` or :meth:`leave` was called on this socket: compare it before and
        after some work to know whether that work changed the socket's rooms."""
        self._on_disconnect: list[Handler] = []
        # acks this socket owes the server, by id (from the namespace's counter); made at the first ask
        self._acks: dict[int, Waiter | _BroadcastAck] | None = None
        # Events waiting for their handler, and whether the dispatcher task is running: it is started
        # when an event has to wait and ends DISPATCHER_LINGER s after the last, so an idle socket holds
        # no task.
        self._inbox: deque[tuple[str, list[Any], int | None]] | None = None  # made when an event first waits
        self._dispatching = False
        self._parked: trio.lowlevel.Task | None = None  # the dispatcher, while it lingers for more events
        self._linger_until = 0.0  # when the lingering dispatcher gives up

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.namespace.name} {'connected' if self.connected else 'disconnected'}>"

    # ----------------------------------------------------------------------------------------- handlers
    def on(self, event: str, handler: H | None = None) -> Any:
        """Register ``handler`` for ``event`` (usable as a decorator).

        ``handler(*args)`` may be async. A socket's events are handled one at a time, in the order they
        arrived, as in Socket.IO; work that should not hold up the next event belongs in
        :meth:`start_soon`. If the client asked for an ack, the return value is sent back:
        ``None`` acks with no arguments, a tuple with several, anything else with one.

        A handler with a keyword-only parameter ``ack`` (``def h(*args, ack: Ack | None)``) answers
        itself instead: it gets the :class:`Ack` to call (None when the client asked for none), its
        return value is ignored, and it may answer later (from a task it started with
        :meth:`start_soon`), answer a single ``null`` with ``ack(None)``, or never answer.

        The special event ``"disconnect"`` registers ``handler(reason)``, called once when the socket
        goes away.
        """

        def register(fn: H) -> H:
            if event == "disconnect":
                self._on_disconnect.append(fn)
                return fn
            self._events[event] = fn
            self._async_events = _mark(self._async_events, event, is_async(fn))
            self._ack_takers = _mark(self._ack_takers, event, _takes_ack(fn))
            return fn

        return register(handler) if handler is not None else register

    def on_events(self, events: Iterable[str], handler: EventsHandler) -> None:
        """Handle every event in ``events`` with one ``handler(event, args, ack)``, in place of
        :meth:`on` handlers for those names.

        ``ack`` is an :class:`Ack` to call when the answer is ready (or to leave unanswered), or None
        when the client asked for no ack. This is how a layer above Socket.IO takes over a family of
        events; trisails' virtual requests (``get``, ``post``...) arrive this way. The events are
        dispatched in order with the socket's other events. A second call replaces the first.
        """
        self._hook_events = frozenset(events)
        self._hook = handler

    def on_any(self, handler: H) -> H:
        """Register ``handler(event, *args)``, called for every event before its own handler."""
        self._any.append(handler)
        return handler

    @on_loop
    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` as a task that lives as long as this socket's connection, and no longer."""
        nursery = self._connection.session.nursery
        if nursery is None:
            raise RuntimeError("the socket's session is not running")
        nursery.start_soon(fn, *args)

    # ----------------------------------------------------------------------------------------- sending
    @on_loop
    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` (JSON values and bytes) to this socket; never waits."""
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        self._send(sio.Packet(sio.PacketType.EVENT, self.namespace.name, [event, *args]))

    def send(self, *args: Any) -> None:
        """Emit a ``message`` event, as Socket.IO's ``socket.send`` does."""
        self.emit("message", *args)

    @property
    def volatile(self) -> VolatileEmitter:
        """``socket.volatile.emit(...)``: an emit that is dropped, not queued, when the client cannot
        take it at once (a position update that the next one makes stale anyway)."""
        return VolatileEmitter(self)

    async def call(self, event: str, *args: Any, timeout: float | None = ...) -> list[Any]:  # type: ignore[assignment]
        """Emit ``event`` and wait for the client's acknowledgement; return the ack's arguments.

        ``timeout`` (seconds) defaults to the ``sockets.ack_timeout`` setting. Raises :class:`AckTimeout`
        when it passes, :class:`DisconnectedError` if the socket goes away first.
        """
        if timeout is ...:
            timeout = self.namespace.server.settings.ack_timeout
        if not self.connected:
            raise DisconnectedError(f"socket {self.id} is not connected")
        ack_id = self.namespace._new_ack_id()
        waiter = self._owed()[ack_id] = Waiter()
        self._send(sio.Packet(sio.PacketType.EVENT, self.namespace.name, [event, *args], id=ack_id))
        try:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                await waiter.done.wait()
        except trio.TooSlowError:
            raise AckTimeout(f"no ack for {event!r} from socket {self.id} within {timeout} s") from None
        finally:
            self._owed().pop(ack_id, None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.args

    def _send(self, packet: sio.Packet) -> None:
        self._connection.session.send(_envelope(packet))

    def _owed(self) -> dict[int, Waiter | _BroadcastAck]:
        if self._acks is None:
            self._acks = {}
        return self._acks

    def _send_ack(self, ack_id: int, args: list[Any]) -> None:
        text = sio.encode_ack(self.namespace.name, ack_id, args)
        if text is None:  # binary arguments: attachments follow
            self._send(sio.Packet(sio.PacketType.ACK, self.namespace.name, args, id=ack_id))
        else:
            self._connection.session.send_message(text)

    def statistics(self) -> dict[str, Any]:
        """How this socket is doing: its transport, messages waiting for its writer, messages dropped."""
        session = self._connection.session
        return {
            "transport": session.transport,
            "buffered": session.buffered,
            "dropped": session.dropped,
            "rooms": len(self.rooms),
        }

    # ----------------------------------------------------------------------------------------- rooms
    @property
    def rooms(self) -> set[str]:
        """The rooms this socket is in, its own id room included."""
        return self.namespace.adapter.socket_rooms(self.id)

    @on_loop
    def join(self, rooms: RoomSpec) -> None:
        """Join a room, or each of several; :class:`~trisails.RoomLimitReached` if that would put the
        socket in more rooms than ``sockets.max_rooms_per_socket`` (then it joins none of them)."""
        self._join(_room_set(rooms))

    def _join(self, wanted: frozenset[str]) -> None:
        """:meth:`join`, on the loop already: ``Sockets.add_room_members_to_rooms`` calls it for each
        member of a room (each watcher of a model, on every creation)."""
        adapter = self.namespace.adapter
        limit = self.namespace.server.settings.max_rooms_per_socket
        # the socket's rooms are copied only near the limit: a socket subscribed to many records (each a
        # room) joins one more on every creation its model's watchers are introduced to
        if adapter.room_count(self.id) + len(wanted) > limit:
            current = adapter.socket_rooms(self.id)
            if len(current | wanted) > limit:
                raise RoomLimitReached(
                    f"socket {self.id} is in {len(current)} rooms; joining {len(wanted - current)} more would pass "
                    f"sockets.max_rooms_per_socket ({limit}): leave some rooms first"
                )
        self.room_changes += 1
        adapter.add_all(self.id, wanted)

    @on_loop
    def leave(self, room: str) -> None:
        """Leave ``room`` (leaving a room one is not in does nothing)."""
        self.room_changes += 1
        self.namespace.adapter.delete(self.id, room)

    def to(self, rooms: RoomSpec) -> BroadcastOperator:
        """Broadcast to ``rooms``, leaving this socket out, as ``socket.to(room).emit()`` does in Socket.IO."""
        return BroadcastOperator(self.namespace, _room_set(rooms), frozenset({self.id}))

    in_ = to

    @property
    def broadcast(self) -> BroadcastOperator:
        """Broadcast to every socket of the namespace except this one."""
        return BroadcastOperator(self.namespace, frozenset(), frozenset({self.id}))

    # ----------------------------------------------------------------------------------------- lifetime
    @on_loop
    def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace (the client sees "io server disconnect" and does not reconnect).

        With ``close=True`` the whole underlying connection is closed too.
        """
        if self.connected:
            self._send(sio.Packet(sio.PacketType.DISCONNECT, self.namespace.name))
            self._closed("server namespace disconnect")
        if close:
            self._connection.session.close("forced server close")

    def _closed(self, reason: str) -> None:
        """Forget this socket: rooms, pending acks, then the disconnect handlers."""
        if not self.connected:
            return
        self.connected = False
        self._inbox = None
        self._connection.forget(self)
        store = self.namespace.recovery
        if store is not None and self.pid is not None and reason in RECOVERABLE_REASONS:
            store.persist(SavedSession(self.id, self.pid, sorted(self.rooms), self.data))
        self.namespace._remove(self)
        if self._acks:
            for waiter in self._acks.values():
                waiter.fail(DisconnectedError(f"socket {self.id} disconnected ({reason}) before it acknowledged"))
            self._acks.clear()
        for handler in self._on_disconnect:
            self.namespace.server._spawn(self._run_disconnect_handler, handler, reason)

    async def _run_disconnect_handler(self, handler: Handler, reason: str) -> None:
        try:
            await call(handler, reason)
        except Exception:
            log.exception("disconnect handler of socket %s failed", self.id)

    # ----------------------------------------------------------------------------------------- receiving
    def _receive(self, packet: sio.Packet) -> None:
        kind = packet.type
        if kind in (sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT):
            event, *args = packet.data
            event = str(event)
            if not self._inbox and not self._dispatching and not self._any and self._run_inline(event, args, packet.id):
                return
            if self._inbox is not None and len(self._inbox) >= self.namespace.server.settings.inbound_buffer:
                raise ProtocolError(
                    f"more than {self.namespace.server.settings.inbound_buffer} events waiting for their handlers"
                )
            self._queue((event, args, packet.id))
        elif kind in (sio.PacketType.ACK, sio.PacketType.BINARY_ACK):
            waiter = self._acks.pop(packet.id, None) if self._acks and packet.id is not None else None
            if waiter is None:
                log.debug("socket %s acked unknown id %s; ignored", self.id, packet.id)
                return
            waiter.resolve(list(packet.data))
        elif kind is sio.PacketType.DISCONNECT:
            self._closed("client namespace disconnect")
        else:
            raise ProtocolError(f"unexpected {kind.name} packet from the client")

    def _run_inline(self, event: str, args: list[Any], ack_id: int | None) -> bool:
        """Run a plain-function handler right here, in the reader, when nothing is waiting before it.

        The common case (a sync handler, nothing queued) then costs no task switch. Async handlers, and
        anything arriving while a handler is still busy, go through the inbox, so order is always kept.
        """
        if event in self._hook_events or event in RESERVED_EVENTS:
            return False
        handler = self._events.get(event)
        if handler is None or (self._async_events is not None and event in self._async_events):
            return False
        answers_itself = self._ack_takers is not None and event in self._ack_takers
        try:
            if answers_itself:
                result = handler(*args, ack=Ack(self, ack_id) if ack_id is not None else None)
            else:
                result = handler(*args)
        except Exception:
            log.exception("handler for %r on socket %s failed", event, self.id)
            return True
        if is_awaitable(result):
            # a plain function that returned a coroutine: await it in turn
            self._queue((_AWAIT, [result], None if answers_itself else ack_id))
            return True
        if ack_id is not None and not answers_itself and self.connected:
            self._send_ack(ack_id, _ack_args(result))
        return True

    def _queue(self, entry: tuple[str, list[Any], int | None]) -> None:
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(entry)
        if self._parked is not None:  # the dispatcher lingers: wake it rather than start another
            task, self._parked = self._parked, None
            trio.lowlevel.reschedule(task)
        elif not self._dispatching:
            self._dispatching = True
            self.start_soon(self._dispatch)

    async def _dispatch(self) -> None:
        """Handle this socket's waiting events one at a time, in the order they arrived (as Socket.IO
        does). With none left it lingers a few seconds for the next (a busy socket keeps one task rather
        than starting one per event), then ends, so an idle socket holds no task.

        Lingering is on the hot path of every virtual request, so it is made of the cheapest parts: the
        task parks itself (:meth:`_queue` reschedules it) and the connection's timer, which every
        session has anyway, wakes it once the linger is over, instead of a cancel scope and an event
        made for each wait."""
        try:
            while self.connected:
                while self._inbox and self.connected:
                    event, args, ack_id = self._inbox.popleft()
                    if event is _AWAIT:
                        await self._finish(args[0], event, ack_id)
                    else:
                        await self._run_handler(event, args, ack_id)
                self._linger_until = trio.current_time() + DISPATCHER_LINGER
                self._connection.linger(self)
                self._parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._unpark)
                if not self._inbox:
                    self._inbox = None  # an idle socket keeps no inbox
                    return
        finally:
            self._parked = None
            self._dispatching = False

    def _unpark(self, raise_cancel: Any) -> trio.lowlevel.Abort:
        self._parked = None  # cancelled while lingering (the session is ending)
        return trio.lowlevel.Abort.SUCCEEDED

    def _linger_over(self, now: float) -> bool:
        """Called by the connection's timer: end the linger if it is over; whether this socket is done
        lingering (woken, or not lingering any more)."""
        task = self._parked
        if task is None:
            return True
        if now < self._linger_until:
            return False
        self._parked = None
        trio.lowlevel.reschedule(task)  # it finds no event waiting, and ends
        return True

    async def _finish(self, awaitable: Awaitable[Any], event: str, ack_id: int | None) -> None:
        try:
            result = await awaitable
        except Exception:
            log.exception("handler on socket %s failed", self.id)
            return
        if ack_id is not None and self.connected:
            self._send_ack(ack_id, _ack_args(result))

    async def _run_handler(self, event: str, args: list[Any], ack_id: int | None) -> None:
        try:
            for handler in self._any:
                await call(handler, event, *args)
            if event in self._hook_events and self._hook is not None:
                await call(self._hook, event, args, Ack(self, ack_id) if ack_id is not None else None)
                return
            event_handler = self._events.get(event) if event not in RESERVED_EVENTS else None
            if event_handler is None:
                if not self._any:
                    log.debug("socket %s: no handler for event %r", self.id, event)
                return
            if self._ack_takers is not None and event in self._ack_takers:
                await call(functools.partial(event_handler, ack=Ack(self, ack_id) if ack_id is not None else None), *args)
                return  # the handler answers (or not) through its ack
            result = await call(event_handler, *args)
        except Exception:
            log.exception("handler for %r on socket %s failed", event, self.id)
            return
        if ack_id is not None and self.connected:
            self._send_ack(ack_id, _ack_args(result))


@dataclass(frozen=True)
class BroadcastReply:
    """What a broadcast with acks gathered: each answering socket's ack arguments, by socket id, and the
    ids of the sockets that did not answer (in time, or before they disconnected)."""

    responses: dict[str, list[Any]]
    missing: frozenset[str]

    @property
    def complete(self) -> bool:
        """Whether every targeted socket answered."""
        return not self.missing


class _Gathering:
    """The answers of one broadcast with acks, as they come, from this process's sockets and the others'.

    :attr:`done` is set once nobody is left to answer: every socket reached has answered or left, and,
    after :meth:`expect` said how many other processes were asked, each of them has said which of its
    sockets it reached. ``listener`` (on a process serving another's broadcast) hears each socket's
    answer, or None for one that left without answering.
    """

    __slots__ = ("done", "pending", "responses", "lost", "_processes", "_counted", "_listener")

    def __init__(self, listener: Callable[[str, list[Any] | None], None] | None = None) -> None:
        self.done = trio.Event()
        self.pending: set[str] = set()
        self.responses: dict[str, list[Any]] = {}
        self.lost: set[str] = set()
        self._processes = 0  # other processes that have not said yet which sockets they reached
        self._counted = False  # whether we know how many other processes to wait for
        self._listener = listener

    def settle(self, sid: str, args: list[Any] | None) -> None:
        if sid not in self.pending:
            return
        self.pending.discard(sid)
        if args is None:
            self.lost.add(sid)
        else:
            self.responses[sid] = args
        if self._listener is not None:
            self._listener(sid, args)
        self._check()

    def expect(self, processes: int) -> None:
        """Wait for the reports of this many other processes too."""
        self._processes += processes
        self._counted = True
        self._check()

    def on_answer(self, message: dict[str, Any]) -> None:
        """An answer from another process: the sockets it reached (or ``none``), or one socket's ack."""
        if "reached" in message or "none" in message:
            self._processes -= 1
            for sid in message.get("reached", ()):
                if sid not in self.responses and sid not in self.lost:
                    self.pending.add(sid)
            self.lost.update(message.get("lost", ()))
        elif "sid" in message:
            sid = message["sid"]
            if sid in self.responses or sid in self.lost:
                return
            if "args" in message:
                try:
                    args = _unpack(message["args"])
                except Exception:  # not from a trisails process of this version: the socket did not answer
                    log.warning("ignored an ack from another process that cannot be read: %r", message)
                    return
                self.pending.add(sid)  # an answer that came before its process's report counts the same
                self.settle(sid, args)
            else:
                self.pending.add(sid)
                self.settle(sid, None)
        self._check()

    def _check(self) -> None:
        if self._counted and not self.pending and self._processes <= 0:
            self.done.set()


class _BroadcastAck:
    """One socket's place in a :class:`_Gathering`: what that socket's ``_acks`` entry holds (the same
    two methods as a :class:`Waiter`)."""

    __slots__ = ("_gathering", "_sid")

    def __init__(self, gathering: _Gathering, sid: str) -> None:
        self._gathering = gathering
        self._sid = sid

    def resolve(self, args: list[Any]) -> None:
        self._gathering.settle(self._sid, args)

    def fail(self, error: BaseException) -> None:
        self._gathering.settle(self._sid, None)


class VolatileEmitter:
    """What ``socket.volatile`` gives: :meth:`emit` to one socket, dropped if it cannot go out now."""

    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    @on_loop
    def emit(self, event: str, *args: Any) -> bool:
        """Send ``event`` if the client can take it at once (connected, nothing waiting ahead of it for
        its transport, and on long-polling a GET waiting); otherwise drop it. True if it was sent."""
        socket = self._socket
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        if not socket.connected or not socket._connection.session.writable:
            return False  # dropped before it is even encoded
        packet = sio.Packet(sio.PacketType.EVENT, socket.namespace.name, [event, *args])
        return socket._connection.session.send_volatile(_envelope(packet, volatile=True))


class BroadcastOperator:
    """A broadcast target: some rooms (or everyone), minus some rooms, and how to send (volatile, with
    acks within a timeout). Immutable; each call narrows."""

    def __init__(
        self,
        namespace: Namespace,
        rooms: frozenset[str] = frozenset(),
        exclude: frozenset[str] = frozenset(),
        *,
        volatile: bool = False,
        timeout: float | None = None,
    ):
        self._namespace = namespace
        self._rooms = rooms
        self._exclude = exclude
        self._volatile = volatile
        self._timeout = timeout

    def _with(self, **changes: Any) -> BroadcastOperator:
        fields: dict[str, Any] = {"rooms": self._rooms, "exclude": self._exclude, "volatile": self._volatile, "timeout": self._timeout}
        fields.update(changes)
        return BroadcastOperator(self._namespace, **fields)

    def to(self, rooms: RoomSpec) -> BroadcastOperator:
        """Also target ``rooms``."""
        return self._with(rooms=self._rooms | _room_set(rooms))

    in_ = to

    def except_(self, rooms: RoomSpec) -> BroadcastOperator:
        """Leave out every socket in ``rooms`` (a socket id is a room, so this can omit one socket)."""
        return self._with(exclude=self._exclude | _room_set(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """The same target, but each socket that cannot take the message at once (something already
        waits for its transport, or no long-poll GET is waiting) is skipped rather than queued to."""
        return self._with(volatile=True)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """The same target, whose :meth:`call` waits ``seconds`` for the acks (Socket.IO's
        ``io.timeout(ms)``, in seconds)."""
        if seconds < 0:
            raise ValueError(f"a timeout cannot be negative, not {seconds}")
        return self._with(timeout=seconds)

    async def call(self, event: str, *args: Any, timeout: float | None = None) -> BroadcastReply:
        """Send ``event`` to every targeted socket with an ack id, encoded once, and gather their acks:
        return when every one has answered, or when ``timeout`` seconds have passed (default: this
        operator's :meth:`timeout`, else the ``sockets.ack_timeout`` setting).

        The :class:`BroadcastReply` holds each answer by socket id and the sockets that did not answer
        (in time, or before disconnecting, or that a volatile emit skipped). Nothing of the broadcast is
        kept once it returns, or once the waiting task is cancelled: a late ack is ignored.

        With Redis, the other processes send it to their targeted sockets too: each says which sockets
        it reached, then passes on each answer as it comes, and the call returns once every socket
        reached, in every process, has answered or left (or at the timeout). While Redis is unreachable
        it asks this process's sockets only.
        """
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        namespace = self._namespace
        if timeout is None:
            timeout = self._timeout if self._timeout is not None else namespace.server.settings.ack_timeout
        deadline = trio.current_time() + (timeout if timeout is not None else math.inf)
        data = [event, *args]
        gathering = _Gathering()
        ack_id = namespace._send_with_acks(data, self.socket_ids(), self._volatile, gathering)
        adapter = namespace.adapter
        ask_id: str | None = None
        try:
            with trio.move_on_at(deadline):
                others = await adapter.others()
                if others:
                    left = deadline - trio.current_time()
                    body = {**self._target(), "data": _pack(data), "timeout": left if math.isfinite(left) else None}
                    ask_id = adapter.request("broadcast_ack", body, gathering.on_answer)
                gathering.expect(others if ask_id is not None else 0)
                await gathering.done.wait()
        finally:
            adapter.end_request(ask_id)
            namespace._release(gathering, ack_id)
        return BroadcastReply(dict(gathering.responses), frozenset(gathering.pending | gathering.lost))

    emit_with_ack = call

    @on_loop
    def emit(self, event: str, *args: Any) -> int:
        """Send ``event`` to every targeted socket, encoded once; return how many sockets it was queued to.

        Never waits for any member: a slow one meets the slow-consumer policy instead.
        """
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        packet = sio.Packet(sio.PacketType.EVENT, self._namespace.name, [event, *args])
        return self._namespace._broadcast(packet, self._rooms, self._exclude, self._volatile)

    def socket_ids(self) -> set[str]:
        """Ids of the sockets this broadcast would reach."""
        adapter = self._namespace.adapter
        return adapter.sockets(self._rooms) - (adapter.sockets(self._exclude) if self._exclude else set())

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """The targeted sockets, as Socket.IO's ``fetchSockets``: this process's as their :class:`Socket`,
        the other processes' (with Redis) as a :class:`RemoteSocket`. Both have ``id``, ``handshake``,
        ``rooms``, ``data`` and ``emit``/``join``/``leave``/``disconnect``/``call``.

        A process that does not answer within this operator's :meth:`timeout` (default
        :data:`REQUEST_TIMEOUT` seconds) is left out, with a warning in the log.
        """
        namespace = self._namespace
        found: list[Socket | RemoteSocket] = [
            namespace.sockets[sid] for sid in sorted(self.socket_ids()) if sid in namespace.sockets
        ]
        timeout = self._timeout if self._timeout is not None else REQUEST_TIMEOUT
        answers, asked = await namespace.adapter.ask("fetch_sockets", self._target(), timeout)
        if len(answers) < asked:
            log.warning("fetch_sockets: %d of %d other processes did not answer within %g s", asked - len(answers), asked, timeout)
        for answer in answers:
            for entry in answer.get("sockets", ()):
                try:
                    found.append(RemoteSocket._from_wire(namespace, entry))
                except Exception:
                    log.warning("fetch_sockets: ignored a socket another process described oddly: %r", entry)
        return found

    @on_loop
    def sockets_join(self, rooms: RoomSpec) -> None:
        """Every targeted socket joins ``rooms``, in every process; one that would pass
        ``max_rooms_per_socket`` is skipped (logged), so it cannot stop the others."""
        wanted = sorted(_room_set(rooms))
        self._namespace._sockets_do("join", self._rooms, self._exclude, wanted)
        self._namespace.adapter.publish("sockets", {**self._target(), "op": "join", "dest": wanted})

    @on_loop
    def sockets_leave(self, rooms: RoomSpec) -> None:
        """Every targeted socket leaves ``rooms``, in every process."""
        wanted = sorted(_room_set(rooms))
        self._namespace._sockets_do("leave", self._rooms, self._exclude, wanted)
        self._namespace.adapter.publish("sockets", {**self._target(), "op": "leave", "dest": wanted})

    @on_loop
    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every targeted socket, in every process (``close``: their whole connections too)."""
        self._namespace._sockets_do("disconnect", self._rooms, self._exclude, close)
        self._namespace.adapter.publish("sockets", {**self._target(), "op": "disconnect", "close": close})

    def _target(self) -> dict[str, Any]:
        """The target, as another process reads it."""
        target: dict[str, Any] = {"rooms": sorted(self._rooms), "exclude": sorted(self._exclude)}
        if self._volatile:
            target["volatile"] = True
        return target


@dataclass(frozen=True)
class ServerSideReply:
    """What :meth:`Namespace.server_side_call` gathered: one response from each other process that
    handles the event, and how many processes that were asked did not answer (in time, or because
    their handler failed). Processes without a handler for the event are not counted."""

    responses: list[Any]
    missing: int

    @property
    def complete(self) -> bool:
        """Whether every process that handles the event answered."""
        return self.missing == 0


class RemoteSocket:
    """A socket of another process, as :meth:`BroadcastOperator.fetch_sockets` found it (Socket.IO's
    ``RemoteSocket``).

    ``id``, ``handshake``, ``rooms`` and ``data`` are a snapshot from when it was fetched (changing
    ``data`` here changes nothing there). ``emit``, ``join``, ``leave``, ``disconnect`` and ``call``
    act on the socket through Redis, wherever it is, and never raise because it has gone.
    """

    __slots__ = ("id", "namespace", "handshake", "rooms", "data")

    def __init__(self, namespace: Namespace, sid: str, handshake: SocketHandshake, rooms: set[str], data: Any) -> None:
        self.id = sid
        self.namespace = namespace
        self.handshake = handshake
        self.rooms = rooms
        self.data = data

    @classmethod
    def _from_wire(cls, namespace: Namespace, entry: dict[str, Any]) -> RemoteSocket:
        handshake = SocketHandshake(**entry["handshake"])
        [data] = _unpack(entry["data"])
        return cls(namespace, str(entry["id"]), handshake, set(entry["rooms"]), data)

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.id} {self.namespace.name}>"

    def _only(self) -> BroadcastOperator:
        return BroadcastOperator(self.namespace, frozenset({self.id}))

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to this socket."""
        self._only().emit(event, *args)

    def join(self, rooms: RoomSpec) -> None:
        """Have the socket join ``rooms`` (skipped, and logged there, past ``max_rooms_per_socket``)."""
        self._only().sockets_join(rooms)

    def leave(self, room: str) -> None:
        """Have the socket leave ``room``."""
        self._only().sockets_leave(room)

    def disconnect(self, close: bool = False) -> None:
        """Disconnect the socket (``close``: its whole connection too)."""
        self._only().disconnect_sockets(close)

    async def call(self, event: str, *args: Any, timeout: float | None = ...) -> list[Any]:  # type: ignore[assignment]
        """Emit ``event`` and wait for the client's ack, as :meth:`Socket.call`; :class:`AckTimeout`
        when it does not answer in time, or has gone, or Redis cannot reach it."""
        if timeout is ...:
            timeout = self.namespace.server.settings.ack_timeout
        reply = await self._only().call(event, *args, timeout=timeout if timeout is not None else math.inf)
        if self.id in reply.responses:
            return reply.responses[self.id]
        raise AckTimeout(f"no ack for {event!r} from socket {self.id} within {timeout} s")


class Namespace:
    """A namespace (``/`` by default): its sockets, its connection middleware and handlers, its rooms."""

    def __init__(self, server: RealtimeServer, name: str) -> None:
        self.server = server
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self.adapter: Adapter = server._adapter_factory(self._deliver, name)
        self._recovery: RecoveryStore | None = None
        self.adapter.serve = self._serve
        self._middleware: list[Handler] = []
        self._on_connection: list[Handler] = []
        self._server_side: dict[str, Handler] = {}
        self._next_ack = 0

    def _new_ack_id(self) -> int:
        """A fresh ack id for this namespace: shared by its sockets, so one broadcast with acks can use
        the same id (one encoding) for all of them, as Socket.IO does."""
        ack_id = self._next_ack
        self._next_ack += 1
        return ack_id

    def __repr__(self) -> str:
        return f"<Namespace {self.name} ({len(self.sockets)} sockets)>"

    def use(self, middleware: H) -> H:
        """Add ``middleware(socket)``, run before a socket connects; raise :class:`ConnectionRefused` to refuse."""
        self._middleware.append(middleware)
        return middleware

    def on(self, event: str, handler: H | None = None) -> Any:
        """Register ``handler(socket)`` for ``"connection"`` (or its alias ``"connect"``); a decorator too.

        Connection handlers run in order, awaited, before any of the socket's events are dispatched, so
        they can register the socket's event handlers. Long-running work belongs in
        :meth:`Socket.start_soon`.
        """
        if event not in ("connection", "connect"):
            raise ValueError(f"a namespace only has the 'connection' event, not {event!r}; use socket.on() for events")

        def register(fn: H) -> H:
            self._on_connection.append(fn)
            return fn

        return register(handler) if handler is not None else register

    def emit(self, event: str, *args: Any) -> int:
        """Send ``event`` to every socket of the namespace."""
        return BroadcastOperator(self).emit(event, *args)

    @property
    def volatile(self) -> BroadcastOperator:
        """Every socket of the namespace, skipping those that cannot take a message at once."""
        return BroadcastOperator(self, volatile=True)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Every socket of the namespace, for a :meth:`BroadcastOperator.call` waiting ``seconds``."""
        return BroadcastOperator(self).timeout(seconds)

    def to(self, rooms: RoomSpec) -> BroadcastOperator:
        return BroadcastOperator(self, _room_set(rooms))

    in_ = to

    def except_(self, rooms: RoomSpec) -> BroadcastOperator:
        return BroadcastOperator(self, frozenset(), _room_set(rooms))

    @property
    def recovery(self) -> RecoveryStore | None:
        """Where lost sockets' state and recent broadcasts are kept (None: ``sockets.recovery`` is off);
        made on first use, so the setting may change until the app lifts."""
        if self._recovery is None and self.server.settings.recovery:
            self._recovery = self.server._recovery_factory(self.name)
        return self._recovery

    def _broadcast(self, packet: sio.Packet, rooms: frozenset[str], exclude: frozenset[str], volatile: bool) -> int:
        """Hand ``packet`` to the adapter, encoded once; with recovery on, a broadcast that is not
        volatile gets an offset as its last argument and is kept for sockets that miss it."""
        store = self.recovery
        if store is None or volatile or packet.id is not None:
            return self.adapter.broadcast(_envelope(packet, volatile=volatile), rooms, exclude)
        offset = store.new_offset()
        envelope = _envelope(sio.Packet(packet.type, packet.namespace, [*packet.data, offset]))
        store.record(offset, envelope, rooms, exclude)
        return self.adapter.broadcast(envelope, rooms, exclude)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """Every socket of the namespace, in every process (:meth:`BroadcastOperator.fetch_sockets`)."""
        return await BroadcastOperator(self).fetch_sockets()

    def sockets_join(self, rooms: RoomSpec) -> None:
        """Every socket of the namespace, in every process, joins ``rooms``."""
        BroadcastOperator(self).sockets_join(rooms)

    def sockets_leave(self, rooms: RoomSpec) -> None:
        """Every socket of the namespace, in every process, leaves ``rooms``."""
        BroadcastOperator(self).sockets_leave(rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace, in every process."""
        BroadcastOperator(self).disconnect_sockets(close)

    # ----------------------------------------------------------------------------------------- between processes
    def on_server_side(self, event: str, handler: H | None = None) -> Any:
        """Register ``handler(*args)`` (plain or async; a decorator too) for ``event`` sent by another
        process with :meth:`server_side_emit` or :meth:`server_side_call` (Socket.IO's
        ``io.on(event)`` for ``serverSideEmit``). Its return value is this process's response to a
        :meth:`server_side_call`. One handler per event: a second replaces the first."""

        def register(fn: H) -> H:
            self._server_side[event] = fn
            return fn

        return register(handler) if handler is not None else register

    @on_loop
    def server_side_emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` (JSON values and bytes) to the other processes of the app
        (not this one), whose :meth:`on_server_side` handler runs; never waits. Without Redis, or
        while it is unreachable, nobody hears it."""
        self.adapter.publish("server_side", {"event": event, "args": _pack(list(args))})

    async def server_side_call(self, event: str, *args: Any, timeout: float = REQUEST_TIMEOUT) -> ServerSideReply:
        """:meth:`server_side_emit`, then wait up to ``timeout`` seconds for each other process's
        response (its handler's return value). A process without a handler for ``event`` says so at
        once and is not waited for; one whose handler fails counts as missing."""
        answers, asked = await self.adapter.ask("server_side", {"event": event, "args": _pack(list(args))}, timeout)
        responses: list[Any] = []
        unhandled = 0
        for answer in answers:
            if "response" in answer:
                try:
                    responses.extend(_unpack(answer["response"])[:1])
                except Exception:
                    log.warning("server_side_call(%r): ignored a response that cannot be read: %r", event, answer)
            elif "none" in answer:
                unhandled += 1
        return ServerSideReply(responses, asked - unhandled - len(responses))

    def _serve(self, kind: str, message: dict[str, Any], reply: Callable[[dict[str, Any]], None] | None) -> None:
        """Do what another process asked of this namespace's sockets here (through the adapter)."""
        if kind == "broadcast_ack":
            self._serve_broadcast_ack(message, reply)
        elif kind == "fetch_sockets" and reply is not None:
            targets = BroadcastOperator(self, frozenset(message["rooms"]), frozenset(message["exclude"])).socket_ids()
            reply({"sockets": [self._describe(self.sockets[sid]) for sid in sorted(targets) if sid in self.sockets]})
        elif kind == "sockets":
            argument = message.get("dest") if message["op"] != "disconnect" else bool(message.get("close"))
            self._sockets_do(message["op"], frozenset(message["rooms"]), frozenset(message["exclude"]), argument)
        elif kind == "server_side":
            handler = self._server_side.get(message["event"])
            if handler is None:
                if reply is not None:
                    reply({"none": True})
                return
            self.server._spawn(self._run_server_side, handler, message, reply)
        else:
            log.debug("namespace %s: ignored a %r from another process", self.name, kind)

    def _serve_broadcast_ack(self, message: dict[str, Any], reply: Callable[[dict[str, Any]], None] | None) -> None:
        """Another process's broadcast with acks: send it to the targeted sockets here with an ack id of
        this namespace, say which were reached, pass on each answer, and free it all at its timeout."""
        if reply is None:
            return

        def pass_on(sid: str, args: list[Any] | None) -> None:
            if args is None:
                reply({"sid": sid, "gone": True})
                return
            try:
                reply({"sid": sid, "args": _pack(args)})
            except (TypeError, ValueError):
                reply({"sid": sid, "gone": True})

        gathering = _Gathering(pass_on)
        targets = BroadcastOperator(self, frozenset(message["rooms"]), frozenset(message["exclude"])).socket_ids()
        ack_id = self._send_with_acks(_unpack(message["data"]), targets, bool(message.get("volatile")), gathering)
        reply({"reached": sorted(gathering.pending), "lost": sorted(gathering.lost)})
        gathering.expect(0)
        if gathering.pending:
            timeout = message.get("timeout")
            self.server._spawn(self._release_after, gathering, ack_id, math.inf if timeout is None else float(timeout))

    async def _run_server_side(self, handler: Handler, message: dict[str, Any], reply: Callable[[dict[str, Any]], None] | None) -> None:
        event = message["event"]
        try:
            result = await call(handler, *_unpack(message["args"]))
        except Exception:
            log.exception("server-side handler for %r of namespace %s failed", event, self.name)
            if reply is not None:
                reply({"failed": True})
            return
        if reply is None:
            return
        try:
            response = _pack([result])
        except (TypeError, ValueError):
            log.exception("server-side handler for %r returned what JSON cannot hold", event)
            reply({"failed": True})
            return
        reply({"response": response})

    @staticmethod
    def _describe(socket: Socket) -> dict[str, Any]:
        """A socket as another process's :class:`RemoteSocket` is made from (its ``data`` as None when
        JSON cannot hold it: one odd socket must not leave out the others)."""
        try:
            data = _pack([socket.data])
        except (TypeError, ValueError) as error:
            log.warning("fetch_sockets: the data of socket %s cannot be sent to another process: %s", socket.id, error)
            data = _pack([None])
        return {"id": socket.id, "handshake": socket.handshake.to_dict(), "rooms": sorted(socket.rooms), "data": data}

    def _sockets_do(self, op: str, rooms: frozenset[str], exclude: frozenset[str], argument: Any) -> None:
        """``join``, ``leave`` (rooms in ``argument``) or ``disconnect`` (``argument``: close) the
        targeted sockets of this process."""
        targets = [self.sockets[sid] for sid in BroadcastOperator(self, rooms, exclude).socket_ids() if sid in self.sockets]
        for socket in targets:
            if op == "join":
                try:
                    socket.join(argument)
                except RoomLimitReached as error:
                    log.warning("sockets_join(%r): skipped a socket: %s", argument, error)
            elif op == "leave":
                for room in argument:
                    socket.leave(room)
            elif op == "disconnect":
                socket.disconnect(bool(argument))

    def _send_with_acks(self, data: list[Any], sids: Iterable[str], volatile: bool, gathering: _Gathering) -> int:
        """Send an EVENT with ``data`` and one fresh ack id (encoded once) to each of ``sids`` here; each
        one reached waits in ``gathering``, each skipped is lost. Returns the ack id."""
        ack_id = self._new_ack_id()
        envelope = _envelope(sio.Packet(sio.PacketType.EVENT, self.name, data, id=ack_id), volatile=volatile)
        for sid in sids:
            socket = self.sockets.get(sid)
            if socket is None:
                continue
            session = socket._connection.session
            if socket.connected and (session.send_volatile(envelope) if volatile else session.send(envelope)):
                socket._owed()[ack_id] = _BroadcastAck(gathering, socket.id)
                gathering.pending.add(socket.id)
            else:
                gathering.lost.add(socket.id)
        return ack_id

    def _release(self, gathering: _Gathering, ack_id: int) -> None:
        """Free what the sockets still waiting hold for a broadcast with acks."""
        for sid in gathering.pending:
            member = self.sockets.get(sid)
            if member is not None and member._acks:
                member._acks.pop(ack_id, None)

    async def _release_after(self, gathering: _Gathering, ack_id: int, timeout: float) -> None:
        try:
            with trio.move_on_after(timeout):
                await gathering.done.wait()
        finally:
            self._release(gathering, ack_id)

    def _deliver(self, sid: str, envelope: Envelope) -> None:
        socket = self.sockets.get(sid)
        if socket is not None:
            session = socket._connection.session
            if envelope.volatile:
                session.send_volatile(envelope)
            else:
                session.send(envelope)

    def _add(self, socket: Socket) -> None:
        self.sockets[socket.id] = socket
        self.adapter.add_all(socket.id, (socket.id,))

    def _remove(self, socket: Socket) -> None:
        self.adapter.delete_all(socket.id)
        self.sockets.pop(socket.id, None)


class RealtimeServer:
    """The Socket.IO server of an App (``app.io``): namespaces, and shortcuts to the main one."""

    def __init__(
        self,
        settings: SocketSettings,
        *,
        adapter_factory: Callable[[Callable[[str, Envelope], object], str], Adapter] = lambda deliver, name: MemoryAdapter(deliver),
    ) -> None:
        self.settings = settings
        self._adapter_factory = adapter_factory
        self._recovery_factory: Callable[[str], RecoveryStore] = self._memory_recovery
        self._namespaces: dict[str, Namespace] = {}
        self._nursery: trio.Nursery | None = None
        self.of("/")

    def of(self, name: str) -> Namespace:
        """The namespace called ``name``, created on first use."""
        if not name.startswith("/"):
            name = "/" + name
        namespace = self._namespaces.get(name)
        if namespace is None:
            namespace = self._namespaces[name] = Namespace(self, name)
        return namespace

    @property
    def main(self) -> Namespace:
        return self._namespaces["/"]

    @property
    def sockets(self) -> dict[str, Socket]:
        """The sockets of the main namespace, by id."""
        return self.main.sockets

    def on(self, event: str, handler: H | None = None) -> Any:
        return self.main.on(event, handler)

    def use(self, middleware: H) -> H:
        return self.main.use(middleware)

    def emit(self, event: str, *args: Any) -> int:
        return self.main.emit(event, *args)

    @property
    def volatile(self) -> BroadcastOperator:
        """``io.volatile.emit(...)``: the main namespace, skipping sockets that cannot take it at once."""
        return self.main.volatile

    def timeout(self, seconds: float) -> BroadcastOperator:
        """``await io.timeout(5).call(event, ...)``: ack every socket of the main namespace within ``seconds``."""
        return self.main.timeout(seconds)

    def to(self, rooms: RoomSpec) -> BroadcastOperator:
        return self.main.to(rooms)

    def on_server_side(self, event: str, handler: H | None = None) -> Any:
        """:meth:`Namespace.on_server_side` of the main namespace."""
        return self.main.on_server_side(event, handler)

    def server_side_emit(self, event: str, *args: Any) -> None:
        """:meth:`Namespace.server_side_emit` of the main namespace: to the app's other processes."""
        self.main.server_side_emit(event, *args)

    async def server_side_call(self, event: str, *args: Any, timeout: float = REQUEST_TIMEOUT) -> ServerSideReply:
        """:meth:`Namespace.server_side_call` of the main namespace."""
        return await self.main.server_side_call(event, *args, timeout=timeout)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """Every socket of the main namespace, in every process (``io.fetchSockets()``)."""
        return await self.main.fetch_sockets()

    def sockets_join(self, rooms: RoomSpec) -> None:
        """Every socket of the main namespace, in every process, joins ``rooms``."""
        self.main.sockets_join(rooms)

    def sockets_leave(self, rooms: RoomSpec) -> None:
        """Every socket of the main namespace, in every process, leaves ``rooms``."""
        self.main.sockets_leave(rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the main namespace, in every process."""
        self.main.disconnect_sockets(close)

    in_ = to

    def except_(self, rooms: RoomSpec) -> BroadcastOperator:
        return self.main.except_(rooms)

    def statistics(self) -> dict[str, Any]:
        """Counts for health checks and tests: sockets and rooms per namespace."""
        return {
            name: {"sockets": len(ns.sockets), "rooms": len(ns.adapter.rooms())} for name, ns in self._namespaces.items()
        }

    # ----------------------------------------------------------------------------------------- internals
    def use_adapter(self, factory: Callable[[Callable[[str, Envelope], object], str], Adapter]) -> None:
        """Keep rooms with adapters made by ``factory(deliver, namespace_name)`` (the Redis adapter), for
        every namespace; only before any socket connects, since memberships are not carried over."""
        if any(ns.sockets for ns in self._namespaces.values()):
            raise RuntimeError("change the rooms adapter before sockets connect")
        self._adapter_factory = factory
        for namespace in self._namespaces.values():
            namespace.adapter = factory(namespace._deliver, namespace.name)
            namespace.adapter.serve = namespace._serve

    def _memory_recovery(self, name: str) -> RecoveryStore:
        settings = self.settings
        return MemoryRecovery(settings.recovery_max_disconnection / 1000, settings.recovery_max_packets)

    def use_recovery(self, factory: Callable[[str], RecoveryStore]) -> None:
        """Keep recovery state in stores made by ``factory(namespace_name)`` (Redis) for every namespace
        (used when ``sockets.recovery`` is on); only before any socket connects."""
        if any(ns.sockets for ns in self._namespaces.values()):
            raise RuntimeError("change the recovery store before sockets connect")
        self._recovery_factory = factory
        for namespace in self._namespaces.values():
            namespace._recovery = None  # made again, by the factory, on first use

    def bind(self, nursery: trio.Nursery) -> None:
        """Give the server the nursery for work that outlives a connection (disconnect handlers)."""
        self._nursery = nursery

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def attach(self, session: Connection) -> _Connection:
        """Create the Socket.IO side of a new Engine.IO session (called by the transport)."""
        return _Connection(self, session)


class _Connection:
    """The Socket.IO side of one Engine.IO session: its namespace state machine
    (:class:`~trisails.protocol.socketio_connection.SocketIOConnection`), driven on trio. It runs each
    namespace's middleware and connection handlers in the session's nursery and routes packets to the
    namespace's :class:`Socket`."""

    def __init__(self, server: RealtimeServer, session: Connection) -> None:
        self.server = server
        self.session = session
        settings = server.settings
        self.state = SocketIOConnection(
            session.revision,
            now=trio.current_time(),
            connect_timeout=settings.connect_timeout / 1000,
            max_attachments=settings.max_attachments,
            max_payload=settings.max_payload,
            recovery=settings.recovery,
        )
        self.sockets: dict[str, Socket] = {}  # by namespace: admitted (its handlers may still run) or connected
        self._lingering: set[Socket] | None = None  # sockets whose dispatcher waits for more events
        self._linger_at: float | None = None  # when the timer next looks at them
        self._private_id: str | None = None  # revision 3 with sockets.private_sid: the ids' base, not the sid

    # MessageReceiver ---------------------------------------------------------------------------------
    def on_open(self) -> None:
        request = self.state.opened()  # Engine.IO v3 clients are connected to "/" without asking
        if request is not None:
            self._begin_connect(request)

    def next_deadline(self) -> float | None:
        deadline = self.state.next_deadline()
        linger = self._linger_at
        if linger is not None and (deadline is None or linger < deadline):
            return linger
        return deadline

    def handle_timer(self, now: float) -> None:
        if self.state.handle_timer(now):
            log.info("closing session %s: no namespace connected in time", self.session.sid)
            self.session.close("connect timeout", flush=False)
        lingering = self._lingering
        if lingering and self._linger_at is not None and now >= self._linger_at:
            for socket in [socket for socket in lingering if socket._linger_over(now)]:
                lingering.discard(socket)
            # a socket that was busy meanwhile lingers longer: look again when the first linger ends
            self._linger_at = min([socket._linger_until for socket in lingering], default=None)

    def linger(self, socket: Socket) -> None:
        """``socket``'s dispatcher waits for more events until ``socket._linger_until``: have the
        timer wake it then (lazily: a later linger of a socket already watched costs nothing here)."""
        if self._lingering is None:
            self._lingering = set()
        self._lingering.add(socket)
        if self._linger_at is None:
            self._linger_at = socket._linger_until
            self.session.timers_changed()

    def on_message(self, data: str | bytes) -> None:
        result = self.state.receive(data)
        if result is None:
            return
        if isinstance(result, ConnectRequest):
            self._begin_connect(result)
            return
        socket = self.sockets.get(result.namespace)
        if socket is not None:  # (an ack before the socket exists answers nothing anyone waits for)
            socket._receive(result)

    def on_close(self, reason: str) -> None:
        for socket in list(self.sockets.values()):
            socket._closed(reason)

    def forget(self, socket: Socket) -> None:
        """``socket`` has disconnected: its namespace is free again."""
        name = socket.namespace.name
        if self.sockets.get(name) is socket:
            del self.sockets[name]
            self.state.disconnect(name)

    # connecting --------------------------------------------------------------------------------------
    def _begin_connect(self, request: ConnectRequest) -> None:
        assert self.session.nursery is not None
        self.session.nursery.start_soon(self._connect, request)

    async def _connect(self, request: ConnectRequest) -> None:
        name = request.namespace
        namespace = self.server._namespaces.get(name)
        if namespace is None:
            self._send(self.state.no_such_namespace(name))
            return
        store = namespace.recovery if self.session.revision == 4 else None
        restored: Restored | None = None
        if store is not None and request.recovery is not None:
            restored = await store.restore(*request.recovery)
            if restored is not None and (restored.session.sid in namespace.sockets or self.session.closed):
                restored = None  # (a client cannot be connected twice as one socket)
        if restored is not None:
            socket = Socket(namespace, self, restored.session.sid, self._handshake(request.auth))
            socket.pid, socket.data, socket.recovered = restored.session.pid, restored.session.data, True
        else:
            socket = Socket(namespace, self, self._socket_id(name), self._handshake(request.auth))
            if store is not None:
                socket.pid = new_id()
        try:
            if restored is None or not self.server.settings.recovery_skip_middlewares:
                for middleware in namespace._middleware:
                    await call(middleware, socket)
        except ConnectionRefused as refusal:
            self._send(self.state.refuse(name, refusal.message, refusal.data))
            return
        except Exception:
            log.exception("connection middleware of %s failed", name)
            self._send(self.state.refuse(name, "Internal server error"))
            return
        if self.session.closed:
            return
        socket.connected = True
        self.sockets[name] = socket
        namespace._add(socket)
        if restored is not None:
            namespace.adapter.add_all(socket.id, restored.session.rooms)
            for envelope in restored.missed:  # before the CONNECT answer, as socket.io sends them
                self.session.send(envelope)
        self._send(self.state.accept(name, socket.id, socket.pid))
        for handler in namespace._on_connection:
            try:
                await call(handler, socket)
            except Exception:
                log.exception("connection handler of %s failed for socket %s", name, socket.id)
        for packet in self.state.ready(name):
            if not socket.connected:
                break
            try:
                socket._receive(packet)
            except ProtocolError as error:
                self.session.protocol_error(error.reason)
                return

    def _send(self, packet: sio.Packet) -> None:
        self.session.send(_envelope(packet))

    def _socket_id(self, name: str) -> str:
        """The id of this session's socket in namespace ``name``.

        Revision 4 (socket.io 3 and 4): a fresh id per namespace. Revision 3: the sid, ``name#sid``
        beyond ``/``, as socket.io 2 names them and its clients show them; with ``sockets.private_sid``
        a private id of the session's own in place of the sid, so a socket id the app shares does not
        name the Engine.IO session.
        """
        if self.session.revision == 3:
            if self.server.settings.private_sid:
                if self._private_id is None:
                    self._private_id = new_id()
                base = self._private_id
            else:
                base = self.session.sid
            return base if name == "/" else f"{name}#{base}"
        return new_id()

    def _handshake(self, auth: dict[str, Any]) -> SocketHandshake:
        engine = self.session.handshake
        return SocketHandshake(
            headers=engine.headers,
            query=engine.query,
            auth=auth,
            address=engine.address,
            url=engine.url,
            secure=engine.secure,
            time=engine.time,
            issued=engine.issued,
            xdomain=engine.xdomain,
        )
