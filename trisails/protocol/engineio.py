"""Engine.IO packets, websocket frames and polling payloads, as pure functions.

Engine.IO is the transport layer under Socket.IO. Its unit is the *packet*: a type digit from ``0``
(open) to ``6`` (noop) followed by optional data. A Socket.IO packet always travels inside a MESSAGE
packet (type ``4``), which is why every Socket.IO frame on the wire starts with ``4``: ``42["chat",1]``
is Engine.IO "message" wrapping Socket.IO ``2["chat",1]``.

We speak two revisions of the protocol, and the client tells us which in the ``EIO`` query parameter:

* **Revision 3** (``EIO=3``): ``sails.io.js`` 1.2.1, which bundles socket.io-client 2.0.3.
* **Revision 4** (``EIO=4``): socket.io-client 3 and 4.

The packets themselves are the same in both. What differs is how packets are put on a transport.

**WebSocket**: one packet per frame. A text frame is ``<type digit><data>``, e.g. ``2probe``. Only
MESSAGE packets can carry binary data, in a binary frame. Revision 3 puts the type byte ``0x04`` in front
of the bytes. Revision 4 leaves it out, because a binary frame can only be a message anyway.

**HTTP long-polling**: one request or response body (a *payload*) holds several packets.

* Revision 4 joins the packets with the ASCII record separator ``\\x1e``. A binary message is written
  as ``b`` followed by its base64.
* Revision 3 prefixes each packet with its length and a colon: ``1:358:431[...]`` is the pong ``3``
  followed by a 58-character message. The length counts *UTF-16 code units*, because that is what
  JavaScript's ``String.length`` counts. An emoji outside the Basic Multilingual Plane is one Python
  character but counts as two. A binary message becomes ``b4`` plus base64. If the client can take
  binary (it did not ask for ``b64=1``) and a payload holds binary, revision 3 switches to the "XHR2"
  format instead: for each packet a marker byte (``0x00`` string, ``0x01`` binary), the decimal digits
  of its length *as byte values* 0-9, a ``0xFF`` terminator, then the packet. There the length counts
  UTF-8 bytes, and a binary packet keeps its ``0x04`` type byte.

Everything here is sans-I/O: strings and bytes in, :class:`Packet` values out, and back. Anything
malformed raises :class:`~trisails._errors.EngineIOError`, and the I/O layer closes that one connection.
A caller misusing the API (an unknown revision, binary data on a PING) gets :class:`ValueError`,
because that is our bug, not the peer's.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from trisails._errors import EngineIOError

from .websocket import encode_frame as _websocket_frame

__all__ = [
    "BINARY_CONTENT_TYPE",
    "Envelope",
    "TEXT_CONTENT_TYPE",
    "HandshakeError",
    "Packet",
    "PacketType",
    "decode_frame",
    "decode_payload",
    "encode_frame",
    "encode_open",
    "encode_payload",
    "parse_revision",
]

#: The Content-Type of text polling payloads (both revisions).
TEXT_CONTENT_TYPE = "text/plain; charset=UTF-8"
#: The Content-Type of revision 3 XHR2 binary payloads, in both directions.
BINARY_CONTENT_TYPE = "application/octet-stream"

_RECORD_SEPARATOR = "\x1e"
_TYPE_DIGITS = "0123456"
# A length longer than this many digits is bigger than any body a server would accept, so it can only
# be garbage. Refusing it early also keeps us from converting megabytes of digits to an int.
_MAX_LENGTH_DIGITS = 10
# Up to one digit more than allowed, so that a too-long length is seen without scanning all of it.
_LENGTH_DIGITS = re.compile(f"[0-9]{{0,{_MAX_LENGTH_DIGITS + 1}}}")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class PacketType(enum.IntEnum):
    """The seven Engine.IO packet types; the value is the digit that starts a packet on the wire."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True, slots=True)
class Packet:
    """One Engine.IO packet.

    ``data`` is text for every packet type (``"probe"`` on an upgrade ping, the JSON handshake on OPEN, a
    Socket.IO packet on MESSAGE), and may be ``bytes`` only for a binary MESSAGE.
    """

    type: PacketType
    data: str | bytes = ""

    def __post_init__(self) -> None:
        if isinstance(self.data, bytes) and self.type != PacketType.MESSAGE:
            raise ValueError(f"only MESSAGE packets can carry binary data, not {self.type.name}")


