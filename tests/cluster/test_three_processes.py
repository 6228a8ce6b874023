"""Three processes of ``examples/quickstart`` as one app: PostgreSQL for the records, Redis between them.

The stories of a team that runs the quickstart behind a load balancer: clients land on any of the
three processes (A, B, C) and must not be able to tell. Greetings in ``funSockets``, the models'
messages, invitations of a socket by its id into a room, room sizes and sessions all cross processes,
each message reaching each client exactly once and never the client whose request caused it.

The three processes are the CLI (``python -m trisails APP --port P --redis redis://127.0.0.1:6379/0``)
on a copy of the example that only adds a ``config/sockets.py`` with a ``redis_key`` of this run's own
(and, for the session story, a ``visits`` action: the example has no action that writes the session).
They share one fresh PostgreSQL database: A starts first and creates the tables (``migrate`` is
``alter`` in development), then B and C start together. They run for the whole module, so each story
uses rooms and records of its own.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.cluster.listening import Heard, assert_logs_clean, health, quiet
from tests.cluster.processes import (
    SHARED_REDIS,
    PostgresDatabase,
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
WAIT = 15.0

# The quickstart's hello reaches the sender too (as the Sails page says); here the sender is left out,
# so the test also shows the omission holds across processes.
HELLO_TO_THE_OTHERS = """
from trisails import sails


async def hello(req, res):
    sails.sockets.join(req, "funSockets")
    sails.sockets.broadcast("funSockets", "hello", {"id": sails.sockets.get_id(req)}, req)
    return res.ok()
"""

VISITS = '''"""A test-only action (the example has none that writes the session): count this session's visits."""

from trisails import Request, Response


async def visit(req: Request, res: Response) -> None:
    req.session["visits"] = req.session.get("visits", 0) + 1
    return res.ok({"visits": req.session["visits"]})
