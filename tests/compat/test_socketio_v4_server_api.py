"""Socket.IO 4's server API on trisails, told with the real socket.io-client 4.8.1 (over websocket).

What a Socket.IO server written for Node does, and that a port to trisails needs: dates, decimals and
UUIDs on the wire, the handshake as data, a handler that answers an ack when (and if) it chooses,
asking the client without holding up its later events, volatile emits, and broadcasts with acks.
"""

from __future__ import annotations

import datetime
import decimal
import secrets
import uuid
from contextlib import AsyncExitStack
from typing import Any

import trio

from tests.cluster.processes import SHARED_REDIS, delete_keys, require_shared_redis
from tests.compat.apps import lifted, steady_reference_app
from tests.support.jsclient import JsAckTimeout, JsDriver, JsSocket
from trisails import Ack, App, Socket

WEBSOCKET = {"transports": ["websocket"]}


def server_api_app(**sockets_settings: Any) -> tuple[App, dict[str, Socket]]:
    """The reference app, plus the events these stories use; returns it and its sockets by id."""
    app = steady_reference_app(**sockets_settings)
    sockets: dict[str, Socket] = {}

    @app.io.on("connection")
    def on_connection(socket: Socket) -> None:
        sockets[socket.id] = socket

        @socket.on("when")
        def when() -> tuple[Any, ...]:
            moment = datetime.datetime(2026, 12, 7, 19, 58, 0, 123456, tzinfo=datetime.timezone.utc)
            return moment, datetime.date(2026, 12, 7), decimal.Decimal("12.50"), uuid.UUID(int=1)

        @socket.on("who-am-i")
        def who_am_i() -> None:
            socket.emit("you-are", socket.handshake)

        @socket.on("maybe")
        def maybe(answer: bool, *, ack: Ack | None) -> None:
            if answer and ack is not None:
                ack(None)  # one null, which `return None` cannot say

        @socket.on("confirm")
        def confirm(order: str, *, ack: Ack | None) -> None:
            async def ask() -> None:  # the answer waits for the client; its other events do not
                answer = await socket.call("sure?", order, timeout=5)
                if ack is not None:
                    ack(order, *answer)

            socket.start_soon(ask)

        @socket.on("ping")
        def ping(n: int) -> int:
            return n

        @socket.on("burst")
        def burst(everyone: bool) -> None:
            socket.emit("news", "a")  # queued behind nothing: it goes at once (or waits for a poll)
            if everyone:
                app.io.volatile.emit("news", "b")
            else:
                socket.volatile.emit("news", "b")
            socket.emit("news", "c")

    return app, sockets


async def connect(js: JsDriver, url: str) -> JsSocket:
    return await js.connect("v4", url, options=WEBSOCKET)


async def test_dates_decimals_and_uuids_reach_the_client_as_javascript_would_write_them(js: JsDriver) -> None:
    app, _ = server_api_app()
    async with lifted(app, js) as url:
        client = await connect(js, url)
        assert await client.emit("when", ack=True) == [
            "2026-12-07T19:58:00.123Z",  # new Date(...).toJSON(): UTC, milliseconds
            "2026-12-07T00:00:00.000Z",
            "12.50",
            "00000000-0000-0000-0000-000000000001",
        ]


async def test_the_handshake_can_be_emitted_and_copied_as_a_dict(js: JsDriver) -> None:
    app, sockets = server_api_app()
    async with lifted(app, js) as url:
        client = await connect(js, url)
        await client.emit("who-am-i")
        [sent] = await client.next_event("you-are")
        handshake = sockets[client.id].handshake
        assert sent == handshake.to_dict() == dict(handshake)
        assert sent["query"]["EIO"] == "4" and sent["address"] == "127.0.0.1"
        copy = handshake.to_dict()
        copy["query"]["EIO"] = "changed"
        assert handshake.query["EIO"] == "4"  # a copy, not the socket's own


async def test_a_handler_can_answer_a_single_null_or_leave_the_ack_unanswered(js: JsDriver) -> None:
    app, _ = server_api_app()
    async with lifted(app, js) as url:
        client = await connect(js, url)
        assert await client.emit("maybe", True, ack=True) == [None]
        try:
            await client.emit("maybe", False, ack=True, ack_timeout=0.3)
        except JsAckTimeout:
            pass  # the client's own timeout: the server never answered
        else:
            raise AssertionError("the server answered an ack its handler left unanswered")
        assert await client.emit("ping", 1, ack=True) == [1]


