"""The client: ``connect()``, the task tree it owns, and the sails.io.js surface on top.

Task tree
---------
``connect()`` is an async context manager around one nursery. Every task the client ever runs lives
in it, so leaving the ``async with`` block ends all of them; nothing outlives the block::

    connect()                        the client's nursery
    ├── Client._dispatch             runs event handlers one at a time, in arrival order
    └── Client._run                  the reconnect loop: one attempt after another, backoff between
        └── (Client._session)        a nursery per connection attempt, opened and closed by _run
            ├── trio-websocket's reader
            ├── Connection.read      frames → packets: pongs, acks, events for the dispatcher
            ├── Connection.watch     heartbeat watchdog: pingInterval + pingTimeout of silence = dead
            └── Connection.write     drains the outbox, once the connection is ready

Data flow
---------
Everything the application sends (requests, raw emits) goes through one bounded, ordered **outbox**
that outlives connections. While the client is (re)connecting nothing drains it, so requests wait in
it and go out in order once a connection is ready; when it is full, callers wait (backpressure). An
emit that asked for an ack is answered on the connection that sent it; when that connection ends, the
waiting caller gets :class:`~trisails.DisconnectedError`, because the new server socket knows nothing
of the old one's ack ids.

Events from the server go the other way through a bounded **inbox** to the dispatcher, together with
the lifecycle events ``connect``, ``disconnect`` and ``reconnect``, so handlers see everything in the
order it happened. Handlers are registered on the client, not on a connection, so they survive
reconnects.

Reconnecting
------------
A reconnect is a brand-new server socket: new id, no rooms. So the client remembers every request the
server answered with ``x-trisails-rejoin: 1`` (it made the socket join or leave a room; a repeated
request moves to the end) and, after each reconnect, repeats them in order and waits for their
answers *before* the outbox is released, so the socket ends up in the rooms it was in.
Requests the application queued meanwhile therefore find the socket back in its rooms.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import random
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, TypeVar, final, overload

import trio
import trio_websocket

from .._errors import AckTimeout, DisconnectedError
from ..protocol import socketio as sio
from ..protocol.socketio_connection import OFFSET
from .._concurrency import Waiter
from ._connection import CLOSE_TIMEOUT, MAX_MESSAGE_SIZE, AckWaiter, Connection, Outgoing, Target, frames_of
from ._errors import ConnectError
from ._jwr import JWR, Rejoin, virtual_request
from ._presence import EVENTS as PRESENCE_EVENTS
from ._presence import Presence, feed

__all__ = ["Backoff", "Client", "connect"]

log = logging.getLogger("trisails.client")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)

#: Events the client raises itself; one from the server with such a name is dropped, not delivered.
LIFECYCLE_EVENTS: Final = frozenset({"connect", "disconnect", "reconnect", "rejoin"})
#: Names an application may not emit: ours, and those a Socket.IO server keeps for itself and ignores.
RESERVED_EVENTS: Final = LIFECYCLE_EVENTS | {"connect_error", "disconnecting", "newListener", "removeListener"}
#: Disconnect reasons after which reconnecting would be wrong: the server or the application said so.
FINAL_REASONS: Final = frozenset({"io server disconnect", "io client disconnect", "connect error"})

OUTBOX_SIZE: Final = 1000
"""How many emits and requests may wait for a connection before callers wait for room."""
INBOX_SIZE: Final = 256
"""How many server events may wait for their handlers before the client stops reading the socket."""


@final
@dataclass(frozen=True)
class Backoff:
    """How long to wait between reconnect attempts: exponential, capped, with jitter.

    The n-th wait (``attempt`` counts from 0) is ``initial * 2**attempt`` capped at ``maximum``, then
    moved by up to ``jitter`` of itself either way, and never more than ``maximum``. The defaults
    (1 s doubling to 10 s, ±50 %) are socket.io-client's, with a longer cap. Jitter keeps a thousand
    clients of a restarted server from all coming back in the same instant.

    Args:
        initial: seconds before the first attempt after a connection is lost.
        maximum: the longest wait.
        jitter: the fraction (0 to 1) by which each wait is randomized.
        attempts: give up after this many failed attempts in a row; ``None`` retries forever.
    """

    initial: float = 1.0
    maximum: float = 10.0
    jitter: float = 0.5
    attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"Backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff jitter must be between 0 and 1, got {self.jitter}")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"Backoff attempts must be at least 1 (or None), got {self.attempts}")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt number ``attempt`` (0 for the first); ``rand`` gives [0, 1)."""
        base = min(self.maximum, self.initial * 2.0 ** min(attempt, 64))
        return max(0.0, min(self.maximum, base * (1 + self.jitter * (2 * rand() - 1))))


