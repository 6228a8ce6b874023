"""Sessions: one signed cookie shares ``req.session`` between a browser's HTTP requests and its socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from trisails import App, ConfigError, Request, Response, Settings
from trisails.client import connect
from trisails.web.sessions import MemoryStore


def counter_app(settings: Settings | None = None) -> App:
    """The spec's session story: each request adds one to a counter kept in the session."""
    app = App(settings)

    @app.action("chat/setsess")
    async def setsess(req: Request, res: Response) -> None:
        req.session["counter"] = req.session.get("counter", 0) + 1
        res.ok({"counter": req.session["counter"]})

    @app.action("chat/peek")
    def peek(req: Request, res: Response) -> None:  # reads only: nothing to save
        res.ok({"session": None if req.session is None else dict(req.session)})

    return app


def session_cookie(response: httpx.Response) -> str:
    return response.headers["set-cookie"].split(";")[0]


async def test_http_and_a_socket_with_the_same_cookie_share_one_session() -> None:
    async with counter_app().lifted() as url, httpx.AsyncClient(base_url=url) as http:
        first = await http.get("/chat/setsess")
        assert first.json() == {"counter": 1}
        cookie = session_cookie(first)
        assert cookie.startswith("sails.sid=s%3A")
        set_cookie = first.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "Path=/" in set_cookie and "SameSite=Lax" in set_cookie
        async with connect(url, headers={"cookie": cookie}) as socket:
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 2}
        again = await http.get("/chat/setsess", headers={"cookie": cookie})
        assert again.json() == {"counter": 3}
        assert "set-cookie" not in again.headers  # the browser has it already


async def test_a_socket_without_a_cookie_keeps_a_session_of_its_own() -> None:
    async with counter_app().lifted() as url:
        async with connect(url) as socket, connect(url) as other:
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 1}
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 2}
            assert (await other.get("/chat/setsess"))[0] == {"counter": 1}


async def test_a_forged_or_tampered_cookie_gets_a_new_empty_session() -> None:
    async with counter_app().lifted() as url, httpx.AsyncClient(base_url=url) as http:
        cookie = session_cookie(await http.get("/chat/setsess"))
        assert (await http.get("/chat/setsess", headers={"cookie": cookie})).json() == {"counter": 2}
        name, _, value = cookie.partition("=")
        tampered = f"{name}={value[:-2]}{'A' if value[-2] != 'A' else 'B'}{value[-1]}"
        forged = f"{name}=s%3Asomeone-elses-session.bm90IGEgc2lnbmF0dXJl"
        for bad in (tampered, forged, f"{name}=garbage", 'sails.sid="unterminated'):
            response = await http.get("/chat/setsess", headers={"cookie": bad})
            assert response.json() == {"counter": 1}, bad
            assert session_cookie(response) != cookie
        async with connect(url, headers={"cookie": tampered}) as socket:
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 1}
        assert (await http.get("/chat/setsess", headers={"cookie": cookie})).json() == {"counter": 3}


async def test_a_session_signed_with_another_secret_is_not_accepted() -> None:
    one, two = Settings(), Settings()
    one.session.secret, two.session.secret = "first secret " * 4, "second secret " * 4
    async with counter_app(one).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        cookie = session_cookie(await http.get("/chat/setsess"))
    async with counter_app(two).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/chat/setsess", headers={"cookie": cookie})).json() == {"counter": 1}


async def test_nosession_as_a_header_turns_sessions_off_for_the_socket() -> None:
    async with counter_app().lifted() as url:
        async with connect(url, headers={"nosession": "true"}) as socket:
            assert (await socket.get("/chat/peek"))[0] == {"session": None}


async def test_nosession_as_a_query_parameter_still_shares_the_session_its_requests_make() -> None:
    app = counter_app()
    async with app.lifted() as url:
        async with connect(url, query={"nosession": "true"}) as socket:
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 1}
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 2}


async def test_a_visitor_gets_a_cookie_at_once_but_nothing_is_stored_until_the_session_holds_something() -> None:
    app = counter_app()
    async with app.lifted() as url:
        for _ in range(5):  # five visitors (no cookie jar between them)
            async with httpx.AsyncClient(base_url=url) as visitor:
                response = await visitor.get("/chat/peek")
                assert response.json() == {"session": {}}
                assert response.headers["set-cookie"].startswith("sails.sid=s%3A")
        assert isinstance(app.session_store, MemoryStore) and len(app.session_store) == 0
        async with httpx.AsyncClient(base_url=url) as browser:
            page = await browser.get("/chat/peek")
            cookie = session_cookie(page)
            assert "set-cookie" not in (await browser.get("/chat/peek", headers={"cookie": cookie})).headers
            async with connect(url, headers={"cookie": cookie}) as socket:  # the page's socket
                assert (await socket.get("/chat/setsess"))[0] == {"counter": 1}
            assert (await browser.get("/chat/setsess", headers={"cookie": cookie})).json() == {"counter": 2}
        assert len(app.session_store) == 1


