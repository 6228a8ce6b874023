"""Server-side websockets (RFC 6455), with permessage-deflate (RFC 7692), as a sans-I/O state machine.

This module has no networking code at all: bytes go in, events come out, and every method that has
something to say to the peer returns the bytes for the I/O layer to write. It imports no trio and reads
no clock, so each rule below is tested as a byte transcript in ``tests/protocol/test_websocket.py``.

**The handshake.** A websocket starts as an HTTP/1.1 ``GET`` with ``Upgrade: websocket``,
``Connection: upgrade``, ``Sec-WebSocket-Version: 13`` and a ``Sec-WebSocket-Key`` that is 16 random
bytes in base64. :func:`parse_upgrade_request` reads the request head once and keeps *every* header, so
the application sees extensions, subprotocols and cookies as the client sent them. The server proves it
understood by answering ``101 Switching Protocols`` with ``Sec-WebSocket-Accept``: the SHA-1 of the key
followed by a fixed GUID, in base64 (:func:`accept_response`). Anything else is refused with a plain HTTP
error (:func:`reject_response`); a wrong version gets 426 and the version we speak.

**Frames.** After the handshake both sides exchange frames::

    byte 0: FIN (last frame of a message), RSV1, RSV2, RSV3, then a 4-bit opcode
    byte 1: MASK bit, then a 7-bit length: 0-125 is the length, 126 means "16-bit length follows",
            127 means "64-bit length follows" (its top bit must be clear)
    then:   the 4-byte masking key when MASK is set, then the payload

The rules we enforce on what a client sends, each failing the connection with the close code in
brackets:

* Every client frame is masked: the payload is XORed with the 4-byte key, repeating [1002]. Server
  frames are never masked (:func:`encode_frame`).
* Lengths use the fewest bytes possible, and a 64-bit length has its top bit clear [1002].
* Opcodes 0x1 (text) and 0x2 (binary) start a message, 0x0 continues it; FIN marks its last frame.
  A continuation with no message started, or a new message while one is unfinished, is an error
  [1002]. Opcodes 0x3-0x7 and 0xB-0xF are reserved [1002].
* Control frames (0x8 close, 0x9 ping, 0xA pong) carry at most 125 bytes and are never fragmented
  [1002], but they may arrive *between* the frames of a fragmented message.
* RSV1 means "compressed" and is only allowed on the first frame of a data message when
  permessage-deflate was negotiated; RSV2 and RSV3 are never allowed [1002].
* Text messages are UTF-8. The check runs incrementally, fragment by fragment, so a bad byte fails the
  connection as soon as it arrives, and a character may still be split across fragments [1007].
* A close frame's payload is empty, or a 2-byte code plus a UTF-8 reason. The code must be one a peer
  may send: 1000-1003, 1007-1011, or 3000-4999; 1005, 1006 and 1015 only exist inside APIs [1002].
* A message larger than ``max_message_size`` (counted in payload bytes after decompression) is refused
  [1009], as soon as a frame header says it will be, before its payload is buffered.

**Closing.** Either side sends a close frame and the other answers with one; then the TCP connection
goes. :class:`ConnectionState` follows this: ``OPEN`` → ``LOCAL_CLOSING`` (we sent close, waiting for the
answer) or ``REMOTE_CLOSING`` (the peer sent close, we owe the answer) → ``CLOSED``. A peer that breaks a
rule gets a close frame with the code above (queued in :meth:`ServerConnection.data_to_send`) and the
connection goes straight to ``CLOSED``; the error is raised as :class:`~trisails._errors.WebSocketError`.

**Speed.** Most frames a realtime server receives are one small, unfragmented, masked text frame. That
case takes one pass in :meth:`ServerConnection.next_event`: read two header bytes from the buffer at an
offset, unmask the whole payload with one big-integer XOR, decode, and build the event. Larger payloads
are unmasked four byte lanes at a time with :meth:`bytes.translate`. The input buffer is compacted only
when new data arrives, never per frame.
"""

from __future__ import annotations

import base64
import codecs
import dataclasses
import enum
import hashlib
import http
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Final, final

from trisails._errors import WebSocketError

__all__ = [
    "MAX_HEAD",
    "MAX_MESSAGE_SIZE",
    "Close",
    "ConnectionState",
    "Event",
    "Message",
    "PerMessageDeflate",
    "Ping",
    "Pong",
    "ServerConnection",
    "UpgradeRequest",
    "WebSocketError",
    "WebSocketStateError",
    "accept_key",
    "accept_response",
    "encode_frame",
    "negotiate_deflate",
    "parse_upgrade_request",
    "reject_response",
]

#: The largest request head (request line, headers and the blank line) :func:`parse_upgrade_request`
#: accepts by default: 16 KiB, as much as browsers send with a full cookie jar.
MAX_HEAD: Final = 16384
#: The default ``max_message_size`` of a :class:`ServerConnection`: 1 MiB.
MAX_MESSAGE_SIZE: Final = 1 << 20

# The GUID RFC 6455 §1.3 appends to the client's key before hashing it.
_ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Opcodes.
_CONTINUATION: Final = 0x0
_TEXT: Final = 0x1
_BINARY: Final = 0x2
_CLOSE: Final = 0x8
_PING: Final = 0x9
_PONG: Final = 0xA

