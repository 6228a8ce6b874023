"""The built-in demo app that ``python -m trisails`` serves when it is given no app folder.

A welcome page at ``/`` with live numbers, and a tiny chat over raw Socket.IO events: a client that
emits ``chat`` with a text has it broadcast to every other socket as ``chat``, and acknowledged with the
number of sockets it reached.
"""

from __future__ import annotations

import html

from trisails import App, Socket

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trisails is lifted</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}
code{{background:#f3f3f3;padding:0 .25em}}</style></head>
<body><h1>Your trisails app is lifted.</h1>
<p>This is the built-in demo. Socket.IO clients (socket.io-client 4, or <code>sails.io.js</code> 1.2.1)
can connect to <code>{url}</code> right now: emit <code>chat</code> with some text and every other
connected socket receives it.</p>
<p>Connected sockets: <strong>{sockets}</strong>. Engine.IO sessions: <strong>{sessions}</strong>.</p>
<p>Serve your own app folder with <code>python -m trisails path/to/app</code>.</p>
</body></html>
"""


def bootstrap(app: App) -> None:
    @app.http.route("/")
    async def welcome() -> str:
        stats = app.statistics()
        return PAGE.format(
            url=html.escape(app.url or ""),
            sockets=stats["namespaces"]["/"]["sockets"],
            sessions=stats["sessions"],
        )

    @app.io.on("connection")
    def join_chat(socket: Socket) -> None:
        @socket.on("chat")
        def chat(text: str) -> int:
            return socket.broadcast.emit("chat", {"from": socket.id, "text": str(text)})
