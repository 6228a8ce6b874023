"""Limits: every one a setting, and going past one costs only the client that did."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from trisails import App, ConfigError, Request, Response, RoomLimitReached, Settings
from trisails.client import connect


def limited_app(**sockets: Any) -> App:
    settings = Settings()
    for name, value in sockets.items():
        setattr(settings.sockets, name, value)
    app = App(settings)
    app.action("say/hello", lambda req, res: res.ok("hello"))

    @app.action("rooms/join")
    async def join(req: Request, res: Response) -> None:
        req.app.sockets.join(req, [f"room-{n}" for n in range(int(req.param("count")))])
        res.ok(sorted(req.app.sockets.rooms_of(req)))

    return app


async def handshake(url: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})


async def test_a_socket_over_its_request_rate_gets_429_and_stays_connected() -> None:
    async with limited_app(request_rate=1.0, request_burst=3).lifted() as url:
        async with connect(url) as eager, connect(url) as calm:
            answers = [await eager.get("/say/hello") for _ in range(5)]
            assert [jwr.status_code for _, jwr in answers] == [200, 200, 200, 429, 429]
            refused_body, refused = answers[3]
            assert refused_body == "Too Many Requests"
            assert 0 < float(refused.headers["retry-after"]) <= 1
            assert (await calm.get("/say/hello"))[1].status_code == 200  # the bucket is per socket
            await trio.sleep(1.1)
            assert (await eager.get("/say/hello"))[1].status_code == 200
            assert eager.connected


async def test_past_max_connections_new_clients_get_503_until_one_leaves() -> None:
    async with limited_app(max_connections=2).lifted() as url:
        async with connect(url) as first:
            async with connect(url):
                refused = await handshake(url)
                assert (refused.status_code, refused.json()) == (503, {"code": 4, "message": "Too many connections"})
                assert (await first.get("/say/hello"))[0] == "hello"
            with trio.fail_after(5):
                while (await handshake(url)).status_code != 200:
                    await trio.sleep(0.05)


async def test_one_address_may_hold_at_most_max_connections_per_ip() -> None:
    async with limited_app(max_connections_per_ip=1).lifted() as url:
        async with connect(url):
            refused = await handshake(url)
            assert refused.status_code == 429
            assert refused.json()["message"] == "Too many connections from this address"


async def test_joining_past_max_rooms_per_socket_is_refused_with_429_and_joins_nothing() -> None:
    async with limited_app(max_rooms_per_socket=5).lifted() as url, connect(url) as socket:
        body, jwr = await socket.get("/rooms/join?count=4")  # its own id room makes 5
        assert jwr.status_code == 200 and len(body) == 5
        body, jwr = await socket.get("/rooms/join?count=6")
        assert jwr.status_code == 429
        assert "max_rooms_per_socket (5)" in body
        body, _ = await socket.get("/rooms/join?count=4")  # rooms it is in already cost nothing
        assert len(body) == 5


def test_the_room_limit_is_a_named_error_for_code_that_joins_rooms() -> None:
    assert issubclass(RoomLimitReached, Exception) and RoomLimitReached.http_status == 429


async def test_a_connection_that_never_finishes_its_request_head_is_closed() -> None:
    async with limited_app(handshake_timeout=200).lifted() as url:
        host, port = url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
            with trio.fail_after(3):
                while await stream.receive_some(1024):
                    pass  # the server closes the connection: receive_some returns b""
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/say/hello")).text == "hello"


@pytest.mark.parametrize(
    "name, value",
    [("request_rate", 0), ("request_burst", 0), ("max_connections", 0), ("max_rooms_per_socket", 0), ("max_connections_per_ip", -1)],
)
def test_limits_that_would_refuse_everyone_are_config_errors(name: str, value: int) -> None:
    settings = Settings()
    setattr(settings.sockets, name, value)
    with pytest.raises(ConfigError, match=name):
        settings.validate()
