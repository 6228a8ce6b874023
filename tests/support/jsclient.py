"""Real JavaScript Socket.IO clients, driven from pytest-trio tests.

trisails has to be wire-compatible with clients we do not control, so the conformance tests talk to the
server through the genuine libraries: ``socket.io-client`` 4.8.1 (Engine.IO rev 4), ``socket.io-client``
2.0.3 (Engine.IO rev 3) and ``sails.io.js`` 1.2.1 on top of 2.0.3. They run inside one long-lived Node
process, ``tests/js/driver.js``, which this module starts and speaks to in JSON lines (the protocol is
documented at the top of ``driver.js``). A test reads like a user story::

    async with open_js_driver() as js:
        alice = await js.connect("v4", url, options={"transports": ["websocket"]})
        assert await alice.emit("message-with-ack", 1, "2", {"3": b"\\x04"}, ack=True) == [1, "2", {"3": b"\\x04"}]
        await alice.emit("message", 1)
        assert await alice.next_event("message-back") == [1]

        bob = await js.connect("sails", url, listen=["chat"])
        body, jwr = await bob.get("/hello")
        assert jwr.status_code == 200
        await alice.disconnect()

Conventions:

* Every wait is bounded: ``timeout`` (seconds) on each call, defaulting to the driver's ``timeout``
  (10 s). Running out raises :class:`JsWaitTimeout`, which names the socket, what was awaited and what
  the socket did receive meanwhile.
* Binary values are Python ``bytes`` on this side and Node ``Buffer`` objects on the client side (they
  travel as ``{"$bin": "<base64>"}``; a dict of exactly that shape cannot be sent as plain data).
  JavaScript ``Error`` objects (e.g. the argument of ``connect_error``) arrive as :class:`JsError`.
* Every event a client receives is buffered per socket, in order, until a test takes it with
  :meth:`JsSocket.next_event` / :meth:`JsSocket.receive`. Taking events of one name leaves the others
  in the buffer. v2 and v4 sockets report every event; sails sockets report the lifecycle events
  (``connect``, ``disconnect``, ...) plus the events subscribed with ``listen`` (sails.io.js apps only
  see events they registered with ``io.socket.on``).

The Node packages come from ``tests/js/package-lock.json``: run ``npm ci --prefix tests/js`` once.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NoReturn

import trio

__all__ = [
    "DEFAULT_TIMEOUT",
    "ClientKind",
    "EngineState",
    "JsAckTimeout",
    "JsClientsNotInstalled",
    "JsCommandFailed",
    "JsConnectError",
    "JsDisconnected",
    "JsDriver",
    "JsDriverCrashed",
    "JsDriverError",
    "JsError",
    "JsSocket",
    "JsWaitTimeout",
    "Jwr",
    "ReceivedEvent",
    "open_js_driver",
]

#: ``tests/js``: the driver script and its npm lock file.
JS_DIR = Path(__file__).resolve().parent.parent / "js"
DRIVER_SCRIPT = JS_DIR / "driver.js"
#: The packages ``driver.js`` loads; all come from ``npm ci --prefix tests/js``.
REQUIRED_PACKAGES = ("sails.io.js", "socket.io-client", "socket.io-client-v4")

#: Seconds any single wait may take unless the call says otherwise.
DEFAULT_TIMEOUT = 10.0
#: Extra seconds the Python side waits beyond a deadline the driver enforces itself, so that the
#: driver's more precise error (e.g. "connect_timeout", "ack_timeout") is the one that arrives.
_GRACE = 2.0

ClientKind = Literal["v4", "v2", "sails"]
"""``"v4"``: socket.io-client 4.8.1; ``"v2"``: socket.io-client 2.0.3; ``"sails"``: sails.io.js 1.2.1."""


# --------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------
class JsDriverError(Exception):
    """Base class of everything this module raises on purpose."""


class JsClientsNotInstalled(JsDriverError):
    """``tests/js/node_modules`` is missing (or ``node`` is): run ``npm ci --prefix tests/js``."""


class JsDriverCrashed(JsDriverError):
    """The Node driver process exited or broke its protocol; the message ends with its stderr."""


class JsWaitTimeout(JsDriverError, trio.TooSlowError):
    """A bounded wait ran out: no such event, no ack, or no reply from the driver in time."""


class JsCommandFailed(JsDriverError):
    """The driver answered a command with ``ok: false``.

    Attributes:
        code: the driver's error code (``"connect_error"``, ``"ack_timeout"``, ``"disconnected"``,
            ``"bad_command"``, ``"no_such_socket"``, ``"exception"``, ...).
        details: extra data the driver sent along, decoded (binary as bytes, errors as :class:`JsError`).
    """

    def __init__(self, message: str, *, code: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class JsConnectError(JsCommandFailed):
    """The client could not connect (``connect_error``, or the 2.x clients' ``error`` / ``connect_timeout``).

    :attr:`error` is what the client reported: a :class:`JsError` for socket.io-client 4 (its ``data``
    holds the server's ``ConnectionRefused`` data) and for transport failures, or the raw ERROR packet
    payload (a string or an object) for a namespace refusal seen by the 2.x clients.
    """

    @property
    def error(self) -> Any:
        return self.details.get("error") if isinstance(self.details, dict) else None


class JsAckTimeout(JsCommandFailed):
    """The client gave up waiting for an ack (``ack_timeout=`` on :meth:`JsSocket.emit`)."""


class JsDisconnected(JsCommandFailed):
    """The socket disconnected while an ack or a sails request was pending.

    For sails requests :attr:`jwr` is the stand-in response sails.io.js passes to the callback
    (``statusCode`` 0, ``body`` None).
    """

    @property
    def jwr(self) -> Jwr | None:
        raw = self.details.get("jwr") if isinstance(self.details, dict) else None
        return Jwr.from_wire(raw) if isinstance(raw, dict) else None


_ERRORS_BY_CODE: dict[str, type[JsCommandFailed]] = {
    "connect_error": JsConnectError,
    "connect_timeout": JsConnectError,
    "ack_timeout": JsAckTimeout,
    "disconnected": JsDisconnected,
}


# --------------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JsError:
    """A JavaScript ``Error`` as a client reported it (e.g. the argument of ``connect_error``)."""

    name: str
    message: str
    data: Any = None
    type: str | None = None
    description: Any = None
    code: Any = None


@dataclass(frozen=True)
class Jwr:
    """The JSON WebSocket Response sails.io.js hands to a request callback (``jwr.toPOJO()`` + ``error``).

    ``status_code`` defaults to 200 on the client when the server sends none; ``error`` is the message
    of ``jwr.error``, which sails.io.js sets for status codes outside 200..399.
    """

    body: Any
    headers: dict[str, Any]
    status_code: int | None
    error: str | None = None

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Jwr:
        return cls(
            body=from_js(raw.get("body")),
            headers=from_js(raw.get("headers") or {}),
            status_code=raw.get("statusCode"),
            error=raw.get("error"),
        )


@dataclass(frozen=True)
class EngineState:
    """What the client's Engine.IO layer looks like right now."""

    transport: str | None  # "websocket" | "polling"
    socket_id: str | None  # socket.id (Socket.IO); None while disconnected
    sid: str | None  # the Engine.IO session id
    connected: bool
    ready_state: str | None  # engine readyState: "opening" | "open" | "closing" | "closed"
    recovered: bool = False  # socket.recovered (socket.io-client 4): the last connection recovered its state


def to_js(value: Any) -> Any:
    """A Python value → the driver's JSON convention (``bytes`` become ``{"$bin": base64}``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bin": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(key): to_js(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_js(item) for item in value]
    return value


def from_js(value: Any) -> Any:
    """The driver's JSON convention → Python (``{"$bin": ...}`` → bytes, ``{"$error": ...}`` → JsError)."""
    if isinstance(value, list):
        return [from_js(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            if isinstance(value.get("$bin"), str):
                return base64.b64decode(value["$bin"])
            if isinstance(value.get("$error"), dict):
                raw = value["$error"]
                return JsError(
                    name=raw.get("name", "Error"),
                    message=raw.get("message", ""),
                    data=from_js(raw.get("data")),
                    type=raw.get("type"),
                    description=raw.get("description"),
                    code=raw.get("code"),
                )
        return {key: from_js(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class ReceivedEvent:
    """One event a client received. If the server asked for an ack, answer it with :meth:`ack`."""

    socket: JsSocket = field(repr=False, compare=False)
    event: str
    args: list[Any]
    ack_token: int | None = None

    @property
    def wants_ack(self) -> bool:
        """True when the server sent this event with an ack id (a callback)."""
        return self.ack_token is not None

    async def ack(self, *args: Any, timeout: float | None = None) -> None:
        """Call the client-side ack callback with ``args``: the server's callback receives them."""
        if self.ack_token is None:
            raise JsDriverError(f"{self.socket.label}: event {self.event!r} was sent without an ack callback")
        await self.socket.driver.call(
            "ack",
            {"name": self.socket.name, "ack": self.ack_token, "args": to_js(list(args))},
            timeout=timeout,
            what=f"{self.socket.label}: ack of {self.event!r}",
        )


# --------------------------------------------------------------------------------------------------------
# Per-socket event buffer
# --------------------------------------------------------------------------------------------------------
class _Inbox:
    """Events reported for one socket name, in arrival order, plus a wake-up for waiters."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._arrived = trio.Event()

    def push(self, message: dict[str, Any]) -> None:
        self.items.append(message)
        self.wake()

    def wake(self) -> None:
        self._arrived.set()
        self._arrived = trio.Event()

    async def wait(self) -> None:
        await self._arrived.wait()

    def take(self, event: str | None) -> dict[str, Any] | None:
        for index, message in enumerate(self.items):
            if event is None or message["event"] == event:
                return self.items.pop(index)
        return None

    def summary(self) -> str:
        if not self.items:
            return "nothing"
        names = [m["event"] for m in self.items]
        shown = ", ".join(repr(n) for n in names[:20])
        return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")


@dataclass
class _PendingCall:
    done: trio.Event = field(default_factory=trio.Event)
    reply: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------------
# Sockets
# --------------------------------------------------------------------------------------------------------
class JsSocket:
    """One client socket held by the driver. Create it with :meth:`JsDriver.connect`."""

    def __init__(self, driver: JsDriver, name: str, kind: ClientKind, url: str, namespace: str) -> None:
        self.driver = driver
        self.name = name
        self.kind: ClientKind = kind
        self.url = url
        self.namespace = namespace
        #: ``socket.id`` as the client reported it when it (re)connected; None before that (see also
        #: :meth:`engine_state`, which reads it live).
        self.id: str | None = None

    @property
    def label(self) -> str:
        """How errors name this socket, e.g. ``socket 'v4-1' (v4 /custom)``."""
        return f"socket {self.name!r} ({self.kind} {self.namespace})"

    def __repr__(self) -> str:
        return f"<JsSocket {self.name!r} {self.kind} {self.url}{'' if self.namespace == '/' else self.namespace}>"

    # -- sending --------------------------------------------------------------------------------------
    async def emit(
        self,
        event: str,
        *args: Any,
        ack: bool = False,
        ack_timeout: float | None = None,
        timeout: float | None = None,
    ) -> list[Any] | None:
        """Emit ``event`` with ``args``; with ``ack=True`` wait for the server's ack and return its args.

        ``ack_timeout`` (seconds) makes the *client* give up: socket.io-client 4 uses
        ``socket.timeout(ms).emit(...)`` (the real feature, error-first callback), the 2.x clients a
        driver timer; either way :class:`JsAckTimeout` is raised. A disconnect while waiting raises
        :class:`JsDisconnected`. On a sails socket this emits on its raw socket.io-client 2.0.3 socket.
        """
        fields: dict[str, Any] = {"name": self.name, "event": event, "args": to_js(list(args)), "ack": ack}
        wait = self.driver.timeout if timeout is None else timeout
        if ack_timeout is not None:
            fields["timeout"] = round(ack_timeout * 1000)
            wait = max(wait, ack_timeout + _GRACE)
        what = f"{self.label}: " + (f"ack for emit({event!r})" if ack else f"emit({event!r})")
        reply = await self.driver.call("emit", fields, timeout=wait, what=what)
        return from_js(reply.get("ack", [])) if ack else None

    async def request(
        self,
        method: str,
        url: str,
        data: Any = None,
        *,
        headers: Mapping[str, Any] | None = None,
        callback: bool = True,
        timeout: float | None = None,
    ) -> tuple[Any, Jwr]:
        """sails.io.js ``socket.request({method, url, data, headers}, cb)``; returns ``(body, jwr)``.

        With ``callback=False`` the request is sent without a callback (no ack id on the wire) and
        ``(None, Jwr(None, {}, None))`` is returned at once. Requests made before the socket connected
        (``connect(..., wait=False)``) are queued by sails.io.js and sent on connect. A disconnect
        before the response raises :class:`JsDisconnected` (sails.io.js's own error).
        """
        self._require_sails("request")
        fields: dict[str, Any] = {"name": self.name, "method": method, "url": url, "callback": callback}
        if data is not None:
            fields["data"] = to_js(data)
        if headers is not None:
            fields["headers"] = to_js(headers)
        reply = await self.driver.call(
            "request", fields, timeout=timeout, what=f"{self.label}: response to {method.upper()} {url}"
        )
        if not callback:
            return None, Jwr(body=None, headers={}, status_code=None)
        return from_js(reply.get("body")), Jwr.from_wire(reply.get("jwr") or {})

    async def get(self, url: str, data: Any = None, **kwargs: Any) -> tuple[Any, Jwr]:
        """``io.socket.get(url, data, cb)``: see :meth:`request`."""
        return await self.request("get", url, data, **kwargs)

    async def post(self, url: str, data: Any = None, **kwargs: Any) -> tuple[Any, Jwr]:
        """``io.socket.post(url, data, cb)``: see :meth:`request`."""
        return await self.request("post", url, data, **kwargs)

    async def put(self, url: str, data: Any = None, **kwargs: Any) -> tuple[Any, Jwr]:
        """``io.socket.put(url, data, cb)``: see :meth:`request`."""
        return await self.request("put", url, data, **kwargs)

    async def patch(self, url: str, data: Any = None, **kwargs: Any) -> tuple[Any, Jwr]:
        """``io.socket.patch(url, data, cb)``: see :meth:`request`."""
        return await self.request("patch", url, data, **kwargs)

    async def delete(self, url: str, data: Any = None, **kwargs: Any) -> tuple[Any, Jwr]:
        """``io.socket.delete(url, data, cb)``: see :meth:`request`."""
        return await self.request("delete", url, data, **kwargs)

    async def listen(self, *events: str, timeout: float | None = None) -> None:
        """Subscribe a sails socket to ``events`` (``socket.on(event, ...)``). A no-op for v2/v4 sockets,
        which report every event anyway."""
        await self.driver.call(
            "listen", {"name": self.name, "events": list(events)}, timeout=timeout, what=f"{self.label}: listen"
        )

    # -- receiving ------------------------------------------------------------------------------------
    async def receive(self, event: str | None = None, *, timeout: float | None = None) -> ReceivedEvent:
        """Take the oldest buffered event named ``event`` (any event if None), waiting if there is none yet."""
        wait = self.driver.timeout if timeout is None else timeout
        inbox = self.driver._inbox(self.name)
        wanted = "any" if event is None else repr(event)
        try:
            with trio.fail_after(wait):
                while True:
                    message = inbox.take(event)
                    if message is not None:
                        return self._event_from(message)
                    self.driver._raise_if_dead(f"{self.label} was waiting for {wanted} event")
                    await inbox.wait()
        except trio.TooSlowError:
            raise JsWaitTimeout(
                f"{self.label}: no {wanted} event within {wait:g} s; buffered meanwhile: {inbox.summary()}"
            ) from None

    async def next_event(self, event: str | None = None, *, timeout: float | None = None) -> list[Any]:
        """Like :meth:`receive`, but return just the event's arguments."""
        return (await self.receive(event, timeout=timeout)).args

    async def expect_no_event(self, event: str | None = None, *, within: float = 0.3) -> None:
        """Assert that no ``event`` (any event if None) is buffered or arrives during ``within`` seconds."""
        inbox = self.driver._inbox(self.name)
        with trio.move_on_after(within):
            while True:
                message = inbox.take(event)
                if message is not None:
                    got = self._event_from(message)
                    raise AssertionError(f"{self.label}: unexpected {got.event!r} event with args {got.args!r}")
                self.driver._raise_if_dead(f"{self.label} was watching for events")
                await inbox.wait()

    def buffered(self, event: str | None = None) -> list[ReceivedEvent]:
        """The events received but not yet taken (all, or those named ``event``), without taking them."""
        inbox = self.driver._inbox(self.name)
        return [self._event_from(m) for m in inbox.items if event is None or m["event"] == event]

    def discard(self, event: str | None = None) -> int:
        """Drop buffered events (all, or those named ``event``); returns how many were dropped."""
        inbox = self.driver._inbox(self.name)
        keep = [m for m in inbox.items if event is not None and m["event"] != event]
        dropped = len(inbox.items) - len(keep)
        inbox.items[:] = keep
        return dropped

    # -- connection -----------------------------------------------------------------------------------
    async def engine_state(self, *, timeout: float | None = None) -> EngineState:
        """The client's transport, ids and connection state (``socket.io.engine``)."""
        reply = await self.driver.call(
            "engine_state", {"name": self.name}, timeout=timeout, what=f"{self.label}: engine_state"
        )
        return EngineState(
            transport=reply.get("transport"),
            socket_id=reply.get("socket_id"),
            sid=reply.get("sid"),
            connected=bool(reply.get("connected")),
            ready_state=reply.get("readyState"),
            recovered=bool(reply.get("recovered")),
        )

    async def wait_for_transport(self, transport: str, *, timeout: float | None = None) -> EngineState:
        """Poll until the engine runs on ``transport`` (e.g. ``"websocket"`` after an upgrade from polling)."""
        wait = self.driver.timeout if timeout is None else timeout
        state: EngineState | None = None
        try:
            with trio.fail_after(wait):
                while True:
                    state = await self.engine_state()
                    if state.transport == transport:
                        return state
                    await trio.sleep(0.02)
        except trio.TooSlowError:
            raise JsWaitTimeout(
                f"{self.label}: transport still not {transport!r} after {wait:g} s (last state: {state})"
            ) from None

    async def disconnect(self, *, timeout: float | None = None) -> str | None:
        """Close the client socket (``socket.disconnect()``) and wait until its engine is closed.

        Returns the ``disconnect`` reason the client reported (``"io client disconnect"``), or None if
        it was not connected. The ``disconnect`` event is also buffered as usual.
        """
        reply = await self.driver.call(
            "disconnect", {"name": self.name}, timeout=timeout, what=f"{self.label}: disconnect"
        )
        return reply.get("reason")

    async def reconnect(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Connect again after a disconnect: ``socket.connect()`` (v2/v4) or sails ``socket.reconnect()``.

        The server sees a brand-new socket. Raises :class:`JsConnectError` if that fails.
        """
        wait_s = self.driver.timeout if timeout is None else timeout
        fields: dict[str, Any] = {"name": self.name, "wait": wait}
        if wait:
            fields["timeout"] = round(wait_s * 1000)
        reply = await self.driver.call("reconnect", fields, timeout=wait_s + _GRACE, what=f"{self.label}: reconnect")
        self.id = reply.get("socket_id")

    # -- helpers --------------------------------------------------------------------------------------
    def _event_from(self, message: dict[str, Any]) -> ReceivedEvent:
        return ReceivedEvent(
            socket=self, event=message["event"], args=from_js(message.get("args") or []), ack_token=message.get("ack")
        )

    def _require_sails(self, what: str) -> None:
        if self.kind != "sails":
            raise JsDriverError(f"{self.label}: {what}() is for sails sockets only")


# --------------------------------------------------------------------------------------------------------
# The driver process
# --------------------------------------------------------------------------------------------------------
class JsDriver:
    """The Node process holding the clients. Use :func:`open_js_driver` to get one."""

    def __init__(self, process: trio.Process, stderr_file: IO[bytes], *, timeout: float) -> None:
        self.timeout = timeout
        self.sockets: dict[str, JsSocket] = {}
        self._process = process
        self._stderr_file = stderr_file
        self._ids = itertools.count(1)
        self._names = itertools.count(1)
        self._calls: dict[int, _PendingCall] = {}
        self._inboxes: dict[str, _Inbox] = {}
        self._send_lock = trio.Lock()
        self._closing = False
        self._dead: str | None = None  # why the driver is unusable, once it is

    # -- public API -----------------------------------------------------------------------------------
    async def connect(
        self,
        kind: ClientKind,
        url: str,
        *,
        namespace: str = "/",
        options: Mapping[str, Any] | None = None,
        name: str | None = None,
        wait: bool = True,
        listen: Iterable[str] = (),
        heartbeat: bool = False,
        timeout: float | None = None,
    ) -> JsSocket:
        """Open a client socket of ``kind`` to ``url`` (``http://127.0.0.1:PORT``) and ``namespace``.

        ``options`` go to the client unchanged: ``io(url + namespace, {...options, forceNew: true})`` for
        v4 and v2 (``transports``, ``upgrade``, ``auth`` (v4), ``query``, ``extraHeaders``,
        ``reconnection``, ``ackTimeout``, ...), ``io.sails.connect(url, options)`` for sails (which keeps
        only ``transports``, ``query`` (a string), ``headers``, ``initialConnectionHeaders``, ``path``,
        ``reconnection*``, ``timeout``, ``multiplex``...; its default transports are ``["websocket"]``).

        Returns once the client fired ``connect`` (the ``connect`` event is buffered too), or at once
        with ``wait=False``. Raises :class:`JsConnectError` when the client reports a connect error
        (the driver then closes that socket). ``listen`` subscribes a sails socket to events right away;
        ``heartbeat=True`` also reports the clients' ``ping``/``pong`` events.
        """
        if kind not in ("v4", "v2", "sails"):
            raise ValueError(f"unknown client kind {kind!r}: use 'v4', 'v2' or 'sails'")
        if name is None:
            name = f"{kind}-{next(self._names)}"
            while name in self.sockets:
                name = f"{kind}-{next(self._names)}"
        elif name in self.sockets:
            raise ValueError(f"socket name {name!r} is already used by {self.sockets[name]!r}")
        wait_s = self.timeout if timeout is None else timeout
        client = JsSocket(self, name, kind, url, namespace)
        self.sockets[name] = client
        self._inboxes[name] = _Inbox()
        fields: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "url": url,
            "namespace": namespace,
            "options": to_js(dict(options or {})),
            "wait": wait,
            "listen": list(listen),
            "heartbeat": heartbeat,
        }
        if wait:
            fields["timeout"] = round(wait_s * 1000)
        try:
            reply = await self.call("connect", fields, timeout=wait_s + _GRACE, what=f"{client.label}: connect to {url}")
        except JsCommandFailed:
            del self.sockets[name]  # the driver dropped it; the name may be used again
            raise
        client.id = reply.get("socket_id")
        return client

    def socket(self, name: str) -> JsSocket:
        """The socket created under ``name``."""
        return self.sockets[name]

    async def call(
        self,
        op: str,
        fields: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        what: str | None = None,
    ) -> dict[str, Any]:
        """Send one raw driver command (``{"op": op, **fields}``) and return its ``ok`` reply.

        The escape hatch under the friendlier methods; the commands are documented in ``driver.js``.
        Raises a :class:`JsCommandFailed` subclass for an ``ok: false`` reply, :class:`JsWaitTimeout`
        if no reply comes within ``timeout`` seconds, :class:`JsDriverCrashed` if the driver died.
        ``what`` describes the call in error messages.
        """
        wait = self.timeout if timeout is None else timeout
        what = what or f"driver op {op!r}"
        self._raise_if_dead(what)
        call_id = next(self._ids)
        pending = _PendingCall()
        self._calls[call_id] = pending
        try:
            await self._send({**(fields or {}), "id": call_id, "op": op}, what)
            try:
                with trio.fail_after(wait):
                    await pending.done.wait()
            except trio.TooSlowError:
                raise JsWaitTimeout(f"{what}: still nothing after {wait:g} s") from None
        finally:
            self._calls.pop(call_id, None)
        reply = pending.reply
        if reply is None:
            self._raise_if_dead(what)
            raise JsDriverCrashed(f"{what}: the JS driver stopped answering")
        if not reply.get("ok"):
            code = str(reply.get("code") or "error")
            error_class = _ERRORS_BY_CODE.get(code, JsCommandFailed)
            raise error_class(f"{what}: {reply.get('error')} [{code}]", code=code, details=from_js(reply.get("details")))
        return reply

    def stderr_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the driver (and the client libraries) wrote to stderr."""
        try:
            self._stderr_file.flush()
            self._stderr_file.seek(0)
            text = self._stderr_file.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals ------------------------------------------------------------------------------------
    def _inbox(self, name: str) -> _Inbox:
        inbox = self._inboxes.get(name)
        if inbox is None:
            inbox = self._inboxes[name] = _Inbox()
        return inbox

    def _raise_if_dead(self, what: str) -> None:
        if self._dead is not None:
            raise JsDriverCrashed(f"{what}, but {self._dead}")

    async def _send(self, message: dict[str, Any], what: str) -> None:
        line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        stdin = self._process.stdin
        assert stdin is not None
        try:
            async with self._send_lock:
                await stdin.send_all(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._mark_dead("the JS driver's stdin is closed")
            self._raise_if_dead(what)

    def _mark_dead(self, reason: str) -> None:
        if self._dead is not None:
            return
        code = self._process.poll()
        status = "" if code is None else f" (exit code {code})"
        tail = self.stderr_tail()
        self._dead = f"{reason}{status}" + (f"; driver stderr:\n{tail}" if tail else "")
        for pending in self._calls.values():
            pending.done.set()
        for inbox in self._inboxes.values():
            inbox.wake()

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            print(f"[jsclient] driver wrote a non-JSON line: {line[:200]!r}", file=sys.stderr)
            return
        if not isinstance(message, dict):
            print(f"[jsclient] driver wrote a non-object line: {line[:200]!r}", file=sys.stderr)
        elif "event" in message:
            self._inbox(str(message.get("socket"))).push(message)
        elif isinstance(message.get("id"), int) and message["id"] in self._calls:
            pending = self._calls[message["id"]]
            pending.reply = message
            pending.done.set()
        elif message.get("id") is None and not message.get("ok", True):
            print(f"[jsclient] driver reported: {message.get('error')}", file=sys.stderr)
        # else: a late reply to a call that already timed out

    async def _read_stdout(self) -> None:
        """Dispatch every line the driver writes; runs until the driver's stdout closes."""
        stdout = self._process.stdout
        assert stdout is not None
        buffer = bytearray()
        try:
            while True:
                chunk = await stdout.receive_some(1 << 16)
                if not chunk:
                    break
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    if line.strip():
                        self._dispatch(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if self._closing:
            self._mark_dead("the JS driver was closed")
        else:
            with trio.move_on_after(1.0):  # the exit status, and so every stderr line the driver wrote
                await self._process.wait()
            self._mark_dead("the JS driver exited unexpectedly")

    async def _shutdown(self) -> None:
        """Ask the driver to quit (closing every client socket); kill it if it does not within 3 s."""
        self._closing = True
        if self._process.poll() is None:
            with trio.move_on_after(3):
                try:
                    await self._send({"id": next(self._ids), "op": "quit"}, "quit")
                except JsDriverError:
                    pass
                await self._process.wait()
        if self._process.poll() is None:
            self._process.kill()
        await self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                await stream.aclose()


def _check_installed() -> str:
    node = shutil.which("node")
    if node is None:
        raise JsClientsNotInstalled("`node` is not on PATH; the JS client tests need Node.js >= 18")
    missing = [p for p in REQUIRED_PACKAGES if not (JS_DIR / "node_modules" / p / "package.json").is_file()]
    if missing:
        raise JsClientsNotInstalled(
            f"the JS client packages are not installed ({', '.join(missing)} missing from "
            f"{JS_DIR / 'node_modules'}): run `npm ci --prefix tests/js`"
        )
    return node


def _raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the one real exception of a nursery's group, keeping its own context (as trio does for
    its own context managers). The driver's background task never raises, so the group holds the
    exception of the ``async with`` body, possibly beside ``Cancelled``."""
    real = [e for e in group.exceptions if not isinstance(e, trio.Cancelled)]
    if len(real) > 1:
        raise group
    exc = real[0] if real else group.exceptions[0]
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


@asynccontextmanager
async def open_js_driver(
    *, timeout: float = DEFAULT_TIMEOUT, env: Mapping[str, str] | None = None
) -> AsyncIterator[JsDriver]:
    """Start ``node tests/js/driver.js``; on exit close every client socket and stop Node.

    ``timeout`` is the default bound (seconds) of every wait. ``env`` replaces the environment of the
    Node process (e.g. ``{**os.environ, "DEBUG": "socket.io-client:*"}`` to get the clients' debug
    logs in the driver's stderr, which is shown when the test fails).
    """
    node = _check_installed()
    with tempfile.TemporaryFile(prefix="jsdriver-stderr-") as stderr_file:
        process = await trio.lowlevel.open_process(
            [node, str(DRIVER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            cwd=str(JS_DIR),
            env=dict(env) if env is not None else None,
        )
        driver = JsDriver(process, stderr_file, timeout=timeout)
        failed = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(driver._read_stdout)
                try:
                    await driver.call("list", what="starting the JS driver")
                    yield driver
                except BaseException:
                    failed = True
                    raise
                finally:
                    with trio.CancelScope(shield=True):
                        await driver._shutdown()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            _raise_single(group)
        finally:
            if failed:
                tail = driver.stderr_tail(80)
                if tail:
                    print(f"---- JS driver stderr (last lines) ----\n{tail}", file=sys.stderr)
