"""Heartbeats: each protocol revision pings in its own direction, and a silent peer is dropped."""

from __future__ import annotations

import trio

from tests.support.apps import reference_app
from tests.support.raw import raw_polling, raw_websocket
from trisails import App, Settings, SocketSettings
from trisails.protocol import engineio as eio


async def test_a_v3_client_pings_and_the_server_answers_pong(reference_url: str) -> None:
    async with raw_websocket(reference_url, eio_revision=3) as ws:
        await ws.handshake()
        await ws.expect("40")
        await ws.expect('42["auth",{}]')
        for _ in range(4):  # well past pingInterval + pingTimeout (500 ms) in all
            await trio.sleep(0.2)
            await ws.send("2")
            await ws.expect("3")
        await ws.send('42["message","still here"]')
        await ws.expect('42["message-back","still here"]')


async def test_a_v3_client_that_stops_pinging_is_dropped() -> None:
    app = reference_app()
    gone: list[str] = []
    app.io.on("connection", lambda socket: socket.on("disconnect", gone.append))
    async with app.lifted() as url, raw_websocket(url, eio_revision=3) as ws:
        await ws.handshake()
        await ws.closed(timeout=3)
        await trio.sleep(0.05)
    assert gone == ["ping timeout"]


async def test_the_server_pings_a_v4_client_and_keeps_it_while_it_answers(reference_url: str) -> None:
    async with raw_websocket(reference_url, eio_revision=4) as ws:
        await ws.handshake()
        await ws.send("40")
        await ws.receive()  # 40{"sid":...}
        await ws.expect('42["auth",{}]')
        for _ in range(4):
            await ws.expect("2", timeout=1)
            await ws.send("3")
        await ws.send('42["message",1]')
        frame = await ws.receive()
        while frame == "2":  # a ping may overtake the answer
            await ws.send("3")
            frame = await ws.receive()
        assert frame == '42["message-back",1]'


async def test_a_v4_client_that_does_not_answer_pings_is_dropped(reference_url: str) -> None:
    async with raw_websocket(reference_url, eio_revision=4) as ws:
        await ws.handshake()
        await ws.send("40")
        await ws.closed(timeout=3)


async def test_a_heartbeat_in_the_wrong_direction_closes_the_connection(reference_url: str) -> None:
    async with raw_websocket(reference_url, eio_revision=4) as ws:
        await ws.handshake()
        await ws.send("2")  # v4 clients must not ping
        await ws.closed()
    async with raw_websocket(reference_url, eio_revision=3) as ws:
        await ws.handshake()
        await ws.send("3")  # v3 clients must not pong
        await ws.closed()


async def test_a_polling_client_that_stops_polling_is_dropped() -> None:
    app = App(Settings(sockets=SocketSettings(ping_interval=100, ping_timeout=100)))
    async with app.lifted() as url, raw_polling(url, eio_revision=4) as polling:
        await polling.open()
        assert app.statistics()["sessions"] == 1
        with trio.fail_after(3):
            while app.statistics()["sessions"]:
                await trio.sleep(0.05)
        response = await polling.client.get(polling.url())
        assert response.status_code == 400
        assert response.json() == {"code": 1, "message": "Session ID unknown"}


async def test_a_v4_polling_client_receives_pings_through_its_polls() -> None:
    app = App(Settings(sockets=SocketSettings(ping_interval=100, ping_timeout=500)))
    async with app.lifted() as url, raw_polling(url, eio_revision=4) as polling:
        await polling.open()
        packets = await polling.get()
        assert packets == [eio.Packet(eio.PacketType.PING)]
        await polling.post(eio.Packet(eio.PacketType.PONG))
        assert await polling.get() == [eio.Packet(eio.PacketType.PING)]
