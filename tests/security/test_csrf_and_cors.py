"""CSRF protection over HTTP and sockets, and CORS headers for other sites' pages."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from tests.support.settings import production_settings
from trisails import App, Model, Required, Settings
from trisails.client import connect


class Message(Model):
    text = Required(str)


def guarded_app(tmp_path: Path, settings: Settings | None = None) -> App:
    settings = settings or Settings()
    settings.security.csrf = True
    settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    app = App(settings)
    app.model(Message)
    app.action("room/say", lambda req, res: res.ok({"said": req.param("text")}))
    return app


async def test_a_state_changing_request_needs_the_sessions_token_over_http_and_sockets(tmp_path: Path) -> None:
    async with guarded_app(tmp_path).lifted() as url, httpx.AsyncClient(base_url=url) as browser:
        granted = await browser.get("/csrfToken")
        token = granted.json()["_csrf"]
        assert granted.headers["cache-control"] == "no-store"
        cookie = granted.headers["set-cookie"].split(";")[0]

        assert (await browser.post("/message", json={"text": "no token"})).status_code == 403
        assert (await browser.post("/message", json={"text": "wrong"}, headers={"x-csrf-token": "nope"})).status_code == 403
        assert (await browser.post("/message", json={"text": "header"}, headers={"x-csrf-token": token})).status_code == 200
        assert (await browser.post("/message", json={"text": "param", "_csrf": token})).status_code == 200
        assert (await browser.get("/message")).status_code == 200  # reading needs no token

        async with connect(url, headers={"cookie": cookie}) as socket:
            body, jwr = await socket.post("/message", {"text": "socket, no token"})
            assert (jwr.status_code, body) == (403, "Forbidden")
            _, jwr = await socket.request("post", "/message", {"text": "socket"}, headers={"x-csrf-token": token})
            assert jwr.status_code == 200
            _, jwr = await socket.post("/room/say", {"text": "hi", "_csrf": token})
            assert jwr.status_code == 200

        texts = sorted(m["text"] for m in (await browser.get("/message")).json())
        assert texts == ["header", "param", "socket"]


async def test_a_forged_request_changes_nothing_and_tells_nobody(tmp_path: Path) -> None:
    async with guarded_app(tmp_path).lifted() as url:
        async with connect(url) as watcher, connect(url) as attacker:
            heard: list[object] = []
            watcher.on("message", heard.append)
            await watcher.get("/message")
            for verb in ("post", "put", "patch", "delete"):
                path = "/message" if verb == "post" else "/message/1"
                _, jwr = await attacker.request(verb, path, {"text": "forged"})
                assert jwr.status_code == 403, verb
            assert await Message.count() == 0
            await trio.sleep(0.1)
            assert heard == []


async def test_the_token_is_never_handed_out_over_a_socket(tmp_path: Path) -> None:
    async with guarded_app(tmp_path).lifted() as url, connect(url) as socket:
        body, jwr = await socket.get("/csrfToken")
        assert jwr.status_code == 400
        assert "send an HTTP request" in body
    async with guarded_app(tmp_path, production_settings()).lifted() as url, connect(url) as socket:
        assert (await socket.get("/csrfToken"))[1].status_code == 404


async def test_without_csrf_on_there_is_no_token_route_and_no_check(tmp_path: Path) -> None:
    settings = Settings()
    settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    app = App(settings)
    app.model(Message)
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/csrfToken")).status_code == 404
        assert (await http.post("/message", json={"text": "fine"})).status_code == 200


async def test_pages_of_allowed_sites_get_cors_headers_and_others_none() -> None:
    settings = Settings()
    settings.security.cors_allow_origins = ("https://app.example.com",)
    settings.security.cors_allow_credentials = True
    app = App(settings)
    app.action("api/ping", lambda req, res: res.ok("pong"))
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        preflight = await http.options(
            "/api/ping",
            headers={"origin": "https://app.example.com", "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "x-csrf-token" in preflight.headers["access-control-allow-headers"]

        allowed = await http.get("/api/ping", headers={"origin": "https://app.example.com"})
        assert allowed.text == "pong"
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        assert allowed.headers["vary"] == "Origin"

        other = await http.get("/api/ping", headers={"origin": "https://evil.example.com"})
        assert other.text == "pong" and "access-control-allow-origin" not in other.headers
        refused = await http.options(
            "/api/ping", headers={"origin": "https://evil.example.com", "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in refused.headers
