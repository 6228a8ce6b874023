"""The raw Socket.IO events of the benchmarks, as the Sails app's config/bootstrap.js:

- ``echo`` (payload, ack): acknowledged with the payload;
- ``join`` (room, ack): joins the room, then acknowledges;
- ``fanout`` ({room, payload}, ack): broadcasts ``fanout`` with the payload to the room, then acknowledges.
"""

from typing import Any

from trisails import App, Socket


def bootstrap(app: App) -> None:
    @app.io.on("connection")
    def connected(socket: Socket) -> None:
        @socket.on("echo")
        def echo(payload: Any = None) -> Any:
            return payload

        @socket.on("join")
        def join(room: str) -> bool:
            socket.join(room)
            return True

        @socket.on("fanout")
        def fanout(message: dict[str, Any]) -> bool:
            app.io.to(message["room"]).emit("fanout", message["payload"])
            return True
