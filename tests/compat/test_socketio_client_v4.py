"""socket.io-client 4.8.1 (Engine.IO v4, Socket.IO protocol v5) against trisails, on every transport.

Each story runs three times: over websocket only, over long-polling only, and starting on long-polling
then upgrading to websocket (the client's default), the upgrade confirmed before the story goes on.
The heartbeat story runs on the reference app's own 300/200 ms timings; the others on steady ones.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.compat.apps import (
    EAGER_RECONNECTION,
    TRANSPORTS,
    asking_app,
    connect_on,
    lifted,
    realtime_app,
    steady_reference_app,
)
from tests.support.apps import reference_app
from tests.support.jsclient import JsConnectError, JsDriver, JsError, JsSocket
from trisails import ConnectionRefused, Socket

#: Nested binary, both ways: bytes at the top, in a dict, in a list in a dict, next to plain JSON.
MIXED_ARGS = (1, "two", {"three": b"\x00\x01\x02", "four": [b"\xff" * 3, {"five": b""}]}, None, True, 1.5, [])


async def connect(js: JsDriver, url: str, transport: str, **kwargs: Any) -> JsSocket:
    """A v4 client on ``transport``; for "upgrade", returned once the client runs on websocket."""
    return await connect_on(js, "v4", url, transport, **kwargs)


# ------------------------------------------------------------------------------------------------ transports
async def test_the_client_ends_up_on_the_transport_it_asked_for(js: JsDriver, transport: str) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        client = await connect(js, url, transport)
        state = await client.engine_state()
        first_request = server.socket(client.id).handshake.query
        assert first_request["EIO"] == "4"
        if transport == "websocket":
            assert (first_request["transport"], state.transport) == ("websocket", "websocket")
        elif transport == "polling":
            assert (first_request["transport"], state.transport) == ("polling", "polling")
        else:
            # the session began as a long-polling handshake and the very same session now runs on websocket
            assert (first_request["transport"], state.transport) == ("polling", "websocket")
        assert server.app.statistics()["sessions"] == 1
        assert await client.emit("message-with-ack", "still here", ack=True) == ["still here"]
        assert (await client.engine_state()).sid == state.sid


async def test_messages_sent_while_the_client_upgrades_arrive_once_and_in_order(js: JsDriver) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await js.connect("v4", url, options=TRANSPORTS["upgrade"])
        for n in range(30):
            await client.emit("message", n, bytes([n]))
        await client.wait_for_transport("websocket")
        for n in range(30, 40):
            await client.emit("message", n, bytes([n]))
        assert [await client.next_event("message-back") for _ in range(40)] == [[n, bytes([n])] for n in range(40)]
        await client.expect_no_event("message-back")


# ------------------------------------------------------------------------------------------------ events and acks
async def test_messages_are_handled_in_the_order_they_were_sent(js: JsDriver, transport: str) -> None:
    # Socket.IO guarantees ordering on every transport: a chat relayed by the server must not shuffle lines
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport)
        for n in range(20):
            await client.emit("message", n)
        assert [await client.next_event("message-back") for _ in range(20)] == [[n] for n in range(20)]


async def test_the_server_greets_the_client_with_the_auth_it_sent(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport, options={"auth": {"token": "abc", "n": 1}})
        assert await client.next_event("auth") == [{"token": "abc", "n": 1}]
        anonymous = await connect(js, url, transport)
        assert await anonymous.next_event("auth") == [{}]


async def test_a_message_comes_back_with_mixed_arguments_and_nested_binary(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport)
        await client.emit("message", *MIXED_ARGS)
        assert await client.next_event("message-back") == list(MIXED_ARGS)
        await client.emit("message", b"\x04just bytes")
        assert await client.next_event("message-back") == [b"\x04just bytes"]


async def test_the_server_acknowledges_a_message_with_its_arguments(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport)
        assert await client.emit("message-with-ack", *MIXED_ARGS, ack=True) == list(MIXED_ARGS)
        assert await client.emit("message-with-ack", ack=True) == []
        # acks are matched by id, so answers to concurrent questions do not get mixed up
        answers: dict[int, Any] = {}

        async def ask(n: int) -> None:
            answers[n] = await client.emit("message-with-ack", n, ack=True)

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(ask, n)
        assert answers == {n: [n] for n in range(10)}


async def test_the_server_asks_the_client_and_gets_its_answer(js: JsDriver, transport: str) -> None:
    asking = asking_app(1)
    async with lifted(asking.app, js) as url:
        client = await connect(js, url, transport)
        question = await client.receive("question")
        assert question.args == [1] and question.wants_ack
        await question.ack("forty-two", b"\x2a", {"why": [b"\x00"]})
        assert await asking.answers.wait_for(1) == [["forty-two", b"\x2a", {"why": [b"\x00"]}]]


async def test_an_event_handler_can_ask_the_client_back_before_it_acks(js: JsDriver, transport: str) -> None:
    async with lifted(realtime_app().app, js) as url:
        client = await connect(js, url, transport)
        async with trio.open_nursery() as nursery:

            async def answer_the_question() -> None:
                question = await client.receive("question")
                assert question.args == ["who?", b"\x01"]
                await question.ack("me", b"\x02")

            nursery.start_soon(answer_the_question)
            assert await client.emit("ask-me", "who?", b"\x01", ack=True) == ["me", b"\x02"]


# ------------------------------------------------------------------------------------------------ namespaces
async def test_the_custom_namespace_works_like_the_main_one(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport, namespace="/custom", options={"auth": {"in": "custom"}})
        assert await client.next_event("auth") == [{"in": "custom"}]
        await client.emit("message", *MIXED_ARGS)
        assert await client.next_event("message-back") == list(MIXED_ARGS)
        assert await client.emit("message-with-ack", "x", b"y", ack=True) == ["x", b"y"]


async def test_an_unknown_namespace_is_refused_as_invalid(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        with pytest.raises(JsConnectError) as refused:
            await js.connect("v4", url, namespace="/nope", options=TRANSPORTS[transport])
        assert isinstance(refused.value.error, JsError)
        assert refused.value.error.message == "Invalid namespace"


async def test_middleware_refuses_a_client_with_a_message_and_data(js: JsDriver, transport: str) -> None:
    app = steady_reference_app()

    @app.io.use
    def only_with_a_token(socket: Socket) -> None:
        if socket.handshake.auth.get("token") != "secret":
            raise ConnectionRefused("Not authorized", {"hint": "send a token", "code": 401})

    async with lifted(app, js) as url:
        with pytest.raises(JsConnectError) as refused:
            await connect(js, url, transport, options={"auth": {"token": "wrong"}})
        error = refused.value.error
        assert isinstance(error, JsError)
        assert (error.message, error.data) == ("Not authorized", {"hint": "send a token", "code": 401})
        welcome = await connect(js, url, transport, options={"auth": {"token": "secret"}})
        assert await welcome.next_event("auth") == [{"token": "secret"}]


# ------------------------------------------------------------------------------------------------ rooms
async def test_a_room_broadcast_reaches_exactly_its_members(js: JsDriver, transport: str) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        alice, bob, carol = [await connect(js, url, transport, name=name) for name in ("alice", "bob", "carol")]
        assert await alice.emit("join", "lobby", ack=True) == ["lobby"]
        assert await bob.emit("join", "lobby", ack=True) == ["lobby"]

        assert server.io.to("lobby").emit("news", "extra!", b"\x01") == 2
        assert await alice.next_event("news") == ["extra!", b"\x01"]
        assert await bob.next_event("news") == ["extra!", b"\x01"]
        await carol.expect_no_event("news")
        await alice.expect_no_event("news", within=0)
        await bob.expect_no_event("news", within=0)

        assert await bob.emit("leave", "lobby", ack=True) == ["lobby"]
        assert server.io.to("lobby").emit("news", "bob left") == 1
        assert await alice.next_event("news") == ["bob left"]
        await bob.expect_no_event("news")


async def test_a_socket_broadcasting_to_its_room_is_left_out(js: JsDriver, transport: str) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        alice, bob, carol = [await connect(js, url, transport, name=name) for name in ("alice", "bob", "carol")]
        for member in (alice, bob):
            await member.emit("join", "lobby", ack=True)

        await alice.emit("shout", "lobby", "hi all", {"pic": b"\x89PNG"})
        assert await bob.next_event("shout") == ["hi all", {"pic": b"\x89PNG"}]
        await alice.expect_no_event("shout")
        await carol.expect_no_event("shout", within=0)


async def test_a_broadcast_can_leave_out_a_room_or_a_socket(js: JsDriver, transport: str) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        alice, bob, carol = [await connect(js, url, transport, name=name) for name in ("alice", "bob", "carol")]
        for member in (alice, bob, carol):
            await member.emit("join", "lobby", ack=True)
        await carol.emit("join", "muted", ack=True)

        assert server.io.to("lobby").except_("muted").emit("news", 1) == 2
        assert server.io.to("lobby").except_(bob.id).emit("news", 2) == 2
        assert server.io.except_("muted").emit("news", 3) == 2
        assert [await alice.next_event("news") for _ in range(3)] == [[1], [2], [3]]
        assert [await bob.next_event("news") for _ in range(2)] == [[1], [3]]
        assert await carol.next_event("news") == [2]
        for client in (alice, bob, carol):
            await client.expect_no_event("news", within=0.1)


# ------------------------------------------------------------------------------------------------ disconnecting
async def test_a_client_the_server_disconnects_is_told_so_and_does_not_reconnect(js: JsDriver, transport: str) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        client = await connect(js, url, transport, options=EAGER_RECONNECTION)
        socket_id = client.id
        client.discard()
        await client.emit("kick-me")
        assert await client.next_event("disconnect") == ["io server disconnect"]
        assert await server.disconnect_reason(socket_id) == "server namespace disconnect"
        await client.expect_no_event("reconnect_attempt", within=0.3)
        await client.expect_no_event("connect", within=0)
        assert not (await client.engine_state()).connected
        assert len(server.connections) == 1


async def test_a_client_the_server_closes_right_after_a_last_message_gets_both_and_does_not_reconnect(
    js: JsDriver, transport: str
) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        client = await connect(js, url, transport, options=EAGER_RECONNECTION)
        client.discard()
        await client.emit("bye", "thanks", b"\x00")
        assert await client.next_event("farewell") == ["thanks", b"\x00"]
        assert await client.next_event("disconnect") == ["io server disconnect"]
        await client.expect_no_event("reconnect_attempt", within=0.3)
        assert len(server.connections) == 1


async def test_a_client_that_disconnects_runs_the_server_disconnect_handler(js: JsDriver, transport: str) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        client = await connect(js, url, transport)
        assert await client.disconnect() == "io client disconnect"
        # socket.io-client 4 sends a DISCONNECT packet ("41") before it closes the transport
        assert await server.disconnect_reason(client.id) == "client namespace disconnect"
        with trio.move_on_after(2):
            while server.app.statistics()["sessions"]:
                await trio.sleep(0.01)
        assert server.app.statistics()["sessions"] == 0


# ------------------------------------------------------------------------------------------------ heartbeat
async def test_heartbeats_keep_a_quiet_connection_alive(js: JsDriver, transport: str) -> None:
    # the reference app pings every 300 ms and allows 200 ms for the pong: 1.5 s is five heartbeats
    async with lifted(reference_app(), js) as url:
        client = await connect(js, url, transport, heartbeat=True)
        sid = (await client.engine_state()).sid
        await trio.sleep(1.5)
        for _ in range(4):  # already there, unless the machine is very busy
            await client.next_event("ping")
        await client.expect_no_event("disconnect", within=0)
        assert await client.emit("message-with-ack", "alive", ack=True) == ["alive"]
        state = await client.engine_state()
        assert (state.connected, state.sid) == (True, sid)


# ------------------------------------------------------------------------------------------------ server restarts
async def test_when_the_app_lowers_an_idle_client_sees_the_transport_close_and_tries_again(
    js: JsDriver, transport: str
) -> None:
    # no heartbeat during the story, so an idle polling client surely has its long-poll waiting at the server
    app = steady_reference_app()
    async with app.lifted() as url:
        client = await connect(js, url, transport, options=EAGER_RECONNECTION)
        await client.next_event("auth")
        with trio.fail_after(5):  # a polling client's long-poll is waiting at the server (bounded: no event says so)
            while transport == "polling" and not any(c.session.poll_pending for c in app._engine.sessions):
                await trio.sleep(0.01)
        client.discard()
    assert await client.next_event("disconnect") == ["transport close"]
    await client.next_event("reconnect_attempt")
