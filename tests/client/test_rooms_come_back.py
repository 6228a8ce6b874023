"""After a reconnect, the Python client's rooms are what they were: joins and leaves are repeated in order."""

from __future__ import annotations

import trio

from trisails import App, Request, Response
from trisails.client import connect


def rooms_app() -> App:
    app = App()

    def join(req: Request, res: Response) -> None:
        app.sockets.join(req, req.param("room"))
        res.ok()

    def leave(req: Request, res: Response) -> None:
        app.sockets.leave(req, req.param("room"))
        res.ok()

    app.route("POST /rooms/join", join)
    app.route("POST /rooms/leave", leave)
    app.route("GET /ping", lambda req, res: res.ok("pong"))
    return app


async def test_a_room_left_before_the_reconnect_stays_left() -> None:
    app = rooms_app()
    async with app.lifted() as url, connect(url) as io:
        await io.post("/rooms/join", {"room": "a"})
        await io.post("/rooms/join", {"room": "b"})
        await io.post("/rooms/leave", {"room": "a"})
        await io.get("/ping")  # not a room change: not repeated
        assert io.rejoins == [("post", "/rooms/join"), ("post", "/rooms/join"), ("post", "/rooms/leave")]
        first_id = io.id
        (socket,) = app.io.sockets.values()
        reconnected = trio.Event()
        io.on("reconnect", lambda attempts: reconnected.set())
        socket._connection.session.close("the network blinked", flush=False)
        with trio.fail_after(10):
            await reconnected.wait()
        assert io.connected and io.id != first_id
        body, _ = await io.get("/ping")  # sent after the repeats, so the rooms are back by now
        assert body == "pong"
        assert set(app.io.sockets) == {io.id}
        assert app.sockets.rooms_of(io.id) == {io.id, "b"}
