"""The exceptions trisails raises, in one small taxonomy.

Everything trisails raises on purpose derives from :class:`TrisailsError`, so an application can catch
"anything from the framework" in one place. The protocol errors say *who* broke the rules, in the spirit
of h11's Local/Remote split: a :class:`ProtocolError` always means the peer sent something we cannot
accept, and the connection that carried it is closed with :attr:`ProtocolError.reason`. This module
imports nothing from trio, so the sans-I/O protocol core can use it.
"""

from __future__ import annotations

__all__ = [
    "AckTimeout",
    "AppLoadError",
    "CertificateError",
    "ConfigError",
    "ConnectionRefused",
    "DisconnectedError",
    "EngineIOError",
    "PresenceLimitReached",
    "ProtocolError",
    "RoomLimitReached",
    "SocketIOError",
    "TrisailsError",
    "WebSocketError",
]


class TrisailsError(Exception):
    """Base class of every error trisails raises on purpose.

    :attr:`http_status` says how a request answers when its action lets the error escape: None (the
    default) is a bug, a 500; a number is the client's mistake or a limit it hit, answered with that
    status and :meth:`response_body` instead of a 500.
    """

    http_status: int | None = None

    def response_body(self, method: str, path: str, *, production: bool) -> object:
        """The body of the answer when :attr:`http_status` is set: the message, unless a subclass says
        more (a :class:`~trisails.UsageError` names the parameter, in Sails' shape)."""
        return str(self)


class RoomLimitReached(TrisailsError):
    """A socket would be in more rooms than ``sockets.max_rooms_per_socket`` allows: it must leave some
    first. A request whose action hits the limit is answered 429 with this message."""

    http_status = 429


class PresenceLimitReached(TrisailsError):
    """Presence was asked to hold more than its limits allow for one socket: metadata larger than
    ``sockets.max_presence_meta_size`` bytes of JSON, or tracking in more rooms than
    ``sockets.max_presences_per_socket``. Nothing is tracked. A request whose action hits it is answered
    400 with this message."""

    http_status = 400


class ConfigError(TrisailsError):
    """A setting has a value trisails cannot use; the message names the setting and what it accepts."""


class AppLoadError(ConfigError):
    """An app folder could not be loaded: a config or api module is missing, broken or of the wrong shape.

    ``str(error)`` says what is wrong. Where the mistake is known to sit in a file of the folder,
    :attr:`file` and :attr:`line` point at it, :attr:`excerpt` holds that line (with a caret under the
    spot, for a syntax error) and :attr:`hint` says what to do; ``python -m trisails`` prints them as
    ``trisails: <what> (<file>:<line>)`` followed by the excerpt and the hint.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        excerpt: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        """The file of the app folder where the mistake is, when known."""
        self.line = line
        """Its line number (1-based), when known."""
        self.excerpt = excerpt
        """The offending line of source, and a caret line under it for a syntax error."""
        self.hint = hint
        """What to do about it, in a sentence."""


class CertificateError(ConfigError):
    """The TLS certificate or key (``http.ssl``, ``--certfile``/``--keyfile``) cannot be used: a file is
    missing, is not PEM, is encrypted, or the key does not match the certificate. The message names them."""


class ProtocolError(TrisailsError):
    """The peer sent bytes that break the websocket, Engine.IO or Socket.IO protocol.

    Raised by the sans-I/O codecs in :mod:`trisails.protocol`. The server answers it by closing the one
    connection that sent the data (logging :attr:`reason`); other connections are never affected.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EngineIOError(ProtocolError):
    """A malformed Engine.IO packet or polling payload."""


class SocketIOError(ProtocolError):
    """A malformed Socket.IO packet (bad type, namespace, ack id, JSON or binary attachments)."""


class WebSocketError(ProtocolError):
    """A malformed websocket upgrade request or frame (RFC 6455).

    It carries what to answer with: :attr:`close_code` is the close code to send once the connection
    is open (1002 protocol error, 1007 invalid data, 1009 message too big), and :attr:`status` the HTTP
    status to refuse a handshake with (400, 426 for an unsupported version, 431 for a head too large).
    """

    def __init__(self, reason: str, *, close_code: int = 1002, status: int = 400) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.status = status


class ConnectionRefused(TrisailsError):
    """Raise this from connection middleware to refuse a socket.

    The client receives a connect error as a Socket.IO server's ``next(err)`` produces it: v5 clients
    (socket.io-client 3 and 4) get ``{"message": ..., "data": ...}``; v4 clients (socket.io-client 2,
    sails.io.js) get ``data`` when there is some, else the message.
    """

    def __init__(self, message: str = "Not authorized", data: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class DisconnectedError(TrisailsError):
    """The socket disconnected before the operation (an emit waiting for an ack, a send) could finish."""


class AckTimeout(TrisailsError):
    """The peer did not acknowledge within the timeout given to :meth:`Socket.call` (or ``sockets.ack_timeout``)."""
