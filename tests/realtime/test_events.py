"""Events, acknowledgements in both directions, and binary arguments."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.testing

from tests.support import memory
from tests.support.raw import RawWebSocket, raw_websocket
from trisails import AckTimeout, App, DisconnectedError, Settings, Socket, SocketSettings
from trisails.realtime.server import DISPATCHER_LINGER
from trisails.testing import serve_in_memory


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
    answered = trio.Event()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def ask() -> None:
            answers.append(await socket.call("question", "name?", timeout=5))
            answered.set()

        socket.start_soon(ask)

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.expect('420["question","name?"]')
        await ws.send('430["ada",36]')
        with trio.fail_after(5):
            await answered.wait()
    assert answers == [["ada", 36]]


async def test_a_call_the_client_never_answers_times_out_at_its_timeout(autojump_clock: trio.testing.MockClock) -> None:
    app = App(Settings(sockets=SocketSettings(ping_interval=25000, ping_timeout=20000)))
    outcomes: list[tuple[str, float]] = []
    done = trio.Event()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def ask() -> None:
            asked = trio.current_time()
            try:
                await socket.call("question", timeout=5)
            except AckTimeout:
                outcomes.append(("timeout", trio.current_time() - asked))
            done.set()

        socket.start_soon(ask)

    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await memory.connect_v4(ws)
        await memory.expect(ws, '420["question"]')  # and the client stays silent
        await done.wait()
        assert outcomes == [("timeout", pytest.approx(5.0))]
        await ws.send("430[]")  # an answer after the timeout is ignored, and the socket lives on
        await ws.send('42["still-here"]')
        await trio.testing.wait_all_tasks_blocked()
        assert app.statistics()["sessions"] == 1
        await ws.aclose()


async def test_a_call_uses_the_ack_timeout_setting_when_given_no_timeout(autojump_clock: trio.testing.MockClock) -> None:
    app = App(Settings(sockets=SocketSettings(ping_interval=25000, ping_timeout=20000, ack_timeout=7.5)))
    waited: list[float] = []
    done = trio.Event()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def ask() -> None:
            asked = trio.current_time()
            with pytest.raises(AckTimeout):
                await socket.call("question")
            waited.append(trio.current_time() - asked)
            done.set()

        socket.start_soon(ask)

    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await memory.connect_v4(ws)
        await memory.expect(ws, '420["question"]')
        await done.wait()
        assert waited == [pytest.approx(7.5)]
        await ws.aclose()


async def test_a_call_without_a_timeout_fails_when_the_client_disconnects(autojump_clock: trio.testing.MockClock) -> None:
    app = App(Settings(sockets=SocketSettings(ping_interval=25000, ping_timeout=20000)))
    outcomes: list[tuple[str, float]] = []
    done = trio.Event()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def ask() -> None:
            try:
                await socket.call("question", timeout=None)
            except DisconnectedError:
                outcomes.append(("disconnected", trio.current_time()))
            done.set()

        app.io._spawn(ask)  # outlives the connection, so it sees the disconnect

    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await memory.connect_v4(ws)
        await memory.expect(ws, '420["question"]')
        await trio.sleep(20)  # no answer, and no timeout to give up on it
        assert outcomes == []
        left = trio.current_time()
        await ws.aclose()
        await done.wait()
    assert outcomes == [("disconnected", pytest.approx(left))]


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
    gone = trio.Event()

    def disconnected(reason: str) -> None:
        reasons.append(reason)
        gone.set()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("disconnect", disconnected)
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
            await gone.wait()
    assert reasons == ["client namespace disconnect"]


async def test_the_server_refuses_to_emit_reserved_event_names() -> None:
    app = App()
    with pytest.raises(ValueError, match="reserved"):
        app.io.emit("connect")


async def test_a_connection_handler_can_wait_for_the_clients_ack() -> None:
    app = App()
    answers: list[list[object]] = []
    answered = trio.Event()

    @app.io.on("connection")
    async def ask_first(socket: Socket) -> None:
        answers.append(await socket.call("name?", timeout=5))
        answered.set()

    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        await ws.expect('420["name?"]')
        await ws.send('430["ada"]')
        with trio.fail_after(5):
            await answered.wait()
    assert answers == [["ada"]]


async def test_events_are_handled_one_at_a_time_in_arrival_order(autojump_clock: trio.testing.MockClock) -> None:
    app = App()
    seen: list[tuple[int, float]] = []
    all_seen = trio.Event()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def record(n: int) -> None:
            await trio.sleep(0.3 - 0.1 * (n % 3))  # later events would overtake earlier ones if run concurrently
            seen.append((n, trio.current_time()))
            if len(seen) == 30:
                all_seen.set()

        socket.on("n", record)

    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await memory.connect_v4(ws)
        sent = trio.current_time()
        for n in range(30):
            await ws.send(f'42["n",{n}]')
        await all_seen.wait()
        await ws.aclose()
    assert [n for n, _ in seen] == list(range(30))
    assert seen[-1][1] - sent == pytest.approx(6.0)  # one after the other: 10 * (0.3 + 0.2 + 0.1) seconds


def _dispatcher_tasks() -> int:
    """How many socket dispatcher tasks are running, anywhere in this trio run."""
    count = 0
    tasks = [trio.lowlevel.current_root_task()]
    while tasks:
        task = tasks.pop()
        if task is None:
            continue
        count += task.name.endswith("Socket._dispatch")
        tasks.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return count


async def test_a_busy_socket_keeps_one_dispatcher_which_ends_a_linger_after_its_last_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        @socket.on("work")
        async def work(n: int) -> int:
            await trio.sleep(0)
            return n

    async with serve_in_memory(app) as server:
        ws = await server.websocket()
        await memory.connect_v4(ws)
        assert _dispatcher_tasks() == 0  # nothing waited yet: no task
        for n in range(3):
            await ws.send(f'42{n}["work",{n}]')
            assert await ws.receive() == f"43{n}[{n}]"
            assert _dispatcher_tasks() == 1  # the same one, lingering between events
            await trio.sleep(DISPATCHER_LINGER - 0.1)
        assert _dispatcher_tasks() == 1
        await trio.sleep(0.2)  # a linger after the last event
        assert _dispatcher_tasks() == 0
        await ws.send('425["work",5]')  # and a new one starts for the next
        assert await ws.receive() == "435[5]"
        await ws.aclose()
