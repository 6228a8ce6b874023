"""Everything that touches hypercorn, in one place: the listener, and the ASGI app hypercorn serves.

One port, two paths. The accept loop reads each new connection's request head (bounded in size and
time). A websocket upgrade for the Engine.IO path (:func:`is_socket_path`, the one rule for matching
it) is served on the trio stream directly, by :mod:`trisails.realtime.connection`. Any other connection
is handed to hypercorn's own per-connection server with the bytes already read replayed in front of
the stream, so hypercorn sees exactly what the client sent; it serves plain HTTP and long-polling.

hypercorn never serves a websocket: its socket writes cannot be cancelled, so a client that stopped
reading would pin its connection past every timeout. A websocket upgrade that arrives as a later
request of a kept-alive HTTP connection (browsers and the socket.io clients open a fresh connection
for it) is refused with 400, and the client goes on polling. For the same reason permessage-deflate is
negotiated only by our own framing, never by hypercorn.

Every connection is bounded in time, whatever serves it (:class:`ConnectionLimits`): the request head
(``sockets.handshake_timeout``), an idle keep-alive connection, a request body that stops arriving, a
response the client does not read. hypercorn has its own keep-alive timer, but it starts that timer from
the task that finished the response, which quart-trio has already cancelled by then, so the timer died at
once (and so did the closing of a ``Connection: close`` answer): :class:`_HttpConnection` runs those steps
shielded. The accept loop survives running out of file descriptors (:func:`_accept_loop`), and one address
may hold only so many connections at once.

With a certificate (``http.ssl``, ``--certfile``/``--keyfile``) the same port speaks TLS only: each
accepted connection is wrapped in a ``trio.SSLStream`` before its head is read, so https and wss share
it as http and ws did. A connection whose TLS handshake fails (a plain-HTTP client, a scanner, a
client that distrusts the certificate) is closed quietly, with a debug line. hypercorn learns that
the connection is secure from the stream it is handed (:class:`_SecureReplayStream`), and reports
``https`` in the scope.

This relies on hypercorn internals (``TCPServer``, ``Lifespan``, ``WorkerContext``) of the pinned
hypercorn 0.18.0; ``tests/app/test_serving.py`` guards the contract.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import h11
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext

from .._errors import CertificateError, WebSocketError
from ..protocol import websocket as rfc6455
from .endpoint import make_handshake
from .websocket import StreamWebSocket

if TYPE_CHECKING:
    from .endpoint import EngineIOEndpoint

__all__ = ["ConnectionLimits", "hypercorn_config", "is_lookup_error", "is_socket_path", "probe_listen", "serve", "server_ssl_context"]

log = logging.getLogger("trisails.realtime")

MAX_HEAD = rfc6455.MAX_HEAD
HEAD_TIMEOUT = 10.0
#: Seconds a closing step (hypercorn's, shielded from cancellation) may take before it is cut short.
CLOSE_TIMEOUT = 1.0
#: What ``accept`` fails with when the process or the system has no file descriptor (or buffer) left:
#: the listener waits and tries again instead of stopping.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: The longest pause between two accepts while descriptors are exhausted (it starts at a hundredth).
ACCEPT_BACKOFF_MAX = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a connection may do nothing useful, and how many one address may hold.

    Every connection gets these, whoever serves it: the time to send its request head (the socket
    path's ``handshake_timeout``), then, on the HTTP side, ``keep_alive_timeout`` seconds idle between
    requests, ``body_timeout`` seconds for a request body to arrive once its head has, and
    ``write_timeout`` seconds for one write of the response to be taken by a client that stopped
    reading. ``max_connections_per_ip`` open TCP connections per client address (0: no limit).
    """

    keep_alive_timeout: float = 5.0
    body_timeout: float = 60.0
    write_timeout: float = 30.0
    max_connections_per_ip: int = 0