async def test_rolling_sessions_renew_the_cookie_with_every_response() -> None:
    settings = Settings()
    settings.session.rolling = True
    async with counter_app(settings).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        cookie = session_cookie(await http.get("/chat/setsess"))
        again = await http.get("/chat/peek", headers={"cookie": cookie})
        assert session_cookie(again) == cookie  # the same session, its Max-Age starting over


async def test_sessions_can_be_turned_off() -> None:
    settings = Settings()
    settings.session.enabled = False
    async with counter_app(settings).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/chat/peek")).json() == {"session": None}
        async with connect(url) as socket:
            assert (await socket.get("/chat/peek"))[0] == {"session": None}


async def test_after_disconnect_sees_and_saves_the_session_of_a_socket_that_left() -> None:
    left: list[tuple[dict[str, Any], str]] = []
    settings = Settings()

    async def after_disconnect(session: dict[str, Any], socket: Any) -> None:
        left.append((dict(session), socket.id))
        session["seen_leaving"] = True

    settings.sockets.after_disconnect = after_disconnect
    async with counter_app(settings).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        cookie = session_cookie(await http.get("/chat/setsess"))
        async with connect(url, headers={"cookie": cookie}) as socket:
            await socket.get("/chat/setsess")
            sid = socket.id
        with trio.fail_after(5):
            while not left:
                await trio.sleep(0.01)
        assert left == [({"counter": 2}, sid)]
        with trio.fail_after(5):
            while (await http.get("/chat/peek", headers={"cookie": cookie})).json()["session"].get("seen_leaving") is not True:
                await trio.sleep(0.01)


def test_session_settings_that_cannot_work_are_refused() -> None:
    settings = Settings()
    settings.session.same_site = "None"
    with pytest.raises(ConfigError, match="same_site 'None' needs session.secure"):
        settings.validate()
    settings = Settings()
    settings.session.name = "my session"
    with pytest.raises(ConfigError, match="cookie name"):
        settings.validate()


async def test_a_page_brings_its_session_cookie_so_its_socket_shares_the_session(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "index.html").write_text("<!doctype html><title>chat</title>")
    app = App.load(tmp_path)
    app.action("chat/setsess", counter_app().router.actions["chat/setsess"])
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as browser:
        page = await browser.get("/")
        assert page.text.startswith("<!doctype html>")
        cookie = session_cookie(page)
        async with connect(url, headers={"cookie": cookie}) as socket:
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 1}
        assert (await browser.get("/chat/setsess", headers={"cookie": cookie})).json() == {"counter": 2}


async def test_production_refuses_a_session_secret_anyone_could_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator lifts with --prod and a one-character secret (in the settings, or the environment):
    the app refuses to lift, and says how long a secret must be and how to make one."""
    from tests.support.settings import production_settings

    settings = production_settings()
    settings.session.secret = "x"
    with pytest.raises(ConfigError, match="at least 32 characters"):
        async with counter_app(settings).lifted():
            pass
    settings.session.secret = ""
    monkeypatch.setenv("TRISAILS_SESSION_SECRET", "s" * 31)
    with pytest.raises(ConfigError, match="at least 32 characters"):
        async with counter_app(settings).lifted():
            pass
    monkeypatch.setenv("TRISAILS_SESSION_SECRET", "s" * 32)
    async with counter_app(settings).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/chat/setsess")).json() == {"counter": 1}


async def test_big_cookie_headers_do_not_fill_the_servers_memory() -> None:
    """An attacker sends request after request, each with kilobytes of made-up cookies next to one
    session cookie (or none). The server remembers checked session cookies by their value, not by the
    whole header, so what it keeps stays a few hundred bytes, and the session still works."""
    app = counter_app()
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        cookie = session_cookie(await http.get("/chat/setsess"))
        for n in range(200):
            junk = f"junk{n}=" + "x" * 8_000
            response = await http.get("/chat/peek", headers={"cookie": f"{junk}; {cookie}"})
            assert response.json() == {"session": {"counter": 1}}
            await http.get("/chat/peek", headers={"cookie": junk})  # no session cookie at all
        remembered = app.sessions._known
        assert sum(len(key) for key in remembered) < 1_000, len(remembered)
        async with connect(url, headers={"cookie": f"{'y' * 8_000}=1; {cookie}"}) as socket:
            assert (await socket.get("/chat/setsess"))[0] == {"counter": 2}
