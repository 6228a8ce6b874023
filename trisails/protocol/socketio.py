"""Socket.IO packets: the text header, the JSON payload and the binary attachments that follow it.

A Socket.IO packet rides inside one Engine.IO MESSAGE. Its text form is::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]

* ``type`` is one digit, ``0`` (CONNECT) to ``6`` (BINARY_ACK).
* ``<attachments>-`` appears only on the two binary types and says how many binary messages follow.
* The namespace is left out when it is the main namespace ``/``. Otherwise it starts with ``/`` and
  ends at the first comma: ``2/admin,["x"]``.
* The ack id is a run of decimal digits. The peer expects an ACK packet with the same id: the virtual
  request ``20["get",{...}]`` is answered by ``30[{"body":...,"statusCode":200}]``.
* The payload is JSON: an array ``[event name, *args]`` for an EVENT, an array of arguments for an ACK,
  an object or nothing for a CONNECT, a string or an object for a CONNECT_ERROR.

The format is the same in protocol revision 4 (socket.io 2.x, what ``sails.io.js`` speaks) and revision 5
(socket.io 3 and 4). Only the meaning of some packets changed. For example, a revision 4 client asks for
a namespace with ``0/nsp?token=abc,``, so the connection query rides in the namespace. The
:class:`Decoder` splits it off into :attr:`Packet.query`.

**Binary.** JSON cannot hold bytes. So the encoder goes through the payload in depth-first order and
replaces each ``bytes`` value with the placeholder ``{"_placeholder":true,"num":<i>}``. An EVENT becomes a
BINARY_EVENT and an ACK becomes a BINARY_ACK, and the bytes are sent as separate binary Engine.IO
messages right after the header:
``61-9[{"body":{"buf":{"_placeholder":true,"num":0}}}]`` and then ``b"\\x01\\x02\\x03"``. Receiving is
therefore stateful. The :class:`Decoder` holds a binary packet back until all of its attachments have
arrived; what it may hold meanwhile is bounded, in count (``max_attachments``) and in bytes of the packet
and its attachments together (``max_payload``), since a peer could otherwise announce many and send them
slowly. Then it puts the bytes back where the placeholders were and hands out a plain EVENT or ACK
again. So ``encode`` followed by ``Decoder.receive`` gives back the packet you started with.

Like :mod:`trisails.protocol.engineio` this module does no I/O. A packet the peer got wrong raises
:class:`~trisails._errors.SocketIOError`. A packet *we* got wrong (a bad namespace, bytes in a CONNECT)
raises :class:`ValueError`.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from trisails._errors import SocketIOError

__all__ = ["Decoder", "Packet", "PacketType", "dumps_json", "encode", "encode_str", "json_value"]

_TYPE_DIGITS = "0123456"
# socket.io-client counts ack ids up from 0 in a JavaScript number, so no real client sends an id above
# Number.MAX_SAFE_INTEGER (16 digits).
_MAX_ACK_ID = 2**53 - 1
_MAX_ACK_ID_DIGITS = len(str(_MAX_ACK_ID))
# Enough digits to tell "too many attachments" from a huge run of digits without reading all of it.
_DIGITS = re.compile("[0-9]{0,20}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ABSENT: Final = object()  # no JSON payload at all, which is not the same as a payload of ``null``


class PacketType(enum.IntEnum):
    """The seven Socket.IO packet types; the value is the digit that starts a packet on the wire.

    Type 4 is called ERROR in protocol revision 4 and CONNECT_ERROR in revision 5. It means the same:
    the server refused a namespace connection.
    """

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


_BINARY_TYPES = (PacketType.BINARY_EVENT, PacketType.BINARY_ACK)


@dataclass(frozen=True, slots=True)
class Packet:
    """One Socket.IO packet.

    Attributes:
        type: what the packet is.
        namespace: the namespace it belongs to, ``"/"`` for the main one.
        data: the decoded JSON payload, or ``None`` for no payload. ``bytes`` may appear anywhere inside
            it; :func:`encode` turns them into attachments and the :class:`Decoder` puts them back.
        id: the ack id, if the sender wants an acknowledgement (or this packet is one).
        query: only on a CONNECT from a revision 4 client: the query string that came with the
            namespace (``token=abc`` from ``0/nsp?token=abc,``). Never encoded.
    """

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    query: str = ""


# --- JSON, as JavaScript writes and reads it ----------------------------------------------------------


def _escape_surrogate(match: re.Match[str]) -> str:
    """``\\ud800`` for a lone surrogate, as ``JSON.stringify`` writes it."""
    return f"\\u{ord(match.group()):04x}"


_ORJSON_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME  # dates go through json_value, as JavaScript writes them


def _js_date(value: datetime.datetime) -> str:
    """``value`` as JavaScript's ``Date.prototype.toJSON`` writes it: UTC, milliseconds, a ``Z``.

    The microseconds past the millisecond are dropped (not rounded), as a ``Date`` holds milliseconds
    only. A naive datetime is taken to be UTC already: reading it as the server's local time would make
    the wire depend on the host's time zone setting.
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(datetime.timezone.utc)
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z"


