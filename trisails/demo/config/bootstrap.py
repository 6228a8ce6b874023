"""The built-in demo app that ``python -m trisails`` serves when it is given no app folder.

A live chat with a presence list: open ``/`` in two tabs, type in one, read in the other. The page
(``assets/index.html``) uses the browser client at ``/js/dependencies/sails.io.js`` and nothing else;
the server side is the three actions below, all reached through virtual requests.

The chat's state (recent messages, who is here) lives in this function's closure, so it belongs to the
one App that bootstrapped it: two demo apps in one process never share a message.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from trisails import App, Request, Response, Socket

ROOM = "chat"
HISTORY = 50


def bootstrap(app: App) -> None:
    history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
    names: dict[str, str] = {}  # socket id -> display name

    def presence() -> list[str]:
        return sorted(names.values())

    async def join(req: Request, res: Response) -> None:
        """A socket joins the chat under a name and gets the recent messages and who is here."""
        if req.socket is None:
            return res.bad_request("Join the chat over a socket: io.socket.post('/chat/join', {name})")
        name = str(req.param("name") or "").strip()[:32] or f"guest-{req.socket.id[:4]}"
        names[req.socket.id] = name
        app.sockets.join(req, ROOM)
        app.sockets.broadcast(ROOM, "presence", {"here": presence()})
        return res.ok({"you": name, "history": list(history), "here": presence()})

    async def say(req: Request, res: Response) -> None:
        """Post a message to everyone in the chat (the sender gets it too, so every tab shows the same)."""
        text = str(req.param("text") or "").strip()[:500]
        if not text:
            return res.bad_request({"error": "say something: text is empty"})
        sender = names.get(req.socket.id, "someone") if req.socket else str(req.param("name") or "http")
        message = {"from": sender, "text": text, "at": int(time.time() * 1000)}
        history.append(message)
        app.sockets.broadcast(ROOM, "chat", message)
        return res.ok(message)

    async def status(req: Request, res: Response) -> None:
        """Numbers for the curious, over HTTP or sockets."""
        return res.ok({"here": presence(), "messages": len(history), **app.statistics()})

    app.action("chat/join", join)
    app.action("chat/say", say)
    app.action("chat/status", status)

    @app.io.on("connection")
    def leave_on_disconnect(socket: Socket) -> None:
        @socket.on("disconnect")
        def gone(reason: str) -> None:
            if names.pop(socket.id, None) is not None:
                app.sockets.broadcast(ROOM, "presence", {"here": presence()})
