"""The Engine.IO endpoint: websocket and HTTP long-polling at ``/socket.io/``.

Long-polling is a plain ASGI app in front of the quart-trio app (see :class:`trisails.App`), which then
only sees ordinary HTTP. Websockets reach :meth:`EngineIOEndpoint.serve_websocket` by two roads: the
direct one (:mod:`trisails.realtime.listener` reads the upgrade on the trio stream itself) and, for an
upgrade that arrives on a kept-alive HTTP connection, through hypercorn's ASGI websocket. Both end in the
same checks and the same session code. This module holds no protocol rules of its own beyond the
handshake checks, done in Engine.IO's order:

1. ``EIO`` must be 3 or 4, else ``{"code":5,"message":"Unsupported protocol version"}``;
2. ``transport`` must be an allowed transport, else ``{"code":0,"message":"Transport unknown"}``;
3. with a ``sid``: the session must exist (``code 1``); a websocket with a sid is an upgrade;
4. without one: a new session, which only a GET (polling) or a websocket may open (``code 2``).

A rejected websocket handshake gets a plain ``400 Bad Request`` with the reason as its body, as
engine.io answers it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import trio

from ..protocol import engineio as eio
from .server import _call
from .engine import EngineSession, Envelope, Handshake, OverlappingPoll, SessionRegistry, WebSocketIO, new_id

if TYPE_CHECKING:
    from .._config import SocketSettings
    from .server import RealtimeServer

__all__ = ["EngineIOEndpoint"]

log = logging.getLogger("trisails.realtime")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Whether websockets served in this context may negotiate permessage-deflate (see _decline_compression).
compression_allowed: ContextVar[bool] = ContextVar("trisails_compression_allowed", default=True)


class _AsgiWebSocket:
    """The session's view of an accepted ASGI websocket; sends after close are dropped, not raised."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.closed = False

    async def send(self, frame: str | bytes) -> None:
        if self.closed:
            return
        if isinstance(frame, str):
            await self._send({"type": "websocket.send", "text": frame})
        else:
            await self._send({"type": "websocket.send", "bytes": frame})

    async def send_many(self, frames: list[str | bytes]) -> None:
        for frame in frames:
            await self.send(frame)

    async def receive(self) -> str | bytes | None:
        message = await self._receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            if text is not None:
                return text
            return message.get("bytes") or b""
        self.closed = True
        return None

    async def close(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            await self._send({"type": "websocket.close", "code": code})


class EngineIOEndpoint:
    """ASGI app serving the Engine.IO protocol for one :class:`RealtimeServer`."""

    def __init__(
        self, server: RealtimeServer, settings: SocketSettings, *, is_draining: Callable[[], bool] = lambda: False
    ) -> None:
        self._is_draining = is_draining
        self._server = server
        self._settings = settings
        self.sessions = SessionRegistry()
        self._nursery: trio.Nursery | None = None

    def bind(self, nursery: trio.Nursery) -> None:
        """Give the endpoint the nursery that owns long-polling sessions (the App's root nursery)."""
        self._nursery = nursery

    async def keep_heartbeats(self) -> None:
        """Ping, and drop the silent, for all sessions at once: one task, not one per connection (an
        idle connection then holds no task of its own for its heartbeat). It wakes four times per
        ``min(ping_interval, ping_timeout)``, so pings and timeouts are at most a quarter of that late."""
        settings = self._settings
        tick = min(settings.ping_interval, settings.ping_timeout) / 4000
        while True:
            await trio.sleep(tick)
            now = trio.current_time()
            for session in self.sessions:
                session.beat(now)

    @property
    def max_payload(self) -> int:
        return self._settings.max_payload

    @property
    def handshake_timeout(self) -> float:
        """Seconds a new connection may take to send its request head."""
        return self._settings.handshake_timeout / 1000

    # ----------------------------------------------------------------------------------------- dispatch
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: long-polling requests, and websockets that arrive through hypercorn."""
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        if scope["type"] == "websocket":
            if (await receive())["type"] != "websocket.connect":
                return
            await self.serve_websocket(
                query=query,
                path=scope.get("path", "/"),
                raw_query=raw_query,
                headers=list(scope.get("headers", ())),
                address=_address(scope),
                secure=scope.get("scheme") == "wss",
                accept=partial(_accept_asgi, receive, send),
                refuse=partial(_refuse_asgi, send),
            )
            return
        error = self._check(query, websocket=False)
        if error is not None:
            log.info("refused Engine.IO request from %s: %s", _address(scope), error.message)
            await _respond(send, error.status, error.body(), "application/json")
            return
        sid = query.get("sid")
        if sid:
            # A closed polling session still answers GETs until its last packets (the close) are taken.
            session = self._find(sid, query, allow_closed=scope["method"] == "GET")
            if isinstance(session, eio.HandshakeError):
                await _respond(send, session.status, session.body(), "application/json")
            else:
                await self._poll_request(scope, receive, send, session)
        elif scope["method"] != "GET":
            error = eio.HandshakeError.BAD_HANDSHAKE_METHOD
            await _respond(send, error.status, error.body(), "application/json")
        else:
            handshake = _handshake(
                list(scope.get("headers", ())), query, scope.get("path", "/"), raw_query, _address(scope),
                scope.get("scheme") == "https",
            )
            refusal = await self._admit(handshake)
            if refusal is not None:
                await _respond(send, refusal.status, refusal.body(), "application/json")
                return
            await self._open_polling(send, handshake, query)

    def _check(self, query: dict[str, str], *, websocket: bool) -> eio.HandshakeError | None:
        """The handshake checks every request passes, in Engine.IO's order."""
        if query.get("EIO") not in ("3", "4"):
            return eio.HandshakeError.UNSUPPORTED_PROTOCOL_VERSION
        transport = query.get("transport")
        if transport not in self._settings.transports:
            return eio.HandshakeError.UNKNOWN_TRANSPORT
        if websocket != (transport == "websocket"):
            return eio.HandshakeError.BAD_REQUEST
        return None

    async def _admit(self, handshake: Handshake) -> eio.HandshakeError | None:
        """Whether a new client may open a session: the connection limits (503, or 429 for one address),
        its ``Origin`` against ``only_allow_origins``, then the app's ``before_connect`` hook (403).
        Every refusal is logged with its reason."""
        settings = self._settings
        if self._is_draining():
            log.info("refused a client from %s: the server is shutting down", handshake.address)
            return eio.HandshakeError.SHUTTING_DOWN
        if len(self.sessions) >= settings.max_connections:
            log.warning("refused a client from %s: %d sessions, the most sockets.max_connections allows", handshake.address, len(self.sessions))
            return eio.HandshakeError.TOO_MANY_CONNECTIONS
        if settings.max_connections_per_ip and self.sessions.count_from(handshake.address) >= settings.max_connections_per_ip:
            log.info("refused a client from %s: it holds sockets.max_connections_per_ip sessions already", handshake.address)
            return eio.HandshakeError.TOO_MANY_CONNECTIONS_FROM_ADDRESS
        origin = handshake.headers.get("origin")
        allowed = settings.only_allow_origins
        if allowed and "*" not in allowed:
            if origin is None and not settings.allow_missing_origin:
                log.info("refused a client from %s: it sent no Origin header", handshake.address)
                return eio.HandshakeError.FORBIDDEN
            if origin is not None and origin not in allowed:
                log.info("refused a client from %s: origin %r is not in only_allow_origins", handshake.address, origin)
                return eio.HandshakeError.FORBIDDEN
        if settings.before_connect is not None:
            try:
                admitted = await _call(settings.before_connect, handshake)
            except Exception:
                log.exception("before_connect failed for a client from %s: refused", handshake.address)
                return eio.HandshakeError.FORBIDDEN
            if admitted is not True:
                log.info("before_connect refused a client from %s", handshake.address)
                return eio.HandshakeError.FORBIDDEN
        return None

    def _find(self, sid: str, query: dict[str, str], *, allow_closed: bool = False) -> EngineSession | eio.HandshakeError:
        session = self.sessions.get(sid)
        if session is None or (session.closed and not allow_closed):
            return eio.HandshakeError.UNKNOWN_SID
        if session.revision != eio.parse_revision(query.get("EIO")):
            return eio.HandshakeError.BAD_REQUEST
        return session

    def _new_session(self, handshake: Handshake, query: dict[str, str], transport: str) -> EngineSession:
        session = EngineSession(
            sid=new_id(),
            revision=eio.parse_revision(query.get("EIO")),
            transport=transport,
            handshake=handshake,
            settings=self._settings,
            b64=query.get("b64") in ("1", "true"),
        )
        upgrades = (
            ["websocket"]
            if transport == "polling" and self._settings.allow_upgrades and "websocket" in self._settings.transports
            else []
        )
        session.send(
            Envelope.of(
                eio.encode_open(
                    session.sid,
                    upgrades=upgrades,
                    ping_interval=self._settings.ping_interval,
                    ping_timeout=self._settings.ping_timeout,
                    max_payload=self._settings.max_payload,
                )
            )
        )
        session.receiver = self._server.attach(session)
        self.sessions.add(session)
        return session

    # ----------------------------------------------------------------------------------------- websocket
    async def serve_websocket(
        self,
        *,
        query: dict[str, str],
        path: str,
        raw_query: str,
        headers: list[tuple[bytes, bytes]],
        address: str,
        secure: bool,
        accept: Callable[[], Awaitable[WebSocketIO]],
        refuse: Callable[[int, bytes], Awaitable[None]],
    ) -> None:
        """Serve one websocket upgrade request, whichever server read it: check, accept, run, close.

        ``accept`` completes the upgrade and returns the websocket; ``refuse(status, body)`` answers
        with a plain HTTP error instead, as engine.io does for a rejected upgrade.
        """
        error = self._check(query, websocket=True)
        session: EngineSession | eio.HandshakeError | None = None
        if error is None and query.get("sid"):
            session = self._find(query["sid"], query)
            if isinstance(session, eio.HandshakeError):
                error = session
            elif session.transport != "polling" or not self._settings.allow_upgrades:
                error = eio.HandshakeError.BAD_REQUEST
        handshake = _handshake(headers, query, path, raw_query, address, secure)
        if error is None and session is None:
            error = await self._admit(handshake)
        if error is not None:
            log.info("refused Engine.IO websocket from %s: %s", address, error.message)
            await refuse(error.status, error.message.encode())
            return
        websocket = await accept()
        if isinstance(session, EngineSession):
            upgraded = await session.upgrade(websocket)
            await websocket.close(session.close_code if upgraded else 1000)
            return
        session = self._new_session(handshake, query, "websocket")
        await session.run(websocket, on_end=self.sessions.discard)
        await websocket.close(session.close_code)

    # ----------------------------------------------------------------------------------------- polling
    async def _open_polling(self, send: Send, handshake: Handshake, query: dict[str, str]) -> None:
        if self._nursery is None:
            await _respond(send, 503, b"server is not lifted", "text/plain")
            return
        session = self._new_session(handshake, query, "polling")
        await self._nursery.start(partial(session.run, on_end=self.sessions.discard))
        await self._answer_poll(send, session)

    async def _poll_request(self, scope: Scope, receive: Receive, send: Send, session: EngineSession) -> None:
        if session.transport != "polling":
            error = eio.HandshakeError.BAD_REQUEST
            await _respond(send, error.status, error.body(), "application/json")
            return
        if scope["method"] == "GET":
            await self._answer_poll(send, session)
        elif scope["method"] == "POST":
            body = await _read_body(receive, self._settings.max_payload)
            if body is None:
                session.protocol_error("polling payload too large")
                await _respond(send, 413, b"Payload Too Large", "text/plain")
                return
            content_type = _header(scope, "content-type")
            session.receive_payload(body, content_type)
            await _respond(send, 200, b"ok", "text/html")
        else:
            error = eio.HandshakeError.BAD_HANDSHAKE_METHOD
            await _respond(send, error.status, error.body(), "application/json")

    async def _answer_poll(self, send: Send, session: EngineSession) -> None:
        try:
            packets = await session.poll()
        except OverlappingPoll:
            session.protocol_error("overlapping long-poll requests")
            await _respond(send, 400, eio.HandshakeError.BAD_REQUEST.body(), "application/json")
            return
        body, content_type = eio.encode_payload(packets, session.revision, b64=session.b64)
        await _respond(send, 200, body, content_type)


# --------------------------------------------------------------------------------------------- helpers
def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def _handshake(
    raw_headers: list[tuple[bytes, bytes]], query: dict[str, str], path: str, raw_query: str, address: str, secure: bool
) -> Handshake:
    headers: dict[str, str] = {}
    for key, value in raw_headers:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return Handshake(
        headers=headers,
        query=query,
        address=address,
        url=path + (f"?{raw_query}" if raw_query else ""),
        secure=secure,
    )


async def _accept_asgi(receive: Receive, send: Send) -> _AsgiWebSocket:
    await send({"type": "websocket.accept"})
    return _AsgiWebSocket(receive, send)


async def _refuse_asgi(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/html"), (b"connection", b"close")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def decline_compression() -> None:
    """Make hypercorn decline permessage-deflate wherever :data:`compression_allowed` is False.

    hypercorn always accepts the extension and has no setting for it, so we wrap the one function it
    calls to negotiate extensions. The wrapper consults a context variable that :meth:`App.lift` sets,
    so each app's ``sockets.compression`` setting holds for the connections it serves. Idempotent.
    """
    from hypercorn.protocol import ws_stream

    original = ws_stream.server_extensions_handshake
    if getattr(original, "_trisails", False):
        return

    def negotiate(offers: Any, extensions: Any) -> Any:
        if not compression_allowed.get():
            return None
        return original(offers, extensions)

    negotiate._trisails = True  # type: ignore[attr-defined]
    ws_stream.server_extensions_handshake = negotiate  # type: ignore[assignment]
