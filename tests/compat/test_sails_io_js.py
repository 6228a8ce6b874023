"""sails.io.js 1.2.1 in Node (over its own socket.io-client 2.0.3) against trisails: connecting and pushes.

Virtual requests (``io.socket.get`` & co.) need the router and are not part of these stories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.compat.apps import Journal, lifted, steady_reference_app
from tests.support.jsclient import JsDriver
from trisails import App, Socket


@dataclass
class PushingApp:
    app: App
    connections: Journal[Socket]


def pushing_app(**sockets: Any) -> PushingApp:
    """Greets each socket with ``welcome``; a raw ``poke`` event is answered with ``poked`` to the poker and
    ``someone-poked`` to everyone else, and acked with ``"ok"``."""
    pushing = PushingApp(steady_reference_app(**sockets), Journal("connections"))

    @pushing.app.io.on("connection")
    def greet(socket: Socket) -> None:
        pushing.connections.record(socket)
        socket.emit("welcome", {"id": socket.id, "rooms": sorted(socket.rooms)})

        @socket.on("poke")
        def poke(*args: Any) -> str:
            socket.emit("poked", *args)
            socket.broadcast.emit("someone-poked", socket.id)
            return "ok"

    return pushing


@pytest.fixture
def pushing() -> PushingApp:
    return pushing_app()


async def test_sails_io_js_connects_over_websocket_by_default(js: JsDriver, pushing: PushingApp) -> None:
    async with lifted(pushing.app, js) as url:
        client = await js.connect("sails", url)
        assert (await client.engine_state()).transport == "websocket"
        [socket] = await pushing.connections.wait_for(1)
        query = socket.handshake.query
        assert (query["EIO"], query["transport"]) == ("3", "websocket")
        assert query["__sails_io_sdk_version"] == "1.2.1"
        assert query["__sails_io_sdk_platform"] == "node"
        assert query["__sails_io_sdk_language"] == "javascript"


async def test_its_socket_id_is_the_engine_sid(js: JsDriver, pushing: PushingApp) -> None:
    async with lifted(pushing.app, js) as url:
        client = await js.connect("sails", url)
        state = await client.engine_state()
        [socket] = await pushing.connections.wait_for(1)
        assert client.id == state.sid == socket.id
        assert len(state.sid or "") == 20


async def test_it_receives_the_push_the_server_sends_on_connection(js: JsDriver, pushing: PushingApp) -> None:
    async with lifted(pushing.app, js) as url:
        client = await js.connect("sails", url, listen=["welcome"])
        # every socket is in the room named after its own id
        assert await client.next_event("welcome") == [{"id": client.id, "rooms": [client.id]}]


async def test_a_raw_event_gets_a_push_back_and_one_to_the_others(js: JsDriver, pushing: PushingApp) -> None:
    async with lifted(pushing.app, js) as url:
        alice = await js.connect("sails", url, name="alice", listen=["poked", "someone-poked"])
        bob = await js.connect("sails", url, name="bob", listen=["poked", "someone-poked"])
        assert await alice.emit("poke", {"hard": True}, b"\x01\x02", ack=True) == ["ok"]
        assert await alice.next_event("poked") == [{"hard": True}, b"\x01\x02"]
        assert await bob.next_event("someone-poked") == [alice.id]
        await alice.expect_no_event("someone-poked")
        await bob.expect_no_event("poked", within=0)


async def test_it_hears_the_events_it_listens_to_and_only_those(js: JsDriver, pushing: PushingApp) -> None:
    async with lifted(pushing.app, js) as url:
        client = await js.connect("sails", url)
        await client.listen("news")
        pushing.app.io.emit("gossip", "psst")  # not listened to (yet): sails.io.js drops it
        assert pushing.app.io.emit("news", "extra!", {"n": 1, "pic": b"\x89PNG"}) == 1
        assert await client.next_event("news") == ["extra!", {"n": 1, "pic": b"\x89PNG"}]
        await client.listen("gossip")
        pushing.app.io.emit("gossip", "louder")
        assert await client.next_event("gossip") == ["louder"]
        await client.expect_no_event("gossip")


async def test_it_connects_over_polling_when_asked(js: JsDriver, pushing: PushingApp) -> None:
    async with lifted(pushing.app, js) as url:
        client = await js.connect("sails", url, options={"transports": ["polling"]}, listen=["welcome", "poked"])
        state = await client.engine_state()
        assert state.transport == "polling"
        [socket] = await pushing.connections.wait_for(1)
        assert (socket.handshake.query["transport"], socket.handshake.query.get("b64")) == ("polling", "1")
        assert client.id == state.sid == socket.id
        assert await client.next_event("welcome") == [{"id": client.id, "rooms": [client.id]}]
        assert await client.emit("poke", "through polling", b"\xfe", ack=True) == ["ok"]
        assert await client.next_event("poked") == ["through polling", b"\xfe"]
        assert (await client.engine_state()).transport == "polling"