async def test_asking_the_client_from_a_started_task_does_not_hold_up_its_later_events(js: JsDriver) -> None:
    app, _ = server_api_app()
    async with lifted(app, js) as url:
        client = await connect(js, url)
        async with trio.open_nursery() as nursery:
            confirmed: list[Any] = []

            async def order() -> None:
                confirmed.append(await client.emit("confirm", "pizza", ack=True))

            nursery.start_soon(order)
            question = await client.receive("sure?")
            # the question is not answered yet, and the socket's next event is handled all the same
            assert await client.emit("ping", 2, ack=True) == [2]
            await question.ack("yes")
        assert confirmed == [["pizza", "yes"]]


async def wait_until_writable(socket: Socket) -> None:
    """Until the client can take a message at once (a polling client has sent its next GET); bounded."""
    with trio.fail_after(5):
        while not socket._connection.session.writable:
            await trio.sleep(0.01)


async def test_a_volatile_emit_is_dropped_for_a_client_that_cannot_take_it_at_once(js: JsDriver) -> None:
    app, sockets = server_api_app()
    async with lifted(app, js) as url:
        polling = await js.connect("v4", url, options={"transports": ["polling"]})
        websocket = await connect(js, url)
        # "a" is waiting for the polling client's next GET, so "b" would wait behind it: it is dropped
        await polling.emit("burst", False)
        assert [await polling.next_event("news") for _ in range(2)] == [["a"], ["c"]]
        # on an idle websocket nothing waits: all three go out, in order
        await websocket.emit("burst", False)
        assert [await websocket.next_event("news") for _ in range(3)] == [["a"], ["b"], ["c"]]
        # once the polling client waits again with nothing queued, a volatile emit reaches it
        await wait_until_writable(sockets[polling.id])
        assert sockets[polling.id].volatile.emit("news", "d") is True
        assert await polling.next_event("news") == ["d"]
        await polling.expect_no_event("news")


async def test_a_volatile_broadcast_skips_only_the_clients_that_cannot_take_it(js: JsDriver) -> None:
    app, sockets = server_api_app()
    async with lifted(app, js) as url:
        polling = await js.connect("v4", url, options={"transports": ["polling"]})
        websocket = await connect(js, url)
        await wait_until_writable(sockets[polling.id])
        await polling.emit("burst", True)  # the polling client has "a" waiting when io.volatile emits "b"
        assert [await polling.next_event("news") for _ in range(2)] == [["a"], ["c"]]
        assert await websocket.next_event("news") == ["b"]
        await websocket.expect_no_event("news")