class _ReplayStream(trio.abc.HalfCloseableStream):
    """``stream`` with ``head`` put back in front of it, for hypercorn to read from the start.

    Each write is bounded by ``write_timeout``: hypercorn shields its writes from cancellation, so a
    client that never reads its response would otherwise hold the connection for ever. A write that
    times out closes the stream and reports it broken, which hypercorn treats as the client gone.
    """

    def __init__(
        self, stream: trio.abc.Stream, raw: trio.SocketStream, head: bytes, *, write_timeout: float = math.inf
    ) -> None:
        self._stream = stream
        self._raw = raw
        self._head = head
        self._write_timeout = write_timeout
        self.socket = raw.socket
        # hypercorn 0.18 calls send_eof outside the lock it holds around send_all; a client hanging
        # up mid-response then made trio raise BusyResourceError (logged as an ASGI error)
        self._sending = trio.Lock()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._head:
            data, self._head = self._head, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._sending:
            with trio.move_on_after(self._write_timeout) as waited:
                await self._stream.send_all(data)
        if waited.cancelled_caught:
            log.info("closed a connection whose client did not read its response for %g s", self._write_timeout)
            await trio.aclose_forcefully(self._stream)
            raise trio.BrokenResourceError("the client did not read the response in time")

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        assert isinstance(self._stream, trio.abc.HalfCloseableStream)
        async with self._sending:
            await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _SecureReplayStream(_ReplayStream):
    """The same over TLS, shaped as hypercorn recognises a TLS connection (it has ``do_handshake``
    and ``transport_stream``), so that it serves the requests as ``https``. The handshake is done
    already, by the listener."""

    @property
    def transport_stream(self) -> trio.SocketStream:
        return self._raw

    async def do_handshake(self) -> None:
        """Done before the head was read; nothing left to do."""

    def selected_alpn_protocol(self) -> str:
        return "http/1.1"  # the only protocol the context offers

    async def send_eof(self) -> None:
        """TLS has no half-close: hypercorn closes the whole stream next."""

    async def aclose(self) -> None:
        # a polite TLS close sends a close_notify, which waits for a client that does not read:
        # try it briefly, then close the connection under it
        with trio.move_on_after(CLOSE_TIMEOUT):
            try:
                await self._stream.aclose()
            except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(self._raw)


def server_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server TLS context for the certificate chain ``certfile`` and its private key ``keyfile``
    (PEM files), offering HTTP/1.1 only (websockets need it; hypercorn would otherwise be asked for
    HTTP/2 by browsers). Raises :class:`CertificateError` naming the file when one cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as error:
        raise CertificateError(
            f"http.ssl: no such file {error.filename or certfile!r}: give the paths of the PEM files of the "
            "certificate (cert, --certfile) and of its private key (key, --keyfile)"
        ) from None
    except (ssl.SSLError, OSError) as error:
        raise CertificateError(
            f"http.ssl: cannot use the certificate {certfile!r} with the key {keyfile!r}: {error}; both must be "
            "PEM files, the key unencrypted and matching the certificate"
        ) from None
    return context


async def _read_head(stream: trio.abc.ReceiveStream, timeout: float = HEAD_TIMEOUT, fd: int = -1) -> bytes:
    """Read until the end of the request head, at most MAX_HEAD bytes (less if the peer stops or
    ``timeout`` seconds pass).

    ``fd`` is the descriptor of a plain TCP ``stream`` (not TLS): what the kernel holds already is read
    from it directly, and a head that came whole (the usual case: clients send it as they connect) is
    returned without a timer or a trip through the scheduler.
    """
    data = b""
    if fd >= 0:
        try:
            data = os.read(fd, MAX_HEAD)
        except BlockingIOError:
            pass
        except OSError:  # reset already: nothing to serve
            return b""
        else:
            if not data or b"\r\n\r\n" in data or len(data) >= MAX_HEAD:
                return data
    with trio.move_on_after(timeout):
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
            chunk = await stream.receive_some(MAX_HEAD)
            if not chunk:
                break
            data += chunk
    return data