@dataclass(frozen=True)
class _Options:
    target: Target
    namespace: str
    auth: dict[str, Any] | None
    backoff: Backoff | None
    wait: bool
    connect_timeout: float
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class _Incoming:
    """An event for the dispatcher: from the server (with the connection to ack on) or a lifecycle one."""

    event: str
    args: list[Any]
    ack_id: int | None = None
    connection: Connection | None = None


@final
class Client:
    """A connection to a Sails or trisails server, kept alive: what sails.io.js calls a SailsSocket.

    Made by :func:`connect`, never directly. Every method is safe to call from any task of the
    program. Requests and emits made while the client is (re)connecting wait and go out in order once
    it is connected again; a request whose answer was lost with a dropped connection raises
    :class:`~trisails.DisconnectedError` (it may or may not have run on the server).

    Attributes:
        headers: default headers, sent with the websocket handshake (each reconnect included) and as
            defaults with every virtual request. Change them any time, e.g. to refresh a token.
    """

    def __init__(self, options: _Options, headers: Mapping[str, str] | None) -> None:
        self._options = options
        self.headers: dict[str, str] = dict(headers or {})
        self._handlers: dict[str, list[Handler]] = {}
        self._event_waiters: dict[str, list[Waiter]] = {}
        self._rejoins: dict[tuple[str, str, str, str], Rejoin] = {}
        self._ack_ids = itertools.count()
        self._outbox_in, self._outbox_out = trio.open_memory_channel[Outgoing](OUTBOX_SIZE)
        self._carried: Outgoing | None = None  # taken from the outbox by a writer whose connection ended
        self._inbox_in, self._inbox_out = trio.open_memory_channel[_Incoming](INBOX_SIZE)
        self._connection: Connection | None = None  # the current attempt, connected or not
        self._ready: Connection | None = None  # the connection whose namespace is connected
        self._retries = 0  # attempts since the last good connection; the "reconnect" event reports it
        self._ever_connected = False
        self._reconnects = 0
        self._closing = False
        self._sleep_scope: trio.CancelScope | None = None
        self._first_attempt = trio.Event()
        self._first_error: BaseException | None = None
        self._stopped = trio.Event()  # the reconnect loop has given up (or was told to stop)
        self._close_reason: str | None = None
        self._close_error: BaseException | None = None
        self._events_over = False  # the dispatcher delivered the last event it will ever get
        self._block_started = trio.Event()  # events wait for it, so handlers registered first see them all
        self._presences: dict[str, Presence] = {}  # room -> its synced presence
        self._pid: str | None = None  # connection state recovery: the server's private session id
        self._offset: str | None = None  # the offset of the last broadcast received
        self._recovered = False

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self.closed else "connecting"
        return f"<trisails.client.Client {self.id or '-'} {state}>"

    # ----------------------------------------------------------------------------------------- state
    @property
    def id(self) -> str | None:
        """The socket id the server gave this connection; ``None`` while not connected."""
        return self._ready.sid if self._ready is not None else None

    @property
    def recovered(self) -> bool:
        """Whether the last (re)connection recovered the server-side socket (a server with
        ``sockets.recovery``): same id, rooms and ``data``, and the broadcasts missed meanwhile were
        delivered. False after a reconnection that got a new socket (its rooms were joined again by
        repeating requests: see ``rejoin``)."""
        return self._recovered

    @property
    def connected(self) -> bool:
        """Whether the namespace is connected right now."""
        return self._ready is not None and self._ready.connected

    @property
    def closed(self) -> bool:
        """Whether the client has stopped for good (see :meth:`wait_closed`)."""
        return self._stopped.is_set()

    async def wait_closed(self) -> None:
        """Wait until the client stops for good: the server disconnected it (``41``), refused it, or it
        lost the connection with reconnection off or out of attempts. A bot can park here."""
        await self._stopped.wait()

    @property
    def rejoins(self) -> list[tuple[str, str]]:
        """``(method, url)`` of each request repeated after a reconnect, in the order they are sent."""
        return [(rejoin.method, rejoin.url) for rejoin in self._rejoins.values()]

    def statistics(self) -> dict[str, Any]:
        """How the client is doing: queued emits, acks awaited, rejoin requests, reconnects so far."""
        connection = self._connection
        return {
            "connected": self.connected,
            "queued": self._outbox_in.statistics().current_buffer_used + (self._carried is not None),
            "in_flight": len(connection.acks) if connection is not None else 0,
            "rejoins": len(self._rejoins),
            "reconnects": self._reconnects,
        }

    # ----------------------------------------------------------------------------------------- requests
    async def request(
        self, method: str, url: str, data: Any = None, headers: Mapping[str, Any] | None = None
    ) -> tuple[Any, JWR]:
        """Make a virtual request, exactly as sails.io.js does; return ``(body, jwr)``.

        An error status does not raise: check ``jwr.error`` or call ``jwr.raise_for_status()``. There is
        no timeout of its own; wrap the call in :func:`trio.fail_after` to bound it.

        Raises:
            DisconnectedError: the connection dropped before the answer came, or the client is closed.
            ValueError: ``method`` is not one a Sails server answers.
        """
        request = virtual_request(method, url, data, headers, self.headers)
        item = await self._submit(request["method"], [request], ack=True)
        jwr = JWR.from_ack(await self._ack(item))
        if jwr.rejoin and jwr.error is None:
            rejoin = Rejoin(request["method"], url, request["data"], dict(headers or {}))
            # Latest last: replaying "join a, leave a, join a" as "leave a, join a" ends in the same rooms.
            self._rejoins.pop(rejoin.key(), None)
            self._rejoins[rejoin.key()] = rejoin
        return jwr.body, jwr

    async def get(self, url: str, data: Any = None, headers: Mapping[str, Any] | None = None) -> tuple[Any, JWR]:
        """``GET url``; see :meth:`request`."""
        return await self.request("get", url, data, headers)

    async def post(self, url: str, data: Any = None, headers: Mapping[str, Any] | None = None) -> tuple[Any, JWR]:
        """``POST url``; see :meth:`request`."""
        return await self.request("post", url, data, headers)

    async def put(self, url: str, data: Any = None, headers: Mapping[str, Any] | None = None) -> tuple[Any, JWR]:
        """``PUT url``; see :meth:`request`."""
        return await self.request("put", url, data, headers)

    async def patch(self, url: str, data: Any = None, headers: Mapping[str, Any] | None = None) -> tuple[Any, JWR]:
        """``PATCH url``; see :meth:`request`."""
        return await self.request("patch", url, data, headers)

    async def delete(self, url: str, data: Any = None, headers: Mapping[str, Any] | None = None) -> tuple[Any, JWR]:
        """``DELETE url``; see :meth:`request`."""
        return await self.request("delete", url, data, headers)

    # ----------------------------------------------------------------------------------------- raw events
    @overload
    async def emit(self, event: str, *args: Any, ack: Literal[True]) -> list[Any]: ...
    @overload
    async def emit(self, event: str, *args: Any, ack: Literal[False] = ...) -> None: ...

    async def emit(self, event: str, *args: Any, ack: bool = False) -> list[Any] | None:
        """Send a raw Socket.IO event with ``args`` (JSON values; ``bytes`` go as binary attachments).

        Without ``ack`` this returns once the event is queued (it waits only while the outbox is full).
        With ``ack=True`` it waits for the server's acknowledgement and returns its arguments, like
        :meth:`call` without a timeout.
        """
        item = await self._submit(event, list(args), ack=ack)
        return await self._ack(item) if ack else None

    async def call(self, event: str, *args: Any, timeout: float | None = None) -> list[Any]:
        """Emit ``event`` and wait for the server's acknowledgement; return its arguments.

        Raises:
            AckTimeout: no acknowledgement within ``timeout`` seconds.
            DisconnectedError: the connection dropped first, or the client is closed.
        """
        item = await self._submit(event, list(args), ack=True)
        with trio.move_on_after(math.inf if timeout is None else timeout):
            return await self._ack(item)
        raise AckTimeout(f"no ack for {event!r} within {timeout} s")

    @overload
    def on(self, event: str) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...

    def on(self, event: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Call ``handler(*args)`` for every ``event`` from the server; a decorator too.

        ``handler`` may be sync or async. Handlers run one at a time in the order events arrived, so a
        slow one delays the rest (start a task for long work). Several handlers may share an event;
        they run in registration order. If the server asked for an acknowledgement, it gets the first
        handler's return value (``None``: no arguments, a tuple: several, anything else: one). A
        handler that raises is logged and the client goes on. A handler may await a request: acks are
        read by the connection, not queued behind the handlers.

        Lifecycle events: ``connect()`` on every (re)connection, ``disconnect(reason)`` when a
        connection is lost (``"transport close"``, ``"ping timeout"``, ``"io server disconnect"``, ...),
        ``reconnect(attempts)`` after a connection that replaced a lost one (:attr:`recovered` says
        whether it is the same server socket), and, after a reconnection that was not recovered,
        ``rejoin(body, jwr, method, url)`` with the fresh answer of each request repeated to join its
        rooms again, so the application can refresh what it shows.

        No event is delivered before the ``async with`` block starts: handlers registered at its top,
        before its first ``await``, see every event from the first ``connect`` on (with ``wait=True``
        too, and including what the server sent as soon as the socket connected).

        Handlers belong to the client, not to a connection: they survive reconnects.
        """

        def register(fn: H) -> H:
            self._handlers.setdefault(event, []).append(fn)
            return fn

        return register(handler) if handler is not None else register

    def presence(self, room: str) -> Presence:
        """The synced presence of ``room`` (one per room): the client keeps one for every room the server
        sends presence events for, so this may be called before or after the request that tracked or
        subscribed the socket. See ``docs/howto/presence.md``."""
        found = self._presences.get(room)
        if found is None:
            found = self._presences[room] = Presence(self, room)
        return found

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` from ``event``, or every handler of ``event`` if none is given."""
        if handler is None:
            self._handlers.pop(event, None)
            return
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    async def wait_for(self, event: str, *, timeout: float | None = None) -> list[Any]:
        """Wait for the next ``event`` (from the server, or a lifecycle event) and return its arguments.

        Only events delivered after the call count (events are delivered in order, one at a time, so an
        event still queued for its handlers counts). Meant for tests and simple bots; anything
        long-lived should use :meth:`on`.

        Raises:
            trio.TooSlowError: nothing within ``timeout`` seconds.
            DisconnectedError: the client closed for good first.
        """
        if self._events_over:
            raise self._closed_error()
        waiter = Waiter()
        waiters = self._event_waiters.setdefault(event, [])
        waiters.append(waiter)
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                await waiter.done.wait()
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
        if waiter.error is not None:
            raise waiter.error
        return waiter.args

    # ----------------------------------------------------------------------------------------- sending
    async def _submit(self, event: str, args: list[Any], *, ack: bool) -> Outgoing:
        """Encode an emit and queue it in the outbox, waiting for room if it is full."""
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is a reserved event name")
        if self.closed:
            raise self._closed_error()
        ack_id = next(self._ack_ids) if ack else None
        packet = sio.Packet(sio.PacketType.EVENT, self._options.namespace, [event, *args], id=ack_id)
        item = Outgoing(frames_of(packet), ack_id, AckWaiter() if ack else None)
        try:
            await self._outbox_in.send(item)
        except trio.BrokenResourceError:
            raise self._closed_error() from None
        return item

    async def _ack(self, item: Outgoing) -> list[Any]:
        """Wait for the answer to a queued emit; a caller cancelled meanwhile takes the emit back."""
        waiter = item.waiter
        assert waiter is not None
        try:
            await waiter.done.wait()
        finally:
            if not waiter.done.is_set():
                item.abandon()
        if waiter.error is not None:
            raise waiter.error
        return waiter.args

    def _closed_error(self) -> DisconnectedError:
        error = DisconnectedError(f"the client is closed ({self._close_reason or 'closing'})")
        error.__cause__ = self._close_error
        return error

    # ----------------------------------------------------------------------------------------- events
    async def _incoming(self, event: str, args: list[Any], ack_id: int | None, connection: Connection) -> None:
        """Called by a connection's reader for each event; waits while the inbox is full."""
        if event in LIFECYCLE_EVENTS:
            log.debug("dropping a server event named %r, which is a client lifecycle event", event)
            return
        if connection.pid is not None and args and isinstance(args[-1], str) and OFFSET.fullmatch(args[-1]):
            self._offset = args.pop()  # a broadcast's recovery offset: remembered, not the handlers' business
        await self._inbox_in.send(_Incoming(event, args, ack_id, connection))

    async def _lifecycle(self, event: str, *args: Any) -> None:
        await self._inbox_in.send(_Incoming(event, list(args)))

    async def _dispatch(self) -> None:
        """Deliver events to their handlers and waiters, one at a time, until the client closes.

        Nothing is delivered before the ``async with`` block starts, so handlers registered at its top
        (before its first ``await``) see every event, the first ``connect`` included.
        """
        try:
            await self._block_started.wait()
            async with self._inbox_out:
                async for incoming in self._inbox_out:
                    await self._deliver(incoming)
        finally:  # the client gave up, or its block is over: nothing more will ever be delivered
            self._events_over = True
            for waiters in self._event_waiters.values():
                for waiter in waiters:
                    waiter.fail(self._closed_error())

    async def _deliver(self, incoming: _Incoming) -> None:
        if incoming.event in PRESENCE_EVENTS:  # before the app's handlers, so they see the synced state
            await feed(self._presences, self.presence, incoming.event, incoming.args)
        handlers = list(self._handlers.get(incoming.event, ()))
        answer: Any = None
        answered = False
        for position, handler in enumerate(handlers):
            try:
                result = handler(*incoming.args)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("handler %r for event %r failed", handler, incoming.event)
                continue
            if position == 0:
                answer, answered = result, True
        for waiter in self._event_waiters.pop(incoming.event, []):
            waiter.resolve(incoming.args)
        connection = incoming.connection
        if incoming.ack_id is not None and answered and connection is not None:
            args = [] if answer is None else list(answer) if isinstance(answer, tuple) else [answer]
            packet = sio.Packet(sio.PacketType.ACK, self._options.namespace, args, id=incoming.ack_id)
            await connection.send(frames_of(packet))  # on the connection the question came on, or not at all

    # ----------------------------------------------------------------------------------------- connecting
    async def _run(self) -> None:
        """The reconnect loop: connect, live, and when the connection is lost, wait and try again."""
        options = self._options
        error: BaseException | None = None
        reason = "closing"
        try:
            while not self._closing:
                connection = await self._session()
                reason = connection.reason or "transport close"
                error = connection.error
                if connection.namespace_connected.is_set():
                    await self._lifecycle("disconnect", reason)
                elif error is None:
                    error = ConnectError(f"could not connect: {reason}")
                if self._closing or reason in FINAL_REASONS:
                    break
                if not self._ever_connected and options.wait:
                    break  # the first attempt failed: connect() raises its error
                backoff = options.backoff
                if backoff is None or (backoff.attempts is not None and self._retries >= backoff.attempts):
                    break
                delay = backoff.delay(self._retries)
                self._retries += 1
                log.info("connection lost (%s); reconnecting in %.2f s", reason, delay)
                with trio.CancelScope() as self._sleep_scope:
                    await trio.sleep(delay)
                self._sleep_scope = None
        finally:
            self._give_up(reason, error)

    async def _session(self) -> Connection:
        """One connection attempt, from TCP connect to close; returns the ended connection."""
        options = self._options
        connection = Connection(self, namespace=options.namespace, connect_timeout=options.connect_timeout)
        self._connection = connection
        try:
            async with trio.open_nursery() as nursery:
                connection.attach(nursery)
                with connection.body_scope:
                    await self._open(connection, nursery)
                    await self._repeat_rejoins(connection)
                    nursery.start_soon(connection.write)
                    await trio.sleep_forever()
                # Only a graceful end gets here: the application is leaving the `async with` block.
                await connection.say_goodbye()
                nursery.cancel_scope.cancel()
        except* trio.TooSlowError:
            connection.end("transport error", ConnectError(f"no connection within {options.connect_timeout} s"))
        except* trio_websocket.ConnectionRejected as group:
            rejected = group.exceptions[0]
            assert isinstance(rejected, trio_websocket.ConnectionRejected)
            body = (rejected.body or b"").decode("utf-8", "replace")
            connection.end("transport error", _caused(ConnectError(f"websocket refused: HTTP {rejected.status_code} {body}"), rejected))
        except* (OSError, trio.BrokenResourceError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed) as group:
            cause = group.exceptions[0]
            connection.end("transport error", _caused(ConnectError(f"could not connect: {cause!r}"), cause))
        finally:
            if self._connection is connection:
                self._connection = None
            if self._ready is connection:
                self._ready = None
            await connection.close()
        return connection

    async def _open(self, connection: Connection, nursery: trio.Nursery) -> None:
        """TCP, the websocket upgrade, Engine.IO's open packet, then the namespace: all within the timeout."""
        options = self._options
        target = options.target
        with trio.fail_after(options.connect_timeout):
            connection.stream = await target.open_stream(self._options.ssl_context)
            connection.ws = await trio_websocket.wrap_client_stream(
                nursery,
                connection.stream,
                target.host_header,
                target.resource,
                extra_headers=[(name.encode(), str(value).encode()) for name, value in self.headers.items()],
                max_message_size=MAX_MESSAGE_SIZE,
            )
            nursery.start_soon(connection.read)
            await connection.opened.wait()
            nursery.start_soon(connection.watch)
            auth = options.auth
            if self._pid is not None:  # ask to recover the socket we had (auth keys win, as in socket.io-client)
                recovery = {"pid": self._pid} if self._offset is None else {"pid": self._pid, "offset": self._offset}
                auth = {**recovery, **(auth or {})}
            connect = sio.Packet(sio.PacketType.CONNECT, options.namespace, auth)
            await connection.send(frames_of(connect))
            await connection.namespace_connected.wait()

    async def _namespace_connected(self, connection: Connection) -> None:
        """Called by the reader on CONNECT, so ``connect`` is dispatched before the events that follow it."""
        self._ready = connection
        self._recovered = connection.pid is not None and connection.pid == self._pid
        self._pid = connection.pid
        if not self._recovered:
            self._offset = None
        reconnected = self._ever_connected
        self._ever_connected = True
        if not self._first_attempt.is_set():
            self._first_attempt.set()
        await self._lifecycle("connect")
        if reconnected:
            self._reconnects += 1
            await self._lifecycle("reconnect", max(self._retries, 1))
        self._retries = 0

    async def _repeat_rejoins(self, connection: Connection) -> None:
        """Send the remembered room-joining requests again and wait for their answers (bounded)."""
        if not self._rejoins or self._recovered:
            return  # (a recovered socket is still in its rooms)
        pending: list[tuple[Rejoin, AckWaiter]] = []
        frames: list[str | bytes] = []
        for rejoin in list(self._rejoins.values()):
            request = virtual_request(rejoin.method, rejoin.url, rejoin.data, rejoin.headers, self.headers)
            ack_id = next(self._ack_ids)
            waiter = connection.acks[ack_id] = AckWaiter()
            frames += frames_of(sio.Packet(sio.PacketType.EVENT, self._options.namespace, [rejoin.method, request], id=ack_id))
            pending.append((rejoin, waiter))
        if not await connection.send(frames):
            return
        with trio.move_on_after(self._options.connect_timeout) as timer:
            for rejoin, waiter in pending:
                await waiter.done.wait()
                if waiter.error is not None:
                    continue
                answer = JWR.from_ack(waiter.args)
                await self._lifecycle("rejoin", answer.body, answer, rejoin.method, rejoin.url)
                if answer.error is not None:
                    log.warning("repeating %s %s after a reconnect failed: %s", rejoin.method, rejoin.url, answer.error)
                elif not answer.rejoin:  # it changes no room any more: stop repeating it
                    self._rejoins.pop(rejoin.key(), None)
        if timer.cancelled_caught:
            log.warning("the requests repeated after a reconnect were not all answered in time")

    # ----------------------------------------------------------------------------------------- closing
    def _give_up(self, reason: str, error: BaseException | None) -> None:
        """Stop for good: fail whatever still waits to be sent, and let the dispatcher finish."""
        self._close_reason = reason
        self._close_error = error
        self._ready = None
        if not self._first_attempt.is_set():
            self._first_error = error or ConnectError(f"could not connect: {reason}")
            self._first_attempt.set()
        queued = [self._carried] if self._carried is not None else []
        self._carried = None
        while True:
            try:
                queued.append(self._outbox_out.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        self._outbox_out.close()  # callers waiting for room, or arriving later, get DisconnectedError
        for item in queued:
            if item.waiter is not None:
                item.waiter.fail(self._closed_error())
        self._inbox_in.close()  # the dispatcher delivers what is left, then fails wait_for() callers
        self._stopped.set()

    async def _wait_first(self) -> None:
        await self._first_attempt.wait()
        if self._first_error is not None:
            raise self._first_error

    async def _aclose(self) -> None:
        """Stop the reconnect loop: a live connection says goodbye first (bounded by the caller)."""
        self._closing = True
        if self._sleep_scope is not None:
            self._sleep_scope.cancel()
        if self._connection is not None:
            self._connection.end("io client disconnect", graceful=True)
        await self._stopped.wait()


def _caused(error: ConnectError, cause: BaseException) -> ConnectError:
    error.__cause__ = cause
    return error


@asynccontextmanager
async def connect(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    query: str | Mapping[str, Any] | None = None,
    namespace: str = "/",
    auth: dict[str, Any] | None = None,
    path: str = "/socket.io",
    reconnection: bool | Backoff = True,
    wait: bool = True,
    connect_timeout: float = 20.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Client]:
    """Connect to a Sails or trisails server for the duration of an ``async with`` block.

    ::

        async with trisails.client.connect("http://127.0.0.1:1337") as io:
            body, jwr = await io.get("/say/hello")

    The block owns every task the client runs (see the module docstring). Leaving it, however it is
    left, closes the connection politely (``41``, then a websocket close) and cancels the rest.

    Args:
        url: the server's base URL, ``http(s)://`` or ``ws(s)://``, with no path.
        headers: sent with the websocket handshake (cookie, authorization, ...) and as default headers of
            every virtual request; see :attr:`Client.headers`.
        query: more handshake query parameters, a string or a mapping; they come after the SDK's.
        namespace: the Socket.IO namespace to connect; sails.io.js only ever uses ``/``.
        auth: the CONNECT payload (Socket.IO v5 ``auth``), which the server sees as ``socket.handshake.auth``.
        path: where the server mounts Engine.IO.
        reconnection: ``True`` to reconnect with the default :class:`Backoff`, a ``Backoff`` to tune it,
            ``False`` never to reconnect. A server that disconnects the client (``41``) or refuses it is
            never reconnected to.
        wait: ``True`` enters the block once connected and raises if that first attempt fails.
            ``False`` enters at once and connects in the background (retrying a failed first attempt
            too, if reconnection is on); requests made meanwhile wait in the outbox.
        connect_timeout: seconds one attempt may take: TCP, websocket upgrade and both handshakes.
        ssl_context: for an ``https``/``wss`` URL, the TLS context to check the server with (one that
            trusts your own authority: ``ssl.create_default_context(cafile="ca.pem")``); by default the
            system's trusted authorities.

    Raises:
        ConnectError: with ``wait``, the server could not be reached.
        ConnectionRefused: with ``wait``, the server refused the namespace connection.
    """
    if not namespace.startswith("/"):
        raise ValueError(f"a namespace starts with '/', not {namespace!r}")
    options = _Options(
        target=Target.parse(url, path=path, query=query),
        namespace=namespace,
        auth=auth,
        backoff=Backoff() if reconnection is True else reconnection or None,
        wait=wait,
        connect_timeout=connect_timeout,
        ssl_context=ssl_context,
    )
    client = Client(options, headers)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client._dispatch)
            nursery.start_soon(client._run)
            try:
                if wait:
                    await client._wait_first()
                client._block_started.set()
                yield client
            finally:
                with trio.move_on_after(2 * CLOSE_TIMEOUT, shield=True):
                    await client._aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _raise_alone(group)


def _raise_alone(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise a lone error from the client's nursery as itself, not wrapped in a group.

    The client's own tasks never raise for anything that can happen on a network, so a group with one
    exception holds the application's own error (or ``ConnectError`` from the first attempt); users
    should be able to catch it with a plain ``except``. Its ``__context__`` is kept as it was, so the
    traceback does not show the group twice.
    """
    if len(group.exceptions) != 1:
        raise group
    error = group.exceptions[0]
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context
        del error, context
