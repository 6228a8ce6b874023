"""The arena example: its rules, its match tasks, bots at load, and players who vanish."""

from __future__ import annotations

import subprocess
import sys

import trio

from examples.arena.bots import run_bots
from examples.arena.game import HEIGHT, RADIUS, WIDTH, Match
from tests.sails.test_virtual_requests import Requester
from tests.support.apps import EXAMPLES
from tests.support.raw import raw_websocket
from trisails import App
from trisails.client import connect

ARENA = EXAMPLES / "arena"


def arena_app(**custom: object) -> App:
    app = App.load(ARENA)
    app.settings.custom.update(custom)
    return app


async def wait_until(condition, timeout: float = 10) -> None:  # noqa: ANN001
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)


def test_a_dot_moves_at_its_speed_stays_in_the_box_and_collects() -> None:
    match = Match("1", seed=7)
    player = match.add("p", "ada")
    match.items[0] = (player.x + 5, player.y)  # right next to the player
    match.steer("p", 3, 4)  # longer than 1: clamped to the unit circle
    assert (player.dx, player.dy) == (0.6, 0.8)
    match.step(0.05)
    assert player.score == 1 and match.items[0] != (player.x + 5, player.y)
    for _ in range(200):
        match.step(0.05)
    assert (player.x, player.y) == (player.x, HEIGHT - RADIUS) and RADIUS <= player.x <= WIDTH - RADIUS
    match.steer("p", float("nan"), 0)  # nonsense input is ignored
    assert (player.dx, player.dy) == (0.6, 0.8)
    assert match.snapshot(123)["players"][0]["name"] == "ada"


async def test_fifty_bots_get_snapshots_at_the_tick_rate() -> None:
    app = arena_app()
    async with app.lifted() as url:
        report = await run_bots(url, players=50, seconds=3)
    # Bots and server share this process (and a busy 2-core machine), so the tolerance is generous:
    # every single bot must still see at least 70% of the 20 snapshots a second.
    assert report.held(tolerance=0.3), report.text()
    assert report.latency_p50_ms < 250, report.text()


async def test_a_finished_match_leaves_no_task_room_or_player_behind() -> None:
    app = arena_app(match_seconds=1.0)
    async with app.lifted() as url:
        arena = app.state["arena"]
        async with connect(url) as ada, connect(url) as bob:
            joined, _ = await ada.post("/arena/join", {"name": "ada"})
            await bob.post("/arena/join", {"name": "bob"})
            stats = arena.statistics()
            assert stats["players"] == 2 and stats["match_rooms"] == {f"match:{joined['match']}": 2}
            assert stats["match_tasks"] == [f"match {joined['match']}"]
            (over,) = await ada.wait_for("match-over", timeout=5)
            assert set(over["scores"]) == {"ada", "bob"}
            await wait_until(lambda: not arena.statistics()["match_tasks"])
            stats = arena.statistics()
            assert (stats["matches"], stats["players"], stats["match_rooms"], stats["match_tasks"]) == ({}, 0, {}, [])
            assert app.sockets.rooms_of(ada.id) == {ada.id}
            # the next join starts a fresh match
            rejoined, _ = await ada.post("/arena/join", {"name": "ada"})
            assert rejoined["match"] != joined["match"]


async def test_lowering_the_app_ends_every_match() -> None:
    app = arena_app()
    async with app.lifted() as url, connect(url) as ada:
        await ada.post("/arena/join", {"name": "ada"})
        arena = app.state["arena"]
        assert arena.statistics()["match_tasks"]
    assert arena.statistics()["match_tasks"] == [] and arena.matches == {}


async def test_a_player_whose_connection_goes_silent_is_dropped_within_the_heartbeat_timeout() -> None:
    app = arena_app()
    app.settings.sockets.ping_interval = 200
    app.settings.sockets.ping_timeout = 300
    async with app.lifted() as url:
        arena = app.state["arena"]
        async with raw_websocket(url, eio_revision=3, __sails_io_sdk_version="1.2.1") as ghost:
            await ghost.handshake()
            await ghost.expect("40")
            answer = await Requester(ghost)("post", "/arena/join", {"name": "ghost"})
            assert answer["statusCode"] == 200 and arena.statistics()["players"] == 1
            # the ghost never pings (Engine.IO v3 clients must) and only listens, until the server gives up
            started = trio.current_time()
            await ghost.closed(timeout=5)
            await wait_until(lambda: arena.statistics()["players"] == 0, timeout=5)
            assert trio.current_time() - started < 0.5 + 0.5  # ping_interval + ping_timeout, plus a margin
            assert arena.statistics()["match_rooms"] == {}


