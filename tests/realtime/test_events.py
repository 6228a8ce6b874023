"""Events, acknowledgements in both directions, and binary arguments."""

from __future__ import annotations

import orjson
import pytest
import trio

from tests.support.raw import RawWebSocket, raw_websocket
from trisails import AckTimeout, App, DisconnectedError, Socket


async def connect_v4(ws: RawWebSocket, auth: str = "") -> str:
    """Connect the main namespace over Engine.IO v4 and return the socket id."""
    await ws.handshake()
    await ws.send("40" + auth)
    frame = await ws.receive()
    assert isinstance(frame, str) and frame.startswith("40{"), frame
    return orjson.loads(frame[2:])["sid"]


async def test_an_event_handler_receives_the_arguments_and_its_return_value_is_the_ack() -> None:
    app = App()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        @socket.on("add")
        async def add(a: int, b: int) -> int:
            await trio.sleep(0)
            return a + b

        socket.on("pair", lambda: ("left", "right"))
        socket.on("nothing", lambda: None)

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.send('420["add",2,3]')
        await ws.expect("430[5]")
        await ws.send('421["pair"]')
        await ws.expect('431["left","right"]')
        await ws.send('422["nothing"]')
        await ws.expect("432[]")


async def test_binary_arguments_arrive_as_bytes_and_go_out_as_attachments() -> None:
    app = App()
    got: list[object] = []

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        @socket.on("upload")
        def upload(meta: dict, blob: bytes) -> dict:
            got.append((meta, blob))
            return {"echo": blob[::-1], "size": len(blob)}

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.send('451-0["upload",{"name":"a"},{"_placeholder":true,"num":0}]')
        await ws.send(b"\x00\x01\x02")
        await ws.expect('461-0[{"echo":{"_placeholder":true,"num":0},"size":3}]')
        await ws.expect(b"\x02\x01\x00")
    assert got == [({"name": "a"}, b"\x00\x01\x02")]


async def test_a_v3_client_gets_binary_frames_with_the_message_type_byte() -> None:
    app = App()
    app.io.on("connection", lambda socket: socket.emit("blob", b"\xff"))
    async with app.lifted() as url, raw_websocket(url, eio_revision=3) as ws:
        await ws.handshake()
        await ws.expect("40")
        await ws.expect('451-["blob",{"_placeholder":true,"num":0}]')
        await ws.expect(b"\x04\xff")


async def test_the_server_can_ask_the_client_for_an_ack() -> None:
    app = App()
    answers: list[list[object]] = []

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def ask() -> None:
            answers.append(await socket.call("question", "name?", timeout=5))

        socket.start_soon(ask)

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.expect('420["question","name?"]')
        await ws.send('430["ada",36]')
        with trio.fail_after(5):
            while not answers:
                await trio.sleep(0.01)
    assert answers == [["ada", 36]]


async def test_an_unanswered_call_times_out_and_a_disconnect_fails_it() -> None:
    app = App()
    outcomes: list[str] = []

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def ask(timeout: float | None) -> None:
            try:
                await socket.call("question", timeout=timeout)
            except AckTimeout:
                outcomes.append("timeout")
            except DisconnectedError:
                outcomes.append("disconnected")

        socket.start_soon(ask, 0.05)
        app.io._spawn(ask, None)  # outlives the connection, so it sees the disconnect

    async with app.lifted() as url:
        async with raw_websocket(url) as ws:
            await connect_v4(ws)
            await ws.receive()
            await ws.receive()
            with trio.fail_after(5):
                while "timeout" not in outcomes:
                    await trio.sleep(0.01)
        with trio.fail_after(5):
            while "disconnected" not in outcomes:
                await trio.sleep(0.01)
    assert sorted(outcomes) == ["disconnected", "timeout"]


async def test_an_ack_for_an_unknown_id_is_ignored_and_the_socket_lives_on() -> None:
    app = App()
    app.io.on("connection", lambda socket: socket.on("echo", lambda x: x))
    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.send('4399["stray"]')
        await ws.send('421["echo","ok"]')
        await ws.expect('431["ok"]')


async def test_a_failing_handler_is_logged_and_the_socket_lives_on(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("boom", lambda: 1 / 0)
        socket.on("echo", lambda x: x)

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.send('421["boom"]')
        await ws.send('422["echo",7]')
        await ws.expect("432[7]")
    assert any("handler for 'boom'" in r.getMessage() for r in caplog.records)


async def test_a_client_cannot_trigger_the_servers_lifecycle_events() -> None:
    app = App()
    reasons: list[str] = []

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("disconnect", reasons.append)
        socket.on("echo", lambda x: x)

    async with app.lifted() as url:
        async with raw_websocket(url) as ws:
            await connect_v4(ws)
            await ws.send('42["disconnect","fake"]')
            await ws.send('421["echo",1]')
            await ws.expect("431[1]")
            assert reasons == []
            await ws.send("41")
        with trio.fail_after(5):
            while not reasons:
                await trio.sleep(0.01)
    assert reasons == ["client namespace disconnect"]


async def test_the_server_refuses_to_emit_reserved_event_names() -> None:
    app = App()
    with pytest.raises(ValueError, match="reserved"):
        app.io.emit("connect")


async def test_a_connection_handler_can_wait_for_the_clients_ack() -> None:
    app = App()
    answers: list[list[object]] = []

    @app.io.on("connection")
    async def ask_first(socket: Socket) -> None:
        answers.append(await socket.call("name?", timeout=5))

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.expect('420["name?"]')
        await ws.send('430["ada"]')
        with trio.fail_after(5):
            while not answers:
                await trio.sleep(0.01)
    assert answers == [["ada"]]


async def test_events_are_handled_one_at_a_time_in_arrival_order() -> None:
    app = App()
    seen: list[int] = []

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def record(n: int) -> None:
            await trio.sleep(0.001 * (n % 3))  # later events would overtake earlier ones if run concurrently
            seen.append(n)

        socket.on("n", record)

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        for n in range(30):
            await ws.send(f'42["n",{n}]')
        with trio.fail_after(5):
            while len(seen) < 30:
                await trio.sleep(0.01)
    assert seen == list(range(30))
