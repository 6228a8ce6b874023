"""Wire the arena into the app: its task, its actions, and the socket events players send.

- ``POST /arena/join`` (socket only) puts the player in a match and answers what the page needs; the
  player is tracked by ``app.presence`` in the match's room, which gives the page its player list;
- the ``input`` event (``{"dx": -1..1, "dy": -1..1}``) steers the player's dot;
- ``POST /arena/leave`` leaves the match, and so does a disconnect;
- ``POST /arena/end`` ends a match now (``{"match": id}``, or the caller's own): its task is cancelled
  and leaves through its ``finally``, which tells the players ``match-over``;
- ``GET /arena/status`` shows matches, players, tick jitter and the server's CPU time.
"""

from __future__ import annotations

from typing import Any

from trisails import App, Request, Response, Socket

from ..matches import Arena


def bootstrap(app: App) -> None:
    custom = app.settings.custom
    arena = Arena(
        app,
        tick_rate=custom.get("tick_rate", 20),
        match_seconds=custom.get("match_seconds", 300),
        idle_seconds=custom.get("idle_seconds", 10),
        max_players=custom.get("max_players", 64),
    )
    app.state["arena"] = arena
    app.start_soon(arena.run, name="arena")

    async def join(req: Request, res: Response) -> None:
        if not req.is_socket:
            return res.bad_request("join over a socket: io.socket.post('/arena/join', {name})")
        name = str(req.param("name") or "").strip()[:24] or f"player-{req.socket.id[:4]}"
        joined = arena.join(req.socket, name)
        # the page's player list: presence in the match's room, untracked when the player leaves the
        # room (leave, disconnect, or the match ending), in whichever process the player is
        await app.presence.track(req.socket, f"match:{joined['match']}", joined["you"], {"name": name})
        return res.ok(joined)

    async def leave(req: Request, res: Response) -> None:
        if req.socket is not None:
            arena.leave(req.socket.id)
        return res.ok()

    async def end(req: Request, res: Response) -> None:
        match_id = req.param("match")
        if match_id is None and req.socket is not None:
            match_id = arena.match_of(req.socket.id)
        if match_id is None or not arena.end(str(match_id)):
            return res.not_found({"error": "no such match running"})
        return res.ok({"ended": str(match_id)})

    async def status(req: Request, res: Response) -> None:
        return res.ok(arena.statistics())

    app.action("arena/join", join)
    app.action("arena/leave", leave)
    app.action("arena/end", end)
    app.action("arena/status", status)

    @app.io.on("connection")
    def player(socket: Socket) -> None:
        @socket.on("input")
        def steer(move: Any) -> None:
            if isinstance(move, dict):
                arena.steer(socket.id, move.get("dx", 0), move.get("dy", 0))

        socket.on("disconnect", lambda reason: arena.leave(socket.id))
