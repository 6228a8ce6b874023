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

import inspect
from collections import deque
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._concurrency import Waiter, call, on_loop
from .._errors import AckTimeout, ConnectionRefused, DisconnectedError, ProtocolError, RoomLimitReached
from ..protocol import engineio as eio
from ..protocol import socketio as sio
from ..protocol.socketio_connection import ConnectRequest, SocketIOConnection
from ..protocol.engineio import Envelope
from .connection import Connection, new_id
from .rooms import Adapter, MemoryAdapter

if TYPE_CHECKING:
    from .._config import SocketSettings

__all__ = ["Ack", "BroadcastOperator", "Namespace", "RealtimeServer", "Socket", "SocketHandshake"]

log = logging.getLogger("trisails.realtime")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)
RoomSpec = str | Iterable[str]
EventsHandler = Callable[[str, list[Any], "Ack | None"], Awaitable[None] | None]

#: Seconds a socket's dispatcher waits for another event before it ends.
DISPATCHER_LINGER = 5.0

#: The inbox entry of a plain handler's coroutine result, awaited in turn by the dispatcher.
_AWAIT = "\x00await"

#: Event names a client may not trigger: they are the server's own lifecycle callbacks.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"})


def _room_set(rooms: RoomSpec) -> frozenset[str]:
    return frozenset((rooms,) if isinstance(rooms, str) else rooms)


def _envelope(packet: sio.Packet) -> Envelope:
    """Encode a Socket.IO packet once, as the Engine.IO messages that carry it."""
    return Envelope([eio.Packet(eio.PacketType.MESSAGE, part) for part in sio.encode(packet)])


