"""Raw, misbehaving clients and random input for live fuzzing (``tests/security/test_live_fuzz.py``).

Everything takes a seeded :class:`random.Random`, so a run's input can be replayed from its seed.
:class:`RawWS` is a websocket client on a bare trio stream (framed by wsproto), so a test can send any
frame, any bytes in the middle of the framing, or half a frame, and always owns (and closes) the stream.
Every wait is bounded.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

#: What a misbehaving network peer may run into; anything else raised by a fuzz client is a finding.
NETWORK_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, LocalProtocolError, RemoteProtocolError)

VERBS = ("get", "post", "put", "delete", "patch", "options", "head")
SDK = "__sails_io_sdk_version=1.2.1"


class RawWS:
    """A websocket client on a trio stream that sends whatever it is told to, and never raises for a
    connection the server broke: :attr:`broken` says so instead."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Event] = deque()
        self.broken = False
        self.sent = 0  # bytes written, framing included
        self._parts: list[str | bytes] = []

    @classmethod
    async def connect(cls, host: str, port: int) -> RawWS:
        return cls(await trio.open_tcp_stream(host, port))

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def _write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        try:
            await self.stream.send_all(data)
        except NETWORK_ERRORS:
            self.broken = True
        else:
            self.sent += len(data)

    async def _read(self, timeout: float) -> bool:
        """Read once (at most ``timeout`` seconds); False on EOF, error or timeout."""
        if self.broken:
            return False
        data = b""
        with trio.move_on_after(timeout):
            try:
                data = await self.stream.receive_some(65536)
            except NETWORK_ERRORS:
                self.broken = True
                return False
            if not data:
                self.broken = True
                return False
        if not data:
            return False
        try:
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        except RemoteProtocolError:
            self.broken = True
            return False
        return True

    async def handshake(self, target: str, timeout: float) -> bool:
        """Send the upgrade request; True once accepted, False if refused or nothing came in time."""
        await self._write(self.ws.send(Request(host="localhost", target=target)))
        with trio.move_on_after(timeout):
            while True:
                while self.events:
                    event = self.events.popleft()
                    if isinstance(event, AcceptConnection):
                        return True
                    if isinstance(event, RejectConnection):
                        return False
                if not await self._read(timeout):
                    return False
        return False

    async def send(self, frame: str | bytes) -> None:
        try:
            data = self.ws.send(TextMessage(data=frame) if isinstance(frame, str) else BytesMessage(data=frame))
        except LocalProtocolError:  # the server has started closing
            self.broken = True
            return
        await self._write(data)

    async def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the stream, bypassing the websocket framing."""
        await self._write(data)

    def encoded(self, frame: str | bytes) -> bytes:
        """The wire bytes of ``frame`` (to send a part of it), without sending them."""
        return self.ws.send(TextMessage(data=frame) if isinstance(frame, str) else BytesMessage(data=frame))

    async def message(self, timeout: float) -> str | bytes | None:
        """The next whole message, or None when the connection ends or ``timeout`` passes."""
        with trio.move_on_after(timeout):
            while True:
                while self.events:
                    event = self.events.popleft()
                    if isinstance(event, (TextMessage, BytesMessage)):
                        self._parts.append(bytes(event.data) if isinstance(event.data, bytearray) else event.data)
                        if event.message_finished:
                            parts, self._parts = self._parts, []
                            return parts[0][:0].join(parts)  # type: ignore[arg-type]
                    elif isinstance(event, Ping):
                        await self._write(self.ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        try:
                            await self._write(self.ws.send(event.response()))
                        except LocalProtocolError:
                            pass
                        self.broken = True
                        return None
                if not await self._read(timeout):
                    return None
        return None

    async def drain(self, timeout: float) -> None:
        """Read (and drop) what the server sends for ``timeout`` seconds, or until it closes."""
        with trio.move_on_after(timeout):
            while not self.broken:
                if await self.message(timeout) is None:
                    return

    async def close(self) -> None:
        """Close politely when the connection still allows it; the stream itself is closed by aclose."""
        try:
            await self._write(self.ws.send(CloseConnection(code=1000)))
        except LocalProtocolError:
            pass


# --- random input -------------------------------------------------------------------------------------

_ALPHABET = "0123456789-/,[]{}\":_abcxyz ?=&#%\\\x00\x1e\x7fé€😀\ufffd"
_JSON_PIECES = ['"x"', "1", "-0", "1e400", "null", "true", "[", "]", "{", "}", ",", ":", '"', "\\u0000", "\\ud800",
                '{"_placeholder":true,"num":0}', '{"_placeholder":true,"num":7}', '"get"', '"post"']


def random_text(rng: random.Random, max_size: int = 40) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, max_size)))


def random_json_text(rng: random.Random) -> str:
    """Text made of JSON's pieces: valid now and then, mostly not."""
    return "".join(rng.choice(_JSON_PIECES) for _ in range(rng.randint(0, 12)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON-able value (what orjson can write)."""
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and roll < 0.4:
        return {random_text(rng, 8): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return rng.choice(
        [None, True, False, 0, -1, 2**63 - 1, rng.randint(-(10**9), 10**9), rng.random() * 1e6, random_text(rng), ""]
    )


_URL_PIECES = ["/", "//", "//[", "/say/hello", "/say", "hello", "?", "&", "=", "#", "%", "%zz", "%ff", "[", "]", "..", "x", "é",
               " ", "\x00", "http:", "csrfToken", "/socket.io/", "a[b]=1", ";"]


def random_url(rng: random.Random) -> Any:
    """A url for an envelope; mostly a string, often a broken one (hosts included: ``//[``)."""
    return random_value(rng) if rng.random() < 0.15 else "".join(rng.choice(_URL_PIECES) for _ in range(rng.randint(0, 6)))


def random_envelope(rng: random.Random) -> Any:
    """A sails.io.js request object: sometimes right, often wrong, now and then not an object at all."""
    if rng.random() < 0.1:
        return random_value(rng)
    makers: dict[str, Callable[[], Any]] = {
        "method": lambda: rng.choice([*VERBS, random_value(rng)]),
        "url": lambda: random_url(rng),
        "headers": lambda: (
            {random_text(rng, 10): random_value(rng, 2) for _ in range(rng.randint(0, 3))}
            if rng.random() < 0.8
            else random_value(rng)
        ),
        "data": lambda: random_value(rng),
        "params": lambda: random_value(rng),
    }
    envelope: dict[str, Any] = {}
    for name, make in makers.items():
        if rng.random() < 0.7:
            envelope[name] = make()
    return envelope


def virtual_request(rng: random.Random, ack_id: int | None) -> str:
    """A sails.io.js virtual request packet (``42<id>["get",{...}]``) with a random envelope."""
    verb = rng.choice(VERBS)
    args = orjson.dumps([verb, random_envelope(rng)]).decode()
    return f"42{'' if ack_id is None else ack_id}{args}"


VALID_REQUEST = '42["get",{"method":"get","headers":{},"data":{},"url":"/say/hello"}]'


def fuzz_frame(rng: random.Random, revision: int, max_payload: int) -> str | bytes:
    """One websocket message a misbehaving client might send after the handshake."""
    kind = rng.randrange(14)
    if kind == 0:
        return random_text(rng, 200)
    if kind == 1:
        return rng.randbytes(rng.randint(0, 200))
    if kind == 2:  # a valid packet, cut short
        packet = rng.choice([VALID_REQUEST, '451-["x",{"_placeholder":true,"num":0}]', "40", '40{"token":1}', "2probe"])
        return packet[: rng.randint(0, len(packet) - 1)]
    if kind == 3:  # large, but within max_payload
        size = rng.randint(max_payload // 2, max_payload - 64)
        return '42["big","' + "x" * size + '"]' if rng.random() < 0.5 else b"\x04" + bytes(size)
    if kind == 4:  # over max_payload: the server closes with 1009
        return "4" + "y" * (max_payload + rng.randint(1, 1000))
    if kind == 5:  # invalid JSON in an event or a request
        return "42" + rng.choice(["", "1", "99"]) + random_json_text(rng)
    if kind == 6:  # packet types a client must not send, or that do not exist
        return rng.choice(["0", "0{}", "1", "2", "3", "5", "6", "7", "9", "41", "43", "44", '44{"message":"no"}',
                           "46", "47", "49", "4", "40/nowhere,", "4x", "3probe", "5probe", "40/", "4/,"])
    if kind == 7:  # binary attachments the header did not announce, or announced and never sent
        frames: list[str | bytes] = [b"\x01\x02", b"\x04\x01", '451-["x",1]', '452-["x",{"_placeholder":true,"num":5}]',
                                     '461-1[{"_placeholder":true,"num":0}]', '4599-["x"]', "45-[]", '45999999999999999999-["x"]']
        return rng.choice(frames)
    if kind == 8:  # an ack for nothing
        return f"43{rng.randint(0, 2**60)}" + random_json_text(rng)
    if kind == 9:  # huge or odd ack ids and namespaces
        return rng.choice(["42" + "9" * rng.randint(10, 40) + '["x"]', "42/" + "a" * rng.randint(1, 500) + ',["x"]',
                           '40/a?b=' + random_text(rng) + ",", '42/,["x"]'])
    if kind == 10:  # a random virtual request, with or without an ack id
        return "4" + virtual_request(rng, rng.choice([None, rng.randint(0, 1000)]))[1:]
    if kind == 11:  # valid traffic in between
        return rng.choice(["40", VALID_REQUEST, "42" + "7" + VALID_REQUEST[2:], "6", "3", "2" if revision == 3 else "3"])
    if kind == 12:  # deep JSON (within what the parsers accept, and beyond)
        depth = rng.choice([10, 500, 1024, 1025, 5000])
        return '42["x",' + "[" * depth + "]" * depth + "]"
    return "4" + random_text(rng, 100)


def ws_frame(rng: random.Random, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """One websocket frame built by hand, so it can break the rules wsproto would not let us break."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 65536:
        head.append(mask_bit | 126)
        head += length.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += length.to_bytes(8, "big")
    if not masked:
        return bytes(head) + payload
    key = rng.randbytes(4)
    return bytes(head) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def broken_framing(rng: random.Random) -> bytes:
    """Bytes that break the websocket framing itself (the server drops the connection)."""
    kind = rng.randrange(7)
    if kind == 0:  # a text frame that is not UTF-8
        return ws_frame(rng, 0x1, b"42[\"\xff\xfe\"]")
    if kind == 1:  # an unmasked client frame
        return ws_frame(rng, 0x1, b"40", masked=False)
    if kind == 2:  # reserved bits without an extension, or an unknown opcode
        return ws_frame(rng, 0x1, b"40", rsv=rng.randint(1, 7)) if rng.random() < 0.5 else ws_frame(rng, rng.choice([3, 7, 11, 15]), b"x")
    if kind == 3:  # a continuation with nothing to continue, or a new message inside a fragmented one
        return ws_frame(rng, 0x0, b"x") if rng.random() < 0.5 else ws_frame(rng, 0x1, b"4", fin=False) + ws_frame(rng, 0x1, b"2")
    if kind == 4:  # a control frame too long, or fragmented
        return ws_frame(rng, 0x9, bytes(200)) if rng.random() < 0.5 else ws_frame(rng, 0x9, b"x", fin=False)
    if kind == 5:  # a frame that says it is enormous
        return bytes([0x81, 0xFF]) + (2**63 - 1).to_bytes(8, "big") + rng.randbytes(4)
    return rng.randbytes(rng.randint(1, 64))


def garbage_head(rng: random.Random, host: str) -> bytes:
    """Bytes a broken or hostile HTTP client might open a connection with (maybe never finishing them)."""
    kind = rng.randrange(9)
    query = random_query(rng)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 300))
    if kind == 1:  # half a head: no blank line, then the client goes away
        return f"GET /socket.io/?{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n".encode("latin-1", "replace")
    if kind == 2:  # a websocket upgrade with a random query and a valid key
        return (f"GET /socket.io/?{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode("latin-1", "replace")
    if kind == 3:  # an upgrade with no key or a bad version
        return (f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Version: {rng.choice(['13', '8', 'x'])}\r\n\r\n").encode()
    if kind == 4:  # a huge head, past the listener's 16 KB limit
        return b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * rng.randint(16000, 40000) + b"\r\n\r\n"
    if kind == 5:  # a body shorter than its Content-Length
        return (f"POST /socket.io/?{query} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\n").encode(
            "latin-1", "replace") + rng.randbytes(rng.randint(0, 100))
    if kind == 6:  # HTTP/2 preface, or a request line that is not one
        return rng.choice([b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                           b"GET /socket.io/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
    if kind == 7:  # a request head split into tiny pieces is sent whole here; the split is the caller's
        return f"GET /say/hello?{query} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1", "replace")
    return (f"GET /socket.io/?{query} HTTP/1.1\r\nHost: {host}\r\n" + "X: y\r\n" * rng.randint(0, 300) + "\r\n").encode(
        "latin-1", "replace")


_QUERY_PIECES = ["EIO=", "EIO=3", "EIO=4", "EIO=5", "3", "4", "transport=", "transport=polling", "transport=websocket",
                 "transport=ftp", "sid=", "sid=AAAAAAAAAAAAAAAAAAAA", "b64=1", "&", "=", "%", "%00", "%ff", "+", ";",
                 "é", "t=1", SDK, "__sails_io_sdk_version=0.0.1", "nosession=true", "__sails_io_sdk_version=x", "#"]


def random_query(rng: random.Random) -> str:
    return "&".join(rng.choice(_QUERY_PIECES) for _ in range(rng.randint(0, 6)))


_PAYLOAD_PIECES = [b"0", b"1", b"2", b"4", b"9", b":", b"b", b"b4", b"AQID", b"=", b"\x1e", b"\x00", b"\x01",
                   b"\x04", b"\xff", b"\xc3", b"42[\"x\"]", b"99999999999", b"40", b"2:40", b"1:2", b"41", b"1:1"]


def random_body(rng: random.Random) -> bytes:
    """A polling POST body: random bytes, or the payload formats' own pieces in random order."""
    if rng.random() < 0.3:
        return rng.randbytes(rng.randint(0, 300))
    return b"".join(rng.choice(_PAYLOAD_PIECES) for _ in range(rng.randint(0, 12)))


CONTENT_TYPES = [None, "text/plain;charset=UTF-8", "application/octet-stream", "Application/Octet-Stream; x=1",
                 "application/json", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "é"]
