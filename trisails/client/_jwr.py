"""Virtual requests and their responses (JWRs), as pure functions and values.

A *virtual request* is how sails.io.js does HTTP over a socket: a Socket.IO EVENT named after the
lower-case verb, with one argument and an ack id::

    42<id>["get",{"method":"get","headers":{...},"data":{...},"url":"/say/hello"}]

The server answers with an ACK carrying one *JWR* (JSON WebSocket Response)::

    43<id>[{"body":...,"headers":{...},"statusCode":200}]

This module builds the request object, turns ack arguments into a :class:`JWR`, and decides which
requests the client must repeat after a reconnect (the server marks them with ``x-trisails-rejoin: 1``).
Like the protocol codecs it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, final

import orjson

from ._errors import JWRError

__all__ = ["JWR", "VERBS"]

#: The events a Sails server listens to for virtual requests; any other verb would never be answered.
VERBS: Final = frozenset({"get", "post", "put", "patch", "delete", "options", "head"})
#: The ``code`` of the error object a Sails server acks instead of a JWR when it cannot parse a request.
PARSE_ERROR_CODE: Final = "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ"
#: The response header by which a trisails server says "this request made the socket join a room".
REJOIN_HEADER: Final = "x-trisails-rejoin"


@final
class JWR:
    """The response to a virtual request: ``status_code``, ``headers`` and ``body``, as sails.io.js has them.

    ``error`` is a :class:`JWRError` when the request failed (a status below 200 or from 400 up, or a
    parse error), else ``None``. As in sails.io.js, 3xx counts as success. A request method returns
    ``(body, jwr)`` whatever the status, so check ``jwr.error`` or call :meth:`raise_for_status`.
    """

    __slots__ = ("body", "error", "headers", "status_code")

    def __init__(
        self, body: Any, headers: dict[str, Any], status_code: int, *, error: JWRError | None = None
    ) -> None:
        self.body = body
        self.headers = headers
        self.status_code = status_code
        if error is None and not 200 <= status_code < 400:
            error = JWRError.for_status(self)
        self.error = error

    def __repr__(self) -> str:
        return f"<JWR {self.status_code} body={self.body!r}>"

    def raise_for_status(self) -> None:
        """Raise :attr:`error` if the request failed; do nothing if it succeeded."""
        if self.error is not None:
            raise self.error

    def header(self, name: str, default: Any = None) -> Any:
        """The value of header ``name``, whatever its case (Sails may send both ``X-A`` and ``x-a``)."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    def to_dict(self) -> dict[str, Any]:
        """The JWR as the server sent it: ``{"body", "headers", "statusCode"}`` (sails.io.js ``toPOJO``)."""
        return {"body": self.body, "headers": self.headers, "statusCode": self.status_code}

    @property
    def rejoin(self) -> bool:
        """Whether the server marked this request as one to repeat after a reconnect."""
        return str(self.header(REJOIN_HEADER, "")).strip() == "1"

    @classmethod
    def from_ack(cls, args: list[Any]) -> JWR:
        """The JWR an ack's arguments carry.

        * A normal ack is one object with ``body``, ``headers`` and ``statusCode``. A missing
          ``statusCode`` means 200 (the server's ``sendStatusCode`` is off), as in sails.io.js.
        * A parse-error ack is the server's error object instead, with ``code`` =
          ``SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ`` and no ``statusCode``. sails.io.js mistakes it for a
          200 with no body; here it is an error whose status is the object's ``status`` (400), with
          the whole object as the body.
        * Anything else is not a JWR at all: status 0, "The socket request failed."
        """
        if len(args) != 1 or not isinstance(args[0], dict):
            body = args[0] if len(args) == 1 else args
            return cls(body, {}, 0)
        response: dict[str, Any] = args[0]
        if "statusCode" not in response and response.get("code") == PARSE_ERROR_CODE:
            status = response.get("status")
            jwr = cls(response, {}, status if isinstance(status, int) else 400)
            details = response.get("details") or response.get("message") or "no details"
            jwr.error = JWRError(f"The server could not parse the request: {details}", jwr, code=PARSE_ERROR_CODE)
            return jwr
        status = response.get("statusCode", 200)
        headers = response.get("headers")
        return cls(
            response.get("body"),
            headers if isinstance(headers, dict) else {},
            status if isinstance(status, int) and not isinstance(status, bool) else 0,
        )


def virtual_request(
    method: str, url: str, data: Any, headers: Mapping[str, Any] | None, defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The object sails.io.js emits for a request, keys in its order: method, headers, data, url.

    ``headers`` wins over ``defaults`` for a name in both (sails.io.js: per-request headers, then the
    socket's ``headers`` for names not already present). ``data`` defaults to ``{}``.

    Raises:
        ValueError: ``method`` is not one a Sails server answers (the request would wait forever).
        TypeError: ``url`` is not a string.
    """
    verb = method.lower()
    if verb not in VERBS:
        raise ValueError(f"a virtual request method must be one of {', '.join(sorted(VERBS))}, not {method!r}")
    if not isinstance(url, str):
        raise TypeError(f"a virtual request url must be a string, not {type(url).__name__}")
    merged = {**defaults, **(headers or {})}
    return {"method": verb, "headers": merged, "data": {} if data is None else data, "url": url}


@dataclass(frozen=True)
class Rejoin:
    """A request that made the socket join a room, remembered to be sent again after a reconnect.

    Only the request's own headers are kept: the client's default headers are merged in again when it is
    repeated, so a token refreshed in ``Client.headers`` is the one that goes out.
    """

    method: str
    url: str
    data: Any
    headers: dict[str, Any]

    def key(self) -> tuple[str, str, str, str]:
        """What makes two requests "the same" for deduplication: everything, with dict order ignored."""
        return (self.method, self.url, _canonical(self.data), _canonical(self.headers))


def _canonical(value: Any) -> str:
    """A stable text form of JSON-like data with bytes: sorted keys, bytes as hex."""

    def fallback(item: Any) -> Any:
        if isinstance(item, (bytes, bytearray, memoryview)):
            return {"$bytes": bytes(item).hex()}
        raise TypeError

    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=fallback).decode("utf-8")
    except TypeError:
        return repr(value)
