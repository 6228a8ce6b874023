"""Websocket (RFC 6455) server tests: the handshake, then frames as byte transcripts, then every rule a
client can break, permessage-deflate (RFC 7692), and property tests over random streams and messages.

Client frames are built with :func:`masked`, which masks a payload the way a browser does; the byte
examples from RFC 6455 §5.7 and RFC 7692 §7.2.3 appear as they are printed in the RFCs."""

from __future__ import annotations

import base64
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trisails._errors import ProtocolError, WebSocketError
from trisails.protocol.websocket import (
    Close,
    ConnectionState,
    Event,
    Message,
    PerMessageDeflate,
    Ping,
    Pong,
    ServerConnection,
    UpgradeRequest,
    WebSocketStateError,
    accept_key,
    accept_response,
    encode_frame,
    negotiate_deflate,
    parse_upgrade_request,
    reject_response,
)

KEY = b"\x37\xfa\x21\x3d"  # the masking key of RFC 6455 §5.7's examples

# first bytes of the frames a client sends: FIN bit, RSV1 (compressed), opcode
TEXT, BINARY, CONTINUE_LAST = 0x81, 0x82, 0x80
TEXT_START, BINARY_START, CONTINUE = 0x01, 0x02, 0x00
CLOSE, PING, PONG = 0x88, 0x89, 0x8A
COMPRESSED_TEXT, COMPRESSED_TEXT_START = 0xC1, 0x41


def masked(first: int, payload: bytes, key: bytes = KEY, *, length_bytes: int | None = None) -> bytes:
    """A client frame: ``first`` byte, the MASK bit and length, the key, then the masked payload.

    ``length_bytes`` (0, 2 or 8) forces a length form; by default the shortest one, as RFC 6455 asks.
    """
    length = len(payload)
    if length_bytes is None:
        length_bytes = 0 if length < 126 else 2 if length < 65536 else 8
    marker = {0: length, 2: 126, 8: 127}[length_bytes]
    head = bytes((first, 0x80 | marker)) + (length.to_bytes(length_bytes, "big") if length_bytes else b"")
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def receive(connection: ServerConnection, data: bytes) -> list[Event]:
    """Feed ``data`` and return every event it completes."""
    connection.receive_data(data)
    return list(connection.events())


def fails(connection: ServerConnection, data: bytes, close_code: int) -> WebSocketError:
    """Feed ``data``, expect the connection to fail with ``close_code``, and check the aftermath: the
    close frame carrying that code is queued and the connection is closed for good."""
    connection.receive_data(data)
    with pytest.raises(WebSocketError) as info:
        list(connection.events())
    assert info.value.close_code == close_code
    assert connection.state is ConnectionState.CLOSED
    sent = connection.data_to_send()
    assert sent[0] == 0x88 and sent[2:4] == close_code.to_bytes(2, "big")
    assert sent[4:] == info.value.reason.encode()[:123]
    assert connection.next_event() is None
    return info.value


def deflate_stream(wbits: int = 15) -> zlib._Compress:
    """A client's permessage-deflate compressor."""
    return zlib.compressobj(6, zlib.DEFLATED, -wbits)


def compress(compressor: zlib._Compress, data: bytes) -> bytes:
    """One message through ``compressor``, its sync-flush tail stripped (RFC 7692 §7.2.1)."""
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def server_payload(frame: bytes) -> bytes:
    """The payload of one server frame, checking it is unmasked and its length is right."""
    length = frame[1]
    assert length & 0x80 == 0  # never masked
    offset = 2 if length < 126 else 4 if length == 126 else 10
    payload = frame[offset:]
    assert len(payload) == (length if length < 126 else int.from_bytes(frame[2:offset], "big"))
    return payload


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


# --- the handshake ----------------------------------------------------------------------------------------

CHROME_UPGRADE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    b"Host: localhost:1337\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: http://localhost:1337\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Cookie: sails.sid=s%3Aabc\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"X-Forwarded-For: 10.0.0.1\r\n"
    b"X-Forwarded-For:  10.0.0.2 \r\n"
    b"\r\n"
)


def test_the_accept_key_is_the_one_rfc_6455_computes_for_its_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_browser_upgrade_is_parsed_once_keeping_every_header() -> None:
    request = parse_upgrade_request(CHROME_UPGRADE)
    assert request is not None
    assert request.is_websocket and request.wants_websocket and request.upgrade_error is None
    assert request.method == b"GET" and request.http_version == b"1.1"
    assert (request.path, request.query) == ("/socket.io/", "EIO=4&transport=websocket")
    assert request.key == b"dGhlIHNhbXBsZSBub25jZQ=="
    assert [name for name, _ in request.headers] == [
        b"host",
        b"connection",
        b"pragma",
        b"upgrade",
        b"origin",
        b"sec-websocket-version",
        b"cookie",
        b"sec-websocket-key",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"x-forwarded-for",
        b"x-forwarded-for",
    ]
    assert request.header(b"sec-websocket-extensions") == b"permessage-deflate; client_max_window_bits"
    assert request.header(b"x-forwarded-for") == b"10.0.0.1, 10.0.0.2"
    assert request.header(b"authorization") is None
    assert request.subprotocols == ["chat", "superchat"]
    assert request.trailing == b""


