"""The sails.io.js virtual request: an HTTP request carried in a Socket.IO event, answered by an ack.

On the wire a virtual request is an EVENT whose name is the lower-case verb and whose one argument is an
envelope, sent with an ack id::

    420["post",{"method":"post","headers":{"x-foo":"bar"},"data":{"n":5},"url":"/chat/join?x=1"}]

and the answer is an ACK carrying one JSON web response (JWR)::

    430[{"body":{"joined":true},"headers":{},"statusCode":200}]

This module is the pure part: it validates an envelope (:func:`parse`), checks the client SDK's version
(:func:`sdk_version_ok`), and shapes JWRs and the ``PARSE_VIRTUAL_REQ`` error (:func:`jwr`,
:func:`parse_error`). What a request *means* (routing, actions) lives in :mod:`trisails.web`.

Two things differ from Sails on purpose: a version that is not semver is refused like an old one instead
of crashing the server, and ``data`` or ``headers`` that are not objects are parse errors instead of
being passed on. Values are shown in error details and stringified headers as JavaScript shows them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from trisails._errors import TrisailsError

__all__ = [
    "MINIMUM_SDK_VERSION",
    "VERBS",
    "VirtualRequest",
    "VirtualRequestError",
    "js_string",
    "nested_deeper_than",
    "jwr",
    "parse",
    "parse_error",
    "parse_query",
    "sdk_version_ok",
]

#: The event names that carry virtual requests; any other event is an ordinary Socket.IO event.
VERBS = ("get", "post", "put", "delete", "patch", "options", "head")

#: Clients older than this speak a request format Sails 1 no longer understands.
MINIMUM_SDK_VERSION = (0, 11, 0)

#: What Sails assumes when a client sends no version at all (and therefore refuses it).
ASSUMED_SDK_VERSION = "0.9.0"

#: How deeply the values of a virtual request (its ``data``, ``params`` and ``headers``) may nest, unless
#: the caller says otherwise: deeper is a parse error, not a RecursionError later.
MAX_DEPTH = 32

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")
_MAX_VERSION_LENGTH = 64  # longer is no version; and int() refuses numbers past 4300 digits


class VirtualRequestError(TrisailsError):
    """An envelope sails.io.js would never send; ``details`` says what is wrong, for the client (who
    gets it as a parse-error JWR, status 400)."""

    http_status = 400

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class VirtualRequest(NamedTuple):
    """A validated virtual request: what the router needs, nothing socket-specific. (A named tuple, not a
    frozen dataclass: one is made for every socket request, and a frozen dataclass costs a microsecond
    more to make.)"""

    method: str
    """Upper case, as ``req.method`` is in Sails (``"POST"``)."""
    url: str
    path: str
    query: dict[str, Any]
    body: Any
    headers: dict[str, str]


def sdk_version_ok(version: str | None) -> bool:
    """Whether a client reporting ``version`` speaks the Sails 1 request format (``>= 0.11.0``).

    A missing version counts as 0.9.0, as in Sails; anything that is not semver is refused.
    """
    text = (version or ASSUMED_SDK_VERSION).strip()
    match = _SEMVER.match(text) if len(text) <= _MAX_VERSION_LENGTH else None
    if match is None:
        return False
    return tuple(int(part) for part in match.groups()) >= MINIMUM_SDK_VERSION


def parse_query(query: str) -> dict[str, Any]:
    """A URL query as Express gives it: one value as a string, a repeated name as a list."""
    result: dict[str, Any] = {}
    if not query:
        return result
    if "%" in query or "+" in query:
        pairs: Iterable[tuple[str, str]] = parse_qsl(query, keep_blank_values=True)
    elif "&" not in query:  # one parameter (``x=1``)
        name, _, value = query.partition("=")
        result[name] = value
        return result
    else:  # nothing to unquote (``x=1&y=2``, the usual case): what parse_qsl gives, without its machinery
        pairs = [(name, value) for name, _, value in (item.partition("=") for item in query.split("&") if item)]
    for name, value in pairs:
        if name in result:
            previous = result[name]
            result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[name] = value
    return result


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) holds lists or objects nested more than ``limit`` levels deep.

    ``[]`` and ``{}`` are one level, ``[[1]]`` two. Walked with a stack, not recursion, so a value nested
    as deep as a JSON parser allows is measured, not a RecursionError.
    """
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]  # only lists and objects go on it
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def parse(
    verb: str, envelope: Any, *, forced_headers: dict[str, str] | None = None, max_depth: int = MAX_DEPTH
) -> VirtualRequest:
    """Validate the envelope of a ``verb`` event and build the request.

    ``forced_headers`` come from the socket's handshake and win over the envelope's own (Sails forces the
    handshake ``cookie`` and ``origin``). ``data`` becomes the body for every verb, GET included; the
    query comes only from the URL. Values nested more than ``max_depth`` levels (the envelope itself not
    counted) are refused. Raises :class:`VirtualRequestError` with the details Sails would give.
    """
    if not isinstance(envelope, dict):
        raise VirtualRequestError(f"Could not parse request: expected an object, got {_describe(envelope)}")
    if nested_deeper_than(envelope, max_depth + 1):
        raise VirtualRequestError(f"Could not parse request: its values are nested more than {max_depth} levels deep")
    url = envelope.get("url")
    if not url:
        raise VirtualRequestError("No url provided in request: [object Object]")
    if not isinstance(url, str):
        raise VirtualRequestError(f"Invalid url provided: {js_string(url)}")
    try:
        parts = urlsplit(url)  # an absolute url is routed by its path, as Sails does
    except ValueError:  # a malformed host part ("//[", "http://[::1")
        raise VirtualRequestError(f"Invalid url provided: {url[:200]}") from None
    data = envelope.get("data")
    params = envelope.get("params")
    if data is not None and not isinstance(data, (dict, list)):
        raise VirtualRequestError(f"Invalid data provided: expected an object, got {_describe(data)}")
    if params is not None and not isinstance(params, (dict, list)):
        raise VirtualRequestError(f"Invalid params provided: expected an object, got {_describe(params)}")
    if isinstance(data, list):
        body: Any = data
    elif isinstance(params, dict) and params:
        body = {**params, **(data or {})}
    else:  # (params given as a list add nothing to an object body)
        body = dict(data) if data else {}
    raw_headers = envelope.get("headers")
    if raw_headers is not None and not isinstance(raw_headers, dict):
        raise VirtualRequestError(f"Invalid headers provided: expected an object, got {_describe(raw_headers)}")
    if raw_headers:
        try:
            headers = {
                str(name).lower(): value if isinstance(value, str) else js_string(value)
                for name, value in raw_headers.items()
                if value is not None
            }
        except RecursionError:  # a value nested as deep as JSON allows
            raise VirtualRequestError("Invalid headers provided: a header value is nested too deeply") from None
        if forced_headers:
            headers.update(forced_headers)
    else:
        headers = dict(forced_headers) if forced_headers else {}
    return VirtualRequest(verb.upper(), url, parts.path or "/", parse_query(parts.query), body, headers)