def _ack_args(result: Any) -> list[Any]:
    """A handler's return value as ack arguments: None → none, a tuple → several, anything else → one."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


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
        envelope = _envelope(sio.Packet(sio.PacketType.ACK, socket.namespace.name, list(args), id=self._id))
        self.answered = True
        socket._connection.session.send(envelope)

    def __repr__(self) -> str:
        return f"<Ack {self._id} of socket {self._socket.id}{' answered' if self.answered else ''}>"


@dataclass(frozen=True)
class SocketHandshake:
    """How a socket connected, as Socket.IO's ``socket.handshake`` reports it."""

    headers: dict[str, str]
    query: dict[str, str]
    auth: dict[str, Any]
    address: str
    url: str
    secure: bool
    time: float
    issued: int
    xdomain: bool


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
        "room_changes",
        "_connection",
        "_events",
        "_hook_events",
        "_hook",
        "_any",
        "_on_disconnect",
        "_acks",
        "_next_ack",
        "_inbox",
        "_dispatching",
        "_waiting",
    )

    def __init__(self, namespace: Namespace, connection: _Connection, sid: str, handshake: SocketHandshake) -> None:
        self.id = sid
        self.namespace = namespace
        self.handshake = handshake
        self.data: dict[str, Any] = {}
        """Free for the application: anything it wants to remember about this socket."""
        self.connected = False
        self._connection = connection
        self._events: dict[str, Handler] = {}
        # the one handler of :meth:`on_events` and its event names (a pair, not a dict entry per name:
        # every socket of a Sails app has one, so an idle socket holds as little as possible)
        self._hook_events: frozenset[str] = frozenset()
        self._hook: EventsHandler | None = None
        self._any: list[Handler] = []
        self.room_changes = 0
        """How many times :meth:`join` or :meth:`leave` was called on this socket: compare it before and
        after some work to know whether that work changed the socket's rooms."""
        self._on_disconnect: list[Handler] = []
        self._acks: dict[int, Waiter] = {}
        self._next_ack = 0
        # Events waiting for their handler, and whether the dispatcher task is running: it is started
        # when an event has to wait and ends DISPATCHER_LINGER s after the last, so an idle socket holds
        # no task.
        self._inbox: deque[tuple[str, list[Any], int | None]] | None = None  # made when an event first waits
        self._dispatching = False
        self._waiting: trio.Event | None = None  # set while the dispatcher lingers for more events

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.namespace.name} {'connected' if self.connected else 'disconnected'}>"

    # ----------------------------------------------------------------------------------------- handlers
    def on(self, event: str, handler: H | None = None) -> Any:
        """Register ``handler`` for ``event`` (usable as a decorator).

        ``handler(*args)`` may be async. A socket's events are handled one at a time, in the order they
        arrived, as in Socket.IO; work that should not hold up the next event belongs in
        :meth:`start_soon`. If the client asked for an ack, the return value is sent back:
        ``None`` acks with no arguments, a tuple with several, anything else with one. The special event
        ``"disconnect"`` registers ``handler(reason)``, called once when the socket goes away.
        """

        def register(fn: H) -> H:
            if event == "disconnect":
                self._on_disconnect.append(fn)
            else:
                self._events[event] = fn
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

    async def call(self, event: str, *args: Any, timeout: float | None = ...) -> list[Any]:  # type: ignore[assignment]
        """Emit ``event`` and wait for the client's acknowledgement; return the ack's arguments.

        ``timeout`` (seconds) defaults to the ``sockets.ack_timeout`` setting. Raises :class:`AckTimeout`
        when it passes, :class:`DisconnectedError` if the socket goes away first.
        """
        if timeout is ...:
            timeout = self.namespace.server.settings.ack_timeout
        if not self.connected:
            raise DisconnectedError(f"socket {self.id} is not connected")
        ack_id = self._next_ack
        self._next_ack += 1
        waiter = self._acks[ack_id] = Waiter()
        self._send(sio.Packet(sio.PacketType.EVENT, self.namespace.name, [event, *args], id=ack_id))
        try:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                await waiter.done.wait()
        except trio.TooSlowError:
            raise AckTimeout(f"no ack for {event!r} from socket {self.id} within {timeout} s") from None
        finally:
            self._acks.pop(ack_id, None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.args

    def _send(self, packet: sio.Packet) -> None:
        self._connection.session.send(_envelope(packet))

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
        wanted = _room_set(rooms)
        current = self.namespace.adapter.socket_rooms(self.id)
        limit = self.namespace.server.settings.max_rooms_per_socket
        if len(current) + len(wanted - current) > limit:
            raise RoomLimitReached(
                f"socket {self.id} is in {len(current)} rooms; joining {len(wanted - current)} more would pass "
                f"sockets.max_rooms_per_socket ({limit}): leave some rooms first"
            )
        self.room_changes += 1
        self.namespace.adapter.add_all(self.id, wanted)

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
        self.namespace._remove(self)
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
            waiter = self._acks.pop(packet.id, None) if packet.id is not None else None
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
        if handler is None or inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)
        ):
            return False
        try:
            result = handler(*args)
        except Exception:
            log.exception("handler for %r on socket %s failed", event, self.id)
            return True
        if inspect.isawaitable(result):  # a plain function that returned a coroutine: await it in turn
            self._queue((_AWAIT, [result], ack_id))
            return True
        if ack_id is not None and self.connected:
            self._send(sio.Packet(sio.PacketType.ACK, self.namespace.name, _ack_args(result), id=ack_id))
        return True

    def _queue(self, entry: tuple[str, list[Any], int | None]) -> None:
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(entry)
        if self._waiting is not None:
            self._waiting.set()  # the dispatcher lingers: wake it rather than start another
        elif not self._dispatching:
            self._dispatching = True
            self.start_soon(self._dispatch)

    async def _dispatch(self) -> None:
        """Handle this socket's waiting events one at a time, in the order they arrived (as Socket.IO
        does). With none left it lingers a few seconds for the next (a busy socket keeps one task rather
        than starting one per event), then ends, so an idle socket holds no task."""
        try:
            while self.connected:
                while self._inbox and self.connected:
                    event, args, ack_id = self._inbox.popleft()
                    if event is _AWAIT:
                        await self._finish(args[0], event, ack_id)
                    else:
                        await self._run_handler(event, args, ack_id)
                self._waiting = trio.Event()
                with trio.move_on_after(DISPATCHER_LINGER):
                    await self._waiting.wait()
                self._waiting = None
                if not self._inbox:
                    self._inbox = None  # an idle socket keeps no inbox
                    return
        finally:
            self._waiting = None
            self._dispatching = False

    async def _finish(self, awaitable: Awaitable[Any], event: str, ack_id: int | None) -> None:
        try:
            result = await awaitable
        except Exception:
            log.exception("handler on socket %s failed", self.id)
            return
        if ack_id is not None and self.connected:
            self._send(sio.Packet(sio.PacketType.ACK, self.namespace.name, _ack_args(result), id=ack_id))

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
            result = await call(event_handler, *args)
        except Exception:
            log.exception("handler for %r on socket %s failed", event, self.id)
            return
        if ack_id is not None and self.connected:
            self._send(sio.Packet(sio.PacketType.ACK, self.namespace.name, _ack_args(result), id=ack_id))


