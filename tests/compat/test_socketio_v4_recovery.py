"""Connection state recovery with the real socket.io-client 4.8.1: it comes back as itself, and misses nothing.

The server drops the client's transport (as a network blip would); socket.io-client reconnects by itself
with the pid and the last offset it saw, and trisails gives it back its id, rooms and ``data`` and the
broadcasts it missed, in order, before ``connect`` (``socket.recovered`` is true on both sides).
"""

from __future__ import annotations

from typing import Any

import trio

from tests.compat.apps import SERVER_WAIT, connect_on, lifted, steady_reference_app
from tests.support.jsclient import JsDriver, JsSocket
from trisails import App, Socket

FAST_RECONNECT = {"reconnectionDelay": 50, "reconnectionDelayMax": 100}


def lobby_app(**sockets: Any) -> tuple[App, dict[str, Socket]]:
    app = steady_reference_app(recovery=True, **sockets)
    seen: dict[str, Socket] = {}

    @app.io.on("connection")
    def connected(socket: Socket) -> None:
        seen[socket.id] = socket

        @socket.on("join")
        def join(name: str) -> str:
            socket.data["name"] = name
            socket.join("lobby")
            return "joined"

    return app, seen


async def blip(app: App, socket: Socket, client: JsSocket) -> None:
    """The network under ``socket`` goes away for a moment: its transport closes on the server's side."""
    client.discard("connect")  # the first connection's: the next one is the reconnection's
    socket._connection.session.close("transport close", flush=False)
    with trio.fail_after(SERVER_WAIT):
        while socket.connected:
            await trio.sleep(0.01)


async def joined(js: JsDriver, url: str, seen: dict[str, Socket], transport: str = "websocket") -> tuple[JsSocket, Socket]:
    client = await connect_on(js, "v4", url, transport, options=FAST_RECONNECT)
    assert await client.emit("join", "ann", ack=True) == ["joined"]
    return client, seen[client.id]


async def test_socket_io_client_4_gets_back_its_id_rooms_data_and_the_broadcasts_it_missed(js: JsDriver, transport: str) -> None:
    app, seen = lobby_app()
    async with lifted(app, js) as url:
        client, socket = await joined(js, url, seen, transport)
        app.io.to("lobby").emit("news", "before")
        before = await client.next_event("news")
        assert before[0] == "before" and isinstance(before[1], str), before  # the offset, as Socket.IO sends it

        await blip(app, socket, client)
        app.io.to("lobby").emit("news", "missed 1")
        app.io.to("elsewhere").emit("news", "not for ann")
        app.io.emit("news", "missed 2")

        assert (await client.next_event("connect", timeout=SERVER_WAIT)) == []
        assert [(await client.next_event("news"))[0] for _ in range(2)] == ["missed 1", "missed 2"]
        state = await client.engine_state()
        assert state.recovered and state.socket_id == socket.id
        again = seen[socket.id]
        assert again is not socket and again.recovered and again.data == {"name": "ann"} and "lobby" in again.rooms
        app.io.to("lobby").emit("news", "live")
        assert (await client.next_event("news"))[0] == "live"
        await client.expect_no_event("news", within=0.2)


async def test_a_client_that_comes_back_too_late_is_a_new_socket(js: JsDriver) -> None:
    app, seen = lobby_app(recovery_max_disconnection=100)
    async with lifted(app, js) as url:
        client = await connect_on(js, "v4", url, "websocket", options={"reconnectionDelay": 400, "randomizationFactor": 0})
        assert await client.emit("join", "ann", ack=True) == ["joined"]
        socket = seen[client.id]
        app.io.to("lobby").emit("news", "before")
        await client.next_event("news")
        await blip(app, socket, client)  # lost, but it comes back only 400 ms later: its state was kept 100 ms
        app.io.to("lobby").emit("news", "missed")
        await client.next_event("connect", timeout=SERVER_WAIT)
        state = await client.engine_state()
        assert not state.recovered and state.socket_id != socket.id
        assert not seen[state.socket_id].recovered and seen[state.socket_id].rooms == {state.socket_id}
        await client.expect_no_event("news", within=0.2)


async def test_a_client_that_disconnects_on_purpose_is_a_new_socket_when_it_connects_again(js: JsDriver) -> None:
    app, seen = lobby_app()
    async with lifted(app, js) as url:
        client, socket = await joined(js, url, seen)
        app.io.to("lobby").emit("news", "before")
        await client.next_event("news")
        await client.disconnect()  # "client namespace disconnect": nothing is kept
        await client.reconnect()
        state = await client.engine_state()
        assert not state.recovered and state.socket_id != socket.id