def jwr(body: Any, headers: dict[str, Any], status_code: int) -> dict[str, Any]:
    """The JSON web response a virtual request's ack carries; ``set-cookie`` never leaves the server."""
    return {
        "body": body,
        "headers": {k: v for k, v in headers.items() if k.lower() != "set-cookie"},
        "statusCode": status_code,
    }


def parse_error(details: str, *, production: bool) -> dict[str, Any]:
    """The ``PARSE_VIRTUAL_REQ`` error object Sails sends instead of a JWR (no stack in production)."""
    error: dict[str, Any] = {
        "code": "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ",
        "name": "Error (SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ):",
        "status": 400,
        "message": "Failed to parse incoming socket.io request.",
    }
    if not production:
        error["stack"] = f"Error (SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ):: Failed to parse incoming socket.io request.\n{details}"
    error["details"] = details
    return error


def old_sdk_details(version: str | None) -> str:
    """The details of the error a too-old (or unreadable) SDK version gets."""
    return (
        "This version of Sails is not compatible with the socket.io/sails.io.js client SDK version you are "
        f"using ({version or ASSUMED_SDK_VERSION}). Please see https://sailsjs.com/documentation/upgrading/to-v-0-11 "
        "for more information-- then please continue upgrading all the way to the installed version of Sails."
    )


def js_string(value: Any) -> str:
    """``value`` as JavaScript's ``"" + value`` shows it, so error details read as Sails writes them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list):
        return ",".join("" if item is None else js_string(item) for item in value)
    return "[object Object]"


def _describe(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


