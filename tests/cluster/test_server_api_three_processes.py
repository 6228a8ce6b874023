"""Socket.IO 4's server API with three real processes (the CLI on a copy of ``examples/quickstart``,
Redis between them): a team spread over processes A, B and C votes, is listed, moved and counted.

The app adds a ``team`` controller that uses the API from actions (``sails.io``), and a
``config/bootstrap.py`` with the handlers of the processes' own events (``on_server_side``). The models
are left out: nothing here needs a database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.cluster.listening import assert_logs_clean
from tests.cluster.processes import SHARED_REDIS, Process, copy_app, delete_keys, launch, require_shared_redis, stop_all, wait_serving
from trisails.client import Client, connect

#: Seconds one story may take, all of its waits included.
WAIT = 20.0

TEAM = '''"""The team: a room spread over every process, and the Socket.IO server API used from actions."""

from trisails import RemoteSocket, Request, Response, sails


async def join(req: Request, res: Response) -> None:
    """``POST /team/join {name}``: this socket joins the team under a name."""
    req.socket.data["name"] = req.param("name")
    sails.sockets.join(req, "team")
    return res.ok()


async def vote(req: Request, res: Response) -> None:
    """``POST /team/vote {question, timeout}``: ask every member, wherever it is, and wait for the acks."""
    reply = await sails.io.to("team").timeout(float(req.param("timeout"))).call("vote", req.param("question"))
    return res.ok({"responses": reply.responses, "missing": sorted(reply.missing)})


async def members(req: Request, res: Response) -> None:
    """``GET /team/members``: the team's sockets in every process."""
    found = await sails.io.in_("team").fetch_sockets()
    return res.ok(sorted(
        ({"id": s.id, "name": s.data.get("name"), "rooms": sorted(s.rooms), "remote": isinstance(s, RemoteSocket),
          "eio": s.handshake.query.get("EIO")} for s in found),
        key=lambda member: member["name"],
    ))


async def poke(req: Request, res: Response) -> None:
    """``POST /team/poke {name}``: find the member by name, wherever it is, poke it and ask it."""
    for socket in await sails.io.in_("team").fetch_sockets():
        if socket.data.get("name") == req.param("name"):
            socket.emit("poke", "hey")
            return res.ok({"answer": await socket.call("sure?", timeout=5)})
    return res.not_found()


async def move(req: Request, res: Response) -> None:
    """``POST /team/move {room}``: the whole team joins the room and leaves the team."""
    sails.io.in_("team").sockets_join(req.param("room"))
    sails.io.in_("team").sockets_leave("team")
    return res.ok()


async def dismiss(req: Request, res: Response) -> None:
    """``POST /team/dismiss {room}``: disconnect every socket of the room, wherever it is."""
    sails.io.in_(req.param("room")).disconnect_sockets()
    return res.ok()


async def census(req: Request, res: Response) -> None:
    """``GET /team/census``: ask the other processes how many sockets each holds."""
    reply = await sails.io.server_side_call("census", timeout=5)
    return res.ok({"responses": sorted(reply.responses), "missing": reply.missing})


async def announce(req: Request, res: Response) -> None:
    """``POST /team/announce {text}``: the other processes tell their sockets."""
    sails.io.server_side_emit("announce", req.param("text"))
    return res.ok()
'''

BOOTSTRAP = '''"""The handlers of the events the app's processes send each other."""


def bootstrap(app):
    @app.io.on_server_side("census")
    def census():
        return len(app.io.sockets)

    @app.io.on_server_side("announce")
    def announce(text):
        for socket in app.io.sockets.values():  # this process's own (app.io.emit would reach every process)
            socket.emit("announcement", text)
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Process]]:
    require_shared_redis()
    work: Path = tmp_path_factory.mktemp("server-api")
    folder, key = copy_app(
        work / "app", with_models=False, extra={"api/controllers/team.py": TEAM, "config/bootstrap.py": BOOTSTRAP}
    )
    processes = [launch(name, folder, work, redis_url=SHARED_REDIS) for name in "ABC"]
    try:
        wait_serving(processes)
        yield processes
    finally:
        stop_all(processes)
        delete_keys(6379, key)


async def until_every_process_sees_the_others(processes: list[Process]) -> None:
    """Until each process counts the other two on the bus (its census is answered by both)."""
    for process in processes:
        async with connect(process.url) as client:
            while len((await client.get("/team/census"))[0]["responses"]) != 2:
                await trio.sleep(0.05)


async def team(stack: AsyncExitStack, processes: list[Process], names: str) -> dict[str, Client]:
    """One member per letter of ``names``, on process A, B, C in turn."""
    members: dict[str, Client] = {}
    for i, name in enumerate(names):
        client = await stack.enter_async_context(connect(processes[i % 3].url))
        body, jwr = await client.post("/team/join", {"name": name})
        assert jwr.status_code == 200, body
        members[name] = client
    return members