def probe_listen(host: str, port: int) -> OSError | None:
    """Whether ``host:port`` can be listened on: None, or the error binding it gave.

    Tried before the app lifts (``python -m trisails``, ``--reload``), so that a port in use is a
    startup failure of one line before anything is opened (the database, Redis). Port 0 always can.
    """
    if port == 0:
        return None
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as error:
        return error
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener does
            try:
                probe.bind(address)
            except OSError as error:
                return error
    return None


def is_lookup_error(error: OSError) -> bool:
    """Whether ``error`` is a failure to resolve a host name (``--host`` names no address of this machine)."""
    return isinstance(error, socket.gaierror)


def is_socket_path(request_path: str, socket_path: str) -> bool:
    """Whether ``request_path`` is the Engine.IO endpoint at ``socket_path`` (with or without its
    trailing slash, as engine.io matches it); the one rule, for websockets and polling alike."""
    return request_path.rstrip("/") == socket_path.rstrip("/")


def hypercorn_config(
    *, graceful_timeout: float, backlog: int, max_message_size: int, keep_alive_timeout: float = 5.0
) -> HypercornConfig:
    """hypercorn's settings for the HTTP side: no access log of its own, no Server header."""
    config = HypercornConfig()
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive_timeout
    config.backlog = backlog
    config.websocket_max_message_size = max_message_size
    config.include_server_header = False
    config.h11_max_incomplete_size = MAX_HEAD  # the documented head limit, on kept-alive requests too
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


