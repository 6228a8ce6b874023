"""Presence in a real browser: the demo chat's "here" list, with one visitor in two tabs.

Two tabs of one browser (one Playwright context: they share ``localStorage``, so the page gives them
one visitor id) are one line of the list, with two metas; another browser sees them as one person, who
stays while one tab is open and goes with the last. The page's list comes from
``io.socket.presence('chat')``; the callbacks ``onJoin`` and ``onLeave`` are checked from the page too.
"""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import WAIT, LiveApp
from trisails import App
from trisails._cli import DEMO

HERE = "[...document.querySelectorAll('#here li')].map(li => li.textContent)"


def wait_here(page: Any, expected: list[str]) -> None:
    """Wait (bounded) until the page's "here" list is ``expected``, in any order."""
    page.wait_for_function(
        f"(expected) => JSON.stringify({HERE}.sort()) === JSON.stringify(expected.slice().sort())",
        arg=expected,
        timeout=WAIT * 1000,
    )


def open_chat(context: Any, url: str, name: str | None = None) -> Any:
    page = context.new_page()
    if name is not None:  # the page keeps its name in localStorage, as a visitor's browser would
        page.add_init_script(f"localStorage.setItem('trisails-demo-name', {name!r})")
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('connected as')", timeout=WAIT * 1000)
    return page


def test_a_visitor_with_two_tabs_is_one_line_until_the_last_tab_closes(browser: Any) -> None:
    app = App.load(DEMO)
    with LiveApp(app) as live:
        ada, bob = browser.new_context(), browser.new_context()
        try:
            watcher = open_chat(bob, live.url, "bob")
            watcher.evaluate(
                """() => {
                    window.seen = [];
                    io.socket.presence('chat')
                      .onJoin((key, current, joined) => window.seen.push(['join', current.length, joined.length]))
                      .onLeave((key, remaining, left) => window.seen.push(['leave', remaining.length, left.length]));
                }"""
            )
            first = open_chat(ada, live.url, "ada")
            wait_here(watcher, ["ada", "bob"])
            second = open_chat(ada, live.url)  # the same browser: the same visitor, and the same name
            wait_here(watcher, ["ada (2 tabs)", "bob"])
            wait_here(second, ["ada (2 tabs)", "bob"])
            wait_here(first, ["ada (2 tabs)", "bob"])
            assert watcher.evaluate("io.socket.presence('chat').list().length") == 2

            first.close()
            wait_here(watcher, ["ada", "bob"])
            second.close()
            wait_here(watcher, ["bob"])
            assert watcher.evaluate("window.seen") == [["join", 0, 1], ["join", 1, 1], ["leave", 1, 1], ["leave", 0, 1]]
            assert live.run(app.presence.list, "chat").keys() == {watcher.evaluate("localStorage.getItem('trisails-demo-visitor')")}
        finally:
            ada.close()
            bob.close()
