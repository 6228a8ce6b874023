"""Rooms and broadcasts: who receives what, once, and a slow member never holds anyone up."""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio
import trio.testing

from tests.realtime.test_events import connect_v4
from tests.support import memory
from tests.support.raw import RawWebSocket, never_reading_client, raw_websocket
from trisails import App, Settings, Socket, SocketSettings
from trisails.protocol.engineio import Envelope
from trisails.realtime.rooms import MemoryAdapter
from trisails.testing import serve_in_memory


def room_app(settings: Settings | None = None) -> App:
    """Clients join rooms with a ``join`` event and the test broadcasts through ``app.io``."""
    app = App(settings)

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("join", lambda room: socket.join(room))
        socket.on("leave", lambda room: socket.leave(room))
        socket.on("shout", lambda room, text: socket.to(room).emit("shout", text))

    return app


async def open_clients(stack: AsyncExitStack, url: str, count: int) -> list[tuple[RawWebSocket, str]]:
    clients = []
    for _ in range(count):
        ws = await stack.enter_async_context(raw_websocket(url))
        clients.append((ws, await connect_v4(ws)))
    return clients


async def join(ws: RawWebSocket, room: str) -> None:
    await ws.send(f'4299["join","{room}"]')
    await ws.expect("4399[]")


async def test_a_broadcast_reaches_the_room_once_even_when_rooms_overlap() -> None:
    app = room_app()
    async with app.lifted() as url, AsyncExitStack() as stack:
        (a, a_id), (b, _), (c, _) = await open_clients(stack, url, 3)
        await join(a, "red")
        await join(a, "blue")
        await join(b, "blue")
        assert app.io.to(["red", "blue"]).emit("news", 1) == 2
        await a.expect('42["news",1]')
        await b.expect('42["news",1]')
        # except_ leaves out a room; a socket id is a room of its own
        assert app.io.to("blue").except_(a_id).emit("news", 2) == 1
        await b.expect('42["news",2]')
        assert app.io.emit("all", 3) == 3
        for ws in (a, b, c):
            await ws.expect('42["all",3]')
        # nothing else arrived: a's next frame is the answer to a fresh request
        await a.send('42100["join","x"]')
        await a.expect("43100[]")


async def test_socket_to_leaves_out_the_sender() -> None:
    app = room_app()
    async with app.lifted() as url, AsyncExitStack() as stack:
        (a, _), (b, _) = await open_clients(stack, url, 2)
        await join(a, "chat")
        await join(b, "chat")
        await a.send('42["shout","chat","hi"]')
        await b.expect('42["shout","hi"]')
        await a.send('4299["join","x"]')
        await a.expect("4399[]")


async def test_leaving_and_disconnecting_take_a_socket_out_of_its_rooms() -> None:
    app = room_app()
    async with serve_in_memory(app) as server:
        a, b = await server.websocket(), await server.websocket()
        a_id, b_id = await memory.connect_v4(a), await memory.connect_v4(b)
        for ws in (a, b):
            await ws.send('4299["join","r"]')
            await memory.expect(ws, "4399[]")
        assert app.io.to("r").socket_ids() == {a_id, b_id}
        await a.send('4298["leave","r"]')
        await memory.expect(a, "4398[]")
        assert app.io.to("r").socket_ids() == {b_id}
        await b.send("41")
        await trio.testing.wait_all_tasks_blocked()  # the server has handled it: nothing else is left to do
        assert app.io.to("r").socket_ids() == set()
        assert app.io.main.adapter.rooms() == {a_id: 1}
        await a.aclose()
        await b.aclose()


async def test_a_client_that_never_reads_is_cut_off_and_the_others_keep_receiving() -> None:
    settings = Settings(sockets=SocketSettings(outbound_buffer=8))
    app = room_app(settings)
    reasons: list[str] = []
    both_connected = trio.Event()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("disconnect", reasons.append)
        if len(app.io.sockets) == 2:
            both_connected.set()

    payload = "x" * 100_000
    async with app.lifted() as url, raw_websocket(url) as reader, never_reading_client(url):
        await connect_v4(reader)
        with trio.fail_after(5):
            await both_connected.wait()
        with trio.fail_after(20):
            for i in range(400):  # 40 MB at most: far more than the kernel buffers of the stuck one hold
                app.io.emit("bulk", i, payload)
                frame = await reader.receive()
                assert isinstance(frame, str) and frame.startswith(f'42["bulk",{i},')
                if reasons:
                    break
        assert reasons == ["slow consumer"]
        assert len(app.io.sockets) == 1
        app.io.emit("after", 1)
        await reader.expect('42["after",1]')


