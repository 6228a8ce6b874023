"""The exceptions the client raises, on top of the framework's own taxonomy.

The client reuses three errors from :mod:`trisails._errors`, because they mean the same thing on both
ends of a socket:

* :class:`~trisails.DisconnectedError`: the socket went away before an operation could finish (a request
  in flight when the connection dropped, or anything asked of a client that has stopped connecting).
* :class:`~trisails.ConnectionRefused`: the server refused the namespace connection (its middleware raised
  ``ConnectionRefused``; the client gets the same ``message`` and ``data``).
* :class:`~trisails.AckTimeout`: :meth:`Client.call` waited longer than its ``timeout``.

Two are the client's own: :class:`ConnectError` (the server could not be reached at all) and
:class:`JWRError` (the server answered a virtual request with an error status).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .._errors import TrisailsError

if TYPE_CHECKING:
    from ._jwr import JWR

__all__ = ["ConnectError", "JWRError"]


class ConnectError(TrisailsError):
    """The client could not open a connection: the TCP connection or the websocket upgrade failed, or
    the server did not finish the Engine.IO and Socket.IO handshakes within ``connect_timeout``.

    The underlying error, if there was one, is the ``__cause__``. Compare
    :class:`~trisails.ConnectionRefused`, which means the server was reached and said no.
    """


class JWRError(TrisailsError):
    """A virtual request got an error response: a status below 200 or from 400 up, or a parse error.

    It is what :attr:`JWR.error` holds and what :meth:`JWR.raise_for_status` raises. The message is the
    one sails.io.js builds (``Server responded with a 404 status code:`` and the body as JSON), so logs
    read the same from both clients.

    Attributes:
        jwr: the response.
        status_code: its status code.
        body: its body.
        code: ``"SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ"`` when the server could not even parse the request
            (an old SDK version, no url); ``None`` for an ordinary error status.
    """

    def __init__(self, message: str, jwr: JWR, *, code: str | None = None) -> None:
        super().__init__(message)
        self.jwr = jwr
        self.status_code = jwr.status_code
        self.body = jwr.body
        self.code = code

    @classmethod
    def for_status(cls, jwr: JWR) -> JWRError:
        """The error for a response whose status code says it failed."""
        if jwr.status_code == 0:
            return cls("The socket request failed.", jwr)
        return cls(f"Server responded with a {jwr.status_code} status code:\n```\n{_pretty(jwr.body)}\n```", jwr)


def _pretty(body: Any) -> str:
    """The body as indented JSON, as ``JSON.stringify(body, null, 2)`` would show it."""
    try:
        return orjson.dumps(body, option=orjson.OPT_INDENT_2, default=repr).decode("utf-8")
    except TypeError:  # integers beyond 64 bits and the like: not worth failing an error message over
        return repr(body)
