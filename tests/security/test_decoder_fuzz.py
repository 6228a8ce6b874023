"""Every decoder a peer's bytes reach: arbitrary input decodes, or raises that codec's own error, never
anything else (a TypeError, a ValueError, a RecursionError would be a crash of the code that called it).

Already fuzzed elsewhere, so not repeated here:

* ``tests/protocol/test_engineio.py``: ``decode_frame`` on any ``str`` without surrogates and any
  ``bytes`` (both revisions); ``decode_payload`` on any ``bytes`` with the content types ``None``, text
  and ``application/octet-stream``, plus near-valid text and XHR2 bodies built from the format's pieces.
* ``tests/protocol/test_socketio.py``: ``Decoder.receive`` on any ``str`` without surrogates, and
  sequences of near-valid headers and short binary messages.
* ``tests/orm/test_criteria.py``: ``parse_find`` with JSON parameters over one user/pet field set
  (against a real database).

What this module adds: text with lone surrogates, ``bytearray``/``memoryview`` input, arbitrary
``Content-Type`` strings, the websocket upgrade head and handshake query the listener parses before
Engine.IO sees anything, binary packets whose placeholders point anywhere, JSON nested thousands of
levels deep, the sails.io.js envelope (``protocol.virtual.parse``) and SDK version check,
``Sessions.sid_in`` on any ``Cookie`` header, and ``parse_find`` over fields of every supported type.

The bugs these found (a malformed url host, a header value nested a thousand levels, an SDK version of
thousands of digits, a non-ASCII cookie signature) are fixed; the properties keep them fixed.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trisails._config import SessionSettings, SocketSettings
from trisails._errors import EngineIOError, SocketIOError
from trisails.orm.criteria import Criteria, Field, UsageError, parse_find
from trisails.protocol import engineio as eio
from trisails.protocol import socketio as sio
from trisails.protocol import virtual
from trisails._errors import WebSocketError
from trisails.protocol.websocket import parse_upgrade_request
from trisails.realtime._serving import is_socket_path
from trisails.realtime.endpoint import EngineIOEndpoint
from trisails.realtime.server import RealtimeServer
from trisails.web.sessions import Sessions

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# for the recursive JSON-like strategies, whose examples cost the most to generate
HEAVY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- strategies -------------------------------------------------------------------------------------

# Any Python text, lone surrogates included (JSON can carry "\ud800", and st.text() never makes one).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
revisions = st.sampled_from([3, 4])
BINARY_CT = "application/octet-stream"


def bytes_like(data: bytes) -> st.SearchStrategy[bytes | bytearray | memoryview]:
    return st.sampled_from([bytes(data), bytearray(data), memoryview(data)])


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()  # NaN and infinities too: the standard library's JSON reads them
    | ANY_TEXT
)
JSON_KEYS = ANY_TEXT | st.sampled_from(["url", "data", "params", "headers", "method", "_placeholder", "num", "or", "and"])


def json_like(leaves: st.SearchStrategy[Any] = JSON_LEAVES, max_leaves: int = 15) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_KEYS, inner, max_size=4),
        max_leaves=max_leaves,
    )


JSON_LIKE = json_like()


def nested(depth: int, kind: str, core: str = "1") -> str:
    """JSON text ``depth`` levels deep: ``[[[1]]]`` or ``{"a":{"a":1}}``."""
    if kind == "list":
        return "[" * depth + core + "]" * depth
    return '{"a":' * depth + core + "}" * depth


# --- Engine.IO ----------------------------------------------------------------------------------------


@given(ANY_TEXT, revisions)
@FAST
def test_a_text_frame_with_lone_surrogates_decodes_or_raises_engineio_error(frame: str, revision: int) -> None:
    try:
        packet = eio.decode_frame(frame, revision)
    except EngineIOError:
        return
    assert isinstance(packet, eio.Packet)


@given(st.binary(max_size=64).flatmap(bytes_like), revisions)
@FAST
def test_a_binary_frame_of_any_bytes_like_type_decodes_or_raises_engineio_error(
    frame: bytes | bytearray | memoryview, revision: int
) -> None:
    try:
        packet = eio.decode_frame(frame, revision)  # type: ignore[arg-type]
    except EngineIOError:
        return
    assert packet.type is eio.PacketType.MESSAGE and isinstance(packet.data, bytes)


_PAYLOAD_PIECES = st.sampled_from(
    [b"0", b"1", b"2", b"4", b"9", b":", b"b", b"b4", b"AQID", b"=", b"\x1e", b"\x00", b"\x01", b"\x04",
     b"\xff", b"\xc3", "😀".encode(), b"42[\"x\"]", b"99999999999", b"\xed\xa0\x80"]
)
BODIES = st.lists(_PAYLOAD_PIECES, max_size=12).map(b"".join) | st.binary(max_size=64)
# What a client may put in Content-Type, the binary type among variants that must (or must not) select it
CONTENT_TYPES = st.none() | ANY_TEXT | st.sampled_from(
    [BINARY_CT, " Application/Octet-Stream ; charset=binary", "application/octet-streamx", "text/plain",
     "application/octet", "\x00", "", BINARY_CT.upper() + "\udc80"]
)


@given(BODIES.flatmap(bytes_like), revisions, CONTENT_TYPES)
@FAST
def test_a_polling_body_with_any_content_type_decodes_or_raises_engineio_error(
    body: bytes | bytearray | memoryview, revision: int, content_type: str | None
) -> None:
    try:
        packets = eio.decode_payload(body, revision, content_type=content_type)  # type: ignore[arg-type]
    except EngineIOError:
        return
    assert all(isinstance(p, eio.Packet) for p in packets)


# The listener reads the first request head itself, to find websocket upgrades to /socket.io/.
_HEAD_PIECES = st.sampled_from(
    [b"GET ", b"POST ", b"G\x00T ", b"/socket.io/", b"/socket.io", b"/", b"?", b"&", b"=", b"EIO=4", b"EIO=3",
     b"transport=websocket", b"sid=", b"%", b"%zz", b"%ff", b"\xff", b" HTTP/1.1", b" HTTP/1.0", b" HTTP/9",
     b"\r\n", b"\n", b"\r\n\r\n", b"Host: x", b"Upgrade: websocket", b"Upgrade: WebSocket", b"Connection: Upgrade",
     b"Content-Length: 5", b"Content-Length: -1", b"Transfer-Encoding: chunked", b": ", b" ", b"\t", b"\x00", b"#"]
)
HEADS = st.lists(_HEAD_PIECES, max_size=20).map(b"".join) | st.binary(max_size=128)


@given(HEADS, st.sampled_from(["/socket.io", "/socket.io/", "/", "/x/y"]))
@FAST
def test_any_request_head_is_a_websocket_target_or_not_one(head: bytes, path: str) -> None:
    try:
        request = parse_upgrade_request(head)
    except WebSocketError:
        return  # not HTTP: handed to hypercorn, which answers it as bad HTTP
    if request is not None and request.wants_websocket:
        assert isinstance(is_socket_path(request.path, path), bool)
        assert request.is_websocket or request.upgrade_error is not None


_QUERY_PIECES = st.sampled_from(
    ["EIO=", "3", "4", "04", "transport=", "websocket", "polling", "ftp", "sid=", "b64=1", "&", "=", ";", "%",
     "%00", "%ff", "%zz", "+", "EIO=4&EIO=3", "\udc80", "é", "__sails_io_sdk_version=0.13.8", "nosession=true"]
)
QUERIES = st.lists(_QUERY_PIECES, max_size=12).map("".join) | ANY_TEXT


@given(QUERIES, st.booleans())
@FAST
def test_any_handshake_query_is_checked_without_raising(raw_query: str, websocket: bool) -> None:
    settings_ = SocketSettings()
    endpoint = EngineIOEndpoint(RealtimeServer(settings_), settings_)
    query = dict(parse_qsl(raw_query, keep_blank_values=True))  # what the endpoint and the listener do
    assert eio.parse_revision(query.get("EIO")) in (3, 4)
    error = endpoint._check(query, websocket=websocket)
    assert error is None or isinstance(error, eio.HandshakeError)


# --- Socket.IO ----------------------------------------------------------------------------------------


@given(ANY_TEXT | st.lists(st.sampled_from(["4", "2", "5", "1-", "0", "/a,", "[", '"x"', "]", '"\\ud800"', "\udc80"]),
                           max_size=8).map("".join))
@FAST
def test_any_text_with_lone_surrogates_decodes_or_raises_socketio_error(message: str) -> None:
    try:
        sio.Decoder().receive(message)
    except SocketIOError:
        pass


def _placeholders() -> st.SearchStrategy[dict[str, Any]]:
    """Objects that look like attachment placeholders, pointing anywhere (or at nothing)."""
    return st.fixed_dictionaries(
        {"_placeholder": st.sampled_from([True, True, True, False, 1, "true", None])},
        optional={"num": st.integers(-3, 12) | st.sampled_from([True, False, 0.0, 1.5, "0", None, 2**64, [0], {}])},
    )


PAYLOADS_WITH_PLACEHOLDERS = json_like(JSON_LEAVES | _placeholders(), max_leaves=12)


@given(
    st.sampled_from(["5", "6"]),
    st.integers(0, 13),
    st.sampled_from(["", "/", "/chat,", "/a?b=1,"]),
    st.none() | st.integers(0, 2**60),
    PAYLOADS_WITH_PLACEHOLDERS,
    st.lists(st.binary(max_size=8) | st.sampled_from(["42[\"x\"]", "4"]), max_size=14),
    st.integers(0, 12),
)
@HEAVY
def test_binary_packets_whose_placeholders_point_anywhere_decode_or_raise_socketio_error(
    kind: str, announced: int, namespace: str, ack_id: int | None, payload: Any, follow: list[str | bytes], limit: int
) -> None:
    try:
        text = sio.encode_str(sio.Packet(sio.PacketType.ACK, data=[payload]))[1:]  # the JSON, as socket.io writes it
    except (TypeError, ValueError):
        return  # a value our encoder refuses (NaN, lone surrogates in keys...): not what this test is about
    if kind == "5":
        text = '["event",' + text[1:]
    decoder = sio.Decoder(max_attachments=limit)
    messages: list[str | bytes] = [f"{kind}{announced}-{namespace}{'' if ack_id is None else ack_id}{text}", *follow]
    for message in messages:
        try:
            packet = decoder.receive(message)
        except SocketIOError:
            assert decoder.awaiting_attachments == 0  # an error leaves the decoder idle
            continue
        assert 0 <= decoder.awaiting_attachments <= limit
        if packet is not None:
            assert packet.type in (sio.PacketType.EVENT, sio.PacketType.ACK, sio.PacketType.CONNECT,
                                   sio.PacketType.DISCONNECT, sio.PacketType.CONNECT_ERROR)


@given(st.integers(1, 5000), st.sampled_from(["list", "dict"]), st.sampled_from(["2", "3", "51-", "0", "4"]))
@QUICK
def test_json_nested_any_depth_decodes_or_raises_socketio_error(depth: int, kind: str, prefix: str) -> None:
    core = '{"_placeholder":true,"num":0}' if prefix == "51-" else "1"
    body = nested(depth, kind, core)
    decoder = sio.Decoder()
    try:
        decoder.receive(prefix + (f'["e",{body}]' if prefix in ("2", "51-") else body))
        if prefix == "51-":
            decoder.receive(b"\x01")
    except SocketIOError:
        pass


# --- the sails.io.js envelope -------------------------------------------------------------------------

_URL_PIECES = st.sampled_from(
    ["/", "//", "/say/hello", "?", "&", "=", "#", "%", "%zz", "%ff", "http:", "https://", "[", "]", "::1", "@", ":",
     "x", "é", "\udc80", "\x00", " ", "..", "a[b]=1", "javascript:", "\uff03", "v1.x"]
)
# scheme, host, path: the shapes where urlsplit() parses a host
STRUCTURED_URLS = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", "/", "//", "http://", "https://", "ws:", "x:"]),
    st.sampled_from(["", "example.com", "[::1]", "[", "]", "[x]", "a[b]", "\uff03", "é", "h:99999", "@", "[v1.x]"]),
    st.lists(_URL_PIECES, max_size=4).map("".join),
)
URLS = st.lists(_URL_PIECES, max_size=10).map("".join) | STRUCTURED_URLS | JSON_LIKE
ENVELOPES = (
    st.fixed_dictionaries(
        {},
        optional={
            "url": URLS,
            "method": JSON_LIKE,
            "data": JSON_LIKE,
            "params": JSON_LIKE,
            "headers": st.dictionaries(JSON_KEYS, JSON_LIKE, max_size=4) | JSON_LIKE,
        },
    )
    | JSON_LIKE
)
VERBS = st.sampled_from(virtual.VERBS) | ANY_TEXT


@given(VERBS, ENVELOPES, st.none() | st.dictionaries(st.sampled_from(["cookie", "origin"]), ANY_TEXT))
@HEAVY
def test_any_envelope_is_a_request_or_a_virtual_request_error(verb: str, envelope: Any, forced: dict[str, str] | None) -> None:
    try:
        request = virtual.parse(verb, envelope, forced_headers=forced)
    except virtual.VirtualRequestError as error:
        assert isinstance(error.details, str)
        return
    assert request.method == verb.upper() and isinstance(request.path, str) and request.path
    assert isinstance(request.query, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in request.headers.items())


@given(STRUCTURED_URLS | st.lists(_URL_PIECES, max_size=10).map("".join))
@FAST
def test_any_url_string_is_a_request_or_a_virtual_request_error(url: str) -> None:
    try:
        request = virtual.parse("get", {"url": url})
    except virtual.VirtualRequestError:
        return
    assert request.url == url and request.path


@given(st.integers(1, 1500))
@QUICK
def test_header_values_nested_any_depth_are_a_request_or_a_virtual_request_error(depth: int) -> None:
    import orjson

    envelope = orjson.loads('{"url":"/x","headers":{"a":' + nested(min(depth, 1000), "list") + "}}")
    try:
        virtual.parse("get", envelope)
    except virtual.VirtualRequestError:
        pass


SDK_VERSIONS = st.none() | ANY_TEXT | st.builds(
    lambda a, b, c, rest: f"{a}.{b}.{c}{rest}",
    st.integers(0, 10**30) | st.sampled_from(["0" * 5000, "1" * 4400, "٣"]),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["", "-beta", "+x", " ", "\udc80", ".1"]),
)


@given(SDK_VERSIONS)
@FAST
def test_any_sdk_version_is_accepted_or_refused(version: str | None) -> None:
    assert virtual.sdk_version_ok(version) in (True, False)


# --- cookies ------------------------------------------------------------------------------------------

SESSIONS = Sessions(SessionSettings())
_COOKIE_PIECES = st.sampled_from(
    ["sails.sid=", "s:", "s%3A", "s%3a", ".", "abc", "; ", ";", "=", '"', "\\", "%", "%2E", "%C3%A9", "%ff",
     "é", "\xff", "\udc80", " ", "other=1", "sails.sid", "$Path=/", "\x00", "\x7f", "=="]
)
_SIGNATURE_PARTS = st.sampled_from(["", "x", "é", "%C3%A9", "%E2%82%AC", "\xff", "\udc80", "%ed%a0%80", "=", "."])
# sails.sid=<quote?><s: or s%3A><id>.<signature><quote?>, the signature real, cut, or with odd characters
SIGNED_COOKIES = st.builds(
    lambda before, quote, prefix, sid, signature, extra, after: (
        f"{before}sails.sid={quote}{prefix}{sid}.{signature}{extra}{quote}{after}"
    ),
    st.sampled_from(["", "a=1; ", "sails.sid=x; "]),
    st.sampled_from(["", '"']),
    st.sampled_from(["s:", "s%3A", "s%3a", "", "S:"]),
    st.sampled_from(["abc", "", "a.b", "é", "%C3%A9", "\udc80"]),
    st.sampled_from(["", SESSIONS.sign("abc").rpartition(".")[2], SESSIONS.sign("a.b").rpartition(".")[2]]),
    _SIGNATURE_PARTS,
    st.sampled_from(["", "; b=2", ";", "; sails.sid=y"]),
)
COOKIE_HEADERS = st.none() | ANY_TEXT | st.lists(_COOKIE_PIECES, max_size=12).map("".join) | SIGNED_COOKIES


@given(COOKIE_HEADERS)
@FAST
def test_any_cookie_header_holds_a_session_id_or_none(header: str | None) -> None:
    sid = SESSIONS.sid_in(header)
    assert sid is None or isinstance(sid, str)


def test_a_forged_cookie_for_a_real_session_id_is_not_a_session() -> None:
    cookie = SESSIONS.sign("abc")
    assert SESSIONS.sid_in(f"sails.sid={cookie}") == "abc"
    assert SESSIONS.sid_in(f"sails.sid={cookie[:-1]}") is None
    assert SESSIONS.sid_in(f"other=1; sails.sid={cookie[:-1]}x") is None


# --- blueprint criteria -------------------------------------------------------------------------------

FIELDS = {
    **{kind.__name__.lower(): Field(kind.__name__.lower(), kind.__name__.lower() + "_", "scalar", kind)
       for kind in (str, int, float, bool, Decimal, datetime, date, uuid.UUID, dict)},
    "owner": Field("owner", "owner", "to_one", int),
    "code": Field("code", "code", "to_one", str, related_pk="code"),
    "pets": Field("pets", "pets", "to_many", int),
}
_CRITERIA_KEYS = st.sampled_from(
    [*FIELDS, "where", "limit", "skip", "sort", "select", "omit", "populate", "or", "and", "in", "nin", "like",
     "contains", "<", ">=", "!=", "not", "lessThan", "startsWith", "ASC", "DESC"]
)
_CRITERIA_TEXT = st.sampled_from(
    ["", "30", "-1", "1e400", "1" * 5000, "9" * 20, " 7 ", "٣", "true", "null", "NaN", "Infinity", "[", "{", '"x"',
     "str DESC", "int ASC, str", "owner", "pets", "[str,int]", '["str"]', "false", "a%b%c", "%", "_", "\\",
     "2024-01-01", "2024-01-01T00:00:00", "00000000-0000-0000-0000-000000000000", "\udc80"]
)
CRITERIA_LEAVES = JSON_LEAVES | _CRITERIA_TEXT
CRITERIA_JSON = st.recursive(
    CRITERIA_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_CRITERIA_KEYS | ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _as_json_text(value: Any) -> Any:
    """``value`` as the JSON text a query string would carry it in (the value itself if JSON cannot)."""
    try:
        return json.dumps(value)
    except (ValueError, TypeError):
        return value


@given(
    st.dictionaries(_CRITERIA_KEYS, CRITERIA_JSON | CRITERIA_JSON.map(_as_json_text), max_size=5),
    st.none() | st.integers(0, 100),
)
@HEAVY
def test_any_parameters_over_any_field_types_are_criteria_or_a_usage_error(
    params: dict[str, Any], default_limit: int | None
) -> None:
    try:
        criteria = parse_find(params, FIELDS, default_limit=default_limit)
    except UsageError as error:
        assert isinstance(error.details, str) and isinstance(error.parameter, str)
        return
    assert isinstance(criteria, Criteria)


@given(st.integers(1, 3000), st.sampled_from(["list", "dict", "or"]), st.sampled_from(["where", "sort", "select", "str"]))
@QUICK
def test_criteria_nested_any_depth_are_refused_with_a_usage_error(depth: int, kind: str, parameter: str) -> None:
    text = '{"or":[' * depth + "{}" + "]}" * depth if kind == "or" else nested(depth, kind)
    for value in (text, _loads_or_none(text)):
        if value is None:
            continue
        try:
            parse_find({parameter: value}, FIELDS)
        except UsageError:
            pass


def _loads_or_none(text: str) -> Any:
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


@pytest.mark.parametrize("text", ["1" * 5000, "[" + "1" * 5000 + "]", '{"int":' + "1" * 5000 + "}"])
def test_numbers_of_thousands_of_digits_are_a_usage_error(text: str) -> None:
    for parameter in ("where", "limit", "int", "sort"):
        with pytest.raises(UsageError):
            parse_find({parameter: text}, FIELDS)

