"""Socket.IO 4's server API across processes: three apps in one trio run, each with its own link to the
shared Redis (a process of the cluster is its :class:`~trisails.realtime.cluster.RedisBus`; the stories
with real child processes are in ``test_three_processes.py``), and ``trisails.client`` as the clients.

Broadcasts with acks gather the answers of every process's sockets and name those that did not answer;
``fetch_sockets`` finds the other processes' sockets and acts on them; ``sockets_join``,
``sockets_leave`` and ``disconnect_sockets`` reach every process; the processes talk among themselves
with ``server_side_emit`` and ``server_side_call``; volatile broadcasts cross too. Without Redis, all of
it works on the process's own sockets.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from tests.cluster.processes import SHARED_REDIS, delete_keys, free_port, require_shared_redis
from trisails import AckTimeout, App, RemoteSocket, ServerSideReply, Settings, Socket
from trisails.client import Client, connect
from trisails.realtime.cluster import RedisAdapter, RedisBus

#: Seconds one story may take, all of its waits included.
WAIT = 15.0


def app_on(redis_url: str, key: str) -> App:
    settings = Settings()
    settings.sockets.redis_url = redis_url
    settings.sockets.redis_key = key
    settings.session.secret = "a session secret shared by the apps of one story, long enough"
    return App(settings)


@asynccontextmanager
async def three_apps() -> AsyncIterator[list[tuple[App, str]]]:
    """Three apps lifted on the shared Redis under a key of their own; yields each with its URL once
    every one of them sees the other two on the bus."""
    require_shared_redis()
    key = f"trisails-test-{secrets.token_hex(6)}"
    apps = [app_on(SHARED_REDIS, key) for _ in range(3)]
    try:
        async with AsyncExitStack() as stack:
            lifted = [(app, await stack.enter_async_context(app.lifted())) for app in apps]
            with trio.fail_after(WAIT):
                for app in apps:
                    assert app.bus is not None
                    while await app.bus.others() != 2:
                        await trio.sleep(0.02)
            yield lifted
    finally:
        delete_keys(6379, key)


async def clients(stack: AsyncExitStack, url: str, n: int) -> list[Client]:
    return [await stack.enter_async_context(connect(url)) for _ in range(n)]


def no_broadcast_state(*apps: App) -> bool:
    """Whether no socket of any app holds an ack entry any more."""
    return all(not socket._acks for app in apps for socket in app.io.sockets.values())


async def until(condition: Any) -> None:
    """Until ``condition()`` holds (the story bounds the wait)."""
    while not condition():
        await trio.sleep(0.01)


# ------------------------------------------------------------------------------------------------ acks from many
async def test_a_broadcast_gathers_the_acks_of_every_process_and_names_who_did_not_answer() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, url_a), (b, url_b), (c, url_c)], AsyncExitStack() as stack:
            (alice,) = await clients(stack, url_a, 1)
            bob, outsider = await clients(stack, url_b, 2)
            carol, dave = await clients(stack, url_c, 2)
            alice.on("vote", lambda question: ("yes", 1))
            bob.on("vote", lambda question: "no")
            carol.on("vote", lambda question: {"maybe": question})
            outsider.on("vote", lambda question: "not asked")
            # dave has no handler: he gets the question and never answers
            for client, app in ((alice, a), (bob, b), (carol, c), (dave, c)):
                app.io.sockets[client.id].join("team")

            reply = await a.io.to("team").timeout(1.0).call("vote", "lunch?")
            assert reply.responses == {alice.id: ["yes", 1], bob.id: ["no"], carol.id: [{"maybe": "lunch?"}]}
            assert reply.missing == {dave.id} and not reply.complete
            # the timeout freed what every process held for the broadcast (C frees it at the same timeout)
            await until(lambda: no_broadcast_state(a, b, c))


async def test_a_broadcast_with_acks_returns_as_soon_as_every_socket_of_every_process_answered_or_left() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, url_a), (b, url_b), (c, url_c)], AsyncExitStack() as stack:
            (alice,) = await clients(stack, url_a, 1)
            (bob,) = await clients(stack, url_b, 1)
            alice.on("vote", lambda question: "sure")

            async def answer_after_a_while(question: str) -> str:
                await trio.sleep(0.2)
                return "after a while"

            bob.on("vote", answer_after_a_while)
            start = trio.current_time()
            reply = await b.io.timeout(30).call("vote", "dinner?")  # B asks: A's socket, and its own
            assert reply.responses == {alice.id: ["sure"], bob.id: ["after a while"]} and reply.complete
            assert trio.current_time() - start < 5  # nobody was left to answer: no waiting for the timeout

            # a socket of C that leaves without answering counts as missing at once
            async with connect(url_c) as leaving:  # it has no handler for "vote": it never answers
                replies: list[Any] = []
                leaving_id = leaving.id

                async def ask() -> None:
                    replies.append(await a.io.to(leaving_id).timeout(30).call("vote", "still there?"))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ask)
                    await until(lambda: any(s._acks for s in c.io.sockets.values()))
                    c.io.sockets[leaving.id].disconnect()
            [reply] = replies
            assert reply.responses == {} and reply.missing == {leaving_id}
            assert no_broadcast_state(a, b, c)


async def test_a_volatile_broadcast_with_acks_and_an_empty_target_across_processes() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, url_a), (b, url_b), (_, _url_c)], AsyncExitStack() as stack:
            (bob,) = await clients(stack, url_b, 1)
            bob.on("tick", lambda n: n + 1)
            reply = await a.io.volatile.timeout(2).call("tick", 41)
            assert reply.responses == {bob.id: [42]}
            # nobody in the room, in any process: it returns once each process said so
            start = trio.current_time()
            assert await a.io.to("nobody").timeout(30).call("tick", 1) == type(reply)({}, frozenset())
            assert trio.current_time() - start < 5


# ------------------------------------------------------------------------------------------------ fetch_sockets
async def test_fetch_sockets_finds_the_sockets_of_every_process_and_acts_on_them() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, url_a), (b, url_b), (c, url_c)], AsyncExitStack() as stack:
            (alice,) = await clients(stack, url_a, 1)
            bob, outsider = await clients(stack, url_b, 2)
            (carol,) = await clients(stack, url_c, 1)
            for client, app in ((alice, a), (bob, b), (carol, c)):
                socket = app.io.sockets[client.id]
                socket.join("lobby")
                socket.data["name"] = f"user of {client.id}"
            carol.on("sure?", lambda order: f"{order}: yes")

            fetched = await a.io.in_("lobby").fetch_sockets()
            by_id = {socket.id: socket for socket in fetched}
            assert set(by_id) == {alice.id, bob.id, carol.id}
            assert isinstance(by_id[alice.id], Socket)  # this process's own: the socket itself
            remote_bob, remote_carol = by_id[bob.id], by_id[carol.id]
            assert isinstance(remote_bob, RemoteSocket) and isinstance(remote_carol, RemoteSocket)
            assert remote_bob.rooms == {bob.id, "lobby"}
            assert remote_bob.data == {"name": f"user of {bob.id}"}
            assert remote_bob.handshake == b.io.sockets[bob.id].handshake
            assert remote_bob.handshake.query["EIO"] == "4"
            assert {s.id for s in await a.io.fetch_sockets()} == {alice.id, bob.id, outsider.id, carol.id}
            assert {s.id for s in await c.io.except_("lobby").fetch_sockets()} == {outsider.id}

            # each remote socket is acted on where it lives
            heard = trio.Event()
            bob.on("psst", lambda text: heard.set() if text == "hi bob" else None)
            remote_bob.emit("psst", "hi bob")
            await heard.wait()
            assert await remote_carol.call("sure?", "pizza", timeout=5) == ["pizza: yes"]
            remote_bob.join(["game", "chat"])
            remote_bob.leave("lobby")
            await until(lambda: b.io.sockets[bob.id].rooms == {bob.id, "game", "chat"})
            left = trio.Event()
            carol.on("disconnect", lambda reason: left.set())
            remote_carol.disconnect()
            await left.wait()
            await until(lambda: carol.id not in c.io.sockets)
            # a socket that has gone: nothing raises, its call times out
            try:
                await remote_carol.call("sure?", "again", timeout=0.3)
            except AckTimeout:
                pass
            else:
                raise AssertionError("a socket that has gone answered")
            assert no_broadcast_state(a, b, c)


# ------------------------------------------------------------------------------------------------ operators
async def test_sockets_join_leave_and_disconnect_reach_the_sockets_of_every_process() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, url_a), (b, url_b), (c, url_c)], AsyncExitStack() as stack:
            (alice,) = await clients(stack, url_a, 1)
            (bob,) = await clients(stack, url_b, 1)
            carol, stays = await clients(stack, url_c, 2)
            for client, app in ((alice, a), (bob, b), (carol, c)):
                app.io.sockets[client.id].join("lobby")

            a.io.in_("lobby").sockets_join("game")
            await until(lambda: all("game" in app.io.sockets[cl.id].rooms for cl, app in ((alice, a), (bob, b), (carol, c))))
            assert "game" not in c.io.sockets[stays.id].rooms
            assert await a.sockets.count("game") == 3

            b.io.in_("game").except_(carol.id).sockets_leave(["lobby", "game"])
            await until(lambda: a.io.sockets[alice.id].rooms == {alice.id} and b.io.sockets[bob.id].rooms == {bob.id})
            assert c.io.sockets[carol.id].rooms == {carol.id, "lobby", "game"}

            gone = {client.id: trio.Event() for client in (alice, carol)}
            for client in (alice, carol):
                client.on("disconnect", lambda reason, event=gone[client.id]: event.set() if reason == "io server disconnect" else None)
            a.io.sockets[alice.id].join("doomed")
            c.io.sockets[carol.id].join("doomed")
            b.io.to("doomed").disconnect_sockets()
            for event in gone.values():
                await event.wait()
            await until(lambda: alice.id not in a.io.sockets and carol.id not in c.io.sockets)
            assert bob.id in b.io.sockets and stays.id in c.io.sockets


# ------------------------------------------------------------------------------------------------ server-side
async def test_the_processes_talk_among_themselves_with_server_side_emit_and_call() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, _), (b, _), (c, _)]:
            heard: dict[str, list[Any]] = {"a": [], "b": [], "c": []}
            got_both = trio.Event()
            for name, app in (("a", a), ("b", b), ("c", c)):

                def hello(*args: Any, name: str = name) -> None:
                    heard[name].append(args)
                    if heard["b"] and heard["c"]:
                        got_both.set()

                app.io.on_server_side("hello", hello)

            a.io.server_side_emit("hello", "world", b"\x00\x01", {"n": 1})
            await got_both.wait()
            assert heard == {"a": [], "b": [("world", b"\x00\x01", {"n": 1})], "c": [("world", b"\x00\x01", {"n": 1})]}

            @b.io.on_server_side("load")
            async def load_b() -> dict[str, Any]:
                return {"process": "b", "sockets": len(b.io.sockets)}

            c.io.on_server_side("load", lambda: {"process": "c", "sockets": len(c.io.sockets)})
            reply = await a.io.server_side_call("load", timeout=5)
            assert sorted(reply.responses, key=lambda r: r["process"]) == [
                {"process": "b", "sockets": 0},
                {"process": "c", "sockets": 0},
            ]
            assert reply.missing == 0 and reply.complete

            # a process without a handler is not waited for; one whose handler fails is missing at once
            def broken() -> None:
                raise RuntimeError("this handler is broken")

            c.io.on_server_side("only-b", broken)
            b.io.on_server_side("only-b", lambda: "b")
            start = trio.current_time()
            assert await a.io.server_side_call("only-b", timeout=30) == ServerSideReply(["b"], 1)
            assert await a.io.server_side_call("nobody-handles-this", timeout=30) == ServerSideReply([], 0)
            assert trio.current_time() - start < 5

            # a slow one is missing at the timeout
            async def slow() -> str:
                await trio.sleep(10)
                return "too late"

            c.io.on_server_side("slow", slow)
            b.io.on_server_side("slow", lambda: "quick")
            reply = await a.io.server_side_call("slow", timeout=0.5)
            assert reply.responses == ["quick"] and reply.missing == 1 and not reply.complete


async def test_server_side_events_of_another_namespace_stay_in_it() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, _), (b, _), (_c, _)]:
            b.io.of("/admin").on_server_side("who", lambda: "admin of b")
            b.io.on_server_side("who", lambda: "main of b")
            a.io.of("/admin")  # the namespace exists on A (the caller) and B; C has none and says so
            assert (await a.io.of("/admin").server_side_call("who", timeout=5)).responses == ["admin of b"]
            assert (await a.io.server_side_call("who", timeout=5)).responses == ["main of b"]


# ------------------------------------------------------------------------------------------------ volatile
async def test_a_volatile_broadcast_reaches_the_sockets_of_the_other_processes() -> None:
    with trio.fail_after(WAIT):
        async with three_apps() as [(a, _url_a), (_, url_b), (_, url_c)], AsyncExitStack() as stack:
            clients_b, clients_c = await clients(stack, url_b, 1), await clients(stack, url_c, 1)
            ticks = trio.Semaphore(0, max_value=2)
            for client in (*clients_b, *clients_c):
                client.on("tick", lambda n: ticks.release() if n == 7 else None)
            assert a.io.volatile.emit("tick", 7) == 0  # none here; the others deliver to theirs
            await ticks.acquire()
            await ticks.acquire()


# ------------------------------------------------------------------------------------------------ Redis down
async def test_with_redis_unreachable_everything_works_on_this_process_sockets() -> None:
    # an app whose link to Redis is down: its rooms adapter has a bus that never connects
    app = App()
    app.io.use_adapter(lambda deliver, name: RedisAdapter(deliver, RedisBus("redis://127.0.0.1:1/0"), name))
    app.io.on_server_side("hello", lambda: "nobody calls me")
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as alice, connect(url) as bob:
            alice.on("vote", lambda question: "yes")
            reply = await app.io.timeout(0.3).call("vote", "lunch?")
            assert reply.responses == {alice.id: ["yes"]} and reply.missing == {bob.id}
            assert {s.id for s in await app.io.fetch_sockets()} == {alice.id, bob.id}
            app.io.sockets_join("everyone")
            assert app.io.to("everyone").socket_ids() == {alice.id, bob.id}
            app.io.server_side_emit("hello")  # nobody to tell: dropped (and counted)
            assert await app.io.server_side_call("hello", timeout=5) == ServerSideReply([], 0)
            adapter = app.io.main.adapter
            assert isinstance(adapter, RedisAdapter) and adapter.bus.dropped == 2  # the join and the emit (a question is not even asked)