class _NoWebSockets:
    """The ASGI app hypercorn serves: the app itself, minus websockets (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self._app(scope, receive, send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        log.info("refused a websocket upgrade on a kept-alive HTTP connection: clients must open a new one")
        body = b"open websockets on a new connection"
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})


class _HttpConnection(TCPServer):
    """hypercorn's server of one HTTP/1.1 connection, with the two repairs that bound its life.

    * The steps that close a connection or start its keep-alive timer run shielded (at most
      ``CLOSE_TIMEOUT`` seconds): hypercorn takes them in the task that finished the response, which
      quart-trio cancels once it has, so they used to stop at their first checkpoint. An idle
      connection then stayed open for ever, and so did one answered ``Connection: close``.
    * A request body must arrive within ``body_timeout`` seconds of its head (hypercorn has only one
      read timeout for everything, which would also cut long-polling requests and slow actions).
    * A client that hangs up ends its idle connection at once, not when the keep-alive timer fires.
    """

    def __init__(self, *args: Any, body_timeout: float) -> None:
        super().__init__(*args)
        self._body_timeout = body_timeout

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, (Closed, Updated)):
            with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT):
                await super().protocol_send(event)
            return
        await super().protocol_send(event)

    def _awaiting_body(self) -> bool:
        """Whether a request head has come and its body is still on the way."""
        protocol = getattr(self.protocol, "protocol", None)  # the H11Protocol (None for HTTP/2)
        connection = getattr(protocol, "connection", None)
        return getattr(connection, "their_state", None) is h11.SEND_BODY

    async def _read_data(self) -> None:
        body_deadline = math.inf
        while True:
            try:
                with trio.fail_at(body_deadline):
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            except trio.TooSlowError:
                log.info("closed a connection whose request body did not arrive within %g s", self._body_timeout)
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
            if not self._awaiting_body():
                body_deadline = math.inf
            elif body_deadline == math.inf:
                body_deadline = trio.current_time() + self._body_timeout
        await self.protocol.handle(Closed())
        # the client is gone: an idle connection ends now, not when its keep-alive timer would have
        # fired (hypercorn's task group waits for that timer, and the descriptor stayed open meanwhile)
        await self.idle_task.stop()


class _Server:
    def __init__(
        self,
        app: Any,
        config: HypercornConfig,
        endpoint: EngineIOEndpoint,
        path: str,
        compression: bool,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self._ssl_context = ssl_context
        self._wrapped = ASGIWrapper(_NoWebSockets(app))  # type: ignore[arg-type]
        self._config = config
        self._endpoint = endpoint
        self._path = path
        self._compression = compression
        self._limits = limits
        self._context = WorkerContext(None)
        self._state: dict[str, Any] = {}
        self._open: dict[str, int] = {}
        """Open connections per client address (only addresses with at least one)."""
        self._refusing: set[str] = set()
        """Addresses at their cap that were logged once already; logged again after they drop below."""

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one connection, unless its address already holds as many as it may."""
        address = _peer_address(stream)
        cap = self._limits.max_connections_per_ip
        if cap and self._open.get(address, 0) >= cap:
            if address not in self._refusing:
                self._refusing.add(address)
                log.warning(
                    "refusing connections from %s: it holds %d, the most one address may (http.max_connections_per_ip)",
                    address, cap,
                )
            await trio.aclose_forcefully(stream)
            return
        self._open[address] = self._open.get(address, 0) + 1
        try:
            await self._serve(stream, address)
        finally:
            left = self._open[address] - 1
            if left:
                self._open[address] = left
            else:
                del self._open[address]
            if cap and left < cap:
                self._refusing.discard(address)

    async def _serve(self, raw: trio.SocketStream, address: str) -> None:
        """Serve one connection: read its request head once (after the TLS handshake, with a
        certificate), then keep it (a websocket for the socket path) or hand it to hypercorn."""
        stream: trio.abc.Stream = raw
        try:
            if self._ssl_context is not None:
                stream = trio.SSLStream(raw, self._ssl_context, server_side=True, https_compatible=True)
                if not await _tls_handshake(stream, self._endpoint.handshake_timeout):
                    return
            data = await _read_head(stream, self._endpoint.handshake_timeout, raw.socket.fileno() if stream is raw else -1)
            try:
                request = rfc6455.parse_upgrade_request(data, max_head=MAX_HEAD)
            except WebSocketError as error:
                if error.status == 431:  # the documented limit holds for every request
                    log.info("refused a request head over %d bytes", MAX_HEAD)
                    await _send_and_close(stream, raw, rfc6455.reject_response(431, b"Request Header Fields Too Large"))
                    return
                request = None  # not HTTP as we read it: hypercorn answers it as it answers bad HTTP
            else:
                if request is None:
                    # nothing, or a head that stopped short (a dead peer, or a slow-loris holding a slot)
                    return
            if request is None or not request.wants_websocket or not is_socket_path(request.path, self._path):
                replay_class = _SecureReplayStream if stream is not raw else _ReplayStream
                replay = replay_class(stream, raw, data, write_timeout=self._limits.write_timeout)
                await _HttpConnection(
                    self._wrapped, self._config, self._context, self._state, replay, body_timeout=self._limits.body_timeout  # type: ignore[arg-type]
                )
                return
            held = [request]
            del request, data  # this task now serves the websocket for hours: it keeps no raw head
            await self._websocket(stream, raw, held.pop(), address)
        except Exception:
            log.exception("connection handler failed")
        finally:
            # however it ended (cancelled while hypercorn's close waited for a lock, too): the
            # descriptor goes back now; closing again is harmless
            await trio.aclose_forcefully(raw)

    async def _websocket(
        self, stream: trio.abc.Stream, raw: trio.SocketStream, request: rfc6455.UpgradeRequest, address: str
    ) -> None:
        secure = stream is not raw
        # os.write to the descriptor would bypass TLS: over TLS every write takes the awaited path
        direct_fd = None if secure else raw.socket.fileno()
        websocket = StreamWebSocket(stream, request, max_message_size=self._endpoint.max_payload, direct_fd=direct_fd)
        if request.upgrade_error is not None:  # a malformed upgrade (no key, wrong version)
            error = request.upgrade_error
            log.info("refused a websocket upgrade: %s", error.reason)
            await websocket.refuse(400, b"Bad request")  # 400 for every malformed upgrade, as engine.io's ws
            return
        query = request.query
        parsed_query = _parse_query(query)
        handshake = make_handshake(request.headers, parsed_query, request.path, query, address, secure)
        del request  # the websocket holds it until it has answered the upgrade, then lets it go

        async def accept() -> StreamWebSocket:
            await websocket.accept(compression=self._compression)
            return websocket

        try:
            await self._endpoint.serve_websocket(query=parsed_query, handshake=handshake, accept=accept, refuse=websocket.refuse)
        finally:
            with trio.CancelScope(shield=True):
                await websocket.close(1000)  # does nothing if the session closed it with its own code


