"""A broadcast with acks across two processes, on trio's mock clock: exact timeouts, no Redis.

Two apps are served in memory in one trio run, and their buses are linked by a loopback in place of
Redis (each message still goes out as JSON and in through the bus's own receiving code). The story
is about time: an ack that never comes ends the broadcast at exactly its timeout, in the asking
process and in the one holding the silent socket, and leaves nothing behind in either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import trio

from trisails import App
from trisails.realtime.cluster import RedisAdapter, RedisBus, route
from trisails.testing import InMemoryServer, MemoryWebSocket, serve_in_memory


class LoopbackBus(RedisBus):
    """A bus whose Redis is the other buses of ``net``: what one publishes, the others receive on a
    later tick, in order, as JSON."""

    def __init__(self, net: list[LoopbackBus]) -> None:
        super().__init__("redis://loopback", key="loopback")
        self.net = net
        net.append(self)
        self.connected = True

    def publish(self, kind: str, body: dict[str, Any], *, to: str | None = None) -> None:
        message = orjson.dumps({"kind": kind, "from": self.uid, **body})
        self._send.send_nowait((to or "", message))

    async def others(self, timeout: float = 1.0) -> int:
        return len(self.net) - 1

    async def relay(self) -> None:
        async for to, message in self._queue:
            for peer in self.net:
                if not to or peer.uid == to:
                    peer._receive(message)


def linked_app(net: list[LoopbackBus], nursery: trio.Nursery) -> App:
    app = App()
    bus = LoopbackBus(net)
    adapters: dict[str, RedisAdapter] = {}

    def make(deliver: Callable[[str, Any], object], name: str) -> RedisAdapter:
        adapters[name] = RedisAdapter(deliver, bus, name)
        return adapters[name]

    app.io.use_adapter(make)
    route(bus, adapters.get)
    nursery.start_soon(bus.relay)
    return app


async def connect_v4(server: InMemoryServer) -> tuple[MemoryWebSocket, str]:
    ws = await server.websocket()
    assert (await ws.receive()).startswith("0")  # type: ignore[union-attr]
    await ws.send("40")
    connected = await ws.receive()
    assert isinstance(connected, str) and connected.startswith("40")
    return ws, json.loads(connected[2:])["sid"]


def event(message: str | bytes) -> tuple[int, list[Any]]:
    """An EVENT packet with an ack id (``42<id>[...]``) as its id and data."""
    assert isinstance(message, str) and message.startswith("42"), message
    body = message[2:]
    digits = len(body) - len(body.lstrip("0123456789"))
    return int(body[:digits]), json.loads(body[digits:])


async def test_an_ack_that_never_comes_ends_the_broadcast_at_its_timeout_and_frees_both_processes(autojump_clock: Any) -> None:
    net: list[LoopbackBus] = []
    async with trio.open_nursery() as nursery:
        one, two = linked_app(net, nursery), linked_app(net, nursery)
        async with serve_in_memory(one) as server_one, serve_in_memory(two) as server_two:
            ws_alice, alice = await connect_v4(server_one)
            ws_bob, bob = await connect_v4(server_two)  # he will not answer in time
            one.io.sockets[alice].join("team")
            two.io.sockets[bob].join("team")
            replies: list[Any] = []
            start = trio.current_time()

            async def ask() -> None:
                replies.append(await one.io.to("team").timeout(5).call("vote", "lunch?"))
                replies.append(trio.current_time())

            async with trio.open_nursery() as asking:
                asking.start_soon(ask)
                ack_id, data = event(await ws_alice.receive())
                assert data == ["vote", "lunch?"]
                await ws_alice.send(f"43{ack_id}[\"yes\"]")
                bob_ack, data = event(await ws_bob.receive())  # through the loopback, with process two's ack id
                assert data == ["vote", "lunch?"]
                await trio.sleep(4.9)
                assert two.io.sockets[bob]._acks  # still waiting for him, just before the timeout
            reply, ended = replies
            assert reply.responses == {alice: ["yes"]} and reply.missing == {bob}
            assert ended - start == 5  # not a moment later
            # process two let go at the same timeout; process one holds nothing either
            await trio.sleep(0.01)
            assert not two.io.sockets[bob]._acks and not one.io.sockets[alice]._acks
            assert not net[0]._asks and not net[1]._asks

            # bob's answer comes now: it is ignored, and he is served as before
            await ws_bob.send(f"43{bob_ack}[\"too late\"]")
            replies.clear()
            async with trio.open_nursery() as asking:
                asking.start_soon(ask)
                for ws, answer in ((ws_alice, "again"), (ws_bob, "in time")):
                    ack_id, _ = event(await ws.receive())
                    await ws.send(f"43{ack_id}[\"{answer}\"]")
            reply, ended = replies
            assert reply.responses == {alice: ["again"], bob: ["in time"]} and reply.complete
            assert ended - start < 5.1  # everyone answered: no waiting for the timeout
            await ws_alice.aclose()
            await ws_bob.aclose()
        nursery.cancel_scope.cancel()


def test_answers_from_another_process_count_in_any_order_and_once() -> None:
    from trisails.realtime.server import _Gathering, _pack

    gathering = _Gathering()
    gathering.expect(1)
    # an ack that overtook its process's report, then the report, then the same ack again
    gathering.on_answer({"sid": "s1", "args": _pack(["yes"])})
    assert not gathering.done.is_set()
    gathering.on_answer({"reached": ["s1", "s2"], "lost": ["s3"]})
    gathering.on_answer({"sid": "s1", "args": _pack(["changed my mind"])})
    assert gathering.responses == {"s1": ["yes"]} and gathering.pending == {"s2"} and gathering.lost == {"s3"}
    gathering.on_answer({"sid": "s2", "gone": True})
    assert gathering.done.is_set() and gathering.lost == {"s2", "s3"}
    # an answer nobody can read is dropped, not fatal
    other = _Gathering()
    other.expect(1)
    other.on_answer({"reached": ["s9"]})
    other.on_answer({"sid": "s9", "args": [{"b": "not base64!"}, "x"]})
    assert other.pending == {"s9"} and not other.done.is_set()


async def test_a_message_another_process_got_wrong_is_logged_and_changes_nothing(autojump_clock: Any, caplog: Any) -> None:
    net: list[LoopbackBus] = []
    async with trio.open_nursery() as nursery:
        one, two = linked_app(net, nursery), linked_app(net, nursery)
        async with serve_in_memory(one) as server_one:
            ws, sid = await connect_v4(server_one)
            bus_two = net[1]
            bus_two.publish("broadcast_ack", {"ns": "/", "rooms": [], "exclude": [], "data": "not packed", "ask": "x"})
            bus_two.publish("sockets", {"ns": "/", "op": "join"})  # no rooms, no target
            bus_two.publish("fetch_sockets", {"ns": "/nowhere", "rooms": [], "exclude": [], "ask": "y"})
            await trio.sleep(1)
            assert "handling a 'broadcast_ack' message failed" in caplog.text
            assert "handling a 'sockets' message failed" in caplog.text
            assert one.io.sockets[sid].rooms == {sid} and not one.io.sockets[sid]._acks
            # and the link goes on working
            reply = await two.io.fetch_sockets()
            assert [s.id for s in reply] == [sid]
            await ws.aclose()
        nursery.cancel_scope.cancel()
