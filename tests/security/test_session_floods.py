"""Sessions under attack: floods of anonymous requests store nothing and log nobody out, and a login
gives the user a session id nobody knew before."""

from __future__ import annotations

import secrets

import httpx
import trio

from trisails import App, Request, Response, Settings
from trisails.client import connect
from trisails.web.sessions import MemoryStore


def shop_app(settings: Settings | None = None) -> App:
    """A shop: anyone may fill a cart (stored in the session); users log in and out."""
    app = App(settings)

    @app.action("cart/add")
    async def add(req: Request, res: Response) -> None:
        req.session["cart"] = [*req.session.get("cart", []), req.param("item")]
        res.ok(req.session["cart"])

    @app.action("auth/login")
    async def login(req: Request, res: Response) -> None:
        req.session.regenerate(keep=req.param("keep") == "yes")
        req.session["user"] = req.param("name")
        res.ok({"user": req.session["user"], "cart": req.session.get("cart")})

    @app.action("auth/logout")
    async def logout(req: Request, res: Response) -> None:
        req.session.clear()
        res.ok()

    @app.action("auth/me")
    async def me(req: Request, res: Response) -> None:
        res.ok({"user": req.session.get("user"), "cart": req.session.get("cart")})

    app.action("board/post", lambda req, res: res.ok("posted"))
    return app


def cookie_of(response: httpx.Response) -> str:
    return response.headers["set-cookie"].split(";")[0]


async def test_a_flood_of_cookieless_csrf_token_requests_stores_nothing_and_the_tokens_still_work() -> None:
    """With CSRF on, each cookieless GET /csrfToken stored a session. Now 300 of them store none, and
    a visitor's token (with its cookie) is good over HTTP and over the page's socket."""
    settings = Settings()
    settings.security.csrf = True
    app = shop_app(settings)
    async with app.lifted() as url:
        async with httpx.AsyncClient(base_url=url) as attacker:
            for _ in range(300):
                attacker.cookies.clear()
                assert (await attacker.get("/csrfToken")).status_code == 200
        assert isinstance(app.session_store, MemoryStore) and len(app.session_store) == 0
        async with httpx.AsyncClient(base_url=url) as visitor:
            granted = await visitor.get("/csrfToken")
            token, cookie = granted.json()["_csrf"], cookie_of(granted)
            assert (await visitor.get("/csrfToken")).json()["_csrf"] == token  # the same, for its session
            assert (await visitor.post("/board/post", headers={"x-csrf-token": token})).status_code == 200
            assert (await visitor.post("/board/post", headers={"x-csrf-token": token[:-1] + "x"})).status_code == 403
            assert (await visitor.post("/board/post", json={"_csrf": "é" * 10})).status_code == 403
            async with connect(url, headers={"cookie": cookie}) as socket:
                assert (await socket.post("/board/post", {"_csrf": token}))[1].status_code == 200
        async with httpx.AsyncClient(base_url=url) as other:  # another visitor's token is not yours
            assert (await other.post("/board/post", headers={"x-csrf-token": token})).status_code == 403
        assert len(app.session_store) == 0


async def test_a_flood_of_anonymous_sessions_never_logs_out_a_logged_in_user() -> None:
    """An admin logs in (the login regenerates the session). An attacker then fills five times the
    store's capacity with anonymous sessions that hold something (a cart each). The store stays
    within its cap, and the admin is still logged in; anonymous sessions are the ones evicted."""
    app = shop_app()
    app.session_store = MemoryStore(limit=40)
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as admin:
        admin_cookie = cookie_of(await admin.post("/auth/login", params={"name": "admin"}))
        async with httpx.AsyncClient(base_url=url) as attacker:
            first = cookie_of(await attacker.post("/cart/add", params={"item": "first"}))
            for n in range(200):
                attacker.cookies.clear()
                await attacker.post("/cart/add", params={"item": str(n)})
        assert len(app.session_store) <= 40
        me = await admin.get("/auth/me", headers={"cookie": admin_cookie})
        assert me.json()["user"] == "admin"
        async with httpx.AsyncClient(base_url=url) as attacker:  # the oldest anonymous one went first
            assert (await attacker.get("/auth/me", headers={"cookie": first})).json() == {"user": None, "cart": None}