class BroadcastOperator:
    """A broadcast target: some rooms (or everyone), minus some rooms. Immutable; each call narrows."""

    def __init__(self, namespace: Namespace, rooms: frozenset[str] = frozenset(), exclude: frozenset[str] = frozenset()):
        self._namespace = namespace
        self._rooms = rooms
        self._exclude = exclude

    def to(self, rooms: RoomSpec) -> BroadcastOperator:
        """Also target ``rooms``."""
        return BroadcastOperator(self._namespace, self._rooms | _room_set(rooms), self._exclude)

    in_ = to

    def except_(self, rooms: RoomSpec) -> BroadcastOperator:
        """Leave out every socket in ``rooms`` (a socket id is a room, so this can omit one socket)."""
        return BroadcastOperator(self._namespace, self._rooms, self._exclude | _room_set(rooms))

    @on_loop
    def emit(self, event: str, *args: Any) -> int:
        """Send ``event`` to every targeted socket, encoded once; return how many sockets it was queued to.

        Never waits for any member: a slow one meets the slow-consumer policy instead.
        """
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        envelope = _envelope(sio.Packet(sio.PacketType.EVENT, self._namespace.name, [event, *args]))
        return self._namespace.adapter.broadcast(envelope, self._rooms, self._exclude)

    def socket_ids(self) -> set[str]:
        """Ids of the sockets this broadcast would reach."""
        adapter = self._namespace.adapter
        return adapter.sockets(self._rooms) - (adapter.sockets(self._exclude) if self._exclude else set())

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every targeted socket."""
        for sid in self.socket_ids():
            socket = self._namespace.sockets.get(sid)
            if socket is not None:
                socket.disconnect(close)


class Namespace:
    """A namespace (``/`` by default): its sockets, its connection middleware and handlers, its rooms."""

    def __init__(self, server: RealtimeServer, name: str) -> None:
        self.server = server
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self.adapter: Adapter = server._adapter_factory(self._deliver, name)
        self._middleware: list[Handler] = []
        self._on_connection: list[Handler] = []

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

    def to(self, rooms: RoomSpec) -> BroadcastOperator:
        return BroadcastOperator(self, _room_set(rooms))

    in_ = to

    def except_(self, rooms: RoomSpec) -> BroadcastOperator:
        return BroadcastOperator(self, frozenset(), _room_set(rooms))

    def _deliver(self, sid: str, envelope: Envelope) -> None:
        socket = self.sockets.get(sid)
        if socket is not None:
            socket._connection.session.send(envelope)

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

    def to(self, rooms: RoomSpec) -> BroadcastOperator:
        return self.main.to(rooms)

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
        )
        self.sockets: dict[str, Socket] = {}  # by namespace: admitted (its handlers may still run) or connected
        self._private_id: str | None = None  # revision 3 with sockets.private_sid: the ids' base, not the sid

    # MessageReceiver ---------------------------------------------------------------------------------
    def on_open(self) -> None:
        request = self.state.opened()  # Engine.IO v3 clients are connected to "/" without asking
        if request is not None:
            self._begin_connect(request)

    def next_deadline(self) -> float | None:
        return self.state.next_deadline()

    def handle_timer(self, now: float) -> None:
        if self.state.handle_timer(now):
            log.info("closing session %s: no namespace connected in time", self.session.sid)
            self.session.close("connect timeout", flush=False)

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
        socket = Socket(namespace, self, self._socket_id(name), self._handshake(request.auth))
        try:
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
        self._send(self.state.accept(name, socket.id))
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