def _check_revision(revision: int) -> None:
    """Refuse a revision we do not speak; the caller should have used :func:`parse_revision`."""
    if revision not in (3, 4):
        raise ValueError(f"Engine.IO revision must be 3 or 4, not {revision!r}")


# --- single packets and websocket frames --------------------------------------------------------------


def _encode_text_packet(packet: Packet) -> str:
    """The text form ``<type digit><data>`` of a packet whose data is a string."""
    assert isinstance(packet.data, str)
    return _TYPE_DIGITS[packet.type] + packet.data


def _decode_text_packet(text: str) -> Packet:
    """Parse ``<type digit><data>``: the form a packet takes in a text frame and inside payloads."""
    if not text:
        raise EngineIOError("empty packet")
    type_char = text[0]
    if type_char not in _TYPE_DIGITS:
        raise EngineIOError(f"unknown packet type {type_char!r}")
    return Packet(PacketType(int(type_char)), text[1:])


def _decode_base64(text: str) -> bytes:
    """Strictly decode standard padded base64, which is what every engine.io client sends."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EngineIOError("a binary packet is not valid base64") from None


def encode_frame(packet: Packet, revision: int) -> str | bytes:
    """Encode one packet as one websocket frame: a ``str`` for a text frame, ``bytes`` for a binary one.

    A text packet becomes ``<type digit><data>``. A binary MESSAGE becomes ``0x04`` plus the data in
    revision 3, and the bare data in revision 4.
    """
    _check_revision(revision)
    if isinstance(packet.data, bytes):
        return b"\x04" + packet.data if revision == 3 else packet.data
    return _encode_text_packet(packet)


def decode_frame(frame: str | bytes, revision: int) -> Packet:
    """Decode one websocket frame into a packet.

    A text frame must start with a type digit ``0``-``6``. In revision 3 a binary frame must start with
    the MESSAGE type byte ``0x04``, and the rest is the data. In revision 4 the whole binary frame is the
    data of a MESSAGE.

    Raises:
        EngineIOError: the frame is empty or has an unknown type.
    """
    _check_revision(revision)
    if isinstance(frame, str):
        return _decode_text_packet(frame)
    frame = bytes(frame)
    if revision == 4:
        return Packet(PacketType.MESSAGE, frame)
    if not frame:
        raise EngineIOError("empty binary frame")
    if frame[0] != PacketType.MESSAGE:
        raise EngineIOError(f"a binary frame must be a message (type 4), not type {frame[0]}")
    return Packet(PacketType.MESSAGE, frame[1:])


# --- UTF-16 lengths, as JavaScript counts them --------------------------------------------------------


def _utf16_len(text: str) -> int:
    """The JavaScript ``String.length`` of ``text``: code points, plus one for each astral character."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for _ in _ASTRAL.finditer(text))


def _surrogate_pair(match: re.Match[str]) -> str:
    offset = ord(match.group()) - 0x10000
    return chr(0xD800 + (offset >> 10)) + chr(0xDC00 + (offset & 0x3FF))


def _to_utf16_units(text: str) -> str:
    """Rewrite ``text`` as JavaScript sees it: each astral character becomes its two surrogates.

    Then ``len()`` and slicing count UTF-16 code units, so revision 3 lengths can be used directly.
    """
    return _ASTRAL.sub(_surrogate_pair, text)


def _from_utf16_units(units: str) -> str:
    """Undo :func:`_to_utf16_units`; a lone surrogate means a length cut a character in half."""
    if _SURROGATE.search(units) is None:
        return units
    try:
        return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise EngineIOError("a packet length splits a character in two") from None


def _check_length_digits(digits: str | bytes, where: str) -> None:
    """A payload length must be 1 to :data:`_MAX_LENGTH_DIGITS` digits."""
    if not digits:
        raise EngineIOError(f"a packet length in the {where} is missing")
    if len(digits) > _MAX_LENGTH_DIGITS:
        raise EngineIOError(f"a packet length in the {where} is too large")


# --- polling payloads: encoding -----------------------------------------------------------------------