async def test_logging_in_gives_a_new_session_id_so_a_planted_cookie_is_worth_nothing() -> None:
    """Session fixation: an attacker gets a session cookie of its own and plants it in a victim's
    browser; the victim logs in. The login regenerates the session: the victim's browser gets a new
    cookie, the planted one names an empty session, and the attacker is not logged in as the victim.
    ``keep=True`` keeps what the visitor had put in the session (its cart)."""
    app = shop_app()
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as attacker:
        planted = cookie_of(await attacker.post("/cart/add", params={"item": "book"}))
        async with httpx.AsyncClient(base_url=url) as victim:
            login = await victim.post("/auth/login", params={"name": "victim", "keep": "yes"}, headers={"cookie": planted})
            assert login.json() == {"user": "victim", "cart": ["book"]}
            fresh = cookie_of(login)
            assert fresh != planted
            assert (await victim.get("/auth/me", headers={"cookie": fresh})).json()["user"] == "victim"
        assert (await attacker.get("/auth/me", headers={"cookie": planted})).json() == {"user": None, "cart": None}
        async with connect(url, headers={"cookie": planted}) as socket:
            assert (await socket.get("/auth/me"))[0]["user"] is None
        # a login without keep starts from an empty session, as express-session's regenerate does
        async with httpx.AsyncClient(base_url=url) as shopper:
            cart = cookie_of(await shopper.post("/cart/add", params={"item": "pen"}))
            login = await shopper.post("/auth/login", params={"name": "ann"}, headers={"cookie": cart})
            assert login.json() == {"user": "ann", "cart": None}
        assert len(app.session_store) == 2  # the victim's and ann's; the retired ids are gone


async def test_a_socket_that_logs_in_keeps_the_new_session_for_its_later_requests() -> None:
    app = shop_app()
    async with app.lifted() as url, connect(url) as socket:
        await socket.post("/cart/add", {"item": "lamp"})
        body, _ = await socket.post("/auth/login", {"name": "bo", "keep": "yes"})
        assert body == {"user": "bo", "cart": ["lamp"]}
        assert (await socket.get("/auth/me"))[0] == {"user": "bo", "cart": ["lamp"]}
        assert len(app.session_store) == 1


async def test_over_redis_nothing_is_stored_for_sessions_nothing_was_put_in() -> None:
    """The Redis store had no cap: 20,000 cookieless requests left 20,000 keys for a day. Now a flood of
    visitors and token requests leaves no key; a cart makes one, with ``max_age`` as its lifetime; and
    emptying the session (a logout) deletes it."""
    settings = Settings()
    settings.security.csrf = True
    settings.sockets.redis_url = "redis://127.0.0.1:6379/0"
    settings.sockets.redis_key = f"trisails-test-{secrets.token_hex(6)}"
    settings.session.secret = "a secret shared by the processes of this test app"
    app = shop_app(settings)
    prefix = f"{settings.sockets.redis_key}:sess:"
    async with app.lifted() as url:
        assert app.bus is not None

        async def keys() -> list[str]:
            assert app.bus is not None and app.bus.client is not None
            found = await app.bus.client.keys(prefix + "*")
            return sorted(k.decode() if isinstance(k, bytes) else k for k in found)

        try:
            async with httpx.AsyncClient(base_url=url) as flood:
                for _ in range(100):
                    flood.cookies.clear()
                    await flood.get("/csrfToken")
                    flood.cookies.clear()
                    await flood.get("/auth/me")
            assert await keys() == []
            async with httpx.AsyncClient(base_url=url) as shopper:
                granted = await shopper.get("/csrfToken")
                token = granted.json()["_csrf"]
                added = await shopper.post("/cart/add", params={"item": "pen"}, headers={"x-csrf-token": token})
                assert added.status_code == 200
                [key] = await keys()
                assert app.bus.client is not None
                ttl_ms = await app.bus.client.pttl(key)
                assert 0 < ttl_ms <= settings.session.max_age
                assert (await shopper.post("/auth/logout", headers={"x-csrf-token": token})).status_code == 200
                with trio.fail_after(5):
                    while await keys():
                        await trio.sleep(0.01)
        finally:
            if app.bus is not None and app.bus.client is not None and (left := await keys()):
                await app.bus.client.delete(left)
