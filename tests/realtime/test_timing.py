"""Timing, on trio's mock clock through :mod:`trisails.testing`: heartbeats, timeouts and races happen at
exactly the moment the settings say, and the tests take no real time."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.testing

from tests.support.apps import reference_app
from trisails.testing import serve_in_memory

POLLING_V4 = "/socket.io/?EIO=4&transport=polling"


async def test_a_silent_v4_websocket_client_is_dropped_ping_timeout_after_the_ping(autojump_clock: trio.testing.MockClock) -> None:
    app = reference_app()  # ping_interval 300 ms, ping_timeout 200 ms
    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        opened = trio.current_time()
        assert (await ws.receive()).startswith("0{")  # type: ignore[union-attr]
        await ws.send("40")
        assert (await ws.receive()).startswith('40{"sid"')  # type: ignore[union-attr]
        assert await ws.receive() == '42["auth",{}]'
        assert await ws.receive() == "2"
        assert trio.current_time() - opened == pytest.approx(0.3)
        assert await ws.wait_closed() == 1000
        assert trio.current_time() - opened == pytest.approx(0.5)


async def test_a_polling_client_that_stops_answering_pings_is_gone_at_interval_plus_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """socket.io 4.8.1 drops it with a per-session timer: a GET at pingInterval + pingTimeout is a 400."""
    app = reference_app()
    async with serve_in_memory(app) as server:
        opened = trio.current_time()
        handshake = await server.request("GET", POLLING_V4)
        sid = orjson.loads(handshake.body[1:])["sid"]
        await trio.sleep_until(opened + 0.49)
        still = await server.request("POST", f"{POLLING_V4}&sid={sid}", b"40")
        assert still.status == 200
        await trio.sleep_until(opened + 0.5)
        gone = await server.request("GET", f"{POLLING_V4}&sid={sid}")
        assert (gone.status, gone.body) == (400, b'{"code":1,"message":"Session ID unknown"}')
