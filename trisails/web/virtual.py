"""The virtual-request interpreter: socket events named after HTTP verbs run through the router.

Every socket of the main namespace answers the events ``get post put patch delete options head``. The
envelope is validated and the client's SDK version checked (:mod:`trisails.protocol.virtual`); then the
request goes through :func:`~trisails.web.dispatch.dispatch` exactly like an HTTP request, with
``req.is_socket`` true, and the response comes back as the JWR ack. A request sent without an ack runs
and answers nothing; a parse error is the ack when there is one, else a ``sails:parseError`` event.

A socket's requests are handled one at a time, in order, like its other events.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from .._ratelimit import TokenBucket
from ..protocol import virtual
from .dispatch import dispatch, unsendable
from .request import _UNSET as _NO_BODY
from .request import Request
from .sessions import new_sid
from .._concurrency import call

if TYPE_CHECKING:
    from .._app import App
    from ..realtime.server import Ack, Socket

__all__ = ["REJOIN_HEADER", "attach"]

log = logging.getLogger("trisails.web")
access_log = logging.getLogger("trisails.access")
socket_log = logging.getLogger("trisails.sockets")

#: Added to the JWR of a request that changed the socket's rooms (joined or left one), for clients that
#: asked for it (``__trisails_client=1``): after a reconnect they repeat such requests, in order, to get
#: their rooms back.
REJOIN_HEADER = "x-trisails-rejoin"

_VERBS = frozenset(virtual.VERBS)


def attach(app: App, socket: Socket) -> None:
    """Make ``socket`` answer virtual requests (a connection handler of the main namespace), with the
    session its handshake cookie names, or a new one made for it now (unless it opted out)."""
    requests = _Requests(app, socket)
    socket.on_events(_VERBS, requests)
    if app.settings.sockets.after_disconnect is not None:
        socket.on("disconnect", requests.after_disconnect)
    if socket_log.isEnabledFor(logging.DEBUG):  # checked per socket: nothing is added when it is off
        socket_log.debug("socket %s connected from %s", socket.id, socket.handshake.address or "-")
        socket.on("disconnect", partial(_log_disconnect, socket.id))


def _log_disconnect(socket_id: str, reason: str) -> None:
    socket_log.debug("socket %s disconnected: %s", socket_id, reason)


def _no_session(socket: Socket) -> bool:
    """The ``nosession`` handshake header: no session for this socket at all."""
    return "nosession" in socket.handshake.headers


def _sdk_version(socket: Socket) -> str | None:
    name = "__sails_io_sdk_version"
    return socket.handshake.headers.get(name) or socket.handshake.query.get(name)


class _Requests:
    """One socket's virtual requests: what is settled at connect time (its rate bucket, its SDK
    version's verdict), and the handler every verb event calls."""

    __slots__ = ("app", "socket", "bucket", "_sdk_ok", "_cookie", "_cookie_settled")  # one per socket: kept small

    def __init__(self, app: App, socket: Socket) -> None:
        settings = app.settings.sockets
        self.app = app
        self.socket = socket
        self.bucket = TokenBucket(settings.request_rate, settings.request_burst)
        self._sdk_ok: bool | None = None
        self._cookie: str | None = None
        self._cookie_settled = False

    @property
    def sdk_ok(self) -> bool:
        """Whether the socket's SDK version speaks the Sails 1 request format: judged once, at its first
        request (the handshake does not change), not for every socket that connects."""
        if self._sdk_ok is None:
            self._sdk_ok = virtual.sdk_version_ok(_sdk_version(self.socket))
        return self._sdk_ok

    @property
    def cookie(self) -> str | None:
        """The cookie the socket's requests carry: the handshake's, with a session of their own when it
        named none (server-side only, as in Sails: the client never sees this cookie).

        Settled at the first request (or disconnect), not at connect: most sockets of a busy server
        never send a request, and minting and signing a session id was a tenth of a connection's cost.
        No one sees the value before then, so nothing observable changes."""
        if not self._cookie_settled:
            socket, sessions = self.socket, self.app.sessions
            cookie = socket.handshake.headers.get("cookie")
            if sessions.enabled and not _no_session(socket) and socket.handshake.query.get("nosession") != "true":
                if sessions.sid_in(cookie) is None:
                    cookie = sessions.with_cookie(cookie, new_sid())
            self._cookie = cookie
            self._cookie_settled = True
        return self._cookie

    @cookie.setter
    def cookie(self, value: str | None) -> None:
        self._cookie = value
        self._cookie_settled = True

    async def after_disconnect(self, reason: str) -> None:
        """The app's ``sockets.after_disconnect(session, socket)`` hook, with the socket's session."""
        app, socket = self.app, self.socket
        hook = app.settings.sockets.after_disconnect
        assert hook is not None
        session = None
        if app.sessions.enabled and not _no_session(socket):
            session = await app.sessions.open(self.cookie)
        await call(hook, session, socket)
        if session is not None:
            await app.sessions.save(session)

    async def __call__(self, verb: str, args: list[Any], ack: Ack | None) -> None:
        logging_access = self.app.settings.log.access and access_log.isEnabledFor(logging.INFO)
        started = time.perf_counter() if logging_access else 0.0
        if self.app.draining:
            if ack is not None:
                ack(virtual.jwr("Service Unavailable: the server is shutting down", {}, 503))
            status = 503
        else:
            with self.app.socket_requests.track():
                status = await self._serve(verb, args, ack)
        if logging_access:
            envelope = args[0] if args and isinstance(args[0], dict) else {}
            url = envelope.get("url")
            path = url.split("?", 1)[0] if isinstance(url, str) else "-"
            access_log.info(
                "%s %s %d %.1fms socket %s", verb.upper(), path, status, (time.perf_counter() - started) * 1000, self.socket.id
            )

    async def _serve(self, verb: str, args: list[Any], ack: Ack | None) -> int:
        """Answer one virtual request; returns its status, for the access log."""
        app, socket, bucket = self.app, self.socket, self.bucket
        production = app.settings.production
        if not bucket.take():
            log.info("socket %s is over sockets.request_rate: %s refused with 429", socket.id, verb)
            if ack is not None:
                wait = f"{bucket.retry_after():.3f}"
                ack(virtual.jwr("Too Many Requests", {"retry-after": wait}, 429))
            return 429
        try:
            # Sails' order: the envelope and its url first, then the SDK version.
            forced = {"cookie": self.cookie} if self.cookie is not None else {}
            if "origin" in socket.handshake.headers:
                forced["origin"] = socket.handshake.headers["origin"]
            request = virtual.parse(
                verb, args[0] if args else None, forced_headers=forced, max_depth=app.settings.http.max_json_depth
            )
            if not self.sdk_ok:
                raise virtual.VirtualRequestError(virtual.old_sdk_details(_sdk_version(socket)))
        except virtual.VirtualRequestError as error:
            log.info("socket %s sent a request that cannot be parsed: %s", socket.id, error.details)
            problem = virtual.parse_error(error.details, production=production)
            if ack is not None:
                ack(problem)
            else:
                socket.emit("sails:parseError", problem)
            return 400
        req = Request(
            app=app,
            method=request.method,
            url=request.url,
            path=request.path,
            query=request.query,
            body=request.body,
            headers=request.headers,
            ip=socket.handshake.address,
            socket=socket,
        )
        if not _no_session(socket):
            await app.sessions.attach(req, self.cookie)
        room_changes = socket.room_changes
        res = await dispatch(app.router, req, production=production, policies=app.policies)
        if req.session is not None and await app.sessions.save(req.session):
            # a socket that skipped the connect-time session keeps the one its request made
            self.cookie = app.sessions.with_cookie(self.cookie, req.session.id)
        headers = dict(res.headers)
        if socket.room_changes != room_changes and req.rejoin is not False and socket.handshake.query.get("__trisails_client") == "1":
            headers[REJOIN_HEADER] = "1"
        if ack is None:
            return res.status_code
        answer = (
            {"headers": headers, "statusCode": res.status_code}
            if res.body is _NO_BODY
            else virtual.jwr(res.body, headers, res.status_code)
        )
        try:
            ack(answer)
        except (TypeError, ValueError) as error:  # a body JSON cannot hold: the client still gets an answer
            failed = unsendable(req, res.body, production=production, error=error)
            ack(virtual.jwr(failed.body, {}, failed.status_code))
            return failed.status_code
        return res.status_code
