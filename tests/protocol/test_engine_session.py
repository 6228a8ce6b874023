"""EngineSession tests: short client stories as packet and byte transcripts (what the client sends, what
it gets back, when), then property tests that drive the state machine with arbitrary operations.

Times are plain numbers of seconds. Unless a story says otherwise a session opens at ``0`` with
engine.io's defaults scaled down: ping every 25 s, 20 s to answer, 10 s to finish an upgrade.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trisails.protocol.engine_session import CLOSE_TIMEOUT, EngineSession, SessionState, Transport, UpgradeState
from trisails.protocol.engineio import (
    BINARY_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Envelope,
    HandshakeError,
    Packet,
    PacketType,
    encode_payload,
)

OPEN = PacketType.OPEN
CLOSE = PacketType.CLOSE
PING = PacketType.PING
PONG = PacketType.PONG
MESSAGE = PacketType.MESSAGE
UPGRADE = PacketType.UPGRADE
NOOP = PacketType.NOOP

POLLING = Transport.POLLING
WEBSOCKET = Transport.WEBSOCKET

INTERVAL = 25.0
TIMEOUT = 20.0
UPGRADE_TIMEOUT = 10.0


def make_session(
    revision: int = 4,
    transport: Transport = POLLING,
    *,
    now: float = 0.0,
    max_queue: int = 8,
    slow_consumer: str = "disconnect",
    ping_interval: float = INTERVAL,
    ping_timeout: float = TIMEOUT,
    upgrade_timeout: float = UPGRADE_TIMEOUT,
) -> EngineSession:
    return EngineSession(
        "sid",
        revision=revision,
        transport=transport,
        now=now,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        upgrade_timeout=upgrade_timeout,
        max_queue=max_queue,
        slow_consumer=slow_consumer,  # type: ignore[arg-type]
    )


def message(data: str | bytes) -> Envelope:
    return Envelope.of(Packet(MESSAGE, data))


def packets_of(envelopes: Iterable[Envelope]) -> list[Packet]:
    return [packet for envelope in envelopes for packet in envelope.packets]


def frames_of(envelopes: Iterable[Envelope], revision: int) -> list[str | bytes]:
    return [frame for envelope in envelopes for frame in envelope.frames(revision)]


def post(session: EngineSession, body: bytes, now: float, content_type: str | None = TEXT_CONTENT_TYPE) -> list[str | bytes]:
    """The client POSTs ``body``; returns the messages the layer above gets."""
    return session.receive_payload(body, content_type, now)


def poll(session: EngineSession) -> bytes:
    """A GET that finds packets waiting: its response body, on the session's revision."""
    assert session.open_poll() is None
    assert session.poll_ready
    body, _ = encode_payload(session.answer_poll(), session.revision, b64=session.b64)
    return body


def poll_answer_bytes(session: EngineSession) -> bytes:
    """The response body of the pending GET."""
    body, _ = encode_payload(session.answer_poll(), session.revision)
    return body


def snapshot(session: EngineSession) -> tuple[object, ...]:
    return (
        session.state,
        session.upgrade,
        session.transport,
        session.queued,
        session.next_deadline(),
        session.close_reason,
        session.close_code,
        session.poll_ready,
        session.dropped,
    )


# --- revision 3 heartbeat: the client pings -------------------------------------------------------------


def test_v3_client_ping_frame_is_answered_with_a_pong_frame() -> None:
    session = make_session(3, WEBSOCKET)
    assert session.receive_frame("2", now=5) is None
    assert frames_of(session.take(), 3) == ["3"]


def test_v3_client_ping_with_data_gets_a_bare_pong_as_engine_io_sends() -> None:
    session = make_session(3, WEBSOCKET)
    session.receive_frame("2probe", now=5)
    assert frames_of(session.take(), 3) == ["3"]


def test_v3_client_ping_posted_is_answered_on_the_next_poll() -> None:
    session = make_session(3)
    assert post(session, b"1:2", now=3) == []
    assert poll(session) == b"1:3"


def test_v3_server_never_pings() -> None:
    session = make_session(3, WEBSOCKET)
    session.handle_timer(INTERVAL)
    session.handle_timer(INTERVAL + TIMEOUT - 1)
    assert session.take() == []
    assert session.state is SessionState.OPEN


def test_v3_silent_client_is_closed_for_ping_timeout_after_interval_plus_timeout() -> None:
    session = make_session(3, WEBSOCKET)
    assert session.next_deadline() == INTERVAL + TIMEOUT
    session.handle_timer(INTERVAL + TIMEOUT - 0.001)
    assert session.state is SessionState.OPEN
    session.handle_timer(INTERVAL + TIMEOUT)
    assert (session.state, session.close_reason, session.close_code) == (SessionState.CLOSED, "ping timeout", 1000)
    assert session.next_deadline() is None


def test_v3_each_client_ping_pushes_the_silence_deadline() -> None:
    session = make_session(3, WEBSOCKET)
    session.receive_frame("2", now=30)
    assert session.next_deadline() == 30 + INTERVAL + TIMEOUT
    session.handle_timer(INTERVAL + TIMEOUT)
    assert session.state is SessionState.OPEN
    session.receive_frame("2", now=70)
    session.handle_timer(30 + INTERVAL + TIMEOUT)
    assert session.state is SessionState.OPEN
    assert session.next_deadline() == 70 + INTERVAL + TIMEOUT