def json_value(value: Any) -> Any:
    """The JSON stand-in of a value JSON has no type for, or ``TypeError``.

    * ``datetime``: its ISO 8601 string as ``Date.toJSON`` writes it (``2026-12-07T19:58:00.123Z``);
      a naive one is taken as UTC. A ``date`` is its midnight UTC, the ``Date`` that JavaScript's
      ``new Date("2026-12-07")`` makes. A ``time`` is its ISO form (``19:58:00.123000``).
    * ``Decimal``: its exact string (``"12.50"``): a JSON number would become a JavaScript double and
      lose digits silently; ``Decimal(text)`` reads it back.
    * ``UUID``: its canonical string.
    * a dataclass instance: an object of its fields (what orjson does with it).

    Binary values are not handled here: :func:`_to_json` turns them into attachments.
    """
    if isinstance(value, datetime.datetime):
        return _js_date(value)
    if isinstance(value, datetime.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T00:00:00.000Z"
    if isinstance(value, datetime.time):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps_json(data: Any) -> bytes:
    """``data`` as compact JSON with the types of :func:`json_value`, the way socket payloads write it
    (HTTP bodies use it too, so both transports write a date the same way). Raises ``TypeError`` for
    anything else, binary included."""
    return orjson.dumps(data, default=json_value, option=_ORJSON_OPTIONS)


def _to_json(data: Any) -> tuple[str, list[bytes]]:
    """Serialize ``data`` as compact JSON like ``JSON.stringify``, taking the binary parts out of it.

    Each ``bytes``, ``bytearray`` or ``memoryview`` is replaced by a placeholder and collected, in
    document order, into the returned list. The serializer finds them for us: it calls ``default`` for
    every value it cannot write itself, in the order it writes them. Dates, decimals, UUIDs and
    dataclasses are written as :func:`json_value` says.

    orjson does almost everything. It refuses integers beyond 64 bits and strings with lone surrogates,
    and JavaScript would accept both. For those we fall back to the standard library. JavaScript writes
    a lone surrogate as a ``\\uXXXX`` escape, so we do the same.
    """
    attachments: list[bytes] = []

    def placeholder(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            attachments.append(bytes(value))
            return {"_placeholder": True, "num": len(attachments) - 1}
        return json_value(value)

    try:
        return orjson.dumps(data, default=placeholder, option=_ORJSON_OPTIONS).decode("utf-8"), attachments
    except TypeError:
        attachments.clear()  # the fallback starts over from the beginning
        text = json.dumps(data, default=placeholder, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return _SURROGATE.sub(_escape_surrogate, text), attachments


def _reject_constant(name: str) -> Any:
    """Refuse ``NaN`` and ``Infinity``, which the standard library reads but JSON does not allow."""
    raise ValueError(f"{name} is not JSON")


def _parse_int(literal: str) -> int | float:
    """Read a JSON integer the way orjson does, so a number decodes the same whichever parser ran.

    That way is exact within 64 bits and a double beyond them, which is what JavaScript would have
    made of it anyway.
    """
    if len(literal) <= 20:
        value = int(literal)
        if -(2**63) <= value < 2**64:
            return value
    return float(literal)


def _loads(text: str) -> Any:
    """Parse any valid JSON, as ``JSON.parse`` would.

    orjson refuses some valid JSON: escaped lone surrogates and numbers beyond the range of a double.
    For those we try the standard library, without its extensions (``NaN``, ``Infinity``). Nesting
    deeper than orjson's 1024 levels stays refused, because the standard library cannot go that deep
    either.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise SocketIOError("the payload is not valid JSON") from None


# --- encoding -----------------------------------------------------------------------------------------


def _encode(packet: Packet) -> tuple[str, list[bytes]]:
    """Encode a packet into its text header and its binary attachments."""
    if packet.namespace != "/" and (not packet.namespace.startswith("/") or "," in packet.namespace):
        raise ValueError(f"a namespace must start with '/' and contain no ',', not {packet.namespace!r}")
    if packet.id is not None and packet.id < 0:
        raise ValueError(f"an ack id cannot be negative, not {packet.id}")

    payload, attachments = ("", []) if packet.data is None else _to_json(packet.data)

    packet_type = packet.type
    if attachments:
        if packet_type == PacketType.EVENT:
            packet_type = PacketType.BINARY_EVENT
        elif packet_type == PacketType.ACK:
            packet_type = PacketType.BINARY_ACK
        elif packet_type not in _BINARY_TYPES:
            raise ValueError(f"only EVENT and ACK packets can carry binary data, not {packet.type.name}")

    parts = [_TYPE_DIGITS[packet_type]]
    if packet_type in _BINARY_TYPES:
        parts.append(f"{len(attachments)}-")
    if packet.namespace != "/":
        parts.append(packet.namespace + ",")
    if packet.id is not None:
        parts.append(str(packet.id))
    parts.append(payload)
    return "".join(parts), attachments


def encode(packet: Packet) -> list[str | bytes]:
    """Encode a packet as the Engine.IO messages that carry it: a text header, then any attachments.

    ``bytes``, ``bytearray`` and ``memoryview`` values anywhere in ``packet.data`` are replaced by
    placeholders in depth-first order and returned, in that order, after the header. If there are any,
    an EVENT goes out as a BINARY_EVENT and an ACK as a BINARY_ACK. Without binary the result is a list
    of one string. Dict keys keep their insertion order.

    Raises:
        ValueError: the namespace does not start with ``/`` or contains a comma, the ack id is negative,
            or a packet other than an EVENT or ACK holds binary data.
        TypeError: ``data`` holds something JSON cannot represent.
    """
    header, attachments = _encode(packet)
    return [header, *attachments]


def encode_str(packet: Packet) -> str:
    """Encode a packet known to carry no binary data as its one text message.

    Raises:
        ValueError: the packet does hold binary data (use :func:`encode`), or :func:`encode` would raise.
    """
    header, attachments = _encode(packet)
    if attachments:
        raise ValueError("this packet holds binary data; encode it with encode()")
    return header


# --- decoding -----------------------------------------------------------------------------------------


class Decoder:
    """Reassemble one connection's Socket.IO packets from the Engine.IO messages that carry them.

    Feed every Engine.IO MESSAGE to :meth:`receive`, text or binary, in arrival order. The decoder is a
    small state machine with two states. It is *idle*, or it is *waiting* for the attachments of a binary
    packet. A text message is only allowed while idle, and a binary one only while waiting.

    After a :class:`~trisails._errors.SocketIOError` the connection should be closed. The decoder is left
    idle, whatever it was doing.

    Args:
        max_attachments: the most attachments one packet may announce (socket.io's default is 10).
        max_payload: the most bytes one binary packet may take with all its attachments together (its
            header counted in UTF-8), or None for no bound. The decoder holds attachments until the last
            one arrives, so these two limits bound what one packet can make it hold: without the second,
            each attachment could be as large as the transport allows, times the count.
    """

    __slots__ = ("_max_attachments", "_max_payload", "_pending", "_expected", "_attachments", "_size")

    def __init__(self, *, max_attachments: int = 10, max_payload: int | None = None) -> None:
        self._max_attachments = max_attachments
        self._max_payload = max_payload
        self._pending: Packet | None = None
        self._expected = 0
        self._attachments: list[bytes] = []
        self._size = 0  # bytes of the waiting packet: its header and the attachments so far

    @property
    def awaiting_attachments(self) -> int:
        """How many more binary messages the current packet needs; 0 when idle."""
        return self._expected - len(self._attachments)

    @property
    def buffered(self) -> int:
        """Bytes the decoder holds for the packet it is waiting on (header and attachments); 0 when idle."""
        return self._size if self._pending is not None else 0

    def receive(self, message: str | bytes) -> Packet | None:
        """Take one Engine.IO message; return the packet it completes, or ``None`` if more must follow.

        A text message is parsed as a packet header. For a BINARY_EVENT or BINARY_ACK that announces
        attachments, ``None`` is returned and the next that many messages must be binary. When the last
        one arrives, the packet is returned as an EVENT or ACK with each placeholder replaced by its bytes.

        Raises:
            SocketIOError: the message breaks the protocol (see the module docstring); the reason says how.
        """
        try:
            if isinstance(message, str):
                return self._receive_text(message)
            return self._receive_attachment(bytes(message))
        except SocketIOError:
            self._reset()
            raise

    def _reset(self) -> None:
        self._pending = None
        self._expected = 0
        self._attachments = []
        self._size = 0

    def _receive_text(self, message: str) -> Packet | None:
        if self._pending is not None:
            raise SocketIOError(
                f"a text packet arrived while {self.awaiting_attachments} binary attachments were still expected"
            )
        if message[:1] == "2":
            event = _parse_plain_event(message)
            if event is not None:
                return event
        packet, attachment_count = self._parse(message)
        if attachment_count == 0:
            return packet
        self._pending = packet
        self._expected = attachment_count
        self._size = len(message.encode("utf-8", "surrogatepass"))
        return None

    def _receive_attachment(self, attachment: bytes) -> Packet | None:
        if self._pending is None:
            raise SocketIOError("a binary attachment arrived but no binary packet is waiting for one")
        size = self._size + len(attachment)
        if self._max_payload is not None and size > self._max_payload:
            raise SocketIOError(
                f"a packet and its attachments may take at most {self._max_payload} bytes together (max_payload)"
            )
        self._size = size
        self._attachments.append(attachment)
        if self.awaiting_attachments:
            return None
        packet = self._pending
        data = _reconstruct(packet.data, self._attachments)
        self._reset()
        return Packet(packet.type, packet.namespace, data, packet.id, packet.query)

    def _parse(self, message: str) -> tuple[Packet, int]:
        """Parse a packet header; return the packet and how many attachments it announced.

        Binary types come back as EVENT and ACK: the attachment count says they were binary.
        """
        if not message:
            raise SocketIOError("empty packet")
        if message[0] not in _TYPE_DIGITS:
            raise SocketIOError(f"unknown packet type {message[0]!r}")
        packet_type = PacketType(int(message[0]))
        position = 1

        attachment_count = 0
        if packet_type in _BINARY_TYPES:
            digits = _digits_at(message, position)
            if not digits or message[position + len(digits) : position + len(digits) + 1] != "-":
                raise SocketIOError("a binary packet must start with its attachment count and '-'")
            attachment_count = int(digits)
            if attachment_count > self._max_attachments:
                raise SocketIOError(f"a packet may have at most {self._max_attachments} attachments")
            position += len(digits) + 1
            packet_type = PacketType.EVENT if packet_type == PacketType.BINARY_EVENT else PacketType.ACK

        namespace, query = "/", ""
        if message.startswith("/", position):
            # socket.io-parser reads the namespace up to the first ',' or the end of the packet:
            # ``40/admin`` and ``41/admin,`` name the same namespace.
            comma = message.find(",", position)
            end = len(message) if comma == -1 else comma
            namespace = message[position:end]
            position = end + 1
            if packet_type == PacketType.CONNECT:
                namespace, _, query = namespace.partition("?")

        ack_id = None
        digits = _digits_at(message, position)
        if digits:
            if len(digits) > _MAX_ACK_ID_DIGITS or int(digits) > _MAX_ACK_ID:
                raise SocketIOError("the ack id is too large")
            ack_id = int(digits)
            position += len(digits)

        data = _loads(message[position:]) if position < len(message) else _ABSENT
        _check_payload(packet_type, data)
        if data is _ABSENT:
            data = None
        return Packet(packet_type, namespace, data, ack_id, query), attachment_count


def _parse_plain_event(message: str) -> Packet | None:
    """The common packet, an EVENT for the main namespace (``2["name",...]`` or ``2<ack id>[...]``),
    parsed without the general machinery; None for any other shape, which :meth:`Decoder._parse` reads
    (and judges) instead. Both read an acceptable packet the same way."""
    bracket = message.find("[", 1)
    if bracket == -1:
        return None
    if bracket == 1:
        ack_id = None
    else:
        digits = message[1:bracket]
        if not (0 < len(digits) <= _MAX_ACK_ID_DIGITS and digits.isascii() and digits.isdigit()):
            return None
        ack_id = int(digits)
        if ack_id > _MAX_ACK_ID:
            return None
    data = _loads(message[bracket:])
    if not (type(data) is list and data and (type(data[0]) is str or _is_event_name(data[0]))):
        raise SocketIOError("an EVENT payload must be an array that starts with the event name")
    return Packet(PacketType.EVENT, "/", data, ack_id)


def _digits_at(text: str, position: int) -> str:
    """The run of ASCII digits (at most 20) starting at ``position``; empty if there is none."""
    match = _DIGITS.match(text, position)
    return match.group() if match else ""


def _check_payload(packet_type: PacketType, data: Any) -> None:
    """Apply socket.io-parser's rules for which payloads each packet type may carry."""
    if packet_type == PacketType.CONNECT:
        if data is not _ABSENT and not isinstance(data, dict):
            raise SocketIOError("a CONNECT payload must be an object")
    elif packet_type == PacketType.DISCONNECT:
        if data is not _ABSENT:
            raise SocketIOError("a DISCONNECT packet cannot have a payload")
    elif packet_type == PacketType.EVENT:  # BINARY_EVENT was turned into EVENT by the caller
        if not (isinstance(data, list) and data and _is_event_name(data[0])):
            raise SocketIOError("an EVENT payload must be an array that starts with the event name")
    elif packet_type == PacketType.ACK:
        if not isinstance(data, list):
            raise SocketIOError("an ACK payload must be an array")
    elif packet_type == PacketType.CONNECT_ERROR:
        if not isinstance(data, (str, dict)):
            raise SocketIOError("a CONNECT_ERROR payload must be a string or an object")


def _is_event_name(value: Any) -> bool:
    """socket.io-parser accepts a string or a number as an event name."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _placeholder_index(value: dict[Any, Any], attachments: list[bytes]) -> int | None:
    """If ``value`` is a placeholder, the attachment it points at; ``None`` if it is an ordinary object."""
    if value.get("_placeholder") is not True:
        return None
    num = value.get("num")
    if type(num) is not int or not 0 <= num < len(attachments):
        raise SocketIOError("a binary placeholder points at no attachment")
    return num


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    """Replace every placeholder in freshly decoded JSON with its attachment.

    The tree is walked with an explicit stack rather than recursion, so deeply nested JSON from the
    peer cannot exhaust Python's recursion limit. It is modified in place; the decoder owns it.
    """
    if isinstance(data, dict) and (index := _placeholder_index(data, attachments)) is not None:
        return attachments[index]
    stack = [data]
    while stack:
        node = stack.pop()
        entries = list(enumerate(node)) if isinstance(node, list) else list(node.items())
        for key, value in entries:
            if isinstance(value, dict) and (index := _placeholder_index(value, attachments)) is not None:
                node[key] = attachments[index]
            elif isinstance(value, (dict, list)):
                stack.append(value)
    return data
