"""trisails.client and connection state recovery: a lost connection comes back as the same socket.

Against a server with ``sockets.recovery``, the client keeps the pid the server gave it and the offset
of the last broadcast it heard, and asks to recover them when it reconnects. Recovered: same id, still
in its rooms (no request is repeated), and the missed broadcasts arrive after ``connect``, in order,
without the offset among their arguments. Not recovered (it came back too late): a new socket, whose
rooms come back by repeating the requests that joined them, and whose answers the application hears
through ``rejoin`` so it can refresh.
"""

from __future__ import annotations

from typing import Any

import trio

from trisails import App, Request, Response, Socket
from trisails.client import Backoff, Client, connect

WAIT = 10.0
QUICK = Backoff(initial=0.05, maximum=0.1, jitter=0)


def lobby_app(**sockets: Any) -> App:
    app = App()
    app.settings.sockets.recovery = True
    for name, value in sockets.items():
        setattr(app.settings.sockets, name, value)

    def join(req: Request, res: Response) -> None:
        app.sockets.join(req, "lobby")
        res.ok({"members": len(app.io.main.adapter.sockets(["lobby"]))})

    app.route("POST /lobby/join", join)
    return app


def blip(app: App, client: Client) -> Socket:
    """The network under the client blinks: the server sees its transport close."""
    socket = app.io.sockets[client.id or ""]
    socket._connection.session.close("transport close", flush=False)
    return socket


async def test_a_client_whose_connection_blinked_is_the_same_socket_and_hears_what_it_missed() -> None:
    app = lobby_app()
    async with app.lifted() as url, connect(url, reconnection=QUICK) as io:
        news: list[tuple[Any, ...]] = []
        rejoined: list[Any] = []
        reconnected = trio.Event()
        io.on("news", lambda *args: news.append(args))
        io.on("rejoin", lambda *args: rejoined.append(args))
        io.on("reconnect", lambda attempts: reconnected.set())
        await io.post("/lobby/join")
        app.io.to("lobby").emit("news", "before")
        first_id = io.id
        with trio.fail_after(WAIT):
            while not news:
                await trio.sleep(0.01)
            socket = blip(app, io)
            while socket.connected:
                await trio.sleep(0.01)
            app.io.to("lobby").emit("news", "missed", 1)
            app.io.emit("news", "missed", 2)
            await reconnected.wait()
            while len(news) < 3:
                await trio.sleep(0.01)
        assert io.recovered and io.id == first_id
        assert news == [("before",), ("missed", 1), ("missed", 2)]  # no offsets: they are the client's business
        assert rejoined == []  # still in the lobby: nothing was repeated
        assert app.io.sockets[first_id].recovered
        app.io.to("lobby").except_(first_id).emit("news", "not for me")
        socket = app.io.sockets[first_id]
        socket.emit("direct", "a-string-1")  # an application's last string argument is left alone
        assert await io.wait_for("direct", timeout=WAIT) == ["a-string-1"]


async def test_a_client_that_comes_back_too_late_rejoins_and_hears_the_fresh_answers() -> None:
    app = lobby_app(recovery_max_disconnection=50)
    async with app.lifted() as url, connect(url, reconnection=Backoff(initial=0.3, maximum=0.3, jitter=0)) as io:
        rejoined: list[Any] = []
        reconnected = trio.Event()
        io.on("rejoin", lambda body, jwr, method, url: rejoined.append((method, url, body)))
        io.on("reconnect", lambda attempts: reconnected.set())
        await io.post("/lobby/join")
        app.io.to("lobby").emit("news", "before")
        await io.wait_for("news", timeout=WAIT)
        first_id = io.id
        blip(app, io)
        with trio.fail_after(WAIT):
            await reconnected.wait()
            while not rejoined:
                await trio.sleep(0.01)
        assert not io.recovered and io.id != first_id
        assert rejoined == [("post", "/lobby/join", {"members": 1})]
        assert app.sockets.rooms_of(io.id) == {io.id, "lobby"}