@pytest.mark.parametrize("transport", [WEBSOCKET, POLLING])
def test_v3_client_sending_pong_is_a_protocol_error(transport: Transport) -> None:
    session = make_session(3, transport)
    if transport is WEBSOCKET:
        session.receive_frame("3", now=1)
    else:
        post(session, b"1:3", now=1)
    assert session.state is SessionState.CLOSED
    assert session.close_code == 1002
    assert session.close_reason is not None and session.close_reason.startswith("parse error")


# --- revision 4 heartbeat: the server pings -------------------------------------------------------------


def test_v4_server_pings_ping_interval_after_open() -> None:
    session = make_session(4, WEBSOCKET, now=100)
    assert session.next_deadline() == 100 + INTERVAL
    session.handle_timer(100 + INTERVAL - 0.001)
    assert session.take() == []
    session.handle_timer(100 + INTERVAL)
    assert frames_of(session.take(), 4) == ["2"]
    assert session.next_deadline() == 100 + INTERVAL + TIMEOUT


def test_v4_ping_goes_out_as_a_websocket_frame_on_the_wire() -> None:
    session = make_session(4, WEBSOCKET)
    session.handle_timer(INTERVAL)
    assert [envelope.wire(4) for envelope in session.take()] == [b"\x81\x012"]


def test_v4_ping_waits_for_the_next_poll() -> None:
    session = make_session(4)
    assert session.open_poll() is None
    assert not session.poll_ready
    session.handle_timer(INTERVAL)
    assert session.poll_ready
    assert session.answer_poll() == [Packet(PING)]


def test_v4_pong_schedules_the_next_ping_one_interval_later() -> None:
    session = make_session(4, WEBSOCKET)
    session.handle_timer(INTERVAL)
    session.take()
    session.receive_frame("3", now=INTERVAL + 2)
    assert session.next_deadline() == 2 * INTERVAL + 2
    session.handle_timer(INTERVAL + TIMEOUT)  # the old pong deadline no longer applies
    assert session.state is SessionState.OPEN
    assert session.take() == []
    session.handle_timer(2 * INTERVAL + 2)
    assert frames_of(session.take(), 4) == ["2"]


def test_v4_pong_posted_on_polling_counts_too() -> None:
    session = make_session(4)
    session.handle_timer(INTERVAL)
    assert poll(session) == b"2"
    assert post(session, b"3", now=INTERVAL + 1) == []
    assert session.next_deadline() == 2 * INTERVAL + 1


def test_v4_client_that_does_not_pong_is_closed_for_ping_timeout() -> None:
    session = make_session(4, WEBSOCKET)
    session.handle_timer(INTERVAL)
    session.take()
    session.handle_timer(INTERVAL + TIMEOUT - 0.001)
    assert session.state is SessionState.OPEN
    session.handle_timer(INTERVAL + TIMEOUT)
    assert (session.state, session.close_reason) == (SessionState.CLOSED, "ping timeout")
    assert session.next_deadline() is None


def test_v4_late_timer_measures_the_pong_timeout_from_when_the_ping_went_out() -> None:
    session = make_session(4, WEBSOCKET)
    session.handle_timer(INTERVAL + 3)
    assert frames_of(session.take(), 4) == ["2"]
    assert session.next_deadline() == INTERVAL + 3 + TIMEOUT


def test_v4_unsolicited_pong_changes_nothing() -> None:
    session = make_session(4, WEBSOCKET)
    session.receive_frame("3", now=10)
    assert session.state is SessionState.OPEN
    assert session.next_deadline() == INTERVAL


@pytest.mark.parametrize("transport", [WEBSOCKET, POLLING])
def test_v4_client_sending_ping_is_a_protocol_error(transport: Transport) -> None:
    session = make_session(4, transport)
    if transport is WEBSOCKET:
        session.receive_frame("2", now=1)
    else:
        post(session, b"2", now=1)
    assert session.state is SessionState.CLOSED
    assert session.close_code == 1002
    assert session.close_reason is not None and session.close_reason.startswith("parse error")


@pytest.mark.parametrize("revision", [3, 4])
def test_timer_before_the_deadline_does_nothing(revision: int) -> None:
    session = make_session(revision, WEBSOCKET)
    before = snapshot(session)
    for now in (0, 1, 10, INTERVAL - 0.001):
        session.handle_timer(now)
        assert snapshot(session) == before


def test_upgrade_deadline_comes_before_the_ping_when_it_is_sooner() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    assert session.next_deadline() == 1 + UPGRADE_TIMEOUT
    session.handle_timer(1 + UPGRADE_TIMEOUT)
    assert session.next_deadline() == INTERVAL


def test_close_clears_every_deadline() -> None:
    session = make_session(4, WEBSOCKET)
    session.close("server close", now=1, flush=False)
    assert session.next_deadline() is None
    session.handle_timer(1000)
    assert session.take() == []


