"""The quickstart's ``users.html``, a page written for Sails, following the ``User`` model in Chromium.

The page does what Sails pages do: ``io.socket.on('user', ...)``, then ``io.socket.get('/user', ...)``,
which lists the users and subscribes the page to them and to new ones. Everything else happens over
plain HTTP, from the test, and the list follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import WAIT, LiveApp
from tests.support.apps import EXAMPLES
from trisails import App

ITEMS = "[...document.querySelectorAll('#users li')]"


def quickstart(tmp_path: Path) -> App:
    """The quickstart app, keeping its records in ``tmp_path`` (never in the examples folder)."""
    app = App.load(EXAMPLES / "quickstart")
    app.settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    return app


def shown(page: Any) -> list[tuple[str, str]]:
    """The list as the page shows it: ``(data-id, text)`` per item, in order."""
    return [tuple(item) for item in page.evaluate(f"{ITEMS}.map(li => [li.dataset.id, li.textContent])")]


def wait_for_list(page: Any, expected: list[tuple[str, str]]) -> None:
    """Wait (at most :data:`WAIT` s) until the page shows exactly ``expected``."""
    page.wait_for_function(
        f"expected => JSON.stringify({ITEMS}.map(li => [li.dataset.id, li.textContent])) === JSON.stringify(expected)",
        arg=[list(item) for item in expected],
        timeout=WAIT * 1000,
    )
    assert shown(page) == expected


def test_the_users_page_follows_changes_made_over_http(page: Any, tmp_path: Path) -> None:
    with LiveApp(quickstart(tmp_path)) as live, httpx.Client(base_url=live.url, timeout=WAIT) as http:

        def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            response = http.request(method, path, **kwargs)
            assert response.status_code == 200, (method, path, response.text)
            return response.json()

        ann = call("POST", "/user", json={"name": "ann", "age": 30})
        bob = call("POST", "/user", json={"name": "bob"})

        # the page lists the users there are, and is now subscribed to them and to new ones
        page.goto(live.url + "/users.html")
        page.wait_for_function(
            "document.getElementById('status').textContent === 'watching 2 user(s)'", timeout=WAIT * 1000
        )
        assert shown(page) == [(str(ann["id"]), "ann (30)"), (str(bob["id"]), "bob")]

        # a user created elsewhere appears
        cy = call("POST", "/user", json={"name": "cy", "age": 7})
        wait_for_list(page, [(str(ann["id"]), "ann (30)"), (str(bob["id"]), "bob"), (str(cy["id"]), "cy (7)")])

        # one renamed changes its text, in place
        call("PATCH", f"/user/{bob['id']}", json={"name": "bobby"})
        wait_for_list(page, [(str(ann["id"]), "ann (30)"), (str(bob["id"]), "bobby"), (str(cy["id"]), "cy (7)")])

        # one destroyed disappears
        call("DELETE", f"/user/{ann['id']}")
        wait_for_list(page, [(str(bob["id"]), "bobby"), (str(cy["id"]), "cy (7)")])
        assert page.text_content("#status") == "watching 2 user(s)"  # the page never reloaded the list
        # the browser leaves before the app lowers: an idle keep-alive connection would hold the
        # lowering for http.graceful_timeout (5 s)
        page.context.close()
