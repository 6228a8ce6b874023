"""`python -m trisails new` and `generate`, used as a Sails developer uses `sails new` and `sails generate`:
make an app, lift it, talk to it with the real sails.io.js, add to it, and never lose a file to a typo."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import trio

from tests.support.cli import cli_env, free_port, run_cli, serving
from tests.support.jsclient import open_js_driver
from trisails import App


async def new_app(tmp_path: Path, name: str = "chat") -> Path:
    made = await run_cli("new", name, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert f"made the app {name}" in made.stdout
    return tmp_path / name


async def test_a_new_app_lifts_and_two_sails_io_js_pages_chat_on_it(tmp_path: Path) -> None:
    app = await new_app(tmp_path)
    for part in ("config/routes.py", "config/env/production.py", "api/models/message.py", "api/controllers/lobby.py",
                 "assets/index.html", "views/about.html", "views/layouts/layout.html", "tests/test_app.py"):
        assert (app / part).is_file(), part

    database = {"TRISAILS_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite"}
    async with serving("--port", str(free_port()), cwd=app, env=database) as server:
        assert f"serving {app}".encode() in server.output
        async with httpx.AsyncClient() as browser:
            page = (await browser.get(server.url + "/")).text
        assert '<script src="/js/dependencies/sails.io.js"></script>' in page
        assert "<title>chat</title>" in page
        async with httpx.AsyncClient() as browser:
            about = (await browser.get(server.url + "/about")).text  # a view, in the layout
        assert "<title>About chat</title>" in about and "<h1>About chat</h1>" in about
        assert "You asked for <code>/about</code>" in about

        async with open_js_driver(timeout=10) as js:
            alice = await js.connect("sails", server.url, listen=["joined", "message"])
            bob = await js.connect("sails", server.url, listen=["joined", "message"])
            joined, jwr = await alice.get("/lobby/join")
            assert jwr.status_code == 200
            assert (await alice.next_event("joined")) == [{"id": joined["you"]}]  # the joiner hears itself

            messages, jwr = await bob.get("/message")  # reading the messages subscribes bob
            assert (jwr.status_code, messages) == (200, [])
            created, jwr = await alice.post("/message", {"text": "hello", "author": "alice"})
            assert jwr.status_code == 200, created
            [event] = await bob.next_event("message")
            assert (event["verb"], event["id"], event["data"]["text"]) == ("created", created["id"], "hello")

            refused, jwr = await alice.post("/message", {"text": "x" * 501})
            assert jwr.status_code == 400 and "max_length" in refused["details"]
            await alice.disconnect()
            await bob.disconnect()
        assert await server.stop() == 0
    assert b"chat lifted with 0 messages" in server.output  # config/bootstrap.py ran


async def test_the_new_apps_own_test_passes(tmp_path: Path) -> None:
    app = await new_app(tmp_path)
    with trio.fail_after(120):
        result = await trio.run_process(
            [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
            cwd=app, env=cli_env(), capture_stdout=True, capture_stderr=True, check=False,
        )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"2 passed" in result.stdout
    assert not (app / ".tmp").exists()  # the test kept its records out of the app's own database


async def test_generated_model_controller_action_and_policy_are_served_at_once(tmp_path: Path) -> None:
    app = await new_app(tmp_path)
    for args in (
        ("model", "BlogPost"),
        ("controller", "admin/users", "list", "show"),
        ("action", "admin/users/promote"),
        ("action", "lobby/leave"),
        ("policy", "isAdmin"),
    ):
        done = await run_cli("generate", *args, cwd=app)
        assert done.returncode == 0, done.stderr
    assert (app / "api/models/blog_post.py").is_file()
    assert (app / "api/controllers/admin/users.py").is_file()
    assert "async def leave" in (app / "api/controllers/lobby.py").read_text()
    assert "async def join" in (app / "api/controllers/lobby.py").read_text()  # what was there stays
    (app / "config/policies.py").write_text('policies = {"admin/users/promote": "is_admin"}\n')

    loaded = App.load(app)
    loaded.settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    async with loaded.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        post = await http.post("/blogpost", json={"name": "first"})
        assert post.status_code == 200 and post.json()["name"] == "first"
        assert (await http.get("/admin/users/list")).json() == {"action": "admin/users/list"}
        assert (await http.get("/admin/users/show")).json() == {"action": "admin/users/show"}
        assert (await http.get("/lobby/leave")).json() == {"action": "lobby/leave"}
        assert (await http.get("/admin/users/promote")).status_code == 403  # the generated policy guards it


async def test_generate_never_writes_over_and_says_what_to_do(tmp_path: Path) -> None:
    app = await new_app(tmp_path)
    lobby = (app / "api/controllers/lobby.py").read_text()
    message = (app / "api/models/message.py").read_text()

    refusals = {
        ("model", "message"): "api/models/message.py already exists; generate never writes over a file",
        ("action", "lobby/join"): "api/controllers/lobby.py already defines join",
        ("action", "join"): "an action is named controller/action, like 'say/hello'",
        ("model", "class"): "'class' is a Python keyword",
        ("model", "2fast"): "use letters, digits, '_' or '-', starting with a letter",
        ("controller", "lobby"): "api/controllers/lobby.py already exists",
    }
    for args, said in refusals.items():
        done = await run_cli("generate", *args, cwd=app)
        assert done.returncode == 2, (args, done.stdout)
        assert done.stderr.startswith("trisails: ") and said in done.stderr.splitlines()[0], (args, done.stderr)
        assert len(done.stderr.splitlines()) <= 2  # the refusal and what to do, no traceback
    assert (app / "api/controllers/lobby.py").read_text() == lobby
    assert (app / "api/models/message.py").read_text() == message

    again = await run_cli("new", "chat", cwd=tmp_path)
    assert again.returncode == 2
    assert "chat already exists and is not empty; new never writes over files" in again.stderr

    elsewhere = await run_cli("generate", "model", "user", cwd=tmp_path)
    assert elsewhere.returncode == 2
    assert "is not an app folder" in elsewhere.stderr and "--app" in elsewhere.stderr
    there = await run_cli("generate", "model", "user", "--app", str(app), cwd=tmp_path)
    assert there.returncode == 0 and (app / "api/models/user.py").is_file()
