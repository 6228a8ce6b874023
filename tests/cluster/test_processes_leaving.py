"""A process leaves the cluster, by crashing or by being told to stop: its sockets leave with it.

Membership is never stored in Redis (each process answers for its own sockets when a room is counted),
so there is nothing to clean up: the room sizes the remaining processes report drop on their own. Three
processes of the quickstart's room actions (A, B, C, for the whole module) share the machine's Redis
under a ``redis_key`` of their own; A watches, C crashes in one story and B is stopped in the other.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import httpx
import pytest
import trio

from tests.cluster.listening import Heard, assert_logs_clean, health, linked, quiet
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

WAIT = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    require_shared_redis()
    work = tmp_path_factory.mktemp("leaving")
    folder, key = copy_app(work / "app", with_models=False)
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


async def count(http: httpx.AsyncClient, process: Process, room: str) -> int:
    answer = (await http.get(process.url + "/rooms/count", params={"room": room})).json()
    sockets: int = answer["sockets"]
    return sockets


async def crew(stack: AsyncExitStack, process: Process, n: int, room: str) -> list[Client]:
    """``n`` sockets on ``process`` in the room (they do not reconnect: their server is about to go)."""
    members = [await stack.enter_async_context(connect(process.url, reconnection=False)) for _ in range(n)]
    for member in members:
        _, jwr = await member.post("/rooms/invite", {"socket": member.id, "room": room})
        assert jwr.status_code == 200
    return members


async def test_a_process_that_dies_takes_its_members_with_it_and_the_others_go_on(cluster: dict[str, Process], http: httpx.AsyncClient) -> None:
    a, c, room = cluster["A"], cluster["C"], "crashing"
    assert a.alive and c.alive
    observers = [p for p in (a, cluster["B"]) if p.alive]  # B as well, unless another story stopped it
    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            on_a = await crew(stack, a, 2, room)
            await crew(stack, c, 3, room)
            assert [await count(http, p, room) for p in (*observers, c)] == [5] * (len(observers) + 1)

            c.popen.kill()  # a crash: no goodbye to anyone
            c.popen.wait(timeout=10)
            with trio.fail_after(5):  # the others stop counting C's sockets at once: nobody answers for them
                while [await count(http, p, room) for p in observers] != [2] * len(observers):
                    await trio.sleep(0.05)

            # A goes on: its link is up, and its sockets still hear each other
            assert linked(await health(http, a))
            heard = Heard(on_a[1], "shout")
            await on_a[0].post("/rooms/shout", {"room": room, "text": "still here"})
            await heard.count(1)
            await quiet()
            assert heard.payloads() == [{"text": "still here", "from": on_a[0].id}]
            assert await count(http, a, room) == 2
    assert_logs_clean(observers)


async def test_a_process_stopped_with_sigterm_lets_its_members_go_and_exits(cluster: dict[str, Process], http: httpx.AsyncClient) -> None:
    a, b, room = cluster["A"], cluster["B"], "deploying"
    assert a.alive and b.alive
    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            await crew(stack, a, 1, room)
            await crew(stack, b, 3, room)
            assert await count(http, a, room) == 4

            b.popen.send_signal(signal.SIGTERM)  # a deploy: lowering closes every socket first
            with trio.fail_after(5):
                while await count(http, a, room) != 1:
                    await trio.sleep(0.05)
    # ... then the process ends, as the CLI promises (exit status 0)
    with trio.move_on_after(10):
        while b.popen.poll() is None:
            await trio.sleep(0.05)
    assert b.popen.poll() == 0, f"B is still running 10 s after SIGTERM (returncode {b.popen.poll()}); its log:\n{b.log()}"
    assert await count(http, a, room) == 0
    assert_logs_clean([a])
