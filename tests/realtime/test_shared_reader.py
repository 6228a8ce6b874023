"""Idle websockets wait in one shared reader, which serves what arrives and hands back what needs awaiting.

The first stories are the reader's own contract, on socket pairs; the rest are what a client sees of a
lifted app: messages, pings, errors and the end of a connection all behave as if each connection read
its own socket.
"""

from __future__ import annotations

import socket as stdsocket

import pytest
import trio
import trio.testing

from tests.realtime.test_events import connect_v4
from tests.support.raw import RawWebSocket, raw_websocket
from trisails import App, Socket
from trisails.realtime.reading import SharedReader


class Boom(Exception):
    pass


async def _running(nursery: trio.Nursery) -> SharedReader:
    reader = SharedReader()
    nursery.start_soon(reader.run)
    await trio.testing.wait_all_tasks_blocked()
    assert reader.running
    return reader


async def test_a_parked_task_stays_parked_while_serve_takes_the_input_and_returns_when_serve_says_so() -> None:
    a, b = stdsocket.socketpair()
    a.setblocking(False)
    seen: list[bytes] = []

    def serve() -> bool:
        data = a.recv(100)
        seen.append(data)
        return data != b"last"

    with a, b:
        async with trio.open_nursery() as nursery:
            reader = await _running(nursery)
            with trio.fail_after(5):
                async with trio.open_nursery() as inner:
                    inner.start_soon(reader.wait, a.fileno(), serve)
                    await trio.testing.wait_all_tasks_blocked()
                    b.send(b"one")
                    await trio.testing.wait_all_tasks_blocked()
                    assert seen == [b"one"]  # served in the reader; the task is still parked
                    b.send(b"last")
            assert seen == [b"one", b"last"]
            nursery.cancel_scope.cancel()


async def test_an_error_in_serve_is_raised_in_the_parked_task_not_in_the_reader() -> None:
    a, b = stdsocket.socketpair()

    def serve() -> bool:
        raise Boom("bad frame")

    with a, b:
        async with trio.open_nursery() as nursery:
            reader = await _running(nursery)
            b.send(b"x")
            with trio.fail_after(5), pytest.raises(Boom):
                await reader.wait(a.fileno(), serve)
            assert reader.running  # the reader goes on for everyone else
            nursery.cancel_scope.cancel()


async def test_a_cancelled_task_leaves_the_reader_which_no_longer_serves_its_socket() -> None:
    a, b = stdsocket.socketpair()
    a.setblocking(False)
    calls: list[tuple[int, bytes]] = []

    def serving(n: int):  # noqa: ANN202
        def serve() -> bool:
            calls.append((n, a.recv(10)))
            return True

        return serve

    with a, b:
        async with trio.open_nursery() as nursery:
            reader = await _running(nursery)
            with trio.move_on_after(0.01):
                await reader.wait(a.fileno(), serving(1))
            b.send(b"x")
            await trio.testing.wait_all_tasks_blocked()
            assert calls == []
            # the descriptor may be parked again, by the same or another task
            with trio.move_on_after(0.01):
                await reader.wait(a.fileno(), serving(2))
            assert calls == [(2, b"x")]
            nursery.cancel_scope.cancel()


async def test_release_hands_the_task_back_and_a_stopping_reader_hands_back_every_task() -> None:
    a, b = stdsocket.socketpair()
    c, d = stdsocket.socketpair()
    returned: list[str] = []

    async def park(name: str, fd: int, reader: SharedReader) -> None:
        await reader.wait(fd, lambda: True)
        returned.append(name)

    with a, b, c, d:
        with trio.fail_after(5):
            async with trio.open_nursery() as outer:
                async with trio.open_nursery() as nursery:
                    reader = await _running(nursery)
                    outer.start_soon(park, "released", a.fileno(), reader)
                    outer.start_soon(park, "stopped", c.fileno(), reader)
                    await trio.testing.wait_all_tasks_blocked()
                    reader.release(a.fileno())
                    await trio.testing.wait_all_tasks_blocked()
                    assert returned == ["released"]
                    nursery.cancel_scope.cancel()
        assert returned == ["released", "stopped"]
        assert not reader.running
        await reader.wait(c.fileno(), lambda: True)  # not running: returns at once; wait in the task itself