def encode_payload(packets: Sequence[Packet], revision: int, *, b64: bool = False) -> tuple[bytes, str]:
    """Encode packets as one polling response body; returns the body and its ``Content-Type``.

    Revision 4 joins the packets with ``\\x1e`` and writes binary messages as ``b<base64>``; a text
    packet containing ``\\x1e`` cannot be sent that way and raises :class:`ValueError`. Revision 3
    writes ``<length>:<packet>`` for each packet, with binary messages as ``b4<base64>``, unless some
    packet is binary and the client did not ask for ``b64``: then it uses the XHR2 binary format (see the
    module docstring), served as ``application/octet-stream``.
    """
    _check_revision(revision)
    if revision == 4:
        return _encode_payload_v4(packets).encode("utf-8"), TEXT_CONTENT_TYPE
    if not b64 and any(isinstance(p.data, bytes) for p in packets):
        return _encode_xhr2_payload(packets), BINARY_CONTENT_TYPE
    return _encode_text_payload_v3(packets).encode("utf-8"), TEXT_CONTENT_TYPE


def _encode_payload_v4(packets: Sequence[Packet]) -> str:
    """Packets joined by ``\\x1e``, binary ones as ``b<base64>``."""
    parts = []
    for packet in packets:
        if isinstance(packet.data, bytes):
            parts.append("b" + base64.b64encode(packet.data).decode("ascii"))
        elif _RECORD_SEPARATOR in packet.data:
            # Socket.IO never hits this: JSON escapes control characters inside strings.
            raise ValueError("a revision 4 polling payload cannot carry a packet that contains \\x1e")
        else:
            parts.append(_encode_text_packet(packet))
    return _RECORD_SEPARATOR.join(parts)


def _encode_text_payload_v3(packets: Sequence[Packet]) -> str:
    """``<length>:<packet>`` for each packet; an empty payload is ``0:``, as engine.io writes it."""
    if not packets:
        return "0:"
    parts = []
    for packet in packets:
        if isinstance(packet.data, bytes):
            text = "b4" + base64.b64encode(packet.data).decode("ascii")
        else:
            text = _encode_text_packet(packet)
        parts.append(f"{_utf16_len(text)}:{text}")
    return "".join(parts)


def _encode_xhr2_payload(packets: Sequence[Packet]) -> bytes:
    """The revision 3 binary payload: ``<0|1><length digits as bytes>0xFF<packet>`` for each packet."""
    body = bytearray()
    for packet in packets:
        if isinstance(packet.data, bytes):
            marker, content = 1, b"\x04" + packet.data
        else:
            marker, content = 0, _encode_text_packet(packet).encode("utf-8")
        body.append(marker)
        body.extend(int(digit) for digit in str(len(content)))
        body.append(0xFF)
        body.extend(content)
    return bytes(body)


# --- polling payloads: decoding -----------------------------------------------------------------------


def decode_payload(body: bytes, revision: int, *, content_type: str | None = None) -> list[Packet]:
    """Decode a polling request body (a client's POST) into its packets.

    In revision 3 a ``content_type`` of ``application/octet-stream`` selects the XHR2 binary format;
    anything else means the ``<length>:<packet>`` text format. Revision 4 ignores ``content_type``.

    Raises:
        EngineIOError: the body is empty, is not UTF-8 where text is expected, has a bad or truncated
            length, bad base64, or holds a packet that is itself malformed.
    """
    _check_revision(revision)
    body = bytes(body)
    if not body:
        raise EngineIOError("empty payload")
    if revision == 3 and content_type is not None and content_type.strip().lower().startswith(BINARY_CONTENT_TYPE):
        return _decode_xhr2_payload(body)
    text = _decode_utf8(body, "payload")
    if revision == 4:
        return [_decode_payload_packet_v4(part) for part in text.split(_RECORD_SEPARATOR)]
    return _decode_text_payload_v3(text)


def _decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EngineIOError(f"the {what} is not valid UTF-8") from None


def _decode_payload_packet_v4(text: str) -> Packet:
    """One revision 4 payload entry: a text packet, or ``b<base64>`` for a binary message."""
    if text.startswith("b"):
        return Packet(PacketType.MESSAGE, _decode_base64(text[1:]))
    return _decode_text_packet(text)


