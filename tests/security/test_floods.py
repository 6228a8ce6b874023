"""Floods from one client: the limits that are on by default keep everyone else served."""

from __future__ import annotations

import httpx
import trio

from trisails import App
from trisails.client import connect

#: A second loopback address: the attacker's, so the server sees two different clients.
ATTACKER = "127.0.0.2"


async def test_one_address_flooding_handshakes_cannot_lock_out_everyone_else() -> None:
    """An attacker opens polling handshakes from one address and never comes back to them (each one
    holds a session until it times out). With the default settings it is refused past
    ``max_connections_per_ip``, and a visitor from another address still connects."""
    app = App()
    app.action("say/hello", lambda req, res: res.ok("hello"))
    cap = app.settings.sockets.max_connections_per_ip
    assert cap == 1_000  # on by default
    async with app.lifted() as url:
        transport = httpx.AsyncHTTPTransport(local_address=ATTACKER)
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=url, transport=transport, limits=limits) as attacker:
            statuses: list[int] = []

            async def handshakes(count: int) -> None:
                for _ in range(count):
                    response = await attacker.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
                    statuses.append(response.status_code)

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for _ in range(16):
                        nursery.start_soon(handshakes, (cap + 16 * 4) // 16)
            assert statuses.count(200) == cap
            assert set(statuses) == {200, 429}
        async with connect(url) as visitor:  # from 127.0.0.1
            assert (await visitor.get("/say/hello"))[0] == "hello"