def test_the_head_is_awaited_until_its_blank_line_arrives() -> None:
    for cut in range(len(CHROME_UPGRADE)):
        assert parse_upgrade_request(CHROME_UPGRADE[:cut]) is None
    assert parse_upgrade_request(CHROME_UPGRADE) is not None


def test_frames_sent_right_behind_the_head_are_kept_for_the_connection() -> None:
    request = parse_upgrade_request(CHROME_UPGRADE + masked(TEXT, b"40"))
    assert request is not None
    assert receive(ServerConnection(), request.trailing) == [Message("40")]


def test_a_head_larger_than_the_limit_is_refused_with_431() -> None:
    huge = b"GET / HTTP/1.1\r\nCookie: " + b"a" * 100
    with pytest.raises(WebSocketError) as info:
        parse_upgrade_request(huge, max_head=64)
    assert info.value.status == 431
    # the limit counts the blank line too: a head of exactly max_head bytes is accepted
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert parse_upgrade_request(head, max_head=len(head)) is not None
    with pytest.raises(WebSocketError):
        parse_upgrade_request(head, max_head=len(head) - 1)


def test_plain_http_is_parsed_but_is_not_a_websocket() -> None:
    request = parse_upgrade_request(b"GET /hello?name=x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nbody")
    assert request is not None
    assert not request.wants_websocket and not request.is_websocket
    assert request.key is None and request.upgrade_error is not None
    assert request.trailing == b"body"


def _upgrade(**changes: bytes | None) -> bytes:
    """The RFC's upgrade request with some headers changed (``None`` drops one); ``method`` and
    ``version`` change the request line."""
    method = changes.pop("method", None) or b"GET"
    version = changes.pop("version", None) or b"HTTP/1.1"
    headers: dict[str, bytes | None] = {
        "host": b"server.example.com",
        "upgrade": b"websocket",
        "connection": b"Upgrade",
        "sec_websocket_key": b"dGhlIHNhbXBsZSBub25jZQ==",
        "sec_websocket_version": b"13",
    }
    headers.update(changes)
    lines = [method + b" /chat " + version]
    lines += [name.replace("_", "-").encode() + b": " + value for name, value in headers.items() if value is not None]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_an_upgrade_with_tokens_in_any_case_and_among_others_is_valid() -> None:
    request = parse_upgrade_request(_upgrade(upgrade=b"WebSocket", connection=b"keep-alive, UPGRADE"))
    assert request is not None and request.is_websocket


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"method": b"POST"}, 405),
        ({"version": b"HTTP/1.0"}, 400),
        ({"host": None}, 400),
        ({"connection": b"keep-alive"}, 400),
        ({"connection": None}, 400),
        ({"sec_websocket_version": b"8"}, 426),
        ({"sec_websocket_version": None}, 426),
        ({"sec_websocket_key": None}, 400),
        ({"sec_websocket_key": b"not base64!"}, 400),
        ({"sec_websocket_key": base64.b64encode(b"fifteen bytes!!")}, 400),
        ({"sec_websocket_key": base64.b64encode(b"seventeen bytes!!")}, 400),
    ],
)
def test_an_invalid_upgrade_says_why_and_with_which_status_to_refuse_it(
    changes: dict[str, bytes | None], status: int
) -> None:
    request = parse_upgrade_request(_upgrade(**changes))
    assert request is not None
    assert not request.is_websocket and request.key is None
    assert request.upgrade_error is not None and request.upgrade_error.status == status


def test_a_client_sending_two_keys_is_refused() -> None:
    head = _upgrade().replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n")
    request = parse_upgrade_request(head)
    assert request is not None and not request.is_websocket


@pytest.mark.parametrize(
    "head",
    [
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET / HTTX/1.1\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded: value\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
    ],
)
def test_a_head_that_is_not_http_is_a_protocol_error(head: bytes) -> None:
    with pytest.raises(WebSocketError) as info:
        parse_upgrade_request(head)
    assert info.value.status == 400
    assert isinstance(info.value, ProtocolError)


