"""Who may open a socket: ``only_allow_origins`` and ``before_connect``, checked at every new handshake."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from tests.support.settings import production_settings
from trisails import App, ConfigError, Handshake, Settings
from trisails.client import connect

SITE = "https://chat.example.com"


def app_allowing(*origins: str, **sockets: Any) -> App:
    settings = Settings()
    settings.sockets.only_allow_origins = origins
    for name, value in sockets.items():
        setattr(settings.sockets, name, value)
    app = App(settings)
    app.action("say/hello", lambda req, res: res.ok("hello"))
    return app


async def polling_handshake(url: str, origin: str | None) -> httpx.Response:
    headers = {"origin": origin} if origin is not None else {}
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"}, headers=headers)


async def websocket_status(url: str, origin: str | None) -> int:
    """The HTTP status a websocket upgrade to the Engine.IO endpoint gets: 101 when it is accepted."""
    host, port = url.removeprefix("http://").split(":")
    lines = [
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                head += chunk
    return int(head.split(b" ", 2)[1])


async def test_a_page_from_an_allowed_origin_connects_and_others_get_403() -> None:
    async with app_allowing(SITE, "http://localhost:1337").lifted() as url:
        for origin in (SITE, "http://localhost:1337"):
            assert (await polling_handshake(url, origin)).status_code == 200
            assert await websocket_status(url, origin) == 101
        for origin in ("https://evil.example.com", "https://chat.example.com:8443", "http://chat.example.com", "null"):
            refused = await polling_handshake(url, origin)
            assert (refused.status_code, refused.json()) == (403, {"code": 4, "message": "Forbidden"}), origin
            assert await websocket_status(url, origin) == 403, origin


async def test_clients_without_an_origin_header_are_let_in_unless_the_app_says_otherwise() -> None:
    async with app_allowing(SITE).lifted() as url:
        assert (await polling_handshake(url, None)).status_code == 200
        async with connect(url) as python_client:  # sends no Origin, as Node and native clients do
            assert (await python_client.get("/say/hello"))[0] == "hello"
    async with app_allowing(SITE, allow_missing_origin=False).lifted() as url:
        assert (await polling_handshake(url, None)).status_code == 403
        assert await websocket_status(url, None) == 403


async def test_a_refused_client_does_not_disturb_a_connected_one() -> None:
    async with app_allowing(SITE).lifted() as url:
        async with connect(url, headers={"origin": SITE}) as member:
            for _ in range(5):
                assert await websocket_status(url, "https://evil.example.com") == 403
            assert (await member.get("/say/hello"))[0] == "hello"


async def test_before_connect_decides_who_connects() -> None:
    seen: list[Handshake] = []

    async def before_connect(handshake: Handshake) -> bool:
        seen.append(handshake)
        await trio.sleep(0)
        return handshake.query.get("token") == "letmein"

    async with app_allowing(before_connect=before_connect).lifted() as url:
        async with connect(url, query={"token": "letmein"}) as socket:
            assert (await socket.get("/say/hello"))[0] == "hello"
        assert (await polling_handshake(url, None)).status_code == 403
        assert await websocket_status(url, SITE) == 403
        assert seen[0].query["token"] == "letmein"


async def test_a_before_connect_that_fails_refuses_the_client_and_nothing_else() -> None:
    def before_connect(handshake: Handshake) -> bool:
        raise RuntimeError("the auth service is down")

    async with app_allowing(before_connect=before_connect).lifted() as url:
        assert (await polling_handshake(url, SITE)).status_code == 403
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/say/hello")).text == "hello"  # plain HTTP is not a socket handshake


def test_origins_must_be_written_as_origins() -> None:
    for bad in ("https://example.com/", "example.com", "https://example.com/path", "ftp://example.com"):
        settings = Settings()
        settings.sockets.only_allow_origins = (bad,)
        with pytest.raises(ConfigError, match="is not an origin"):
            settings.validate()


async def test_production_refuses_to_lift_without_a_secret_and_origins() -> None:
    app = App(Settings(environment="production"))
    with pytest.raises(ConfigError, match="session secret.*and the pages allowed to open sockets"):
        async with app.lifted():
            pass
    settings = production_settings()
    settings.sockets.only_allow_origins = ()
    settings.sockets.before_connect = lambda handshake: True
    async with App(settings).lifted() as url:  # a before_connect hook is a decision too
        assert url.startswith("http://127.0.0.1:")


def test_an_origin_naming_its_scheme_default_port_is_refused_but_other_ports_are_fine() -> None:
    for bad in ("https://example.com:443", "http://example.com:80"):
        settings = Settings()
        settings.sockets.only_allow_origins = (bad,)
        with pytest.raises(ConfigError, match="default port"):
            settings.validate()
    settings = Settings()
    settings.sockets.only_allow_origins = ("http://example.com:443", "https://example.com:80", "https://example.com:8443")
    settings.validate()
