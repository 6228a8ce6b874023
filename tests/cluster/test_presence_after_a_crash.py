"""Presence across three processes: who is viewing a board, wherever each tab landed, and what
happens when one process is SIGKILLed and cannot say goodbye.

Three processes of the quickstart (A, B, C) share the machine's Redis under a ``redis_key`` of their
own, with an action of this test's that tracks a socket on a board (``POST /board/view``), one that lets
a socket watch a board untracked (``POST /board/watch``) and one that lists it (``GET /board/who``).
``presence_ttl`` is 2 seconds, so a dead process's viewers must be gone from every list within 2 s and
the leaves must reach the watchers within a third of that more (plus the time a message takes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import trio

from tests.cluster.listening import assert_logs_clean
from tests.cluster.processes import (
    SHARED_REDIS,
    Process,
    copy_app,
    delete_keys,
    launch,
    require_shared_redis,
    stop_all,
    wait_serving,
)
from trisails.client import Client, connect

#: Seconds one story may take, all of its waits included.
WAIT = 30.0
PRESENCE_TTL = 2.0
#: Slack for a busy machine on top of the documented bound (the TTL, then a third of it until the reap).
SLACK = 2.0

BOARD = '''"""A test-only controller: presence on boards."""

from trisails import Request, Response, sails


async def view(req: Request, res: Response) -> None:
    """``POST /board/view {board, user, name}``: this socket views the board as that user."""
    board = f"board:{req.param('board')}"
    ref = await sails.presence.track(req.socket, board, req.param("user"), {"name": req.param("name")})
    return res.ok({"ref": ref})


async def watch(req: Request, res: Response) -> None:
    """``POST /board/watch {board}``: hear the board's presence without being on it."""
    await sails.presence.subscribe(req.socket, f"board:{req.param('board')}")
    return res.ok()


async def who(req: Request, res: Response) -> None:
    """``GET /board/who?board=...``: the board's viewers, in every process."""
    return res.ok(await sails.presence.list(f"board:{req.param('board')}"))
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    require_shared_redis()
    work = tmp_path_factory.mktemp("presence")
    folder, key = copy_app(work / "app", with_models=False, extra={"api/controllers/board.py": BOARD})
    with open(folder / "config" / "sockets.py", "a") as sockets:
        sockets.write(f"presence_ttl = {PRESENCE_TTL}\n")
    started = [launch(name, folder, work, redis_url=SHARED_REDIS) for name in "ABC"]
    try:
        wait_serving(started)
        yield {p.name: p for p in started}
    finally:
        stop_all(started)
        delete_keys(6379, key)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def names(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {key: sorted(meta["name"] for meta in metas) for key, metas in state.items()}


async def who(http: httpx.AsyncClient, process: Process, board: int) -> dict[str, list[str]]:
    body = (await http.get(process.url + "/board/who", params={"board": board})).json()
    return {key: sorted(meta["name"] for meta in entry["metas"]) for key, entry in body.items()}


async def view(client: Client, board: int, user: str, name: str) -> None:
    _, jwr = await client.post("/board/view", {"board": board, "user": user, "name": name})
    assert jwr.status_code == 200, jwr.body


async def test_viewers_on_three_processes_are_one_list_and_a_killed_process_takes_its_viewers_away(
    cluster: dict[str, Process], http: httpx.AsyncClient
) -> None:
    a, b, c = cluster["A"], cluster["B"], cluster["C"]
    everyone = {"ada": ["Ada (laptop)", "Ada (phone)"], "bob": ["Bob"], "cy": ["Cy"]}
    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            watcher = await stack.enter_async_context(connect(a.url))
            board = watcher.presence("board:1")
            left: list[tuple[str, list[str]]] = []
            board.on_leave(lambda key, remaining, gone: left.append((key, [m["name"] for m in gone])))
            await watcher.post("/board/watch", {"board": 1})

            # Ada has a tab on B and one on C; Bob is on C only; Cy is on A
            await view(await stack.enter_async_context(connect(b.url)), 1, "ada", "Ada (laptop)")
            on_c = [await stack.enter_async_context(connect(c.url, reconnection=False)) for _ in range(2)]
            await view(on_c[0], 1, "ada", "Ada (phone)")
            await view(on_c[1], 1, "bob", "Bob")
            await view(await stack.enter_async_context(connect(a.url)), 1, "cy", "Cy")
            await board.wait_until(lambda state: names(state) == everyone)
            for process in (a, b, c):  # each process lists the whole board, one entry per user
                assert await who(http, process, 1) == everyone

            # a tab opened now gets the whole board as its first state
            late = await stack.enter_async_context(connect(b.url))
            late_board = late.presence("board:1")
            await late.post("/board/watch", {"board": 1})
            await late_board.wait_until(lambda state: names(state) == everyone)

            c.popen.kill()  # a crash: no goodbye to anyone
            c.popen.wait(timeout=10)
            killed = trio.current_time()
            survivors = {"ada": ["Ada (laptop)"], "cy": ["Cy"]}
            with trio.fail_after(PRESENCE_TTL + SLACK):
                while not all([await who(http, p, 1) == survivors for p in (a, b)]):
                    await trio.sleep(0.05)
            listed_after = trio.current_time() - killed
            with trio.fail_after(PRESENCE_TTL * 4 / 3 + SLACK - listed_after):
                await board.wait_until(lambda state: names(state) == survivors)
                await late_board.wait_until(lambda state: names(state) == survivors)
            # the leaves came once, from whichever survivor reaped C first
            assert sorted(left) == [("ada", ["Ada (phone)"]), ("bob", ["Bob"])]
    assert_logs_clean([a, b])