async def test_a_broadcast_gathers_the_acks_of_a_room_and_names_who_did_not_answer(js: JsDriver) -> None:
    app, sockets = server_api_app()
    async with lifted(app, js) as url:
        alice, bob, carol, dave = [await connect(js, url) for _ in range(4)]
        for client in (alice, bob, carol):
            sockets[client.id].join("team")
        replies: list[Any] = []

        async def ask() -> None:
            replies.append(await app.io.to("team").timeout(1.0).call("vote", "lunch?"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            await (await alice.receive("vote")).ack("yes", 1)
            await (await bob.receive("vote")).ack("no")
            late = await carol.receive("vote")  # carol got it too, with an ack id, and stays silent
            assert late.args == ["lunch?"] and late.wants_ack
        [reply] = replies
        assert reply.responses == {alice.id: ["yes", 1], bob.id: ["no"]}
        assert reply.missing == {carol.id} and not reply.complete
        await dave.expect_no_event("vote", within=0.05)  # not in the room
        # the timeout freed what the sockets held for the broadcast: carol's late answer is ignored
        assert all(not socket._acks for socket in sockets.values())
        await late.ack("too late")
        assert await carol.emit("ping", 3, ack=True) == [3]


async def test_a_broadcast_with_acks_returns_as_soon_as_everyone_answered_or_left(js: JsDriver) -> None:
    app, sockets = server_api_app()
    async with lifted(app, js) as url:
        alice, bob = await connect(js, url), await connect(js, url)
        replies: list[Any] = []

        async def ask() -> None:  # a long timeout: the call returns because nobody is left to answer
            replies.append(await app.io.timeout(30).emit_with_ack("vote", "dinner?"))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask)
                await alice.receive("vote")
                await (await bob.receive("vote")).ack("sure")
                await alice.disconnect()  # leaving counts as not answering
        [reply] = replies
        assert reply.responses == {bob.id: ["sure"]} and reply.missing == {alice.id}
        assert (await app.io.to("nobody").call("vote")).responses == {}  # no target: at once


async def test_the_sockets_of_a_room_can_be_fetched_moved_and_disconnected_together(js: JsDriver) -> None:
    app, sockets = server_api_app()
    async with lifted(app, js) as url:
        alice, bob, carol = [await connect(js, url) for _ in range(3)]
        sockets[alice.id].join("lobby")
        sockets[bob.id].join("lobby")
        fetched = await app.io.in_("lobby").fetch_sockets()
        assert sorted(socket.id for socket in fetched) == sorted([alice.id, bob.id])
        assert all("lobby" in socket.rooms and socket.handshake.query["EIO"] == "4" for socket in fetched)
        app.io.in_("lobby").sockets_join(["game", "chat"])
        app.io.in_("lobby").sockets_leave("lobby")
        assert app.io.to("game").socket_ids() == {alice.id, bob.id} and app.io.to("lobby").socket_ids() == set()
        app.io.to("chat").emit("hello")
        assert await alice.next_event("hello") == [] and await bob.next_event("hello") == []
        await carol.expect_no_event("hello", within=0.05)
        app.io.to("game").disconnect_sockets()
        assert await alice.next_event("disconnect") == ["io server disconnect"]
        assert await bob.next_event("disconnect") == ["io server disconnect"]
        assert await carol.emit("ping", 4, ack=True) == [4]


async def test_a_broadcast_with_acks_gathers_the_answers_of_clients_on_two_processes(js: JsDriver) -> None:
    """Two apps on the shared Redis (two processes of one cluster, in one trio run): a broadcast with
    acks from one reaches the clients of both, and gathers every answer, naming the silent ones."""
    require_shared_redis()
    key = f"trisails-test-{secrets.token_hex(6)}"
    (one, sockets_one), (two, sockets_two) = (server_api_app(redis_url=SHARED_REDIS, redis_key=key) for _ in range(2))
    try:
        async with AsyncExitStack() as stack:
            url_one = await stack.enter_async_context(lifted(one, js))
            url_two = await stack.enter_async_context(lifted(two, js))
            with trio.fail_after(10):
                while not (one.bus and two.bus and await one.bus.others() == 1 and await two.bus.others() == 1):
                    await trio.sleep(0.02)
            alice, bob = await connect(js, url_one), await connect(js, url_two)
            carol = await connect(js, url_two)
            sockets_one[alice.id].join("team")
            for client in (bob, carol):
                sockets_two[client.id].join("team")
            replies: list[Any] = []

            async def ask() -> None:
                replies.append(await one.io.to("team").timeout(1.5).call("vote", "lunch?"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask)
                await (await alice.receive("vote")).ack("yes")
                await (await bob.receive("vote")).ack("no", {"because": "busy"})
                late = await carol.receive("vote")  # through Redis, with the other process's ack id
                assert late.args == ["lunch?"] and late.wants_ack
            [reply] = replies
            assert reply.responses == {alice.id: ["yes"], bob.id: ["no", {"because": "busy"}]}
            assert reply.missing == {carol.id}
            # both processes freed what their sockets held for it: carol's late answer is ignored
            with trio.fail_after(5):
                while any(socket._acks for socket in [*sockets_one.values(), *sockets_two.values()]):
                    await trio.sleep(0.01)
            await late.ack("too late")
            assert await carol.emit("ping", 5, ack=True) == [5]

            # the other way round, everyone answers: it returns without waiting for the timeout
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: _ask_into(replies, two))
                for client in (alice, bob, carol):
                    await (await client.receive("vote")).ack(client.id)
            assert replies[-1].responses == {c.id: [c.id] for c in (alice, bob, carol)} and replies[-1].complete
    finally:
        delete_keys(6379, key)


async def _ask_into(replies: list[Any], app: App) -> None:
    with trio.fail_after(10):  # far less than the timeout: everybody answers
        replies.append(await app.io.to("team").timeout(30).call("vote", "dinner?"))