def _parse_query(query: str) -> dict[str, str]:
    """``dict(parse_qsl(query, keep_blank_values=True))``, without parse_qsl's unquoting when there is
    nothing to unquote (a client's usual ``EIO=4&transport=websocket``): a third of the time."""
    if "%" in query or "+" in query:
        return dict(parse_qsl(query, keep_blank_values=True))
    parsed = {}
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            # kept by the handshake for the connection's life: the usual names and values (EIO,
            # transport...) are shared by every connection rather than copied into each
            parsed[sys.intern(name)] = sys.intern(value) if len(value) <= 64 else value
    return parsed


def _peer_address(stream: trio.SocketStream) -> str:
    """The client's IP address (a stand-in socket's name for an in-memory connection)."""
    try:
        peer = stream.socket.getpeername()
    except OSError:  # already reset by the peer
        return "?"
    return peer[0] if isinstance(peer, tuple) else str(peer)


async def _accept_loop(
    listener: trio.abc.Listener[Any], handler: Callable[[Any], Awaitable[None]], nursery: trio.Nursery
) -> None:
    """Accept connections from ``listener`` and serve each in ``nursery`` until cancelled.

    When the process or the system runs out of file descriptors, ``accept`` fails; the connections
    already open go on being served, and the loop waits (a hundredth of a second, doubling up to
    ``ACCEPT_BACKOFF_MAX``) and tries again. It says so once per shortage, not once per try (trio's own
    loop logs a traceback ten times a second), and once more when it accepts again.
    """
    async with listener:  # closed however the loop ends, a crash of the app included
        direct = _DirectAccept.of(listener)
        accept: Callable[[], Awaitable[Any]] = listener.accept if direct is None else direct.accept
        try:
            await _accept_each(accept, handler, nursery)
        finally:
            if direct is not None:
                direct.close()


async def _accept_each(
    accept: Callable[[], Awaitable[Any]], handler: Callable[[Any], Awaitable[None]], nursery: trio.Nursery
) -> None:
    """The accept loop itself (see :func:`_accept_loop`)."""
    backoff = 0.0
    while True:
        try:
            stream = await accept()
        except OSError as error:
            if error.errno not in ACCEPT_CAPACITY_ERRNOS:
                raise
            if not backoff:
                log.warning(
                    "cannot accept connections: %s; the open ones are still served, new ones wait until "
                    "some close (raise the limit of open files, ulimit -n, or lower http.max_connections_per_ip)",
                    error.strerror or error,
                )
            backoff = min(max(backoff * 2, 0.01), ACCEPT_BACKOFF_MAX)
            await trio.sleep(backoff)
            continue
        if backoff:
            log.warning("accepting connections again")
            backoff = 0.0
        nursery.start_soon(handler, stream)


#: What ``accept`` may fail with because of the one connection it was taking (gone before it was
#: accepted, and the like): the next one is accepted as usual (trio's list).
_IGNORABLE_ACCEPT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EPERM", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET", "EHOSTUNREACH",
        "EOPNOTSUPP", "ENETUNREACH", "ENOSR", "ESOCKTNOSUPPORT", "EPROTONOSUPPORT", "ETIMEDOUT", "ECONNRESET",
    )
    if hasattr(errno, name)
)


