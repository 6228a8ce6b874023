"""Recovery state kept in Redis, told with two apps in one test sharing the Redis on 6379 (a key of their own).

Byte level, with a raw Engine.IO client: a socket lost on one app recovers on the other with every
broadcast it missed, however many (the stream is read in pages); a session recovers once; an unknown or
forged pid or offset gets a fresh socket.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import orjson
import trio

from tests.cluster.processes import SHARED_REDIS, delete_keys, require_shared_redis
from tests.support.raw import RawWebSocket, close_tcp, raw_websocket
from trisails import App, Settings, Socket, SocketSettings

WAIT = 10.0


def lobby_app(key: str) -> App:
    app = App(settings=Settings(sockets=SocketSettings(recovery=True, redis_url=SHARED_REDIS, redis_key=key)))

    @app.io.on("connection")
    def connected(socket: Socket) -> None:
        @socket.on("join")
        def join(name: str) -> str:
            socket.data["name"] = name
            socket.join("lobby")
            return "joined"

    return app


@asynccontextmanager
async def two_apps() -> AsyncIterator[tuple[tuple[App, str], tuple[App, str]]]:
    require_shared_redis()
    key = f"trisails-test-{secrets.token_hex(6)}"
    a, b = lobby_app(key), lobby_app(key)
    try:
        async with a.lifted() as url_a, b.lifted() as url_b:
            yield (a, url_a), (b, url_b)
    finally:
        delete_keys(6379, key)


async def connect(ws: RawWebSocket, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    await ws.handshake()
    await ws.send("40" + (orjson.dumps(payload).decode() if payload else ""))
    while True:  # a recovery's missed broadcasts come first: skip them here
        frame = await ws.receive()
        if isinstance(frame, str) and frame.startswith("40"):
            return orjson.loads(frame[2:])


async def joined_then_lost(app: App, url: str) -> tuple[dict[str, Any], str]:
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(raw_websocket(url))
        answer = await connect(ws)
        await ws.send('420["join","ann"]')
        assert await ws.receive() == '430["joined"]'
        app.io.to("lobby").emit("news", "before")
        frame = await ws.receive()
        assert isinstance(frame, str)
        offset = orjson.loads(frame[2:])[-1]
        await close_tcp(ws.ws)
    key = f"{app.bus.key}:recovery:1:/:session:{answer['pid']}" if app.bus else ""
    with trio.fail_after(WAIT):
        while answer["sid"] in app.io.sockets or not await app.bus.client.exists([key]):  # type: ignore[union-attr]
            await trio.sleep(0.01)
    return answer, offset


async def test_a_socket_lost_on_one_process_recovers_on_another_with_everything_it_missed() -> None:
    async with two_apps() as ((a, url_a), (b, url_b)):
        answer, offset = await joined_then_lost(a, url_a)
        heard_from_a = 0  # A's broadcasts that reached B through pub/sub (live, to B's own sockets)
        adapter: Any = b.io.main.adapter
        on_broadcast = adapter.on_broadcast

        def counting(message: dict[str, Any]) -> None:
            nonlocal heard_from_a
            heard_from_a += 1
            on_broadcast(message)

        adapter.on_broadcast = counting
        for n in range(620):  # more than one page of the stream
            (a if n % 2 else b).io.to("lobby").emit("news", n)
        b.io.to("kitchen").emit("news", "not for ann")
        with trio.fail_after(WAIT):
            while await a.bus.client.xlen(f"{a.bus.key}:recovery:1:/:packets") < 622:  # type: ignore[union-attr]
                await trio.sleep(0.01)
            while heard_from_a < 310:  # (one still on its way would reach the recovered socket twice)
                await trio.sleep(0.01)
        async with raw_websocket(url_b) as ws:
            await ws.handshake()
            await ws.send('40{"pid":"%s","offset":"%s"}' % (answer["pid"], offset))
            missed = []
            for _ in range(620):
                frame = await ws.receive()
                assert isinstance(frame, str) and frame.startswith("42"), frame
                missed.append(orjson.loads(frame[2:])[1])
            # every one, each process's in the order it made them (two processes broadcasting at the same
            # moment are kept in the order Redis received their pipelines)
            assert sorted(missed) == list(range(620))
            assert [n for n in missed if n % 2] == list(range(1, 620, 2))
            assert [n for n in missed if not n % 2] == list(range(0, 620, 2))
            assert await ws.receive() == '40{"sid":"%s","pid":"%s"}' % (answer["sid"], answer["pid"])
            socket = b.io.sockets[answer["sid"]]
            assert socket.recovered and socket.data == {"name": "ann"} and socket.rooms == {answer["sid"], "lobby"}
            await close_tcp(ws.ws)


async def test_over_redis_a_session_recovers_once_and_forged_pids_or_offsets_get_fresh_sockets() -> None:
    async with two_apps() as ((a, url_a), (b, url_b)):
        answer, offset = await joined_then_lost(a, url_a)
        forged = [
            {"pid": "not-a-pid", "offset": offset},
            {"pid": answer["pid"], "offset": "0-0-" + "x" * 20},  # not in the stream: the pid is spent too
        ]
        for attempt in forged:
            async with raw_websocket(url_b) as ws:
                fresh = await connect(ws, attempt)
                assert fresh["sid"] != answer["sid"] and not b.io.sockets[fresh["sid"]].recovered

        answer, offset = await joined_then_lost(a, url_a)
        async with raw_websocket(url_b) as ws, raw_websocket(url_a) as again:
            assert await connect(ws, {"pid": answer["pid"], "offset": offset}) == answer
            fresh = await connect(again, {"pid": answer["pid"], "offset": offset})  # the same pid, elsewhere
            assert fresh["sid"] != answer["sid"]
