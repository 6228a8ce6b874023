"""Engine.IO codec tests: byte transcripts first (most captured live from engine.io 6.6 and
engine.io-client 3.1.6), then every error path, then property tests."""

from __future__ import annotations

import base64

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from trisails._errors import EngineIOError
from trisails.protocol.engineio import (
    HandshakeError,
    Packet,
    PacketType,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_open,
    encode_payload,
    parse_revision,
)

TEXT = "text/plain; charset=UTF-8"
BINARY = "application/octet-stream"

OPEN = PacketType.OPEN
CLOSE = PacketType.CLOSE
PING = PacketType.PING
PONG = PacketType.PONG
MESSAGE = PacketType.MESSAGE
UPGRADE = PacketType.UPGRADE
NOOP = PacketType.NOOP

JWR = '31[{"body":"plain string","headers":{},"statusCode":200}]'


# --- the handshake ------------------------------------------------------------------------------------


def test_open_packet_is_the_handshake_json_in_engine_io_key_order() -> None:
    packet = encode_open(
        "VS_hDGAOl0JrajzCAAAA", upgrades=[], ping_interval=25000, ping_timeout=60000, max_payload=100000000
    )
    assert encode_frame(packet, 3) == (
        '0{"sid":"VS_hDGAOl0JrajzCAAAA","upgrades":[],"pingInterval":25000,'
        '"pingTimeout":60000,"maxPayload":100000000}'
    )


def test_polling_handshake_offers_the_websocket_upgrade() -> None:
    packet = encode_open("KJlq", upgrades=("websocket",), ping_interval=25000, ping_timeout=60000, max_payload=10)
    assert packet.data == '{"sid":"KJlq","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":60000,"maxPayload":10}'


@pytest.mark.parametrize(
    ("error", "code", "status", "body"),
    [
        (HandshakeError.UNKNOWN_TRANSPORT, 0, 400, b'{"code":0,"message":"Transport unknown"}'),
        (HandshakeError.UNKNOWN_SID, 1, 400, b'{"code":1,"message":"Session ID unknown"}'),
        (HandshakeError.BAD_HANDSHAKE_METHOD, 2, 400, b'{"code":2,"message":"Bad handshake method"}'),
        (HandshakeError.BAD_REQUEST, 3, 400, b'{"code":3,"message":"Bad request"}'),
        (HandshakeError.FORBIDDEN, 4, 403, b'{"code":4,"message":"Forbidden"}'),
        (HandshakeError.UNSUPPORTED_PROTOCOL_VERSION, 5, 400, b'{"code":5,"message":"Unsupported protocol version"}'),
    ],
)
def test_handshake_errors_carry_engine_io_code_status_and_body(
    error: HandshakeError, code: int, status: int, body: bytes
) -> None:
    assert (error.code, error.status, error.body()) == (code, status, body)
    assert error.message.encode() in body


@pytest.mark.parametrize(("eio", "revision"), [("4", 4), ("3", 3), (None, 3), ("", 3), ("5", 3), ("04", 3), (" 4", 3)])
def test_only_eio_4_means_revision_4(eio: str | None, revision: int) -> None:
    assert parse_revision(eio) == revision


# --- websocket frames ---------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", [3, 4])
@pytest.mark.parametrize(
    ("frame", "packet"),
    [
        ("2", Packet(PING)),
        ("3", Packet(PONG)),
        ("2probe", Packet(PING, "probe")),
        ("3probe", Packet(PONG, "probe")),
        ("5", Packet(UPGRADE)),
        ("6", Packet(NOOP)),
        ("1", Packet(CLOSE)),
        ("40", Packet(MESSAGE, "0")),
        ("430[{\"body\":[],\"headers\":{},\"statusCode\":200}]", Packet(MESSAGE, '30[{"body":[],"headers":{},"statusCode":200}]')),
        ("4é😀", Packet(MESSAGE, "é😀")),
    ],
)
def test_text_frames_are_the_type_digit_then_the_data(revision: int, frame: str, packet: Packet) -> None:
    assert decode_frame(frame, revision) == packet
    assert encode_frame(packet, revision) == frame