def _decode_payload_packet_v3(text: str) -> Packet:
    """One revision 3 payload entry: a text packet, or ``b4<base64>`` for a binary message."""
    if text.startswith("b"):
        if not text.startswith("b4"):
            raise EngineIOError("only message packets (b4) can carry base64 binary data")
        return Packet(PacketType.MESSAGE, _decode_base64(text[2:]))
    return _decode_text_packet(text)


def _decode_text_payload_v3(text: str) -> list[Packet]:
    """Split ``<length>:<packet>...`` where each length counts UTF-16 code units."""
    units = _to_utf16_units(text)
    packets = []
    position = 0
    while position < len(units):
        match = _LENGTH_DIGITS.match(units, position)
        digits = match.group() if match else ""
        _check_length_digits(digits, "payload")
        colon = position + len(digits)
        if units[colon : colon + 1] != ":":
            raise EngineIOError("a packet length in the payload is not followed by ':'")
        start, end = colon + 1, colon + 1 + int(digits)
        if end > len(units):
            raise EngineIOError("the payload ends before its last packet does")
        position = end
        if start == end:
            continue  # engine.io skips empty entries; "0:" is how it writes an empty payload
        packets.append(_decode_payload_packet_v3(_from_utf16_units(units[start:end])))
    return packets


def _decode_xhr2_payload(body: bytes) -> list[Packet]:
    """Split the revision 3 binary payload (see :func:`_encode_xhr2_payload`)."""
    packets = []
    position = 0
    while position < len(body):
        marker = body[position]
        if marker not in (0, 1):
            raise EngineIOError(f"a binary payload entry must start with 0 or 1, not {marker}")
        # The length digits are bytes 0-9. Read at most one more than allowed, so a huge one is noticed.
        terminator = position + 1
        limit = min(len(body), position + 2 + _MAX_LENGTH_DIGITS)
        while terminator < limit and body[terminator] <= 9:
            terminator += 1
        digits = body[position + 1 : terminator]
        _check_length_digits(digits, "binary payload")
        if body[terminator : terminator + 1] != b"\xff":
            raise EngineIOError("a packet length in the binary payload is not terminated by 0xFF")
        length = 0
        for digit in digits:
            length = length * 10 + digit
        start, end = terminator + 1, terminator + 1 + length
        if end > len(body):
            raise EngineIOError("the binary payload ends before its last packet does")
        content = body[start:end]
        position = end
        if marker == 0:
            packets.append(_decode_payload_packet_v3(_decode_utf8(content, "text packet")))
        elif content[:1] != b"\x04":
            raise EngineIOError("a binary packet in the payload must be a message (type 4)")
        else:
            packets.append(Packet(PacketType.MESSAGE, content[1:]))
    return packets


# --- the handshake ------------------------------------------------------------------------------------


def encode_open(
    sid: str, *, upgrades: Sequence[str], ping_interval: int, ping_timeout: int, max_payload: int
) -> Packet:
    """The OPEN packet that starts every session, its data the JSON handshake.

    The keys come in the order engine.io sends them: ``sid``, ``upgrades``, ``pingInterval``,
    ``pingTimeout``, ``maxPayload``. Revision 3 clients ignore ``maxPayload``; sending it is harmless.
    """
    handshake = {
        "sid": sid,
        "upgrades": list(upgrades),
        "pingInterval": ping_interval,
        "pingTimeout": ping_timeout,
        "maxPayload": max_payload,
    }
    return Packet(PacketType.OPEN, orjson.dumps(handshake).decode("utf-8"))


class HandshakeError(enum.Enum):
    """The errors an engine.io server answers a bad handshake or polling request with.

    Each member is ``(code, message, HTTP status)``. Clients see ``{"code":<code>,"message":<message>}``
    as the response body; see :meth:`body`.
    """

    UNKNOWN_TRANSPORT = (0, "Transport unknown", 400)
    UNKNOWN_SID = (1, "Session ID unknown", 400)
    BAD_HANDSHAKE_METHOD = (2, "Bad handshake method", 400)
    BAD_REQUEST = (3, "Bad request", 400)
    FORBIDDEN = (4, "Forbidden", 403)
    UNSUPPORTED_PROTOCOL_VERSION = (5, "Unsupported protocol version", 400)
    # trisails' own refusals (connection limits), with engine.io's Forbidden code: clients see a refusal
    TOO_MANY_CONNECTIONS = (4, "Too many connections", 503)
    TOO_MANY_CONNECTIONS_FROM_ADDRESS = (4, "Too many connections from this address", 429)
    SHUTTING_DOWN = (4, "Server shutting down", 503)

    @property
    def code(self) -> int:
        """The numeric engine.io error code."""
        code: int = self.value[0]
        return code

    @property
    def message(self) -> str:
        """The human message engine.io sends with the code."""
        message: str = self.value[1]
        return message

    @property
    def status(self) -> int:
        """The HTTP status of the error response."""
        status: int = self.value[2]
        return status

    def body(self) -> bytes:
        """The JSON response body, e.g. ``b'{"code":0,"message":"Transport unknown"}'``."""
        return orjson.dumps({"code": self.code, "message": self.message})


