"""The apps the compatibility stories run against, and a journal of what the server saw.

Everything is the reference app (``examples/socketio_reference``: ``auth`` greeting, ``message`` echoed as
``message-back``, ``message-with-ack`` acked with its arguments, on ``/`` and ``/custom``), plus what a story
needs on top of it. Its 300/200 ms heartbeat and 1 s connect timeout are for the heartbeat stories: on a
busy machine a 200 ms pong deadline is sometimes missed, so the other stories run with :data:`STEADY` timings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio

from tests.support.apps import reference_app
from tests.support.jsclient import JsDriver, JsSocket
from trisails import AckTimeout, App, DisconnectedError, RealtimeServer, Socket

T = TypeVar("T")

#: Heartbeat and connect timeout for the stories that are not about them.
STEADY: dict[str, Any] = {"ping_interval": 25000, "ping_timeout": 20000, "connect_timeout": 10000}

#: How long the server side of a story may take to do what the client just caused.
SERVER_WAIT = 5.0
#: How long the server waits for a client's ack: ample on loopback.
ASK_TIMEOUT = 1.5


def steady_reference_app(**sockets: Any) -> App:
    """The reference app with :data:`STEADY` timings (and ``sockets`` overrides)."""
    return reference_app(**{**STEADY, **sockets})


@asynccontextmanager
async def lifted(app: App, js: JsDriver) -> AsyncIterator[str]:
    """``app.lifted()`` for a story told with the clients of ``js``; yields the base URL.

    When the story ends well, its clients leave (``socket.disconnect()``) before the app lowers, as they
    would one by one in real life, so lowering does not race them. What a client sees when the app
    lowers under it is a story of its own (``test_when_the_app_lowers_...``).
    """
    async with app.lifted() as url:
        yield url
        async with trio.open_nursery() as nursery:
            for client in list(js.sockets.values()):
                nursery.start_soon(client.disconnect)
        with trio.move_on_after(1.0):  # and the server lets them go
            while app.statistics()["sessions"]:
                await trio.sleep(0.01)


class Journal(Generic[T]):
    """What the server saw, in order; a test waits (boundedly) for entries to appear."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.entries: list[T] = []
        self._grew = trio.Event()

    def record(self, entry: T) -> None:
        self.entries.append(entry)
        self._grew.set()
        self._grew = trio.Event()

    async def wait_for(self, count: int = 1, *, timeout: float = SERVER_WAIT) -> list[T]:
        """Wait until at least ``count`` entries are recorded; return them all."""
        with trio.move_on_after(timeout):
            while len(self.entries) < count:
                await self._grew.wait()
        assert len(self.entries) >= count, f"expected {count} {self.what} within {timeout:g} s, got {self.entries!r}"
        return self.entries

    async def first(self, predicate: Callable[[T], bool], *, timeout: float = SERVER_WAIT) -> T:
        """Wait until an entry satisfies ``predicate``; return the first that does."""
        with trio.move_on_after(timeout):
            while True:
                for entry in self.entries:
                    if predicate(entry):
                        return entry
                await self._grew.wait()
        raise AssertionError(f"no matching {self.what} within {timeout:g} s; got {self.entries!r}")

    def __len__(self) -> int:
        return len(self.entries)


@dataclass
class RealtimeApp:
    """The reference app with rooms and lifecycle events, and what its server saw."""

    app: App
    connections: Journal[Socket] = field(default_factory=lambda: Journal("connections"))
    disconnects: Journal[tuple[str, str]] = field(default_factory=lambda: Journal("disconnects (socket id, reason)"))

    @property
    def io(self) -> RealtimeServer:
        return self.app.io

    def socket(self, socket_id: str) -> Socket:
        """The server-side socket whose id is ``socket_id`` (in any namespace)."""
        for socket in self.connections.entries:
            if socket.id == socket_id:
                return socket
        seen = [socket.id for socket in self.connections.entries]
        raise AssertionError(f"the server saw no socket {socket_id!r}; it saw {seen}")

    async def disconnect_reason(self, socket_id: str, *, timeout: float = SERVER_WAIT) -> str:
        """Wait until the server ran the disconnect handler of ``socket_id``; return the reason it got."""
        _, reason = await self.disconnects.first(lambda entry: entry[0] == socket_id, timeout=timeout)
        return reason


