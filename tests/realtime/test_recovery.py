"""Connection state recovery: a socket that loses its connection comes back as itself, and misses nothing.

Byte transcripts of what socket.io-client 4 sends and gets (Socket.IO 4.6+ on the wire), in memory on
trio's mock clock: the CONNECT answer's ``pid``, the offset that ends every broadcast, the recovering
CONNECT ``{"pid","offset"}``, the missed broadcasts replayed before the CONNECT answer, in order.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.memory import handshake, target
from trisails import App, ConnectionRefused, Settings, Socket, SocketSettings
from trisails.protocol.engineio import Envelope
from trisails.realtime.recovery import MemoryRecovery, SavedSession, should_replay
from trisails.testing import InMemoryServer, MemoryWebSocket, serve_in_memory


def chat_app(**sockets: Any) -> tuple[App, dict[str, Socket]]:
    """A lobby: ``join`` puts a socket in it (and names it), ``shout`` tells the lobby; sockets by id."""
    app = App(settings=Settings(sockets=SocketSettings(recovery=True, **sockets)))
    seen: dict[str, Socket] = {}

    @app.io.on("connection")
    def connected(socket: Socket) -> None:
        seen[socket.id] = socket

        @socket.on("join")
        def join(name: str) -> None:
            socket.data["name"] = name
            socket.join("lobby")

        @socket.on("shout")
        def shout(text: str) -> None:
            app.io.to("lobby").emit("news", text)

    return app, seen


async def open_socket(server: InMemoryServer, connect: str = "40") -> tuple[MemoryWebSocket, dict[str, Any]]:
    ws = await server.websocket(target())
    await handshake(ws)
    await ws.send(connect)
    answer = await ws.receive()
    assert isinstance(answer, str) and answer.startswith("40{"), answer
    return ws, orjson.loads(answer[2:])


async def hang_up(ws: MemoryWebSocket, app: App, sid: str) -> None:
    """The network goes away: no close frame; returns once the server has seen the transport close."""
    await ws._stream.aclose()
    while sid in app.io.sockets:
        await trio.sleep(0.01)


def event(frame: str | bytes) -> list[Any]:
    assert isinstance(frame, str) and frame.startswith("42"), frame
    return orjson.loads(frame[2:])


async def joined_then_lost(server: InMemoryServer, app: App) -> tuple[dict[str, Any], str]:
    """A socket joins the lobby, hears one broadcast, then loses its connection: (answer, last offset)."""
    ws, answer = await open_socket(server)
    await ws.send('42["join","ann"]')
    await trio.sleep(0.01)
    app.io.to("lobby").emit("news", "before")
    news = event(await ws.receive())
    assert news[:2] == ["news", "before"]
    await hang_up(ws, app, answer["sid"])
    return answer, news[2]


async def test_the_connect_answer_carries_a_private_session_id_and_broadcasts_an_offset(autojump_clock: trio.testing.MockClock) -> None:
    app, seen = chat_app()
    async with serve_in_memory(app) as server:
        ws, answer = await open_socket(server)
        assert set(answer) == {"sid", "pid"} and answer["pid"] != answer["sid"]
        socket = seen[answer["sid"]]
        assert socket.recovered is False
        await ws.send('42["join","ann"]')
        await ws.send('42["shout","hi"]')
        news = event(await ws.receive())
        assert news[:2] == ["news", "hi"] and isinstance(news[2], str)
        app.io.emit("all", 1)
        everyone = event(await ws.receive())
        assert everyone[:2] == ["all", 1] and everyone[2] != news[2]
        # what is not a broadcast, or cannot be replayed, has no offset
        socket.emit("direct", 1)
        assert event(await ws.receive()) == ["direct", 1]
        app.io.volatile.emit("fleeting", 1)
        assert event(await ws.receive()) == ["fleeting", 1]
        await ws.aclose()


async def test_a_socket_that_lost_its_connection_comes_back_with_its_id_rooms_data_and_what_it_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app, seen = chat_app()
    async with serve_in_memory(app) as server:
        answer, offset = await joined_then_lost(server, app)
        app.io.to("lobby").emit("news", "missed 1")
        app.io.to("elsewhere").emit("news", "not for ann")
        app.io.emit("all", "missed 2")
        app.io.to("lobby").except_("lobby").emit("news", "excepted")
        app.io.to("lobby").emit("news", "missed 3")

        ws = await server.websocket(target())
        await handshake(ws)
        await ws.send('40{"pid":"%s","offset":"%s"}' % (answer["pid"], offset))
        replayed = [event(await ws.receive()) for _ in range(3)]
        assert [r[:2] for r in replayed] == [["news", "missed 1"], ["all", "missed 2"], ["news", "missed 3"]]
        assert await ws.receive() == '40{"sid":"%s","pid":"%s"}' % (answer["sid"], answer["pid"])
        socket = seen[answer["sid"]]
        assert socket.recovered is True and socket.connected
        assert socket.data == {"name": "ann"}
        assert socket.rooms == {answer["sid"], "lobby"}
        app.io.to("lobby").emit("news", "live")
        assert event(await ws.receive())[:2] == ["news", "live"]
        await ws.aclose()


async def test_a_session_is_recovered_once_and_a_second_try_is_a_fresh_socket(autojump_clock: trio.testing.MockClock) -> None:
    app, seen = chat_app()
    async with serve_in_memory(app) as server:
        answer, offset = await joined_then_lost(server, app)
        recovering = '40{"pid":"%s","offset":"%s"}' % (answer["pid"], offset)
        ws, again = await open_socket(server, recovering)
        assert again == answer
        ws2, fresh = await open_socket(server, recovering)  # someone replaying the same pid
        assert fresh["sid"] != answer["sid"] and fresh["pid"] != answer["pid"]
        assert seen[fresh["sid"]].recovered is False and seen[fresh["sid"]].data == {}
        await ws.aclose()
        await ws2.aclose()


@pytest.mark.parametrize(
    "forge",
    [
        lambda pid, offset: {"pid": "not-a-pid", "offset": offset},
        lambda pid, offset: {"pid": pid, "offset": "not-an-offset"},
        lambda pid, offset: {"pid": pid, "offset": offset.rsplit("-", 1)[0] + "-99999"},
        lambda pid, offset: {"pid": pid},
        lambda pid, offset: {"pid": pid, "offset": 7},
    ],
)
async def test_an_unknown_or_forged_pid_or_offset_gets_a_fresh_session(autojump_clock: trio.testing.MockClock, forge: Any) -> None:
    app, seen = chat_app()
    async with serve_in_memory(app) as server:
        answer, offset = await joined_then_lost(server, app)
        ws, fresh = await open_socket(server, "40" + orjson.dumps(forge(answer["pid"], offset)).decode())
        assert fresh["sid"] != answer["sid"]
        socket = seen[fresh["sid"]]
        assert not socket.recovered and socket.data == {} and socket.rooms == {fresh["sid"]}
        assert socket.handshake.auth == {}  # pid and offset are never the app's auth
        await ws.aclose()


async def test_a_session_older_than_the_max_disconnection_duration_is_gone(autojump_clock: trio.testing.MockClock) -> None:
    app, seen = chat_app(recovery_max_disconnection=5_000)
    async with serve_in_memory(app) as server:
        answer, offset = await joined_then_lost(server, app)
        await trio.sleep(5.1)
        ws, fresh = await open_socket(server, '40{"pid":"%s","offset":"%s"}' % (answer["pid"], offset))
        assert fresh["sid"] != answer["sid"] and not seen[fresh["sid"]].recovered
        await ws.aclose()


async def test_a_socket_whose_missed_broadcasts_were_no_longer_kept_gets_a_fresh_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app, seen = chat_app(recovery_max_packets=3)
    async with serve_in_memory(app) as server:
        answer, offset = await joined_then_lost(server, app)
        for n in range(4):
            app.io.to("lobby").emit("news", n)
        ws, fresh = await open_socket(server, '40{"pid":"%s","offset":"%s"}' % (answer["pid"], offset))
        assert fresh["sid"] != answer["sid"]
        await ws.aclose()


@pytest.mark.parametrize("ending", ["client", "server"])
async def test_a_deliberate_disconnect_keeps_nothing_to_recover(autojump_clock: trio.testing.MockClock, ending: str) -> None:
    app, seen = chat_app()
    async with serve_in_memory(app) as server:
        ws, answer = await open_socket(server)
        await ws.send('42["join","ann"]')
        app.io.emit("all", 1)
        offset = event(await ws.receive())[-1]
        if ending == "client":
            await ws.send("41")
        else:
            seen[answer["sid"]].disconnect()
            assert await ws.receive() == "41"
        await trio.sleep(0.01)
        ws2, fresh = await open_socket(server, '40{"pid":"%s","offset":"%s"}' % (answer["pid"], offset))
        assert fresh["sid"] != answer["sid"]
        await ws.aclose()
        await ws2.aclose()


@pytest.mark.parametrize("skip", [True, False])
async def test_middleware_runs_again_on_recovery_only_when_asked(autojump_clock: trio.testing.MockClock, skip: bool) -> None:
    app, seen = chat_app(recovery_skip_middlewares=skip)
    runs: list[bool] = []

    @app.io.use
    def check(socket: Socket) -> None:
        runs.append(socket.recovered)
        if socket.recovered and socket.handshake.auth.get("token") != "ok":
            raise ConnectionRefused("token expired")

    async with serve_in_memory(app) as server:
        answer, offset = await joined_then_lost(server, app)
        ws = await server.websocket(target())
        await handshake(ws)
        await ws.send('40{"pid":"%s","offset":"%s"}' % (answer["pid"], offset))
        frame = await ws.receive()
        if skip:
            assert frame == '40{"sid":"%s","pid":"%s"}' % (answer["sid"], answer["pid"])
            assert runs == [False]
        else:
            assert frame == '44{"message":"token expired"}'
            assert runs == [False, True]
        await ws.aclose()


async def test_engine_io_3_clients_have_no_recovery_and_see_the_offset_as_one_more_argument(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app, seen = chat_app()
    async with serve_in_memory(app) as server:
        ws = await server.websocket(target(eio_revision=3))
        await handshake(ws)
        assert await ws.receive() == "40"
        app.io.emit("all", 1)
        everyone = event(await ws.receive())
        assert everyone[:2] == ["all", 1] and len(everyone) == 3
        await ws.aclose()


async def test_recovery_is_off_by_default(autojump_clock: trio.testing.MockClock) -> None:
    app = App()
    async with serve_in_memory(app) as server:
        ws, answer = await open_socket(server)
        assert set(answer) == {"sid"}
        app.io.emit("all", 1)
        assert event(await ws.receive()) == ["all", 1]
        await ws.aclose()


# ------------------------------------------------------------------------ the store, with plain numbers

ROOMS = st.frozensets(st.sampled_from(["a", "b", "c", "me"]), max_size=2)


@given(
    st.lists(st.tuples(ROOMS, ROOMS), max_size=30),  # broadcasts: (rooms, except)
    st.integers(0, 30),  # how many of them the socket saw before it was lost
    st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_a_recovered_socket_gets_exactly_the_later_broadcasts_its_rooms_would_have_received(
    broadcasts: list[tuple[frozenset[str], frozenset[str]]], seen: int, rooms: frozenset[str]
) -> None:
    store = MemoryRecovery(120.0, 1000, clock=lambda: 0.0)
    sent: list[tuple[str, Envelope, frozenset[str], frozenset[str]]] = []
    for targets, exclude in [(frozenset(), frozenset()), *broadcasts]:  # the first: one every socket saw
        offset = store.new_offset()
        envelope = Envelope([])
        store.record(offset, envelope, targets, exclude)
        sent.append((offset, envelope, targets, exclude))
    seen = min(seen, len(sent) - 1)
    session_rooms = ["me", *sorted(rooms)]
    store.persist(SavedSession("me", "pid", session_rooms, {}))
    restored = store.restore_now("pid", sent[seen][0])
    assert restored is not None and restored.session.sid == "me"
    expected = [envelope for _, envelope, targets, exclude in sent[seen + 1 :] if should_replay(session_rooms, targets, exclude)]
    assert [id(e) for e in restored.missed] == [id(e) for e in expected]
    assert store.restore_now("pid", sent[seen][0]) is None  # once


def test_the_store_forgets_sessions_and_broadcasts_by_age_and_broadcasts_by_count() -> None:
    now = [0.0]
    store = MemoryRecovery(10.0, 3, clock=lambda: now[0])
    offsets = []
    for _ in range(5):
        offsets.append(store.new_offset())
        store.record(offsets[-1], Envelope([]), (), ())
    assert store.statistics() == {"sessions": 0, "packets": 3}
    store.persist(SavedSession("s", "p", ["s"], {}))
    assert store.restore_now("p", offsets[0]) is None  # what came after it is no longer all kept
    store.persist(SavedSession("s", "p", ["s"], {}))
    now[0] = 10.5
    assert store.restore_now("p", offsets[-1]) is None  # too late
    assert store.statistics() == {"sessions": 0, "packets": 0}
