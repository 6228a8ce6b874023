"""Three processes over Redis with ``sockets.recovery``: a client recovers whichever process it comes back to.

The clients (the real socket.io-client 4.8.1) reach the processes through a load balancer of the test's
own, a TCP proxy that sends every new connection to the process it currently points at. The story: a
client on A joins the lobby; A goes out of the balancer (its connections cut, as when a machine is
taken out or its network fails); C broadcasts to the lobby while the client is away; the client comes
back through the balancer, now to B, and is the same socket (id, rooms, ``data``) and gets what it
missed, in order. Its session was kept in Redis by A, the broadcasts in a Redis stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from tests.cluster.listening import assert_logs_clean
from tests.cluster.processes import SHARED_REDIS, Process, copy_app, delete_keys, launch, require_shared_redis, stop_all, wait_serving
from tests.support.jsclient import JsDriver, open_js_driver

WAIT = 15.0

BOOTSTRAP = '''"""The lobby of the recovery story: sockets join it by event; anyone may shout to it over HTTP."""

from trisails import App, Request, Response, Socket


def bootstrap(app: App) -> None:
    @app.io.on("connection")
    def connected(socket: Socket) -> None:
        @socket.on("join")
        def join(name):
            socket.data["name"] = name
            socket.join("lobby")
            return "joined"

        @socket.on("whoami")
        def whoami():
            return {"id": socket.id, "recovered": socket.recovered, "data": socket.data, "rooms": sorted(socket.rooms)}

    def shout(req: Request, res: Response) -> None:
        app.io.to("lobby").emit("news", req.param("text"))
        res.ok()

    app.route("POST /lobby/shout", shout)
'''


@dataclass
class Balancer:
    """A TCP proxy: new connections go to :attr:`backend`; :meth:`point_at` cuts the current ones."""

    backend: int
    port: int = 0
    _cut: trio.CancelScope = field(default_factory=trio.CancelScope)

    def point_at(self, port: int) -> None:
        self.backend = port
        self._cut.cancel()
        self._cut = trio.CancelScope()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        scope = self._cut
        with scope:
            async with client, await trio.open_tcp_stream("127.0.0.1", self.backend) as server, trio.open_nursery() as pumps:
                pumps.start_soon(self._pump, client, server, pumps.cancel_scope)
                pumps.start_soon(self._pump, server, client, pumps.cancel_scope)

    @staticmethod
    async def _pump(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Process]]:
    require_shared_redis()
    work: Path = tmp_path_factory.mktemp("recovery")
    folder, key = copy_app(work / "app", with_models=False, extra={"config/bootstrap.py": BOOTSTRAP})
    with open(folder / "config" / "sockets.py", "a") as sockets:
        sockets.write("recovery = True\n")
    started: list[Process] = []
    try:
        started += [launch(name, folder, work, redis_url=SHARED_REDIS) for name in "ABC"]
        wait_serving(started)
        yield started
    finally:
        stop_all(started)
        delete_keys(6379, key)


@pytest.fixture
async def js() -> AsyncIterator[JsDriver]:
    async with open_js_driver(timeout=WAIT) as driver:
        yield driver


async def test_a_client_cut_off_from_one_process_recovers_on_another_with_what_it_missed(
    processes: list[Process], js: JsDriver
) -> None:
    a, b, c = processes
    balancer = Balancer(a.port)
    with trio.fail_after(WAIT * 2):
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
            await nursery.start(balancer.serve)
            url = f"http://127.0.0.1:{balancer.port}"
            options = {"transports": ["websocket"], "reconnectionDelay": 200, "reconnectionDelayMax": 400}
            client = await js.connect("v4", url, options=options)
            assert await client.emit("join", "ann", ack=True) == ["joined"]
            first = (await client.emit("whoami", ack=True))[0]
            assert first["recovered"] is False

            await http.post(c.url + "/lobby/shout", params={"text": "before"})  # C's broadcast, through Redis
            assert (await client.next_event("news"))[0] == "before"

            balancer.point_at(b.port)  # A is out: its connections are cut; new ones go to B
            await client.next_event("disconnect")
            for text in ("missed 1", "missed 2"):
                await http.post(c.url + "/lobby/shout", params={"text": text})
            await http.post(a.url + "/lobby/shout", params={"text": "missed 3"})

            await client.next_event("connect", timeout=WAIT)
            assert [(await client.next_event("news"))[0] for _ in range(3)] == ["missed 1", "missed 2", "missed 3"]
            state = await client.engine_state()
            assert state.recovered and state.socket_id == first["id"]
            again = (await client.emit("whoami", ack=True))[0]
            assert again == {**first, "recovered": True}

            await http.post(c.url + "/lobby/shout", params={"text": "live"})
            assert (await client.next_event("news"))[0] == "live"
            await client.expect_no_event("news", within=0.5)
            await client.disconnect()
            nursery.cancel_scope.cancel()
    assert_logs_clean(processes)