def test_the_101_response_proves_the_key_and_names_what_was_agreed() -> None:
    response = accept_response(
        b"dGhlIHNhbXBsZSBub25jZQ==",
        deflate=PerMessageDeflate(client_max_window_bits=10),
        subprotocol="chat",
        headers=[(b"Set-Cookie", b"a=b")],
    )
    assert response == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"Set-Cookie: a=b\r\n"
        b"\r\n"
    )
    assert accept_response(b"dGhlIHNhbXBsZSBub25jZQ==").endswith(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def test_a_response_header_cannot_smuggle_in_another() -> None:
    with pytest.raises(ValueError):
        accept_response(b"k", headers=[(b"Set-Cookie", b"a\r\nX-Evil: 1")])
    with pytest.raises(ValueError):
        accept_response(b"k", subprotocol="chat, evil")


def test_a_refused_upgrade_gets_a_plain_http_error_that_closes_the_connection() -> None:
    assert reject_response(403, b"Forbidden", [(b"Content-Type", b"text/plain")]) == (
        b"HTTP/1.1 403 Forbidden\r\n"
        b"Content-Length: 9\r\n"
        b"Connection: close\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"Forbidden"
    )
    assert reject_response(426) == (
        b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert reject_response(599).startswith(b"HTTP/1.1 599 Error\r\n")


# --- permessage-deflate negotiation -----------------------------------------------------------------------


def test_no_offer_means_no_compression() -> None:
    assert negotiate_deflate(None) is None
    assert negotiate_deflate(b"") is None
    assert negotiate_deflate(b"x-webkit-deflate-frame") is None


def test_a_browser_offer_is_accepted_as_it_is() -> None:
    agreed = negotiate_deflate(b"permessage-deflate; client_max_window_bits")
    assert agreed == PerMessageDeflate()
    assert agreed is not None and agreed.response_value() == b"permessage-deflate"


def test_the_server_can_limit_the_client_window_only_when_the_client_said_it_could_limit_it() -> None:
    assert negotiate_deflate(b"permessage-deflate; client_max_window_bits", client_max_window_bits=10) == (
        PerMessageDeflate(client_max_window_bits=10)
    )
    assert negotiate_deflate(b"permessage-deflate; client_max_window_bits=12", client_max_window_bits=10) == (
        PerMessageDeflate(client_max_window_bits=10)
    )
    # the client limits itself to 9 anyway: nothing to say
    assert negotiate_deflate(b"permessage-deflate; client_max_window_bits=9", client_max_window_bits=10) == (
        PerMessageDeflate()
    )
    assert negotiate_deflate(b"permessage-deflate", client_max_window_bits=10) == PerMessageDeflate()


def test_the_server_window_is_the_smaller_of_what_the_client_allows_and_the_server_wants() -> None:
    assert negotiate_deflate(b"permessage-deflate; server_max_window_bits=12") == (
        PerMessageDeflate(server_max_window_bits=12)
    )
    assert negotiate_deflate(b"permessage-deflate; server_max_window_bits=12", server_max_window_bits=10) == (
        PerMessageDeflate(server_max_window_bits=10)
    )
    assert negotiate_deflate(b"permessage-deflate", server_max_window_bits=11) == (
        PerMessageDeflate(server_max_window_bits=11)
    )


def test_an_offer_zlib_cannot_honour_is_declined_for_the_next_one() -> None:
    offers = b"permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover"
    assert negotiate_deflate(offers) == PerMessageDeflate(server_no_context_takeover=True)


def test_context_takeover_is_switched_off_when_either_side_asks() -> None:
    assert negotiate_deflate(b"permessage-deflate; server_no_context_takeover; client_no_context_takeover") == (
        PerMessageDeflate(server_no_context_takeover=True, client_no_context_takeover=True)
    )
    assert negotiate_deflate(b"permessage-deflate", server_no_context_takeover=True) == (
        PerMessageDeflate(server_no_context_takeover=True)
    )
    agreed = negotiate_deflate(b"permessage-deflate", client_no_context_takeover=True)
    assert agreed is not None
    assert agreed.response_value() == b"permessage-deflate; client_no_context_takeover"


def test_a_quoted_window_size_is_understood() -> None:
    assert negotiate_deflate(b'foo; a="x, y", permessage-deflate; client_max_window_bits="10"; server_max_window_bits="10"') == (
        PerMessageDeflate(server_max_window_bits=10)
    )


@pytest.mark.parametrize(
    "offer",
    [
        b"permessage-deflate; unknown_parameter",
        b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        b"permessage-deflate; server_no_context_takeover=1",
        b"permessage-deflate; server_max_window_bits",
        b"permessage-deflate; server_max_window_bits=16",
        b"permessage-deflate; client_max_window_bits=7",
        b"permessage-deflate; client_max_window_bits=010",
        b"permessage-deflate; client_max_window_bits=ten",
        b"permessage-deflate; ; server_no_context_takeover",
        b"permessage-deflate; client_max_window_bits=",
        b'permessage-deflate; x="unterminated',
        b"permessage-deflate; server_max_window_bits=10 10",
    ],
)
def test_an_invalid_offer_is_declined_not_fatal(offer: bytes) -> None:
    assert negotiate_deflate(offer) is None


def test_the_server_cannot_ask_for_a_window_zlib_does_not_have() -> None:
    with pytest.raises(ValueError):
        negotiate_deflate(b"permessage-deflate", server_max_window_bits=8)
    with pytest.raises(ValueError):
        negotiate_deflate(b"permessage-deflate", client_max_window_bits=16)


# --- frames: what a well-behaved client sends --------------------------------------------------------------


def test_rfc_6455_single_frame_masked_text_message() -> None:
    connection = ServerConnection()
    assert receive(connection, bytes.fromhex("818537fa213d7f9f4d5158")) == [Message("Hello")]
    assert connection.state is ConnectionState.OPEN
    assert connection.data_to_send() == b""


def test_a_binary_message_comes_out_as_bytes() -> None:
    assert receive(ServerConnection(), masked(BINARY, b"\x00\xff\x01")) == [Message(b"\x00\xff\x01")]


def test_empty_messages_are_messages_too() -> None:
    assert receive(ServerConnection(), masked(TEXT, b"") + masked(BINARY, b"")) == [Message(""), Message(b"")]


@pytest.mark.parametrize("size", [125, 126, 255, 256, 65535, 65536, 70001])
def test_every_length_form_and_unmasking_path_gives_back_the_payload(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert receive(ServerConnection(), masked(BINARY, payload, b"\x01\x80\x7f\xfe")) == [Message(payload)]


def test_a_frame_trickling_in_byte_by_byte_gives_one_message_at_the_end() -> None:
    connection = ServerConnection()
    data = masked(TEXT, "héllo wörld".encode() * 20)
    for byte in data[:-1]:
        assert receive(connection, bytes([byte])) == []
    assert receive(connection, data[-1:]) == [Message("héllo wörld" * 20)]


def test_several_frames_in_one_read_give_several_events_in_order() -> None:
    connection = ServerConnection()
    data = masked(TEXT, b"2") + masked(PONG, b"x") + masked(BINARY, b"\x04") + masked(TEXT, b"4")[:3]
    assert receive(connection, data) == [Message("2"), Pong(b"x"), Message(b"\x04")]
    assert receive(connection, masked(TEXT, b"4")[3:]) == [Message("4")]


def test_a_fragmented_message_is_reassembled_with_a_ping_answered_in_between() -> None:
    connection = ServerConnection()
    data = masked(TEXT_START, b"Hel") + masked(PING, b"are you there?") + masked(CONTINUE, b"l") + masked(CONTINUE_LAST, b"o")
    assert receive(connection, data) == [Ping(b"are you there?"), Message("Hello")]
    assert connection.data_to_send() == b"\x8a\x0eare you there?"


def test_a_character_may_be_split_across_fragments() -> None:
    snowman = "☃".encode()
    data = masked(TEXT_START, snowman[:1]) + masked(CONTINUE, snowman[1:2]) + masked(CONTINUE_LAST, snowman[2:])
    assert receive(ServerConnection(), data) == [Message("☃")]


def test_a_fragmented_binary_message_is_reassembled() -> None:
    data = masked(BINARY_START, b"\x01") + masked(CONTINUE, b"") + masked(CONTINUE_LAST, b"\x02" * 300)
    assert receive(ServerConnection(), data) == [Message(b"\x01" + b"\x02" * 300)]


def test_pings_are_left_for_the_application_when_auto_pong_is_off() -> None:
    connection = ServerConnection(auto_pong=False)
    assert receive(connection, masked(PING, b"hb")) == [Ping(b"hb")]
    assert connection.data_to_send() == b""
    assert connection.send_pong(b"hb") == b"\x8a\x02hb"


def test_a_pong_is_reported() -> None:
    connection = ServerConnection()
    assert receive(connection, bytes.fromhex("8a8537fa213d7f9f4d5158")) == [Pong(b"Hello")]
    assert connection.data_to_send() == b""


# --- frames: every rule a client can break -----------------------------------------------------------------


def test_an_unmasked_client_frame_fails_the_connection_with_1002() -> None:
    fails(ServerConnection(), bytes.fromhex("810548656c6c6f"), 1002)


def test_a_length_not_in_its_shortest_form_is_refused() -> None:
    fails(ServerConnection(), masked(TEXT, b"x" * 10, length_bytes=2), 1002)
    fails(ServerConnection(), masked(TEXT, b"x" * 200, length_bytes=8), 1002)


def test_a_64_bit_length_with_its_top_bit_set_is_refused_at_once() -> None:
    fails(ServerConnection(), b"\x82\xff\x80" + b"\x00" * 7, 1002)


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_refused(opcode: int) -> None:
    fails(ServerConnection(), masked(0x80 | opcode, b""), 1002)


@pytest.mark.parametrize("first", [0xC1, 0xA1, 0x91, 0xC9, 0x41])
def test_reserved_bits_are_refused_without_an_extension(first: int) -> None:
    fails(ServerConnection(), masked(first, b"x"), 1002)


def test_control_frames_carry_at_most_125_bytes() -> None:
    assert receive(ServerConnection(), masked(PING, b"x" * 125)) == [Ping(b"x" * 125)]
    fails(ServerConnection(), masked(PING, b"x" * 126), 1002)
    fails(ServerConnection(), masked(CLOSE, b"\x03\xe8" + b"x" * 124), 1002)


def test_control_frames_are_never_fragmented() -> None:
    fails(ServerConnection(), masked(0x09, b"half a ping"), 1002)


def test_a_continuation_needs_a_message_to_continue() -> None:
    fails(ServerConnection(), masked(CONTINUE_LAST, b"orphan"), 1002)
    connection = ServerConnection()
    assert receive(connection, masked(TEXT, b"done")) == [Message("done")]
    fails(connection, masked(CONTINUE, b"orphan"), 1002)


def test_a_new_message_cannot_start_before_the_fragmented_one_ends() -> None:
    fails(ServerConnection(), masked(TEXT_START, b"a") + masked(TEXT, b"b"), 1002)
    fails(ServerConnection(), masked(BINARY_START, b"a") + masked(TEXT_START, b"b"), 1002)


def test_text_that_is_not_utf8_fails_with_1007() -> None:
    fails(ServerConnection(), masked(TEXT, b"\xff"), 1007)
    fails(ServerConnection(), masked(TEXT, "surrogate \ud800".encode("utf-8", "surrogatepass")), 1007)
    fails(ServerConnection(), masked(TEXT, b"x" * 300 + b"\xc0\xaf"), 1007)


def test_bad_utf8_in_a_fragment_fails_before_the_message_ends() -> None:
    connection = ServerConnection()
    fails(connection, masked(TEXT_START, b"fine ") + masked(CONTINUE, b"\xed\xa0\x80"), 1007)


def test_a_text_message_cut_inside_a_character_fails_at_its_last_frame() -> None:
    fails(ServerConnection(), masked(TEXT_START, b"ok") + masked(CONTINUE_LAST, "☃".encode()[:2]), 1007)


def test_after_an_error_nothing_more_is_parsed() -> None:
    connection = ServerConnection()
    fails(connection, masked(TEXT, b"\xff") + masked(TEXT, b"never seen"), 1007)
    assert receive(connection, masked(TEXT, b"nor this")) == []
    with pytest.raises(WebSocketStateError):
        connection.send_message("too late")


# --- message size -----------------------------------------------------------------------------------------


def test_a_message_over_the_limit_is_refused_from_its_header_alone() -> None:
    connection = ServerConnection(max_message_size=1000)
    assert receive(connection, masked(BINARY, b"x" * 1000)) == [Message(b"x" * 1000)]
    header_only = masked(BINARY, b"x" * 1001)[:8]
    fails(connection, header_only, 1009)


def test_a_fragmented_message_over_the_limit_is_refused() -> None:
    connection = ServerConnection(max_message_size=10)
    fails(connection, masked(TEXT_START, b"12345") + masked(CONTINUE, b"67890") + masked(CONTINUE, b"1"), 1009)


def test_the_limit_counts_payload_bytes_so_fragmented_wide_characters_cost_what_they_weigh() -> None:
    text = "€" * 100  # 300 bytes of UTF-8
    fragments = [text[i : i + 7].encode() for i in range(0, 100, 7)]
    frames = b"".join(masked(CONTINUE if i else TEXT_START, f) for i, f in enumerate(fragments[:-1]))
    frames += masked(CONTINUE_LAST, fragments[-1])
    assert receive(ServerConnection(max_message_size=300), frames) == [Message(text)]
    fails(ServerConnection(max_message_size=299), frames, 1009)


def test_a_compressed_bomb_is_refused_while_inflating() -> None:
    connection = ServerConnection(max_message_size=100_000, deflate=PerMessageDeflate())
    bomb = compress(deflate_stream(), b"\x00" * 1_000_000)
    assert len(bomb) < 2000
    fails(connection, masked(0xC2, bomb), 1009)


# --- closing ----------------------------------------------------------------------------------------------


def test_the_peer_closes_and_we_echo_its_code() -> None:
    connection = ServerConnection()
    assert receive(connection, masked(CLOSE, b"\x03\xe9going away")) == [Close(1001, "going away")]
    assert connection.state is ConnectionState.REMOTE_CLOSING
    assert connection.send_message("last words") == encode_frame("last words")
    assert connection.send_close() == b"\x88\x02\x03\xe9"
    assert connection.state is ConnectionState.CLOSED


def test_a_close_without_a_code_is_reported_as_1005_and_answered_without_one() -> None:
    connection = ServerConnection()
    assert receive(connection, masked(CLOSE, b"")) == [Close(1005, "")]
    assert connection.send_close() == b"\x88\x00"


def test_bytes_after_the_peer_close_are_ignored_and_its_hang_up_is_no_news() -> None:
    connection = ServerConnection()
    assert receive(connection, masked(CLOSE, b"\x03\xe8") + masked(TEXT, b"ghost")) == [Close(1000, "")]
    assert receive(connection, masked(TEXT, b"ghost")) == []
    assert receive(connection, b"") == []
    assert connection.state is ConnectionState.REMOTE_CLOSING


def test_we_close_first_and_wait_for_the_peer_answer() -> None:
    connection = ServerConnection()
    assert connection.send_close(4000, "bye") == b"\x88\x05\x0f\xa0bye"
    assert connection.state is ConnectionState.LOCAL_CLOSING
    with pytest.raises(WebSocketStateError):
        connection.send_message("no more")
    with pytest.raises(WebSocketStateError):
        connection.send_ping()
    with pytest.raises(WebSocketStateError):
        connection.send_close()
    # a message already on its way is still delivered, then the answer completes the handshake
    assert receive(connection, masked(TEXT, b"in flight") + masked(CLOSE, b"\x0f\xa0")) == [
        Message("in flight"),
        Close(4000, ""),
    ]
    assert connection.state is ConnectionState.CLOSED
    assert connection.data_to_send() == b""


def test_a_peer_that_hangs_up_without_closing_is_reported_as_1006() -> None:
    connection = ServerConnection()
    assert receive(connection, masked(TEXT, b"hi") + masked(TEXT, b"cut short")[:4]) == [Message("hi")]
    assert receive(connection, b"") == [Close(1006, "")]
    assert connection.state is ConnectionState.CLOSED
    assert connection.next_event() is None
    with pytest.raises(RuntimeError):
        connection.receive_data(b"after the end")


def test_end_of_file_while_we_wait_for_the_close_answer_is_1006_too() -> None:
    connection = ServerConnection()
    connection.send_close()
    assert receive(connection, b"") == [Close(1006, "")]


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_valid_close_codes_are_reported(code: int) -> None:
    assert receive(ServerConnection(), masked(CLOSE, code.to_bytes(2, "big"))) == [Close(code, "")]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535])
def test_close_codes_a_peer_may_not_send_are_refused(code: int) -> None:
    fails(ServerConnection(), masked(CLOSE, code.to_bytes(2, "big")), 1002)


def test_a_close_frame_of_one_byte_is_refused() -> None:
    fails(ServerConnection(), masked(CLOSE, b"\x03"), 1002)


def test_a_close_reason_must_be_utf8() -> None:
    fails(ServerConnection(), masked(CLOSE, b"\x03\xe8\xff"), 1007)


def test_we_cannot_send_a_close_code_reserved_for_apis() -> None:
    for code in (1006, 1015, 999, 5000):
        with pytest.raises(ValueError):
            ServerConnection().send_close(code)
    with pytest.raises(ValueError):
        ServerConnection().send_close(1005, "a reason needs a code")


def test_a_long_close_reason_is_cut_on_a_character_boundary() -> None:
    frame = ServerConnection().send_close(1000, "€" * 50)
    assert frame[1] == 2 + 123 and frame[4:].decode() == "€" * 41


def test_control_frames_we_send_are_bounded_too() -> None:
    assert ServerConnection().send_ping(b"x" * 125)[:2] == b"\x89\x7d"
    with pytest.raises(ValueError):
        ServerConnection().send_ping(b"x" * 126)


# --- frames we send ---------------------------------------------------------------------------------------


def test_server_frames_are_unmasked_with_the_shortest_length() -> None:
    assert encode_frame("Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_frame(b"\x00" * 256)[:4] == bytes.fromhex("827e0100")
    assert encode_frame(b"\x00" * 65536)[:10] == bytes.fromhex("827f0000000000010000")
    assert encode_frame("x" * 125)[:2] == b"\x81\x7d"
    assert ServerConnection().send_message(b"\x01") == encode_frame(b"\x01") == b"\x82\x01\x01"


# --- permessage-deflate -----------------------------------------------------------------------------------


def test_rfc_7692_compressed_hello_twice_sharing_the_context() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate())
    first = masked(COMPRESSED_TEXT, bytes.fromhex("f248cdc9c90700"))
    second = masked(COMPRESSED_TEXT, bytes.fromhex("f200110000"))
    assert receive(connection, first + second) == [Message("Hello"), Message("Hello")]
    # and we compress the same way
    assert connection.send_message("Hello") == bytes.fromhex("c107f248cdc9c90700")
    assert connection.send_message("Hello") == bytes.fromhex("c105f200110000")


def test_rfc_7692_empty_compressed_message() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate())
    assert connection.send_message("") == b"\xc1\x01\x00"
    assert receive(connection, masked(COMPRESSED_TEXT, b"\x00")) == [Message("")]