# Close codes we send when the peer breaks a rule.
_PROTOCOL_ERROR: Final = 1002
_INVALID_DATA: Final = 1007
_TOO_BIG: Final = 1009
# Codes that stand for "no code" and "connection lost" in APIs, never on the wire.
_NO_STATUS: Final = 1005
_ABNORMAL: Final = 1006

# The deflate "sync flush" marker: RFC 7692 strips it from every compressed message, and the receiver
# puts it back before inflating.
_SYNC_TAIL: Final = b"\x00\x00\xff\xff"

# Below this many payload bytes, one big-integer XOR unmasks fastest; above it, four translate() calls
# over the byte lanes do (measured on CPython 3.11: they cross around 200 bytes).
_TRANSLATE_FROM: Final = 256
# _XOR_TABLES[k] maps each byte b to b ^ k, for bytes.translate.
_XOR_TABLES: Final = [bytes(b ^ k for b in range(256)) for k in range(256)]
# _KEY_REPEATERS[n] * key is the 4-byte key repeated n times, as an integer.
_KEY_REPEATERS: Final = [int.from_bytes(b"\x00\x00\x00\x01" * n) for n in range(_TRANSLATE_FROM // 4 + 1)]

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")
_HTTP_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_TARGET = re.compile(rb"[\x21-\x7e]+")
#: A ``Sec-WebSocket-Key``: 16 bytes in base64 are 22 characters of its alphabet and ``==`` (what
#: ``base64.b64decode(key, validate=True)`` decodes to 16 bytes, and nothing else).
_KEY = re.compile(rb"[A-Za-z0-9+/]{22}==")
#: A block of header lines, each ``name: value`` and its CRLF: a token, a colon, then no control
#: character but tab (so no CR or LF inside a line, and no obsolete line folding).
_HEADER_BLOCK = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")


def _is_valid_close_code(code: int) -> bool:
    """Whether a peer may put ``code`` in a close frame (RFC 6455 §7.4)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


class WebSocketStateError(RuntimeError):
    """The caller asked a :class:`ServerConnection` to send something its state forbids.

    Sending anything after our close frame went out, for example. This is our own bug (or a race the
    I/O layer should settle), not the peer's, so it is not a :class:`~trisails._errors.ProtocolError`.
    """


# --- events -------------------------------------------------------------------------------------------


class Event:
    """Base of the immutable values :meth:`ServerConnection.next_event` returns.

    Events are plain ``__slots__`` objects: they compare by type and value, and refuse to be changed.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} events are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} events are immutable")

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.__slots__  # the concrete class's slots
        return names

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Event)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"


@final
class Message(Event):
    """A whole data message, reassembled from its frames and decompressed: ``str`` for a text message,
    ``bytes`` for a binary one."""

    __slots__ = ("data",)
    data: str | bytes

    def __init__(self, data: str | bytes) -> None:
        _set_data(self, data)


@final
class Ping(Event):
    """The peer pinged us. Unless the connection was made with ``auto_pong=False``, the pong answering
    it is already waiting in :meth:`ServerConnection.data_to_send`."""

    __slots__ = ("payload",)
    payload: bytes

    def __init__(self, payload: bytes = b"") -> None:
        _set_ping_payload(self, payload)


@final
class Pong(Event):
    """The peer answered a ping (or sent an unsolicited pong, which RFC 6455 allows as a heartbeat)."""

    __slots__ = ("payload",)
    payload: bytes

    def __init__(self, payload: bytes = b"") -> None:
        _set_pong_payload(self, payload)


@final
class Close(Event):
    """The peer closed the connection, or it ended.

    ``code`` is 1005 when the peer's close frame had no code, and 1006 when the connection ended
    without a close frame at all (end of file): neither is ever sent on the wire.
    """

    __slots__ = ("code", "reason")
    code: int
    reason: str

    def __init__(self, code: int = _NO_STATUS, reason: str = "") -> None:
        _set_close_code(self, code)
        _set_close_reason(self, reason)


# Slot setters that bypass Event.__setattr__: building an event is on the hot path.
_set_data = Message.__dict__["data"].__set__
_set_ping_payload = Ping.__dict__["payload"].__set__
_set_pong_payload = Pong.__dict__["payload"].__set__
_set_close_code = Close.__dict__["code"].__set__
_set_close_reason = Close.__dict__["reason"].__set__


