"""socket.io-client 2.0.3 (Engine.IO v3, Socket.IO protocol v4: what sails.io.js runs on) against trisails.

Each story runs over websocket only, over long-polling only (which this client, in Node, asks for in
base64: ``b64=1``), and starting on long-polling then upgrading to websocket, the upgrade confirmed first.
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
from tests.support.jsclient import JsConnectError, JsDriver, JsSocket
from trisails import ConnectionRefused, Socket

#: Nested binary, both ways: bytes at the top, in a dict, in a list in a dict, next to plain JSON.
MIXED_ARGS = (1, "two", {"three": b"\x00\x01\x02", "four": [b"\xff" * 3, {"five": b"\x04"}]}, None, True, 1.5, [])


async def connect(js: JsDriver, url: str, transport: str, **kwargs: Any) -> JsSocket:
    """A v2 client on ``transport``; for "upgrade", returned once the client runs on websocket."""
    return await connect_on(js, "v2", url, transport, **kwargs)


# ------------------------------------------------------------------------------------------------ connecting
async def test_the_client_ends_up_on_the_transport_it_asked_for(js: JsDriver, transport: str) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        client = await connect(js, url, transport)
        state = await client.engine_state()
        first_request = server.socket(client.id).handshake.query
        assert first_request["EIO"] == "3"
        if transport == "websocket":
            assert (first_request["transport"], state.transport) == ("websocket", "websocket")
        else:
            # Node's XHR has no binary support in engine.io-client 3: the polling session is base64
            assert (first_request["transport"], first_request.get("b64")) == ("polling", "1")
            assert state.transport == ("polling" if transport == "polling" else "websocket")
        assert server.app.statistics()["sessions"] == 1
        assert await client.emit("message-with-ack", "still here", b"\x01", ack=True) == ["still here", b"\x01"]
        assert (await client.engine_state()).sid == state.sid


async def test_the_client_is_in_the_main_namespace_at_once_and_its_id_is_the_engine_sid(
    js: JsDriver, transport: str
) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        client = await connect(js, url, transport)
        state = await client.engine_state()
        assert client.id == state.socket_id == state.sid
        assert [socket.id for socket in server.connections.entries] == [state.sid]
        # Socket.IO protocol v4 has no auth payload: the greeting carries an empty one
        assert await client.next_event("auth") == [{}]


async def test_middleware_refuses_a_client_with_its_data_or_else_its_message(js: JsDriver, transport: str) -> None:
    # socket.io 4 (what Sails runs) sends a protocol-v4 client `err.data || err.message`
    app = steady_reference_app()

    @app.io.use
    def only_with_a_token(socket: Socket) -> None:
        token = socket.handshake.query.get("token")
        if token == "none":
            raise ConnectionRefused("Not authorized")
        if token != "secret":
            raise ConnectionRefused("Not authorized", {"hint": "send a token", "code": 401})

    async with lifted(app, js) as url:
        with pytest.raises(JsConnectError) as refused:
            await js.connect("v2", url, options={**TRANSPORTS[transport], "query": {"token": "none"}})
        assert refused.value.error == "Not authorized"
        with pytest.raises(JsConnectError) as refused:
            await js.connect("v2", url, options={**TRANSPORTS[transport], "query": {"token": "wrong"}})
        assert refused.value.error == {"hint": "send a token", "code": 401}
        welcome = await connect(js, url, transport, options={"query": {"token": "secret"}})
        assert await welcome.next_event("auth") == [{}]


# ------------------------------------------------------------------------------------------------ events and acks
async def test_a_message_comes_back_with_mixed_arguments_and_nested_binary(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport)
        await client.emit("message", *MIXED_ARGS)
        assert await client.next_event("message-back") == list(MIXED_ARGS)
        await client.emit("message", b"\x04just bytes")
        assert await client.next_event("message-back") == [b"\x04just bytes"]


async def test_messages_are_handled_in_the_order_they_were_sent(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport)
        for n in range(20):
            await client.emit("message", n)
        assert [await client.next_event("message-back") for _ in range(20)] == [[n] for n in range(20)]


async def test_the_server_acknowledges_a_message_with_its_arguments(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        client = await connect(js, url, transport)
        assert await client.emit("message-with-ack", *MIXED_ARGS, ack=True) == list(MIXED_ARGS)
        assert await client.emit("message-with-ack", ack=True) == []
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
    server = realtime_app()
    async with lifted(server.app, js) as url:
        client = await connect(js, url, transport, namespace="/custom")
        sid = (await client.engine_state()).sid
        assert client.id == f"/custom#{sid}"
        assert server.socket(client.id).namespace.name == "/custom"
        assert await client.next_event("auth") == [{}]
        await client.emit("message", *MIXED_ARGS)
        assert await client.next_event("message-back") == list(MIXED_ARGS)
        assert await client.emit("message-with-ack", "x", b"y", ack=True) == ["x", b"y"]


async def test_an_unknown_namespace_is_refused_as_invalid(js: JsDriver, transport: str) -> None:
    async with lifted(steady_reference_app(), js) as url:
        with pytest.raises(JsConnectError) as refused:
            await js.connect("v2", url, namespace="/nope", options=TRANSPORTS[transport])
        # socket.io 4 sends this one as an object, to protocol-v4 clients too
        assert refused.value.error == {"message": "Invalid namespace"}


# ------------------------------------------------------------------------------------------------ heartbeat
async def test_client_pings_keep_a_quiet_connection_alive(js: JsDriver, transport: str) -> None:
    # Engine.IO v3: the client pings every 300 ms and wants a pong within 200 ms; 1.5 s is five heartbeats
    async with lifted(reference_app(), js) as url:
        client = await connect(js, url, transport, heartbeat=True)
        sid = (await client.engine_state()).sid
        await trio.sleep(1.5)
        for _ in range(4):  # already there, unless the machine is very busy
            await client.next_event("pong")
        await client.expect_no_event("disconnect", within=0)
        assert await client.emit("message-with-ack", "alive", ack=True) == ["alive"]
        state = await client.engine_state()
        assert (state.connected, state.sid) == (True, sid)


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
        assert await server.disconnect_reason(client.id) == "client namespace disconnect"
