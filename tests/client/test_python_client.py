"""The Python client against trisails apps lifted in-process.

The apps answer virtual requests with handlers of the test's own (``TestServer.routes``), not with the
framework's router, so these tests pin the client's side of the wire: what it sends, how it reads JWRs,
and how it lives through heartbeats, dropped transports, reconnects and the end of its block.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketRequest, serve_websocket

import trisails
import trisails.client
from trisails import Ack, App, ConnectionRefused, Settings, Socket, SocketSettings
from trisails.client import (
    JWR,
    AckTimeout,
    Backoff,
    ConnectError,
    DisconnectedError,
    JWRError,
    connect,
)

WAIT = 5.0
VERBS = ("get", "post", "put", "patch", "delete", "options", "head")
FAST = Backoff(initial=0.02, maximum=0.1)
PARSE_ERROR = {
    "code": "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ",
    "name": "Error (SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ):",
    "status": 400,
    "message": "Failed to parse incoming socket.io request.",
    "details": "No url provided in request: [object Object]",
}

Route = Callable[[Socket, dict[str, Any]], Any]


def jwr(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"body": body, "headers": headers or {}, "statusCode": status}


class TestServer:
    """A trisails app whose sockets answer virtual requests from this test's own routing table.

    ``requests`` records ``(socket id, request object)`` in arrival order and ``sockets`` every socket
    that connected, so a test can see exactly what the client sent and on which connection.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, settings: Settings | None = None) -> None:
        self.app = App(settings)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.sockets: list[Socket] = []
        self.routes: dict[tuple[str, str], Route] = {
            ("get", "/say/hello"): lambda socket, request: jwr("hello"),
            ("get", "/parse-error"): lambda socket, request: PARSE_ERROR,
            ("post", "/echo"): lambda socket, request: jwr({"data": request["data"], "headers": request["headers"]}),
            ("post", "/rooms/join"): self._join,
            ("get", "/push"): self._push,
            ("get", "/kick"): self._kick,
            ("get", "/slow"): self._slow,
        }
        self.app.io.on("connection", self._connected)

    @property
    def last(self) -> Socket:
        return self.sockets[-1]

    def drop_transport(self) -> None:
        """Close the newest socket's Engine.IO session with no goodbye: a dropped transport, not a ``41``."""
        self.last._connection.session.close("test drops the transport", flush=False)

    def _connected(self, socket: Socket) -> None:
        self.sockets.append(socket)
        # The App wires its own router into these events; answer them from this test's table instead,
        # through the same public hook (a second on_events replaces the App's).
        socket.on_events(VERBS, partial(self._hooked, socket))

    async def _hooked(self, socket: Socket, verb: str, args: list[Any], ack: Ack | None) -> None:
        answer = await self._answer(socket, verb, *args[:1])
        if ack is not None:
            ack(answer)

    async def _answer(self, socket: Socket, verb: str, request: dict[str, Any]) -> Any:
        self.requests.append((socket.id, request))
        route = self.routes.get((verb, request.get("url", "")))
        if route is None:
            return jwr("Not Found", 404)
        result = route(socket, request)
        return await result if inspect.isawaitable(result) else result

    @staticmethod
    def _join(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        socket.join(request["data"]["room"])
        return jwr("joined", headers={"x-trisails-rejoin": "1"})

    @staticmethod
    def _push(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        socket.emit("hello", "world")
        return jwr("pushed")

    @staticmethod
    def _kick(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        socket.disconnect()
        return jwr("kicked")

    @staticmethod
    async def _slow(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


def client_tasks() -> list[str]:
    """Names of every live task running client or trio-websocket code, from the whole task tree."""
    found: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if task.name.startswith(("trisails.client", "trio_websocket")):
            found.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    walk(root)
    return found


# --------------------------------------------------------------------------------------------- requests


async def test_a_request_goes_out_as_sails_io_js_sends_it_and_the_jwr_comes_back() -> None:
    server = TestServer()
    async with server.app.lifted() as url:
        async with connect(url, headers={"authorization": "Bearer t"}, query={"token": "abc"}, auth={"key": 1}) as io:
            body, response = await io.get("/say/hello")
            assert (body, response.status_code, response.headers, response.error) == ("hello", 200, {}, None)
            response.raise_for_status()
            body, response = await io.post("/echo", {"n": 1}, headers={"x-a": "b"})
            assert body == {"data": {"n": 1}, "headers": {"authorization": "Bearer t", "x-a": "b"}}
            assert io.id == server.last.id and io.connected

    [(_, hello), _] = server.requests
    assert hello == {"method": "get", "headers": {"authorization": "Bearer t"}, "data": {}, "url": "/say/hello"}
    assert list(hello) == ["method", "headers", "data", "url"]  # sails.io.js's key order
    handshake = server.sockets[0].handshake
    assert handshake.url.startswith(
        "/socket.io/?__sails_io_sdk_version=1.2.1&__sails_io_sdk_platform=python"
        "&__sails_io_sdk_language=python&__trisails_client=1&token=abc&EIO=4&transport=websocket"
    )
    assert handshake.headers["authorization"] == "Bearer t"
    assert handshake.auth == {"key": 1}


async def test_an_error_status_and_a_parse_error_are_errors_not_successes() -> None:
    server = TestServer()
    async with server.app.lifted() as url, connect(url) as io:
        body, response = await io.get("/nowhere")
        assert (body, response.status_code) == ("Not Found", 404)
        assert isinstance(response.error, JWRError)
        assert str(response.error) == 'Server responded with a 404 status code:\n```\n"Not Found"\n```'
        with pytest.raises(JWRError) as caught:
            response.raise_for_status()
        assert caught.value.jwr is response and caught.value.code is None

        body, response = await io.get("/parse-error")
        assert response.status_code == 400 and body == PARSE_ERROR
        assert response.error is not None and response.error.code == "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ"
        assert "No url provided" in str(response.error)


def test_a_jwr_is_read_the_way_sails_io_js_reads_it() -> None:
    assert JWR.from_ack([{"body": 1, "headers": {}}]).status_code == 200  # sendStatusCode off
    redirect = JWR.from_ack([{"body": "x", "headers": {"Location": "/a"}, "statusCode": 302}])
    assert redirect.error is None and redirect.header("location") == "/a"
    assert redirect.to_dict() == {"body": "x", "headers": {"Location": "/a"}, "statusCode": 302}
    for not_a_jwr in ([], ["text"], [{"body": 1}, 2]):
        response = JWR.from_ack(not_a_jwr)
        assert response.status_code == 0 and str(response.error) == "The socket request failed."


async def test_a_request_with_an_unknown_verb_or_a_reserved_event_is_refused_at_once() -> None:
    server = TestServer()
    async with server.app.lifted() as url, connect(url) as io:
        with pytest.raises(ValueError, match="method"):
            await io.request("fetch", "/say/hello")
        with pytest.raises(ValueError, match="reserved"):
            await io.emit("disconnect")
        with pytest.raises(TypeError):
            await io.emit("chat", object())
        assert (await io.get("/say/hello"))[0] == "hello"  # nothing was queued by the failures


# --------------------------------------------------------------------------------------------- events


async def test_raw_events_and_acks_go_both_ways() -> None:
    server = TestServer()
    shouts: list[str] = []
    answers: list[list[Any]] = []

    @server.app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("add", lambda a, b: a + b)
        socket.on("shout", shouts.append)

        @socket.on("ask")
        def ask() -> None:
            async def question() -> None:
                answers.append(await socket.call("question", "name?", timeout=WAIT))

            socket.start_soon(question)

    async with server.app.lifted() as url, connect(url) as io:

        @io.on("question")
        async def answer(question: str) -> tuple[str, int]:
            await trio.sleep(0)
            return "ada", 36

        io.on("question", lambda question: "ignored: only the first handler answers")
        await io.emit("shout", "hi")
        assert await io.call("add", 2, 3, timeout=WAIT) == [5]
        assert await io.emit("add", 1, 1, ack=True) == [2]
        await io.emit("ask")
        await eventually(lambda: answers == [["ada", 36]])
        with pytest.raises(AckTimeout):
            await io.call("nobody-listens", timeout=0.05)
    assert shouts == ["hi"]


async def test_binary_goes_both_ways_as_attachments() -> None:
    server = TestServer()
    received: list[bytes] = []

    @server.app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("reverse", lambda blob: blob[::-1])
        socket.emit("blob", b"\xff\x00")

    async with server.app.lifted() as url, connect(url) as io:
        io.on("blob", received.append)
        body, _ = await io.post("/echo", {"file": b"\x00\x01\x02", "name": "f"})
        assert body["data"] == {"file": b"\x00\x01\x02", "name": "f"}
        assert await io.call("reverse", b"abc", timeout=WAIT) == [b"cba"]
        await eventually(lambda: received == [b"\xff\x00"])


async def test_server_pushes_reach_handlers_registered_at_the_top_of_the_block() -> None:
    server = TestServer()
    server.app.io.on("connection", lambda socket: socket.emit("welcome", socket.id))
    async with server.app.lifted() as url, connect(url) as io:
        seen: list[Any] = []
        io.on("connect", lambda: seen.append("connect"))
        io.on("welcome", seen.append)
        assert await io.wait_for("welcome", timeout=WAIT) == [io.id]
        assert seen == ["connect", io.id]  # the first connect and what came with it, in order

        hellos: list[str] = []
        io.on("hello", hellos.append)
        await io.get("/push")
        await eventually(lambda: hellos == ["world"])
        io.off("hello", hellos.append)
        await io.get("/push")
        await io.get("/say/hello")  # by its answer, the second push has been dispatched
        await eventually(lambda: len(seen) == 2)
        assert hellos == ["world"]


async def test_requests_made_while_connecting_wait_and_go_out_in_order() -> None:
    server = TestServer()
    admit = trio.Event()
    order: list[Any] = []

    @server.app.io.use
    async def hold(socket: Socket) -> None:
        await admit.wait()

    @server.app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("n", order.append)

    def last_route(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        order.append("request")
        return jwr("done")

    server.routes["get", "/last"] = last_route
    async with server.app.lifted() as url, connect(url, wait=False) as io:
        for n in range(3):
            await io.emit("n", n)
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def last() -> None:
                results.append(await io.get("/last"))

            nursery.start_soon(last)
            await eventually(lambda: io.statistics()["queued"] == 4)
            assert not io.connected and order == []
            admit.set()
        assert results[0][0] == "done" and io.connected
    assert order == [0, 1, 2, "request"]


# --------------------------------------------------------------------------------------------- heartbeat


async def test_the_heartbeat_keeps_a_quiet_connection_alive_over_many_intervals() -> None:
    server = TestServer(Settings(sockets=SocketSettings(ping_interval=100, ping_timeout=200)))
    async with server.app.lifted() as url, connect(url) as io:
        drops: list[str] = []
        io.on("disconnect", drops.append)
        first = io.id
        await trio.sleep(0.8)  # 8 ping intervals; the server drops a client silent for 0.3 s
        assert io.connected and io.id == first and drops == []
        assert (await io.get("/say/hello"))[0] == "hello"
    assert len(server.sockets) == 1


@asynccontextmanager
async def hung_server() -> AsyncIterator[str]:
    """An Engine.IO server that connects the client, then never sends another frame (no pings)."""

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message('0{"sid":"hung","upgrades":[],"pingInterval":50,"pingTimeout":50,"maxPayload":1000}')
        assert await ws.get_message() == "40"
        await ws.send_message('40{"sid":"hung-socket"}')
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve_websocket, handler, "127.0.0.1", 0, ssl_context=None))
        yield f"http://127.0.0.1:{server.port}"
        nursery.cancel_scope.cancel()


async def test_a_server_that_goes_silent_is_detected_as_dead() -> None:
    async with hung_server() as url, connect(url, reconnection=False) as io:
        reasons: list[str] = []
        io.on("disconnect", reasons.append)
        assert io.id == "hung-socket"
        started = trio.current_time()
        with trio.fail_after(WAIT):
            await io.wait_closed()
        assert trio.current_time() - started < 1.0  # pingInterval + pingTimeout is 0.1 s
        await eventually(lambda: reasons == ["ping timeout"])
        with pytest.raises(DisconnectedError):
            await io.get("/say/hello")


# --------------------------------------------------------------------------------------------- reconnecting


async def test_after_the_transport_drops_the_client_reconnects_and_keeps_its_handlers() -> None:
    server = TestServer()
    async with server.app.lifted() as url, connect(url, reconnection=FAST) as io:
        lifecycle: list[str] = []
        hellos: list[str] = []
        io.on("connect", lambda: lifecycle.append("connect"))
        io.on("disconnect", lambda reason: lifecycle.append(f"disconnect: {reason}"))
        io.on("reconnect", lambda attempts: lifecycle.append(f"reconnect: {attempts}"))
        io.on("hello", hellos.append)
        first = io.id

        server.drop_transport()
        await io.wait_for("disconnect", timeout=WAIT)
        body, _ = await io.get("/push")  # made while reconnecting; it waits, then goes out
        assert body == "pushed" and io.connected and io.id not in (None, first)
        await eventually(lambda: hellos == ["world"])
        assert lifecycle == ["connect", "disconnect: transport close", "connect", "reconnect: 1"]
        assert io.statistics()["reconnects"] == 1
    assert len(server.sockets) == 2 and server.sockets[0].id == first


async def test_after_a_reconnect_the_requests_that_joined_rooms_are_repeated_first() -> None:
    server = TestServer()
    slow = Backoff(initial=0.2, maximum=0.2, jitter=0)  # long enough to queue a request meanwhile
    async with server.app.lifted() as url, connect(url, reconnection=slow) as io:
        await io.post("/rooms/join", {"room": "r1"})
        await io.post("/rooms/join", {"room": "r1"})  # the same request: remembered once
        await io.post("/rooms/join", {"room": "r2"}, headers={"x-tag": "2"})
        await io.get("/say/hello")  # joined nothing: never repeated
        assert io.rejoins == [("post", "/rooms/join"), ("post", "/rooms/join")]
        io.headers["authorization"] = "fresh token"  # repeated requests pick up today's defaults

        server.drop_transport()
        await io.wait_for("disconnect", timeout=WAIT)
        assert not io.connected
        async with trio.open_nursery() as nursery:
            nursery.start_soon(io.get, "/say/hello")
            await eventually(lambda: io.statistics()["queued"] == 1)
        news: list[int] = []
        io.on("news", news.append)
        server.app.io.to("r1").emit("news", 1)
        server.app.io.to("r2").emit("news", 2)
        await eventually(lambda: sorted(news) == [1, 2])

    new = server.last.id
    after = [request for sid, request in server.requests if sid == new]
    assert after == [
        {"method": "post", "headers": {"authorization": "fresh token"}, "data": {"room": "r1"}, "url": "/rooms/join"},
        {
            "method": "post",
            "headers": {"authorization": "fresh token", "x-tag": "2"},
            "data": {"room": "r2"},
            "url": "/rooms/join",
        },
        {"method": "get", "headers": {"authorization": "fresh token"}, "data": {}, "url": "/say/hello"},
    ]


async def test_a_request_in_flight_when_the_transport_drops_fails_and_the_next_one_works() -> None:
    server = TestServer()
    async with server.app.lifted() as url, connect(url, reconnection=FAST) as io:
        failures: list[BaseException] = []

        async def slow() -> None:
            try:
                await io.get("/slow")
            except DisconnectedError as error:
                failures.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            await eventually(lambda: len(server.requests) == 1)
            server.drop_transport()
        assert "disconnected before the request completed" in str(failures[0])
        assert (await io.get("/say/hello"))[0] == "hello"


async def test_a_server_disconnect_is_final_and_fails_what_was_waiting() -> None:
    server = TestServer()
    async with server.app.lifted() as url, connect(url, reconnection=FAST) as io:
        reasons: list[str] = []
        io.on("disconnect", reasons.append)
        with pytest.raises(DisconnectedError):
            await io.get("/kick")  # the server sends 41 instead of an answer
        with trio.fail_after(WAIT):
            await io.wait_closed()
        await eventually(lambda: reasons == ["io server disconnect"])
        assert io.closed and not io.connected and io.id is None
        with pytest.raises(DisconnectedError):
            await io.get("/say/hello")
        with pytest.raises(DisconnectedError):
            await io.wait_for("anything")
        await trio.sleep(0.2)  # ten times the backoff: a reconnect would have happened by now
    assert len(server.sockets) == 1


async def test_without_reconnection_a_dropped_transport_closes_the_client() -> None:
    server = TestServer()
    async with server.app.lifted() as url, connect(url, reconnection=False) as io:
        server.drop_transport()
        with trio.fail_after(WAIT):
            await io.wait_closed()
        with pytest.raises(DisconnectedError, match="transport close"):
            await io.emit("anything")
    assert len(server.sockets) == 1


# --------------------------------------------------------------------------------------------- connecting


async def test_an_unreachable_server_raises_connect_error() -> None:
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with trio.fail_after(WAIT), pytest.raises(ConnectError) as caught:
        async with connect(url):
            raise AssertionError("unreachable")
    assert isinstance(caught.value.__cause__, OSError)

    async with connect(url, wait=False, reconnection=False) as io:
        with trio.fail_after(WAIT):
            await io.wait_closed()
        with pytest.raises(DisconnectedError) as failed:
            await io.get("/say/hello")
        assert isinstance(failed.value.__cause__, ConnectError)


async def test_a_refusal_by_the_server_raises_connection_refused() -> None:
    server = TestServer()

    @server.app.io.use
    def refuse(socket: Socket) -> None:
        raise ConnectionRefused("go away", {"retry": False})

    async with server.app.lifted() as url:
        with trio.fail_after(WAIT), pytest.raises(ConnectionRefused) as caught:
            async with connect(url):
                raise AssertionError("unreachable")
    assert (caught.value.message, caught.value.data) == ("go away", {"retry": False})


async def test_a_namespace_other_than_the_main_one() -> None:
    app = App()
    app.io.of("/admin").on("connection", lambda socket: socket.on("whoami", lambda: socket.namespace.name))
    async with app.lifted() as url, connect(url, namespace="/admin") as io:
        assert await io.call("whoami", timeout=WAIT) == ["/admin"]


# --------------------------------------------------------------------------------------------- lifetime


async def test_leaving_the_block_says_goodbye_and_leaves_no_task_behind() -> None:
    server = TestServer()
    gone: list[str] = []
    server.app.io.on("connection", lambda socket: socket.on("disconnect", gone.append))
    async with server.app.lifted() as url:
        async with connect(url) as io:
            await io.get("/say/hello")
            assert client_tasks()
        assert client_tasks() == [] and io.closed and not io.connected
        await eventually(lambda: gone == ["client namespace disconnect"])  # it sent 41 first


async def test_leaving_the_block_while_reconnecting_or_connecting_is_prompt() -> None:
    server = TestServer()
    admit = trio.Event()
    async with server.app.lifted() as url:
        with trio.fail_after(1.0):  # far less than the backoff or the connect timeout
            async with connect(url, reconnection=Backoff(initial=30, maximum=30)) as io:
                server.drop_transport()
                await io.wait_for("disconnect", timeout=WAIT)
            assert client_tasks() == []

        holding = trio.Event()

        @server.app.io.use
        async def hold(socket: Socket) -> None:
            holding.set()
            await admit.wait()

        with trio.fail_after(1.0):
            async with connect(url, wait=False) as io:
                await holding.wait()  # the client is mid-connect: its namespace is held at the server
                assert not io.connected
            assert client_tasks() == []
        admit.set()


async def test_an_error_in_the_block_comes_out_as_itself() -> None:
    server = TestServer()
    async with server.app.lifted() as url:
        with pytest.raises(KeyError):
            async with connect(url):
                raise KeyError("mine")
        assert client_tasks() == []


# --------------------------------------------------------------------------------------------- pieces


def test_the_backoff_doubles_up_to_its_maximum_with_jitter_either_way() -> None:
    backoff = Backoff()
    assert [backoff.delay(n, rand=lambda: 0.5) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay(0, rand=lambda: 0.0) == 0.5
    assert backoff.delay(1, rand=lambda: 0.999999) == pytest.approx(3.0, abs=1e-4)
    assert backoff.delay(10, rand=lambda: 0.999999) == 10  # jitter never goes past the maximum
    assert backoff.delay(10_000, rand=lambda: 0.5) == 10
    for bad in ({"initial": 0}, {"initial": 2, "maximum": 1}, {"jitter": 1.5}, {"attempts": 0}):
        with pytest.raises(ValueError):
            Backoff(**bad)


def test_the_public_surface() -> None:
    for name in trisails.client.__all__:
        assert getattr(trisails.client, name).__module__.startswith("trisails."), name
    assert issubclass(JWRError, trisails.TrisailsError) and issubclass(ConnectError, trisails.TrisailsError)


async def test_a_url_with_a_path_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="namespace="):
        async with connect("http://127.0.0.1:1337/admin"):
            raise AssertionError("unreachable")
    assert client_tasks() == []


async def test_a_closed_client_fails_requests_and_waits_at_once() -> None:
    server = TestServer()
    async with server.app.lifted() as url:
        async with connect(url) as io:
            pass
        with trio.fail_after(WAIT):
            with pytest.raises(DisconnectedError):
                await io.get("/say/hello")
            with pytest.raises(DisconnectedError):
                await io.wait_for("x")