def realtime_app(**sockets: Any) -> RealtimeApp:
    """The reference app (:data:`STEADY` timings unless ``sockets`` says otherwise), plus on ``/`` and ``/custom``:

    * ``join(room)`` / ``leave(room)``: the socket joins or leaves ``room``; acked with ``room``;
    * ``shout(room, *args)``: ``socket.to(room).emit("shout", *args)`` (everyone in the room but the sender);
    * ``ask-me(*question)``: the server asks the client ``question`` (``socket.call``) and acks with its answer;
    * ``kick-me``: ``socket.disconnect()`` from the server side;
    * ``bye(*last_words)``: emits ``farewell`` with them, then a moment later ``socket.disconnect(close=True)``;
    * every connection and every disconnect (with its reason) is recorded.
    """
    recorded = RealtimeApp(steady_reference_app(**sockets))

    def on_connection(socket: Socket) -> None:
        recorded.connections.record(socket)

        @socket.on("join")
        def join(room: str) -> str:
            socket.join(room)
            return room

        @socket.on("leave")
        def leave(room: str) -> str:
            socket.leave(room)
            return room

        @socket.on("shout")
        def shout(room: str, *args: Any) -> None:
            socket.to(room).emit("shout", *args)

        @socket.on("ask-me")
        async def ask_me(*question: Any) -> tuple[Any, ...]:
            return tuple(await socket.call("question", *question, timeout=ASK_TIMEOUT))

        @socket.on("kick-me")
        def kick_me() -> None:
            socket.disconnect()

        @socket.on("bye")
        async def bye(*last_words: Any) -> None:
            socket.emit("farewell", *last_words)
            await trio.sleep(0.002)  # the farewell is on its way (as if the app saved something meanwhile)
            socket.disconnect(close=True)

        @socket.on("disconnect")
        def gone(reason: str) -> None:
            recorded.disconnects.record((socket.id, reason))

    for name in ("/", "/custom"):
        recorded.app.io.of(name).on("connection", on_connection)
    return recorded


@dataclass
class AskingApp:
    """An app whose server asks every new socket a ``question`` and waits for the client's ack."""

    app: App
    answers: Journal[list[Any] | Exception] = field(default_factory=lambda: Journal("answers"))


def asking_app(*question: Any) -> AskingApp:
    """On connection: ``answer = await socket.call("question", *question)``; the answer (or the
    :class:`AckTimeout` / :class:`DisconnectedError` instead) is recorded."""
    asking = AskingApp(steady_reference_app())

    async def ask(socket: Socket) -> None:
        try:
            asking.answers.record(await socket.call("question", *question, timeout=ASK_TIMEOUT))
        except (AckTimeout, DisconnectedError) as error:
            asking.answers.record(error)

    asking.app.io.on("connection", ask)
    return asking


#: The transports every client story runs on; "upgrade" starts on polling and moves to websocket.
TRANSPORTS: dict[str, dict[str, Any]] = {
    "websocket": {"transports": ["websocket"]},
    "polling": {"transports": ["polling"]},
    "upgrade": {"transports": ["polling", "websocket"]},
}

#: Reconnect quickly if it ever does, so "it does not reconnect" is visible within a short wait.
EAGER_RECONNECTION = {"reconnectionDelay": 50, "reconnectionDelayMax": 100}


async def connect_on(js: JsDriver, kind: str, url: str, transport: str, **kwargs: Any) -> JsSocket:
    """A ``kind`` client on ``transport``; for "upgrade", returned once the client runs on websocket."""
    options = {**TRANSPORTS[transport], **kwargs.pop("options", {})}
    socket = await js.connect(kind, url, options=options, **kwargs)
    if transport == "upgrade":
        await socket.wait_for_transport("websocket")
    return socket
