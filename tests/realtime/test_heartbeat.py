"""Heartbeats: each protocol revision pings in its own direction, and a silent peer is dropped.

Every story runs in memory on trio's mock clock (:mod:`trisails.testing`, pytest-trio's
``autojump_clock``): pings and timeouts happen at exactly the moment the settings say, in no real
time. The reference app pings every 300 ms and allows 200 ms for the answer.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.support.apps import reference_app
from tests.support.memory import SESSION_ID_UNKNOWN, MemoryPolling, expect, handshake, message, target
from trisails import App, Settings, SocketSettings
from trisails.protocol import engineio as eio
from trisails.testing import serve_in_memory

INTERVAL, TIMEOUT = 0.3, 0.2  # the reference app's ping_interval and ping_timeout, in seconds


async def test_a_v3_client_that_pings_every_interval_is_answered_at_once_and_kept(autojump_clock: trio.testing.MockClock) -> None:
    async with serve_in_memory(reference_app()) as server:
        ws = await server.websocket(target(eio_revision=3))
        await handshake(ws)
        await expect(ws, "40")
        await expect(ws, '42["auth",{}]')
        for _ in range(20):  # 6 s: twelve times pingInterval + pingTimeout
            await trio.sleep(INTERVAL)
            pinged = trio.current_time()
            await ws.send("2")
            await expect(ws, "3")
            assert trio.current_time() == pinged
        await ws.send('42["message","still here"]')
        await expect(ws, '42["message-back","still here"]')
        await ws.aclose()


async def test_a_v3_client_that_stops_pinging_is_dropped_interval_plus_timeout_after_its_last_ping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = reference_app()
    gone = trio.Event()
    reasons: list[str] = []

    def disconnected(reason: str) -> None:
        reasons.append(reason)
        gone.set()

    app.io.on("connection", lambda socket: socket.on("disconnect", disconnected))
    async with serve_in_memory(app) as server:
        ws = await server.websocket(target(eio_revision=3))
        await handshake(ws)
        await expect(ws, "40")
        await expect(ws, '42["auth",{}]')
        for _ in range(3):
            await trio.sleep(INTERVAL)
            await ws.send("2")
            await expect(ws, "3")
        last_ping = trio.current_time()
        assert await ws.wait_closed() == 1000
        assert trio.current_time() - last_ping == pytest.approx(INTERVAL + TIMEOUT)
        await gone.wait()
        assert trio.current_time() - last_ping == pytest.approx(INTERVAL + TIMEOUT)
    assert reasons == ["ping timeout"]


async def test_the_server_pings_a_v4_client_every_interval_and_keeps_it_while_it_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve_in_memory(reference_app()) as server:
        ws = await server.websocket()
        await handshake(ws)
        answered = trio.current_time()  # the first ping is due pingInterval after the open
        await ws.send("40")
        assert (await ws.receive()).startswith('40{"sid"')  # type: ignore[union-attr]
        await expect(ws, '42["auth",{}]')
        for _ in range(20):
            await expect(ws, "2")
            assert trio.current_time() - answered == pytest.approx(INTERVAL)
            await trio.sleep(TIMEOUT / 2)  # a client that takes its time, within pingTimeout
            await ws.send("3")
            answered = trio.current_time()
        await ws.send('42["message",1]')
        await expect(ws, '42["message-back",1]')
        await ws.aclose()


async def test_a_v4_client_that_does_not_answer_a_ping_is_dropped_ping_timeout_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve_in_memory(reference_app()) as server:
        ws = await server.websocket()
        opened = trio.current_time()
        await handshake(ws)
        await ws.send("40")
        assert (await ws.receive()).startswith('40{"sid"')  # type: ignore[union-attr]
        await expect(ws, '42["auth",{}]')
        await expect(ws, "2")
        assert trio.current_time() - opened == pytest.approx(INTERVAL)
        assert await ws.wait_closed() == 1000
        assert trio.current_time() - opened == pytest.approx(INTERVAL + TIMEOUT)


async def test_a_heartbeat_in_the_wrong_direction_closes_the_connection(autojump_clock: trio.testing.MockClock) -> None:
    async with serve_in_memory(reference_app()) as server:
        ws = await server.websocket()
        await handshake(ws)
        sent = trio.current_time()
        await ws.send("2")  # v4 clients must not ping
        await ws.wait_closed()
        assert trio.current_time() == sent
        ws = await server.websocket(target(eio_revision=3))
        await handshake(ws)
        sent = trio.current_time()
        await ws.send("3")  # v3 clients must not pong
        await ws.wait_closed()
        assert trio.current_time() == sent


async def test_a_polling_client_that_stops_polling_is_gone_at_interval_plus_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """socket.io 4.8.1 drops it with a per-session timer: a GET at pingInterval + pingTimeout is a 400."""
    app = reference_app()
    async with serve_in_memory(app) as server:
        polling = MemoryPolling(server)
        await polling.open()
        opened = trio.current_time()
        await trio.sleep_until(opened + INTERVAL + TIMEOUT - 0.01)
        assert app.statistics()["sessions"] == 1
        assert (await polling.post(message("0"))).status == 200
        await trio.sleep_until(opened + INTERVAL + TIMEOUT)
        await trio.testing.wait_all_tasks_blocked()  # the server's timer, due now too, has run
        gone = await polling.get_response()
        assert (gone.status, gone.body) == SESSION_ID_UNKNOWN
        assert app.statistics()["sessions"] == 0


async def test_a_v4_polling_client_receives_each_ping_through_its_poll_an_interval_after_its_pong(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App(Settings(sockets=SocketSettings(ping_interval=25000, ping_timeout=20000)))  # the defaults of socket.io
    async with serve_in_memory(app) as server:
        polling = MemoryPolling(server)
        await polling.open()
        answered = trio.current_time()  # the first ping is due pingInterval after the open
        await polling.post(message("0"))
        (connected,) = await polling.get()
        assert connected.data.startswith('0{"sid"')  # type: ignore[union-attr]
        for _ in range(10):  # a poll waits at the server until the ping comes to answer it
            assert await polling.get() == [eio.Packet(eio.PacketType.PING)]
            assert trio.current_time() - answered == pytest.approx(25.0)
            await polling.post(eio.Packet(eio.PacketType.PONG))
            answered = trio.current_time()
        assert app.statistics()["sessions"] == 1