async def test_the_drop_policy_skips_messages_for_a_slow_socket_but_keeps_it() -> None:
    settings = Settings(sockets=SocketSettings(outbound_buffer=4, slow_consumer="drop"))
    app = room_app(settings)
    payload = "x" * 65536
    async with app.lifted() as url, raw_websocket(url) as ws:
        await connect_v4(ws)
        # the client reads nothing: first the kernel's socket buffers fill, then the 4-message queue
        for i in range(200):
            app.io.emit("tick", i, payload)
            await trio.sleep(0)  # let the writer run, as a real server would between broadcasts
        (socket,) = app.io.sockets.values()
        assert socket.statistics()["dropped"] > 0
        frames = []
        with trio.fail_after(10):
            while len(frames) < 5 or socket.statistics()["buffered"]:  # the reader catches up
                frames.append(await ws.receive())
            with trio.move_on_after(0.3):  # and takes what the kernel still held
                while True:
                    frames.append(await ws.receive())
            app.io.emit("tick", "later")
            frames.append(await ws.receive())
        assert frames[-1] == '42["tick","later"]'

        # what went out came in order, with gaps where the queue was full; then the one sent later
        kept = [int(frame.split(",", 2)[1]) for frame in frames[:-1]]
        assert 0 < len(kept) < 200
        assert kept == sorted(set(kept)) and kept[0] == 0
        assert all(frame == f'42["tick",{i},"{payload}"]' for i, frame in zip(kept, frames))
        assert len(kept) + socket.statistics()["dropped"] == 200
        assert len(app.io.sockets) == 1


async def test_namespaces_have_rooms_of_their_own() -> None:
    app = App()
    custom = app.io.of("/custom")
    custom.on("connection", lambda socket: socket.join("room"))
    app.io.on("connection", lambda socket: socket.join("room"))
    async with app.lifted() as url, raw_websocket(url) as main_ws, raw_websocket(url) as custom_ws:
        await connect_v4(main_ws)
        await custom_ws.handshake()
        await custom_ws.send("40/custom,")
        await custom_ws.receive()
        assert custom.to("room").emit("only-custom") == 1
        await custom_ws.expect('42/custom,["only-custom"]')
        assert app.io.to("room").emit("only-main") == 1
        await main_ws.expect('42["only-main"]')


def test_a_broadcast_reaches_a_rooms_members_in_the_order_they_joined() -> None:
    delivered: list[str] = []
    adapter = MemoryAdapter(lambda sid, envelope: delivered.append(sid))
    joined = [f"socket-{n}" for n in (5, 3, 9, 1, 7, 2, 8)]
    for sid in joined:
        adapter.add_all(sid, [sid, "lobby"])
    adapter.delete("socket-9", "lobby")
    adapter.add_all("socket-9", ["lobby"])  # left and came back: now the last to have joined

    assert adapter.broadcast(Envelope.message("2[\"hi\"]"), ["lobby"]) == 7
    assert delivered == ["socket-5", "socket-3", "socket-1", "socket-7", "socket-2", "socket-8", "socket-9"]

    delivered.clear()
    adapter.add_all("socket-4", ["kitchen"])
    adapter.broadcast(Envelope.message("2[\"hi\"]"), ["kitchen", "lobby"], exclude=["socket-3"])
    assert delivered == ["socket-4", "socket-5", "socket-1", "socket-7", "socket-2", "socket-8", "socket-9"]

    delivered.clear()
    adapter.broadcast(Envelope.message("2[\"hi\"]"))  # everyone: in the order they connected
    assert delivered == [*[sid for sid in joined], "socket-4"]