# --- the handshake --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """An HTTP/1.1 request head, parsed once, and whether it is a valid websocket upgrade.

    Attributes:
        method: the request method, e.g. ``b"GET"``.
        target: the request target as sent, e.g. ``b"/socket.io/?EIO=4&transport=websocket"``.
        http_version: ``b"1.1"`` or whichever version the request line names.
        headers: every header in order, names lower-cased, values as sent (stripped of spaces around).
        trailing: the bytes after the head. A client may send its first frames right behind the
            request; feed these to :meth:`ServerConnection.receive_data` after accepting.
        key: the ``Sec-WebSocket-Key`` to answer with :func:`accept_response`, when the request is a
            valid upgrade, else None.
        upgrade_error: why this is not a valid websocket upgrade (None when it is). Its ``status`` is the
            HTTP status to refuse it with: give it to :func:`reject_response`.
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    trailing: bytes = b""
    key: bytes | None = None
    upgrade_error: WebSocketError | None = dataclasses.field(default=None, compare=False)

    @property
    def is_websocket(self) -> bool:
        """Whether the request is a valid websocket upgrade that :func:`accept_response` may accept."""
        return self.key is not None

    @property
    def wants_websocket(self) -> bool:
        """Whether the client asked for a websocket (``Upgrade: websocket``), valid or not.

        A request that does not is plain HTTP, for another server to answer; one that does but is
        invalid should be refused with :attr:`upgrade_error`.
        """
        return b"websocket" in _tokens(self.header(b"upgrade"))

    @property
    def path(self) -> str:
        """The target's path, without the query string."""
        return self.target.partition(b"?")[0].decode("latin-1")

    @property
    def query(self) -> str:
        """The target's query string, without the ``?`` (empty when there is none)."""
        return self.target.partition(b"?")[2].decode("latin-1")

    def header(self, name: bytes) -> bytes | None:
        """The value of header ``name`` (lower-case), its repeats joined with ``", "``; None if absent."""
        values = [value for key, value in self.headers if key == name]
        return b", ".join(values) if values else None

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offers in ``Sec-WebSocket-Protocol``, in its order of preference."""
        return [token.decode("latin-1") for token in _list_items(self.header(b"sec-websocket-protocol"))]


def _list_items(value: bytes | None) -> list[bytes]:
    """The non-empty items of a comma-separated header value, stripped."""
    if value is None:
        return []
    return [item for item in (part.strip(b" \t") for part in value.split(b",")) if item]


def _tokens(value: bytes | None) -> list[bytes]:
    """The items of a comma-separated header value, lower-cased: tokens compare case-insensitively."""
    return [item.lower() for item in _list_items(value)]


def parse_upgrade_request(data: bytes, *, max_head: int = MAX_HEAD) -> UpgradeRequest | None:
    """Parse the request head at the start of ``data``; None while the head is not complete yet.

    Call it with everything read so far. It looks for the blank line ending the head within the first
    ``max_head`` bytes, parses the request line and the headers (keeping every header), and checks the
    websocket upgrade rules once, recording the verdict in :attr:`UpgradeRequest.key` and
    :attr:`UpgradeRequest.upgrade_error`. A request that is valid HTTP but not a valid upgrade is not an
    error here: the caller decides whether to pass it on or refuse it.

    Raises:
        WebSocketError: the head is larger than ``max_head`` (status 431), or is not HTTP/1.x (400):
            a bad request line, a header line without a name, control characters, obsolete line folding.
    """
    end = data.find(b"\r\n\r\n", 0, max_head)
    if end < 0:
        if len(data) >= max_head:
            raise WebSocketError(f"request head larger than {max_head} bytes", status=431)
        return None
    line_end = data.find(b"\r\n", 0, end + 2)
    request_line = data[:line_end].split(b" ")
    if len(request_line) != 3:
        raise WebSocketError("malformed request line")
    method, target, version = request_line
    version_match = _HTTP_VERSION.fullmatch(version)
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target) or version_match is None:
        raise WebSocketError("malformed request line")
    block = data[line_end + 2 : end + 2]  # every header line, each with its CRLF
    if not _HEADER_BLOCK.fullmatch(block):
        _raise_header_error(block)  # one check for the whole block; this finds the line and says why
    headers = []
    joined: dict[bytes, bytes] = {}  # for the upgrade checks: each header once, repeats joined
    for line in block.split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        name = name.lower()
        value = value.strip(b" \t")
        headers.append((name, value))
        joined[name] = joined[name] + b", " + value if name in joined else value
    problem = _upgrade_problem(method, (int(version_match[1]), int(version_match[2])), joined)
    return UpgradeRequest(
        method=method,
        target=target,
        http_version=version[5:],
        headers=tuple(headers),
        trailing=data[end + 4 :],
        key=joined.get(b"sec-websocket-key") if problem is None else None,
        upgrade_error=problem,
    )


def _raise_header_error(block: bytes) -> None:
    """Raise the error of the first bad line of a header block that failed :data:`_HEADER_BLOCK`."""
    for line in block.split(b"\r\n")[:-1]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            # also catches obsolete line folding: a continuation line starts with a space or tab
            raise WebSocketError("malformed header line")
        if not _HEADER_VALUE.fullmatch(value.strip(b" \t")):
            raise WebSocketError("control character in a header value")
    raise WebSocketError("malformed header line")  # (a bare CR or LF inside a line)


def _upgrade_problem(method: bytes, version: tuple[int, int], headers: dict[bytes, bytes]) -> WebSocketError | None:
    """Why a request is not a valid websocket upgrade (RFC 6455 §4.2.1), or None if it is; ``headers``
    maps each lower-case name to its value (repeats joined with ``", "``)."""
    if method != b"GET":
        return WebSocketError("a websocket upgrade must be a GET", status=405)
    if version < (1, 1):
        return WebSocketError("a websocket upgrade needs HTTP/1.1")
    if b"host" not in headers:
        return WebSocketError("no Host header")
    if b"websocket" not in _tokens(headers.get(b"upgrade")):
        return WebSocketError("not a websocket upgrade (no Upgrade: websocket)")
    if b"upgrade" not in _tokens(headers.get(b"connection")):
        return WebSocketError("a websocket upgrade needs Connection: upgrade")
    if headers.get(b"sec-websocket-version") != b"13":
        return WebSocketError("unsupported websocket version (this server speaks 13)", status=426)
    key = headers.get(b"sec-websocket-key")
    if key is None or _KEY.fullmatch(key) is None:
        return WebSocketError("Sec-WebSocket-Key must be 16 bytes in base64")
    return None


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value answering ``Sec-WebSocket-Key: key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


def _check_header(name: bytes, value: bytes) -> None:
    """Refuse a response header that would break the response (CR, LF or another control character)."""
    if not _TOKEN.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
        raise ValueError(f"invalid response header {name!r}: {value!r}")


def _header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    lines = []
    for name, value in headers:
        _check_header(name, value)
        lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines)


def accept_response(
    key: bytes,
    *,
    deflate: PerMessageDeflate | None = None,
    subprotocol: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    """The ``101 Switching Protocols`` response accepting an upgrade whose key is ``key``.

    ``deflate`` is what :func:`negotiate_deflate` agreed on (give the same value to the
    :class:`ServerConnection`); ``subprotocol`` must be one the client offered; ``headers`` are added
    as they are (``Set-Cookie``, for example).

    Raises:
        ValueError: a header or the subprotocol would corrupt the response.
    """
    extra = []
    if deflate is not None:
        extra.append((b"Sec-WebSocket-Extensions", deflate.response_value()))
    if subprotocol is not None:
        if not _TOKEN.fullmatch(subprotocol.encode("latin-1")):
            raise ValueError(f"a subprotocol must be a token, not {subprotocol!r}")
        extra.append((b"Sec-WebSocket-Protocol", subprotocol.encode("latin-1")))
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n" + _header_lines([*extra, *headers]) + b"\r\n"
    )


def reject_response(status: int, body: bytes = b"", headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A plain HTTP/1.1 error response refusing an upgrade; the I/O layer closes the connection after it.

    It says ``Connection: close`` and the body's ``Content-Length``. A 426 also names the websocket
    version this server speaks (``Sec-WebSocket-Version: 13``), as RFC 6455 §4.4 asks.
    """
    try:
        phrase = http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b"Error"
    extra = [(b"Content-Length", str(len(body)).encode("ascii")), (b"Connection", b"close")]
    if status == 426:
        extra.append((b"Sec-WebSocket-Version", b"13"))
    head = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    return head + _header_lines([*extra, *headers]) + b"\r\n" + body


