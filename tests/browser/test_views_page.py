"""A server-rendered view in Chromium: the layout loads sails.io.js, and the rendered page talks over its
socket with the session the page was rendered in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import WAIT, LiveApp
from trisails import App

FILES = {
    "views/layouts/layout.html": (
        '<!doctype html><html><head><title>{{ title }}</title>'
        '<script src="/js/dependencies/sails.io.js"></script></head><body>{{ body }}</body></html>'
    ),
    "views/visit.html": (
        '<h1 id="name">{{ name }}</h1><p id="answer">waiting</p>'
        "<script>io.socket.get('/visit/again', function (body) {"
        " document.getElementById('answer').textContent = body.visits; });</script>"
    ),
    "api/controllers/visit.py": (
        "async def page(req, res):\n"
        "    req.session['visits'] = 1\n"
        "    return res.view('visit', name='<ann>', title='Visit')\n\n\n"
        "async def again(req, res):\n"
        "    req.session['visits'] = req.session.get('visits', 0) + 1\n"
        "    return res.ok({'visits': req.session['visits']})\n"
    ),
    "config/routes.py": 'routes = {"GET /": "visit.page"}\n',
}


def test_a_rendered_view_runs_its_socket_in_the_session_it_was_rendered_in(browser: Any, tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with LiveApp(App.load(tmp_path)) as live:
        page = browser.new_context().new_page()
        try:
            page.goto(live.url + "/")
            assert page.title() == "Visit"
            assert page.inner_text("#name") == "<ann>"  # escaped in the HTML, shown as typed
            page.wait_for_function("document.getElementById('answer').textContent === '2'", timeout=WAIT * 1000)
        finally:
            page.context.close()