def test_a_fragmented_compressed_message_with_a_ping_in_between() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate())
    data = compress(deflate_stream(), "ça compresse bien, ça compresse bien".encode())
    frames = masked(COMPRESSED_TEXT_START, data[:5]) + masked(PING, b"") + masked(CONTINUE_LAST, data[5:])
    assert receive(connection, frames) == [Ping(b""), Message("ça compresse bien, ça compresse bien")]


def test_uncompressed_messages_may_mix_with_compressed_ones() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate())
    client = deflate_stream()
    frames = masked(COMPRESSED_TEXT, compress(client, b"one")) + masked(TEXT, b"two")
    frames += masked(COMPRESSED_TEXT, compress(client, b"three"))
    assert receive(connection, frames) == [Message("one"), Message("two"), Message("three")]


def test_a_client_without_context_takeover_starts_each_message_afresh() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate(client_no_context_takeover=True))
    frames = b"".join(masked(COMPRESSED_TEXT, compress(deflate_stream(), b"same again")) for _ in range(3))
    assert receive(connection, frames) == [Message("same again")] * 3


def test_a_client_ending_its_deflate_stream_starts_a_new_one() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate())
    final = zlib.compressobj(6, zlib.DEFLATED, -15)
    ended = final.compress(b"finished") + final.flush(zlib.Z_FINISH)
    frames = masked(COMPRESSED_TEXT, ended) + masked(COMPRESSED_TEXT, compress(deflate_stream(), b"next"))
    assert receive(connection, frames) == [Message("finished"), Message("next")]