'''


@dataclass
class Cluster:
    processes: list[Process]
    redis_key: str

    @property
    def a(self) -> Process:
        return self.processes[0]

    @property
    def b(self) -> Process:
        return self.processes[1]

    @property
    def c(self) -> Process:
        return self.processes[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_shared_redis()
    work: Path = tmp_path_factory.mktemp("three")
    folder, key = copy_app(work / "app", extra={"api/controllers/visits.py": VISITS, "api/controllers/say.py": HELLO_TO_THE_OTHERS})
    database = PostgresDatabase()
    processes: list[Process] = []
    try:
        env = {"TRISAILS_DATABASE_URL": database.url}
        processes.append(launch("A", folder, work, redis_url=SHARED_REDIS, env=env))
        # A creates the tables first: processes creating them at the same time on an empty database can
        # collide (one of them then exits, "duplicate key value violates unique constraint")
        wait_serving(processes)
        processes += [launch(name, folder, work, redis_url=SHARED_REDIS, env=env) for name in "BC"]
        wait_serving(processes[1:])
        yield Cluster(processes, key)
    finally:
        stop_all(processes)
        database.drop()
        delete_keys(6379, key)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def clients(stack: AsyncExitStack, process: Process, n: int, **options: Any) -> list[Client]:
    return [await stack.enter_async_context(connect(process.url, **options)) for _ in range(n)]


# ------------------------------------------------------------------------------------------------ health
async def test_every_process_reports_its_redis_link_up_at_the_health_endpoint(cluster: Cluster, http: httpx.AsyncClient) -> None:
    with trio.fail_after(WAIT):
        for process in cluster.processes:
            report = await health(http, process)
            assert report["status"] == "ok", report
            assert report["draining"] is False
            assert report["redis"] == {"connected": True, "down_for": None, "dropped": 0}, report
    assert_logs_clean(cluster.processes)


# ------------------------------------------------------------------------------------------------ say/hello
async def test_hello_reaches_every_member_on_every_process_exactly_once_and_never_the_sender(cluster: Cluster, http: httpx.AsyncClient) -> None:
    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            per_process = [await clients(stack, p, 3) for p in cluster.processes]
            heard = {client.id: Heard(client, "hello") for client in itertools.chain(*per_process)}
            # they arrive one after the other, taking turns between the processes: A1 B1 C1 A2 B2 ...
            arrivals = [c for turn in zip(*per_process, strict=True) for c in turn]

            async def arrive(newcomer: Client, members: list[Client]) -> None:
                body, jwr = await newcomer.get("/say/hello")
                assert jwr.status_code == 200, body
                for member in members:  # each one already there hears the newcomer (A's hello reaches C)
                    await heard[member.id].until(lambda payloads: {"id": newcomer.id} in payloads)

            # The first one of each process arrives; once a member of every process is in, each later
            # hello is waited for on every process before the next client arrives. (Before that, a hello
            # still on its way through Redis may reach a socket that joined on another process after the
            # sender got its answer: delivery to the other processes is asynchronous.)
            first, then = arrivals[:3], arrivals[3:]
            for i, newcomer in enumerate(first):
                await arrive(newcomer, first[:i])
            await quiet()
            for h in heard.values():
                h.clear()
            for i, newcomer in enumerate(then):
                await arrive(newcomer, [*first, *then[:i]])
            await quiet()
            for member in first:
                assert heard[member.id].payloads() == [{"id": c.id} for c in then], heard[member.id].payloads()
            for i, member in enumerate(then):
                expected = [{"id": later.id} for later in then[i + 1 :]]
                assert heard[member.id].payloads() == expected, f"member {i + 3} heard {heard[member.id].payloads()}"

            # one more hello from one client of each process: everybody else hears each of them once
            for h in heard.values():
                h.clear()
            speakers = [group[1] for group in per_process]
            for speaker in speakers:
                await speaker.get("/say/hello")
            for client in arrivals:
                others = {s.id for s in speakers} - {client.id}
                await heard[client.id].until(lambda payloads: {p["id"] for p in payloads} >= others)
            await quiet()
            for client in arrivals:
                got = Counter(p["id"] for p in heard[client.id].payloads())
                assert got == Counter({s.id: 1 for s in speakers if s is not client}), f"{client.id} heard {got}"

            # the room holds the nine sockets, whichever process is asked
            for process in cluster.processes:
                answer = (await http.get(process.url + "/rooms/count", params={"room": "funSockets"})).json()
                assert answer == {"room": "funSockets", "sockets": 9}, (process.name, answer)
    assert_logs_clean(cluster.processes)


# ------------------------------------------------------------------------------------------------ blueprints
async def test_changes_to_users_reach_the_watchers_on_every_process_exactly_once(cluster: Cluster, http: httpx.AsyncClient) -> None:
    def verbs(h: Heard) -> Counter[tuple[str, Any]]:
        return Counter((p["verb"], p["id"]) for p in h.payloads())

    async def everyone_heard(hs: list[Heard], verb: str, id: Any) -> None:
        for h in hs:
            await h.until(lambda payloads: any(p["verb"] == verb and p["id"] == id for p in payloads))

    async def record_room_sizes(id: Any) -> list[int]:
        """How many sockets each process counts in the record's room (``sails_model_user_<id>:user``)."""
        room = f"sails_model_user_{id}:user"
        return [(await http.get(p.url + "/rooms/count", params={"room": room})).json()["sockets"] for p in cluster.processes]

    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            watchers = [c for p in cluster.processes for c in await clients(stack, p, 2)]
            (requester,) = await clients(stack, cluster.b, 1)
            heard = [Heard(w, "user") for w in watchers]
            requester_heard = Heard(requester, "user")
            for client in [*watchers, requester]:
                body, jwr = await client.get("/user")  # watches User: hears every new user
                assert jwr.status_code == 200 and isinstance(body, list), body

            # a socket on B creates a user: every watcher on A, B and C hears it once, B's requester not
            ann, jwr = await requester.post("/user", {"name": "ann", "age": 31})
            assert jwr.status_code == 200, ann
            await everyone_heard(heard, "created", ann["id"])
            await quiet()
            for h in heard:
                assert h.payloads() == [{"verb": "created", "data": ann, "id": ann["id"]}]
            assert requester_heard.payloads() == []
            # the watchers of every process were introduced to ann's room (the requester subscribed to it)
            assert await record_room_sizes(ann["id"]) == [7, 7, 7]

            # an HTTP request to C creates one: nothing to leave out, everybody hears it, the requester too
            response = await http.post(cluster.c.url + "/user", json={"name": "bob"})
            assert response.status_code == 200, response.text
            bob = response.json()
            await everyone_heard([*heard, requester_heard], "created", bob["id"])
            assert await record_room_sizes(bob["id"]) == [7, 7, 7]

            # B's socket renames ann; the watchers were introduced to her room on every process
            joanna, jwr = await requester.patch(f"/user/{ann['id']}", {"name": "joanna"})
            assert jwr.status_code == 200, joanna
            await everyone_heard(heard, "updated", ann["id"])

            # an HTTP request to A deletes bob: every watcher and the requester hear it
            response = await http.delete(f"{cluster.a.url}/user/{bob['id']}")
            assert response.status_code == 200, response.text
            await everyone_heard([*heard, requester_heard], "destroyed", bob["id"])

            # B's socket deletes joanna: the watchers hear it, the requester does not
            _, jwr = await requester.delete(f"/user/{ann['id']}")
            assert jwr.status_code == 200
            await everyone_heard(heard, "destroyed", ann["id"])
            await quiet()
            # the rooms of deleted records are emptied on every process (the watchers were retired)
            while await record_room_sizes(ann["id"]) + await record_room_sizes(bob["id"]) != [0] * 6:
                await trio.sleep(0.05)

            expected = Counter({("created", ann["id"]): 1, ("created", bob["id"]): 1, ("updated", ann["id"]): 1,
                                ("destroyed", bob["id"]): 1, ("destroyed", ann["id"]): 1})
            for i, h in enumerate(heard):
                assert verbs(h) == expected, f"watcher {i} (process {'ABC'[i // 2]}) heard {h.payloads()}"
                updated = next(p for p in h.payloads() if p["verb"] == "updated")
                assert updated["data"]["name"] == "joanna" and updated["previous"]["name"] == "ann"
            assert verbs(requester_heard) == Counter({("created", bob["id"]): 1, ("destroyed", bob["id"]): 1})

            # every process sees the same table
            for process in cluster.processes:
                names = [u["name"] for u in (await http.get(process.url + "/user")).json()]
                assert "ann" not in names and "joanna" not in names and "bob" not in names
    assert_logs_clean(cluster.processes)


# ------------------------------------------------------------------------------------------------ rooms by id
async def test_a_socket_invites_sockets_of_other_processes_by_id_and_a_third_one_shouts_to_them(cluster: Cluster, http: httpx.AsyncClient) -> None:
    room = "planning"

    async def count_everywhere(expected: int) -> None:
        for process in cluster.processes:
            answer = (await http.get(process.url + "/rooms/count", params={"room": room})).json()
            assert answer == {"room": room, "sockets": expected}, (process.name, answer)

    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            (host,) = await clients(stack, cluster.a, 1)
            (shouter, guest_b) = await clients(stack, cluster.b, 2)
            (guest_c,) = await clients(stack, cluster.c, 1)
            heard = {c.id: Heard(c, "shout") for c in (host, shouter, guest_b, guest_c)}

            # the host (on A) invites a socket of C by its id; asking A first is ordered after the invitation
            _, jwr = await host.post("/rooms/invite", {"socket": guest_c.id, "room": room})
            assert jwr.status_code == 200
            answer = (await http.get(cluster.a.url + "/rooms/count", params={"room": room})).json()
            assert answer["sockets"] == 1, answer
            await count_everywhere(1)

            # a socket of B shouts to the room: C's guest hears it once, nobody else does
            _, jwr = await shouter.post("/rooms/shout", {"room": room, "text": "standup in 5"})
            assert jwr.status_code == 200
            await heard[guest_c.id].count(1)
            await quiet()
            assert heard[guest_c.id].payloads() == [{"text": "standup in 5", "from": shouter.id}]
            assert all(heard[c.id].payloads() == [] for c in (host, shouter, guest_b))

            # the host joins too, and invites B's other socket: three members, on three processes
            await host.post("/rooms/invite", {"socket": host.id, "room": room})
            await host.post("/rooms/invite", {"socket": guest_b.id, "room": room})
            answer = (await http.get(cluster.a.url + "/rooms/count", params={"room": room})).json()
            assert answer["sockets"] == 3, answer
            await count_everywhere(3)

            await shouter.post("/rooms/shout", {"room": room, "text": "now"})
            for member in (host, guest_b, guest_c):
                await heard[member.id].until(lambda payloads: {"text": "now", "from": shouter.id} in payloads)
            # a member shouts: the others hear it, wherever they are, and it does not hear itself
            await guest_c.post("/rooms/shout", {"room": room, "text": "coming"})
            for member in (host, guest_b):
                await heard[member.id].until(lambda payloads: {"text": "coming", "from": guest_c.id} in payloads)
            await quiet()
            assert [p["text"] for p in heard[host.id].payloads()] == ["now", "coming"]
            assert [p["text"] for p in heard[guest_b.id].payloads()] == ["now", "coming"]
            assert [p["text"] for p in heard[guest_c.id].payloads()] == ["standup in 5", "now"]
            assert heard[shouter.id].payloads() == []
        # every client is closed here: the room is empty, whichever process is asked
        with trio.fail_after(5):
            while True:
                answers = [(await http.get(p.url + "/rooms/count", params={"room": room})).json()["sockets"] for p in cluster.processes]
                if answers == [0, 0, 0]:
                    break
                await trio.sleep(0.05)
    assert_logs_clean(cluster.processes)


async def test_a_socket_that_disconnects_leaves_the_cluster_wide_count(cluster: Cluster, http: httpx.AsyncClient) -> None:
    room = "leaving"

    async def counts() -> list[int]:
        return [(await http.get(p.url + "/rooms/count", params={"room": room})).json()["sockets"] for p in cluster.processes]

    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            members = [c for p in cluster.processes for c in await clients(stack, p, 2)]
            for member in members:
                await member.post("/rooms/invite", {"socket": member.id, "room": room})
            assert await counts() == [6, 6, 6]
            async with connect(cluster.c.url) as short_lived:
                await short_lived.post("/rooms/invite", {"socket": short_lived.id, "room": room})
                assert await counts() == [7, 7, 7]
            while await counts() != [6, 6, 6]:
                await trio.sleep(0.05)
    assert_logs_clean(cluster.processes)


# ------------------------------------------------------------------------------------------------ sessions
async def test_a_session_started_on_one_process_goes_on_on_the_others_over_http_and_sockets(cluster: Cluster) -> None:
    with trio.fail_after(WAIT):
        async with httpx.AsyncClient(timeout=10) as http:
            first = await http.get(cluster.a.url + "/visits/visit")
            assert first.json() == {"visits": 1}, first.text
            cookie = first.headers["set-cookie"].split(";", 1)[0]
            assert cookie.startswith("sails.sid="), cookie
        visits = []
        async with httpx.AsyncClient(timeout=10, headers={"cookie": cookie}) as http:
            for process in (cluster.b, cluster.c):
                visits.append((await http.get(process.url + "/visits/visit")).json()["visits"])
            # a socket opened on B with the same cookie has the same session, and writes to it
            async with connect(cluster.b.url, headers={"cookie": cookie}) as socket:
                body, jwr = await socket.get("/visits/visit")
                assert jwr.status_code == 200, body
                visits.append(body["visits"])
            visits.append((await http.get(cluster.a.url + "/visits/visit")).json()["visits"])
        assert visits == [2, 3, 4, 5]
    assert_logs_clean(cluster.processes)