def test_revision_3_binary_frame_starts_with_the_message_type_byte() -> None:
    # LIVE: the attachment [1, 2, 3] of 461-9[...] arrived as the binary frame 04 01 02 03.
    assert decode_frame(b"\x04\x01\x02\x03", 3) == Packet(MESSAGE, b"\x01\x02\x03")
    assert encode_frame(Packet(MESSAGE, b"\x01\x02\x03"), 3) == b"\x04\x01\x02\x03"


def test_revision_4_binary_frame_is_the_bare_data() -> None:
    assert decode_frame(b"\x01\x02\x03", 4) == Packet(MESSAGE, b"\x01\x02\x03")
    assert encode_frame(Packet(MESSAGE, b"\x01\x02\x03"), 4) == b"\x01\x02\x03"


def test_empty_binary_messages_are_allowed() -> None:
    assert decode_frame(b"\x04", 3) == Packet(MESSAGE, b"")
    assert decode_frame(b"", 4) == Packet(MESSAGE, b"")
    assert encode_frame(Packet(MESSAGE, b""), 3) == b"\x04"


def test_binary_frames_may_arrive_as_any_bytes_like_object() -> None:
    assert decode_frame(bytearray(b"\x04\x09"), 3) == Packet(MESSAGE, b"\x09")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "revision", "reason"),
    [
        ("", 3, "empty packet"),
        ("", 4, "empty packet"),
        ("7", 3, "unknown packet type '7'"),
        ("x2", 4, "unknown packet type 'x'"),
        ("b4AQID", 3, "unknown packet type 'b'"),  # base64 is for polling, never for websocket frames
        ("٣", 3, "unknown packet type '٣'"),  # a digit, but not an ASCII one
        (b"", 3, "empty binary frame"),
        (b"\x02probe", 3, "a binary frame must be a message (type 4), not type 2"),
        (b"4", 3, "a binary frame must be a message (type 4), not type 52"),
    ],
)
def test_malformed_frames_are_refused(frame: str | bytes, revision: int, reason: str) -> None:
    with pytest.raises(EngineIOError) as excinfo:
        decode_frame(frame, revision)
    assert excinfo.value.reason == reason


def test_only_message_packets_can_hold_binary_data() -> None:
    with pytest.raises(ValueError, match="only MESSAGE packets"):
        Packet(PING, b"probe")


@pytest.mark.parametrize("revision", [2, 5, 0])
def test_unknown_revisions_are_the_callers_mistake(revision: int) -> None:
    with pytest.raises(ValueError, match="revision must be 3 or 4"):
        encode_frame(Packet(PING), revision)
    with pytest.raises(ValueError, match="revision must be 3 or 4"):
        decode_frame("2", revision)
    with pytest.raises(ValueError, match="revision must be 3 or 4"):
        encode_payload([Packet(PING)], revision)
    with pytest.raises(ValueError, match="revision must be 3 or 4"):
        decode_payload(b"1:2", revision)


# --- revision 3 polling: the text payload -------------------------------------------------------------


def test_revision_3_session_over_polling() -> None:
    # LIVE (spec A.6). The handshake GET:
    open_packet = encode_open(
        "KJlq", upgrades=["websocket"], ping_interval=25000, ping_timeout=60000, max_payload=100000000
    )
    body, content_type = encode_payload([open_packet], 3)
    assert content_type == TEXT
    assert body.startswith(b'104:0{"sid":"KJlq","upgrades":["websocket"]')
    # The next GET gets the implicit namespace connection.
    assert encode_payload([Packet(MESSAGE, "0")], 3) == (b"2:40", TEXT)
    # The client POSTs a virtual request and a ping in one body.
    post = b'68:421["get",{"method":"get","headers":{},"data":{},"url":"/chat/str"}]1:2'
    assert decode_payload(post, 3, content_type="text/plain;charset=UTF-8") == [
        Packet(MESSAGE, '21["get",{"method":"get","headers":{},"data":{},"url":"/chat/str"}]'),
        Packet(PING),
    ]
    # The next GET carries the pong and the ack.
    response = b"1:358:4" + JWR.encode()
    assert encode_payload([Packet(PONG), Packet(MESSAGE, JWR)], 3) == (response, TEXT)
    assert decode_payload(response, 3) == [Packet(PONG), Packet(MESSAGE, JWR)]


