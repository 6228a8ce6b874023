"""The Socket.IO namespace state machine, as transcripts: messages in, connect requests and packets out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trisails._errors import SocketIOError
from trisails.protocol.socketio import Packet, PacketType
from trisails.protocol.socketio_connection import ConnectRequest, NamespaceState, SocketIOConnection


def connection(revision: int = 4, *, now: float = 0.0, connect_timeout: float = 45.0) -> SocketIOConnection:
    return SocketIOConnection(revision, now=now, connect_timeout=connect_timeout)


def test_a_revision_3_client_is_connecting_to_slash_as_soon_as_its_session_opens() -> None:
    sio = connection(3)
    assert sio.opened() == ConnectRequest("/", {})
    assert sio.state("/") is NamespaceState.CONNECTING
    assert sio.accept("/", "the-sid") == Packet(PacketType.CONNECT, "/")  # no payload for protocol 4
    assert sio.ready("/") == []
    assert sio.state("/") is NamespaceState.CONNECTED


def test_a_revision_4_client_asks_and_gets_its_sid_in_the_answer() -> None:
    sio = connection(4)
    assert sio.opened() is None
    assert sio.receive('0{"token":"abc"}') == ConnectRequest("/", {"token": "abc"})
    assert sio.accept("/", "abc123") == Packet(PacketType.CONNECT, "/", {"sid": "abc123"})


def test_a_revision_3_client_passes_its_auth_as_the_namespace_query() -> None:
    sio = connection(3)
    sio.opened()
    assert sio.receive("0/admin?token=1&x=") == ConnectRequest("/admin", {"token": "1", "x": ""})


def test_events_that_arrive_while_the_namespace_connects_wait_for_it_in_order() -> None:
    sio = connection(4)
    sio.receive("0")
    assert sio.receive('2["first"]') is None
    assert sio.receive('2["second"]') is None
    sio.accept("/", "s")
    assert sio.receive('2["third"]') is None  # the connection handlers have not run yet
    assert sio.ready("/") == [
        Packet(PacketType.EVENT, "/", ["first"]),
        Packet(PacketType.EVENT, "/", ["second"]),
        Packet(PacketType.EVENT, "/", ["third"]),
    ]
    assert sio.receive('2["fourth"]') == Packet(PacketType.EVENT, "/", ["fourth"])


def test_an_ack_does_not_wait_for_the_namespace_a_connection_handler_may_await_it() -> None:
    sio = connection(4)
    sio.receive("0")
    sio.accept("/", "s")
    assert sio.receive('30["ok"]') == Packet(PacketType.ACK, "/", ["ok"], id=0)


def test_refusals_have_each_revisions_shape() -> None:
    v3, v4 = connection(3), connection(4)
    v3.opened()
    v4.receive("0")
    assert v3.refuse("/", "Not authorized") == Packet(PacketType.CONNECT_ERROR, "/", "Not authorized")
    assert v3.refuse("/", "Not authorized", {"why": 1}) == Packet(PacketType.CONNECT_ERROR, "/", {"why": 1})
    assert v4.refuse("/", "Not authorized") == Packet(PacketType.CONNECT_ERROR, "/", {"message": "Not authorized"})
    v4.receive("0")
    assert v4.refuse("/", "No", {"why": 1}) == Packet(PacketType.CONNECT_ERROR, "/", {"message": "No", "data": {"why": 1}})
    assert v4.state("/") is None


def test_an_unknown_namespace_is_invalid_for_both_revisions_and_the_session_goes_on() -> None:
    for revision in (3, 4):
        sio = connection(revision)
        sio.opened()
        assert sio.receive("0/random") == ConnectRequest("/random", {})
        assert sio.no_such_namespace("/random") == Packet(PacketType.CONNECT_ERROR, "/random", {"message": "Invalid namespace"})
        assert sio.state("/random") is None


def test_a_client_disconnect_frees_the_namespace_and_a_repeated_connect_is_ignored() -> None:
    sio = connection(4)
    assert isinstance(sio.receive("0/custom"), ConnectRequest)
    assert sio.receive("0/custom") is None  # repeated while connecting
    sio.accept("/custom", "s")
    sio.ready("/custom")
    assert sio.receive("1/custom") == Packet(PacketType.DISCONNECT, "/custom")
    assert sio.state("/custom") is None
    assert sio.receive("1/custom") is None  # a DISCONNECT for a namespace not connected is ignored
    assert isinstance(sio.receive("0/custom"), ConnectRequest)  # and it may connect again


def test_the_server_disconnects_a_namespace() -> None:
    sio = connection(4)
    sio.receive("0")
    sio.accept("/", "s")
    sio.ready("/")
    assert sio.disconnect("/") == Packet(PacketType.DISCONNECT, "/")
    assert sio.disconnect("/") is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('2["x"]', "packet for namespace '/', which this client has not connected"),
        ('4{"message":"no"}', "a client may not send CONNECT_ERROR"),
        ("0[1]", "a CONNECT payload must be an object"),
    ],
)
def test_what_a_client_may_not_send(message: str, reason: str) -> None:
    with pytest.raises(SocketIOError, match=reason.replace("[", r"\[")):
        connection(4).receive(message)


def test_a_session_that_connects_no_namespace_in_time_is_to_be_closed() -> None:
    sio = connection(4, now=100.0, connect_timeout=45.0)
    assert sio.next_deadline() == 145.0
    assert sio.handle_timer(144.9) is False
    assert sio.handle_timer(145.0) is True
    assert sio.next_deadline() is None


def test_a_namespace_connecting_or_connected_in_time_keeps_the_session() -> None:
    connecting = connection(4, connect_timeout=1.0)
    connecting.receive("0")
    assert connecting.handle_timer(1.0) is False  # its middleware is still deciding
    connected = connection(4, connect_timeout=1.0)
    connected.receive("0")
    connected.accept("/", "s")
    assert connected.next_deadline() is None


def test_binary_attachments_complete_the_packet_they_follow() -> None:
    sio = connection(4)
    sio.receive("0")
    sio.accept("/", "s")
    sio.ready("/")
    assert sio.receive('51-["upload",{"_placeholder":true,"num":0}]') is None
    assert sio.receive(b"\x01\x02") == Packet(PacketType.EVENT, "/", ["upload", b"\x01\x02"])


MESSAGES = st.one_of(
    st.sampled_from(['0{"pid":"p","offset":"o"}', '0{"pid":1}', "0", "0/admin", "1", "1/admin", '2["e",1]', '2/admin,["e"]', "30[]", '4{"m":1}', "0[1]", "9", ""]),
    st.text(max_size=20),
    st.binary(max_size=8),
)


@given(
    st.sampled_from([3, 4]),
    st.lists(st.tuples(MESSAGES, st.sampled_from(["accept", "refuse", "ready", "none"])), max_size=30),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_any_stream_of_messages_raises_only_the_protocol_error(
    revision: int, steps: list[tuple[str | bytes, str]], recovery: bool
) -> None:
    sio = SocketIOConnection(revision, now=0.0, connect_timeout=45.0, recovery=recovery)
    request = sio.opened()
    for message, decision in steps:
        try:
            result = sio.receive(message)
        except SocketIOError:
            return  # the shell closes this one connection
        if isinstance(result, ConnectRequest):
            request = result
        if request is not None:
            if decision == "accept":
                assert sio.accept(request.namespace, "s").type is PacketType.CONNECT
            elif decision == "refuse":
                assert sio.refuse(request.namespace, "no").type is PacketType.CONNECT_ERROR
                request = None
            elif decision == "ready":
                assert all(isinstance(packet, Packet) for packet in sio.ready(request.namespace))


# ------------------------------------------------------------------------ connection state recovery


def recovering(revision: int = 4) -> SocketIOConnection:
    return SocketIOConnection(revision, now=0.0, connect_timeout=45.0, recovery=True)


def test_with_recovery_the_connect_answer_carries_the_private_session_id() -> None:
    sio = recovering()
    assert sio.receive("0") == ConnectRequest("/", {})
    assert sio.accept("/", "abc123", "secret-pid") == Packet(PacketType.CONNECT, "/", {"sid": "abc123", "pid": "secret-pid"})
    assert sio.state("/") is NamespaceState.CONNECTING


def test_a_returning_client_asks_to_recover_with_its_pid_and_offset_which_are_not_auth() -> None:
    sio = recovering()
    request = sio.receive('0/chat,{"token":"t","pid":"p1","offset":"o7"}')
    assert request == ConnectRequest("/chat", {"token": "t"}, ("p1", "o7"))


def test_a_pid_without_a_string_offset_is_no_recovery_and_still_not_auth() -> None:
    sio = recovering()
    # socket.io-client sends {"pid"} alone when no broadcast reached it before it lost the connection
    assert sio.receive('0{"pid":"p1"}') == ConnectRequest("/", {})
    assert sio.receive('0/a,{"pid":1,"offset":["x"]}') == ConnectRequest("/a", {})


def test_without_recovery_pid_and_offset_are_ordinary_auth() -> None:
    sio = connection(4)
    assert sio.receive('0{"pid":"p1","offset":"o7"}') == ConnectRequest("/", {"pid": "p1", "offset": "o7"})
    assert sio.accept("/", "abc", None) == Packet(PacketType.CONNECT, "/", {"sid": "abc"})


def test_revision_3_clients_have_no_recovery() -> None:
    sio = recovering(3)
    assert sio.receive("0/admin?pid=p&offset=o") == ConnectRequest("/admin", {"pid": "p", "offset": "o"})
    assert sio.accept("/admin", "sid", "pid") == Packet(PacketType.CONNECT, "/admin")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3), max_leaves=5
)


@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4), JSON_VALUES, JSON_VALUES)
@settings(max_examples=200, deadline=None)
def test_recovery_data_is_taken_out_of_any_auth_and_only_strings_recover(auth: dict[str, object], pid: object, offset: object) -> None:
    import orjson

    sio = recovering()
    request = sio.receive("0" + orjson.dumps({**auth, "pid": pid, "offset": offset}).decode())
    assert isinstance(request, ConnectRequest)
    assert request.auth == {k: v for k, v in auth.items() if k not in ("pid", "offset")}
    expected = (pid, offset) if isinstance(pid, str) and isinstance(offset, str) else None
    assert request.recovery == expected


def test_the_offsets_a_trisails_server_makes_have_the_shape_its_clients_recognise() -> None:
    from trisails.protocol.socketio_connection import OFFSET
    from trisails.realtime.recovery import MemoryRecovery

    store = MemoryRecovery(60.0, 10, clock=lambda: 0.0)
    assert OFFSET.fullmatch(store.new_offset())
    assert OFFSET.fullmatch("1733601234567-42-" + "a" * 20)
    for not_one in ("a-string-1", "hello", "", "1733601234567-0"):
        assert not OFFSET.fullmatch(not_one)