# --- the outbound queue ---------------------------------------------------------------------------------


def test_full_queue_with_disconnect_policy_closes_the_slow_consumer_with_1008() -> None:
    session = make_session(4, WEBSOCKET, max_queue=2)
    assert session.send(message("a")) and session.send(message("b"))
    assert session.send(message("c")) is False
    assert (session.state, session.close_reason, session.close_code) == (SessionState.CLOSED, "slow consumer", 1008)
    assert session.queued == 0
    assert session.take() == []


def test_full_queue_with_drop_policy_drops_and_counts_the_message() -> None:
    session = make_session(4, WEBSOCKET, max_queue=2, slow_consumer="drop")
    session.send(message("a"))
    session.send(message("b"))
    assert session.send(message("c")) is False
    assert session.send(message("d")) is False
    assert session.dropped == 2
    assert session.state is SessionState.OPEN
    assert frames_of(session.take(), 4) == ["4a", "4b"]
    assert session.send(message("e")) is True


def test_queued_messages_go_out_in_order_as_one_poll_response() -> None:
    session = make_session(4)
    for text in ("a", "b", "c"):
        session.send(message(text))
    assert poll(session) == b"4a\x1e4b\x1e4c"
    assert session.queued == 0


def test_v3_poll_response_uses_length_prefixes() -> None:
    session = make_session(3)
    session.send(message('2["hi"]'))
    session.send(message("b"))
    assert poll(session) == b'8:42["hi"]2:4b'


def test_envelope_packets_stay_together_in_a_poll_response() -> None:
    session = make_session(4)
    session.send(Envelope.of(Packet(MESSAGE, '51-["up",{"_placeholder":true,"num":0}]'), Packet(MESSAGE, b"\x01")))
    assert poll(session) == b'451-["up",{"_placeholder":true,"num":0}]\x1ebAQ=='


# --- long-polling ---------------------------------------------------------------------------------------


def test_poll_waits_until_something_is_queued() -> None:
    session = make_session(4)
    assert session.open_poll() is None
    assert session.poll_pending and not session.poll_ready
    session.send(message("hello"))
    assert session.poll_ready
    assert session.answer_poll() == [Packet(MESSAGE, "hello")]
    assert not session.poll_pending


def test_second_concurrent_poll_is_refused_and_closes_the_session() -> None:
    session = make_session(4)
    assert session.open_poll() is None
    assert session.open_poll() is HandshakeError.BAD_REQUEST
    assert session.state is SessionState.CLOSED
    assert session.close_code == 1002
    # the first GET is then answered with the close, as engine.io's transport close does
    assert session.poll_ready
    assert session.answer_poll() == [Packet(CLOSE)]


def test_abandoned_poll_lets_the_client_poll_again() -> None:
    session = make_session(4)
    session.open_poll()
    session.abandon_poll()
    assert session.open_poll() is None
    assert session.state is SessionState.OPEN


def test_client_close_while_a_poll_is_pending_releases_it_with_a_lone_noop() -> None:
    session = make_session(4)
    assert session.open_poll() is None
    assert post(session, b"1", now=3) == []
    assert session.state is SessionState.CLOSED
    assert session.close_reason == "transport close"
    assert session.poll_ready
    assert session.answer_poll() == [Packet(NOOP)]
    assert session.state is SessionState.CLOSED
    assert session.open_poll() is HandshakeError.UNKNOWN_SID


def test_client_close_releases_the_pending_poll_with_noop_even_with_messages_queued() -> None:
    session = make_session(3)
    session.open_poll()
    session.send(message("late"))  # the shell has not answered the GET yet
    post(session, b"1:1", now=3)
    assert session.answer_poll() == [Packet(NOOP)]
    assert encode_payload([Packet(NOOP)], 3) == (b"1:6", TEXT_CONTENT_TYPE)
    assert session.state is SessionState.CLOSED


def test_client_close_without_a_pending_poll_closes_the_session() -> None:
    session = make_session(4)
    post(session, b"1", now=3)
    assert session.state is SessionState.CLOSED
    assert session.open_poll() is HandshakeError.UNKNOWN_SID


def test_messages_before_a_close_in_one_payload_are_delivered_and_after_it_dropped() -> None:
    session = make_session(4)
    assert post(session, b"4a\x1e1\x1e4b", now=1) == ["a"]
    assert session.state is SessionState.CLOSED


def test_server_close_with_flush_sends_the_queue_to_the_next_poll_and_close_to_the_one_after() -> None:
    session = make_session(4)
    session.send(message("bye"))
    session.close("server close", now=5)
    assert session.state is SessionState.CLOSING
    assert session.closed
    assert session.send(message("too late")) is False
    assert poll(session) == b"4bye"  # a CLOSE never shares a payload (rule 3)
    assert session.state is SessionState.CLOSING
    assert poll(session) == b"1"
    assert session.state is SessionState.CLOSED
    assert session.close_reason == "server close"


def test_server_close_with_final_packets_puts_them_after_the_queue() -> None:
    session = make_session(3)
    session.send(message("a"))
    session.close("server close", now=5, final=[Packet(MESSAGE, "1")])
    assert poll(session) == b"2:4a2:41"
    assert poll(session) == b"1:1"
    assert session.state is SessionState.CLOSED