def test_revision_3_lengths_count_utf16_code_units_like_javascript() -> None:
    # "é" is one code unit (two UTF-8 bytes); "😀" is two code units (one Python character).
    packets = [Packet(MESSAGE, "é"), Packet(MESSAGE, "😀"), Packet(MESSAGE, "a😀b")]
    body, _ = encode_payload(packets, 3)
    assert body.decode() == "2:4é3:4😀5:4a😀b"
    assert decode_payload(body, 3) == packets


def test_revision_3_text_payload_writes_binary_as_b4_base64_when_the_client_asked_for_b64() -> None:
    packets = [Packet(MESSAGE, '51-["up",{"_placeholder":true,"num":0}]'), Packet(MESSAGE, b"\x01\x02\x03")]
    body, content_type = encode_payload(packets, 3, b64=True)
    assert (body, content_type) == (b'40:451-["up",{"_placeholder":true,"num":0}]6:b4AQID', TEXT)
    assert decode_payload(body, 3) == packets


def test_revision_3_empty_payload_is_written_0_colon_and_empty_entries_are_skipped() -> None:
    assert encode_payload([], 3) == (b"0:", TEXT)
    assert decode_payload(b"0:", 3) == []
    assert decode_payload(b"0:1:20:", 3) == [Packet(PING)]


def test_revision_3_lengths_may_have_leading_zeros() -> None:
    assert decode_payload(b"01:2", 3) == [Packet(PING)]


def test_revision_3_empty_binary_message_is_a_bare_b4() -> None:
    assert encode_payload([Packet(MESSAGE, b"")], 3, b64=True) == (b"2:b4", TEXT)
    assert decode_payload(b"2:b4", 3) == [Packet(MESSAGE, b"")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty payload"),
        (b"2", "a packet length in the payload is not followed by ':'"),
        (b"1:2x", "a packet length in the payload is missing"),
        (b":2", "a packet length in the payload is missing"),
        (b"-1:2", "a packet length in the payload is missing"),
        (b"\xd9\xa3:2", "a packet length in the payload is missing"),  # Arabic-Indic digit three
        (b"99999999999:2", "a packet length in the payload is too large"),
        (b"5:2", "the payload ends before its last packet does"),
        (b"1:25:hello", "unknown packet type 'h'"),
        (b"1:7", "unknown packet type '7'"),
        (b"\xff", "the payload is not valid UTF-8"),
        (b"2:4\xed\xa0\x80", "the payload is not valid UTF-8"),  # an encoded surrogate
        ("2:4😀".encode(), "a packet length splits a character in two"),
        ("4:4😀😀".encode(), "a packet length splits a character in two"),
        (b"4:b4AQ", "a binary packet is not valid base64"),
        (b"6:b4AQ!D", "a binary packet is not valid base64"),
        (b"6:b2AQID", "only message packets (b4) can carry base64 binary data"),
        (b"1:b", "only message packets (b4) can carry base64 binary data"),
    ],
)
def test_malformed_revision_3_text_payloads_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(EngineIOError) as excinfo:
        decode_payload(body, 3)
    assert excinfo.value.reason == reason


# --- revision 3 polling: the XHR2 binary payload ------------------------------------------------------