def test_data_after_a_final_deflate_block_in_the_same_message_is_refused() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate())
    final = zlib.compressobj(6, zlib.DEFLATED, -15)
    ended = final.compress(b"finished") + final.flush(zlib.Z_FINISH)
    fails(connection, masked(COMPRESSED_TEXT_START, ended) + masked(CONTINUE_LAST, b"\x00"), 1007)


def test_our_compression_without_context_takeover_repeats_itself() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate(server_no_context_takeover=True))
    first, second = connection.send_message(b"abcabcabc"), connection.send_message(b"abcabcabc")
    assert first == second and first[0] == 0xC2
    assert inflate(server_payload(first)) == b"abcabcabc"


def test_we_compress_with_the_window_we_promised() -> None:
    connection = ServerConnection(deflate=PerMessageDeflate(server_max_window_bits=9))
    text = "".join(chr(0x4E00 + i % 500) for i in range(5000))  # repeats every 1500 bytes
    frame = connection.send_message(text)
    assert frame[0] == 0xC1
    # a 512-byte window cannot reach the repeats a 32 KiB one would use
    assert server_payload(frame) == compress(deflate_stream(9), text.encode())
    assert server_payload(frame) != compress(deflate_stream(15), text.encode())
    assert inflate(server_payload(frame)).decode() == text