# --- permessage-deflate negotiation ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PerMessageDeflate:
    """The permessage-deflate parameters both sides agreed on (RFC 7692 §7).

    Attributes:
        server_no_context_takeover: we reset our compressor after every message, so the client may
            reset its decompressor (costs ratio, saves the client 32 KiB per connection).
        client_no_context_takeover: the client resets its compressor after every message; we reset our
            decompressor too.
        server_max_window_bits: the LZ77 window we compress with (9-15); None means 15, unannounced.
        client_max_window_bits: the window the client may compress with, when we limited it; None
            means we did not (we always inflate with the largest window, so any is fine to receive).
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None

    def response_value(self) -> bytes:
        """The ``Sec-WebSocket-Extensions`` value of the response accepting these parameters."""
        parts = [b"permessage-deflate"]
        if self.server_no_context_takeover:
            parts.append(b"server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append(b"client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append(b"server_max_window_bits=%d" % self.server_max_window_bits)
        if self.client_max_window_bits is not None:
            parts.append(b"client_max_window_bits=%d" % self.client_max_window_bits)
        return b"; ".join(parts)


# One lexical item of an extension header: a token, a quoted string, or one of ; , =
_EXTENSION_ITEM = re.compile(rb'[ \t]*(?:([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)|"((?:[^"\\]|\\.)*)"|([;,=]))[ \t]*')
_WINDOW_BITS = re.compile(rb"[89]|1[0-5]")
_DEFLATE_PARAMETERS = {
    b"server_no_context_takeover",
    b"client_no_context_takeover",
    b"server_max_window_bits",
    b"client_max_window_bits",
}


def _parse_extensions(value: bytes) -> list[tuple[bytes, list[tuple[bytes, bytes | None]]]]:
    """Parse a ``Sec-WebSocket-Extensions`` value into ``[(name, [(param, value or None), ...]), ...]``.

    Raises:
        ValueError: the value does not follow RFC 6455 §9.1's grammar.
    """
    items: list[tuple[bytes, str]] = []  # (text, kind): kind is "token", "quoted" or the separator
    position = 0
    while position < len(value):
        match = _EXTENSION_ITEM.match(value, position)
        if match is None or match.end() == position:
            raise ValueError("malformed extension header")
        token, quoted, separator = match.groups()
        if token is not None:
            items.append((token, "token"))
        elif quoted is not None:
            items.append((re.sub(rb"\\(.)", rb"\1", quoted), "quoted"))
        else:
            items.append((separator, separator.decode()))
        position = match.end()
    offers: list[tuple[bytes, list[tuple[bytes, bytes | None]]]] = []
    index = 0

    def take(kind: str) -> bytes:
        nonlocal index
        if index >= len(items) or items[index][1] != kind:
            raise ValueError("malformed extension header")
        index += 1
        return items[index - 1][0]

    while index < len(items):
        if items[index][1] == ",":  # empty list elements are allowed
            index += 1
            continue
        name = take("token")
        parameters: list[tuple[bytes, bytes | None]] = []
        while index < len(items) and items[index][1] == ";":
            index += 1
            parameter = take("token")
            argument: bytes | None = None
            if index < len(items) and items[index][1] == "=":
                index += 1
                kind = items[index][1] if index < len(items) else ""
                argument = take("quoted" if kind == "quoted" else "token")
            parameters.append((parameter, argument))
        if index < len(items):
            take(",")
        offers.append((name, parameters))
    return offers


def _check_window_bits(name: str, bits: int) -> None:
    if not 9 <= bits <= 15:
        raise ValueError(f"{name} must be 9 to 15 (zlib cannot compress with 8), not {bits}")


def negotiate_deflate(
    offers: bytes | None,
    *,
    server_no_context_takeover: bool = False,
    client_no_context_takeover: bool = False,
    server_max_window_bits: int = 15,
    client_max_window_bits: int = 15,
) -> PerMessageDeflate | None:
    """Accept the first acceptable permessage-deflate offer in ``offers``, or None to go uncompressed.

    ``offers`` is the request's ``Sec-WebSocket-Extensions`` value (``request.header(...)``); the
    keyword arguments say what this server wants beyond what the client asks. An offer with an unknown
    or repeated parameter, or a value out of range, is declined, as RFC 7692 §5 asks; so is one asking
    us to compress with an 8-bit window, which zlib silently widens to 9 bits. A header that cannot be
    parsed at all means no compression rather than a failed handshake.
    """
    _check_window_bits("server_max_window_bits", server_max_window_bits)
    _check_window_bits("client_max_window_bits", client_max_window_bits)
    if not offers:
        return None
    try:
        parsed = _parse_extensions(offers)
    except ValueError:
        return None
    for name, parameters in parsed:
        if name.lower() != b"permessage-deflate":
            continue
        names = [parameter.lower() for parameter, _ in parameters]
        if len(set(names)) != len(names) or not set(names) <= _DEFLATE_PARAMETERS:
            continue
        offer = dict(zip(names, (argument for _, argument in parameters)))
        if any(offer[flag] is not None for flag in names if flag.endswith(b"_context_takeover")):
            continue
        windows = [offer.get(bits) for bits in (b"server_max_window_bits", b"client_max_window_bits")]
        if any(w is not None and not _WINDOW_BITS.fullmatch(w) for w in windows):
            continue
        if b"server_max_window_bits" in offer and offer[b"server_max_window_bits"] is None:
            continue  # this one needs a value
        server_bits: int | None = None
        if windows[0] is not None:
            server_bits = min(int(windows[0]), server_max_window_bits)
            if server_bits < 9:
                continue
        elif server_max_window_bits < 15:
            server_bits = server_max_window_bits
        client_bits: int | None = None
        if b"client_max_window_bits" in offer:
            offered = int(windows[1]) if windows[1] is not None else 15
            if client_max_window_bits < offered:
                client_bits = client_max_window_bits
        return PerMessageDeflate(
            server_no_context_takeover=server_no_context_takeover or b"server_no_context_takeover" in offer,
            client_no_context_takeover=client_no_context_takeover or b"client_no_context_takeover" in offer,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
        )
    return None


# --- frames ---------------------------------------------------------------------------------------------


def _frame_header(first_byte: int, length: int) -> bytes:
    """The header of an unmasked frame: its first byte, then the length in the fewest bytes."""
    if length < 126:
        return bytes((first_byte, length))
    if length < 65536:
        return bytes((first_byte, 126, length >> 8, length & 0xFF))
    return bytes((first_byte, 127)) + length.to_bytes(8, "big")


def encode_frame(message: str | bytes) -> bytes:
    """One unmasked, unfragmented, uncompressed data frame, as a server sends it.

    A ``str`` becomes a text frame and ``bytes`` a binary one. The same bytes can go to any number of
    connections, even those that negotiated permessage-deflate: RFC 7692 lets a sender leave any message
    uncompressed (RSV1 clear), and doing so does not disturb the compression context.
    """
    if isinstance(message, str):
        payload = message.encode("utf-8")
        length = len(payload)
        if length < 126:
            return bytes((0x81, length)) + payload
        return _frame_header(0x81, length) + payload
    length = len(message)
    if length < 126:
        return bytes((0x82, length)) + message
    return _frame_header(0x82, length) + message


def _unmask(buffer: bytearray, start: int, end: int) -> bytes:
    """The payload ``buffer[start:end]`` XORed with the 4-byte masking key just before it."""
    length = end - start
    if length < _TRANSLATE_FROM:
        if not length:
            return b""
        # the key repeated over whole words, its excess bytes shifted off the end
        mask = (int.from_bytes(buffer[start - 4 : start]) * _KEY_REPEATERS[(length + 3) >> 2]) >> ((-length & 3) << 3)
        return (int.from_bytes(buffer[start:end]) ^ mask).to_bytes(length)
    payload = bytearray(length)
    key = buffer[start - 4 : start]
    payload[0::4] = buffer[start:end:4].translate(_XOR_TABLES[key[0]])
    payload[1::4] = buffer[start + 1 : end : 4].translate(_XOR_TABLES[key[1]])
    payload[2::4] = buffer[start + 2 : end : 4].translate(_XOR_TABLES[key[2]])
    payload[3::4] = buffer[start + 3 : end : 4].translate(_XOR_TABLES[key[3]])
    return bytes(payload)


class ConnectionState(enum.Enum):
    """Where a connection is in the closing handshake (see the module docstring)."""

    OPEN = "open"
    #: We sent a close frame and wait for the peer's.
    LOCAL_CLOSING = "local closing"
    #: The peer sent a close frame; ours is owed (:meth:`ServerConnection.send_close`).
    REMOTE_CLOSING = "remote closing"
    CLOSED = "closed"


_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class ServerConnection:
    """One accepted websocket, server side: bytes in, :class:`Event` values out, bytes to send back.

    Use it like this (the I/O layer owns the socket)::

        connection = ServerConnection(max_message_size=..., deflate=agreed)
        data = request.trailing or await stream.receive_some()    # frames sent right behind the head
        while True:
            connection.receive_data(data)                          # b"" means end of file
            try:
                for event in connection.events():
                    if isinstance(event, Close) and connection.state is ConnectionState.REMOTE_CLOSING:
                        await stream.send_all(connection.send_close())   # answer the peer's close
                    ...                                            # Message, Ping, Pong, Close
            except WebSocketError as error:                        # the peer broke a rule:
                log(error.reason)                                  # our close frame is queued
            await stream.send_all(connection.data_to_send())       # pongs, that close frame
            if connection.state is ConnectionState.CLOSED:
                break                                              # and close the stream
            data = await stream.receive_some()

    ``max_message_size`` bounds a whole message after decompression. ``deflate`` turns on
    permessage-deflate with the parameters :func:`negotiate_deflate` agreed on; without it, a frame with
    RSV1 set is a protocol error. With ``auto_pong`` (the default) each ping's pong is queued in
    :meth:`data_to_send` as the ping is parsed.
    """

    def __init__(
        self,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        deflate: PerMessageDeflate | None = None,
        auto_pong: bool = True,
        compression_level: int = 6,
    ) -> None:
        self.state = ConnectionState.OPEN
        """The closing handshake's progress, a :class:`ConnectionState`; read it, never set it."""
        self._reading = True  # whether input is still parsed: OPEN or LOCAL_CLOSING (kept by _set_state)
        self.max_message_size = max_message_size
        self.deflate = deflate
        self.auto_pong = auto_pong
        self._buffer = bytearray()
        self._position = 0  # the parser's offset in _buffer; bytes before it are consumed
        self._eof = False
        self._output = bytearray()
        self._peer_close: Close | None = None
        # the fragmented message being reassembled: its opcode (0 when none), bytes, decoded size
        self._fragment_opcode = 0
        self._fragments = bytearray()
        self._compressed = False  # whether the message being reassembled is compressed
        self._wire_size = 0
        self._utf8 = _Utf8Decoder()
        if deflate is not None:
            self._compression_level = compression_level
            self._server_window = deflate.server_max_window_bits or 15
            self._deflater = self._new_deflater()
            self._inflater = zlib.decompressobj(-15)

    # --- input --------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes read from the peer; ``b""`` means end of file.

        Nothing is parsed here: call :meth:`next_event` (or iterate :meth:`events`) afterwards. Input
        after the peer's close frame is ignored, as RFC 6455 says nothing may follow it.

        Raises:
            RuntimeError: data after end of file.
        """
        if self._eof:
            raise RuntimeError("receive_data after end of file")
        if not data:
            self._eof = True
            return
        if not self._reading:
            return
        if self._position:
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += data

    def events(self) -> Iterator[Event]:
        """Every event the data received so far makes complete (see :meth:`next_event`)."""
        return iter(self.next_event, None)  # a C iterator: cheaper than a generator, per read

    def next_event(self) -> Event | None:
        """The next event, or None until more data arrives.

        Events come in the order of their frames: a :class:`Message` once its last frame is in, a
        :class:`Ping` or :class:`Pong` as it arrives (even in the middle of a fragmented message), and
        one :class:`Close` when the peer closes or the input ends (code 1006 if without a close frame).

        Raises:
            WebSocketError: the peer broke a framing rule; its ``close_code`` is already queued in a
                close frame in :meth:`data_to_send`, and the connection is CLOSED.
        """
        while True:
            buffer = self._buffer
            position = self._position
            available = len(buffer) - position
            if available < 2 or not self._reading:
                return self._need_data() if self._eof else None
            first = buffer[position]
            second = buffer[position + 1]
            length = second & 0x7F
            if not second & 0x80:
                raise self._fail(_PROTOCOL_ERROR, "client frames must be masked")
            if length < 126:
                start = position + 6
            elif length == 126:
                start = position + 8
                if available < 4:
                    return self._need_data() if self._eof else None
                length = (buffer[position + 2] << 8) | buffer[position + 3]
                if length < 126:
                    raise self._fail(_PROTOCOL_ERROR, "frame length not in its shortest form")
            else:
                start = position + 14
                if available < 10:
                    return self._need_data() if self._eof else None
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                if length >> 63:
                    raise self._fail(_PROTOCOL_ERROR, "64-bit frame length with the top bit set")
                if length < 65536:
                    raise self._fail(_PROTOCOL_ERROR, "frame length not in its shortest form")
            end = start + length
            # The common case: one whole, uncompressed text or binary message in one frame.
            if (first == 0x81 or first == 0x82) and not self._fragment_opcode:
                if length > self.max_message_size:
                    raise self._fail(_TOO_BIG, f"message larger than {self.max_message_size} bytes")
                if len(buffer) < end:
                    return self._need_data() if self._eof else None
                payload = _unmask(buffer, start, end)
                self._position = end
                if first == 0x82:
                    return Message(payload)
                try:
                    return Message(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    raise self._fail(_INVALID_DATA, "text message is not valid UTF-8") from None
            self._check_header(first, length)
            if len(buffer) < end:
                return self._need_data() if self._eof else None
            payload = _unmask(buffer, start, end)
            self._position = end
            event = self._frame(first, payload)
            if event is not None:
                return event

    def _need_data(self) -> Close | None:
        """What :meth:`next_event` returns at the end of input with no whole frame left: a Close (1006)
        the first time, unless the peer closed properly."""
        if not self._reading:
            return None  # closed already, or the peer's Close event went out and it hung up after it
        self._set_state(ConnectionState.CLOSED)
        return Close(_ABNORMAL, "")

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state
        self._reading = state is ConnectionState.OPEN or state is ConnectionState.LOCAL_CLOSING

    def _check_header(self, first: int, length: int) -> None:
        """Apply the framing rules a frame header alone can break (any frame but the common case)."""
        opcode = first & 0x0F
        if first & 0x30:
            raise self._fail(_PROTOCOL_ERROR, "RSV2 and RSV3 must be clear")
        if opcode >= _CLOSE:
            if opcode > _PONG:
                raise self._fail(_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            if first & 0x40:
                raise self._fail(_PROTOCOL_ERROR, "control frames are never compressed")
            if not first & 0x80:
                raise self._fail(_PROTOCOL_ERROR, "control frames are never fragmented")
            if length > 125:
                raise self._fail(_PROTOCOL_ERROR, "control frame payload longer than 125 bytes")
            return
        if opcode > _BINARY:
            raise self._fail(_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
        if opcode == _CONTINUATION:
            if not self._fragment_opcode:
                raise self._fail(_PROTOCOL_ERROR, "continuation frame without a message to continue")
            if first & 0x40:
                raise self._fail(_PROTOCOL_ERROR, "RSV1 is only set on a message's first frame")
        else:
            if self._fragment_opcode:
                raise self._fail(_PROTOCOL_ERROR, "new message before the fragmented one finished")
            if first & 0x40 and self.deflate is None:
                raise self._fail(_PROTOCOL_ERROR, "RSV1 set without permessage-deflate")
        compressed = self._compressed if opcode == _CONTINUATION else bool(first & 0x40)
        wire_size = (self._wire_size if opcode == _CONTINUATION else 0) + length
        # A compressed message may be a touch longer on the wire than inflated (stored blocks).
        limit = self.max_message_size + (self.max_message_size >> 8) + 64 if compressed else self.max_message_size
        if wire_size > limit:
            raise self._fail(_TOO_BIG, f"message larger than {self.max_message_size} bytes")

    def _frame(self, first: int, payload: bytes) -> Event | None:
        """Handle a whole frame that passed :meth:`_check_header`; the event it completes, if any."""
        opcode = first & 0x0F
        if opcode == _PING:
            if self.auto_pong and self.state is ConnectionState.OPEN:
                self._output += _frame_header(0x8A, len(payload)) + payload
            return Ping(payload)
        if opcode == _PONG:
            return Pong(payload)
        if opcode == _CLOSE:
            return self._receive_close(payload)
        fin = first & 0x80
        if opcode != _CONTINUATION:
            self._fragment_opcode = opcode
            self._compressed = bool(first & 0x40)
            self._wire_size = 0
        self._wire_size += len(payload)
        if self._compressed:
            payload = self._inflate(payload, bool(fin))
        elif len(self._fragments) + len(payload) > self.max_message_size:
            raise self._fail(_TOO_BIG, f"message larger than {self.max_message_size} bytes")
        if self._fragment_opcode == _TEXT:
            try:
                self._utf8.decode(payload, bool(fin))  # validates; the text is decoded once, at the end
            except UnicodeDecodeError:
                raise self._fail(_INVALID_DATA, "text message is not valid UTF-8") from None
        if not fin:
            self._fragments += payload
            return None
        if self._fragments:
            self._fragments += payload
            payload = bytes(self._fragments)
            self._fragments.clear()
        text = self._fragment_opcode == _TEXT
        self._fragment_opcode = 0
        if text:
            self._utf8.reset()
            return Message(payload.decode("utf-8"))
        return Message(payload)

    def _inflate(self, payload: bytes, fin: bool) -> bytes:
        """Decompress one frame's payload of a compressed message, within ``max_message_size``."""
        room = self.max_message_size - len(self._fragments)
        inflater = self._inflater
        if inflater.eof:  # a final deflate block ended this message's stream, yet more came
            raise self._fail(_INVALID_DATA, "compressed data after the final deflate block")
        try:
            data = inflater.decompress(payload, room + 1)
            if fin and len(data) <= room and not inflater.unconsumed_tail and not inflater.eof:
                data += inflater.decompress(_SYNC_TAIL, room - len(data) + 1)
        except zlib.error:
            raise self._fail(_INVALID_DATA, "compressed message is not valid deflate data") from None
        if len(data) > room or inflater.unconsumed_tail:
            raise self._fail(_TOO_BIG, f"message larger than {self.max_message_size} bytes")
        if fin and (inflater.eof or self.deflate is None or self.deflate.client_no_context_takeover):
            # A final deflate block (BFINAL) ends the stream; the next message starts a new one.
            self._inflater = zlib.decompressobj(-15)
        return data

    def _receive_close(self, payload: bytes) -> Close:
        """Validate the peer's close frame and move the closing handshake on."""
        if len(payload) == 1:
            raise self._fail(_PROTOCOL_ERROR, "close frame payload of one byte")
        code = _NO_STATUS
        reason = ""
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not _is_valid_close_code(code):
                raise self._fail(_PROTOCOL_ERROR, f"invalid close code {code}")
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise self._fail(_INVALID_DATA, "close reason is not valid UTF-8") from None
        event = Close(code, reason)
        self._peer_close = event
        if self.state is ConnectionState.LOCAL_CLOSING:
            self._set_state(ConnectionState.CLOSED)
        else:
            self._set_state(ConnectionState.REMOTE_CLOSING)
        return event

    def _fail(self, code: int, reason: str) -> WebSocketError:
        """The peer broke a rule: queue our close frame, close, and return the error to raise."""
        if self.state is ConnectionState.OPEN or self.state is ConnectionState.REMOTE_CLOSING:
            self._output += _close_frame(code, reason)
        self._set_state(ConnectionState.CLOSED)
        return WebSocketError(reason, close_code=code)

    # --- output -------------------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """The bytes the connection queued on its own (pongs, the close frame after an error), once."""
        data = bytes(self._output)
        self._output.clear()
        return data

    def _check_can_send(self) -> None:
        if self.state is ConnectionState.LOCAL_CLOSING or self.state is ConnectionState.CLOSED:
            raise WebSocketStateError(f"cannot send on a websocket in state {self.state.name}")

    def send_message(self, message: str | bytes) -> bytes:
        """The frame carrying ``message`` (text for ``str``, binary for ``bytes``), compressed if
        permessage-deflate is on.

        Allowed while OPEN, and while REMOTE_CLOSING (finishing what we had to say before our close).

        Raises:
            WebSocketStateError: our close frame went out already.
        """
        self._check_can_send()
        if self.deflate is None:
            return encode_frame(message)
        if isinstance(message, str):
            first, payload = 0xC1, message.encode("utf-8")
        else:
            first, payload = 0xC2, message
        payload = self._compress(payload)
        return _frame_header(first, len(payload)) + payload

    def _new_deflater(self) -> zlib._Compress:
        return zlib.compressobj(self._compression_level, zlib.DEFLATED, -self._server_window)

    def _compress(self, payload: bytes) -> bytes:
        """One message through the compressor, ending on a sync flush whose marker is stripped."""
        data = self._deflater.compress(payload) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        if data.endswith(_SYNC_TAIL):
            data = data[:-4]
        assert self.deflate is not None
        if self.deflate.server_no_context_takeover:
            self._deflater = self._new_deflater()
        return data or b"\x00"

    def send_ping(self, payload: bytes = b"") -> bytes:
        """A ping frame; the peer answers with a :class:`Pong` carrying the same payload.

        Raises:
            ValueError: ``payload`` is longer than 125 bytes.
            WebSocketStateError: our close frame went out already.
        """
        return self._control(0x89, payload)

    def send_pong(self, payload: bytes = b"") -> bytes:
        """A pong frame: an answer to a ping (when ``auto_pong`` is off), or a one-way heartbeat.

        Raises:
            ValueError: ``payload`` is longer than 125 bytes.
            WebSocketStateError: our close frame went out already.
        """
        return self._control(0x8A, payload)

    def _control(self, first: int, payload: bytes) -> bytes:
        self._check_can_send()
        if len(payload) > 125:
            raise ValueError("a control frame carries at most 125 bytes")
        return bytes((first, len(payload))) + payload

    def send_close(self, code: int | None = None, reason: str = "") -> bytes:
        """Our close frame, which starts the closing handshake or answers the peer's close.

        ``code`` defaults to 1000 (normal closure), or, when answering, to the peer's own code, as
        RFC 6455 §5.5.1 suggests. 1005 ("no code") sends a close frame without a payload. The reason is
        cut to fit the 125-byte limit, on a character boundary. Once the peer has closed too the
        connection is CLOSED and the I/O layer should close the TCP connection; before that it waits
        (briefly) for the peer's close frame.

        Raises:
            ValueError: ``code`` is not one a close frame may carry.
            WebSocketStateError: our close frame went out already.
        """
        self._check_can_send()
        if code is None:
            code = self._peer_close.code if self._peer_close is not None else 1000
        if code != _NO_STATUS and not _is_valid_close_code(code):
            raise ValueError(f"close code {code} cannot be sent")
        if code == _NO_STATUS and reason:
            raise ValueError("a close frame without a code cannot carry a reason")
        remote = self.state is ConnectionState.REMOTE_CLOSING
        self._set_state(ConnectionState.CLOSED if remote else ConnectionState.LOCAL_CLOSING)
        return _close_frame(code, reason)


def _close_frame(code: int, reason: str) -> bytes:
    """A close frame with ``code`` (none for 1005) and ``reason`` cut to fit in 123 bytes."""
    if code == _NO_STATUS:
        return b"\x88\x00"
    encoded = reason.encode("utf-8")
    if len(encoded) > 123:
        encoded = encoded[:123].decode("utf-8", "ignore").encode("utf-8")
    return bytes((0x88, len(encoded) + 2)) + code.to_bytes(2, "big") + encoded