def test_revision_3_binary_ack_goes_out_as_an_xhr2_payload() -> None:
    # LIVE (spec A.6): 00 08 03 ff "461-3[...]" 01 04 ff 04 01 02 03
    header = '61-3[{"body":{"buf":{"_placeholder":true,"num":0}},"headers":{},"statusCode":200}]'
    packets = [Packet(MESSAGE, header), Packet(MESSAGE, b"\x01\x02\x03")]
    body, content_type = encode_payload(packets, 3)
    assert content_type == BINARY
    assert body == b"\x00\x08\x03\xff4" + header.encode() + b"\x01\x04\xff\x04\x01\x02\x03"
    assert decode_payload(body, 3, content_type=BINARY) == packets


def test_xhr2_string_lengths_count_utf8_bytes() -> None:
    packets = [Packet(MESSAGE, "é😀"), Packet(MESSAGE, b"")]
    body, _ = encode_payload(packets, 3)
    assert body == b"\x00\x07\xff4" + "é😀".encode() + b"\x01\x01\xff\x04"
    assert decode_payload(body, 3, content_type="Application/Octet-Stream; charset=binary") == packets


def test_xhr2_payload_lengths_of_ten_and_more_use_several_digit_bytes() -> None:
    body, _ = encode_payload([Packet(MESSAGE, bytes(range(12)))], 3)
    assert body == b"\x01\x01\x03\xff\x04" + bytes(range(12))


def test_revision_3_reads_the_text_format_unless_told_the_body_is_binary() -> None:
    assert decode_payload(b"1:2", 3, content_type=None) == [Packet(PING)]
    with pytest.raises(EngineIOError):
        decode_payload(b"\x00\x01\xff2", 3)
    assert decode_payload(b"\x00\x01\xff2", 3, content_type=BINARY) == [Packet(PING)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty payload"),
        (b"\x02\x01\xff2", "a binary payload entry must start with 0 or 1, not 2"),
        (b"\x00\xff2", "a packet length in the binary payload is missing"),
        (b"\x00\x01", "a packet length in the binary payload is not terminated by 0xFF"),
        (b"\x00\x01\x0a\xff2", "a packet length in the binary payload is not terminated by 0xFF"),
        (b"\x00" + b"\x01" * 11 + b"\xff", "a packet length in the binary payload is too large"),
        (b"\x00\x05\xff2", "the binary payload ends before its last packet does"),
        (b"\x00\x00\xff", "empty packet"),
        (b"\x00\x01\xff9", "unknown packet type '9'"),
        (b"\x00\x01\xff\xff", "the text packet is not valid UTF-8"),
        (b"\x01\x00\xff", "a binary packet in the payload must be a message (type 4)"),
        (b"\x01\x02\xff\x02\x01", "a binary packet in the payload must be a message (type 4)"),
        (b"\x00\x01\xff2\x01", "a packet length in the binary payload is missing"),
    ],
)
def test_malformed_xhr2_payloads_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(EngineIOError) as excinfo:
        decode_payload(body, 3, content_type=BINARY)
    assert excinfo.value.reason == reason


# --- revision 4 polling -------------------------------------------------------------------------------


def test_revision_4_payload_joins_packets_with_the_record_separator() -> None:
    packets = [Packet(MESSAGE, "0"), Packet(MESSAGE, '0{"sid":"VGHo"}'), Packet(MESSAGE, b"\x01\x02\x03")]
    body, content_type = encode_payload(packets, 4)
    assert (body, content_type) == (b'40\x1e40{"sid":"VGHo"}\x1ebAQID', TEXT)
    assert decode_payload(body, 4) == packets


def test_revision_4_cannot_send_a_packet_containing_the_separator() -> None:
    with pytest.raises(ValueError, match="cannot carry a packet that contains"):
        encode_payload([Packet(MESSAGE, "a\x1eb")], 4)
    assert encode_payload([Packet(MESSAGE, "a\x1eb")], 3) == (b"4:4a\x1eb", TEXT)


def test_revision_4_ignores_the_content_type() -> None:
    assert decode_payload(b"2\x1e3", 4, content_type=BINARY) == [Packet(PING), Packet(PONG)]


