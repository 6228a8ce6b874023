"""The Engine.IO endpoint: handshake checks, long-polling, and websockets at ``/socket.io/``.

Long-polling is a plain ASGI app in front of the quart-trio app (see :class:`trisails.App`), which then
only sees ordinary HTTP. Websockets reach :meth:`EngineIOEndpoint.serve_websocket` from the listener
(:mod:`trisails.realtime._serving`), which reads the upgrade on the trio stream itself. Every request
passes the same checks, in Engine.IO's order:

1. ``EIO`` must be 3 or 4, else ``{"code":5,"message":"Unsupported protocol version"}``;
2. ``transport`` must be an allowed transport, else ``{"code":0,"message":"Transport unknown"}``;
3. with a ``sid``: the session must exist (``code 1``), and the request must come from the address
   that made the handshake and carry the session cookie the handshake carried, else it is answered as
   if the session did not exist (``code 1``, logged); a websocket with a sid is an upgrade, and a
   polling request for a session that has moved to a websocket is a bad request (``code 3``);
4. without one: a new session, which only a GET (polling) or a websocket may open (``code 2``).

A rejected websocket handshake gets a plain ``400 Bad Request`` with the reason as its body, as
engine.io answers it.

Why rule 3 binds a session to its client: a revision-3 client's socket id *is* its sid, and apps hand
socket ids around, so the sid alone must not be enough to post requests as the client, read its
messages or take its session to another websocket. The address is the TCP peer's, or, with
``sockets.trust_proxy``, the one the trusted proxies wrote into ``X-Forwarded-For``
(:func:`client_address`). The sessions' protocol state is in :mod:`trisails.protocol.engine_session`; their
I/O in :mod:`trisails.realtime.connection`; this module only admits, finds and routes.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import trio

from .._concurrency import call
from ..protocol import engineio as eio
from ..protocol.engine_session import EngineSession, SessionState, Transport
from ..protocol.engineio import Envelope
from .connection import Connection, ConnectionRegistry, Deadlines, Handshake, new_id
from .reading import SharedReader

if TYPE_CHECKING:
    from .._config import SocketSettings
    from .server import RealtimeServer
    from .websocket import StreamWebSocket

__all__ = ["EngineIOEndpoint", "client_address", "make_handshake"]

log = logging.getLogger("trisails.realtime")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Reads the session cookie's value out of a ``Cookie`` header (None: no session cookie in it).
SessionCookie = Callable[[str | None], str | None]


def _no_session_cookie(header: str | None) -> str | None:
    return None


class EngineIOEndpoint:
    """The Engine.IO server of one :class:`RealtimeServer`: its sessions, their timers, their requests."""

    def __init__(
        self,
        server: RealtimeServer,
        settings: SocketSettings,
        *,
        is_draining: Callable[[], bool] = lambda: False,
        session_cookie: SessionCookie = _no_session_cookie,
    ) -> None:
        """``session_cookie`` reads the app's session cookie out of a ``Cookie`` header (the App passes
        one that knows the cookie's name): a session opened with one only serves requests that carry
        the same value."""
        self._is_draining = is_draining
        self._session_cookie = session_cookie
        self._server = server
        self._settings = settings
        self.sessions = ConnectionRegistry()
        self.deadlines = Deadlines()
        self.reader = SharedReader()
        self._nursery: trio.Nursery | None = None

    def bind(self, nursery: trio.Nursery) -> None:
        """Give the endpoint the nursery that owns long-polling sessions (the App's root nursery)."""
        self._nursery = nursery

    async def keep_time(self) -> None:
        """Run every session's timers (heartbeats, timeouts): one task for all of them."""
        await self.deadlines.run()

    async def read_websockets(self) -> None:
        """Wait for input on every idle websocket at once (see :mod:`trisails.realtime.reading`): one
        task for all of them. Without it, each websocket's task waits for its own."""
        await self.reader.run()

    @property
    def path(self) -> str:
        return self._settings.path

    @property
    def max_payload(self) -> int:
        return self._settings.max_payload

    @property
    def handshake_timeout(self) -> float:
        """Seconds a new connection may take to send its request head."""
        return self._settings.handshake_timeout / 1000

    # ----------------------------------------------------------------------------------------- polling
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app of long-polling requests."""
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        error = self._check(query, websocket=False)
        if error is not None:
            log.info("refused Engine.IO request from %s: %s", self._address(scope), error.message)
            await _respond_error(send, error)
            return
        sid = query.get("sid")
        method = scope["method"]
        if sid:
            connection = self._find(sid, query, self._address(scope), _header(scope, "cookie"))
            if isinstance(connection, eio.HandshakeError):
                await _respond_error(send, connection)
            elif method == "GET":
                await self._answer_poll(send, connection)
            elif method == "POST":
                await self._receive_post(scope, receive, send, connection)
            else:
                await _respond_error(send, eio.HandshakeError.BAD_HANDSHAKE_METHOD)
        elif method != "GET":
            await _respond_error(send, eio.HandshakeError.BAD_HANDSHAKE_METHOD)
        else:
            handshake = make_handshake(
                list(scope.get("headers", ())), query, scope.get("path", "/"), raw_query, self._address(scope),
                scope.get("scheme") == "https",
            )
            refusal = await self._admit(handshake)
            if refusal is not None:
                await _respond_error(send, refusal)
                return
            if self._nursery is None:
                await _respond(send, 503, b"server is not lifted", "text/plain")
                return
            connection = self._open(handshake, query, Transport.POLLING)
            await self._nursery.start(connection.run)
            await self._answer_poll(send, connection)

    async def _answer_poll(self, send: Send, connection: Connection) -> None:
        answer = await connection.poll()
        if isinstance(answer, eio.HandshakeError):
            connection.log_if_broken()
            await _respond_error(send, answer)
            return
        body, content_type = eio.encode_payload(answer, connection.revision, b64=connection.session.b64)
        await _respond(send, 200, body, content_type)

    async def _receive_post(self, scope: Scope, receive: Receive, send: Send, connection: Connection) -> None:
        if connection.session.transport is not Transport.POLLING:
            await _respond_error(send, eio.HandshakeError.BAD_REQUEST)
            return
        try:
            body = await _read_body(receive, self._settings.max_payload)
        except BodyTooLarge:
            connection.protocol_error("polling payload too large")
            await _respond(send, 413, b"Payload Too Large", "text/plain")
            return
        except BodyTruncated as truncated:
            # as plain HTTP does: a body cut short is no request at all; the session goes on
            log.info("discarded a truncated polling body for session %s (%s): %s", connection.sid, connection.handshake.address, truncated)
            return
        connection.receive_payload(body, _header(scope, "content-type"))
        await _respond(send, 200, b"ok", "text/html")

    # ----------------------------------------------------------------------------------------- websocket
    async def serve_websocket(
        self,
        *,
        query: dict[str, str],
        handshake: Handshake,
        accept: Callable[[], Awaitable[StreamWebSocket]],
        refuse: Callable[[int, bytes], Awaitable[None]],
    ) -> None:
        """Serve one websocket upgrade request: check, accept, then be a session's transport.

        ``accept`` completes the upgrade and returns the websocket; ``refuse(status, body)`` answers
        with a plain HTTP error instead, as engine.io does for a rejected upgrade.
        """
        if self._settings.trust_proxy:
            address = client_address(handshake.address, handshake.headers.get("x-forwarded-for"), self._settings.trust_proxy)
            handshake = dataclasses.replace(handshake, address=address)
        error = self._check(query, websocket=True)
        existing: Connection | None = None
        if error is None and query.get("sid"):
            found = self._find(query["sid"], query, handshake.address, handshake.headers.get("cookie"), upgrade=True)
            if isinstance(found, eio.HandshakeError):
                error = found
            elif not self._settings.allow_upgrades:
                error = eio.HandshakeError.BAD_REQUEST
            else:
                existing = found
        if error is None and existing is None:
            error = await self._admit(handshake)
        if error is not None:
            log.info("refused Engine.IO websocket from %s: %s", handshake.address, error.message)
            await refuse(error.status, error.message.encode())
            return
        websocket = await accept()
        if existing is not None:
            await existing.upgrade(websocket, self.reader)
            return
        connection = self._open(handshake, query, Transport.WEBSOCKET)
        await connection.serve_websocket(websocket, self.reader)

    # ----------------------------------------------------------------------------------------- sessions
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
                admitted = await call(settings.before_connect, handshake)
            except Exception:
                log.exception("before_connect failed for a client from %s: refused", handshake.address)
                return eio.HandshakeError.FORBIDDEN
            if admitted is not True:
                log.info("before_connect refused a client from %s", handshake.address)
                return eio.HandshakeError.FORBIDDEN
        return None

    def _find(
        self, sid: str, query: dict[str, str], address: str, cookie: str | None, *, upgrade: bool = False
    ) -> Connection | eio.HandshakeError:
        """The live session ``sid`` names, for a request from ``address`` with the ``Cookie`` header
        ``cookie``; for a polling request, only while the session is on polling.

        A request that does not come from the session's client (:meth:`_stranger`) is answered exactly
        as an unknown sid, so that it cannot even tell that the session exists.
        """
        connection = self.sessions.get(sid)
        if connection is None or connection.session.state is SessionState.CLOSED:
            return eio.HandshakeError.UNKNOWN_SID
        stranger = self._stranger(connection, address, cookie)
        if stranger is not None:
            log.warning(
                "refused %s for session %s from %s: %s",
                "an upgrade" if upgrade else "a polling request", sid, address, stranger,
            )
            return eio.HandshakeError.UNKNOWN_SID
        if connection.revision != eio.parse_revision(query.get("EIO")):
            return eio.HandshakeError.BAD_REQUEST
        if not upgrade and connection.session.transport is not Transport.POLLING:
            return eio.HandshakeError.BAD_REQUEST
        return connection

    def _stranger(self, connection: Connection, address: str, cookie: str | None) -> str | None:
        """Why a request for ``connection`` does not come from the client that opened it, or None.

        It must come from the handshake's address and, when the handshake carried the session cookie,
        carry the same cookie value (other cookies may change freely)."""
        handshake = connection.handshake
        if address != handshake.address:
            return f"the session is bound to another address ({handshake.address})"
        expected = self._session_cookie(handshake.headers.get("cookie"))
        if expected is not None and self._session_cookie(cookie) != expected:
            return "it came without the session cookie of its handshake"
        return None

    def _address(self, scope: Scope) -> str:
        """The client's address of an ASGI request: the peer's, or the forwarded one behind trusted proxies."""
        client = scope.get("client")
        peer = client[0] if client else ""
        hops = self._settings.trust_proxy
        return client_address(peer, _header(scope, "x-forwarded-for"), hops) if hops else peer

    def _open(self, handshake: Handshake, query: dict[str, str], transport: Transport) -> Connection:
        settings = self._settings
        session = EngineSession(
            new_id(),
            revision=eio.parse_revision(query.get("EIO")),
            transport=transport,
            now=trio.current_time(),
            ping_interval=settings.ping_interval / 1000,
            ping_timeout=settings.ping_timeout / 1000,
            upgrade_timeout=settings.upgrade_timeout / 1000,
            max_queue=settings.outbound_buffer,
            slow_consumer=settings.slow_consumer,
            b64=query.get("b64") in ("1", "true"),
        )
        upgrades = (
            ["websocket"]
            if transport is Transport.POLLING and settings.allow_upgrades and "websocket" in settings.transports
            else []
        )
        session.send(
            Envelope.of(
                eio.encode_open(
                    session.sid,
                    upgrades=upgrades,
                    ping_interval=settings.ping_interval,
                    ping_timeout=settings.ping_timeout,
                    max_payload=settings.max_payload,
                )
            )
        )
        connection = Connection(session, handshake, self.deadlines, self.sessions.discard)
        connection.receiver = self._server.attach(connection)
        self.sessions.add(connection)
        return connection


# --------------------------------------------------------------------------------------------- helpers
#: Header values that differ for every connection, so sharing them saves nothing.
_UNIQUE_HEADERS = frozenset({"sec-websocket-key", "cookie", "authorization", "x-forwarded-for"})
#: Longer header values are kept as they are.
_INTERN_UP_TO = 256
#: Header names as the handshake keeps them, by their bytes on the wire: every client sends the same
#: few, so each is decoded once (the first few hundred distinct names, whatever clients send).
_NAMES: dict[bytes, str] = {}
_NAMES_KEPT = 512


def make_handshake(
    raw_headers: Iterable[tuple[bytes, bytes]], query: dict[str, str], path: str, raw_query: str, address: str, secure: bool
) -> Handshake:
    """The :class:`Handshake` of a request: every header (lower-case names, repeats joined with ", ")."""
    headers: dict[str, str] = {}
    for key, value in raw_headers:
        # An idle connection keeps its handshake for hours, and most of it is the same for every
        # client (names, Host, Origin, User-Agent...): interned, those strings are shared rather than
        # copied per connection. Per-connection values (the websocket key, cookies) are not worth it.
        name = _NAMES.get(key)
        if name is None:
            name = sys.intern(key.decode("latin-1").lower())
            if len(_NAMES) < _NAMES_KEPT:
                _NAMES[key] = name
        text = value.decode("latin-1")
        if name not in _UNIQUE_HEADERS and len(text) <= _INTERN_UP_TO:
            text = sys.intern(text)
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return Handshake(
        headers=headers,
        query=query,
        address=address,
        url=path + (f"?{raw_query}" if raw_query else ""),
        secure=secure,
    )


def client_address(peer: str, forwarded_for: str | None, trust_proxy: int) -> str:
    """The client's address behind ``trust_proxy`` reverse proxies that each append to ``X-Forwarded-For``.

    The chain is the header's entries followed by the TCP ``peer``; the last ``trust_proxy`` links of
    it are trusted proxies, so the client is the link just before them (or the first link, when the
    header is shorter than that). Entries a client wrote itself come first in the header, so they are
    never reached unless the setting trusts more proxies than there are.
    """
    if trust_proxy <= 0 or not forwarded_for:
        return peer
    chain = [entry.strip() for entry in forwarded_for.split(",")]
    chain = [entry for entry in chain if entry]
    chain.append(peer)
    return chain[max(0, len(chain) - 1 - trust_proxy)]


def _header(scope: Scope, name: str) -> str | None:
    """A request header of an ASGI scope, repeats joined with ", " (as :func:`make_handshake` joins them)."""
    wanted = name.encode()
    values = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key.lower() == wanted]
    return ", ".join(values) if values else None


class BodyTooLarge(Exception):
    """A request body grew past its limit; the rest of it is not read."""


class BodyTruncated(Exception):
    """The client hung up before its request body was complete."""


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, as its ``Content-Length`` (or chunked encoding) announced it.

    Raises :class:`BodyTooLarge` as soon as it grows past ``limit`` bytes, and :class:`BodyTruncated`
    when the client disconnects first: the server (hypercorn, through h11) says the body is complete
    only once all of it has arrived, so a partial body never passes for a whole one, and the packets
    in a cut-short POST are never handled (a truncated payload is not a shorter one: the client never
    sent that request).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BodyTruncated(f"the client went away after {size} bytes of the body ({message['type']})")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond_error(send: Send, error: eio.HandshakeError) -> None:
    await _respond(send, error.status, error.body(), "application/json")


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})

