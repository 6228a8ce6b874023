"""Policies guard actions the same way over HTTP and over sockets, blueprints included."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest
import trio

from tests.support.settings import production_settings
from trisails import App, AppLoadError, ConfigError, Model, Request, Response, Settings, Required
from trisails.client import connect


def guarded_app(settings: Settings | None = None) -> App:
    """A notes app where only ann gets in, except to the open hello, and nobody may wipe."""
    app = App(settings)

    @app.policy("is_logged_in")
    async def is_logged_in(req: Request, res: Response) -> None:
        if req.headers.get("x-user") is None:
            res.forbidden()

    @app.policy("is_ann")
    def is_ann(req: Request, res: Response) -> None:  # a plain def policy runs in a worker thread
        if req.headers.get("x-user") != "ann":
            res.status(403).json({"reason": "only ann"})

    app.action("say/hello", lambda req, res: res.ok("hello"))
    app.action("notes/read", lambda req, res: res.ok(["a note"]))
    app.action("notes/write", lambda req, res: res.ok("written"))
    app.action("notes/wipe", lambda req, res: res.ok("wiped"))
    app.set_policies(
        {
            "*": "is_logged_in",
            "say/hello": True,
            "notes": {"write": ["is_logged_in", "is_ann"], "wipe": False},
        }
    )
    return app


async def test_the_same_policies_answer_http_and_socket_requests() -> None:
    app = guarded_app()
    async with app.lifted() as url:
        async with httpx.AsyncClient(base_url=url) as http, connect(url) as socket:
            cases = [
                ("/say/hello", {}, 200, "hello"),
                ("/notes/read", {}, 403, "Forbidden"),
                ("/notes/read", {"x-user": "bob"}, 200, ["a note"]),
                ("/notes/write", {"x-user": "bob"}, 403, {"reason": "only ann"}),
                ("/notes/write", {"x-user": "ann"}, 200, "written"),
                ("/notes/wipe", {"x-user": "ann"}, 403, "Forbidden"),
            ]
            for path, headers, status, body in cases:
                over_http = await http.get(path, headers=headers)
                assert over_http.status_code == status, path
                assert (over_http.json() if not isinstance(body, str) else over_http.text) == body
                answer, jwr = await socket.request("get", path, headers=headers)
                assert (jwr.status_code, answer) == (status, body), path


async def test_the_most_specific_entry_wins() -> None:
    app = App()
    calls: list[str] = []
    for name in ("everyone", "staff", "admins"):
        app.policy(name, lambda req, res, name=name: calls.append(name))
    for action in ("a/b/c", "a/b/d", "a/x", "other"):
        app.action(action, lambda req, res: res.ok())
    app.set_policies({"*": "everyone", "a/*": "staff", "a/b/*": ["staff", "admins"], "a/b/c": True})
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        for path, expected in [("/a/b/c", []), ("/a/b/d", ["staff", "admins"]), ("/a/x", ["staff"]), ("/other", ["everyone"])]:
            calls.clear()
            assert (await http.get(path)).status_code == 200
            assert calls == expected, path


class Note(Model):
    text = Required(str)


async def test_a_denied_blueprint_request_changes_nothing(tmp_path: Path) -> None:
    settings = Settings()
    settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    app = App(settings)
    app.model(Note)
    app.policy("read_only", lambda req, res: res.forbidden() if req.method != "GET" else None)
    app.set_policies({"note": {"*": "read_only", "findone": True}})
    async with app.lifted() as url:
        async with connect(url) as watcher, connect(url) as writer:
            heard: list[object] = []
            watcher.on("note", heard.append)
            assert (await watcher.get("/note"))[1].status_code == 200
            body, jwr = await writer.post("/note", {"text": "sneaky"})
            assert (jwr.status_code, body) == (403, "Forbidden")
            assert await Note.count() == 0
            created = await Note.create({"text": "seeded"})
            assert (await writer.get(f"/note/{created['id']}"))[0]["text"] == "seeded"  # find_one is open
            assert (await writer.delete(f"/note/{created['id']}"))[1].status_code == 403
            assert await Note.count() == 1
            with trio.move_on_after(0.2):
                while not heard:
                    await trio.sleep(0.01)
            assert heard == []


async def test_a_policy_that_fails_is_a_500_without_a_stack_in_production() -> None:
    app = App(production_settings())

    def broken(req: Request, res: Response) -> None:
        raise RuntimeError("the session store is down")

    app.policy("broken", broken)
    app.action("x/y", lambda req, res: res.ok())
    app.set_policies({"*": "broken"})
    async with app.lifted() as url, connect(url) as socket:
        body, jwr = await socket.get("/x/y")
        assert (jwr.status_code, body) == (500, "Internal Server Error")


def test_a_policy_map_naming_an_unknown_policy_is_refused() -> None:
    app = App()
    app.policy("is_logged_in", lambda req, res: None)
    with pytest.raises(ConfigError, match="no policy named 'is_admin'.*known policies: is_logged_in"):
        app.set_policies({"admin/*": ["is_logged_in", "is_admin"]})
    with pytest.raises(ConfigError, match="an entry is True, False"):
        app.set_policies({"*": 3})


async def test_an_app_folder_declares_policies_and_their_map(tmp_path: Path) -> None:
    (tmp_path / "api" / "policies").mkdir(parents=True)
    (tmp_path / "api" / "controllers").mkdir(parents=True)
    (tmp_path / "config").mkdir()
    (tmp_path / "api" / "policies" / "auth.py").write_text(
        textwrap.dedent(
            """
            def is_logged_in(req, res):
                if "x-user" not in req.headers:
                    res.forbidden()
            """
        )
    )
    (tmp_path / "api" / "controllers" / "page.py").write_text(
        "def home(req, res):\n    res.ok('home')\n\ndef private(req, res):\n    res.ok('private')\n"
    )
    (tmp_path / "config" / "policies.py").write_text('policies = {"*": "is_logged_in", "page/home": True}\n')
    app = App.load(tmp_path)
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/page/home")).text == "home"
        assert (await http.get("/page/private")).status_code == 403
        assert (await http.get("/page/private", headers={"x-user": "ann"})).text == "private"

    (tmp_path / "config" / "policies.py").write_text('policies = {"*": "is_loggedin"}\n')
    with pytest.raises(AppLoadError, match="config/policies.py: .*no policy named 'is_loggedin'"):
        App.load(tmp_path)
