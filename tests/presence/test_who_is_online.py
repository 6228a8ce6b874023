"""Who is online in a board, as a team-board app shows it: one process, ``trisails.client`` as each tab.

A user is tracked under their user id when a tab opens the board; a user with two tabs is one entry
with two metas, and only leaves when the last tab goes. The tabs keep the board's presence in sync
with ``client.presence(room)`` and hear joins and leaves as they happen.
"""

from __future__ import annotations

from typing import Any

import trio

from trisails import App, PresenceLimitReached, Request, Response, Settings
from trisails.client import connect

#: Seconds one story may take, all of its waits included.
WAIT = 10.0


def board_app(settings: Settings | None = None) -> App:
    app = App(settings)

    async def view(req: Request, res: Response) -> None:
        """``POST /board/view {board, user, name}``: this tab is viewing the board as that user."""
        ref = await app.presence.track(req.socket, f"board:{req.param('board')}", req.param("user"), {"name": req.param("name")})
        res.ok({"ref": ref})

    async def watch(req: Request, res: Response) -> None:
        await app.presence.subscribe(req.socket, f"board:{req.param('board')}")
        res.ok()

    def close(req: Request, res: Response) -> None:
        app.sockets.leave(req, f"board:{req.param('board')}")
        res.ok()

    async def who(req: Request, res: Response) -> None:
        res.ok(await app.presence.list(f"board:{req.param('board')}"))

    app.route("POST /board/view", view)
    app.route("POST /board/watch", watch)
    app.route("POST /board/close", close)
    app.route("GET /board/who", who)
    return app


def names(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {key: sorted(meta["name"] for meta in metas) for key, metas in state.items()}


async def test_a_user_with_two_tabs_is_one_entry_and_leaves_with_the_last_tab() -> None:
    app = board_app()
    async with app.lifted() as url, connect(url) as ada_tab1, connect(url) as watcher:
        seen = watcher.presence("board:7")
        joins: list[tuple[str, int, int]] = []
        leaves: list[tuple[str, int, int]] = []
        seen.on_join(lambda key, current, joined: joins.append((key, len(current), len(joined))))
        seen.on_leave(lambda key, remaining, left: leaves.append((key, len(remaining), len(left))))
        (body, jwr) = await watcher.post("/board/watch", {"board": 7})
        assert jwr.status_code == 200
        with trio.fail_after(WAIT):
            await seen.wait_until(lambda state: state == {})

            await ada_tab1.post("/board/view", {"board": 7, "user": "u1", "name": "Ada (laptop)"})
            await seen.wait_until(lambda state: names(state) == {"u1": ["Ada (laptop)"]})
            async with connect(url) as ada_tab2:
                mine = ada_tab2.presence("board:7")
                await ada_tab2.post("/board/view", {"board": 7, "user": "u1", "name": "Ada (phone)"})
                await seen.wait_until(lambda state: names(state) == {"u1": ["Ada (laptop)", "Ada (phone)"]})
                # the tab that just opened got the whole board in its presence_state, itself included
                await mine.wait_until(lambda state: names(state) == {"u1": ["Ada (laptop)", "Ada (phone)"]})
                assert (await watcher.get("/board/who", {"board": 7}))[0].keys() == {"u1"}
                assert [entry["key"] for entry in seen.list()] == ["u1"]
            # one tab gone: Ada is still here, with one meta
            await seen.wait_until(lambda state: names(state) == {"u1": ["Ada (laptop)"]})
            await ada_tab1.post("/board/close", {"board": 7})
            await seen.wait_until(lambda state: state == {})
        assert joins == [("u1", 0, 1), ("u1", 1, 1)]
        assert leaves == [("u1", 1, 1), ("u1", 0, 1)]
        assert app.presence.tracked(app.io.sockets[ada_tab1.id]) == {}


async def test_tracking_again_replaces_the_metadata() -> None:
    app = board_app()
    async with app.lifted() as url, connect(url) as tab, connect(url) as watcher:
        seen = watcher.presence("board:1")
        await watcher.post("/board/watch", {"board": 1})
        with trio.fail_after(WAIT):
            await tab.post("/board/view", {"board": 1, "user": 42, "name": "away"})
            await seen.wait_until(lambda state: names(state) == {"42": ["away"]})
            await tab.post("/board/view", {"board": 1, "user": 42, "name": "back"})
            await seen.wait_until(lambda state: names(state) == {"42": ["back"]})


async def test_metadata_and_trackings_are_bounded_per_socket() -> None:
    settings = Settings()
    settings.sockets.max_presence_meta_size = 64
    settings.sockets.max_presences_per_socket = 2
    app = board_app(settings)
    async with app.lifted() as url, connect(url) as tab:
        _, jwr = await tab.post("/board/view", {"board": 1, "user": "u", "name": "x" * 100})
        assert jwr.status_code == 400
        assert "max_presence_meta_size" in str(jwr.body)
        for board in (1, 2):
            _, jwr = await tab.post("/board/view", {"board": board, "user": "u", "name": "ok"})
            assert jwr.status_code == 200
        _, jwr = await tab.post("/board/view", {"board": 3, "user": "u", "name": "ok"})
        assert jwr.status_code == 400
        assert "max_presences_per_socket" in str(jwr.body)
        _, jwr = await tab.post("/board/view", {"board": 2, "user": "u", "name": "again"})  # an update is no new one
        assert jwr.status_code == 200
        socket = app.io.sockets[tab.id]
        assert set(app.presence.tracked(socket)) == {"board:1", "board:2"}
        try:
            await app.presence.track(socket, "board:9", "u", {"ref": "mine"})
        except ValueError as error:
            assert "ref" in str(error)
        else:
            raise AssertionError("a 'ref' in the metadata was accepted")
        try:
            await app.presence.track(socket, "board:3", "u")
        except PresenceLimitReached as error:
            assert "max_presences_per_socket" in str(error)
        else:
            raise AssertionError("a third tracking was accepted")
