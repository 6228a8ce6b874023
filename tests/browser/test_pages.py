"""The pages people open first: the docs' example page in the quickstart, and the built-in demo chat."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import WAIT, LiveApp
from tests.support.apps import EXAMPLES
from trisails import App
from trisails._cli import DEMO


def console_lines(page: Any) -> list[str]:
    lines: list[str] = []
    page.on("console", lambda message: lines.append(message.text))
    return lines


def wait_for_line(page: Any, lines: list[str], text: str) -> str:
    """The first console line of ``page`` containing ``text``, waiting for it with a bound.

    Playwright delivers console events only while it is called, so the wait is page.wait_for_timeout.
    """
    for _ in range(int(WAIT / 0.02)):
        found = [line for line in lines if text in line]
        if found:
            return found[0]
        page.wait_for_timeout(20)
    raise AssertionError(f"no console line with {text!r}; the page logged: {lines}")


def test_the_quickstart_page_hears_another_tab_join_the_party(browser: Any) -> None:
    app = App.load(EXAMPLES / "quickstart")
    with LiveApp(app) as live:
        first = browser.new_context().new_page()
        second = browser.new_context().new_page()
        try:
            first_log = console_lines(first)
            first.goto(live.url + "/")
            wait_for_line(first, first_log, "Server responded with status code 200")
            second_log = console_lines(second)
            second.goto(live.url + "/")
            wait_for_line(second, second_log, "Server responded with status code 200")
            # as the Sails page says: the hello goes to every socket in the room, the new one included
            first_joined = wait_for_line(first, first_log, "joined the party!")
            second_joined = wait_for_line(second, second_log, "joined the party!")
            wait_for_line(first, first_log, second_joined)  # the tab already there hears the new one
            ids = live.call(lambda: list(app.io.sockets))
            assert first_joined != second_joined
            assert {first_joined, second_joined} <= {f"Socket `{socket_id}` joined the party!" for socket_id in ids}
            first.wait_for_selector("#log li", timeout=WAIT * 1000)
        finally:
            first.context.close()
            second.context.close()


def test_the_demo_shows_a_message_typed_in_one_tab_in_the_other(browser: Any) -> None:
    with LiveApp(App.load(DEMO)) as live:
        alice = browser.new_context().new_page()
        bob = browser.new_context().new_page()
        try:
            for page in (alice, bob):
                page.goto(live.url + "/")
                page.wait_for_function("document.getElementById('status').textContent.startsWith('connected as')")
            alice.fill("input[name=text]", "hello from the other tab")
            alice.press("input[name=text]", "Enter")
            bob.wait_for_function(
                "[...document.querySelectorAll('#messages li')].some(li => li.textContent.includes('hello from the other tab'))"
            )
            assert bob.locator("#here li").count() == 2
        finally:
            alice.context.close()
            bob.context.close()