def test_server_close_with_flush_while_a_poll_waits_with_unsent_messages() -> None:
    session = make_session(4)
    session.open_poll()
    session.send(message("a"))  # the shell has not answered the GET yet
    session.close("server close", now=5)
    assert session.answer_poll() == [Packet(MESSAGE, "a")]
    assert poll(session) == b"1"
    assert session.state is SessionState.CLOSED


def test_flushed_close_whose_closing_poll_comes_too_late_ends_at_close_timeout() -> None:
    session = make_session(4)
    session.send(message("bye"))
    session.close("server close", now=5)
    assert poll(session) == b"4bye"
    session.handle_timer(5 + CLOSE_TIMEOUT)
    assert session.state is SessionState.CLOSED
    assert session.open_poll() is HandshakeError.UNKNOWN_SID


def test_server_close_with_flush_answers_a_pending_poll_at_once() -> None:
    session = make_session(4)
    assert session.open_poll() is None
    session.close("server close", now=5)
    assert session.poll_ready
    assert session.answer_poll() == [Packet(CLOSE)]
    assert session.state is SessionState.CLOSED


def test_flushed_close_that_no_poll_collects_ends_after_close_timeout() -> None:
    session = make_session(4)
    session.send(message("never collected"))
    session.close("server close", now=5)
    assert session.next_deadline() == 5 + CLOSE_TIMEOUT
    session.handle_timer(5 + CLOSE_TIMEOUT - 0.001)
    assert session.state is SessionState.CLOSING
    session.handle_timer(5 + CLOSE_TIMEOUT)
    assert session.state is SessionState.CLOSED
    assert session.queued == 0
    assert session.open_poll() is HandshakeError.UNKNOWN_SID


def test_server_close_without_flush_answers_a_pending_poll_with_close_only() -> None:
    session = make_session(4)
    session.open_poll()
    session.send(message("discarded"))
    session.close("server close", now=5, flush=False)
    assert session.state is SessionState.CLOSED
    assert session.poll_ready
    assert session.answer_poll() == [Packet(CLOSE)]


def test_first_close_reason_wins() -> None:
    session = make_session(4)
    session.close("server close", now=1)
    session.protocol_error("late mistake")
    session.close("another", now=2, flush=False, code=1011)
    assert (session.close_reason, session.close_code) == ("server close", 1000)
    assert session.state is SessionState.CLOSING


def test_closed_session_ignores_everything_the_client_sends() -> None:
    session = make_session(4, WEBSOCKET)
    session.close("server close", now=1, flush=False)
    assert session.receive_frame("4hello", now=2) is None
    assert session.receive_frame("2", now=2) is None  # not even a protocol error any more
    assert session.close_reason == "server close"
    assert session.send(message("x")) is False
    assert session.take() == []


# --- upgrade to websocket -------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", [3, 4])
def test_upgrade_probe_then_upgrade_packet_moves_the_session_to_the_websocket(revision: int) -> None:
    session = make_session(revision)
    assert session.open_poll() is None
    assert session.start_upgrade(now=2) is True
    assert session.upgrade is UpgradeState.PROBING
    assert not session.poll_ready
    assert session.receive_probe("2probe") is True
    assert session.upgrade is UpgradeState.PROBED
    assert session.take_probe_answer() == "3probe"
    assert session.take_probe_answer() is None
    assert session.poll_ready
    assert session.answer_poll() == [Packet(NOOP)]
    assert session.receive_probe("5") is True
    assert (session.upgrade, session.transport, session.state) == (UpgradeState.UPGRADED, WEBSOCKET, SessionState.OPEN)
    assert session.open_poll() is HandshakeError.BAD_REQUEST
    assert session.state is SessionState.OPEN  # a stale GET is refused, the session lives on
    assert session.start_upgrade(now=3) is False


def test_poll_during_the_probe_is_answered_at_once_with_noop() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    session.receive_probe("2probe")
    session.take_probe_answer()
    assert session.open_poll() is None
    assert session.poll_ready
    assert poll_answer_bytes(session) == b"6"


def test_messages_queued_during_the_upgrade_go_out_on_the_websocket() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    session.receive_probe("2probe")
    session.send(message("a"))
    session.receive_probe("5")
    session.send(message("b"))
    assert frames_of(session.take(), 4) == ["4a", "4b"]


def test_upgrade_completes_before_the_timeout_and_stops_its_deadline() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    session.receive_probe("2probe")
    session.receive_probe("5")
    assert session.next_deadline() == INTERVAL
    session.handle_timer(1 + UPGRADE_TIMEOUT)
    assert session.upgrade is UpgradeState.UPGRADED


def test_upgrade_not_completed_in_time_falls_back_to_polling() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    session.receive_probe("2probe")
    session.handle_timer(1 + UPGRADE_TIMEOUT - 0.001)
    assert session.upgrade is UpgradeState.PROBED
    session.handle_timer(1 + UPGRADE_TIMEOUT)
    assert (session.upgrade, session.transport, session.state) == (UpgradeState.NONE, POLLING, SessionState.OPEN)
    assert session.receive_probe("5") is False
    assert session.take_probe_answer() is None
    assert session.open_poll() is None
    assert session.start_upgrade(now=12) is True  # the client may try again