def test_revision_4_always_uses_text_even_for_binary() -> None:
    assert encode_payload([Packet(MESSAGE, b"\xff")], 4, b64=False) == (b"b/w==", TEXT)
    assert decode_payload(b"b", 4) == [Packet(MESSAGE, b"")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty payload"),
        (b"2\x1e", "empty packet"),
        (b"\x1e2", "empty packet"),
        (b"2\x1e\x1e3", "empty packet"),
        (b"9", "unknown packet type '9'"),
        (b"bAQI", "a binary packet is not valid base64"),
        (b"b\xc3\xa9", "a binary packet is not valid base64"),
        (b"4\xc3", "the payload is not valid UTF-8"),
    ],
)
def test_malformed_revision_4_payloads_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(EngineIOError) as excinfo:
        decode_payload(body, 4)
    assert excinfo.value.reason == reason


# --- properties ---------------------------------------------------------------------------------------

# Text without surrogates: anything a peer can send us in valid UTF-8, astral characters included.
texts = st.text(st.characters(codec="utf-8"))
text_packets = st.builds(Packet, st.sampled_from(PacketType), texts)
binary_packets = st.builds(Packet, st.just(MESSAGE), st.binary())
packets = text_packets | binary_packets
revisions = st.sampled_from([3, 4])


@given(packets, revisions)
def test_frames_round_trip(packet: Packet, revision: int) -> None:
    assert decode_frame(encode_frame(packet, revision), revision) == packet


@given(st.lists(packets, min_size=1), revisions, st.booleans())
def test_payloads_round_trip(packet_list: list[Packet], revision: int, b64: bool) -> None:
    assume(revision == 3 or not any(isinstance(p.data, str) and "\x1e" in p.data for p in packet_list))
    body, content_type = encode_payload(packet_list, revision, b64=b64)
    assert decode_payload(body, revision, content_type=content_type) == packet_list


@given(st.lists(text_packets))
def test_revision_3_text_lengths_are_utf16_code_units(packet_list: list[Packet]) -> None:
    body, _ = encode_payload(packet_list, 3)
    expected = "".join(
        f"{len(text.encode('utf-16-le')) // 2}:{text}"
        for text in (str(int(p.type)) + str(p.data) for p in packet_list)
    )
    assert body.decode() == (expected or "0:")


@given(st.text() | st.binary(), revisions)
def test_any_frame_decodes_or_raises_engineio_error(frame: str | bytes, revision: int) -> None:
    try:
        decode_frame(frame, revision)
    except EngineIOError:
        pass


@given(st.binary(), revisions, st.sampled_from([None, TEXT, BINARY]))
def test_any_body_decodes_or_raises_engineio_error(body: bytes, revision: int, content_type: str | None) -> None:
    try:
        decode_payload(body, revision, content_type=content_type)
    except EngineIOError:
        pass


# Bodies built from the format's own pieces reach deeper into the parsers than random bytes do.
_text_pieces = st.sampled_from(["0", "1", "2", "4", "9", ":", "b", "b4", "AQID", "=", "\x1e", "😀", "é", "x"])
_binary_pieces = st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x04", b"\x09", b"\xff", b"2", b"4", b"\xc3"])


@given(st.lists(_text_pieces).map("".join), revisions)
def test_near_valid_text_bodies_decode_or_raise_engineio_error(body: str, revision: int) -> None:
    try:
        packets = decode_payload(body.encode(), revision)
    except EngineIOError:
        return
    # Whatever decodes must survive a round trip through our own encoder.
    body, content_type = encode_payload(packets, revision)
    assert decode_payload(body, revision, content_type=content_type) == packets


@given(st.lists(_binary_pieces).map(b"".join))
def test_near_valid_xhr2_bodies_decode_or_raise_engineio_error(body: bytes) -> None:
    try:
        decode_payload(body, 3, content_type=BINARY)
    except EngineIOError:
        pass
