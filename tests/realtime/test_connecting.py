"""Connecting: the Engine.IO handshake, namespace semantics per revision, middleware and refusals."""

from __future__ import annotations

import httpx
import orjson
import pytest
import trio
import trio.testing

from tests.support.apps import reference_app
from tests.support.memory import expect, handshake
from tests.support.raw import raw_polling, raw_websocket
from trisails import App, ConnectionRefused, Settings, Socket, SocketSettings
from trisails.protocol import engineio as eio
from trisails.testing import serve_in_memory


async def test_a_sails_io_js_client_is_connected_to_the_main_namespace_at_once(reference_url: str) -> None:
    # Engine.IO v3 (sails.io.js 1.2.1): the open packet, then a bare "40" the client never asked for.
    async with raw_websocket(reference_url, eio_revision=3, __sails_io_sdk_version="1.2.1") as ws:
        handshake = await ws.handshake()
        assert list(handshake) == ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]
        assert handshake["upgrades"] == []
        assert (handshake["pingInterval"], handshake["pingTimeout"], handshake["maxPayload"]) == (300, 200, 1000000)
        assert len(handshake["sid"]) == 20
        await ws.expect("40")
        await ws.expect('42["auth",{}]')


async def test_a_v3_socket_id_is_the_engine_sid() -> None:
    app = reference_app()
    seen: list[str] = []
    app.io.on("connection", lambda socket: seen.append(socket.id))
    async with app.lifted() as url, raw_websocket(url, eio_revision=3) as ws:
        sid = (await ws.handshake())["sid"]
        await ws.expect("40")
        assert seen == [sid]


async def test_a_v4_client_asks_for_the_namespace_and_gets_its_own_socket_id(reference_url: str) -> None:
    async with raw_websocket(reference_url, eio_revision=4) as ws:
        sid = (await ws.handshake())["sid"]
        await ws.send('40{"token":"abc"}')
        connect = await ws.receive()
        assert isinstance(connect, str) and connect.startswith("40{")
        socket_id = orjson.loads(connect[2:])["sid"]
        assert socket_id != sid and len(socket_id) == 20
        # the reference app greets with the auth payload it received
        await ws.expect('42["auth",{"token":"abc"}]')


async def test_a_custom_namespace_answers_with_its_name(reference_url: str) -> None:
    async with raw_websocket(reference_url, eio_revision=4) as ws:
        await ws.handshake()
        await ws.send("40/custom,")
        connect = await ws.receive()
        assert isinstance(connect, str) and connect.startswith('40/custom,{"sid":"')
        await ws.expect('42/custom,["auth",{}]')
        await ws.send('42/custom,["message","hi"]')
        await ws.expect('42/custom,["message-back","hi"]')


async def test_a_v3_client_joins_a_namespace_with_a_query_that_becomes_its_auth() -> None:
    # socket.io-client 2.x has no auth payload; like socket.io, we hand the namespace query over as auth.
    app = reference_app()
    seen: list[tuple[str, dict[str, str], dict[str, str]]] = []
    app.io.of("/custom").on(
        "connection", lambda socket: seen.append((socket.id, socket.handshake.query, socket.handshake.auth))
    )
    async with app.lifted() as url, raw_websocket(url, eio_revision=3, x="1") as ws:
        sid = (await ws.handshake())["sid"]
        await ws.expect("40")
        await ws.expect('42["auth",{}]')
        await ws.send("40/custom?token=t1,")
        await ws.expect("40/custom,")
        await ws.expect('42/custom,["auth",{"token":"t1"}]')
        socket_id, query, auth = seen[0]
        assert socket_id == f"/custom#{sid}"
        assert query["x"] == "1" and auth == {"token": "t1"}


async def test_an_unknown_namespace_gets_a_connect_error(reference_url: str) -> None:
    async with raw_websocket(reference_url, eio_revision=4) as ws:
        await ws.handshake()
        await ws.send("40/nope,")
        await ws.expect('44/nope,{"message":"Invalid namespace"}')
    async with raw_websocket(reference_url, eio_revision=3) as ws:
        await ws.handshake()
        await ws.expect("40")
        await ws.expect('42["auth",{}]')
        await ws.send("40/nope,")
        await ws.expect('44/nope,{"message":"Invalid namespace"}')  # an object for v3 clients too, as socket.io sends it


async def test_middleware_can_refuse_a_socket_with_a_message_and_data() -> None:
    app = App()

    @app.io.use
    async def only_with_token(socket: Socket) -> None:
        if socket.handshake.auth.get("token") != "secret":
            raise ConnectionRefused("Not authorized", {"hint": "send a token"})
        socket.data["user"] = "ada"

    greeted: list[str] = []
    app.io.on("connection", lambda socket: greeted.append(socket.data["user"]))
    async with app.lifted() as url:
        async with raw_websocket(url) as ws:
            await ws.handshake()
            await ws.send('40{"token":"wrong"}')
            await ws.expect('44{"message":"Not authorized","data":{"hint":"send a token"}}')
        async with raw_websocket(url) as ws:
            await ws.handshake()
            await ws.send('40{"token":"secret"}')
            assert (await ws.receive()).startswith("40{")  # type: ignore[union-attr]
        # a socket.io-client 2.x (Engine.IO v3) gets the refusal's data, or its message when it has none
        async with raw_websocket(url, eio_revision=3) as ws:
            await ws.handshake()
            await ws.expect('44{"hint":"send a token"}')
    assert greeted == ["ada"]


