"""Many sockets at once: 50 clients create records concurrently while 3 others watch. Every record lands
and every watcher hears every ``created`` exactly once. On SQLite and on PostgreSQL."""

from __future__ import annotations

import trio

from tests.models.apps import WAIT, Inbox, User, pets_app
from trisails import Settings
from trisails.client import connect

WRITERS = 50
WATCHERS = 3


async def test_fifty_sockets_create_at_once_and_every_watcher_hears_each_once(settings: Settings) -> None:
    answers: dict[str, int] = {}

    async def write(url: str, n: int, ready: trio.Event) -> None:
        async with connect(url) as socket:
            await ready.wait()  # all connected first, so the creates really overlap
            body, jwr = await socket.post("/user", {"name": f"writer{n:02}", "age": n})
            assert jwr.status_code == 200, body
            answers[body["name"]] = body["id"]

    async def watch(url: str, inboxes: list[Inbox], watching: trio.Semaphore, done: trio.Event) -> None:
        async with connect(url) as socket:
            inboxes.append(Inbox(socket, "user"))
            await socket.get("/user")
            watching.release()
            await done.wait()

    with trio.fail_after(WAIT * 2):
        async with pets_app(settings).lifted() as url:
            inboxes: list[Inbox] = []
            done = trio.Event()
            async with trio.open_nursery() as watchers:
                watching = trio.Semaphore(0)
                for _ in range(WATCHERS):
                    watchers.start_soon(watch, url, inboxes, watching, done)
                for _ in range(WATCHERS):
                    await watching.acquire()
                ready = trio.Event()
                async with trio.open_nursery() as writers:
                    for n in range(WRITERS):
                        writers.start_soon(write, url, n, ready)
                    await trio.sleep(0)
                    ready.set()
                assert len(answers) == WRITERS and sorted(answers.values()) == list(range(1, WRITERS + 1))
                for inbox in inboxes:
                    messages = await inbox.until(WRITERS)
                    assert sorted(m["id"] for _, m in messages) == list(range(1, WRITERS + 1))  # each once
                    assert all(m["verb"] == "created" for _, m in messages)
                    assert {m["data"]["name"]: m["id"] for _, m in messages} == answers
                    await inbox.nothing_more_than(WRITERS)
                done.set()
            stored = await User.find(sort="id", limit=100)
            assert {u["name"]: u["id"] for u in stored} == answers
            assert all(u["age"] == int(u["name"][-2:]) for u in stored)



async def test_sockets_racing_for_one_unique_name_get_one_record_and_clear_refusals(settings: Settings) -> None:
    statuses: list[tuple[int, str | None]] = []

    connected = 0
    all_connected = trio.Event()

    async def claim(url: str, ready: trio.Event) -> None:
        nonlocal connected
        async with connect(url) as socket:
            connected += 1
            if connected == 20:
                all_connected.set()
            await ready.wait()
            body, jwr = await socket.post("/user", {"name": "highlander"})
            statuses.append((jwr.status_code, body.get("code") if isinstance(body, dict) else None))

    with trio.fail_after(WAIT * 2):
        async with pets_app(settings).lifted() as url:
            ready = trio.Event()
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(claim, url, ready)
                await all_connected.wait()  # then all twenty ask at once
                ready.set()
            assert sorted(statuses) == [(200, None)] + [(400, "E_UNIQUE")] * 19
            assert await User.count() == 1