def parse_revision(eio: str | None) -> int:
    """The Engine.IO revision a client asked for with its ``EIO`` query parameter.

    Like engine.io, treat exactly ``"4"`` as revision 4 and anything else (including no parameter) as 3.
    """
    return 4 if eio == "4" else 3


# --- what goes out ------------------------------------------------------------------------------------


class Envelope:
    """Engine.IO packets that must go out together (a Socket.IO packet and its attachments).

    Its encodings are computed at most once per protocol revision, however many sessions the envelope
    is queued to: that is what makes a broadcast "encode once, send many".
    """

    __slots__ = ("_frames", "_wire", "_packets", "volatile")

    def __init__(self, packets: Sequence[Packet], *, volatile: bool = False) -> None:
        self._packets: tuple[Packet, ...] | None = tuple(packets)
        self.volatile = volatile
        """A hint for whoever sends it: drop it for a peer that cannot take it at once rather than queue
        it (Socket.IO's volatile emits). The encoding does not depend on it."""
        # Encodings, made when first asked for: text packets are framed the same in both revisions,
        # so an envelope of text packets (nearly all of them) keeps one list and one ``bytes``; one
        # that carries binary keeps a dict by revision.
        self._frames: list[str | bytes] | dict[int, list[str | bytes]] | None = None
        self._wire: bytes | dict[int, bytes] | None = None

    @classmethod
    def of(cls, *packets: Packet) -> Envelope:
        return cls(packets)

    @classmethod
    def message(cls, text: str, *, volatile: bool = False) -> Envelope:
        """One text MESSAGE: what nearly every Socket.IO packet is (its frame made up front, its
        :class:`Packet` only if a polling transport asks for it)."""
        envelope = cls.__new__(cls)
        envelope._packets = None
        envelope.volatile = volatile
        envelope._frames = ["4" + text]
        envelope._wire = None
        return envelope

    @property
    def packets(self) -> tuple[Packet, ...]:
        """The packets, in order."""
        packets = self._packets
        if packets is None:  # a message envelope: its one frame is its packet's text form
            frames = self._frames
            assert type(frames) is list
            packets = self._packets = tuple(_decode_text_packet(frame) for frame in frames if type(frame) is str)
        return packets

    def frames(self, revision: int) -> list[str | bytes]:
        """One websocket message per packet, as :func:`encode_frame` makes them."""
        frames = self._frames
        if type(frames) is list:
            return frames
        if frames is None:
            _check_revision(revision)
            packets = self.packets
            if all(type(packet.data) is str for packet in packets):
                frames = self._frames = [_encode_text_packet(packet) for packet in packets]
                return frames
            frames = self._frames = {}
        assert isinstance(frames, dict)
        by_revision = frames.get(revision)
        if by_revision is None:
            by_revision = frames[revision] = [encode_frame(p, revision) for p in self.packets]
        return by_revision

    def wire(self, revision: int) -> bytes:
        """The envelope as uncompressed websocket frames, ready for a socket: built once per revision and
        shared by every member of a broadcast (server frames are not masked, so they are the same bytes
        for everyone)."""
        wire = self._wire
        if type(wire) is bytes:
            return wire
        frames = self.frames(revision)
        if type(self._frames) is list:  # the same for both revisions
            wire = self._wire = b"".join([_websocket_frame(f) for f in frames])
            return wire
        if wire is None:
            wire = self._wire = {}
        assert isinstance(wire, dict)
        by_revision = wire.get(revision)
        if by_revision is None:
            by_revision = wire[revision] = b"".join([_websocket_frame(f) for f in frames])
        return by_revision