async def test_a_vote_gathers_the_acks_of_the_team_on_every_process(cluster: list[Process]) -> None:
    with trio.fail_after(WAIT):
        await until_every_process_sees_the_others(cluster)
        async with AsyncExitStack() as stack:
            members = await team(stack, cluster, "abcd")  # a and d on A, b on B, c on C
            for name in "abc":
                members[name].on("vote", lambda question, name=name: f"{name} says yes to {question}")
            # d has no handler: it never answers
            asker = await stack.enter_async_context(connect(cluster[1].url))
            body, jwr = await asker.post("/team/vote", {"question": "lunch?", "timeout": 1.0})
            assert jwr.status_code == 200, body
            assert body["responses"] == {members[n].id: [f"{n} says yes to lunch?"] for n in "abc"}
            assert body["missing"] == [members["d"].id]
            # with a long timeout, a member that does not answer is all it waits for
            members["d"].on("vote", lambda question: "d, late but there")
            start = trio.current_time()
            body, _ = await asker.post("/team/vote", {"question": "dinner?", "timeout": 30})
            assert len(body["responses"]) == 4 and body["missing"] == [] and trio.current_time() - start < 10
    assert_logs_clean(cluster)


async def test_the_team_is_listed_poked_moved_and_dismissed_wherever_its_members_are(cluster: list[Process]) -> None:
    with trio.fail_after(WAIT):
        await until_every_process_sees_the_others(cluster)
        async with AsyncExitStack() as stack:
            members = await team(stack, cluster, "xyz")  # x on A, y on B, z on C
            asker = await stack.enter_async_context(connect(cluster[2].url))  # on C
            listed, _ = await asker.get("/team/members")
            assert [(m["name"], m["id"], m["remote"], m["eio"]) for m in listed] == [
                ("x", members["x"].id, True, "4"),
                ("y", members["y"].id, True, "4"),
                ("z", members["z"].id, False, "4"),
            ]
            assert all(m["rooms"] == sorted([m["id"], "team"]) for m in listed)

            poked = trio.Event()
            members["x"].on("poke", lambda text: poked.set())
            members["x"].on("sure?", lambda: "yes, x")
            body, jwr = await asker.post("/team/poke", {"name": "x"})
            assert jwr.status_code == 200 and body == {"answer": ["yes, x"]}, body
            await poked.wait()

            _, jwr = await asker.post("/team/move", {"room": "standup"})
            assert jwr.status_code == 200
            while (await asker.get("/team/members"))[0] != []:
                await trio.sleep(0.05)
            for process in cluster:
                async with connect(process.url) as counter:
                    while (await counter.get("/rooms/count", {"room": "standup"}))[0]["sockets"] != 3:
                        await trio.sleep(0.05)

            gone = {name: trio.Event() for name in members}
            for name, client in members.items():
                client.on("disconnect", lambda reason, event=gone[name]: event.set())
            _, jwr = await asker.post("/team/dismiss", {"room": "standup"})
            assert jwr.status_code == 200
            for event in gone.values():
                await event.wait()
    assert_logs_clean(cluster)


async def test_the_processes_count_their_sockets_for_each_other_and_pass_on_announcements(cluster: list[Process]) -> None:
    with trio.fail_after(WAIT):
        await until_every_process_sees_the_others(cluster)
        async with AsyncExitStack() as stack:
            on_a = [await stack.enter_async_context(connect(cluster[0].url)) for _ in range(1)]
            on_b = [await stack.enter_async_context(connect(cluster[1].url)) for _ in range(2)]
            on_c = [await stack.enter_async_context(connect(cluster[2].url)) for _ in range(3)]
            # A asks: B and C answer with their socket counts (A's own is not asked)
            while (await on_a[0].get("/team/census"))[0] != {"responses": [2, 3], "missing": 0}:
                await trio.sleep(0.05)  # (until the sockets of the stories before have gone)

            heard: list[tuple[str, Any]] = []
            arrived = trio.Event()

            def hear(who: str) -> Any:
                def on_announcement(text: Any) -> None:
                    heard.append((who, text))
                    if len(heard) == 5:
                        arrived.set()

                return on_announcement

            for client in on_a:
                client.on("announcement", hear("a"))
            for client in [*on_b, *on_c]:
                client.on("announcement", hear("bc"))
            await on_a[0].post("/team/announce", {"text": "release at 5"})
            await arrived.wait()
            await trio.sleep(0.3)  # a stray copy, to A's socket, would have arrived by now
            assert sorted(heard) == [("bc", "release at 5")] * 5
    assert_logs_clean(cluster)
