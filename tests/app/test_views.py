"""Views as a Sails developer writes them: `res.view(name, **locals)`, a layout, routes to views."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import trio

import trisails.client
from trisails import App, AppLoadError

WAIT = 10

LAYOUT = """<!doctype html>
<html><head><title>{{ title | default("my app") }}</title></head>
<body>{{ body }}<footer>layout</footer></body></html>
"""

FILES = {
    "views/layouts/layout.html": LAYOUT,
    "views/homepage.html": "<h1>Welcome{% if session is not none %} (with a session){% endif %}</h1>\n",
    "views/pages/about.html": "<p>{{ title }}: {{ motto }}</p>\n",
    "views/user/profile.html": "<p>Hello {{ name }}, you asked {{ req.path }}</p>\n",
    "views/user/mine.html": "<p>the view named after the action {{ req.action }}</p>\n",
    "views/layouts/bare.html": "<main>{{ body }}</main>\n",
    "api/controllers/user.py": """\
from trisails import Request, Response


async def profile(req: Request, res: Response) -> None:
    return res.view("user/profile", name=req.param("name"), title="Profile")


async def mine(req: Request, res: Response) -> None:
    return res.view()


def bare(req: Request, res: Response) -> None:  # a plain def runs in a thread: views work there too
    return res.view("user/profile", layout="layouts/bare", name="bare")


async def alone(req: Request, res: Response) -> None:
    return res.view("user/profile", layout=False, name="alone")


async def missing(req: Request, res: Response) -> None:
    return res.view("user/nothing")
""",
    "config/routes.py": """\
routes = {
    "GET /": {"view": "homepage"},
    "GET /about": {"view": "pages/about", "locals": {"title": "About", "motto": "small & fast"}},
}
""",
    "config/policies.py": 'policies = {"*": False, "user/*": True}\n',  # views have no policies, as in Sails
}


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


async def test_views_render_in_their_layout_over_http_and_sockets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = App.load(write(tmp_path, FILES))
    with trio.fail_after(WAIT):
        async with app.lifted() as url, httpx.AsyncClient(base_url=url) as browser:
            home = await browser.get("/")
            assert home.status_code == 200
            assert home.headers["content-type"] == "text/html; charset=utf-8"
            assert home.text == (
                "<!doctype html>\n<html><head><title>my app</title></head>\n"
                "<body><h1>Welcome (with a session)</h1><footer>layout</footer></body></html>"
            )
            about = (await browser.get("/about")).text
            assert "<title>About</title>" in about and "<p>About: small &amp; fast</p>" in about  # escaped

            profile = (await browser.get("/user/profile", params={"name": "<b>ann</b>"})).text
            assert "<p>Hello &lt;b&gt;ann&lt;/b&gt;, you asked /user/profile</p>" in profile
            assert "<title>Profile</title>" in profile
            assert "the view named after the action user/mine" in (await browser.get("/user/mine")).text
            assert (await browser.get("/user/bare")).text == "<main><p>Hello bare, you asked /user/bare</p></main>"
            assert (await browser.get("/user/alone")).text == "<p>Hello alone, you asked /user/alone</p>"

            async with trisails.client.connect(url) as io:
                body, jwr = await io.get("/user/profile", {"name": "sock"})
                assert jwr.status_code == 200 and "<p>Hello sock, you asked /user/profile</p>" in body
                body, jwr = await io.get("/")
                assert jwr.status_code == 200 and "<h1>Welcome" in body

            with caplog.at_level(logging.ERROR):
                failed = await browser.get("/user/missing")
            assert failed.status_code == 500
            assert "views/user/nothing.html, which does not exist" in failed.text
            assert any("user/missing" in r.getMessage() for r in caplog.records)

            # in development a template edited on disk is read again
            (tmp_path / "views" / "homepage.html").write_text("<h1>Edited</h1>\n")
            assert "<h1>Edited</h1>" in (await browser.get("/")).text


async def test_without_a_layout_file_a_view_is_the_whole_page_and_a_named_one_must_exist(tmp_path: Path) -> None:
    write(tmp_path, {k: v for k, v in FILES.items() if k != "views/layouts/layout.html"})
    app = App.load(tmp_path)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, httpx.AsyncClient(base_url=url) as browser:
            assert (await browser.get("/")).text == "<h1>Welcome (with a session)</h1>"
        write(tmp_path, {"config/views.py": "layout = 'layouts/gone'\n"})
        app = App.load(tmp_path)
        async with app.lifted() as url, httpx.AsyncClient(base_url=url) as browser:
            failed = await browser.get("/")
            assert failed.status_code == 500 and "the layout 'layouts/gone' was looked for" in failed.text


async def test_a_page_offers_the_csrf_token_when_protection_is_on(tmp_path: Path) -> None:
    write(tmp_path, {
        "views/form.html": '<form method="post"><input type="hidden" name="_csrf" value="{{ _csrf }}"></form>',
        "config/routes.py": 'routes = {"GET /form": {"view": "form"}}\n',
        "config/security.py": "csrf = True\n",
    })
    app = App.load(tmp_path)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, httpx.AsyncClient(base_url=url) as browser:
            page = (await browser.get("/form")).text
            granted = (await browser.get("/csrfToken")).json()["_csrf"]  # the same session, the same token
            assert f'value="{granted}"' in page


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ('{"GET /": {"view": ""}}', "'view' names a template of views/"),
        ('{"GET /": {"view": "home", "action": "user/profile"}}', "targets an action or a view, not both"),
        ('{"GET /": {"view": "home", "local": {}}}', "a view target takes 'view' and 'locals', not local"),
    ],
)
def test_a_mistaken_route_to_a_view_is_named_with_its_line(tmp_path: Path, route: str, message: str) -> None:
    write(tmp_path, {"config/routes.py": f"routes = {route}\n"})
    with pytest.raises(AppLoadError, match=message) as raised:
        App.load(tmp_path)
    assert raised.value.line == 1
