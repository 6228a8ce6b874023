"""The arena in a real browser: join, steer with the keyboard, and watch a bot move too."""

from __future__ import annotations

from typing import Any

import trio

from tests.browser.conftest import LiveApp
from tests.support.apps import EXAMPLES
from trisails import App
from trisails.client import connect


async def bot(url: str) -> None:
    """A bot that joins and drives right, then down, then right... for as long as the app runs."""
    async with connect(url) as io:
        await io.post("/arena/join", {"name": "bot"})
        while True:
            for move in ({"dx": 1, "dy": 0}, {"dx": 0, "dy": 1}, {"dx": -1, "dy": 0}, {"dx": 0, "dy": -1}):
                await io.emit("input", move)
                await trio.sleep(0.3)


def test_a_player_steers_their_dot_and_sees_a_bot_move(page: Any) -> None:
    app = App.load(EXAMPLES / "arena")
    with LiveApp(app) as live:
        page.goto(live.url + "/")
        page.wait_for_function("window.arena.me !== null && window.arena.snapshots > 0")
        live.call(lambda: app.start_soon(bot, live.url))
        page.wait_for_function("window.arena.last.players.some(p => p.name === 'bot')")
        # the player list is the match's presence: the bot is listed as soon as it joins
        page.wait_for_function("JSON.stringify(window.arena.players) === JSON.stringify(['bot', 'you'])")

        def where(name_or_id: str) -> tuple[float, float]:
            return tuple(
                page.evaluate(
                    """(key) => { const p = window.arena.last.players.find(p => p.id === key || p.name === key);
                                 return [p.x, p.y]; }""",
                    name_or_id,
                )
            )

        me = page.evaluate("window.arena.me")
        start = where(me)
        page.keyboard.down("ArrowRight" if start[0] < 400 else "ArrowLeft")
        page.wait_for_timeout(400)
        page.keyboard.up("ArrowRight" if start[0] < 400 else "ArrowLeft")
        assert where(me)[0] != start[0], "my dot moved with the keys"
        bot_start = where("bot")
        page.wait_for_timeout(400)
        assert where("bot") != bot_start, "the bot's dot moves on my screen"
        assert page.locator("#status").text_content().startswith("playing in match")


def test_the_end_button_ends_the_match_and_play_again_joins_a_new_one(page: Any) -> None:
    app = App.load(EXAMPLES / "arena")
    with LiveApp(app) as live:
        page.goto(live.url + "/")
        page.wait_for_function("window.arena.me !== null && window.arena.snapshots > 0")
        first = page.locator("#status").text_content()
        page.click("#end")
        page.wait_for_function("document.getElementById('status').textContent === 'match over'")
        live.wait_until(lambda: live.call(lambda: not app.state["arena"].matches), "the match to end")
        page.click("#again")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('playing in match')")
        assert page.locator("#status").text_content() != first  # a fresh match