def test_corrupt_deflate_data_fails_with_1007() -> None:
    fails(ServerConnection(deflate=PerMessageDeflate()), masked(COMPRESSED_TEXT, b"\xff\xff\xff"), 1007)


def test_rsv1_is_refused_on_control_frames_and_continuations_even_with_deflate() -> None:
    fails(ServerConnection(deflate=PerMessageDeflate()), masked(0xC9, b""), 1002)
    fails(
        ServerConnection(deflate=PerMessageDeflate()),
        masked(COMPRESSED_TEXT_START, b"") + masked(0xC0, b""),
        1002,
    )


def test_compressed_text_must_inflate_to_utf8() -> None:
    fails(ServerConnection(deflate=PerMessageDeflate()), masked(COMPRESSED_TEXT, compress(deflate_stream(), b"\xff")), 1007)


# --- events -----------------------------------------------------------------------------------------------


def test_events_are_immutable_values() -> None:
    message = Message("hi")
    with pytest.raises(AttributeError):
        message.data = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del message.data
    assert Message("hi") == Message("hi") != Message(b"hi")
    assert Ping(b"x") != Pong(b"x")
    assert len({Message("a"), Message("a"), Close(1000, "")}) == 2
    assert repr(Close(1000, "bye")) == "Close(code=1000, reason='bye')"
    assert Close() == Close(1005, "")


