"""The Engine.IO endpoint as a plain ASGI app: websocket and HTTP long-polling at ``/socket.io/``.

It sits in front of the quart-trio app (see :class:`trisails.App`), which then only sees ordinary HTTP.
This module turns ASGI messages into calls on :class:`~trisails.realtime.engine.EngineSession` and
back; it holds no protocol rules of its own beyond the handshake checks, done in Engine.IO's order:

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
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import trio

from ..protocol import engineio as eio
from .engine import EngineSession, Envelope, Handshake, OverlappingPoll, SessionRegistry, new_id

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

    def __init__(self, server: RealtimeServer, settings: SocketSettings) -> None:
        self._server = server
        self._settings = settings
        self.sessions = SessionRegistry()
        self._nursery: trio.Nursery | None = None

    def bind(self, nursery: trio.Nursery) -> None:
        """Give the endpoint the nursery that owns long-polling sessions (the App's root nursery)."""
        self._nursery = nursery

    # ----------------------------------------------------------------------------------------- dispatch
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        eio_param = query.get("EIO")
        transport = query.get("transport")
        is_websocket = scope["type"] == "websocket"
        error: eio.HandshakeError | None = None
        if eio_param not in ("3", "4"):
            error = eio.HandshakeError.UNSUPPORTED_PROTOCOL_VERSION
        elif transport not in self._settings.transports:
            error = eio.HandshakeError.UNKNOWN_TRANSPORT
        elif is_websocket != (transport == "websocket"):
            error = eio.HandshakeError.BAD_REQUEST
        if error is not None:
            log.info("refused Engine.IO handshake from %s: %s", _address(scope), error.message)
            await self._refuse(scope, send, error)
            return
        revision = eio.parse_revision(eio_param)
        sid = query.get("sid")
        session = self.sessions.get(sid) if sid else None
        if sid and (session is None or session.closed):
            await self._refuse(scope, send, eio.HandshakeError.UNKNOWN_SID)
            return
        if session is not None and session.revision != revision:
            await self._refuse(scope, send, eio.HandshakeError.BAD_REQUEST)
            return
        if is_websocket:
            await self._websocket(scope, receive, send, query, revision, session)
        elif session is not None:
            await self._poll_request(scope, receive, send, session)
        elif scope["method"] != "GET":
            await self._refuse(scope, send, eio.HandshakeError.BAD_HANDSHAKE_METHOD)
        else:
            await self._open_polling(scope, send, query, revision)

    async def _refuse(self, scope: Scope, send: Send, error: eio.HandshakeError) -> None:
        if scope["type"] == "websocket":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"text/html"), (b"connection", b"close")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": error.message.encode()})
        else:
            await _respond(send, error.status, error.body(), "application/json")

    def _new_session(self, scope: Scope, query: dict[str, str], revision: int, transport: str) -> EngineSession:
        session = EngineSession(
            sid=new_id(),
            revision=revision,
            transport=transport,
            handshake=_handshake(scope, query),
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
    async def _websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        query: dict[str, str],
        revision: int,
        session: EngineSession | None,
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if session is not None and (session.transport != "polling" or not self._settings.allow_upgrades):
            await self._refuse(scope, send, eio.HandshakeError.BAD_REQUEST)
            return
        await send({"type": "websocket.accept"})
        websocket = _AsgiWebSocket(receive, send)
        if session is not None:
            if not await session.upgrade(websocket):
                await websocket.close(1000)
            return
        session = self._new_session(scope, query, revision, "websocket")
        await session.run(websocket, on_end=self.sessions.discard)
        await websocket.close(1000)

    # ----------------------------------------------------------------------------------------- polling
    async def _open_polling(self, scope: Scope, send: Send, query: dict[str, str], revision: int) -> None:
        if self._nursery is None:
            await _respond(send, 503, b"server is not lifted", "text/plain")
            return
        session = self._new_session(scope, query, revision, "polling")
        await self._nursery.start(lambda task_status: session.run(on_end=self.sessions.discard, task_status=task_status))
        await self._answer_poll(send, session)

    async def _poll_request(self, scope: Scope, receive: Receive, send: Send, session: EngineSession) -> None:
        if session.transport != "polling":
            await self._refuse(scope, send, eio.HandshakeError.BAD_REQUEST)
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
            await self._refuse(scope, send, eio.HandshakeError.BAD_HANDSHAKE_METHOD)

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


def _handshake(scope: Scope, query: dict[str, str]) -> Handshake:
    headers: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    raw_query = scope.get("query_string", b"").decode("latin-1")
    url = scope.get("path", "/") + (f"?{raw_query}" if raw_query else "")
    return Handshake(
        headers=headers,
        query=query,
        address=_address(scope),
        url=url,
        secure=scope.get("scheme") in ("https", "wss"),
    )


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
    ws_stream.server_extensions_handshake = negotiate