async def test_events_sent_right_behind_the_connect_wait_for_slow_middleware_and_are_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App()

    @app.io.use
    async def slow_middleware(socket: Socket) -> None:
        await trio.sleep(2)  # a database lookup, say

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("ping-me", lambda n: n + 1)

    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await handshake(ws)
        asked = trio.current_time()
        await ws.send("40")
        await ws.send('421["ping-me",41]')
        assert (await ws.receive()).startswith("40{")  # type: ignore[union-attr]
        assert trio.current_time() - asked == pytest.approx(2)
        await expect(ws, "431[42]")
        await ws.aclose()


async def test_a_client_that_never_connects_a_namespace_is_closed_at_the_connect_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App(Settings(sockets=SocketSettings(connect_timeout=10000)))  # socket.io waits 45 s by default
    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await handshake(ws)
        opened = trio.current_time()
        assert await ws.wait_closed() == 1000
        assert trio.current_time() - opened == pytest.approx(10.0)
        await trio.testing.wait_all_tasks_blocked()
        assert app.statistics()["sessions"] == 0


async def test_a_client_that_connects_a_namespace_in_time_is_not_closed_at_the_connect_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App(Settings(sockets=SocketSettings(connect_timeout=10000, ping_interval=25000, ping_timeout=20000)))
    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await handshake(ws)
        opened = trio.current_time()
        await trio.sleep(9.99)
        await ws.send("40")
        assert (await ws.receive()).startswith("40{")  # type: ignore[union-attr]
        await expect(ws, "2")  # the first heartbeat, long after the connect timeout
        assert trio.current_time() - opened == pytest.approx(25.0)
        assert app.statistics()["sessions"] == 1
        await ws.aclose()


async def test_a_connection_that_stops_halfway_through_its_request_head_is_hung_up_on_at_the_handshake_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App(Settings(sockets=SocketSettings(handshake_timeout=3000)))
    async with serve_in_memory(app) as server:
        stream = await server.listener.connect()
        await stream.send_all(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
        sent = trio.current_time()
        while await stream.receive_some(1024):
            pass  # the app hangs up: receive_some returns b""
        assert trio.current_time() - sent == pytest.approx(3.0)
        await stream.aclose()
        assert (await server.request("GET", "/socket.io/?EIO=4&transport=polling")).status == 200


async def test_handshake_errors_carry_engine_io_codes(reference_url: str) -> None:
    base = reference_url + "/socket.io/"
    async with httpx.AsyncClient() as http:
        cases = {
            "?transport=polling": (400, {"code": 5, "message": "Unsupported protocol version"}),
            "?EIO=abc&transport=polling": (400, {"code": 5, "message": "Unsupported protocol version"}),
            "?EIO=4&transport=carrier-pigeon": (400, {"code": 0, "message": "Transport unknown"}),
            "?EIO=4&transport=polling&sid=nope": (400, {"code": 1, "message": "Session ID unknown"}),
            "?EIO=4&transport=websocket": (400, {"code": 3, "message": "Bad request"}),
        }
        for query, (status, body) in cases.items():
            response = await http.get(base + query)
            assert (response.status_code, response.json()) == (status, body), query
        response = await http.post(base + "?EIO=4&transport=polling", content=b"1:6")
        assert (response.status_code, response.json()) == (400, {"code": 2, "message": "Bad handshake method"})


async def test_a_transport_the_app_does_not_allow_is_unknown() -> None:
    app = App(Settings(sockets=SocketSettings(transports=("websocket",))))
    async with app.lifted() as url, httpx.AsyncClient() as http:
        response = await http.get(url + "/socket.io/?EIO=3&transport=polling")
        assert (response.status_code, response.json()) == (400, {"code": 0, "message": "Transport unknown"})
        async with raw_websocket(url, eio_revision=3) as ws:
            assert (await ws.handshake())["upgrades"] == []


async def test_a_refused_websocket_handshake_gets_a_plain_400(reference_url: str) -> None:
    upgrade = {
        "connection": "Upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with httpx.AsyncClient() as http:
        response = await http.get(reference_url + "/socket.io/?EIO=7&transport=websocket", headers=upgrade)
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/html"
    assert response.text == "Unsupported protocol version"


async def test_a_polling_handshake_offers_the_upgrade(reference_url: str) -> None:
    async with raw_polling(reference_url, eio_revision=3) as polling:
        assert (await polling.open())["upgrades"] == ["websocket"]
        polling.sid = None
        packets = await polling.get()
        assert packets[0].type is eio.PacketType.OPEN
        # the implicit "/" connection follows on the same or the next poll
        if len(packets) == 1:
            polling.sid = orjson.loads(packets[0].data)["sid"]
            packets = await polling.get()
        assert eio.Packet(eio.PacketType.MESSAGE, "0") in packets