@pytest.mark.parametrize("frame", ["", "9", "5", "4hello", "1", "2ping", "3probe", b"\x04bin", b""])
def test_bad_frame_during_the_probe_abandons_the_upgrade_and_the_session_keeps_polling(frame: str | bytes) -> None:
    session = make_session(3)
    session.start_upgrade(now=1)
    assert session.receive_probe(frame) is False
    assert (session.upgrade, session.transport, session.state) == (UpgradeState.NONE, POLLING, SessionState.OPEN)
    assert session.next_deadline() == INTERVAL + TIMEOUT
    session.send(message("still here"))
    assert poll(session) == b"11:4still here"


def test_second_probe_after_the_first_abandons_the_upgrade() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    session.receive_probe("2probe")
    assert session.receive_probe("4hello") is False
    assert session.upgrade is UpgradeState.NONE
    assert session.take_probe_answer() is None
    assert session.state is SessionState.OPEN


def test_second_websocket_while_probing_is_refused() -> None:
    session = make_session(4)
    assert session.start_upgrade(now=1) is True
    assert session.start_upgrade(now=2) is False
    assert session.upgrade is UpgradeState.PROBING


def test_websocket_session_cannot_upgrade_or_poll() -> None:
    session = make_session(4, WEBSOCKET)
    assert session.upgrade is UpgradeState.UPGRADED
    assert session.start_upgrade(now=1) is False
    assert session.open_poll() is HandshakeError.BAD_REQUEST


def test_closing_session_refuses_an_upgrade() -> None:
    session = make_session(4)
    session.close("server close", now=1)
    assert session.start_upgrade(now=1) is False


def test_server_close_during_the_probe_still_sends_close_to_the_next_poll() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    session.receive_probe("2probe")
    session.take_probe_answer()
    session.close("server close", now=2)
    assert poll(session) == b"1"
    assert session.state is SessionState.CLOSED


def test_session_closed_during_the_probe_owes_no_probe_answer() -> None:
    session = make_session(4)
    session.start_upgrade(now=1)
    session.receive_probe("2probe")
    session.close("ping timeout", now=2, flush=False)
    assert session.take_probe_answer() is None


# --- the websocket writer -------------------------------------------------------------------------------


def test_take_drains_the_queue_in_order() -> None:
    session = make_session(3, WEBSOCKET)
    session.send(message("a"))
    session.send(message(b"\x01\x02"))
    assert frames_of(session.take(), 3) == ["4a", b"\x04\x01\x02"]
    assert session.queued == 0
    assert session.take() == []


def test_closing_websocket_session_closes_once_take_finds_the_queue_empty() -> None:
    session = make_session(4, WEBSOCKET)
    session.send(message("a"))
    session.close("server close", now=1, final=[Packet(MESSAGE, "1")])
    assert frames_of(session.take(), 4) == ["4a", "41"]
    assert session.state is SessionState.CLOSING
    assert session.take() == []
    assert session.state is SessionState.CLOSED


def test_closing_with_an_empty_queue_closes_on_the_first_take() -> None:
    session = make_session(4, WEBSOCKET)
    session.close("server close", now=1)
    assert session.take() == []
    assert session.state is SessionState.CLOSED


# --- payloads and frames in -----------------------------------------------------------------------------


def test_v4_payload_messages_come_back_in_order() -> None:
    session = make_session(4)
    assert post(session, b"4a\x1e6\x1e4b\x1ebAQI=", now=1) == ["a", "b", b"\x01\x02"]
    assert session.state is SessionState.OPEN


def test_v3_text_payload_messages_come_back_in_order() -> None:
    session = make_session(3)
    assert post(session, b'2:4a8:42["hi"]', now=1) == ["a", '2["hi"]']


def test_v3_xhr2_binary_payload_is_decoded_by_content_type() -> None:
    session = make_session(3)
    body = b"\x00\x02\xff4a\x01\x03\xff\x04\x01\x02"
    assert post(session, body, now=1, content_type=BINARY_CONTENT_TYPE) == ["a", b"\x01\x02"]


@pytest.mark.parametrize(
    ("revision", "body", "content_type"),
    [
        (4, b"", TEXT_CONTENT_TYPE),
        (4, b"9", TEXT_CONTENT_TYPE),
        (4, b"4a\x1e", TEXT_CONTENT_TYPE),
        (4, b"b!!", TEXT_CONTENT_TYPE),
        (4, b"\xff", TEXT_CONTENT_TYPE),
        (3, b"5:4a", TEXT_CONTENT_TYPE),
        (3, b"x:4a", TEXT_CONTENT_TYPE),
        (3, b"\x02\xff", BINARY_CONTENT_TYPE),
    ],
)
def test_malformed_payload_closes_the_session_with_1002(revision: int, body: bytes, content_type: str) -> None:
    session = make_session(revision)
    assert post(session, body, now=1, content_type=content_type) == []
    assert session.state is SessionState.CLOSED
    assert session.close_code == 1002
    assert session.close_reason is not None and session.close_reason.startswith("parse error")