class _DirectAccept:
    """Accepting from a TCP listener's descriptor directly: a connection the kernel holds already is
    taken without a trip through the scheduler (trio's ``accept`` makes one per connection, and
    registers the listener with epoll again each time); the loop waits only when none is pending, and
    lets the other tasks run after every ``_YIELD_EVERY`` connections taken in a row.

    It accepts on a duplicate of the listener's descriptor (the same listening socket), closed when the
    loop ends, so the listener itself is closed as it always was.
    """

    _YIELD_EVERY = 16

    def __init__(self, listening: socket.socket) -> None:
        self._socket = listening
        self._streak = 0

    @classmethod
    def of(cls, listener: trio.abc.Listener[Any]) -> _DirectAccept | None:
        """One for ``listener`` if it is a trio TCP listener with a descriptor, else None."""
        if type(listener) is not trio.SocketListener:
            return None
        fd = listener.socket.fileno()
        if fd < 0:
            return None
        listening = socket.socket(fileno=os.dup(fd))
        listening.setblocking(False)
        return cls(listening)

    async def accept(self) -> trio.SocketStream:
        while True:
            try:
                sock, _ = self._socket.accept()
            except BlockingIOError:
                self._streak = 0
                await trio.lowlevel.wait_readable(self._socket)
                continue
            except OSError as error:
                if error.errno in _IGNORABLE_ACCEPT_ERRNOS:
                    continue
                raise
            self._streak += 1
            if self._streak >= self._YIELD_EVERY:
                self._streak = 0
                try:
                    await trio.lowlevel.checkpoint()
                except BaseException:
                    sock.close()
                    raise
            return trio.SocketStream(trio.socket.from_stdlib_socket(sock))

    def close(self) -> None:
        trio.lowlevel.notify_closing(self._socket)
        self._socket.close()


async def _tls_handshake(stream: trio.SSLStream[trio.SocketStream], timeout: float) -> bool:
    """Do the TLS handshake of a new connection within ``timeout`` seconds; whether it succeeded.

    A failure is the client's (plain HTTP on the TLS port, a port scanner, a certificate it does not
    trust): that connection is closed, and the server says so only at debug level.
    """
    with trio.move_on_after(timeout):
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as error:
            log.debug("closed a connection whose TLS handshake failed: %s", error.__cause__ or error)
            return False
        return True
    log.debug("closed a connection that did not finish its TLS handshake within %g s", timeout)
    return False


async def _send_and_close(stream: trio.abc.Stream, raw: trio.SocketStream, data: bytes) -> None:
    with trio.move_on_after(1.0):
        try:
            await stream.send_all(data)
        except trio.BrokenResourceError:
            pass
    await trio.aclose_forcefully(raw)


async def serve(
    app: Any,
    config: HypercornConfig,
    endpoint: EngineIOEndpoint,
    *,
    host: str,
    port: int,
    path: str,
    compression: bool,
    shutdown_trigger: Callable[[], Awaitable[None]],
    requests_done: Callable[[float], Awaitable[bool]] | None = None,
    listeners: Sequence[trio.abc.Listener[Any]] | None = None,
    limits: ConnectionLimits = ConnectionLimits(),
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown_trigger`` returns, then drain gracefully:
    ``requests_done(timeout)`` waits until the HTTP requests in flight are answered, and then idle
    keep-alive connections are closed at once instead of holding shutdown for ``graceful_timeout``.

    ``task_status.started`` receives the base URL (``http://127.0.0.1:PORT``, ``https://`` with an
    ``ssl_context``); port 0 picks a free port.
    Given ``listeners`` (:mod:`trisails.testing`'s in-memory one), serve those instead of opening a port;
    the URL is then ``memory://``.
    """
    server = _Server(app, config, endpoint, path, compression, limits, ssl_context)
    lifespan = Lifespan(server._wrapped, config, server._state)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        if listeners is None:
            tcp = await trio.open_tcp_listeners(port, host=host, backlog=config.backlog)
            bound = tcp[0].socket.getsockname()
            scheme = "https" if ssl_context is not None else "http"
            url = f"{scheme}://{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"{scheme}://[{bound[0]}]:{bound[1]}"
            listeners = tcp
        else:
            url = "memory://"
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(_accept_loop, listener, server.handle, connections)
                task_status.started(url)
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            await server._context.terminated.set()  # hypercorn stops reading new requests
            connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
            if requests_done is not None and await requests_done(config.graceful_timeout):
                # every request is answered: what is left are idle keep-alive connections, which need
                # not wait for their keep-alive timeout
                connections.cancel_scope.cancel()
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
