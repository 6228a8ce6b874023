"""Many clients of every kind in one room: a broadcast is encoded once per protocol and reaches each once."""

from __future__ import annotations

from typing import Any

import trio

from tests.compat.apps import lifted, realtime_app
from tests.support.jsclient import ClientKind, JsDriver, JsSocket

#: 30 room members: socket.io-client 4 over websocket and over polling, 2.0.3 over both.
CROWD: list[tuple[ClientKind, dict[str, Any]]] = (
    [("v4", {"transports": ["websocket"]})] * 10
    + [("v4", {"transports": ["polling"]})] * 10
    + [("v2", {"transports": ["websocket"]})] * 5
    + [("v2", {"transports": ["polling"]})] * 5
)
#: and a few clients outside the room
OUTSIDERS: list[tuple[ClientKind, dict[str, Any]]] = [
    ("v4", {"transports": ["websocket"]}),
    ("v4", {"transports": ["polling"]}),
    ("v2", {"transports": ["websocket"]}),
]


async def test_thirty_mixed_clients_in_a_room_each_get_a_broadcast_exactly_once(js: JsDriver) -> None:
    server = realtime_app()
    async with lifted(server.app, js) as url:
        members: list[JsSocket] = []
        outsiders: list[JsSocket] = []

        async def arrive(kind: ClientKind, options: dict[str, Any], into: list[JsSocket], room: str | None) -> None:
            client = await js.connect(kind, url, options=options)
            if room is not None:
                assert await client.emit("join", room, ack=True) == [room]
            into.append(client)

        async with trio.open_nursery() as nursery:
            for kind, options in CROWD:
                nursery.start_soon(arrive, kind, options, members, "crowd")
            for kind, options in OUTSIDERS:
                nursery.start_soon(arrive, kind, options, outsiders, None)
        assert len(server.io.sockets) == 33

        # binary and text, to Engine.IO v3 and v4 sessions, over websocket and (base64) polling at once
        assert server.io.to("crowd").emit("announcement", "all aboard", {"ticket": b"\x00\xff\x04"}) == 30

        async def gets_it_once(client: JsSocket) -> None:
            assert await client.next_event("announcement") == ["all aboard", {"ticket": b"\x00\xff\x04"}]
            await client.expect_no_event("announcement", within=0.3)

        async def hears_nothing(client: JsSocket) -> None:
            await client.expect_no_event("announcement", within=0.3)

        async with trio.open_nursery() as nursery:
            for client in members:
                nursery.start_soon(gets_it_once, client)
            for client in outsiders:
                nursery.start_soon(hears_nothing, client)
