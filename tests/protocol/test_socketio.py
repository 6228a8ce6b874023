"""Socket.IO codec tests: packets as they appeared on the wire between sails.io.js 1.2.1 (or
socket.io-client 4) and a Sails server, then every way the decoder refuses a packet, then properties."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import math
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trisails._errors import SocketIOError
from trisails.protocol.socketio import Decoder, Packet, PacketType, _parse_plain_event, encode, encode_ack, encode_str

CONNECT = PacketType.CONNECT
DISCONNECT = PacketType.DISCONNECT
EVENT = PacketType.EVENT
ACK = PacketType.ACK
CONNECT_ERROR = PacketType.CONNECT_ERROR
BINARY_EVENT = PacketType.BINARY_EVENT
BINARY_ACK = PacketType.BINARY_ACK

JWR = {"body": [], "headers": {}, "statusCode": 200}
VIRTUAL_GET = {"method": "get", "headers": {}, "data": {}, "url": "/user"}


def receive_all(decoder: Decoder, *messages: str | bytes) -> list[Packet | None]:
    """Feed messages in order and collect what each one returned (``None`` while attachments are due)."""
    return [decoder.receive(message) for message in messages]


def decode(message: str) -> Packet:
    packet = Decoder().receive(message)
    assert packet is not None
    return packet


def refusal(*messages: str | bytes, decoder: Decoder | None = None) -> str:
    """The reason the decoder gives for refusing the last of ``messages``."""
    decoder = decoder or Decoder()
    *accepted, last = messages
    receive_all(decoder, *accepted)
    with pytest.raises(SocketIOError) as excinfo:
        decoder.receive(last)
    return excinfo.value.reason


# --- a sails.io.js session ----------------------------------------------------------------------------


def test_sails_io_js_virtual_request_and_its_ack() -> None:
    # LIVE: 40 (server), 420["get",...] (client), 430[...] (server). Engine.IO's leading 4 is gone here.
    assert encode(Packet(CONNECT)) == ["0"]
    assert decode('20["get",{"method":"get","headers":{},"data":{},"url":"/user"}]') == Packet(
        EVENT, data=["get", VIRTUAL_GET], id=0
    )
    assert encode(Packet(ACK, data=[JWR], id=0)) == ['30[{"body":[],"headers":{},"statusCode":200}]']


def test_ack_ids_are_echoed_with_as_many_digits_as_they_have() -> None:
    assert decode('211["get",{"url":"/chat/notfound"}]').id == 11
    assert encode_str(Packet(ACK, data=[{"body": "Not Found", "headers": {}, "statusCode": 404}], id=2)) == (
        '32[{"body":"Not Found","headers":{},"statusCode":404}]'
    )


def test_server_pushes_are_events_without_an_ack_id() -> None:
    packet = Packet(EVENT, data=["user", {"verb": "created", "data": {"pets": [], "id": 1, "name": "joe"}, "id": 1}])
    assert encode(packet) == ['2["user",{"verb":"created","data":{"pets":[],"id":1,"name":"joe"},"id":1}]']


def test_response_with_a_buffer_goes_out_as_a_binary_ack_and_its_attachment() -> None:
    # LIVE: res.json({buf: Buffer.from([1,2,3])}) -> 461-9[...] then the binary frame 04 01 02 03.
    packet = Packet(ACK, data=[{"body": {"buf": b"\x01\x02\x03"}, "headers": {}, "statusCode": 200}], id=9)
    wire = ['61-9[{"body":{"buf":{"_placeholder":true,"num":0}},"headers":{},"statusCode":200}]', b"\x01\x02\x03"]
    assert encode(packet) == wire
    decoder = Decoder()
    assert receive_all(decoder, *wire) == [None, packet]
    assert decoder.awaiting_attachments == 0


def test_disconnect_is_a_bare_1() -> None:
    assert encode(Packet(DISCONNECT)) == ["1"]
    assert decode("1") == Packet(DISCONNECT)


# --- namespaces and connect errors --------------------------------------------------------------------


def test_events_in_other_namespaces_carry_it_before_a_comma() -> None:
    assert encode(Packet(EVENT, "/admin", ["x"])) == ['2/admin,["x"]']
    assert decode('2/admin,["x"]') == Packet(EVENT, "/admin", ["x"])
    assert decode('2/admin,7["x"]') == Packet(EVENT, "/admin", ["x"], id=7)
    assert decode("1/admin,") == Packet(DISCONNECT, "/admin")


def test_revision_5_connect_and_the_servers_answer() -> None:
    # LIVE (socket.io-client 4): >>> 40  <<< 40{"sid":"..."}; with auth: 40{"token":"..."}.
    assert decode("0") == Packet(CONNECT)
    assert decode('0{"token":"abc"}') == Packet(CONNECT, data={"token": "abc"})
    assert encode(Packet(CONNECT, data={"sid": "abc"})) == ['0{"sid":"abc"}']


def test_revision_4_connect_carries_the_query_in_the_namespace() -> None:
    assert decode("0/nsp?token=abc,") == Packet(CONNECT, "/nsp", query="token=abc")
    assert decode("0/nsp,") == Packet(CONNECT, "/nsp")
    # Only a CONNECT has a query; elsewhere "?" is just part of the namespace.
    assert decode('2/nsp?x,["a"]').namespace == "/nsp?x"


def test_connect_errors_are_a_string_in_revision_4_and_an_object_in_revision_5() -> None:
    assert encode(Packet(CONNECT_ERROR, data="Not authorized")) == ['4"Not authorized"']
    assert encode(Packet(CONNECT_ERROR, data={"message": "Not authorized"})) == ['4{"message":"Not authorized"}']
    assert decode('4{"message":"Not authorized"}') == Packet(CONNECT_ERROR, data={"message": "Not authorized"})
    assert decode('4"Not authorized"') == Packet(CONNECT_ERROR, data="Not authorized")


# --- binary packets from the client -------------------------------------------------------------------


def test_a_binary_event_waits_for_its_attachments() -> None:
    decoder = Decoder()
    assert decoder.receive('52-["upload",{"_placeholder":true,"num":1},[{"_placeholder":true,"num":0}]]') is None
    assert decoder.awaiting_attachments == 2
    assert decoder.receive(b"first") is None
    assert decoder.awaiting_attachments == 1
    assert decoder.receive(b"second") == Packet(EVENT, data=["upload", b"second", [b"first"]])
    assert decoder.awaiting_attachments == 0
    # And it is idle again: the next packet is an ordinary one.
    assert decoder.receive('2["next"]') == Packet(EVENT, data=["next"])


def test_binary_ack_with_namespace_and_id() -> None:
    assert receive_all(Decoder(), '61-/admin,4[{"_placeholder":true,"num":0}]', bytearray(b"\x00")) == [  # type: ignore[arg-type]
        None,
        Packet(ACK, "/admin", [b"\x00"], id=4),
    ]


def test_attachments_are_numbered_depth_first_and_keys_keep_their_order() -> None:
    data = ["e", {"z": b"0", "a": [b"1", (b"2",)], "m": bytearray(b"3")}, memoryview(b"4")]
    header, *attachments = encode(Packet(EVENT, data=data))
    assert header == (
        '55-["e",{"z":{"_placeholder":true,"num":0},"a":[{"_placeholder":true,"num":1},'
        '[{"_placeholder":true,"num":2}]],"m":{"_placeholder":true,"num":3}},{"_placeholder":true,"num":4}]'
    )
    assert attachments == [b"0", b"1", b"2", b"3", b"4"]
    assert all(type(attachment) is bytes for attachment in attachments)


def test_a_binary_packet_announcing_no_attachments_is_returned_at_once() -> None:
    # socket.io-parser does the same, and leaves anything that looks like a placeholder alone.
    assert decode('50-["x",{"_placeholder":true,"num":0}]') == Packet(EVENT, data=["x", {"_placeholder": True, "num": 0}])


def test_placeholders_in_plain_events_are_just_objects() -> None:
    assert decode('2["x",{"_placeholder":true,"num":0}]').data == ["x", {"_placeholder": True, "num": 0}]


def test_an_explicit_binary_type_is_kept_when_encoding() -> None:
    assert encode(Packet(BINARY_EVENT, data=["x"])) == ['50-["x"]']
    assert encode(Packet(BINARY_ACK, data=[b"a"], id=1)) == ['61-1[{"_placeholder":true,"num":0}]', b"a"]


def test_deeply_nested_attachments_are_restored_without_recursion() -> None:
    depth = 1000
    message = '51-["deep",' + "[" * depth + '{"_placeholder":true,"num":0}' + "]" * depth + "]"
    packet = receive_all(Decoder(), message, b"!")[1]
    assert packet is not None
    node = packet.data[1]
    for _ in range(depth):
        node = node[0]
    assert node == b"!"


# --- JSON the way JavaScript sees it ------------------------------------------------------------------


def test_json_is_compact_and_not_ascii_escaped() -> None:
    assert encode_str(Packet(EVENT, data=["chat", {"msg": "héllo 😀", "n": 1.5, "ok": True, "none": None}])) == (
        '2["chat",{"msg":"héllo 😀","n":1.5,"ok":true,"none":null}]'
    )


def test_values_orjson_refuses_fall_back_to_the_standard_library() -> None:
    # An integer beyond 64 bits and a lone surrogate are valid JSON, and JavaScript handles both.
    assert encode_str(Packet(EVENT, data=["n", 2**70, "\ud800"])) == '2["n",1180591620717411303424,"\\ud800"]'
    assert decode('2["n","\\ud800"]').data == ["n", "\ud800"]
    # 1e400 overflows a double: JSON.parse gives Infinity.
    assert decode('2["n",1e400]').data == ["n", math.inf]


def test_numbers_decode_the_same_whichever_json_parser_ran() -> None:
    # Exact within 64 bits, a float beyond (as JavaScript would); the lone surrogate forces the fallback.
    assert decode('2["n",18446744073709551616]').data == ["n", 18446744073709551616.0]
    assert decode('2["n",18446744073709551616,"\\ud800"]').data == ["n", 18446744073709551616.0, "\ud800"]
    assert decode('2["n",-9223372036854775808,"\\ud800"]').data[1] == -(2**63)


def test_dates_are_written_as_javascripts_date_to_json_writes_them() -> None:
    # What `new Date(Date.UTC(2026, 11, 7, 19, 58, 0, 123)).toJSON()` gives: UTC, milliseconds, a Z
    moment = datetime.datetime(2026, 12, 7, 19, 58, 0, 123999, tzinfo=datetime.timezone.utc)
    paris = moment.astimezone(datetime.timezone(datetime.timedelta(hours=1)))
    naive = moment.replace(tzinfo=None)  # taken as UTC, whatever the host's time zone
    assert encode_str(Packet(EVENT, data=["at", moment, paris, naive])) == (
        '2["at","2026-12-07T19:58:00.123Z","2026-12-07T19:58:00.123Z","2026-12-07T19:58:00.123Z"]'
    )
    # a date is its midnight UTC, the Date JavaScript's `new Date("2026-12-07")` makes
    assert encode_str(Packet(EVENT, data=["on", datetime.date(2026, 12, 7)])) == '2["on","2026-12-07T00:00:00.000Z"]'
    assert encode_str(Packet(EVENT, data=["y1", datetime.datetime(1, 1, 1)])) == '2["y1","0001-01-01T00:00:00.000Z"]'


def test_decimals_and_uuids_are_their_exact_strings_in_either_json_writer() -> None:
    token = uuid.UUID("12345678-1234-5678-1234-567812345678")
    expected = '"12.50","12345678-1234-5678-1234-567812345678","2026-12-07T00:00:00.000Z"'
    values = [decimal.Decimal("12.50"), token, datetime.date(2026, 12, 7)]
    assert encode_str(Packet(EVENT, data=["x", *values])) == f'2["x",{expected}]'
    # a lone surrogate sends the payload through the standard library: the same values come out
    assert encode_str(Packet(EVENT, data=["x", *values, "\ud800"])) == f'2["x",{expected},"\\ud800"]'


def test_a_dataclass_is_an_object_of_its_fields_in_either_json_writer() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        at: datetime.date

    point = Point(1, datetime.date(2026, 1, 2))
    assert encode_str(Packet(EVENT, data=["p", point])) == '2["p",{"x":1,"at":"2026-01-02T00:00:00.000Z"}]'
    assert encode_str(Packet(EVENT, data=["p", point, 2**70])) == (
        '2["p",{"x":1,"at":"2026-01-02T00:00:00.000Z"},1180591620717411303424]'
    )


def test_nan_encodes_as_null_like_json_stringify() -> None:
    assert encode_str(Packet(EVENT, data=["n", math.nan])) == '2["n",null]'


def test_whitespace_around_the_json_is_allowed_as_json_parse_allows_it() -> None:
    assert decode('2 ["x"] ') == Packet(EVENT, data=["x"])


def test_numeric_event_names_are_accepted_like_socket_io_parser_does() -> None:
    assert decode("2[42]").data == [42]


# --- encoding mistakes are ours, not the peer's -------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (Packet(EVENT, "admin", ["x"]), "a namespace must start with '/'"),
        (Packet(EVENT, "", ["x"]), "a namespace must start with '/'"),
        (Packet(EVENT, "/a,b", ["x"]), "contain no ','"),
        (Packet(ACK, data=[], id=-1), "an ack id cannot be negative"),
        (Packet(CONNECT, data={"blob": b"x"}), "only EVENT and ACK packets can carry binary data"),
        (Packet(CONNECT_ERROR, data={"blob": b"x"}), "only EVENT and ACK packets can carry binary data"),
    ],
)
def test_encoding_an_impossible_packet_raises_value_error(packet: Packet, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode(packet)


def test_encode_str_refuses_binary() -> None:
    with pytest.raises(ValueError, match="holds binary data"):
        encode_str(Packet(EVENT, data=["x", b"y"]))


def test_data_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        encode(Packet(EVENT, data=["x", {1, 2}]))
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        encode(Packet(EVENT, data=["x", 2**70, {1, 2}]))  # the standard library fallback says the same


# --- every way the decoder refuses a packet -----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("", "empty packet"),
        ("7", "unknown packet type '7'"),
        ("x", "unknown packet type 'x'"),
        ("٢[\"x\"]", "unknown packet type '٢'"),
        # the attachment count
        ('5["x"]', "a binary packet must start with its attachment count and '-'"),
        ('5-["x"]', "a binary packet must start with its attachment count and '-'"),
        ('51["x"]', "a binary packet must start with its attachment count and '-'"),
        ("5a-[\"x\"]", "a binary packet must start with its attachment count and '-'"),
        ('511-["x"]', "a packet may have at most 10 attachments"),
        ("5" + "9" * 30 + '-["x"]', "a binary packet must start with its attachment count and '-'"),
        # the namespace
        # a namespace runs to the first ',' or the end, as socket.io-parser reads it: here it swallows the
        # event, which leaves the EVENT without its payload
        ('2/admin["x"]', "an EVENT payload must be an array that starts with the event name"),
        ('2admin,["x"]', "the payload is not valid JSON"),
        # the ack id
        ('2' + "1" * 17 + '["x"]', "the ack id is too large"),
        ('29007199254740992["x"]', "the ack id is too large"),
        ('2-1["x"]', "the payload is not valid JSON"),
        ('2x1["x"]', "the payload is not valid JSON"),
        # the JSON
        ('2["x"', "the payload is not valid JSON"),
        ('2["x"]]', "the payload is not valid JSON"),
        ('2["x"]garbage', "the payload is not valid JSON"),
        ("2[NaN]", "the payload is not valid JSON"),
        ("2[Infinity]", "the payload is not valid JSON"),
        ("2" + "[" * 2000 + "]" * 2000, "the payload is not valid JSON"),
        # payloads that do not fit the type
        ("0[]", "a CONNECT payload must be an object"),
        ("0null", "a CONNECT payload must be an object"),
        ('0"x"', "a CONNECT payload must be an object"),
        ("1{}", "a DISCONNECT packet cannot have a payload"),
        ("1null", "a DISCONNECT packet cannot have a payload"),
        ("2", "an EVENT payload must be an array that starts with the event name"),
        ("2[]", "an EVENT payload must be an array that starts with the event name"),
        ("2[true]", "an EVENT payload must be an array that starts with the event name"),
        ("2[null]", "an EVENT payload must be an array that starts with the event name"),
        ('2{"x":1}', "an EVENT payload must be an array that starts with the event name"),
        ("50-[]", "an EVENT payload must be an array that starts with the event name"),
        ("3", "an ACK payload must be an array"),
        ("31{}", "an ACK payload must be an array"),
        ("60-1", "an ACK payload must be an array"),
        ("4", "a CONNECT_ERROR payload must be a string or an object"),
        ("4[]", "a CONNECT_ERROR payload must be a string or an object"),
    ],
)
def test_malformed_packets_are_refused(message: str, reason: str) -> None:
    assert refusal(message) == reason


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ((b"\x01",), "a binary attachment arrived but no binary packet is waiting for one"),
        (('2["x"]', b"\x01"), "a binary attachment arrived but no binary packet is waiting for one"),
        (('52-["x",{"_placeholder":true,"num":0}]', b"a", '2["y"]'),
         "a text packet arrived while 1 binary attachments were still expected"),
        (('51-["x",{"_placeholder":true,"num":1}]', b"a"), "a binary placeholder points at no attachment"),
        (('51-["x",{"_placeholder":true,"num":-1}]', b"a"), "a binary placeholder points at no attachment"),
        (('51-["x",{"_placeholder":true,"num":"0"}]', b"a"), "a binary placeholder points at no attachment"),
        (('51-["x",{"_placeholder":true,"num":0.0}]', b"a"), "a binary placeholder points at no attachment"),
        (('51-["x",{"_placeholder":true,"num":true}]', b"a"), "a binary placeholder points at no attachment"),
        (('51-["x",{"_placeholder":true}]', b"a"), "a binary placeholder points at no attachment"),
    ],
)
def test_attachments_out_of_turn_or_out_of_range_are_refused(messages: tuple[str | bytes, ...], reason: str) -> None:
    assert refusal(*messages) == reason


def test_a_placeholder_marker_that_is_not_true_is_an_ordinary_object() -> None:
    packet = receive_all(Decoder(), '51-["x",{"_placeholder":1,"num":0},{"_placeholder":true,"num":0}]', b"a")[1]
    assert packet == Packet(EVENT, data=["x", {"_placeholder": 1, "num": 0}, b"a"])


def test_the_attachment_limit_is_configurable() -> None:
    assert refusal('53-["x"]', decoder=Decoder(max_attachments=2)) == "a packet may have at most 2 attachments"
    assert Decoder(max_attachments=2).receive('52-["x"]') is None


def test_after_an_error_the_decoder_is_idle_again() -> None:
    decoder = Decoder()
    assert decoder.receive('52-["x"]') is None
    with pytest.raises(SocketIOError):
        decoder.receive('2["y"]')
    assert decoder.awaiting_attachments == 0
    assert decoder.receive('2["z"]') == Packet(EVENT, data=["z"])


# --- properties ---------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"))
_json_leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | _text
# A dict that has "_placeholder": true would be read back as an attachment; keep that key out.
_keys = _text.filter(lambda key: key != "_placeholder")


def _json(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves, lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4), max_leaves=12
    )


json_values = _json(_json_leaves)
json_with_bytes = _json(_json_leaves | st.binary(max_size=8))
namespaces = st.just("/") | st.from_regex(r"/[A-Za-z0-9_\-/.~é]{0,12}", fullmatch=True)
ack_ids = st.none() | st.integers(0, 2**53 - 1)
event_names = _text | st.integers(0, 10**6)


def _packets(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Packet]:
    return st.one_of(
        st.builds(Packet, st.just(CONNECT), namespaces.filter(lambda n: "?" not in n),
                  st.none() | st.dictionaries(_keys, json_values, max_size=4)),
        st.builds(Packet, st.just(DISCONNECT), namespaces),
        st.builds(Packet, st.just(EVENT), namespaces,
                  st.tuples(event_names, st.lists(values, max_size=4)).map(lambda t: [t[0], *t[1]]), ack_ids),
        st.builds(Packet, st.just(ACK), namespaces, st.lists(values, max_size=4), st.integers(0, 2**53 - 1)),
        st.builds(Packet, st.just(CONNECT_ERROR), namespaces,
                  _text | st.fixed_dictionaries({"message": _text}, optional={"data": json_values})),
    )


@given(_packets(json_with_bytes))
def test_packets_round_trip_through_encode_and_the_decoder(packet: Packet) -> None:
    decoder = Decoder(max_attachments=1000)
    *pending, last = receive_all(decoder, *encode(packet))
    assert pending == [None] * len(pending)
    assert last == packet
    assert decoder.awaiting_attachments == 0


@given(_packets(json_values))
def test_packets_without_binary_encode_to_one_string(packet: Packet) -> None:
    assert encode(packet) == [encode_str(packet)]


@given(namespaces, st.integers(0, 2**53 - 1), st.lists(json_with_bytes, max_size=4))
def test_an_ack_encodes_to_the_text_of_its_packet_or_to_none_with_binary(namespace: str, ack_id: int, args: list[Any]) -> None:
    parts = encode(Packet(ACK, namespace, args, ack_id))
    assert encode_ack(namespace, ack_id, args) == (parts[0] if len(parts) == 1 else None)


_event_texts = st.text() | st.builds(
    lambda digits, value: digits + orjson.dumps(value).decode(),
    st.from_regex("[0-9]{0,18}", fullmatch=True),
    st.lists(json_values, max_size=3) | json_values | st.tuples(event_names, json_values).map(list),
)


@given(_event_texts)
def test_the_plain_event_shortcut_reads_what_the_general_parser_reads(rest: str) -> None:
    message = "2" + rest
    try:
        shortcut = _parse_plain_event(message)
    except SocketIOError:
        with pytest.raises(SocketIOError):
            Decoder()._parse(message)
        return
    if shortcut is not None:
        assert Decoder()._parse(message) == (shortcut, 0)


@given(st.text())
def test_any_text_decodes_or_raises_socketio_error(message: str) -> None:
    try:
        Decoder().receive(message)
    except SocketIOError:
        pass


_pieces = st.sampled_from(
    ["0", "1", "2", "3", "4", "5", "6", "1-", "2-", "-", "/", "/nsp", ",", "?q=1", "12", "[", "]", "{", "}",
     '"x"', ":", "null", '{"_placeholder":true,"num":0}', '{"_placeholder":true,"num":1}', "1e400", "\\ud800"]
)
_messages = st.lists(_pieces, min_size=1).map("".join) | st.binary(max_size=4)


@given(st.lists(_messages, max_size=6))
def test_any_message_sequence_decodes_or_raises_socketio_error(messages: list[str | bytes]) -> None:
    decoder = Decoder(max_attachments=2)
    for message in messages:
        try:
            decoder.receive(message)
        except SocketIOError:
            pass
        assert 0 <= decoder.awaiting_attachments <= 2


def test_a_namespace_may_end_the_packet_without_a_comma() -> None:
    """socket.io-parser reads a namespace up to the first ',' or the end of the packet, so a client may
    connect to or leave ``/admin`` with ``0/admin`` and ``1/admin``, with or without the comma."""
    decoder = Decoder()
    assert decoder.receive("0/admin") == Packet(PacketType.CONNECT, "/admin")
    assert decoder.receive("0/admin,") == Packet(PacketType.CONNECT, "/admin")
    assert decoder.receive("1/custom") == Packet(PacketType.DISCONNECT, "/custom")
    assert decoder.receive("0/admin?token=1") == Packet(PacketType.CONNECT, "/admin", query="token=1")