# --- properties -------------------------------------------------------------------------------------------


def _feed_in_pieces(connection: ServerConnection, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    previous = 0
    for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        if cut > previous:  # b"" would mean end of file
            events += receive(connection, data[previous:cut])
            previous = cut
    return events


@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8), deflate=st.booleans())
def test_any_byte_stream_in_any_pieces_raises_only_websocket_errors(data: bytes, cuts: list[int], deflate: bool) -> None:
    connection = ServerConnection(max_message_size=300, deflate=PerMessageDeflate() if deflate else None)
    try:
        _feed_in_pieces(connection, data, cuts)
        events = receive(connection, b"")
        assert connection.state in (ConnectionState.CLOSED, ConnectionState.REMOTE_CLOSING)
        assert all(isinstance(event, Event) for event in events)
    except WebSocketError as error:
        assert connection.state is ConnectionState.CLOSED
        assert error.close_code in (1002, 1007, 1009)


def _client_frames(
    message: str | bytes,
    splits: list[int],
    pings: list[bool],
    key: bytes,
    compressor: zlib._Compress | None,
) -> tuple[bytes, int]:
    """``message`` as masked client frames cut at ``splits``, with pings between fragments where
    ``pings`` says; returns the bytes and how many pings went in."""
    payload = message.encode() if isinstance(message, str) else message
    if compressor is not None:
        payload = compress(compressor, payload)
    cuts = sorted({min(s, len(payload)) for s in splits})
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
    opcode = 0x1 if isinstance(message, str) else 0x2
    out = b""
    ping_count = 0
    for index, piece in enumerate(pieces):
        first = (opcode if index == 0 else 0) | (0x80 if index == len(pieces) - 1 else 0)
        if compressor is not None and index == 0:
            first |= 0x40
        out += masked(first, piece, key)
        if index < len(pieces) - 1 and index < len(pings) and pings[index]:
            out += masked(PING, b"%d" % ping_count, key)
            ping_count += 1
    return out, ping_count