@pytest.mark.parametrize(("revision", "frame", "data"), [(4, "4hi", "hi"), (4, b"\x00\x01", b"\x00\x01"), (3, b"\x04\x00", b"\x00")])
def test_message_frames_hand_their_data_upward(revision: int, frame: str | bytes, data: str | bytes) -> None:
    assert make_session(revision, WEBSOCKET).receive_frame(frame, now=1) == data


@pytest.mark.parametrize("frame", ["", "7", "x", b"\x00"])
def test_malformed_v3_frame_closes_the_session_with_1002(frame: str | bytes) -> None:
    session = make_session(3, WEBSOCKET)
    assert session.receive_frame(frame, now=1) is None
    assert (session.state, session.close_code) == (SessionState.CLOSED, 1002)


def test_noop_from_the_client_is_ignored() -> None:
    session = make_session(4, WEBSOCKET)
    assert session.receive_frame("6", now=1) is None
    assert session.state is SessionState.OPEN


def test_client_close_frame_on_websocket_closes_the_session() -> None:
    session = make_session(4, WEBSOCKET)
    session.send(message("a"))
    session.receive_frame("1", now=1)
    assert (session.state, session.close_reason) == (SessionState.CLOSED, "transport close")
    assert session.take() == []


# --- properties -----------------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAMES = st.one_of(
    st.sampled_from(["2", "3", "2probe", "3probe", "5", "6", "1", "4hi", "0", "", "9", "4", "b", "41"]),
    st.text(max_size=6),
    st.binary(max_size=6),
    st.just(b"\x04x"),
)
CONTENT_TYPES = st.sampled_from([TEXT_CONTENT_TYPE, BINARY_CONTENT_TYPE, None, "application/json"])
TEXT_DATA = st.text(max_size=6).filter(lambda text: "\x1e" not in text)


def packets(allow_binary: bool = True) -> st.SearchStrategy[Packet]:
    text_packets = st.builds(Packet, st.sampled_from(list(PacketType)), TEXT_DATA)
    if not allow_binary:
        return text_packets
    return st.one_of(text_packets, st.builds(Packet, st.just(MESSAGE), st.binary(max_size=6)))


def payload_bodies(revision: int) -> st.SearchStrategy[bytes]:
    valid = st.builds(
        lambda packet_list, b64: encode_payload(packet_list, revision, b64=b64)[0],
        st.lists(packets(), min_size=1, max_size=4),
        st.booleans(),
    )
    return st.one_of(valid, st.binary(max_size=20))


def operations(revision: int) -> st.SearchStrategy[tuple[object, ...]]:
    return st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 400).map(lambda tenths: tenths / 10)),
        st.tuples(st.just("deadline")),
        st.tuples(st.just("packet"), packets()),
        st.tuples(st.just("frame"), FRAMES),
        st.tuples(st.just("payload"), payload_bodies(revision), CONTENT_TYPES),
        st.tuples(st.just("open_poll")),
        st.tuples(st.just("answer_poll")),
        st.tuples(st.just("abandon_poll")),
        st.tuples(st.just("send"), st.integers(1, 3)),
        st.tuples(st.just("take")),
        st.tuples(st.just("start_upgrade")),
        st.tuples(st.just("probe_handshake")),
        st.tuples(st.just("probe"), st.one_of(st.sampled_from(["2probe", "5", "6"]), FRAMES)),
        st.tuples(st.just("take_probe_answer")),
        st.tuples(st.just("abandon_upgrade")),
        st.tuples(st.just("close"), st.booleans(), st.booleans()),
        st.tuples(st.just("protocol_error")),
    )