async def test_input_steers_only_your_own_dot() -> None:
    app = arena_app()
    async with app.lifted() as url, connect(url) as ada, connect(url) as bob:
        me, _ = await ada.post("/arena/join", {"name": "ada"})
        await bob.post("/arena/join", {"name": "bob"})
        await ada.emit("input", {"dx": 1, "dy": 0})
        await ada.emit("input", "not a move")  # ignored

        def positions(snapshot: dict) -> dict[str, tuple[float, float]]:
            return {p["name"]: (p["x"], p["y"]) for p in snapshot["players"]}

        (first,) = await ada.wait_for("snapshot", timeout=5)
        for _ in range(5):
            (later,) = await ada.wait_for("snapshot", timeout=5)
        before, after = positions(first), positions(later)
        assert after["ada"][0] > before["ada"][0] or after["ada"][0] == WIDTH - RADIUS
        assert after["bob"] == before["bob"]
        assert me["you"] == ada.id


async def test_ending_a_match_from_the_action_stops_that_match_only() -> None:
    app = arena_app(max_players=1)  # one player per match: ada and bob play in two matches
    async with app.lifted() as url:
        arena = app.state["arena"]
        async with connect(url) as ada, connect(url) as bob:
            mine, _ = await ada.post("/arena/join", {"name": "ada"})
            theirs, _ = await bob.post("/arena/join", {"name": "bob"})
            assert mine["match"] != theirs["match"]
            ended, jwr = await ada.post("/arena/end")  # no id: the caller's own match
            assert jwr.status_code == 200 and ended == {"ended": mine["match"]}
            (over,) = await ada.wait_for("match-over", timeout=5)
            assert over == {"match": mine["match"], "scores": {"ada": 0}}
            await wait_until(lambda: arena.statistics()["match_tasks"] == [f"match {theirs['match']}"])
            assert set(arena.matches) == {theirs["match"]}
            await bob.wait_for("snapshot", timeout=5)  # bob's match goes on
            _, jwr = await ada.post("/arena/end", {"match": "no-such-match"})
            assert jwr.status_code == 404
            _, jwr = await ada.post("/arena/end")  # ada plays in no match any more
            assert jwr.status_code == 404
            ended, _ = await ada.post("/arena/end", {"match": theirs["match"]})  # any match, by id
            assert ended == {"ended": theirs["match"]}
            await bob.wait_for("match-over", timeout=5)
            await wait_until(lambda: not arena.statistics()["match_tasks"])


def test_the_bots_run_from_a_plain_install_as_the_readme_says() -> None:
    """The README's command, with the test extra's httpx made unimportable: the bots need only trisails."""
    readme = (ARENA / "README.md").read_text(encoding="utf-8")
    assert "python -m examples.arena.bots" in readme and "pip install -e ." in readme
    no_httpx = "import runpy, sys; sys.modules['httpx'] = None; sys.argv[0] = 'bots'; runpy.run_module('examples.arena.bots', run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-c", no_httpx, "--players", "3", "--seconds", "1"],
        cwd=ARENA.parents[1], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "arena: 3 bots for 1 s at 20 Hz" in result.stdout


async def test_the_player_list_is_the_match_presence_and_a_player_who_leaves_drops_off_it() -> None:
    app = arena_app()
    async with app.lifted() as url, connect(url) as ada, connect(url) as bob:
        with trio.fail_after(10):
            joined, _ = await ada.post("/arena/join", {"name": "ada"})
            players = ada.presence(f"match:{joined['match']}")
            await bob.post("/arena/join", {"name": "bob"})
            await players.wait_until(lambda state: sorted(m["name"] for ms in state.values() for m in ms) == ["ada", "bob"])
            assert set(players.state) == {ada.id, bob.id}  # one entry per player, keyed by the player id
            await bob.post("/arena/leave")
            await players.wait_until(lambda state: set(state) == {ada.id})