# ------------------------------------------------------------------------------------ a lifted app
class _Gone:
    """The disconnect reasons of an app's sockets, and a way to wait for them."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self._changed = trio.Event()

    def add(self, reason: str) -> None:
        self.reasons.append(reason)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> list[str]:
        with trio.fail_after(5):
            while len(self.reasons) < count:
                await self._changed.wait()
        return self.reasons


def _echo_app(gone: _Gone) -> App:
    app = App()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("echo", lambda payload=None: payload)

        @socket.on("fail")
        def fail() -> None:
            raise RuntimeError("the handler failed")

        socket.on("disconnect", gone.add)

    return app


async def _echo_and_ping(ws: RawWebSocket) -> None:
    """Connect, then three events, each answered, each followed by a ping the server must answer."""
    await connect_v4(ws)
    for n in range(3):
        await ws.send(f'42{n}["echo",{n}]')
        await ws.expect(f"43{n}[{n}]")
        with trio.fail_after(5):
            await ws.ws.ping(b"are you there")


async def test_a_socket_that_pings_between_events_is_answered_and_keeps_being_served() -> None:
    """A ping is a control frame: the shared reader hands the connection back to its task to answer it."""
    async with _echo_app(_Gone()).lifted() as url, raw_websocket(url) as ws:
        await _echo_and_ping(ws)
        await ws.send('429["echo","still here"]')
        await ws.expect('439["still here"]')


async def test_many_sockets_sending_at_once_each_get_their_own_answers_in_order() -> None:
    async with _echo_app(_Gone()).lifted() as url:
        async with trio.open_nursery() as nursery:

            async def talk(n: int) -> None:
                async with raw_websocket(url) as ws:
                    await connect_v4(ws)
                    for i in range(20):  # several in flight: one read may take several
                        await ws.send(f'42{i}["echo","{n}-{i}"]')
                    for i in range(20):
                        await ws.expect(f'43{i}["{n}-{i}"]')

            for n in range(20):
                nursery.start_soon(talk, n)


async def test_a_failing_handler_is_logged_and_a_closing_client_ends_only_its_own_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = _Gone()
    async with _echo_app(gone).lifted() as url, raw_websocket(url) as bystander:
        await connect_v4(bystander)
        async with raw_websocket(url) as ws:
            await connect_v4(ws)
            await ws.send('421["fail"]')
            await ws.send('422["echo","after the failure"]')
            await ws.expect('432["after the failure"]')
        assert "handler for 'fail' on socket" in caplog.text
        assert await gone.wait_for(1) == ["transport close"]
        await bystander.send('421["echo","unharmed"]')
        await bystander.expect('431["unharmed"]')


async def test_lowering_the_app_closes_every_idle_socket_waiting_in_the_reader() -> None:
    gone = _Gone()
    app = _echo_app(gone)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(app.lift)
        async with raw_websocket(url) as one, raw_websocket(url) as two:
            await connect_v4(one)
            await connect_v4(two)
            await trio.testing.wait_all_tasks_blocked()
            app.lower()
            assert [await one.closed(), await two.closed()] == [1001, 1001]
    assert gone.reasons == ["server shutting down", "server shutting down"]


async def test_without_epoll_each_connection_waits_for_its_own_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the shared reader cannot run (no epoll: macOS, Windows), nothing changes for the client."""
    monkeypatch.delattr("select.epoll")  # (trio's own poller was made when this test's run started)
    gone = _Gone()
    app = _echo_app(gone)
    async with app.lifted() as url:
        assert not app._engine.reader.running
        async with raw_websocket(url) as ws:
            await _echo_and_ping(ws)
        assert await gone.wait_for(1) == ["transport close"]