class Driver:
    """Plays the trio shell: applies operations in order and checks the invariants after each one."""

    def __init__(self, session: EngineSession, max_queue: int, *, eager: bool = False) -> None:
        self.session = session
        self.eager = eager  # answer a ready poll right after each operation, as the shell does
        self.max_queue = max_queue
        self.now = 0.0
        self.close_reason: str | None = None
        self.answers_after_closed = 0
        self.noop_owed = False  # the pending GET was released (probe, upgrade, the client's close)

    def run(self, op: tuple[object, ...]) -> None:
        session = self.session
        was_closed = session.state is SessionState.CLOSED
        was_open = session.state is SessionState.OPEN
        was_closing = session.state is SessionState.CLOSING
        poll_was_pending = session.poll_pending
        kind = op[0]
        result: object = None
        if kind == "advance":
            assert isinstance(op[1], float)
            new_now = self.now + op[1]
            deadline = session.next_deadline()
            before = snapshot(session)
            self.now = new_now
            session.handle_timer(new_now)
            if deadline is None or new_now < deadline:
                assert snapshot(session) == before, "handle_timer before next_deadline() changed the session"
        elif kind == "deadline":
            deadline = session.next_deadline()
            if deadline is not None and deadline >= self.now:
                self.now = deadline
                session.handle_timer(deadline)
                after = session.next_deadline()
                assert after is None or after > deadline, "next_deadline() named a moment when nothing was due"
        elif kind == "packet":
            assert isinstance(op[1], Packet)
            result = session.receive(op[1], self.now)
            if was_open and poll_was_pending and op[1].type is CLOSE:
                self.noop_owed = True
            if was_open and op[1].type is MESSAGE:
                assert result == op[1].data
            elif not was_open:
                assert result is None
        elif kind == "frame":
            result = session.receive_frame(op[1], self.now)  # type: ignore[arg-type]
        elif kind == "payload":
            result = session.receive_payload(op[1], op[2], self.now)  # type: ignore[arg-type]
            assert isinstance(result, list)
        elif kind == "open_poll":
            result = session.open_poll()
            assert result is None or isinstance(result, HandshakeError)
            if session.transport is WEBSOCKET:
                assert result is HandshakeError.BAD_REQUEST
        elif kind == "answer_poll":
            if session.poll_pending and session.poll_ready:
                answer = session.answer_poll()
                assert answer, "a poll was answered with an empty payload"
                if Packet(CLOSE) in answer:
                    assert answer == [Packet(CLOSE)], "a CLOSE never shares a payload"
                    assert session.state is SessionState.CLOSED
                if was_closing and not self.noop_owed:
                    # a closing session's poll carries what is left, or else the CLOSE that ends it
                    closes = answer == [Packet(CLOSE)] and session.state is SessionState.CLOSED
                    flushes = Packet(CLOSE) not in answer and Packet(NOOP) not in answer
                    assert closes or flushes, answer
                self.noop_owed = False
                if was_closed:
                    self.answers_after_closed += 1
                    assert answer in ([Packet(NOOP)], [Packet(CLOSE)]), answer
                encode_payload(answer, session.revision, b64=session.b64)
        elif kind == "abandon_poll":
            session.abandon_poll()
        elif kind == "send":
            for index in range(op[1]):  # type: ignore[call-overload]
                sent = session.send(message(f"m{index}"))
                if was_closed:
                    assert sent is False
        elif kind == "take":
            result = session.take()
            for frame in frames_of(result, session.revision):  # type: ignore[arg-type]
                assert isinstance(frame, str | bytes)
        elif kind == "start_upgrade":
            result = session.start_upgrade(self.now)
            if result:
                assert session.upgrade is UpgradeState.PROBING
        elif kind == "probe_handshake":
            if session.start_upgrade(self.now) and session.receive_probe("2probe") and poll_was_pending:
                self.noop_owed = True
        elif kind == "probe":
            result = session.receive_probe(op[1])  # type: ignore[arg-type]
            if result and poll_was_pending and op[1] in ("2probe", "5"):
                self.noop_owed = True
            if session.upgrade is UpgradeState.UPGRADED:
                assert session.transport is WEBSOCKET
        elif kind == "take_probe_answer":
            result = session.take_probe_answer()
            assert result in (None, "3probe")
        elif kind == "abandon_upgrade":
            session.abandon_upgrade()
        elif kind == "close":
            session.close("server close", now=self.now, flush=bool(op[1]), final=[Packet(MESSAGE, "1")] if op[2] else ())
        elif kind == "protocol_error":
            session.protocol_error("test")
        else:  # pragma: no cover
            raise AssertionError(kind)

        if was_closed:
            assert session.state is SessionState.CLOSED, "CLOSED is final"
            assert result in (None, [], False) or (kind == "open_poll" and result is not None), (kind, result)
            assert self.answers_after_closed <= 1
        self.check()
        if self.eager and kind != "answer_poll" and session.poll_pending and session.poll_ready:
            self.run(("answer_poll",))

    def check(self) -> None:
        session = self.session
        state = session.state
        if state is SessionState.OPEN:
            assert session.queued <= self.max_queue + 1  # a heartbeat may take one slot past the bound
            assert session.close_reason is None
            deadline = session.next_deadline()
            assert deadline is not None, "an open session always has a heartbeat deadline"
            assert deadline >= self.now, "next_deadline() is in the past"
        else:
            assert session.queued <= self.max_queue + 2  # a heartbeat and the final packets
            assert session.close_reason is not None
            if self.close_reason is None:
                self.close_reason = session.close_reason
            assert session.close_reason == self.close_reason, "the first close reason wins"
            if state is SessionState.CLOSED:
                assert session.queued == 0
                assert session.next_deadline() is None
            else:
                closing_deadline = session.next_deadline()
                assert closing_deadline is not None and closing_deadline >= self.now
        if session.upgrade is UpgradeState.UPGRADED:
            assert session.transport is WEBSOCKET
        else:
            assert session.transport is POLLING


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    revision=st.sampled_from([3, 4]),
    transport=st.sampled_from([POLLING, WEBSOCKET]),
    max_queue=st.integers(0, 4),
    slow_consumer=st.sampled_from(["disconnect", "drop"]),
    data=st.data(),
)
def test_any_sequence_of_operations_keeps_the_session_consistent(
    revision: int, transport: Transport, max_queue: int, slow_consumer: str, data: st.DataObject
) -> None:
    session = make_session(
        revision, transport, max_queue=max_queue, slow_consumer=slow_consumer, ping_interval=5, ping_timeout=3, upgrade_timeout=2
    )
    driver = Driver(session, max_queue)
    for op in data.draw(st.lists(operations(revision), max_size=40), label="operations"):
        driver.run(op)