@given(
    messages=st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=6),
    splits=st.lists(st.integers(0, 300), max_size=4),
    pings=st.lists(st.booleans(), max_size=4),
    key=st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
    deflate=st.booleans(),
)
def test_any_messages_fragmented_and_interleaved_with_pings_come_back_identical(
    messages: list[str | bytes], splits: list[int], pings: list[bool], key: bytes, cuts: list[int], deflate: bool
) -> None:
    connection = ServerConnection(deflate=PerMessageDeflate() if deflate else None)
    compressor = deflate_stream() if deflate else None
    stream = b""
    expected: list[Event] = []
    for message in messages:
        frames, ping_count = _client_frames(message, splits, pings, key, compressor)
        stream += frames
        expected += [Ping(b"%d" % i) for i in range(ping_count)] + [Message(message)]
    assert _feed_in_pieces(connection, stream, cuts) == expected
    pongs = connection.data_to_send()
    assert pongs == b"".join(b"\x8a" + bytes((len(p.payload),)) + p.payload for p in expected if isinstance(p, Ping))


@given(messages=st.lists(st.one_of(st.text(max_size=70000), st.binary(max_size=300)), max_size=4), deflate=st.booleans())
def test_what_we_send_a_client_can_read_back(messages: list[str | bytes], deflate: bool) -> None:
    connection = ServerConnection(deflate=PerMessageDeflate() if deflate else None)
    inflater = zlib.decompressobj(-15)
    for message in messages:
        frame = connection.send_message(message)
        first, payload = frame[0], server_payload(frame)
        if deflate:
            assert first & 0x40
            payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
        assert first & 0x0F == (0x1 if isinstance(message, str) else 0x2)
        assert (payload.decode() if isinstance(message, str) else payload) == message


def test_upgrade_request_values_compare_by_content() -> None:
    one = parse_upgrade_request(CHROME_UPGRADE)
    assert one == parse_upgrade_request(CHROME_UPGRADE)
    assert isinstance(one, UpgradeRequest)


@given(
    frames=st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=200)), max_size=8),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    deflate=st.booleans(),
)
def test_any_sequence_of_well_formed_but_arbitrary_frames_raises_only_websocket_errors(
    frames: list[tuple[int, bytes]], cuts: list[int], deflate: bool
) -> None:
    """Random first bytes (any FIN, RSV and opcode) on masked payloads reach every rule above."""
    connection = ServerConnection(max_message_size=150, deflate=PerMessageDeflate() if deflate else None)
    stream = b"".join(masked(first, payload) for first, payload in frames)
    try:
        _feed_in_pieces(connection, stream, cuts)
        receive(connection, b"")
    except WebSocketError as error:
        assert connection.state is ConnectionState.CLOSED
        assert error.close_code in (1002, 1007, 1009)


@given(head=st.binary(max_size=300), cut=st.integers(0, 300))
def test_any_request_head_parses_or_raises_only_websocket_errors(head: bytes, cut: int) -> None:
    for data in (head, CHROME_UPGRADE[:cut] + head, head + b"\r\n\r\n"):
        try:
            request = parse_upgrade_request(data, max_head=256)
        except WebSocketError as error:
            assert error.status in (400, 431)
        else:
            assert request is None or isinstance(request, UpgradeRequest)
