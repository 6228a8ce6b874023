"""The built-in demo app that ``python -m trisails`` serves when it is given no app folder.

A live chat with a presence list: open ``/`` in two tabs, type in one, read in the other. The page
(``assets/index.html``) uses the browser client at ``/js/dependencies/sails.io.js`` and nothing else;
the server side is the three actions below, all reached through virtual requests. The "here" list is
``app.presence``: each browser is one visitor (an id the page keeps in ``localStorage``), so two tabs
of one browser are one line, which goes when the last of its tabs closes.

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
    names: dict[str, str] = {}  # socket id -> display name, for the messages it sends

    async def here() -> list[str]:
        """Who is here, one line per visitor (a visitor with two tabs open is one line)."""
        state = await app.presence.list(ROOM)
        return sorted(entry["metas"][0]["name"] for entry in state.values())

    async def join(req: Request, res: Response) -> None:
        """A socket joins the chat under a name and gets the recent messages; presence tells every tab
        who is here (``presence_state``, then ``presence_diff``), one entry per visitor."""
        if req.socket is None:
            return res.bad_request("Join the chat over a socket: io.socket.post('/chat/join', {name, visitor})")
        name = str(req.param("name") or "").strip()[:32] or f"guest-{req.socket.id[:4]}"
        visitor = str(req.param("visitor") or "").strip()[:64] or req.socket.id
        names[req.socket.id] = name
        await app.presence.track(req.socket, ROOM, visitor, {"name": name})
        return res.ok({"you": name, "history": list(history)})

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
        return res.ok({"here": await here(), "messages": len(history), **app.statistics()})

    app.action("chat/join", join)
    app.action("chat/say", say)
    app.action("chat/status", status)

    @app.io.on("connection")
    def forget_on_disconnect(socket: Socket) -> None:
        # presence untracks the socket by itself; only the name kept for its messages is ours to drop
        socket.on("disconnect", lambda reason: names.pop(socket.id, None))