@PROPERTY_SETTINGS
@given(revision=st.sampled_from([3, 4]), frames=st.lists(FRAMES, max_size=10))
def test_arbitrary_frames_only_ever_close_the_session_as_a_protocol_error(revision: int, frames: list[str | bytes]) -> None:
    session = make_session(revision, WEBSOCKET, max_queue=100)
    for frame in frames:
        session.receive_frame(frame, now=1)
    if session.state is SessionState.CLOSED:
        assert session.close_code == 1002 or session.close_reason == "transport close"


@PROPERTY_SETTINGS
@given(revision=st.sampled_from([3, 4]), body=st.binary(max_size=40), content_type=CONTENT_TYPES)
def test_arbitrary_payload_bytes_never_raise(revision: int, body: bytes, content_type: str | None) -> None:
    session = make_session(revision, max_queue=100)
    messages = session.receive_payload(body, content_type, 1)
    assert all(isinstance(item, str | bytes) for item in messages)
    if session.state is SessionState.CLOSED:
        assert session.close_code == 1002 or session.close_reason == "transport close"


@PROPERTY_SETTINGS
@given(revision=st.sampled_from([3, 4]), datas=st.lists(st.one_of(TEXT_DATA, st.binary(max_size=6)), min_size=1, max_size=6), b64=st.booleans())
def test_posted_messages_come_back_in_order(revision: int, datas: Sequence[str | bytes], b64: bool) -> None:
    session = make_session(revision)
    body, content_type = encode_payload([Packet(MESSAGE, data) for data in datas], revision, b64=b64)
    assert session.receive_payload(body, content_type, 1) == list(datas)
    assert session.state is SessionState.OPEN


@PROPERTY_SETTINGS
@given(pong_delays=st.lists(st.integers(0, int(TIMEOUT * 10) - 1).map(lambda tenths: tenths / 10), max_size=20))
def test_v4_client_that_always_pongs_in_time_is_never_closed(pong_delays: list[float]) -> None:
    session = make_session(4, WEBSOCKET)
    now = 0.0
    for delay in pong_delays:
        deadline = session.next_deadline()
        assert deadline is not None
        now = deadline
        session.handle_timer(now)
        assert frames_of(session.take(), 4) == ["2"]
        now += delay
        session.handle_timer(now)
        session.receive_frame("3", now)
        assert session.next_deadline() == now + INTERVAL
    assert session.state is SessionState.OPEN


@PROPERTY_SETTINGS
@given(gaps=st.lists(st.integers(0, int((INTERVAL + TIMEOUT) * 10) - 1).map(lambda tenths: tenths / 10), max_size=20))
def test_v3_client_that_pings_often_enough_is_never_closed(gaps: list[float]) -> None:
    session = make_session(3, WEBSOCKET)
    now = 0.0
    for gap in gaps:
        now += gap
        session.handle_timer(now)
        session.receive_frame("2", now)
        assert frames_of(session.take(), 3) == ["3"]
    assert session.state is SessionState.OPEN


LIFECYCLE_OPERATIONS = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 60).map(lambda tenths: tenths / 10)),
    st.tuples(st.just("deadline")),
    st.tuples(st.just("open_poll")),
    st.tuples(st.just("abandon_poll")),
    st.tuples(st.just("send"), st.integers(1, 2)),
    st.tuples(st.just("take")),
    st.tuples(st.just("probe_handshake")),
    st.tuples(st.just("probe"), st.sampled_from(["5", "4x", "2probe"])),
    st.tuples(st.just("take_probe_answer")),
    st.tuples(st.just("close"), st.booleans(), st.booleans()),
    st.tuples(st.just("packet"), st.sampled_from([Packet(CLOSE), Packet(MESSAGE, "x"), Packet(PONG), Packet(PING)])),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    revision=st.sampled_from([3, 4]),
    max_queue=st.integers(1, 3),
    operations=st.lists(LIFECYCLE_OPERATIONS, max_size=15),
)
def test_polling_upgrade_and_close_stories_keep_the_session_consistent(
    revision: int, max_queue: int, operations: list[tuple[object, ...]]
) -> None:
    """The same invariants, with a shell that answers every ready poll at once and only lifecycle moves."""
    session = make_session(revision, max_queue=max_queue, ping_interval=5, ping_timeout=3, upgrade_timeout=2)
    driver = Driver(session, max_queue, eager=True)
    for op in operations:
        driver.run(op)
    # however the story went, a closing session ends for a client that keeps polling (or a writer that
    # keeps taking), before any timer has to step in
    if session.state is SessionState.CLOSING:
        if session.transport is WEBSOCKET:
            session.take()
            session.take()
        else:
            if session.poll_pending:
                session.abandon_poll()
            for _ in range(3):
                if session.state is SessionState.CLOSED:
                    break
                assert session.open_poll() is None
                assert session.poll_ready
                session.answer_poll()
        assert session.state is SessionState.CLOSED, "a polling client never got its CLOSE"
